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

tries = []

@app.task(max_retries=1, retry_delay=0.01)
async def flaky():
    tries.append(1)
    if len(tries) == 1:
        raise RuntimeError("first try fails")
    return "second try"

@app.task()
async def slow():
    await asyncio.sleep(300)

await app.start()
for i in range(5):
    await app.wait_for_result(await app.submit(add, i, i))
await app.wait_for_result(await app.submit(add, "x" * 200, "y"))
await app.wait_for_result(await app.submit(broken))
await app.wait_for_result(await app.submit(flaky))
slow_id = await app.submit(slow)
""",
    "%flowrra status",
    """
for i in range(3):  # after the table is shown: it follows the events
    await app.wait_for_result(await app.submit(add, 10, i))
""",
]

# A narrow output in the dark theme: many rows (capped), running tasks with cancel buttons.
NARROW_CELLS = [
    """
import asyncio
from flowrra import Flowrra
from flowrra.notebook import TaskTable

app = Flowrra()

@app.task()
async def add(a, b):
    return a + b

@app.task(max_retries=0)
async def broken():
    raise ValueError("broken on purpose")

@app.task()
async def slow(i):
    await asyncio.sleep(300)

await app.start()
for i in range(30):
    await app.wait_for_result(await app.submit(add, i, i))
await app.wait_for_result(await app.submit(broken))
for i in range(3):
    await app.submit(slow, i)
""",
    "TaskTable(app, max_rows=20)",
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
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """JupyterLab serving a folder with table.ipynb and narrow.ipynb: (base URL, token,
    the folder)."""
    reason = _missing_browser()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and the browser test cannot run: {reason}")
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("lab")
    for name, sources in (("table.ipynb", CELLS), ("narrow.ipynb", NARROW_CELLS)):
        cells = [nbformat.v4.new_code_cell(source.strip()) for source in sources]
        notebook = nbformat.v4.new_notebook(cells=cells)
        notebook.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3",
            "language": "python",
        }
        nbformat.write(notebook, root / name)
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
        yield base, token, root
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


ROWS = """root => Array.from(root.querySelectorAll('.flowrra-tt-table tbody tr')).map(tr => {
    const text = name => tr.querySelector('.flowrra-tt-col-' + name)?.textContent ?? null;
    return {section: tr.dataset.section || null, id: tr.dataset.taskId || null,
            status: tr.dataset.status || null, name: text('task_name'), args: text('args'),
            elapsed: text('elapsed'), attempt: text('attempt')};
})"""

# Where each cancel button is: inside the window and the output, and not covered.
CANCEL_BOXES = """root => {
    const output = root.closest('.jp-OutputArea-output') || root.parentElement;
    const out = output.getBoundingClientRect();
    return Array.from(root.querySelectorAll('.flowrra-tt-cancel')).map(button => {
        const r = button.getBoundingClientRect();
        const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
        return {
            width: r.width,
            inWindow: r.left >= 0 && r.right <= window.innerWidth && r.top >= 0
                && r.bottom <= window.innerHeight,
            inOutput: r.left >= out.left - 0.5 && r.right <= out.right + 0.5,
            hit: hit === button || button.contains(hit),
        };
    });
}"""

# WCAG contrast of each visible text cell of a row against its effective background.
CONTRASTS = """row => {
    const parse = c => {
        const m = (c.match(/[\\d.]+/g) || ['0', '0', '0', '0']).map(Number);
        return {r: m[0], g: m[1], b: m[2], a: m.length > 3 ? m[3] : 1};
    };
    const over = (top, bottom) => ({
        r: top.r * top.a + bottom.r * (1 - top.a), g: top.g * top.a + bottom.g * (1 - top.a),
        b: top.b * top.a + bottom.b * (1 - top.a), a: 1,
    });
    const background = el => {
        const layers = [];
        for (let e = el; e; e = e.parentElement) {
            const c = parse(getComputedStyle(e).backgroundColor);
            if (c.a > 0) layers.push(c);
            if (c.a >= 1) break;
        }
        return layers.reverse().reduce((acc, c) => over(c, acc), {r: 255, g: 255, b: 255, a: 1});
    };
    const lum = ({r, g, b}) => {
        const f = v => (v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
        return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    return Array.from(row.cells)
        .filter(td => td.offsetParent !== null && td.textContent.trim()
            && !td.querySelector('.flowrra-tt-badge, button'))
        .map(td => {
            const bg = background(td);
            const fg = over(parse(getComputedStyle(td).color), bg);
            const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
            return {cell: td.className, ratio: (hi + 0.05) / (lo + 0.05)};
        });
}"""


def _launch(p: object) -> object:
    return p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)  # type: ignore[attr-defined]


def _open(page: object, lab: tuple[str, str, Path], name: str) -> None:
    """Open notebook ``name`` and wait until its kernel is idle."""
    base, token, _ = lab
    # a workspace of its own: JupyterLab would restore the tabs of the last test's page
    url = f"{base}/lab/workspaces/{name.removesuffix('.ipynb')}/tree/{name}?reset&token={token}"
    page.goto(url)  # type: ignore[attr-defined]
    page.wait_for_selector(".jp-Notebook", timeout=60_000)  # type: ignore[attr-defined]
    page.wait_for_function(  # type: ignore[attr-defined]
        "window.jupyterapp && window.jupyterapp.commands", timeout=60_000
    )
    page.wait_for_function(KERNEL_READY, timeout=60_000)  # type: ignore[attr-defined]


def _run_all(page: object) -> None:
    page.evaluate(  # type: ignore[attr-defined]
        "() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }"
    )


def _wait_count(page: object, status: str, n: int, timeout: float = 30_000) -> None:
    page.wait_for_function(  # type: ignore[attr-defined]
        "([status, n]) => document.querySelector(`.flowrra-tt-count[data-status='${status}'] "
        ".flowrra-tt-count-value`)?.textContent === String(n)",
        arg=[status, n],
        timeout=timeout,
    )


def _rows(page: object) -> list[dict[str, str | None]]:
    return page.locator(".flowrra-tt").first.evaluate(ROWS)  # type: ignore[attr-defined]


def _tasks(page: object) -> list[dict[str, str | None]]:
    return [row for row in _rows(page) if row["id"]]


def _count(page: object, status: str) -> str:
    selector = f".flowrra-tt-count[data-status='{status}'] .flowrra-tt-count-value"
    return page.locator(selector).first.inner_text()  # type: ignore[attr-defined]


def _detail(page: object) -> str:
    page.wait_for_selector(".flowrra-tt-detail:not([hidden])", timeout=10_000)  # type: ignore[attr-defined]
    return page.locator(".flowrra-tt-detail").first.inner_text()  # type: ignore[attr-defined]


def _select(page: object, row_selector: str, expect: str) -> str:
    """Click a row and wait until its details show ``expect``."""
    page.locator(row_selector).first.click()  # type: ignore[attr-defined]
    page.wait_for_function(  # type: ignore[attr-defined]
        "text => document.querySelector('.flowrra-tt-detail')?.innerText.includes(text)",
        arg=expect,
        timeout=10_000,
    )
    return _detail(page)


def _sort_by(page: object, column: str, direction: str) -> None:
    """Click the header of ``column`` until it sorts in ``direction``."""
    header = page.locator(f".flowrra-tt-sort[data-column='{column}']").first  # type: ignore[attr-defined]
    for _ in range(2):
        if header.evaluate("b => b.parentElement.getAttribute('aria-sort')") == direction:
            return
        before = header.evaluate("b => b.parentElement.getAttribute('aria-sort')")
        header.click()
        page.wait_for_function(  # type: ignore[attr-defined]
            "([column, before]) => document.querySelector(`.flowrra-tt-sort[data-column="
            "'${column}']`).parentElement.getAttribute('aria-sort') !== before",
            arg=[column, before],
            timeout=10_000,
        )
    assert header.evaluate("b => b.parentElement.getAttribute('aria-sort')") == direction


def _saved_table_html(root: Path) -> str:
    notebook = nbformat.read(root / "table.ipynb", as_version=4)
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "application/vnd.jupyter.widget-view+json" in data and "text/html" in data:
                return data["text/html"]
    raise AssertionError("the saved notebook has no task table output with text/html")


def test_the_task_table_renders_in_jupyterlab(lab: tuple[str, str, Path]) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = _launch(p)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            _open(page, lab, "table.ipynb")
            _run_all(page)
            _wait_count(page, "success", 10, timeout=60_000)
            page.wait_for_function(
                "document.querySelectorAll('.flowrra-tt-row').length === 12", timeout=20_000
            )
            assert _count(page, "failed") == "1" and _count(page, "running") == "1"
            assert "11 / 12 done" in page.locator(".flowrra-tt-progress-label").inner_text()

            # failed tasks first, in a section of their own; then the newest first
            rows = _rows(page)
            assert [r["section"] for r in rows[:3]] == ["failed", None, "others"]
            assert rows[1]["name"] == "broken" and rows[1]["status"] == "failed"
            tasks = _tasks(page)
            assert [r["args"] for r in tasks[1:4]] == ["(10, 2)", "(10, 1)", "(10, 0)"]
            assert tasks[4]["name"] == "slow" and tasks[4]["status"] == "running"
            assert [r["name"] for r in tasks[5:7]] == ["flaky", "add"]
            # attempts, and arguments as a short repr
            assert {r["name"]: r["attempt"] for r in tasks}["flaky"] == "2"
            assert {r["attempt"] for r in tasks if r["name"] != "flaky"} == {"1"}
            long = next(r for r in tasks if (r["args"] or "").startswith("('xxx"))
            assert len(long["args"]) <= 80 and "..." in long["args"]

            # the running task's elapsed time ticks
            elapsed = ".flowrra-tt-row[data-status='running'] .flowrra-tt-col-elapsed"
            first = page.locator(elapsed).inner_text()
            assert first.endswith(" s")
            page.wait_for_function(
                "([sel, first]) => document.querySelector(sel).textContent !== first",
                arg=[elapsed, first],
                timeout=5_000,
            )

            # details: the retry, the whole arguments, the failure
            detail = _select(page, ".flowrra-tt-row:has-text('flaky')", "second try")
            assert "2 (1 retry)" in detail and "null" not in detail
            detail = _select(page, ".flowrra-tt-row:has-text('xxxx')", "x" * 200)
            detail = _select(page, ".flowrra-tt-row[data-status='failed']", "broken on purpose")
            assert "Traceback" in detail and "1 (0 retries)" in detail
            page.locator(".flowrra-tt").screenshot(path=str(ARTIFACTS / "task_table.png"))

            # cancelling the running task changes its row, not the order
            order = [r["id"] for r in _tasks(page)]
            page.locator(".flowrra-tt-row[data-status='running'] .flowrra-tt-cancel").click()
            _wait_count(page, "cancelled", 1)
            assert [r["id"] for r in _tasks(page)] == order
            assert page.locator(".flowrra-tt-cancel").count() == 0

            # sorting by a column, both ways; failed ones stay in their section
            old_root = page.locator(".flowrra-tt").first.element_handle()
            _sort_by(page, "task_name", "ascending")
            names = [r["name"] for r in _tasks(page)[1:]]
            assert names == sorted(names) and names[-1] == "slow"
            _sort_by(page, "task_name", "descending")
            names = [r["name"] for r in _tasks(page)[1:]]
            assert names == sorted(names, reverse=True) and _tasks(page)[0]["name"] == "broken"

            # the output's static copy is renewed (JupyterLab draws the output again):
            # one table, with the same order and the same details open
            page.wait_for_function("el => !el.isConnected", arg=old_root, timeout=15_000)
            page.wait_for_selector(".flowrra-tt-row", timeout=10_000)
            assert page.locator(".flowrra-tt").count() == 1
            assert [r["name"] for r in _tasks(page)[1:]] == names
            assert "broken on purpose" in _detail(page)

            # a saved notebook carries the table's last state as HTML
            page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
            page.wait_for_function(
                "() => !window.jupyterapp.shell.currentWidget.context.model.dirty",
                timeout=10_000,
            )
            html = _saved_table_html(lab[2])
            assert "cancelled" in html and "broken on purpose" in html and "(10, 2)" in html
            page.screenshot(path=str(ARTIFACTS / "jupyterlab.png"), full_page=True)
            (ARTIFACTS / "task_table_rows.json").write_text(json.dumps(_rows(page), indent=1))
        finally:
            browser.close()


def test_a_narrow_output_in_the_dark_theme(lab: tuple[str, str, Path]) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = _launch(p)
        try:
            page = browser.new_page(viewport={"width": 650, "height": 900})
            _open(page, lab, "narrow.ipynb")
            page.evaluate(
                "() => window.jupyterapp.commands.execute('apputils:change-theme', "
                "{theme: 'JupyterLab Dark'})"
            )
            page.wait_for_function("document.body.dataset.jpThemeLight === 'false'", timeout=20_000)
            page.evaluate("() => window.jupyterapp.shell.collapseLeft()")  # 650 px for the notebook
            _run_all(page)
            _wait_count(page, "running", 3, timeout=60_000)
            page.wait_for_function(
                "document.querySelectorAll('.flowrra-tt-row').length === 20", timeout=20_000
            )
            table = page.locator(".flowrra-tt").first
            table.scroll_into_view_if_needed()
            assert table.locator(".flowrra-tt-shown").inner_text() == "showing 20 of 34"

            # every cancel button is in view: inside the window and the output, not covered
            boxes = table.evaluate(CANCEL_BOXES)
            assert len(boxes) == 3
            for box in boxes:
                assert box["width"] > 0 and box["inWindow"] and box["inOutput"] and box["hit"], box
            assert table.locator(".flowrra-tt-scroll").evaluate("el => el.scrollLeft") == 0

            # the selected row is legible
            page.locator(
                ".flowrra-tt-row[data-status='success'] .flowrra-tt-col-task_name"
            ).first.click()
            page.wait_for_selector(".flowrra-tt-row.flowrra-tt-selected", timeout=10_000)
            page.mouse.move(1, 1)  # the selection's colours, not the hover's
            contrasts = page.locator(".flowrra-tt-selected").evaluate(CONTRASTS)
            assert len(contrasts) >= 3
            assert all(c["ratio"] >= 4.5 for c in contrasts), contrasts

            # the header stays in view at the bottom of a long table
            scroll = table.locator(".flowrra-tt-scroll")
            assert scroll.evaluate("el => el.scrollHeight > el.clientHeight")
            scroll.evaluate("el => { el.scrollTop = el.scrollHeight; }")
            page.wait_for_function(
                "() => { const el = document.querySelector('.flowrra-tt-scroll');"
                " return el.scrollTop + el.clientHeight >= el.scrollHeight - 1; }"
            )
            head = scroll.evaluate(
                "el => el.querySelector('th').getBoundingClientRect().top"
                " - el.getBoundingClientRect().top"
            )
            assert abs(head) <= 1
            assert table.locator(".flowrra-tt-count[data-status='failed']").is_visible()
            table.screenshot(path=str(ARTIFACTS / "task_table_narrow_dark.png"))
        finally:
            page.screenshot(path=str(ARTIFACTS / "jupyterlab_narrow_dark.png"))
            page.evaluate(
                "() => window.jupyterapp.commands.execute('apputils:change-theme', "
                "{theme: 'JupyterLab Light'})"
            )
            browser.close()
