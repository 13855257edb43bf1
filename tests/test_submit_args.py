"""Arguments are checked against the task's signature at submit: a call the task would
refuse raises TypeError at once and leaves nothing behind, on every broker."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from flowrra import Config, ExecutorConfig, Flowrra, IOExecutor, TaskStatus

from . import cpu_tasks, redis_app
from .conftest import EventLog
from .services import REDIS_URL

SECRET = "submit-args-test-secret-0123456789"


async def add(x: int, y: int) -> int:
    return x + y


async def takes_nothing() -> str:
    return "ok"


async def flexible(a: int, /, b: int = 2, *rest: int, scale: int = 1, **extra: int) -> int:
    return (a + b + sum(rest) + sum(extra.values())) * scale


def with_base(func: Callable[..., Awaitable[int]]) -> Callable[..., Awaitable[int]]:
    """A decorator that supplies the first argument: the wrapper's own signature counts."""

    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> int:
        return await func(100, *args, **kwargs)

    return wrapper


@with_base
async def offset(base: int, x: int) -> int:
    return base + x


def register(app: Flowrra) -> None:
    app.task(max_retries=0)(add)
    app.task(max_retries=0)(takes_nothing)
    app.task(max_retries=0)(flexible)
    app.task(max_retries=0)(offset)
    app.task(name="cpu_add", cpu_bound=True, max_retries=0)(cpu_tasks.add)
    app.task(name="biggest", cpu_bound=True, max_retries=0)(max)  # no readable signature


@pytest.fixture
async def memory_app() -> AsyncIterator[Flowrra]:
    application = Flowrra(Config(executor=ExecutorConfig(cpu_workers=1)))
    register(application)
    await application.start()
    yield application
    await application.stop(wait=False)


@pytest.fixture
async def redis_submitter(prefix: str) -> AsyncIterator[Flowrra]:
    """A submit-only app on Redis (nothing runs here: a queued task stays queued)."""
    application = redis_app.make_app(prefix, REDIS_URL, SECRET)
    register(application)
    await application.start(workers=False)
    yield application
    await application.stop(wait=False)


BAD_CALLS: list[tuple[str, Callable[[Flowrra], Awaitable[Any]], str]] = [
    ("submit", lambda app: app.submit(add, 1), "add() missing 1 required positional argument: 'y'"),
    ("submit by name", lambda app: app.submit("add", 1, 2, 3), "takes 2 positional arguments"),
    ("submit kwargs", lambda app: app.submit(add, 1, z=2), "unexpected keyword argument 'z'"),
    ("apply", lambda app: app.apply(add, (1,), {"x": 2}), "multiple values for argument 'x'"),
    ("apply none", lambda app: app.apply(takes_nothing, (1,)), "takes 0 positional arguments"),
    ("map", lambda app: app.map(takes_nothing, [1, 2]), "item 0 of map()"),
    ("starmap", lambda app: app.starmap(add, [(1, 2), (3,), (4, 5)]), "item 1 of starmap()"),
    ("starmap item", lambda app: app.starmap(add, [(1, 2), 3]), "not a tuple of arguments"),
    ("positional-only", lambda app: app.submit(flexible, a=1), "flexible() missing 1"),
    ("cpu", lambda app: app.submit(cpu_tasks.add), "add() missing 1 required positional"),
    ("cpu starmap", lambda app: app.starmap(cpu_tasks.add, [(1, 2, 3)]), "item 0 of starmap"),
]


async def nothing_was_submitted(app: Flowrra) -> None:
    assert await app.list_results() == []
    for executor in (app.io_executor, app.cpu_executor):
        assert executor.submitted == 0 and executor.active_count() == 0
        if executor.broker is not None:
            assert await executor.broker.size() == 0  # type: ignore[attr-defined]


@pytest.mark.parametrize(("name", "call", "says"), BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
async def test_bad_arguments_raise_at_once_in_memory(
    memory_app: Flowrra,
    event_log: EventLog,
    name: str,
    call: Callable[[Flowrra], Awaitable[Any]],
    says: str,
) -> None:
    memory_app.events.subscribe(event_log)
    with pytest.raises(TypeError) as refused:
        await call(memory_app)
    message = str(refused.value)
    assert says in message and "Nothing was submitted" in message
    assert "Task '" in message or "task '" in message  # names the task
    await nothing_was_submitted(memory_app)
    assert event_log.types() == []


@pytest.mark.parametrize(("name", "call", "says"), BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
async def test_bad_arguments_raise_at_once_on_redis(
    redis_submitter: Flowrra,
    name: str,
    call: Callable[[Flowrra], Awaitable[Any]],
    says: str,
) -> None:
    with pytest.raises(TypeError, match="Nothing was submitted") as refused:
        await call(redis_submitter)
    assert says in str(refused.value)
    await nothing_was_submitted(redis_submitter)


async def test_the_message_names_the_task_and_what_it_takes(memory_app: Flowrra) -> None:
    with pytest.raises(TypeError) as refused:
        await memory_app.submit(add, 1)
    assert str(refused.value) == (
        "Task 'add' cannot take these arguments: add() missing 1 required positional "
        "argument: 'y'. Nothing was submitted; pass the arguments it takes: "
        "add(x, y)"
    )


async def test_one_bad_item_submits_none_of_a_map(memory_app: Flowrra) -> None:
    items = [(1, 2)] * 50 + [(1,)] + [(3, 4)] * 50
    with pytest.raises(TypeError, match=r"item 50 of starmap\(\)"):
        await memory_app.starmap(add, items)
    await nothing_was_submitted(memory_app)


async def test_calls_the_task_accepts_still_run(memory_app: Flowrra) -> None:
    app = memory_app
    ids = [
        await app.submit(add, 1, y=2),
        await app.submit("add", x=1, y=2),
        await app.submit(flexible, 1),
        await app.submit(flexible, 1, 2, 3, 4, scale=2, more=5),
        await app.apply(add, (1,), {"y": 2}),
        await app.submit(offset, 5),  # the wrapper takes (*args, **kwargs): not refused
        await app.submit("biggest", 3, 9, 4),  # a builtin without a signature: not checked
        await app.submit(cpu_tasks.add, 2, b=3),
        *(await app.map(cpu_tasks.add, [1, 2])),
        *(await app.starmap(add, [(1, 2), [3, 4]])),
    ]
    records = [await app.wait_for_result(task_id, timeout=60) for task_id in ids]
    assert [r.status for r in records] == [TaskStatus.SUCCESS] * len(ids), records
    assert [r.result for r in records] == [3, 3, 3, 30, 3, 105, 9, 5, 1, 2, 3, 7]


async def test_the_executor_checks_its_own_submits() -> None:
    executor = IOExecutor(Config())
    executor.task()(add)
    async with executor:
        with pytest.raises(TypeError, match="missing 1 required positional argument: 'y'"):
            await executor.submit(add, 1)
        assert executor.submitted == 0 and await executor.results.list_results() == []
        record = await executor.wait_for_result(await executor.submit(add, 1, 2), 5)
        assert record.result == 3


async def test_redis_submit_with_good_arguments_is_queued(redis_submitter: Flowrra) -> None:
    await redis_submitter.submit(add, 1, 2)
    assert await redis_submitter.io_executor.broker.size() == 1  # type: ignore[union-attr]
