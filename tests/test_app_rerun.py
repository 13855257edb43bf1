"""Re-running the cell that creates an app in a kernel leaves no app, pool, scheduler or
table of the earlier runs behind (issue 16), in a real kernel."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

SETUP = """
import os, time, weakref, psutil
kernel = psutil.Process(os.getpid())
earlier = []

def settle(expected, timeout=30.0):
    deadline = time.monotonic() + timeout
    while len(kernel.children(recursive=True)) != expected and time.monotonic() < deadline:
        psutil.wait_procs(kernel.children(), timeout=0.05)
    return len(kernel.children(recursive=True))
"""

APP_CELL = """
from flowrra import Config, ExecutorConfig, Flowrra
app = Flowrra(Config(executor=ExecutorConfig(cpu_workers=2)))

@app.task(cpu_bound=True)
def square(x):
    return x * x

await app.start()
(await app.wait_for_result(await app.submit(square, 3), timeout=60)).result
"""

COUNT_CELL = """
earlier.append(weakref.ref(app))
print("processes", settle(4))
"""

AFTER = """
alive = [ref() for ref in earlier[:-1] if ref() is not None]
print("earlier running", sum(a.is_running for a in alive))
workers = set(app.cpu_executor.pool.pids)
print("kernel children are this app's workers", workers <= {p.pid for p in kernel.children(True)})
%load_ext flowrra
%flowrra doctor
"""


def run(cells: list[str], tmp_path: Path) -> list[str]:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = NotebookClient(
        notebook, kernel_name="python3", timeout=120, resources={"metadata": {"path": tmp_path}}
    )
    client.execute()
    return [
        "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")
        for cell in notebook.cells
    ]


def test_rerunning_the_app_cell_keeps_only_the_reachable_apps_processes(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("FLOWRRA_NONINTERACTIVE", "1")
    cells = [SETUP]
    for _ in range(5):
        cells += [APP_CELL, COUNT_CELL]
    outputs = run([*cells, AFTER], tmp_path)
    counts = [out.strip() for out in outputs[2::2][:5]]
    # workers 2, the forkserver and multiprocessing's resource tracker: 4, not 4, 6, ... 12
    assert counts == ["processes 4"] * 5, outputs
    app_outputs = outputs[1:10:2]
    assert app_outputs[0] == ""
    for out in app_outputs[1:]:  # one line each time flowrra stops the earlier app
        assert out.startswith("flowrra: stopped the app that was 'app' before this cell")
        assert len(out.strip().splitlines()) == 1 and "2 worker process(es) ended" in out
    after = outputs[-1]
    assert "earlier running 0" in after and "are this app's workers True" in after, after
    assert "running apps: 1: 'app' (worker processes " in after, after


SCHEDULED_APP_CELL = """
from flowrra import Config, ExecutorConfig, Flowrra
from flowrra.notebook import TaskTable
app = Flowrra(Config(executor=ExecutorConfig(cpu_workers=1)))

@app.task()
async def tick():
    return 1

scheduler = app.create_scheduler(f"sqlite:///{DB}", check_interval=0.2)
await app.start()
table = TaskTable(app)
earlier.append(weakref.ref(app))
"""

CHECK_OLD = """
old = [ref() for ref in earlier[:-1]]
print([a.is_running for a in old], [a.scheduler.is_running for a in old])
print([len(a.events._subscribers) for a in old], len(app.events._subscribers) > 0)
print(app.is_running and app.scheduler.is_running)
"""


def test_rerunning_leaves_no_scheduler_firing_nor_table_listening(tmp_path: Path) -> None:
    setup = f"import weakref\nDB = {str(tmp_path / 'schedules.db')!r}\nearlier = []"
    outputs = run(
        [setup, SCHEDULED_APP_CELL, SCHEDULED_APP_CELL, SCHEDULED_APP_CELL, CHECK_OLD], tmp_path
    )
    lines = outputs[-1].strip().splitlines()
    assert lines == ["[False, False] [False, False]", "[0, 0] True", "True"], outputs
    assert all(out.startswith("flowrra: stopped the app") for out in outputs[2:4]), outputs
