"""Module-level functions for the CPU tests (importable by worker processes)."""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time
from pathlib import Path


def square(x: int) -> int:
    return x * x


def add(a: int, b: int = 0) -> int:
    return a + b


def rendezvous(folder: str, parties: int, timeout: float = 20.0) -> int:
    """Mark this worker arrived and wait until ``parties`` workers have: only tasks that
    run at the same time can all return."""
    Path(folder, str(os.getpid())).touch()
    deadline = time.monotonic() + timeout
    while len(os.listdir(folder)) < parties:
        if time.monotonic() > deadline:
            raise TimeoutError("the other tasks never ran alongside this one")
        time.sleep(0.005)
    return os.getpid()


def fail(message: str) -> None:
    raise ValueError(message)


def make_generator() -> object:
    return (i for i in range(3))


def die(how: str) -> None:
    if how == "exit":
        os._exit(3)
    if how == "segfault":
        ctypes.string_at(0)
    if how == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)


def die_once(marker: str) -> str:
    if not os.path.exists(marker):
        Path(marker).touch()
        os._exit(5)
    return "survived"


def announce_then_sleep(marker: str, seconds: float) -> int:
    Path(marker).write_text(str(os.getpid()))
    time.sleep(seconds)
    return os.getpid()


def pid() -> int:
    return os.getpid()


def new_lock() -> object:
    return threading.Lock()


class Multiplier:
    def __init__(self, factor: int) -> None:
        self.factor = factor

    def __call__(self, x: int) -> int:
        return x * self.factor
