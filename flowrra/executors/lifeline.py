"""A worker process's lifeline: it ends when the process that started it ends.

Kernels and ``flowrra worker`` processes die hard (SIGKILL, the OOM killer, a forced
kernel restart). A CPU worker must not outlive them, not even in the middle of a task,
so each worker holds two ties:

- ``PR_SET_PDEATHSIG`` (Linux): the operating system sends the worker SIGKILL when its
  parent goes. It needs no Python code to run in the worker, so it works while a task
  holds the GIL in C. The "parent" is the *thread* that started the process, so the
  pool starts every process from :func:`launch`'s one daemon thread, which lives as
  long as the process does.
- a watcher thread blocked in ``poll()`` on the worker's pipe to the pool: when the
  pool's end closes (its process died, or the pool was closed) the worker exits at once.
  This is what ties a forkserver's child to the pool's process, whose child it is not.

The forkserver gets the first tie too: :func:`arm_forkserver` adds
:mod:`flowrra.executors.forkserver_lifeline` to its preload modules, so it is killed
with the process that started it, and its children (the workers) with it.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import ctypes.util
import os
import queue
import select
import signal
import sys
import threading
from collections.abc import Callable
from multiprocessing.context import BaseContext
from typing import Any, TypeVar

__all__ = ["FORKSERVER_PRELOAD", "arm_forkserver", "die_with_parent", "launch", "watch_pipe"]

R = TypeVar("R")

#: The module the forkserver imports to tie itself to its parent.
FORKSERVER_PRELOAD = "flowrra.executors.forkserver_lifeline"

_PR_SET_PDEATHSIG = 1
_WATCH_EVENTS = getattr(select, "POLLRDHUP", 0) | getattr(select, "POLLHUP", 0)


def die_with_parent() -> bool:
    """Ask Linux to SIGKILL this process when its parent (thread) ends.

    Returns True when the tie is in place; False where the platform has none.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(fd: int) -> None:
    poller = select.poll()
    poller.register(fd, _WATCH_EVENTS)
    while True:
        try:
            events = poller.poll()
        except InterruptedError:  # pragma: no cover - PEP 475 retries already
            continue
        if any(mask & (_WATCH_EVENTS | select.POLLERR | select.POLLNVAL) for _, mask in events):
            os._exit(0)  # the pool is gone: nobody is left to take this worker's result


def watch_pipe(fd: int) -> threading.Thread | None:
    """Exit this process as soon as the other end of the pipe ``fd`` closes.

    A daemon thread blocks in ``poll()`` on ``fd`` for a hang-up only (never reading),
    so it costs nothing while the worker runs. Returns the thread, or None where
    ``poll()`` is missing (Windows).
    """
    if not hasattr(select, "poll"):
        return None
    thread = threading.Thread(target=_watch, args=(fd,), name="flowrra-lifeline", daemon=True)
    thread.start()
    return thread


def arm_forkserver(ctx: BaseContext) -> None:
    """Make the forkserver ``ctx`` starts tie itself to this process (see the module doc).

    Keeps the preload modules already chosen; has no effect on a forkserver that is
    already running (its workers are still tied by their pipes).
    """
    from multiprocessing import forkserver

    current = list(getattr(forkserver._forkserver, "_preload_modules", None) or ["__main__"])
    if FORKSERVER_PRELOAD not in current:
        ctx.set_forkserver_preload([*current, FORKSERVER_PRELOAD])


class _Launcher:
    """One daemon thread that runs every process start (so PDEATHSIG's parent lives on)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]]
        self._jobs = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, fn: Callable[[], R]) -> concurrent.futures.Future[R]:
        future: concurrent.futures.Future[R] = concurrent.futures.Future()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="flowrra-launcher", daemon=True
                )
                self._thread.start()
        self._jobs.put((fn, future))
        return future

    def _run(self) -> None:
        while True:
            fn, future = self._jobs.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)


_launcher = _Launcher()


def _forget_after_fork() -> None:
    global _launcher
    _launcher = _Launcher()


os.register_at_fork(after_in_child=_forget_after_fork)


def launch(fn: Callable[[], R]) -> concurrent.futures.Future[R]:
    """Run ``fn`` (which starts processes) on the launcher thread; return its future.

    The launcher is a daemon thread that never ends before the process does, so
    ``PR_SET_PDEATHSIG`` in the processes it starts fires only when this process ends.
    """
    return _launcher.submit(fn)
