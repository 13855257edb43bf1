"""Shared fixtures: a fresh app per test, started on the test's loop and stopped after."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from flowrra import Config, ExecutorConfig, Flowrra


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
