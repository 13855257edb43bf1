"""The task table in a real browser: JupyterLab served locally, a notebook run in headless
Chromium, the table's rows and statuses checked, a screenshot kept in test-artifacts/.

Needs Debian's chromium at /usr/bin/chromium (``apt-get install -y chromium``) and the
playwright package (never ``playwright install``). Without them the test skips, except
under ``CI=true``, where it fails.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

KERNEL_READY = """() => {
    const session = window.jupyterapp.shell.currentWidget?.sessionContext?.session;
    const kernel = session?.kernel;
    return kernel?.connectionStatus === "connected" && kernel?.status === "idle";
}"""

CELLS = [
    "%load_ext flowrra",
    """
import asyncio
from flowrra import Flowrra

app = Flowrra()

@app.task()
async def add(a, b):
    return a + b

@app.task(max_retries=0)
async def broken():
    raise ValueError("broken on purpose")

@app.task()
async def slow():
    await asyncio.sleep(300)

await app.start()
for i in range(5):
    await app.wait_for_result(await app.submit(add, i, i))
await app.wait_for_result(await app.submit(broken))
slow_id = await app.submit(slow)
""",
    "%flowrra status",
    """
for i in range(3):  # after the table is shown: it follows the events
    await app.submit(add, 10, i)
""",
]


def _missing_browser() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing: apt-get install -y chromium (Debian's package)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed: pip install playwright (no 'playwright install')"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_http(url: str, process: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer in {timeout} s")


def _write_settings(folder: Path) -> None:
    """Start the notebook's kernel without asking; no news pop-up."""
    settings = {
        "notebook-extension/tracker": {"autoStartDefaultKernel": True},
        "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }
    for name, values in settings.items():
        path = folder / "@jupyterlab" / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """JupyterLab serving a folder with table.ipynb: (base URL, token)."""
    reason = _missing_browser()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and the browser test cannot run: {reason}")
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("lab")
    cells = [nbformat.v4.new_code_cell(source.strip()) for source in CELLS]
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(notebook, root / "table.ipynb")
    port, token = _free_port(), secrets.token_hex(16)
    home = tmp_path_factory.mktemp("jupyter-home")
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "FLOWRRA_NONINTERACTIVE": "",
    }
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        f"--port={port}",
        "--ip=127.0.0.1",
        f"--ServerApp.token={token}",
        f"--ServerApp.root_dir={root}",
        "--allow-root",
        "--LabApp.expose_app_in_browser=True",
        f"--LabApp.user_settings_dir={home / 'settings'}",
        f"--LabApp.workspaces_dir={home / 'workspaces'}",
    ]
    _write_settings(home / "settings")
    log = (home / "lab.log").open("w")
    process = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for_http(f"{base}/lab?token={token}", process)
        yield base, token
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


def _rows(page: object) -> list[dict[str, str]]:
    return page.eval_on_selector_all(  # type: ignore[attr-defined]
        ".flowrra-tt-row",
        "rows => rows.map(r => ({status: r.dataset.status, "
        "name: r.querySelector('.flowrra-tt-name').textContent}))",
    )


def _count(page: object, status: str) -> str:
    selector = f".flowrra-tt-count[data-status='{status}'] .flowrra-tt-count-value"
    return page.locator(selector).first.inner_text()  # type: ignore[attr-defined]


def test_the_task_table_renders_in_jupyterlab(lab: tuple[str, str]) -> None:
    from playwright.sync_api import sync_playwright

    base, token = lab
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{base}/lab/tree/table.ipynb?token={token}")
            page.wait_for_selector(".jp-Notebook", timeout=60_000)
            page.wait_for_function(
                "window.jupyterapp && window.jupyterapp.commands", timeout=60_000
            )
            page.wait_for_function(KERNEL_READY, timeout=60_000)
            page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
            page.wait_for_function(
                "document.querySelectorAll('.flowrra-tt-row').length >= 10", timeout=60_000
            )
            page.wait_for_function(
                "document.querySelector(\".flowrra-tt-count[data-status='success'] "
                ".flowrra-tt-count-value\")?.textContent === '8'",
                timeout=20_000,
            )
            rows = _rows(page)
            statuses = [r["status"] for r in rows]
            assert statuses[0] == "running" and rows[0]["name"] == "slow"
            assert statuses.count("success") == 8 and statuses.count("failed") == 1
            assert _count(page, "failed") == "1" and _count(page, "running") == "1"
            assert "9 / 10 done" in page.locator(".flowrra-tt-progress-label").inner_text()

            page.locator(".flowrra-tt-row[data-status='failed']").click()
            page.wait_for_selector(".flowrra-tt-detail", timeout=10_000)
            detail = page.locator(".flowrra-tt-detail").inner_text()
            assert "broken on purpose" in detail and "Traceback" in detail
            page.locator(".flowrra-tt").screenshot(path=str(ARTIFACTS / "task_table.png"))

            page.locator(".flowrra-tt-row[data-status='running'] .flowrra-tt-cancel").click()
            page.wait_for_function(
                "document.querySelector(\".flowrra-tt-count[data-status='cancelled'] "
                ".flowrra-tt-count-value\")?.textContent === '1'",
                timeout=20_000,
            )
            assert "running" not in [r["status"] for r in _rows(page)]
            page.screenshot(path=str(ARTIFACTS / "jupyterlab.png"), full_page=True)
            (ARTIFACTS / "task_table_rows.json").write_text(json.dumps(_rows(page), indent=1))
        finally:
            browser.close()
