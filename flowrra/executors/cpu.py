"""The CPU executor: sync functions run in worker processes, ``cpu_workers`` at a time."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from flowrra.backends.base import BaseResultBackend
from flowrra.config import Config
from flowrra.context import current_context
from flowrra.events import EventBus
from flowrra.executors.base import BaseTaskExecutor
from flowrra.executors.pool import ProcessPool
from flowrra.registry import TaskRegistry, TaskSpec
from flowrra.task import Task

__all__ = ["CPUExecutor"]


class CPUExecutor(BaseTaskExecutor):
    """Executor for CPU-bound sync tasks, run in a pool of worker processes.

    Any sync callable works: module-level functions travel by reference, functions
    defined in a notebook or script, closures, lambdas and partials by value
    (cloudpickle). Results come back to this process and go to the app's result
    backend, so no Redis is needed. A worker that dies fails only its own task and is
    replaced; a task over its ``timeout`` (or cancelled) is stopped by killing its worker.

    Usage::

        executor = CPUExecutor(Config(executor=ExecutorConfig(cpu_workers=4)))

        @executor.task()
        def heavy(n: int) -> int:
            return sum(i * i for i in range(n))

        async with executor:
            record = await executor.wait_for_result(await executor.submit(heavy, 10**6))
    """

    kind = "cpu"

    def __init__(
        self,
        config: Config | None = None,
        registry: TaskRegistry | None = None,
        *,
        backend: BaseResultBackend | None = None,
        events: EventBus | None = None,
    ) -> None:
        """Create a CPU executor; its worker processes start with the first task."""
        if registry is None:
            registry = TaskRegistry(strict_cpu_checks=False)
        super().__init__(config, registry, ":cpu", backend=backend, events=events)
        cfg = self._config.executor
        self.pool = ProcessPool(cfg.cpu_workers, cfg.resolved_start_method)

    @property
    def worker_count(self) -> int:
        """How many tasks run at once: ``cpu_workers``."""
        return self._config.executor.cpu_workers

    def _call(self, task: Task, spec: TaskSpec) -> Awaitable[Any]:
        # the task's context (current in _execute) travels with the call: the function
        # sees it in its worker process, and its reports come back into it
        return self.pool.run(
            spec.func,
            task.args,
            task.kwargs,
            current_context(),
            output_limit=self._reporter.output_limit,
        )

    async def _halt(self) -> None:
        await super()._halt()
        await self.pool.close()

    async def _after_stop(self) -> None:
        await super()._after_stop()
        await self.pool.close()
