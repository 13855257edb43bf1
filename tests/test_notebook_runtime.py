"""flowrra's runtime loop: one daemon thread; sync callers block on it, Ctrl-C stops only
the wait; inside a kernel an app without a home loop goes there."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import types

import pytest

from flowrra import Flowrra, runtime
from flowrra.home_loop import home_loop_of


async def _answer(value: int) -> int:
    await asyncio.sleep(0)
    return value


async def _fail() -> None:
    raise LookupError("nope")


def test_one_daemon_thread_runs_the_loop() -> None:
    loop = runtime.runtime_loop()
    assert runtime.runtime_loop() is loop and loop.is_running()
    assert runtime._thread is not None and runtime._thread.daemon
    assert runtime._thread.name == "flowrra-runtime"
    assert not runtime.in_runtime_thread()


def test_run_sync_returns_and_raises() -> None:
    assert runtime.run_sync(_answer, 42) == 42
    with pytest.raises(LookupError, match="nope"):
        runtime.run_sync(_fail)
    with pytest.raises(TimeoutError):
        runtime.run_sync(asyncio.sleep, 5, timeout=0.1)


def test_run_sync_on_the_runtime_thread_refuses_to_deadlock() -> None:
    async def nested() -> None:
        runtime.run_sync(_answer, 1)

    with pytest.raises(RuntimeError, match="await the coroutine instead"):
        runtime.run_sync(nested)


def test_ctrl_c_cancels_the_wait_and_nothing_else() -> None:
    cancelled = threading.Event()
    other = runtime.submit(asyncio.sleep, 0.5, "still here")

    async def long_wait() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        runtime.run_sync(long_wait)
    assert time.monotonic() - started < 1.0
    assert cancelled.wait(1.0)
    assert runtime.wait(other) == "still here"


def test_post_and_spawn_run_on_the_loop() -> None:
    seen: list[str] = []
    done = threading.Event()

    def note() -> None:
        seen.append(threading.current_thread().name)
        done.set()

    runtime.post(note)
    assert done.wait(1.0) and seen == ["flowrra-runtime"]
    assert runtime.spawn(_answer, 7).result(1.0) == 7


def test_not_in_a_kernel_here() -> None:
    assert runtime.in_kernel() is False
    assert home_loop_of(Flowrra()) is None


def test_in_a_kernel_an_app_lives_on_the_runtime_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = sys.modules.get("ipykernel") or types.ModuleType("ipykernel")
    monkeypatch.setitem(sys.modules, "ipykernel", fake)
    monkeypatch.setattr(runtime, "in_kernel", lambda: True)
    app = Flowrra()

    @app.task()
    async def double(x: int) -> int:
        return 2 * x

    assert home_loop_of(app) is runtime.runtime_loop()
    asyncio.run(app.start())  # "a cell": its loop ends, the app goes on
    assert app._home_loop is runtime.runtime_loop()

    async def next_cell() -> int:
        record = await app.wait_for_result(await app.submit(double, 21), timeout=5)
        return record.result

    try:
        assert asyncio.run(next_cell()) == 42
    finally:
        asyncio.run(app.stop())
    assert not app.is_running


def _run_script(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )


def test_outside_a_kernel_the_notebook_package_is_not_imported() -> None:
    done = _run_script("""
        import asyncio, sys
        from flowrra import Flowrra
        app = Flowrra()
        asyncio.run(app.start())
        print(sorted(m for m in sys.modules if m.startswith(("flowrra.notebook", "IPython"))))
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_exit_with_a_running_app_is_quiet() -> None:
    done = _run_script("""
        import asyncio
        from flowrra import Flowrra
        from flowrra import runtime
        app = Flowrra()
        @app.task()
        async def nap():
            await asyncio.sleep(60)
        runtime.run_sync(app.start)
        runtime.run_sync(app.submit, "nap")
        print("bye")
    """)
    assert done.returncode == 0 and done.stdout.strip() == "bye"
    assert "destroyed" not in done.stderr and "Error" not in done.stderr, done.stderr
