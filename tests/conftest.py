"""Shared fixtures: a fresh app per test, started on the test's loop and stopped after."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from flowrra import Config, ExecutorConfig, Flowrra

from .redis_server import RedisServer, serve
from .services import REDIS_URL, require_redis


@pytest.fixture
async def app() -> AsyncIterator[Flowrra]:
    """A started app with fast retries (retry_delay 0.01 s); stopped after the test."""
    application = Flowrra(Config(executor=ExecutorConfig(io_workers=4, retry_delay=0.01)))
    yield application
    await application.stop(wait=False)


class EventLog:
    """Records every event of an app's bus; ``types(task_id)`` lists one task's."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    def __call__(self, event: dict) -> None:
        self.events.append(event)

    def types(self, task_id: str | None = None) -> list[str]:
        return [e["type"] for e in self.events if task_id is None or e["task_id"] == task_id]


@pytest.fixture
def event_log() -> EventLog:
    return EventLog()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own on a free port (see tests/redis_server.py)."""
    yield from serve(tmp_path)


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """A fresh key prefix on the test Redis; every key under it is deleted after."""
    require_redis()
    name = f"flowrra-test-{uuid.uuid4().hex[:10]}"
    yield name
    import redis.asyncio as aioredis

    client = aioredis.from_url(REDIS_URL)
    keys = [k async for k in client.scan_iter(f"{name}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()
