"""flowrra's runtime loop: one daemon thread running one asyncio event loop.

It sits below the app (design.md): :mod:`flowrra.home_loop` sends an app used inside a
kernel here, and the notebook face (magics, handles, the task table) calls in with
:func:`run_sync`. Code that must run when the loop starts inside a kernel (the notebook
face's watch over apps that re-run cells let go of) registers with
:func:`when_started_in_kernel`; this module names no face.

In a Jupyter kernel an app lives here (the pattern of dask's client), so its workers,
retries, scheduler and task table keep running while a cell blocks in plain sync code
and between cells. Async callers reach it through :mod:`flowrra.home_loop`; sync callers
(magics, ``TaskHandle.result()``) use :func:`run_sync`, which blocks on a
``concurrent.futures.Future``: Ctrl-C cancels the wait, never the task.

This module imports neither IPython nor ipykernel; :func:`in_kernel` looks at
``sys.modules`` only.

Usage::

    from flowrra.runtime import run_sync

    run_sync(app.start)                          # the app now lives on the runtime loop
    record = run_sync(app.wait_for_result, task_id, 10)
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = [
    "in_kernel",
    "in_runtime_thread",
    "post",
    "run_sync",
    "runtime_loop",
    "spawn",
    "submit",
    "wait",
    "when_started_in_kernel",
]

logger = logging.getLogger("flowrra.runtime")

R = TypeVar("R")
CoroutineFunction = Callable[..., Coroutine[Any, Any, R]]

THREAD_NAME = "flowrra-runtime"
_SLICE = 0.1  # seconds a blocked caller sleeps between looks for Ctrl-C

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_kernel_hooks: list[Callable[[], None]] = []


def when_started_in_kernel(hook: Callable[[], None]) -> None:
    """Call ``hook()`` whenever the runtime loop starts inside an IPython kernel (once
    per start; a failing hook is logged and never stops the loop)."""
    if hook not in _kernel_hooks:
        _kernel_hooks.append(hook)


def _forget_after_fork() -> None:
    """A forked child has the loop object but not its thread: start afresh if needed."""
    global _loop, _thread
    _loop = _thread = None


os.register_at_fork(after_in_child=_forget_after_fork)


async def _cancel_everything() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _shutdown() -> None:
    """At interpreter exit: cancel what still runs on the loop and stop it, quietly."""
    loop = _loop
    if loop is None or not loop.is_running() or in_runtime_thread():
        return
    with contextlib.suppress(Exception):  # exiting anyway
        asyncio.run_coroutine_threadsafe(_cancel_everything(), loop).result(2.0)
    loop.call_soon_threadsafe(loop.stop)
    if _thread is not None:
        _thread.join(2.0)


def _start_thread() -> asyncio.AbstractEventLoop:
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()

    thread = threading.Thread(target=run, name=THREAD_NAME, daemon=True)
    thread.start()
    ready.wait()
    atexit.register(_shutdown)
    global _loop, _thread
    _loop, _thread = loop, thread
    if in_kernel():
        for hook in _kernel_hooks:
            try:
                hook()
            except Exception:
                logger.exception("A runtime start-up hook failed")
    return loop


def runtime_loop() -> asyncio.AbstractEventLoop:
    """The runtime event loop, running on its daemon thread; started on first use."""
    loop = _loop
    if loop is not None and loop.is_running():
        return loop
    with _lock:
        if _loop is not None and _loop.is_running():
            return _loop
        return _start_thread()


def in_runtime_thread() -> bool:
    """True when the caller runs on the runtime loop's thread."""
    return _thread is not None and threading.current_thread() is _thread


def in_kernel() -> bool:
    """True inside a running IPython kernel (an ipykernel shell), without importing IPython."""
    if "ipykernel" not in sys.modules:
        return False
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    shell = get_ipython() if get_ipython is not None else None
    return getattr(shell, "kernel", None) is not None


async def _call(fn: CoroutineFunction[R], args: tuple[Any, ...]) -> R:
    return await fn(*args)


def submit(fn: CoroutineFunction[R], *args: Any) -> concurrent.futures.Future[R]:
    """Run ``fn(*args)`` on the runtime loop (it is called there); return its future."""
    return asyncio.run_coroutine_threadsafe(_call(fn, args), runtime_loop())


def run_sync(fn: CoroutineFunction[R], *args: Any, timeout: float | None = None) -> R:
    """Run ``fn(*args)`` on the runtime loop and block until it returns.

    Ctrl-C (``KeyboardInterrupt``) cancels this wait, and with it the coroutine ``fn``
    returned (a wait, a listing), then propagates; tasks that coroutine submitted go on.

    Raises:
        RuntimeError: called on the runtime thread itself, which it would block for ever.
        TimeoutError: ``timeout`` seconds passed first (the coroutine is cancelled).
    """
    if in_runtime_thread():
        raise RuntimeError(
            "This call blocks until the runtime loop answers, and it was made on the "
            "runtime loop's own thread: await the coroutine instead."
        )
    return wait(submit(fn, *args), timeout)


def wait(future: concurrent.futures.Future[R], timeout: float | None = None) -> R:
    """Block until ``future`` is done and return its result (or raise its error).

    Waits in short slices, so Ctrl-C is seen at once on every platform. Ctrl-C or the
    ``timeout`` running out cancels ``future`` (on the runtime loop: the wait it stands
    for) and propagates.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            left = _SLICE if deadline is None else min(_SLICE, deadline - time.monotonic())
            try:
                return future.result(max(left, 0.0))
            except TimeoutError:
                if future.done() or (deadline is not None and time.monotonic() >= deadline):
                    raise  # the coroutine's own TimeoutError, or ours
    except (KeyboardInterrupt, TimeoutError):
        future.cancel()
        raise


def _log_failure(future: concurrent.futures.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.error("flowrra runtime call failed", exc_info=future.exception())


def spawn(fn: CoroutineFunction[Any], *args: Any) -> concurrent.futures.Future[Any]:
    """Start ``fn(*args)`` on the runtime loop without waiting; failures are logged.

    For callbacks (widget messages) that must not block the thread they run on.
    """
    future = submit(fn, *args)
    future.add_done_callback(_log_failure)
    return future


def post(fn: Callable[..., Any], *args: Any) -> None:
    """Call the plain function ``fn(*args)`` soon on the runtime loop (thread-safe)."""
    runtime_loop().call_soon_threadsafe(fn, *args)
