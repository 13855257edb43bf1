"""Tasks of the progress and output tests, importable by CPU worker processes and by the
``flowrra worker`` processes of the Redis tests (see ``tests/progress_app.py``).

A task that must stay running while a test looks at it waits at a gate: it connects to
a TCP port the test listens on and reads one byte (:func:`wait_for_go`), so nothing
sleeps to synchronise.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from typing import Any

from flowrra import current_task, progress


def wait_for_go(port: int) -> None:
    """Block until the test at ``port`` says go (one byte), at most a minute."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as conn:
        conn.recv(1)


def _about() -> dict[str, Any]:
    context = current_task()
    return {
        "task_id": context.task_id,
        "name": context.name,
        "attempt": context.attempt,
        "options": context.options,
        "pid": os.getpid(),
    }


def crunch(n: int, port: int | None = None) -> dict[str, Any]:
    """CPU: print, write to stderr, log a warning, report ``n`` steps, wait at the gate
    (if any), then report the end; return what ``current_task()`` said."""
    about = _about()
    print(f"crunch starts, attempt {about['attempt']}")
    print("crunch to stderr", file=sys.stderr)
    logging.getLogger("tests.crunch").warning("crunch warns")
    for i in range(n):
        progress(i + 1, n, "crunching")
    if port is not None:
        wait_for_go(port)
    progress(n, n, "crunched")
    print("crunch ends")
    return about


def chatter(lines: int) -> None:
    """CPU: print ``lines`` numbered lines, then fail."""
    for i in range(lines):
        print(f"line {i:06d} " + "x" * 40)
    raise ValueError("chatter failed after printing")


async def report(n: int, port: int | None = None) -> dict[str, Any]:
    """IO: print, log, report ``n`` steps, wait at the gate (if any, off the loop), then
    report the end."""
    about = _about()
    print(f"report starts, attempt {about['attempt']}")
    logging.getLogger("tests.report").warning("report warns")
    for i in range(n):
        progress(i + 1, n, "reporting")
    if port is not None:
        await asyncio.to_thread(wait_for_go, port)
    progress(n, n, "reported")
    print("report ends")
    return about
