"""The traceback stored on a failed record starts at the task's own code: flowrra's frames
(and asyncio's between them) that called the task are dropped, on the loop, in the process
pool and on a `flowrra worker`; an error flowrra raised itself keeps its whole text."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import flowrra
from flowrra import Config, ExecutorConfig, Flowrra, TaskStatus
from flowrra.config import ExecutorConfig as CheckedConfig
from flowrra.task import TaskResult

from . import cpu_tasks
from .test_redis import app_for, start_worker, stop_worker

HEADER = "Traceback (most recent call last):"
FLOWRRA_DIR = os.path.dirname(flowrra.__file__) + os.sep
HERE = os.path.abspath(__file__)


def helper(value: str) -> None:
    raise ValueError(f"bad {value}")


async def failing(value: str) -> None:
    helper(value)


async def chained() -> None:
    try:
        helper("inner")
    except ValueError as exc:
        raise KeyError("outer") from exc


async def bad_config() -> None:
    CheckedConfig(io_workers=-1)  # flowrra raises inside the task's own call


async def too_slow() -> None:
    import asyncio

    await asyncio.Event().wait()


@pytest.fixture
async def app() -> AsyncIterator[Flowrra]:
    application = Flowrra(Config(executor=ExecutorConfig(cpu_workers=1)))
    for func in (failing, chained, bad_config):
        application.task(max_retries=0)(func)
    application.task(max_retries=0, timeout=0.2)(too_slow)
    await application.start()
    yield application
    await application.stop(wait=False)


def sections(record: TaskResult) -> list[list[str]]:
    """The traceback of each exception in the record's chain, as lists of lines."""
    assert record.status is TaskStatus.FAILED and record.traceback, record
    found, current = [], None
    for line in record.traceback.splitlines():
        if line == HEADER:
            current = []
            found.append(current)
        elif current is not None:
            current.append(line)
    return found


def first_frame(lines: list[str]) -> str:
    return lines[0]


async def failed(app: Flowrra, task: object, *args: object) -> TaskResult:
    return await app.wait_for_result(await app.submit(task, *args), timeout=60)  # type: ignore[arg-type]


async def test_an_io_traceback_starts_at_the_task(app: Flowrra) -> None:
    record = await failed(app, failing, "input")
    assert record.traceback.startswith(f'{HEADER}\n  File "{HERE}", line ')
    (frames,) = sections(record)
    assert first_frame(frames).endswith(", in failing")
    assert any(", in helper" in line for line in frames)
    assert FLOWRRA_DIR not in record.traceback
    assert frames[-1] == "ValueError: bad input"


async def test_each_exception_of_a_chain_starts_at_the_task(app: Flowrra) -> None:
    record = await failed(app, chained)
    cause, error = sections(record)
    assert first_frame(cause).endswith(", in chained") and "ValueError: bad inner" in cause
    assert first_frame(error).endswith(", in chained") and "KeyError: 'outer'" in error
    assert FLOWRRA_DIR not in record.traceback


async def test_frames_the_task_called_keep_their_place(app: Flowrra) -> None:
    record = await failed(app, bad_config)
    (frames,) = sections(record)
    assert first_frame(frames).endswith(", in bad_config")
    assert any(f"{FLOWRRA_DIR}config.py" in line for line in frames[1:])  # flowrra, called


async def test_an_error_flowrra_raised_itself_keeps_its_whole_traceback(app: Flowrra) -> None:
    record = await failed(app, too_slow)
    assert record.error_type == "TimeoutError"
    cancelled, timed_out = sections(record)
    assert first_frame(cancelled).endswith(", in too_slow")  # the task's part is trimmed
    assert first_frame(timed_out).startswith(f'  File "{FLOWRRA_DIR}executors')  # kept whole


@pytest.mark.parametrize("start_method", ["forkserver", "spawn"])
async def test_a_cpu_traceback_starts_at_the_task(start_method: str) -> None:
    app = Flowrra(Config(executor=ExecutorConfig(cpu_workers=1, start_method=start_method)))
    app.task(cpu_bound=True, max_retries=0)(cpu_tasks.fail)
    async with app:
        record = await failed(app, cpu_tasks.fail, "in a worker")
    (frames,) = sections(record)
    assert first_frame(frames) == (
        f'  File "{os.path.abspath(cpu_tasks.__file__)}", line '
        f"{cpu_tasks.fail.__code__.co_firstlineno + 1}, in fail"
    )
    assert FLOWRRA_DIR not in record.traceback
    assert frames[-1] == "ValueError: in a worker"


async def test_tracebacks_from_a_flowrra_worker_start_at_the_task(prefix: str) -> None:
    from . import redis_app

    app = app_for(prefix)
    worker = start_worker(prefix)
    try:
        await app.start(workers=False)
        io = await failed(app, redis_app.nap, 1, "not seconds")  # asyncio.sleep refuses it
        cpu = await failed(app, redis_app.cube, "not a number")
        await app.stop()
    finally:
        log = stop_worker(worker)
    expected = os.path.abspath(redis_app.__file__)
    for record, name in ((io, "nap"), (cpu, "cube")):
        frames = sections(record)[-1]
        assert first_frame(frames).startswith(f'  File "{expected}", line '), (log, frames)
        assert first_frame(frames).endswith(f", in {name}")
        assert FLOWRRA_DIR not in record.traceback
        assert record.error_type == "TypeError"


@pytest.mark.parametrize("start_method", ["forkserver", "spawn"])
def test_a_function_sent_by_value_keeps_its_file_and_lines(
    tmp_path: Path, start_method: str
) -> None:
    """A CPU task defined in a script's ``__main__`` goes to the worker by value
    (cloudpickle, which would name its file ``<dynamic-code>``)."""
    script = tmp_path / "job.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import asyncio
            from flowrra import Config, ExecutorConfig, Flowrra

            app = Flowrra(Config(executor=ExecutorConfig(start_method={start_method!r})))

            def check(x):
                raise ValueError(f"bad {{x}}")

            @app.task(cpu_bound=True, max_retries=0)
            def crunch(x):
                check(x)

            async def main():
                async with app:
                    task_id = await app.submit(crunch, 1)
                    print((await app.wait_for_result(task_id, timeout=60)).traceback)

            if __name__ == "__main__":
                asyncio.run(main())
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    # Python 3.13 marks the failing expression with a line of ~ and ^: not a frame
    lines = [line for line in done.stdout.splitlines() if line.strip(" ~^") or not line]
    assert lines[:7] == [
        HEADER,
        f'  File "{script}", line 12, in crunch',
        "    check(x)",
        f'  File "{script}", line 8, in check',
        '    raise ValueError(f"bad {x}")',
        "ValueError: bad 1",
        "",
    ], done.stdout
