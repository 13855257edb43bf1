"""flowrra 0.1.8's Redis setups run unchanged, and in-process semantics hold under abuse:
a Redis result backend without a Redis broker (0.1.8's way to run CPU tasks), a Redis
broker without a Redis backend, bare executors on Redis, failed submits, and tasks that
submit tasks into a full bounded queue."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from flowrra import (
    BackendConfig,
    BrokerConfig,
    Config,
    ExecutorConfig,
    Flowrra,
    IOExecutor,
    TaskStatus,
)
from flowrra.backends.redis import RedisBackend
from flowrra.exceptions import SerializationError
from flowrra.task import TaskResult

from . import cpu_tasks
from .services import REDIS_URL

SECRET = "compat-secret-0123456789abcdef"


def backend_url(prefix: str) -> str:
    return f"{REDIS_URL}?key_prefix={prefix}"


@pytest.mark.parametrize("secret", [None, "env", SECRET])
async def test_a_redis_backend_without_a_broker_runs_cpu_and_io_tasks(
    prefix: str, secret: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLOWRRA_SECRET_KEY", raising=False)
    if secret == "env":
        monkeypatch.setenv("FLOWRRA_SECRET_KEY", SECRET)
        app = Flowrra.from_urls(backend=backend_url(prefix))
    else:
        app = Flowrra(Config(backend=BackendConfig(backend_url(prefix)), secret_key=secret))
    app.task(cpu_bound=True)(cpu_tasks.square)

    @app.task()
    async def double(x: int) -> int:
        return 2 * x

    async with app:
        squared = await app.wait_for_result(await app.submit(cpu_tasks.square, 7), timeout=30)
        doubled = await app.wait_for_result(await app.submit(double, 4), timeout=10)
        listed = await app.list_results(status="success")
    assert squared.result == 49 and doubled.result == 8 and len(listed) == 2


async def test_an_io_executor_with_a_redis_backend(prefix: str) -> None:
    executor = IOExecutor(Config(backend=BackendConfig(backend_url(prefix))))

    @executor.task()
    async def hello(name: str) -> str:
        return f"hello {name}"

    async with executor:
        record = await executor.wait_for_result(await executor.submit(hello, "bob"), 10)
    assert record.result == "hello bob"


async def test_a_bare_redis_backend_stores_gets_waits_deletes_and_clears(prefix: str) -> None:
    backend = RedisBackend(backend_url(prefix))
    done = TaskResult("t1", TaskStatus.SUCCESS, "job", 42)
    await backend.store("t1", done)
    assert (await backend.get("t1")).result == 42
    assert (await backend.wait_for("t1", timeout=5)).result == 42
    assert await backend.delete("t1") is True and await backend.get("t1") is None
    await backend.store("t2", TaskResult("t2", TaskStatus.FAILED, "job", error="no"))
    assert await backend.clear() == 1
    await backend.close()


async def test_bare_executors_on_a_redis_broker(prefix: str) -> None:
    both = Config(
        broker=BrokerConfig(REDIS_URL, queue_key=f"{prefix}:queue"),
        backend=BackendConfig(backend_url(prefix)),
    )
    executor = IOExecutor(both)

    @executor.task()
    async def add(a: int, b: int) -> int:
        return a + b

    async with executor:
        record = await executor.wait_for_result(await executor.submit(add, 2, 3), 10)
    assert record.result == 5
    broker_only = IOExecutor(
        Config(broker=BrokerConfig(REDIS_URL, queue_key=f"{prefix}:other"))
    )  # 0.1.8 ran this; its exit raised AttributeError here
    async with broker_only:
        pass
    await executor.broker.close()  # type: ignore[union-attr]
    await broker_only.broker.close()  # type: ignore[union-attr]


async def test_a_submit_the_backend_refuses_leaves_nothing_behind(prefix: str) -> None:
    app = Flowrra(Config(backend=BackendConfig(backend_url(prefix)), secret_key=SECRET))

    @app.task()
    async def keep(value: object) -> object:
        return value

    await app.start()
    with pytest.raises(SerializationError, match="arguments cannot be pickled"):
        await app.submit(keep, threading.Lock())
    assert app.io_executor.active_count() == 0
    assert await app.list_results() == []
    started = time.monotonic()
    await app.stop()  # nothing to wait for: not its whole timeout
    assert time.monotonic() - started < 2


async def test_tasks_submitting_tasks_into_a_full_bounded_queue_finish() -> None:
    app = Flowrra(Config(executor=ExecutorConfig(io_workers=2, max_queue_size=2)))
    go = asyncio.Event()
    running = 0

    @app.task()
    async def child(i: int) -> int:
        return i

    @app.task()
    async def parent(i: int) -> str:
        nonlocal running
        running += 1
        await go.wait()
        return await app.submit(child, i)  # the queue is full: it must not wait for room

    async with app:
        async with asyncio.timeout(20):
            parents = [await app.submit(parent, 0), await app.submit(parent, 1)]
            while running < 2:  # both workers hold a parent
                await asyncio.sleep(0)
            parents += [await app.submit(parent, 2), await app.submit(parent, 3)]  # full
            go.set()
            children = [(await app.wait_for_result(i)).result for i in parents]
            results = [(await app.wait_for_result(i)).result for i in children]
    assert results == [0, 1, 2, 3]
