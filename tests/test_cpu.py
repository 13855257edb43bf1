"""CPU tasks in a real process pool, under spawn and forkserver: every kind of callable,
errors that come back whole, workers that die, timeouts, cancel and a clean stop."""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flowrra import Config, CPUExecutor, ExecutorConfig, Flowrra, TaskStatus
from flowrra.exceptions import SerializationError

from . import cpu_tasks

START_METHODS = ["forkserver", "spawn"]


@pytest.fixture(params=START_METHODS)
async def cpu_app(request: pytest.FixtureRequest) -> AsyncIterator[Flowrra]:
    app = Flowrra(
        Config(executor=ExecutorConfig(cpu_workers=2, retry_delay=0, start_method=request.param))
    )
    yield app
    await app.stop(wait=False)


async def wait_for_file(path: Path, timeout: float = 30.0) -> str:
    """Wait for a worker process to write ``path`` (an event from another process)."""
    async with asyncio.timeout(timeout):
        while not path.exists() or not path.read_text():
            await asyncio.sleep(0.01)
    return path.read_text()


async def result_of(app: Flowrra, task_id: str) -> object:
    record = await app.wait_for_result(task_id, timeout=60)
    assert record.status is TaskStatus.SUCCESS, (record.error_type, record.error)
    return record.result


async def test_every_kind_of_callable(cpu_app: Flowrra) -> None:
    offset = 10

    def closure(x: int) -> int:
        return x + offset

    cpu_app.task(cpu_bound=True)(cpu_tasks.square)
    cpu_app.task(cpu_bound=True)(closure)
    cpu_app.task(name="lam", cpu_bound=True)(lambda x: x - 1)
    cpu_app.task(name="partial", cpu_bound=True)(functools.partial(cpu_tasks.add, b=100))
    cpu_app.task(name="instance", cpu_bound=True)(cpu_tasks.Multiplier(3))
    async with cpu_app:
        assert await result_of(cpu_app, await cpu_app.submit(cpu_tasks.square, 7)) == 49
        assert await result_of(cpu_app, await cpu_app.submit(closure, 1)) == 11
        assert await result_of(cpu_app, await cpu_app.submit("lam", 1)) == 0
        assert await result_of(cpu_app, await cpu_app.submit("partial", 1)) == 101
        assert await result_of(cpu_app, await cpu_app.submit("instance", 5)) == 15

        def defined_after_start(x: int) -> str:  # the pool is already running
            return f"late {x}"

        cpu_app.task(cpu_bound=True)(defined_after_start)
        assert await result_of(cpu_app, await cpu_app.submit(defined_after_start, 2)) == "late 2"
        assert cpu_app.cpu_executor.pool.start_method in START_METHODS


async def test_tasks_run_in_parallel_on_cpu_workers(cpu_app: Flowrra, tmp_path: Path) -> None:
    cpu_app.task(cpu_bound=True, max_retries=0)(cpu_tasks.rendezvous)
    async with cpu_app:
        ids = await cpu_app.starmap(cpu_tasks.rendezvous, [(str(tmp_path), 2)] * 2)
        pids = {await result_of(cpu_app, i) for i in ids}
    assert len(pids) == 2 and os.getpid() not in pids


async def test_a_function_is_sent_once_per_worker(cpu_app: Flowrra) -> None:
    blob = bytes(1_000_000)

    def uses_blob(i: int) -> int:
        return len(blob) + i

    cpu_app.task(cpu_bound=True)(uses_blob)
    async with cpu_app:
        ids = await cpu_app.map(uses_blob, range(40))
        assert [await result_of(cpu_app, i) for i in ids] == [1_000_000 + i for i in range(40)]
    sent = cpu_app.cpu_executor.pool.bytes_sent
    assert 1_000_000 < sent < 2 * 1_000_000 + 100_000  # once per worker, not 40 times


async def test_errors_come_back_whole_and_the_worker_lives(cpu_app: Flowrra) -> None:
    for func in (cpu_tasks.fail, cpu_tasks.make_generator, cpu_tasks.pid):
        cpu_app.task(cpu_bound=True, max_retries=2)(func)
    cpu_app.task(cpu_bound=True, max_retries=2)(cpu_tasks.add)
    async with cpu_app:
        raised = await cpu_app.wait_for_result(await cpu_app.submit(cpu_tasks.fail, "bad input"))
        bad_arg = await cpu_app.wait_for_result(
            await cpu_app.submit(cpu_tasks.add, threading.Lock())
        )
        bad_result = await cpu_app.wait_for_result(await cpu_app.submit(cpu_tasks.make_generator))
        pids_before = set(cpu_app.cpu_executor.pool.pids)
        assert await result_of(cpu_app, await cpu_app.submit(cpu_tasks.add, 2, 3)) == 5
        assert set(cpu_app.cpu_executor.pool.pids) == pids_before  # no worker was lost
    assert raised.status is TaskStatus.FAILED and raised.retries == 2
    assert (raised.error_type, raised.error) == ("ValueError", "bad input")
    assert "in fail" in raised.traceback and "raise ValueError(message)" in raised.traceback
    for record, what in ((bad_arg, "arguments"), (bad_result, "result")):
        assert record.status is TaskStatus.FAILED and record.retries == 0  # not retried
        assert record.error_type == SerializationError.__name__
        assert what in record.error
    assert "lock" in bad_arg.error and "generator" in bad_result.error


@pytest.mark.parametrize("start_method", START_METHODS)
@pytest.mark.parametrize(
    ("how", "cause"),
    [("exit", "exited with code 3"), ("segfault", "SIGSEGV"), ("sigkill", "SIGKILL")],
)
async def test_a_task_that_kills_its_worker_fails_alone(
    how: str, cause: str, start_method: str
) -> None:
    app = Flowrra(Config(executor=ExecutorConfig(cpu_workers=2, start_method=start_method)))
    app.task(cpu_bound=True, max_retries=0)(cpu_tasks.die)
    app.task(cpu_bound=True)(cpu_tasks.square)
    async with app:
        others = await app.map(cpu_tasks.square, range(10))
        dead = await app.wait_for_result(await app.submit(cpu_tasks.die, how), timeout=60)
        more = await app.map(cpu_tasks.square, range(10, 20))
        results = [await result_of(app, i) for i in others + more]
        await app.cpu_executor.pool.settled()
        assert len(app.cpu_executor.pool.pids) == 2  # replaced
    assert dead.status is TaskStatus.FAILED and dead.error_type == "WorkerLostError"
    assert "died" in dead.error and cause in dead.error
    assert results == [i * i for i in range(20)]


async def test_a_worker_death_is_retried_per_policy(tmp_path: Path) -> None:
    app = Flowrra(Config(executor=ExecutorConfig(cpu_workers=1, retry_delay=0)))
    app.task(cpu_bound=True, max_retries=1)(cpu_tasks.die_once)
    async with app:
        record = await app.wait_for_result(
            await app.submit(cpu_tasks.die_once, str(tmp_path / "m")), timeout=60
        )
    assert record.status is TaskStatus.SUCCESS and record.result == "survived"
    assert record.retries == 1


async def test_timeout_and_cancel_kill_the_worker(cpu_app: Flowrra, tmp_path: Path) -> None:
    cpu_app.task(cpu_bound=True, max_retries=0)(cpu_tasks.announce_then_sleep)
    cpu_app.task(cpu_bound=True)(cpu_tasks.square)
    async with cpu_app:
        slow = await cpu_app.apply(
            cpu_tasks.announce_then_sleep, (str(tmp_path / "a"), 60), timeout=1.0
        )
        timed_out = await cpu_app.wait_for_result(slow, timeout=60)
        first_pid = int(await wait_for_file(tmp_path / "a"))
        running = await cpu_app.submit(cpu_tasks.announce_then_sleep, str(tmp_path / "b"), 60)
        second_pid = int(await wait_for_file(tmp_path / "b"))
        assert await cpu_app.cancel(running) is True
        cancelled = await cpu_app.get_result(running)
        assert await result_of(cpu_app, await cpu_app.submit(cpu_tasks.square, 9)) == 81
        await cpu_app.cpu_executor.pool.settled()
        live = cpu_app.cpu_executor.pool.pids
    assert timed_out.status is TaskStatus.FAILED and timed_out.error_type == "TimeoutError"
    assert "exceeded its timeout of 1.0s" in timed_out.error
    assert cancelled is not None and cancelled.status is TaskStatus.CANCELLED
    assert first_pid not in live and second_pid not in live and len(live) == 2


async def test_stop_leaves_no_worker_process(cpu_app: Flowrra, tmp_path: Path) -> None:
    cpu_app.task(cpu_bound=True)(cpu_tasks.announce_then_sleep)
    async with cpu_app:
        busy = await cpu_app.submit(cpu_tasks.announce_then_sleep, str(tmp_path / "m"), 60)
        pid = int(await wait_for_file(tmp_path / "m"))
        pids = cpu_app.cpu_executor.pool.pids
        await cpu_app.stop(wait=False)
    assert (await cpu_app.get_result(busy)).status is TaskStatus.CANCELLED
    assert multiprocessing.active_children() == []
    for worker in [*pids, pid]:
        assert not Path(f"/proc/{worker}").exists() or _is_zombie_free(worker)


def _is_zombie_free(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    return "State:\tZ" not in status and pid not in _children()


def _children() -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        found.update(int(p) for p in (task / "children").read_text().split())
    return found


async def test_cpu_executor_alone_needs_no_backend() -> None:
    executor = CPUExecutor(Config(executor=ExecutorConfig(cpu_workers=1)))
    executor.task()(cpu_tasks.square)
    async with executor:
        record = await executor.wait_for_result(await executor.submit(cpu_tasks.square, 4), 60)
    assert record.result == 16


@pytest.mark.parametrize("start_method", START_METHODS)
def test_a_function_defined_in_a_script_main(tmp_path: Path, start_method: str) -> None:
    script = tmp_path / "job.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import asyncio
            from flowrra import Config, ExecutorConfig, Flowrra

            app = Flowrra(Config(executor=ExecutorConfig(start_method={start_method!r})))
            FACTOR = 7

            @app.task(cpu_bound=True)
            def scaled(x):
                return x * FACTOR

            async def main():
                async with app:
                    ids = await app.map(scaled, range(4))
                    print([(await app.wait_for_result(i, timeout=60)).result for i in ids])

            if __name__ == "__main__":
                asyncio.run(main())
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[0, 7, 14, 21]"


async def test_cpu_tasks_run_when_main_was_replaced_by_an_embedding_tool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """IPython's InteractiveShell in a plain process puts a module without ``__spec__``
    at ``sys.modules['__main__']``; multiprocessing then failed every worker start with
    AttributeError (seen when the suite ran CPU tasks after the in-process magics tests)."""

    class EmbeddedMain:  # what an embedding tool may leave as __main__: no __spec__
        __name__ = "__main__"

    monkeypatch.setitem(sys.modules, "__main__", EmbeddedMain())
    app = Flowrra(Config(executor=ExecutorConfig(cpu_workers=1, start_method="spawn")))
    app.task(cpu_bound=True)(cpu_tasks.square)
    async with app:
        record = await app.wait_for_result(await app.submit(cpu_tasks.square, 7), timeout=60)
    assert record.status is TaskStatus.SUCCESS and record.result == 49


def test_settled_returns_when_a_replacement_finished_a_moment_ago(tmp_path: Path) -> None:
    """A replacement worker's start that has just finished stays in the pool's set until
    its done callback runs on the next turn of the loop. On Python 3.12+ a gather of
    finished tasks returns without yielding, so ``settled()`` looped on it for ever (a CI
    run hung there). Run in a process of its own so that a hang fails the test."""
    script = tmp_path / "settle.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio
            from flowrra.executors.pool import ProcessPool

            async def started() -> None:
                pass

            async def main() -> None:
                pool = ProcessPool(1, "spawn")
                # as pool._replace registers a start; it finishes on the next turn, and
                # its done callback runs one turn after that
                task = asyncio.get_running_loop().create_task(started())
                pool._spawning.add(task)
                task.add_done_callback(pool._spawning.discard)
                await asyncio.sleep(0)  # wake right after the task finished
                assert task.done() and task in pool._spawning
                await pool.settled()
                await pool.close()
                print("settled")

            asyncio.run(main())
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=30, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "settled"
