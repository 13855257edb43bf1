"""The task table's front-end files (shared by the notebook widget and the web dashboard)
reach both installs: inside the wheel (hatch force-include) and, for an editable install,
in the checkout's widgets/ folder."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import flowrra
from flowrra.notebook.frontend import WIDGET_FILES, widget_file

ROOT = Path(__file__).resolve().parent.parent


def test_the_editable_install_finds_the_checkouts_files() -> None:
    assert Path(flowrra.__file__).resolve().parent == ROOT / "flowrra"  # editable / checkout
    for name in WIDGET_FILES:
        assert widget_file(name) == ROOT / "widgets" / name


def test_the_wheel_carries_the_files_and_finds_them(tmp_path: Path) -> None:
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("flowrra-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for name in WIDGET_FILES:
            inside = f"flowrra/notebook/widgets/{name}"
            assert inside in names
            assert archive.read(inside) == (ROOT / "widgets" / name).read_bytes()
        for name in ("dashboard.js", "dashboard.css"):  # the web dashboard's own files
            assert f"flowrra/web/static/{name}" in names
        archive.extractall(tmp_path / "site")
    code = (
        "import flowrra; from flowrra.notebook.frontend import widget_file;"
        "from flowrra.web.server import static_files;"
        "print(flowrra.__file__); print(widget_file('task_table.js'));"
        "print(static_files()['task_table.js'])"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert found.returncode == 0, found.stderr
    package, js, served = found.stdout.split()
    site = tmp_path / "site"
    assert Path(package).is_relative_to(site)
    assert Path(js) == site / "flowrra" / "notebook" / "widgets" / "task_table.js"
    assert Path(served) == Path(js)  # the dashboard serves the widget's own module
