"""The IO executor: ``async def`` tasks awaited on the event loop, nothing pickled."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from flowrra.backends.base import BaseResultBackend
from flowrra.config import Config
from flowrra.events import EventBus
from flowrra.executors.base import BaseTaskExecutor
from flowrra.registry import TaskRegistry, TaskSpec
from flowrra.task import Task

__all__ = ["IOExecutor"]


class IOExecutor(BaseTaskExecutor):
    """Executor for I/O-bound ``async def`` tasks, ``io_workers`` at a time.

    Best for network requests, database queries, file I/O and other awaitable work.

    Usage::

        executor = IOExecutor(Config(executor=ExecutorConfig(io_workers=8)))

        @executor.task()
        async def fetch(url: str) -> int: ...

        async with executor:
            task_id = await executor.submit(fetch, "https://example.org")
            record = await executor.wait_for_result(task_id)
    """

    kind = "io"

    def __init__(
        self,
        config: Config | None = None,
        registry: TaskRegistry | None = None,
        *,
        backend: BaseResultBackend | None = None,
        events: EventBus | None = None,
    ) -> None:
        """Create an IO executor (``config`` defaults to ``Config()``)."""
        super().__init__(config, registry, ":io", backend=backend, events=events)

    _direct_call = True  # the worker awaits spec.func(...) itself, as _call would

    def _call(self, task: Task, spec: TaskSpec) -> Awaitable[Any]:
        return spec.func(*task.args, **task.kwargs)
