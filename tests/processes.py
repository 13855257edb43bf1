"""Counting and waiting on processes for the orphan tests (psutil; only our own)."""

from __future__ import annotations

import contextlib
import time

import psutil

GRACE = 5.0  # seconds a process may take to notice its parent died


def descendants(pid: int) -> list[psutil.Process]:
    """Every live process below ``pid``."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    """The ones of ``procs`` still running (a zombie has exited)."""
    left = []
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(proc)
    return left


def wait_gone(procs: list[psutil.Process], timeout: float = GRACE) -> list[psutil.Process]:
    """Wait up to ``timeout`` seconds for ``procs`` to exit; return those still running."""
    deadline = time.monotonic() + timeout
    left = alive(procs)
    while left and time.monotonic() < deadline:
        psutil.wait_procs(left, timeout=0.1)
        left = alive(left)
    return left


def describe(procs: list[psutil.Process]) -> str:
    """One line per process: pid, parent and command line (for failure messages)."""
    lines = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            lines.append(f"{proc.pid} (parent {proc.ppid()}): {' '.join(proc.cmdline())[:120]}")
    return "\n".join(lines)


def kill_all(procs: list[psutil.Process]) -> None:
    """SIGKILL whatever of ``procs`` is still running (tests' own processes only)."""
    for proc in alive(procs):
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(procs, timeout=5)


def wait_until(condition: object, timeout: float, what: str) -> None:
    """Poll ``condition()`` until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
