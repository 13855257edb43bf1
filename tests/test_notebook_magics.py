"""The %flowrra magics in a real IPython InteractiveShell (``run_cell`` that raises)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import comm
import pytest
from comm.base_comm import BaseComm
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from flowrra import Flowrra, runtime
from flowrra.exceptions import (
    ExecutorNotRunningError,
    FlowrraError,
    TaskCancelledError,
    TaskFailedError,
    TaskNotFoundError,
)
from flowrra.notebook import TaskHandle, TaskHandles, TaskTable
from flowrra.notebook.magics import FlowrraMagics, split_arguments
from flowrra.notebook.progress import WaitProgress
from flowrra.task import TaskResult, TaskStatus

SETUP = """
import asyncio
from flowrra import Config, ExecutorConfig, Flowrra
app = Flowrra(Config(executor=ExecutorConfig(io_workers=4)))

@app.task()
async def add(a, b=0):
    return a + b

@app.task(max_retries=0)
async def boom():
    raise ValueError("boom")

@app.task()
async def slow(seconds=30):
    await asyncio.sleep(seconds)
    return seconds
"""


class QuietComm(BaseComm):
    def publish_msg(self, *args: Any, **kwargs: Any) -> None:
        pass


@pytest.fixture
def shell(monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    """The shell with the extension loaded and an app started; both undone after."""
    monkeypatch.setattr(comm, "create_comm", QuietComm)
    monkeypatch.delenv("FLOWRRA_NONINTERACTIVE", raising=False)
    ip = InteractiveShell.instance()
    ip.config.pop("FlowrraMagics", None)  # values an earlier test may have left
    ip.run_line_magic("load_ext", "flowrra")
    cell(ip, SETUP)
    cell(ip, "%flowrra start")
    yield ip
    app = ip.user_ns.get("app")
    if isinstance(app, Flowrra):
        runtime.run_sync(app.stop, False)
    unload(ip)
    ip.config.pop("FlowrraMagics", None)
    ip.reset()


def unload(ip: InteractiveShell) -> None:
    """``%unload_ext flowrra``, without the message that flowrra has no unload hook."""
    from flowrra.notebook import unload_ipython_extension

    unload_ipython_extension(ip)
    ip.extension_manager.loaded.discard("flowrra")


def cell(ip: InteractiveShell, source: str) -> Any:
    result = ip.run_cell(source)
    result.raise_error()
    return result.result


def magics(ip: InteractiveShell) -> FlowrraMagics:
    return next(c for c in ip.configurables if isinstance(c, FlowrraMagics))


def test_load_ext_does_not_need_ipython_at_import() -> None:
    import flowrra

    assert callable(flowrra.load_ipython_extension)
    assert "load_ipython_extension" not in flowrra.__all__


def test_submit_returns_a_handle(shell: InteractiveShell) -> None:
    handle = cell(shell, "%flowrra submit add 1 b=[2][0]")
    assert isinstance(handle, TaskHandle) and handle.result(5) == 3
    assert handle.status == "success"
    assert repr(handle).startswith(f"<TaskHandle add {handle.task_id[:8]} success")
    assert "SUCCESS" in handle._repr_html_()
    cell(shell, "%flowrra submit 'add' [1, 2] [3] --priority 2 -o h2")
    assert shell.user_ns["h2"].result(5) == [1, 2, 3]
    assert cell(shell, "await h2") == [1, 2, 3]


def test_map_and_wait(shell: InteractiveShell, capsys: pytest.CaptureFixture) -> None:
    handles = cell(shell, "%flowrra map add range(5) -o hs")
    assert isinstance(handles, TaskHandles) and len(handles) == 5
    capsys.readouterr()
    cell(shell, "%flowrra wait hs")
    assert "5/5 done (5 success)" in capsys.readouterr().out
    assert handles.results() == [0, 1, 2, 3, 4]
    assert handles.statuses() == {"success": 5}
    assert repr(handles) == "<TaskHandles 5 task(s): 5 success>"


def test_failed_and_cancelled_handles_raise(shell: InteractiveShell) -> None:
    failed = cell(shell, "%flowrra submit boom")
    with pytest.raises(TaskFailedError, match="ValueError: boom") as info:
        failed.result(5)
    assert "raise ValueError" in info.value.remote_traceback
    assert "ValueError: boom" in failed._repr_html_()
    slow = cell(shell, "%flowrra submit slow")
    cell(shell, f"%flowrra cancel {slow.task_id}")
    with pytest.raises(TaskCancelledError):
        slow.result(5)
    assert slow.cancel() is False  # already over


class CtrlC:
    """Presses Ctrl-C (SIGINT to this process) until one has interrupted the block.

    One KeyboardInterrupt is raised per block: a press that lands after it (a slow
    machine between the interrupt and the end of the block) is ignored, so it cannot
    interrupt pytest itself. A KeyboardInterrupt swallowed where Python cannot raise
    (a garbage-collector callback reports it to ``sys.unraisablehook``) is pressed again
    0.3 s later."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._fired = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._previous: Any = None
        self._unraisable: Any = None

    def _run(self) -> None:
        while not self._stop.wait(0.3):
            if not self._fired.is_set():
                os.kill(os.getpid(), signal.SIGINT)

    def _press(self, signum: int, frame: object) -> None:
        if not self._fired.is_set():
            self._fired.set()
            raise KeyboardInterrupt

    def _swallowed(self, unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            self._fired.clear()  # it did not reach the block: press again
        else:
            self._unraisable(unraisable)

    def __enter__(self) -> CtrlC:
        self._previous = signal.signal(signal.SIGINT, self._press)
        self._unraisable, sys.unraisablehook = sys.unraisablehook, self._swallowed
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        signal.signal(signal.SIGINT, self._previous)
        sys.unraisablehook = self._unraisable


def test_wait_timeout_and_ctrl_c_stop_the_wait_not_the_task(shell: InteractiveShell) -> None:
    cell(shell, "h = %flowrra submit slow 5")
    handle = shell.user_ns["h"]
    with pytest.raises(TimeoutError):
        cell(shell, "%flowrra wait h --timeout 0.2")
    started = time.monotonic()
    with CtrlC(), pytest.raises(KeyboardInterrupt):
        handle.result()
    assert time.monotonic() - started < 3, time.monotonic() - started
    assert handle.status == "running"  # the task goes on
    with CtrlC(), pytest.raises(KeyboardInterrupt):
        cell(shell, "%flowrra wait h")
    assert handle.status == "running"
    assert handle.result(10) == 5


def test_results_and_status(shell: InteractiveShell, capsys: pytest.CaptureFixture) -> None:
    for i in range(3):
        cell(shell, f"%flowrra submit add {i}").result(5)
    frame = cell(shell, "%flowrra results")
    assert len(frame) == 3 and set(frame["status"]) == {"success"}
    assert len(cell(shell, "%flowrra results --status failed --limit 1")) == 0
    assert len(cell(shell, "%flowrra results --task add --limit 2")) == 2
    table = cell(shell, "%flowrra status")
    assert isinstance(table, TaskTable) and table.counts["success"] == 3
    again = cell(shell, "%flowrra status")  # replaces the first table
    assert table._feed.closed and not again._feed.closed
    again.close()
    capsys.readouterr()
    cell(shell, "%flowrra status --text")
    out = capsys.readouterr().out
    assert "success 3" in out and "STATUS" in out


def test_noninteractive_prints_text(
    shell: InteractiveShell, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    cell(shell, "%config FlowrraMagics.noninteractive = True")
    assert cell(shell, "%flowrra status") is None
    assert "pending 0" in capsys.readouterr().out
    unload(shell)
    monkeypatch.setenv("FLOWRRA_NONINTERACTIVE", "1")
    shell.config.FlowrraMagics.pop("noninteractive", None)
    shell.run_line_magic("load_ext", "flowrra")
    assert magics(shell).noninteractive is True
    assert cell(shell, "%flowrra doctor") is None
    assert "[✓] asyncio" in capsys.readouterr().out


def test_config_lists_and_validates_options(
    shell: InteractiveShell, capsys: pytest.CaptureFixture
) -> None:
    cell(shell, "%config FlowrraMagics")
    out = capsys.readouterr().out
    for option in ("refresh_hz", "max_rows", "noninteractive", "default_executor"):
        assert f"FlowrraMagics.{option}" in out
    cell(shell, "%config FlowrraMagics.refresh_hz = 5")
    assert magics(shell).refresh_hz == 5
    shell.run_line_magic("config", "FlowrraMagics.refresh_hz = 0")
    assert magics(shell).refresh_hz == 5  # refused
    shell.run_line_magic("config", "FlowrraMagics.default_executor = 'gpu'")
    assert magics(shell).default_executor == "auto"


def test_usage_errors_list_the_valid_choices(shell: InteractiveShell) -> None:
    with pytest.raises(UsageError, match=r"(?s)Valid subcommands.*submit"):
        cell(shell, "%flowrra nope")
    with pytest.raises(UsageError, match="Valid subcommands"):
        cell(shell, "%flowrra")
    with pytest.raises(UsageError, match=r"unrecognized arguments: --bogus(.|\n)*--limit"):
        cell(shell, "%flowrra results --bogus")
    with pytest.raises(UsageError, match=r"invalid choice: 'maybe'(.|\n)*--status"):
        cell(shell, "%flowrra results --status maybe")
    with pytest.raises(UsageError, match=r"invalid number > 0 value: '-1'"):
        cell(shell, "%flowrra wait --timeout -1")
    with pytest.raises(UsageError, match="one of the arguments --cron --every --at"):
        cell(shell, "%flowrra schedule add")
    with pytest.raises(UsageError, match="Cannot read the arguments"):
        cell(shell, "%flowrra submit add [1")


def test_help_prints_and_returns(shell: InteractiveShell, capsys: pytest.CaptureFixture) -> None:
    assert cell(shell, "%flowrra submit -h") is None
    assert "--priority" in capsys.readouterr().out


def test_schedules_need_a_scheduler(shell: InteractiveShell) -> None:
    with pytest.raises(FlowrraError, match="no scheduler"):
        cell(shell, "%flowrra schedules")


def test_schedule_calls_the_scheduler(shell: InteractiveShell) -> None:
    calls: list[tuple] = []

    class FakeScheduler:
        async def schedule_cron(self, name: str, cron: str, args: list) -> str:
            calls.append(("cron", name, cron, args))
            return "s1"

        async def schedule_interval(
            self, name: str, every: float, args: list, kwargs: dict | None = None
        ) -> str:
            calls.append(("every", name, every, args, kwargs))
            return "s2"

        async def schedule_once(self, name: str, at: Any, args: list) -> str:
            calls.append(("once", name, at.isoformat(), args))
            return "s3"

        async def schedules_frame(self) -> str:
            return "frame"

    shell.user_ns["app"]._scheduler = FakeScheduler()
    try:
        assert cell(shell, '%flowrra schedule add --cron "*/5 * * * *" 1 2') == "s1"
        assert cell(shell, "%flowrra schedule add --every 90 [1] b=[2]") == "s2"
        assert cell(shell, "%flowrra schedule add --at 2030-01-31T09:00+00:00 7") == "s3"
        assert cell(shell, "%flowrra schedules") == "frame"
        with pytest.raises(UsageError, match="ISO"):
            cell(shell, "%flowrra schedule add --at tomorrow")
    finally:
        shell.user_ns["app"]._scheduler = None
    assert calls == [
        ("cron", "add", "*/5 * * * *", [1, 2]),
        ("every", "add", 90.0, [[1]], {"b": [2]}),
        ("once", "add", "2030-01-31T09:00:00+00:00", [7]),
    ]


def test_task_cell_registers_the_function(shell: InteractiveShell) -> None:
    cell(shell, "%%flowrra task --name twice --retries 2\nasync def double(x):\n    return 2 * x\n")
    spec = shell.user_ns["app"].registry.spec("twice")
    assert spec.max_retries == 2 and not spec.cpu_bound
    assert cell(shell, "%flowrra submit twice 21").result(5) == 42
    cell(shell, "%%flowrra task --name twice\nasync def double(x):\n    return 3 * x\n")
    assert cell(shell, "%flowrra submit twice 1").result(5) == 3  # re-run replaces
    cell(
        shell,
        "%%flowrra task --timeout 9\ndef helper():\n    pass\ndef cube(x):\n    return x**3\n",
    )
    assert shell.user_ns["app"].registry.spec("cube").cpu_bound  # def: cpu by default
    with pytest.raises(UsageError, match="defines no function"):
        cell(shell, "%%flowrra task\nx = 1\n")
    with pytest.raises(UsageError, match="not allowed with argument"):
        cell(shell, "%%flowrra task --cpu --io\ndef f():\n    pass\n")


def test_use_picks_the_app(shell: InteractiveShell, capsys: pytest.CaptureFixture) -> None:
    first = shell.user_ns["app"]
    cell(shell, "other = Flowrra()")
    assert magics(shell).current_app() is shell.user_ns["other"]  # the newest
    cell(shell, "%flowrra use app")
    assert magics(shell).current_app() is first
    with pytest.raises(UsageError, match="not a Flowrra app"):
        cell(shell, "%flowrra use asyncio")


def test_no_app_is_a_clear_error() -> None:
    code = (
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "shell = InteractiveShell.instance()\n"
        "shell.run_line_magic('load_ext', 'flowrra')\n"
        "try:\n"
        "    shell.run_line_magic('flowrra', 'status')\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "FlowrraError No Flowrra app" in done.stdout, done.stdout + done.stderr


def test_doctor_reports(shell: InteractiveShell) -> None:
    cell(shell, "from flowrra import ExecutorConfig")
    cell(shell, "app2 = Flowrra(Config(executor=ExecutorConfig(start_method='fork')))")
    cell(shell, "app2.task(cpu_bound=True)(lambda x: x)")
    report = cell(shell, "%flowrra doctor")
    checks = {c.name: c for c in report.checks}
    assert checks["start method"].level == "fail" and "forkserver" in checks["start method"].fix
    assert checks["shipping"].level == "warn" and "<lambda>" in checks["shipping"].message
    assert checks["asyncio"].level == "ok" and checks["ipykernel"].level == "ok"
    assert checks["widgets"].level == "ok"
    assert not report.ok and "<table" in report._repr_html_()


def test_doctor_checks_services(shell: InteractiveShell) -> None:
    from flowrra import BackendConfig, Config
    from flowrra.notebook.doctor import check_services

    app = Flowrra.__new__(Flowrra)
    app._config = Config(backend=BackendConfig(url="redis://:secret@127.0.0.1:1/0"))
    (check,) = check_services(app)
    assert check.name == "backend" and check.level == "fail"
    assert "127.0.0.1:1" in check.message and "secret" not in check.message


def test_app_repr_html_hides_passwords(shell: InteractiveShell) -> None:
    app = shell.user_ns["app"]
    cell(shell, "%flowrra submit add 1").result(5)
    page = app._repr_html_()
    assert "running" in page and "io 4, cpu 2" in page and "success 1" in page
    assert "queued" in page and "in memory" in page
    from flowrra import BackendConfig, Config

    other = Flowrra(Config(backend=BackendConfig(url="memory://")))
    other._config = Config(backend=BackendConfig(url="redis://user:hunter2@host:6379/1"))
    page = other._repr_html_()
    assert "hunter2" not in page and "redis://user:***@host:6379/1" in page


def test_asyncio_stays_unpatched(shell: InteractiveShell) -> None:
    cell(shell, "%flowrra map add range(3)").results(5)
    cell(shell, "%flowrra status --text")
    assert asyncio.Task is asyncio.tasks._CTask


def test_split_arguments() -> None:
    assert split_arguments("submit f [1, 2] {'a': (3, 4)} 'x y' -o h") == [
        "submit",
        "f",
        "[1, 2]",
        "{'a': (3, 4)}",
        "'x y'",
        "-o",
        "h",
    ]
    assert split_arguments("map g range(10) --priority -2") == [
        "map",
        "g",
        "range(10)",
        "--priority",
        "-2",
    ]
    assert split_arguments("wait --retry-delay 1e-3 x=f(1, y=2)") == [
        "wait",
        "--retry-delay",
        "1e-3",
        "x=f(1, y=2)",
    ]


def shown(ip: InteractiveShell, capsys: pytest.CaptureFixture, source: str) -> str:
    """What the shell prints for a cell that fails, stdout and stderr together."""
    capsys.readouterr()
    result = ip.run_cell(source)
    assert result.error_in_exec is not None, source
    captured = capsys.readouterr()
    return captured.out + captured.err


def one_line(text: str, start: str) -> str:
    """The text is one line starting with ``start``: no traceback through flowrra."""
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(start), text
    assert "Traceback" not in text and "magics.py" not in text
    return lines[0]


def test_an_unregistered_task_is_one_line_listing_the_tasks(
    shell: InteractiveShell, capsys: pytest.CaptureFixture
) -> None:
    for source in (
        "%flowrra submit nosuchtask 1",
        "%flowrra submit 'nosuchtask'",
        "%flowrra map nosuchtask range(3)",
        "%flowrra submit asyncio.sleep 1",  # a function, not a task of this app
    ):
        line = one_line(shown(shell, capsys, source), "TaskNotFoundError: Task ")
        assert "is not registered" in line and "(registered: add, boom, slow)" in line
        assert "@app.task()" in line
    with pytest.raises(TaskNotFoundError):  # the type is kept: except works
        cell(shell, "%flowrra submit nosuchtask")


def test_flowrra_errors_from_the_magics_are_one_line(
    shell: InteractiveShell, capsys: pytest.CaptureFixture
) -> None:
    line = one_line(shown(shell, capsys, "%flowrra schedules"), "FlowrraError: ")
    assert "app.create_scheduler()" in line
    assert shown(shell, capsys, "%flowrra submit add 1 nosuchname") == (
        "NameError: name 'nosuchname' is not defined\n(in the %flowrra argument 'nosuchname')\n"
    )


def test_not_running_says_flowrra_start(
    shell: InteractiveShell, capsys: pytest.CaptureFixture
) -> None:
    cell(shell, "%flowrra stop")
    for source in ("%flowrra submit add 1", "%flowrra map add [1, 2]"):
        line = one_line(shown(shell, capsys, source), "ExecutorNotRunningError: ")
        assert "%flowrra start" in line
    with pytest.raises(ExecutorNotRunningError):
        cell(shell, "%flowrra submit add 1")


def test_a_missing_argument_is_a_type_error_at_once(
    shell: InteractiveShell, capsys: pytest.CaptureFixture
) -> None:
    line = one_line(shown(shell, capsys, "%flowrra submit add"), "TypeError: ")
    assert "'a'" in line
    assert cell(shell, "%flowrra results")["task_name"].tolist() == []  # nothing submitted
    with pytest.raises(TypeError):
        cell(shell, "%flowrra map boom [1, 2]")  # boom takes no argument


def test_cancel_and_wait_name_an_unknown_id(
    shell: InteractiveShell, capsys: pytest.CaptureFixture
) -> None:
    line = one_line(shown(shell, capsys, "%flowrra cancel nosuchid"), "UnknownTaskIdError: ")
    assert "Unknown task id 'nosuchid'" in line and "no variable of that name" in line
    handle = cell(shell, "%flowrra submit add 1")
    handle.result(5)
    text = shown(shell, capsys, f"%flowrra cancel {handle.task_id} 'f00d'")
    assert "Unknown task id 'f00d'" in one_line(text, "UnknownTaskIdError: ")
    text = shown(shell, capsys, "%flowrra wait nosuchvar")
    assert "Unknown task id 'nosuchvar'" in one_line(text, "UnknownTaskIdError: ")
    assert "IntProgress" not in text  # it failed before drawing a progress bar
    cell(shell, f"%flowrra cancel {handle.task_id}")
    assert "not cancelled (already finished)" in capsys.readouterr().out


def test_help_lists_the_subcommands(shell: InteractiveShell, capsys: pytest.CaptureFixture) -> None:
    for source in ("%flowrra -h", "%flowrra --help"):
        assert cell(shell, source) is None
        out = capsys.readouterr().out
        assert "Valid subcommands of %flowrra" in out
        for name in ("start", "submit", "wait", "cancel", "doctor"):
            assert f"\n  {name} " in out


def test_a_second_start_or_stop_says_so(
    shell: InteractiveShell, capsys: pytest.CaptureFixture
) -> None:
    capsys.readouterr()
    cell(shell, "%flowrra start")
    assert "flowrra app already started" in capsys.readouterr().out
    cell(shell, "%flowrra stop")
    assert capsys.readouterr().out == "flowrra app stopped\n"
    cell(shell, "%flowrra stop")
    assert "flowrra app already stopped" in capsys.readouterr().out
    cell(shell, "%flowrra start")
    assert "flowrra app started" in capsys.readouterr().out


def test_the_wait_bar_says_done(shell: InteractiveShell) -> None:
    progress = WaitProgress(2, text=False)
    assert progress.description == "waiting"
    for value in (1, 2):
        progress.update(TaskResult(str(value), TaskStatus.SUCCESS))
    progress.finish()
    assert progress.description == "done" and progress._bar.bar_style == "success"
    stopped = WaitProgress(2, text=False)
    stopped.interrupted()
    assert stopped.description == "stopped"
