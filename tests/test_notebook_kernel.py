"""The notebook face in a real Jupyter kernel (nbclient): the app lives on flowrra's runtime
thread, so tasks, retries and the task table go on while a cell blocks in sync code."""

from __future__ import annotations

import json

import nbformat
import pytest
from nbclient import NotebookClient

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

CELLS = {
    "load": "%load_ext flowrra",
    "define": """
import asyncio, sys, threading, time
from flowrra import Config, ExecutorConfig, Flowrra
from flowrra import runtime
from flowrra.notebook import TaskTable

app = Flowrra(Config(executor=ExecutorConfig(io_workers=2, cpu_workers=1)))

@app.task()
async def nap(i):
    await asyncio.sleep(0.3)
    return i

calls = []

@app.task(max_retries=3, retry_delay=0.2)
async def flaky():
    calls.append(time.monotonic())
    if len(calls) < 3:
        raise RuntimeError("not yet")
    return "ok"
""",
    "start": """
await app.start()
assert app._home_loop is runtime.runtime_loop()
assert app._home_loop is not asyncio.get_running_loop()
print("home thread:", runtime._thread.name)
""",
    "blocking": """
ids = await app.map(nap, range(6))
flaky_id = await app.submit(flaky)
time.sleep(2)   # plain sync code: the kernel's own loop is stuck here
""",
    "after_blocking": """
records = [await app.get_result(i) for i in ids + [flaky_id]]
print(json.dumps([[r.status.value, r.result, r.retries] for r in records]))
""",
    "magic_submit": """
h = %flowrra submit nap 7
%flowrra wait h
print("handle:", h.result(), h.status)
""",
    "table": """
table = TaskTable(app, refresh_hz=8)
table
""",
    "table_blocking": """
handles = %flowrra map nap range(4)
time.sleep(1.5)
""",
    "table_after": """
print(json.dumps({"counts": table.counts, "rows": len(table.rows)}))
""",
    "status_widget": "%flowrra status",
    "task_cell": """%%flowrra task --retries 0
def square(x):
    return x * x + offset
""",
    "cpu_task": """
offset = 100
sq = %flowrra submit square 5
print("square:", sq.result(60))
""",
    "status_text": """
%config FlowrraMagics.noninteractive = True
%flowrra status
""",
    "stop": """
await app.stop()
print("asyncio:", asyncio.Task is asyncio.tasks._CTask, "nest_asyncio" in sys.modules)
""",
}


def _text(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")


def _has_widget(cell: nbformat.NotebookNode) -> bool:
    return any(WIDGET_MIME in o.get("data", {}) for o in cell.outputs)


@pytest.fixture(scope="module")
def executed() -> dict[str, nbformat.NotebookNode]:
    cells = [nbformat.v4.new_code_cell("import json")]
    cells += [nbformat.v4.new_code_cell(source.strip()) for source in CELLS.values()]
    notebook = nbformat.v4.new_notebook(cells=cells)
    NotebookClient(notebook, kernel_name="python3", timeout=90).execute()
    return dict(zip(CELLS, notebook.cells[1:], strict=True))


def test_the_app_runs_on_the_runtime_thread(executed: dict) -> None:
    assert "home thread: flowrra-runtime" in _text(executed["start"])


def test_tasks_and_retries_finish_while_a_cell_blocks(executed: dict) -> None:
    records = json.loads(_text(executed["after_blocking"]))
    assert records[:6] == [["success", i, 0] for i in range(6)]
    assert records[6] == ["success", "ok", 2]


def test_magics_submit_and_wait(executed: dict) -> None:
    text = _text(executed["magic_submit"])
    assert "handle: 7 success" in text
    assert "1/1 done (1 success)" in text
    assert _has_widget(executed["magic_submit"])  # the progress bar


def test_the_table_moves_while_a_cell_blocks(executed: dict) -> None:
    assert _has_widget(executed["table"])
    state = json.loads(_text(executed["table_after"]))
    assert state["counts"]["success"] == 12
    assert state["rows"] == 12


def test_status_shows_the_widget_then_text(executed: dict) -> None:
    assert _has_widget(executed["status_widget"])
    text = _text(executed["status_text"])
    assert "success 13" in text and "STATUS" in text  # 12 naps and the square


def test_a_task_cell_runs_in_worker_processes(executed: dict) -> None:
    assert "Registered task 'square' (cpu)" in _text(executed["task_cell"])
    assert "square: 125" in _text(executed["cpu_task"])


def test_asyncio_is_never_patched(executed: dict) -> None:
    assert "asyncio: True False" in _text(executed["stop"])
