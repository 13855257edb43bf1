"""The notebook face in a real Jupyter kernel (nbclient): the app lives on flowrra's runtime
thread, so tasks, retries and the task table go on while a cell blocks in sync code."""

from __future__ import annotations

import json
from collections.abc import Iterator

import nbformat
import pytest
from jupyter_client.manager import KernelManager
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


# ---------------------------------------------------------------------------------------
# Log lines and errors, seen as a front end sees them: every iopub message of the kernel,
# whichever cell it belongs to (a line logged on the runtime thread goes to the cell that
# started the app, which nbclient no longer listens to once that cell is done).

LOG_CELLS = {
    "define": """
%load_ext flowrra
import asyncio, json, logging, sys, threading
from flowrra import Config, ExecutorConfig, Flowrra

app = Flowrra(Config(executor=ExecutorConfig(io_workers=4)))
attempts = {}

@app.task(max_retries=2, retry_delay=0.01)
async def shaky(i):
    attempts[i] = attempts.get(i, 0) + 1
    if attempts[i] == 1:
        raise RuntimeError(f"shaky {i}: first try")
    return i

@app.task(max_retries=1, retry_delay=3600)
async def later():
    raise RuntimeError("try again later")

retrying = threading.Event()

def on_event(event):
    if event["type"] == "task.retrying" and event["task"]["task_name"] == "later":
        retrying.set()

app.events.subscribe(on_event)
""",
    "start": "await app.start()",
    "burst": """
ids = await app.map(shaky, range(60))
records = [await app.wait_for_result(i, 30) for i in ids]
print(json.dumps(sorted({(r.status.value, r.retries) for r in records})))
""",
    "while_retrying": """
later_id = await app.submit(later)
await asyncio.to_thread(retrying.wait, 30)
r = await app.get_result(later_id)
print(json.dumps([r.status.value, r.retries, r.error_type, r.error]))
await app.cancel(later_id)
""",
    "flush": "sys.stderr.flush()",
    "opt_in": """
logging.basicConfig()
again = await app.map(shaky, range(100, 103))
records = [await app.wait_for_result(i, 30) for i in again]
sys.stderr.flush()
""",
    "unknown_task": "%flowrra submit nosuchtask 1",
    "unknown_id": "%flowrra cancel nosuchid",
    "unknown_var": "%flowrra wait nosuchvar",
    "wait": "h = %flowrra submit shaky 200\n%flowrra wait h",
    "stop": "await app.stop()",
}


class Kernel:
    """A real ipykernel whose iopub messages are all kept, with the cell that ran."""

    def __init__(self) -> None:
        self.manager = KernelManager(kernel_name="python3")
        self.manager.start_kernel()
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)
        self.messages: list[tuple[str, dict]] = []
        self.replies: dict[str, dict] = {}

    def run(self, name: str, code: str) -> None:
        msg_id = self.client.execute(code)
        while True:
            msg = self.client.get_iopub_msg(timeout=120)
            self.messages.append((name, msg))
            if (
                msg["msg_type"] == "status"
                and msg["content"]["execution_state"] == "idle"
                and msg["parent_header"].get("msg_id") == msg_id
            ):
                break
        while True:
            reply = self.client.get_shell_msg(timeout=120)
            if reply["parent_header"].get("msg_id") == msg_id:
                self.replies[name] = reply["content"]
                return

    def stderr(self, *during: str) -> str:
        """Text sent to stderr (by any cell) while the cells ``during`` ran."""
        return "".join(
            msg["content"]["text"]
            for name, msg in self.messages
            if name in during and msg["msg_type"] == "stream" and msg["content"]["name"] == "stderr"
        )

    def stdout(self, name: str) -> str:
        return "".join(
            msg["content"]["text"]
            for cell, msg in self.messages
            if cell == name and msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout"
        )

    def sent(self, name: str, msg_type: str) -> list[dict]:
        return [
            m["content"] for cell, m in self.messages if cell == name and m["msg_type"] == msg_type
        ]

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)
        self.manager.cleanup_resources()


@pytest.fixture(scope="module")
def kernel() -> Iterator[Kernel]:
    kernel = Kernel()
    try:
        for name, code in LOG_CELLS.items():
            kernel.run(name, code.strip())
        yield kernel
    finally:
        kernel.close()


def test_retries_print_nothing_into_the_cells(kernel: Kernel) -> None:
    assert json.loads(kernel.stdout("burst")) == [["success", 1]]  # 60 retries happened
    quiet = kernel.stderr("define", "start", "burst", "while_retrying", "flush")
    assert "retry" not in quiet and "shaky" not in quiet, quiet


def test_a_retrying_record_says_why(kernel: Kernel) -> None:
    assert json.loads(kernel.stdout("while_retrying")) == [
        "retrying",
        1,
        "RuntimeError",
        "try again later",
    ]


def test_logging_configuration_turns_the_lines_back_on(kernel: Kernel) -> None:
    loud = kernel.stderr("opt_in")
    for i in range(100, 103):
        assert f"shaky {i}: first try" in loud, loud
    assert "WARNING:flowrra.tasks:Task shaky" in loud and "retry 1/2" in loud


def test_magic_errors_are_one_line_in_a_kernel(kernel: Kernel) -> None:
    expected = {
        "unknown_task": ("TaskNotFoundError", "(registered: shaky, later)"),
        "unknown_id": ("UnknownTaskIdError", "Unknown task id 'nosuchid'"),
        "unknown_var": ("UnknownTaskIdError", "Unknown task id 'nosuchvar'"),
    }
    for name, (ename, text) in expected.items():
        reply = kernel.replies[name]
        assert reply["status"] == "error" and reply["ename"] == ename
        (line,) = reply["traceback"]
        assert line.startswith(f"{ename}: ") and text in line, line
    assert not kernel.sent("unknown_var", "display_data")  # no progress bar was drawn


def test_the_wait_bar_says_done_in_a_kernel(kernel: Kernel) -> None:
    assert "1/1 done (1 success)" in kernel.stdout("wait")
    states = [c["data"].get("state", {}) for c in kernel.sent("wait", "comm_msg")]
    assert any(state.get("description") == "done" for state in states), states
