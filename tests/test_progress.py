"""Task context, progress and captured output: ``current_task()``, ``progress()`` and
``record.output``, in memory, in CPU worker processes, on Redis and on ``flowrra worker``."""

from __future__ import annotations

import asyncio
import io
import logging
import numbers
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from flowrra import (
    Config,
    ExecutorConfig,
    Flowrra,
    FlowrraError,
    TaskContext,
    TaskResult,
    TaskStatus,
    current_task,
    progress,
)
from flowrra.capture import TaskStream
from flowrra.context import PROGRESS_INTERVAL, OutputBuffer
from flowrra.frames import results_frame
from flowrra.notebook.table import _detail
from flowrra.notebook.table_state import row_from_record, snapshot_html
from flowrra.task import _rebuild_result
from flowrra.web.data import record_detail, record_row

from . import progress_app, progress_tasks, test_redis
from .services import REDIS_URL

ROOT = Path(__file__).resolve().parents[1]
SECRET = "test-secret-progress-0123456789"


# ------------------------------------------------------------------- helpers
class Progressed:
    """An event subscriber keeping the ``task.progress`` events; :meth:`until` waits
    for one of a task that passes a check (woken by the events, no polling)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.types: dict[str, list[str]] = {}
        self._changed = asyncio.Event()

    def __call__(self, event: dict[str, Any]) -> None:
        self.types.setdefault(event["task_id"], []).append(event["type"])
        if event["type"] == "task.progress":
            self.events.append(event)
            self._changed.set()

    def of(self, task_id: str) -> list[dict[str, Any]]:
        return [e["task"] for e in self.events if e["task_id"] == task_id]

    async def until(
        self, task_id: str, check: Callable[[dict[str, Any]], bool], timeout: float = 60.0
    ) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                for task in self.of(task_id):
                    if check(task):
                        return task
                self._changed.clear()
                await self._changed.wait()


class Gate:
    """A port tasks wait at (``progress_tasks.wait_for_go``) until :meth:`go`."""

    def __init__(self) -> None:
        self.port = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._arrived = asyncio.Event()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Gate:
        self._server = await asyncio.start_server(self._on_connect, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def _on_connect(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        self._arrived.set()

    async def go(self) -> None:
        """Let the waiting task go (waiting for it to arrive first)."""
        await asyncio.wait_for(self._arrived.wait(), 60)
        for writer in self._writers:
            writer.write(b"g")
            await writer.drain()
            writer.close()

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        for writer in self._writers:
            writer.close()
        self._server.close()
        await self._server.wait_closed()


@pytest.fixture
def progressed() -> Progressed:
    return Progressed()


async def succeeded(app: Flowrra, task_id: str) -> TaskResult:
    record = await app.wait_for_result(task_id, timeout=60)
    assert record.status is TaskStatus.SUCCESS, (record.error_type, record.error)
    return record


# ------------------------------------------------------------- current_task
async def test_current_task_tells_id_name_attempt_and_options(app: Flowrra) -> None:
    seen: list[TaskContext] = []

    @app.task(max_retries=2, retry_delay=0, timeout=30)
    async def flaky() -> dict[str, Any]:
        context = current_task()
        seen.append(context)
        if context.attempt == 1:
            raise ValueError("first attempt fails")
        return {"id": context.task_id, "name": context.name, "options": context.options}

    with pytest.raises(FlowrraError, match="only inside a task"):
        current_task()
    progress(1, 2)  # outside a task: nothing to report, no error
    async with app:
        task_id = await app.apply(flaky, priority=3)
        record = await succeeded(app, task_id)
    assert record.result["id"] == task_id and record.result["name"] == "flaky"
    options = record.result["options"]
    assert options["max_retries"] == 2 and options["timeout"] == 30 and options["priority"] == 3
    assert options["cpu_bound"] is False and options["retry_delay"] == 0
    assert [c.attempt for c in seen] == [1, 2] and [c.retries for c in seen] == [0, 1]
    assert not any(c.running for c in seen)  # each ended with its attempt
    with pytest.raises(FlowrraError, match="only inside a task"):
        current_task()


async def test_progress_checks_its_arguments(app: Flowrra) -> None:
    @app.task(max_retries=0)
    async def bad(done: Any, total: Any, message: Any) -> None:
        progress(done, total, message)

    async with app:
        for args in [("1", None, None), (True, 2, None), (1, 0, None), (1, 2, 3)]:
            record = await app.wait_for_result(await app.submit(bad, *args), timeout=30)
            assert record.status is TaskStatus.FAILED and record.error_type == "ConfigError"
        numpy_like = await app.submit(bad, _Real(2.5), _Integral(5), "ok")
        record = await succeeded(app, numpy_like)
    assert (record.progress_done, record.progress_total, record.progress) == (2.5, 5, 0.5)
    assert type(record.progress_done) is float and type(record.progress_total) is int


class _Real:
    """A number that is not a float (as a NumPy float is not always)."""

    def __init__(self, value: float) -> None:
        self.value = value

    def __float__(self) -> float:
        return self.value


class _Integral(int):
    """An integer of another type (as ``numpy.int64`` is)."""


numbers.Real.register(_Real)


# ----------------------------------------------------------------- progress
async def test_progress_is_live_coalesced_and_final_in_memory(
    app: Flowrra, progressed: Progressed
) -> None:
    gate = asyncio.Event()
    steps = 20_000

    @app.task()
    async def stepping(n: int) -> int:
        for i in range(n):
            progress(i + 1, n, f"step {i + 1}")
            if i % 100 == 0:
                await asyncio.sleep(0)
        await gate.wait()
        return n

    @app.task()
    async def quick() -> None:
        for i in range(1000):
            progress(i, 1000)

    app.events.subscribe(progressed)
    async with app:
        started = time.monotonic()
        task_id = await app.submit(stepping, steps)
        live = await progressed.until(task_id, lambda t: t["progress_done"] == steps)
        assert live["status"] == "running" and live["progress"] == 1.0
        assert live["progress_message"] == f"step {steps}" and live["progress_total"] == steps
        record = await app.get_result(task_id)
        assert record.status is TaskStatus.RUNNING and record.progress == 1.0
        gate.set()
        final = await succeeded(app, task_id)
        elapsed = time.monotonic() - started
        short = await app.submit(quick)
        short_record = await succeeded(app, short)
    # 20,000 calls, at most one publication per interval (the first after one interval)
    assert 1 <= len(progressed.of(task_id)) <= elapsed / PROGRESS_INTERVAL + 1
    assert (final.progress, final.progress_done, final.progress_total) == (1.0, steps, steps)
    assert final.progress_message == f"step {steps}"
    # a task that ends within the interval publishes nothing more than its end
    assert progressed.types[short] == ["task.submitted", "task.started", "task.succeeded"]
    assert short_record.progress_done == 999 and short_record.progress == 0.999


async def test_reports_from_a_thread_and_what_subscribers_print(
    app: Flowrra, progressed: Progressed, capsys: pytest.CaptureFixture[str]
) -> None:
    gate = asyncio.Event()

    def loud(event: dict[str, Any]) -> None:
        if event["type"] == "task.progress":
            print("a subscriber saw progress")

    def in_a_thread() -> None:
        print("printed in a thread")
        progress(5, 10, "from a thread")

    @app.task()
    async def threaded() -> None:
        await asyncio.to_thread(in_a_thread)  # copies the task's context
        await gate.wait()

    app.events.subscribe(loud)
    app.events.subscribe(progressed)
    async with app:
        task_id = await app.submit(threaded)
        live = await progressed.until(task_id, lambda t: t["progress_message"] == "from a thread")
        assert live["output"] == "printed in a thread\n" and live["progress"] == 0.5
        gate.set()
        record = await succeeded(app, task_id)
    assert record.output == "printed in a thread\n"  # not what the subscriber printed
    assert "a subscriber saw progress" in capsys.readouterr().out


async def test_progress_without_a_total_counts(app: Flowrra) -> None:
    @app.task()
    async def counting() -> None:
        progress(7, message="seven so far")
        progress(8)  # no message: the last one stays

    async with app:
        record = await succeeded(app, await app.submit(counting))
    assert (record.progress_done, record.progress_total, record.progress) == (8, None, None)
    assert record.progress_message == "seven so far"


async def test_each_attempt_reports_its_own_progress_and_output(app: Flowrra) -> None:
    retrying: list[dict[str, Any]] = []
    app.events.subscribe(
        lambda e: retrying.append(e["task"]) if e["type"] == "task.retrying" else None
    )

    @app.task(max_retries=1, retry_delay=0)
    async def twice() -> str:
        if current_task().attempt == 1:
            print("first attempt")
            progress(1, 4, "one")
            raise RuntimeError("again")
        print("second attempt")
        return "ok"

    async with app:
        record = await succeeded(app, await app.submit(twice))
    assert retrying[0]["output"] == "first attempt\n" and retrying[0]["progress"] == 0.25
    assert record.output == "second attempt\n" and record.progress_done is None
    assert record.progress_message is None


# ------------------------------------------------------------------- output
async def test_output_is_captured_per_task_and_never_printed(
    app: Flowrra, capsys: pytest.CaptureFixture[str]
) -> None:
    turn = asyncio.Event()

    @app.task()
    async def talk(name: str, lines: int) -> None:
        log = logging.getLogger(f"tests.talk.{name}")
        for i in range(lines):
            print(f"{name} line {i}")
            print(f"{name} err {i}", file=sys.stderr)
            await asyncio.sleep(0)  # the other task prints in between
        log.warning("%s warns", name)
        log.info("%s informs (below the logger's level: dropped)", name)
        await turn.wait()

    async with app:
        a = await app.submit(talk, "a", 20)
        b = await app.submit(talk, "b", 20)
        print("printed outside any task")
        turn.set()
        records = [await succeeded(app, a), await succeeded(app, b)]
    captured = capsys.readouterr()
    assert "printed outside any task" in captured.out
    assert " line " not in captured.out + captured.err and "warns" not in captured.err
    for name, record in zip("ab", records, strict=True):
        expected = "".join(f"{name} line {i}\n{name} err {i}\n" for i in range(20))
        assert record.output == expected + f"WARNING:tests.talk.{name}:{name} warns\n"


async def test_output_keeps_the_tail_up_to_the_limit() -> None:
    app = Flowrra(Config(executor=ExecutorConfig(output_limit=1000)))

    @app.task()
    async def verbose() -> None:
        for i in range(5000):
            print(f"line {i:04d}")

    async with app:
        record = await succeeded(app, await app.submit(verbose))
    output = record.output
    assert output is not None and len(output) <= 1000
    assert output.startswith("[flowrra: ") and "earlier characters of output dropped]" in output
    assert output.endswith("line 4998\nline 4999\n")


def test_output_buffer_bounds() -> None:
    buffer = OutputBuffer(100)
    assert buffer.text() is None
    for i in range(10_000):
        buffer.write(f"{i:05d}\n")
    text = buffer.text()
    assert text is not None and len(text) == 100 and text.endswith("09999\n")
    assert text.startswith("[flowrra: 59,900 earlier characters of output dropped]\n")
    assert sum(map(len, buffer._parts)) <= 2 * 100 + 4096 + 6  # compacted as it grows
    tiny = OutputBuffer(10)
    tiny.write("x" * 50)
    assert tiny.text() == "x" * 10  # no room for the note


async def test_output_limit_zero_captures_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    app = Flowrra(Config(executor=ExecutorConfig(output_limit=0)))
    stdout = sys.stdout

    @app.task()
    async def loud() -> None:
        print("loud task")
        progress(1, 1)

    async with app:
        assert sys.stdout is stdout  # nothing installed
        record = await succeeded(app, await app.submit(loud))
    assert record.output is None and record.progress == 1.0
    assert "loud task" in capsys.readouterr().out


async def test_capture_is_put_back_when_the_app_stops(app: Flowrra) -> None:
    stdout, stderr = sys.stdout, sys.stderr
    root = logging.getLogger()
    handlers = list(root.handlers)
    factory = logging.getLogRecordFactory()
    async with app:
        assert isinstance(sys.stdout, TaskStream) and sys.stdout.stream is stdout
        assert isinstance(sys.stderr, TaskStream) and sys.stderr.stream is stderr
        assert logging.getLogRecordFactory() is not factory  # log records are looked at
        assert root.handlers == handlers  # no handler added: basicConfig() still works
        other = Flowrra()
        await other.start()
        await other.stop()  # another app stopping leaves this one's capture alone
        assert isinstance(sys.stdout, TaskStream)
    assert sys.stdout is stdout and sys.stderr is stderr and root.handlers == handlers
    assert logging.getLogRecordFactory() is factory


LOGGING_SCRIPT = """
import asyncio, logging
from flowrra import Flowrra

app = Flowrra()

@app.task()
async def logs() -> None:
    logging.getLogger("script.task").warning("said in the task")
    print("printed in the task")

async def main() -> None:
    async with app:
        logging.getLogger("script.outside").warning("said outside tasks")
        record = await app.wait_for_result(await app.submit(logs), timeout=30)
        print("OUTPUT", repr(record.output))
    logging.getLogger("script.after").warning("said after the app stopped")

asyncio.run(main())
"""


def test_logging_outside_tasks_is_unchanged(tmp_path: Path) -> None:
    # a plain process: no handler anywhere, so warnings go to logging.lastResort
    script = tmp_path / "logs.py"
    script.write_text(LOGGING_SCRIPT)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == ["said outside tasks", "said after the app stopped"]
    assert done.stdout.splitlines() == [
        "OUTPUT 'WARNING:script.task:said in the task\\nprinted in the task\\n'"
    ]


async def test_console_handlers_stay_quiet_while_tasks_log(app: Flowrra) -> None:
    console = io.StringIO()
    handler = logging.StreamHandler(console)
    root = logging.getLogger()
    root.addHandler(handler)
    stdout = sys.stdout
    sys.stdout = console  # the handler writes to the console
    try:

        @app.task()
        async def logs() -> None:
            logging.getLogger("tests.logs").warning("from the task")

        async with app:
            record = await succeeded(app, await app.submit(logs))
            logging.getLogger("tests.logs").warning("from outside")
            logging.getLogger("flowrra.tests").warning("flowrra's own line")
    finally:
        sys.stdout = stdout
        root.removeHandler(handler)
    assert record.output == "WARNING:tests.logs:from the task\n"
    assert "from the task" not in console.getvalue()
    assert "from outside" in console.getvalue() and "flowrra's own line" in console.getvalue()
    assert not handler.filters  # given back


BASIC_CONFIG_SCRIPT = """
import asyncio, logging
from flowrra import Flowrra

app = Flowrra()

@app.task()
async def logs() -> None:
    logging.getLogger("script.task").warning("said in the task")

async def main() -> None:
    async with app:
        logging.basicConfig(format="CONFIGURED %(name)s %(message)s")
        logging.getLogger("script.outside").warning("said outside tasks")
        record = await app.wait_for_result(await app.submit(logs), timeout=30)
        print("OUTPUT", repr(record.output))

asyncio.run(main())
"""


def test_logging_basic_config_works_while_an_app_runs(tmp_path: Path) -> None:
    """basicConfig() does nothing once the root logger has a handler: capture adds none
    (it once put one there, and a notebook's logging.basicConfig() then did nothing)."""
    script = tmp_path / "configured.py"
    script.write_text(BASIC_CONFIG_SCRIPT)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == ["CONFIGURED script.outside said outside tasks"]
    assert done.stdout.splitlines() == ["OUTPUT 'WARNING:script.task:said in the task\\n'"]


def test_task_stream_delegates_to_the_stream_it_stands_for() -> None:
    class KernelStream(io.StringIO):
        """Like ipykernel's OutStream: attributes of its own."""

        def __init__(self) -> None:
            super().__init__()
            self.parent_header: dict[str, Any] = {}

        def set_parent(self, parent: dict[str, Any]) -> None:
            self.parent_header = parent

    kernel = KernelStream()
    stream = TaskStream(kernel)
    stream.set_parent({"msg_id": "1"})
    stream.write("outside a task\n")
    stream.writelines(["a\n", "b\n"])
    stream.flush()
    assert kernel.parent_header == {"msg_id": "1"} and kernel.getvalue() == "outside a task\na\nb\n"
    assert stream.encoding == kernel.encoding and stream.isatty() is False


# ---------------------------------------------------------- CPU processes
@pytest.fixture(params=["forkserver", "spawn"])
async def cpu_app(request: pytest.FixtureRequest) -> AsyncIterator[Flowrra]:
    app = Flowrra(Config(executor=ExecutorConfig(cpu_workers=1, start_method=request.param)))
    app.task(cpu_bound=True, max_retries=0)(progress_tasks.crunch)
    yield app
    await app.stop(wait=False)


async def test_a_cpu_task_reports_from_its_worker_process(
    cpu_app: Flowrra, progressed: Progressed, capfd: pytest.CaptureFixture[str]
) -> None:
    cpu_app.events.subscribe(progressed)
    async with cpu_app, Gate() as gate:
        task_id = await cpu_app.submit(progress_tasks.crunch, 1000, gate.port)
        live = await progressed.until(task_id, lambda t: t["progress_done"] == 1000)
        assert live["status"] == "running" and live["progress_message"] == "crunching"
        assert "crunch starts, attempt 1\n" in live["output"]
        await gate.go()
        record = await succeeded(cpu_app, task_id)
    about = record.result
    assert about["task_id"] == task_id and about["name"] == "crunch" and about["attempt"] == 1
    assert about["options"]["cpu_bound"] is True and about["pid"] != os.getpid()
    assert record.progress == 1.0 and record.progress_message == "crunched"
    assert record.output == (
        "crunch starts, attempt 1\ncrunch to stderr\nWARNING:tests.crunch:crunch warns\n"
        "crunch ends\n"
    )
    printed = capfd.readouterr()
    assert "crunch" not in printed.out + printed.err  # nothing reached the console


async def test_a_failed_cpu_task_keeps_the_tail_of_its_output() -> None:
    app = Flowrra(Config(executor=ExecutorConfig(cpu_workers=1, output_limit=2000)))
    app.task(cpu_bound=True, max_retries=0)(progress_tasks.chatter)
    async with app:
        record = await app.wait_for_result(await app.submit("chatter", 3000), timeout=60)
    assert record.status is TaskStatus.FAILED and record.error_type == "ValueError"
    output = record.output
    assert output is not None and len(output) <= 2000 and output.startswith("[flowrra: ")
    assert output.endswith("line 002999 " + "x" * 40 + "\n")


# ------------------------------------------------------- records and faces
def test_records_pickle_compactly_and_read_old_pickles() -> None:
    plain = TaskResult("a" * 32, TaskStatus.SUCCESS, "t", 1)
    assert len(plain.__reduce__()[1]) == 14  # no progress or output: the 0.2.0 shape
    old = _rebuild_result("b" * 32, "success", "t", 2, None, None, None, None, 0, (), {}, 0,
                          None, None)  # fmt: skip
    assert old.output is None and old.progress is None
    reported = TaskResult(
        "c" * 32, TaskStatus.RUNNING, "t", progress_done=3, progress_total=4,
        progress_message="three", output="out\n",
    )  # fmt: skip
    again = pickle.loads(pickle.dumps(reported))
    assert again == reported and again.progress == 0.75
    assert TaskResult.from_dict(reported.to_dict) == reported
    assert reported.to_dict["progress"] == 0.75 and reported.to_dict["output"] == "out\n"


async def test_results_frame_has_progress_and_output_columns(app: Flowrra) -> None:
    @app.task()
    async def reports(n: int) -> None:
        print(f"n={n}")
        progress(n, 4, f"{n} of 4")

    async with app:
        for n in (1, 3):
            await succeeded(app, await app.submit(reports, n))
        frame = await app.results_frame()
    empty = results_frame([])
    columns = list(frame.columns)
    at = columns.index("progress")
    assert columns[at : at + 3] == ["progress", "progress_message", "output"]
    assert (frame.dtypes == empty.dtypes).all() and str(frame["progress"].dtype) == "float64"
    assert sorted(frame["progress"]) == [0.25, 0.75]
    assert set(frame["progress_message"]) == {"1 of 4", "3 of 4"}
    assert set(frame["output"]) == {"n=1\n", "n=3\n"}


def test_table_rows_and_details_show_progress_and_output() -> None:
    record = TaskResult(
        "d" * 32, TaskStatus.RUNNING, "job", progress_done=21, progress_total=50,
        progress_message="<b>half</b>", output="some output\n",
    )  # fmt: skip
    row = row_from_record(record)
    assert row["progress"] == 0.42 and row["progress_message"] == "<b>half</b>"
    assert row_from_record(record.to_dict) == row
    detail = _detail(record.task_id, record)
    assert detail["output"] == "some output\n" and detail["progress_done"] == 21
    html = snapshot_html({"running": 1}, [row])
    assert "running 42%" in html and "<b>half" not in html
    assert record_row(record)["progress"] == 0.42
    assert record_detail(record)["output"] == "some output\n"


# -------------------------------------------------------------------- Redis
async def test_progress_and_output_on_redis(prefix: str, progressed: Progressed) -> None:
    app = progress_app.make_app(prefix, REDIS_URL, SECRET)
    app.events.subscribe(progressed)
    async with app, Gate() as gate:
        task_id = await app.submit("report", 500, gate.port)
        live = await progressed.until(task_id, lambda t: t["progress_done"] == 500)
        assert live["status"] == "running" and "report starts, attempt 1\n" in live["output"]
        await app.results_backend.drain()  # the RUNNING snapshot's write has gone out
        stored = await app.get_result(task_id)
        assert stored is not None and stored.status is TaskStatus.RUNNING
        assert stored.progress == 1.0 and stored.progress_message == "reporting"
        assert "WARNING:tests.report:report warns\n" in (stored.output or "")
        await gate.go()
        record = await succeeded(app, task_id)
        cpu = await succeeded(app, await app.submit("crunch", 10))
    reader = progress_app.make_app(prefix, REDIS_URL, SECRET)  # a fresh read from Redis
    again = await reader.get_result(task_id)
    await reader.results_backend.close()
    for final in (record, again):
        assert final is not None and final.progress_message == "reported"
        assert final.output == (
            "report starts, attempt 1\nWARNING:tests.report:report warns\nreport ends\n"
        )
    assert cpu.progress == 1.0 and "crunch to stderr\n" in (cpu.output or "")
    assert record.result["task_id"] == task_id and record.result["name"] == "report"
    assert cpu.result["attempt"] == 1 and cpu.result["options"]["cpu_bound"] is True


def start_worker(prefix: str) -> subprocess.Popen[str]:
    return test_redis.start_worker(prefix, app="tests.progress_app:app", secret=SECRET)


async def test_a_flowrra_worker_reports_progress_and_output(
    prefix: str, progressed: Progressed
) -> None:
    app = progress_app.make_app(prefix, REDIS_URL, SECRET)
    app.events.subscribe(progressed)
    worker = start_worker(prefix)
    try:
        await app.start(workers=False)
        async with Gate() as io_gate, Gate() as cpu_gate:
            io_id = await app.submit("report", 100, io_gate.port)
            cpu_id = await app.submit("crunch", 100, cpu_gate.port)
            for task_id, name in ((io_id, "report"), (cpu_id, "crunch")):
                live = await progressed.until(task_id, lambda t: t["progress_done"] == 100)
                assert live["status"] == "running" and live["progress"] == 1.0
                assert f"{name} starts, attempt 1\n" in live["output"]
            await io_gate.go()
            await cpu_gate.go()
            records = [await succeeded(app, io_id), await succeeded(app, cpu_id)]
        await app.stop()
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
        log, _ = worker.communicate(timeout=60)
    assert records[0].output == (
        "report starts, attempt 1\nWARNING:tests.report:report warns\nreport ends\n"
    )
    assert records[1].progress_message == "crunched" and "crunch ends\n" in (
        records[1].output or ""
    )
    assert records[0].result["task_id"] == io_id and records[0].result["pid"] == worker.pid
    assert records[1].result["task_id"] == cpu_id
    assert records[1].result["pid"] != worker.pid  # ran in the worker's pool
    assert "Received report" in log and "report starts" not in log and "crunch warns" not in log
