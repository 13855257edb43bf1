"""flowrra 0.1.8's module paths import with their public names (the module map of its
published package, except ``flowrra.ui.*``, which is built separately)."""

from __future__ import annotations

import importlib

import pytest

import flowrra

# module -> the public names 0.1.8 code imports from it
MODULES_018: dict[str, tuple[str, ...]] = {
    "flowrra": (
        "Flowrra",
        "IOExecutor",
        "CPUExecutor",
        "TaskRegistry",
        "Config",
        "BrokerConfig",
        "BackendConfig",
        "ExecutorConfig",
        "Task",
        "TaskResult",
        "TaskStatus",
        "FlowrraError",
        "TaskNotFoundError",
        "TaskTimeoutError",
        "ExecutorNotRunningError",
        "BackendError",
        "__version__",
    ),
    "flowrra.app": ("Flowrra",),
    "flowrra.config": (
        "BrokerConfig",
        "BackendConfig",
        "ExecutorConfig",
        "SchedulerConfig",
        "Config",
    ),
    "flowrra.constants": ("TASK_STATUSES", "STATUS_COLORS"),
    "flowrra.events": ("EventBus", "event_bus"),
    "flowrra.exceptions": (
        "FlowrraError",
        "TaskNotFoundError",
        "TaskTimeoutError",
        "ExecutorNotRunningError",
        "BackendError",
    ),
    "flowrra.registry": ("TaskRegistry",),
    "flowrra.task": ("Task", "TaskResult", "TaskStatus"),
    "flowrra.brokers": ("BaseBroker",),
    "flowrra.brokers.base": ("BaseBroker",),
    "flowrra.brokers.factory": ("get_broker",),
    "flowrra.brokers.redis": ("RedisBroker",),
    "flowrra.backends": ("BaseResultBackend", "InMemoryBackend", "get_backend"),
    "flowrra.backends.base": ("BaseResultBackend",),
    "flowrra.backends.factory": ("get_backend",),
    "flowrra.backends.memory": ("InMemoryBackend",),
    "flowrra.backends.redis": ("RedisBackend",),
    "flowrra.executors": ("BaseTaskExecutor", "IOExecutor", "CPUExecutor"),
    "flowrra.executors.base": ("BaseTaskExecutor",),
    "flowrra.executors.io_executor": ("IOExecutor",),
    "flowrra.executors.cpu_executor": ("CPUExecutor",),
    "flowrra.management": ("FlowrraManager",),
    "flowrra.management.manager": ("FlowrraManager",),
    "flowrra.scheduler": ("Scheduler", "ScheduledTask", "ScheduleType", "CronExpression"),
    "flowrra.scheduler.scheduler": ("Scheduler",),
    "flowrra.scheduler.models": ("ScheduledTask", "ScheduleType"),
    "flowrra.scheduler.cron": ("CronExpression",),
    "flowrra.scheduler.backends": (
        "BaseSchedulerBackend",
        "SQLiteSchedulerBackend",
        "get_scheduler_backend",
    ),
    "flowrra.scheduler.backends.base": ("BaseSchedulerBackend",),
    "flowrra.scheduler.backends.sqlite": ("SQLiteSchedulerBackend",),
    "flowrra.scheduler.backends.postgresql": ("PostgreSQLSchedulerBackend",),
    "flowrra.scheduler.backends.mysql": ("MySQLSchedulerBackend",),
}

# names 0.1.8's package modules re-exported when redis-py was installed
REDIS_REEXPORTS = [("flowrra.brokers", "RedisBroker"), ("flowrra.backends", "RedisBackend")]

# the modules that exist only to keep 0.1.8 paths working
COMPAT_MODULES = (
    "flowrra.executors.io_executor",
    "flowrra.executors.cpu_executor",
    "flowrra.scheduler.scheduler",
)


@pytest.mark.parametrize(("module", "names"), sorted(MODULES_018.items()))
def test_every_018_module_imports_with_its_public_names(
    module: str, names: tuple[str, ...]
) -> None:
    imported = importlib.import_module(module)
    missing = [name for name in names if not hasattr(imported, name)]
    assert missing == [], f"{module} lacks {missing}"


@pytest.mark.parametrize(("module", "name"), REDIS_REEXPORTS)
def test_the_redis_classes_are_importable_from_their_packages(module: str, name: str) -> None:
    assert hasattr(importlib.import_module(module), name)


@pytest.mark.parametrize("module", COMPAT_MODULES)
def test_compat_modules_say_why_they_exist_and_export_the_same_objects(module: str) -> None:
    imported = importlib.import_module(module)
    assert "0.1.8" in (imported.__doc__ or "")
    assert set(MODULES_018[module]) <= set(imported.__all__)
    for name in imported.__all__:
        assert getattr(imported, name) is _current(name), name


def _current(name: str) -> object:
    """The object ``name`` stands for in flowrra's own modules."""
    from flowrra.registry import TaskRegistry
    from flowrra.scheduler import CronExpression, ScheduledTask, Scheduler, ScheduleType
    from flowrra.scheduler.backends import BaseSchedulerBackend

    known = {
        "IOExecutor": flowrra.IOExecutor,
        "CPUExecutor": flowrra.CPUExecutor,
        "Scheduler": Scheduler,
        "ScheduledTask": ScheduledTask,
        "ScheduleType": ScheduleType,
        "CronExpression": CronExpression,
        "BaseSchedulerBackend": BaseSchedulerBackend,
        "TaskRegistry": TaskRegistry,
    }
    return known[name]


def test_018_import_lines_work() -> None:
    from flowrra.executors.cpu_executor import CPUExecutor
    from flowrra.executors.io_executor import IOExecutor
    from flowrra.scheduler.scheduler import Scheduler

    assert IOExecutor is flowrra.IOExecutor and CPUExecutor is flowrra.CPUExecutor
    assert Scheduler.__module__ == "flowrra.scheduler.service"
