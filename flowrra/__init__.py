"""flowrra: an asyncio task queue in the spirit of Celery, at home in Jupyter.

Usage::

    from flowrra import Flowrra

    app = Flowrra()

    @app.task()
    async def fetch(url: str) -> int: ...

    @app.task(cpu_bound=True)
    def crunch(n: int) -> int:
        return sum(i * i for i in range(n))

    async def main() -> None:
        async with app:
            task_id = await app.submit(fetch, "https://example.org")
            print((await app.wait_for_result(task_id)).result)

In a notebook, ``%load_ext flowrra`` adds the ``%flowrra`` magics and a live task table.
"""

from flowrra import runtime
from flowrra.app import Flowrra
from flowrra.config import BackendConfig, BrokerConfig, Config, ExecutorConfig, SchedulerConfig
from flowrra.context import TaskContext, current_task, progress
from flowrra.events import EventBus
from flowrra.exceptions import (
    BackendError,
    BrokerError,
    ConfigError,
    ExecutorNotRunningError,
    FlowrraError,
    TaskNotFoundError,
    TaskTimeoutError,
    WorkflowFailedError,
)
from flowrra.executors import CPUExecutor, IOExecutor
from flowrra.registry import TaskRegistry
from flowrra.task import Task, TaskResult, TaskStatus
from flowrra.workflows import WorkflowHandle, call, chain, chord, group

__version__ = "0.2.0.dev0"


def _watch_kernel_apps() -> None:
    """In a kernel, the notebook face stops apps that re-run cells let go of."""
    from flowrra.notebook.kernel_apps import watch_current_kernel

    watch_current_kernel()


runtime.when_started_in_kernel(_watch_kernel_apps)


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext flowrra``: add the ``%flowrra`` magics (IPython is imported only now)."""
    from flowrra.notebook.magics import load_ipython_extension as load

    load(ipython)


__all__ = [
    "BackendConfig",
    "BackendError",
    "BrokerConfig",
    "BrokerError",
    "CPUExecutor",
    "Config",
    "ConfigError",
    "EventBus",
    "ExecutorConfig",
    "ExecutorNotRunningError",
    "Flowrra",
    "FlowrraError",
    "IOExecutor",
    "SchedulerConfig",
    "Task",
    "TaskContext",
    "TaskNotFoundError",
    "TaskRegistry",
    "TaskResult",
    "TaskStatus",
    "TaskTimeoutError",
    "WorkflowFailedError",
    "WorkflowHandle",
    "call",
    "chain",
    "chord",
    "current_task",
    "group",
    "progress",
]
