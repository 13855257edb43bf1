"""Registration rules and the task record's 0.1.8-compatible shape."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flowrra import Flowrra, TaskNotFoundError, TaskRegistry, TaskResult, TaskStatus
from flowrra.exceptions import DuplicateTaskError, FlowrraError, InvalidTaskError


def module_level_cpu(x: int) -> int:
    return x * 2


async def io_task() -> None:
    return None


def test_registry_rules() -> None:
    registry = TaskRegistry()
    assert registry.task()(io_task) is io_task  # the function itself comes back
    assert io_task.task_name == "io_task" and io_task.__flowrra_task__  # type: ignore[attr-defined]
    registry.task(cpu_bound=True)(module_level_cpu)
    assert registry.list_tasks() == ["io_task", "module_level_cpu"]
    assert "io_task" in registry and len(registry) == 2
    assert registry.get("nope") is None
    with pytest.raises(TaskNotFoundError, match="Task 'nope' not registered"):
        registry.get_or_raise("nope")
    assert registry.unregister("io_task") and not registry.unregister("io_task")


def test_sync_function_as_io_task_is_refused() -> None:
    def not_async() -> None: ...

    with pytest.raises(InvalidTaskError, match="must be an async function") as info:
        TaskRegistry().task()(not_async)
    assert isinstance(info.value, TypeError) and "cpu_bound=True" in str(info.value)


def test_async_function_as_cpu_task_is_refused() -> None:
    with pytest.raises(InvalidTaskError, match="must be a sync function, not async"):
        TaskRegistry().task(cpu_bound=True)(io_task)


def test_strict_registry_needs_module_level_cpu_functions() -> None:
    def nested(x: int) -> int:
        return x

    with pytest.raises(InvalidTaskError, match="must be module-level"):
        TaskRegistry(strict_cpu_checks=True).task(cpu_bound=True)(nested)
    TaskRegistry(strict_cpu_checks=False).task(cpu_bound=True)(nested)


def test_duplicate_names_are_refused() -> None:
    registry = TaskRegistry()

    async def a() -> None: ...

    async def b() -> None: ...

    registry.task(name="same")(a)
    with pytest.raises(DuplicateTaskError, match="'same' is already registered") as info:
        registry.task(name="same")(b)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_retries": -1}, "max_retries must be"),
        ({"retry_delay": -0.5}, "retry_delay must be"),
        ({"timeout": 0}, "timeout must be"),
    ],
)
def test_bad_task_options(options: dict, message: str) -> None:
    async def t() -> None: ...

    with pytest.raises(InvalidTaskError, match=message):
        TaskRegistry().task(**options)(t)


def test_app_task_rejects_unknown_options() -> None:
    app = Flowrra()

    async def t() -> None: ...

    with pytest.raises(InvalidTaskError, match=r"Unknown task option.*priority") as info:
        app.task(priority=3)(t)
    assert isinstance(info.value, FlowrraError)


def test_app_task_defaults_come_from_executor_config() -> None:
    from flowrra import Config, ExecutorConfig

    app = Flowrra(Config(executor=ExecutorConfig(max_retries=7, retry_delay=0.25)))

    @app.task(timeout=3)
    async def t() -> None: ...

    spec = app.registry.spec("t")
    assert (spec.max_retries, spec.retry_delay, spec.timeout) == (7, 0.25, 3.0)


def test_task_result_is_0_1_8_compatible() -> None:
    now = datetime.now(UTC)
    old_style = TaskResult("id", TaskStatus.SUCCESS, "t", 5, None, now, now, now, 1, (1,), None)
    assert old_style.kwargs == {} and old_style.priority == 0 and old_style.error_type is None
    data = old_style.to_dict  # a property, as in 0.1.8
    assert data["status"] == "success" and data["submitted_at"] == now.isoformat()
    assert TaskResult.from_dict(data) == old_style
    assert TaskResult.from_dict({"task_id": "x", "status": "pending"}).kwargs == {}
    assert old_style.is_complete and old_style.is_success
    assert not TaskResult("x", TaskStatus.RETRYING).is_complete
    assert TaskResult("x", TaskStatus.CANCELLED).is_complete
    assert "SUCCESS" in old_style._repr_html_()
    assert [s.value for s in TaskStatus] == [
        "pending",
        "running",
        "success",
        "failed",
        "retrying",
        "cancelled",
    ]


def test_only_references_to_main_go_by_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """A value that refers to a class defined in ``__main__`` (a notebook cell, a script)
    is sent by value (cloudpickle), since another process cannot import it; a value that
    only contains the text ``__main__`` (the name of a task defined there, on every
    payload and record) is plain pickle. Before, the text alone sent every payload and
    record of a notebook's tasks through cloudpickle, several times slower."""
    import pickle
    import sys

    import cloudpickle

    from flowrra.serialization import dumps

    by_value: list[object] = []
    cloud_dumps = cloudpickle.dumps

    def spy(value: object, *args: object, **kwargs: object) -> bytes:
        by_value.append(value)
        return cloud_dumps(value, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(cloudpickle, "dumps", spy)
    plain = ("__main__.noop", {"where": "cells of __main__"}, b"__main__")
    assert dumps(plain) == pickle.dumps(plain, protocol=pickle.HIGHEST_PROTOCOL)
    assert by_value == []

    cell_class = type("CellClass", (), {"__module__": "__main__"})
    monkeypatch.setattr(sys.modules["__main__"], "CellClass", cell_class, raising=False)
    value = cell_class()
    by_reference = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    sent = dumps(value)
    assert sent != by_reference  # the class itself travels with it
    assert by_value == [value]
    monkeypatch.delattr(sys.modules["__main__"], "CellClass")
    assert type(pickle.loads(sent)).__name__ == "CellClass"  # loads without __main__.CellClass


def test_a_task_travels_as_a_plain_tuple_and_comes_back_whole() -> None:
    from flowrra.limits import Rate, TaskLimits
    from flowrra.task import Task, task_of, task_state

    eta = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    task = Task("t1", "nap", (1, [2]), {"k": "v"}, 5, 0.5, 1, 3, False, 9.0, eta,
                TaskLimits(Rate(3, 1.0), 2), "wf", "1.2")  # fmt: skip
    assert type(task_state(task)) is tuple
    assert task_of(task_state(task)) == task
    assert task_of(task) is task  # a payload written before the tuples
    with pytest.raises(TypeError, match="not a task"):
        task_of("t1")


def test_a_record_travels_as_plain_values_and_comes_back_whole() -> None:
    from flowrra.task import record_of, record_state

    now = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    plain = TaskResult("t1", TaskStatus.SUCCESS, "nap", [1], None, now, now, now, 2, (1,), {})
    step = TaskResult("t2", TaskStatus.FAILED, "nap", None, "boom", now, now, now,
                      progress_done=3, progress_total=4, output="hi", workflow_id="wf",
                      workflow_step="1.2")  # fmt: skip
    for record in (plain, step):
        state = record_state(record)
        assert type(state) is tuple and record_of(state) == record
