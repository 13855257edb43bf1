"""Helpers shared by the scheduler tests: backends per kind in a table prefix of their
own, a clock that can jump, a submit function that records, and bounded waits."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from flowrra.clock import utcnow
from flowrra.scheduler.backends import get_scheduler_backend
from flowrra.scheduler.backends.base import SQLSchedulerBackend

from .services import MYSQL_URL, POSTGRES_URL, require_mysql, require_postgres

KINDS = ("sqlite", "postgresql", "mysql")


def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}_"


def backend_url(kind: str, tmp_path: Path, prefix: str) -> str:
    """A URL of ``kind`` with its own table prefix (skips when the service is down)."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'schedule.db'}?table_prefix={prefix}"
    if kind == "postgresql":
        require_postgres()
        return f"{POSTGRES_URL}?table_prefix={prefix}"
    require_mysql()
    return f"{MYSQL_URL}?table_prefix={prefix}"


def make_backend(url: str) -> SQLSchedulerBackend:
    backend = get_scheduler_backend(url)
    assert isinstance(backend, SQLSchedulerBackend)
    return backend


async def drop(url: str) -> None:
    """Remove the tables of ``url`` (a fresh backend, so it works after any close)."""
    backend = make_backend(url)
    try:
        await backend.drop_tables()
    finally:
        await backend.close()


class PerKindDatabase:
    """A base for contract test classes run once per database: subclasses set ``kind``
    (sqlite, postgresql or mysql) and get a ``url`` fixture with a table prefix of its
    own, whose tables are dropped afterwards."""

    kind = ""

    @pytest.fixture
    async def url(self, tmp_path: Path) -> AsyncIterator[str]:
        url = backend_url(self.kind, tmp_path, unique_prefix())
        yield url
        await drop(url)


class Clock:
    """The real clock plus an offset that tests move forward (a jump in time)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return utcnow() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


class Recorder:
    """A scheduler submit function that records each call and can be waited on."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self._changed = asyncio.Event()

    async def __call__(self, task_name: str, args: tuple, kwargs: dict, **options: Any) -> str:
        task_id = f"task-{len(self.calls)}"
        self.calls.append(
            {"task_name": task_name, "args": args, "kwargs": kwargs, "at": utcnow(), **options}
        )
        self._changed.set()
        return task_id

    def args_of(self) -> list[tuple]:
        return [call["args"] for call in self.calls]

    async def wait_for(self, count: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.calls) < count:
                self._changed.clear()
                await self._changed.wait()


async def wait_until(
    condition: Callable[[], Awaitable[bool]], timeout: float = 5.0, step: float = 0.02
) -> None:
    """Wait until ``condition()`` is true (checked every ``step``), at most ``timeout``."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        await asyncio.sleep(step)
