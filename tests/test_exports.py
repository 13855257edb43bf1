"""The public surface: exports pinned to the API reference, 0.1.8 module paths, no
optional imports."""

from __future__ import annotations

import importlib
import subprocess
import sys

import flowrra

REFERENCE_EXPORTS = {
    "Flowrra",
    "IOExecutor",
    "CPUExecutor",
    "TaskRegistry",
    "Config",
    "BrokerConfig",
    "BackendConfig",
    "ExecutorConfig",
    "SchedulerConfig",
    "EventBus",
    "Task",
    "TaskResult",
    "TaskStatus",
    "FlowrraError",
    "TaskNotFoundError",
    "TaskTimeoutError",
    "ExecutorNotRunningError",
    "BackendError",
}
ADDED_EXPORTS = {"BrokerError", "ConfigError", "TaskContext", "current_task", "progress"}
ADDED_EXPORTS |= {"WorkflowFailedError", "WorkflowHandle", "call", "chain", "chord", "group"}


def test_all_is_pinned_to_the_reference() -> None:
    assert set(flowrra.__all__) == REFERENCE_EXPORTS | ADDED_EXPORTS
    for name in flowrra.__all__:
        assert getattr(flowrra, name).__doc__, f"{name} has no docstring"


def test_version() -> None:
    assert flowrra.__version__ == "0.2.0.dev0"


def test_0_1_8_module_paths_import() -> None:
    paths = {
        "flowrra.app": ["Flowrra"],
        "flowrra.config": ["Config", "BrokerConfig", "BackendConfig", "ExecutorConfig"],
        "flowrra.constants": ["TASK_STATUSES", "STATUS_COLORS"],
        "flowrra.events": ["EventBus", "event_bus"],
        "flowrra.exceptions": ["FlowrraError", "TaskNotFoundError", "BackendError"],
        "flowrra.registry": ["TaskRegistry"],
        "flowrra.task": ["Task", "TaskResult", "TaskStatus"],
        "flowrra.executors": ["BaseTaskExecutor", "IOExecutor", "CPUExecutor"],
        "flowrra.backends.base": ["BaseResultBackend"],
        "flowrra.backends.memory": ["InMemoryBackend"],
        "flowrra.backends.factory": ["get_backend"],
        "flowrra.brokers.base": ["BaseBroker"],
        "flowrra.brokers.factory": ["get_broker"],
    }
    for module, names in paths.items():
        mod = importlib.import_module(module)
        for name in names:
            assert hasattr(mod, name), f"{module}.{name}"


def test_import_flowrra_imports_no_optional_package() -> None:
    code = (
        "import sys, flowrra, flowrra.app, flowrra.executors;"
        "bad = [m for m in ('IPython', 'ipywidgets', 'anywidget', 'pandas', 'redis',"
        " 'asyncpg', 'aiomysql', 'ipykernel') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
