"""Redis under load and poison: many concurrent callers on a small pool, round trips per
submit, tasks that block the loop, crash their workers, raise BaseException or return
what cannot be pickled, and records that expire with every key they own."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from flowrra import (
    BackendConfig,
    BrokerConfig,
    Config,
    ExecutorConfig,
    Flowrra,
    TaskStatus,
)
from flowrra.brokers.redis import RedisBroker
from flowrra.exceptions import SerializationError
from flowrra.serialization import Signer

from . import redis_app
from .redis_server import RedisServer
from .services import REDIS_URL
from .test_redis import start_worker, stop_worker

SECRET = "test-secret-0123456789abcdef"  # the secret tests/test_redis.py's workers use


def small_pool_app(prefix: str, url: str = REDIS_URL, connections: int = 4) -> Flowrra:
    app = Flowrra(
        Config(
            broker=BrokerConfig(url, queue_key=f"{prefix}:queue", max_connections=connections),
            backend=BackendConfig(
                f"{url}?key_prefix={prefix}", max_connections=connections, ttl=None
            ),
            executor=ExecutorConfig(io_workers=16, max_retries=0),
            secret_key=SECRET,
        )
    )

    @app.task()
    async def echo(i: int) -> int:
        return i

    return app


def connections_made(client: object) -> int:
    pool = client.connection_pool  # type: ignore[attr-defined]
    return len(pool._available_connections) + len(pool._in_use_connections)


async def test_ten_thousand_concurrent_submits_and_twenty_thousand_waits(prefix: str) -> None:
    app = small_pool_app(prefix)
    async with app:
        ids = await asyncio.gather(*(app.submit("echo", i) for i in range(10_000)))
        waits = [app.wait_for_result(i, timeout=120) for i in ids for _ in range(2)]
        records = await asyncio.gather(*waits)
        reads = await asyncio.gather(*(app.get_result(i) for i in ids[:1000]))
        assert connections_made(app.results_backend.client) <= 4
        assert connections_made(app.io_executor.broker.client) <= 4
    assert [r.result for r in records[::2]] == list(range(10_000))
    assert {r.status for r in reads} == {TaskStatus.SUCCESS}


async def test_two_thousand_cancels_racing_a_worker_each_tell_the_truth(prefix: str) -> None:
    """2,000 cancels at once while a `flowrra worker` takes and runs the same tasks
    (waiting, taken ahead, running or done, whatever the race makes them): every cancel
    returns True exactly when the task ended CANCELLED, and nothing is left leased or
    queued."""
    submitter = redis_app.make_app(prefix, REDIS_URL, SECRET)
    started = asyncio.Event()
    submitter.events.subscribe(lambda e: started.set() if e["type"] == "task.started" else None)
    await submitter.start(workers=False)
    worker = None
    try:
        ids = await submitter.starmap("nap", [(i, 0.01) for i in range(2_000)])
        worker = start_worker(prefix, "--io-workers", "4", "--loglevel", "warning")
        await started.wait()
        said = await asyncio.gather(*(submitter.cancel(task_id) for task_id in ids))
        records = [await submitter.wait_for_result(task_id, timeout=30) for task_id in ids]
        counts = await submitter.io_executor.broker.counts()
    finally:
        if worker is not None:
            stop_worker(worker)
        await submitter.stop()
    outcomes = {(cancelled, r.status) for cancelled, r in zip(said, records, strict=True)}
    assert outcomes <= {(True, TaskStatus.CANCELLED), (False, TaskStatus.SUCCESS)}, outcomes
    assert said.count(True) > 0
    assert counts == {"queued": 0, "delayed": 0, "inflight": 0, "dead": 0, "held": 0}


async def test_a_submit_that_raised_left_nothing_behind(prefix: str) -> None:
    app = small_pool_app(prefix)
    await app.start(workers=False)
    with pytest.raises(SerializationError, match="arguments cannot be pickled"):
        await app.submit("echo", threading.Lock())
    assert await app.list_results() == []
    assert (await app.io_executor.broker.counts())["queued"] == 0
    await app.stop()


async def server_reads(client: object) -> int:
    info = await client.info("stats")  # type: ignore[attr-defined]
    return int(info["total_reads_processed"])


async def script_calls(client: object) -> int:
    info = await client.info("commandstats")  # type: ignore[attr-defined]
    return int(info.get("cmdstat_evalsha", {}).get("calls", 0))


async def test_one_round_trip_per_submit_and_one_for_many_at_once(server: RedisServer) -> None:
    app = small_pool_app("rt", server.url())
    await app.start(workers=False)
    await app.submit("echo", 0)  # connections made, scripts loaded
    probe = app.results_backend.client
    before = await server_reads(probe)
    for i in range(50):
        await app.submit("echo", i)
    one_by_one = await server_reads(probe) - before - 1  # the INFO itself is a read
    before = await script_calls(probe)
    await asyncio.gather(*(app.submit("echo", i) for i in range(1000)))
    together = await script_calls(probe) - before
    await app.stop()
    assert one_by_one <= 52, one_by_one
    assert together <= 2, together  # concurrent submits are coalesced


async def test_tasks_trickling_in_cost_at_most_three_round_trips(server: RedisServer) -> None:
    url = server.url()
    submitter = small_pool_app("trickle", url)
    worker = small_pool_app("trickle", url)
    await submitter.start(workers=False)
    await worker.start()
    await submitter.wait_for_result(await submitter.submit("echo", 0), timeout=10)
    probe = submitter.results_backend.client
    before = await server_reads(probe)
    for i in range(40):
        await submitter.wait_for_result(await submitter.submit("echo", i), timeout=10)
    reads = await server_reads(probe) - before - 1
    await worker.stop()
    await submitter.stop()
    assert reads <= 3 * 40, reads / 40


async def test_a_task_that_blocks_the_loop_keeps_its_lease_and_is_named(
    prefix: str, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    submitter = redis_app.make_app(prefix, REDIS_URL, SECRET)
    await submitter.start(workers=False)
    first = start_worker(prefix, "--lease", "1", "--io-workers", "1")
    second = start_worker(prefix, "--lease", "1", "--io-workers", "1")
    try:
        task_id = await submitter.submit("hog", str(runs), 3.0)  # 3 s without a loop turn
        record = await submitter.wait_for_result(task_id, timeout=30)
        after = await submitter.wait_for_result(await submitter.submit("nap", 5), timeout=30)
    finally:
        outputs = stop_worker(first) + stop_worker(second)
    await submitter.stop()
    assert record.status is TaskStatus.SUCCESS and after.result == 5
    assert runs.read_text().count("run") == 1  # never taken again while it ran
    assert f"Task hog[{task_id}] has blocked the event loop" in outputs


async def test_a_task_delivered_more_than_max_deliveries_ends_failed(prefix: str) -> None:
    config = Config(
        broker=BrokerConfig(REDIS_URL, queue_key=f"{prefix}:queue", max_deliveries=2),
        backend=BackendConfig(f"{REDIS_URL}?key_prefix={prefix}"),
        secret_key=SECRET,
    )
    submitter = Flowrra(config)
    submitter.task(max_retries=0)(redis_app.nap)
    await submitter.start(workers=False)
    task_id = await submitter.submit("nap", 1, 0.0)
    dying = RedisBroker(REDIS_URL, queue_key=f"{prefix}:queue:io", max_deliveries=2)
    dying.signer = Signer(SECRET)
    for _ in range(2):  # a worker takes it and dies: its lease lapses
        taken = await dying.take(10)
        assert [t.task.id for t in taken.tasks] == [task_id]
        await dying.client.zadd(dying.keys["inflight"], {f"0:{task_id}": 0})
    await dying.close()
    worker = Flowrra(config)
    worker.task(max_retries=0)(redis_app.nap)
    async with worker:
        record = await submitter.wait_for_result(task_id, timeout=10)
    await submitter.stop()
    assert record.status is TaskStatus.FAILED
    assert "delivered 3 times (max_deliveries=2)" in (record.error or "")
    counts = await submitter.io_executor.broker.counts()
    assert counts["inflight"] == counts["queued"] == 0
    await submitter.io_executor.broker.close()


class Crash(BaseException):
    """A BaseException that is none of the standard ones."""


@pytest.mark.parametrize("make", [lambda: SystemExit(3), KeyboardInterrupt, lambda: Crash("x")])
@pytest.mark.parametrize("on_redis", [False, True], ids=["memory", "redis"])
async def test_base_exception_from_a_task_fails_it_and_the_app_goes_on(
    prefix: str, make: object, on_redis: bool
) -> None:
    app = redis_app.make_app(prefix, REDIS_URL, SECRET) if on_redis else Flowrra()

    @app.task(max_retries=2)
    async def explode() -> None:
        raise make()  # type: ignore[operator]

    @app.task()
    async def fine() -> str:
        return "ok"

    async with app:
        record = await app.wait_for_result(await app.submit(explode), timeout=10)
        after = await app.wait_for_result(await app.submit(fine), timeout=10)
    assert record.status is TaskStatus.FAILED and record.retries == 0
    assert record.error_type == type(make()).__name__  # type: ignore[operator]
    assert after.result == "ok"


async def test_system_exit_in_a_task_does_not_end_a_flowrra_worker(prefix: str) -> None:
    submitter = redis_app.make_app(prefix, REDIS_URL, SECRET)
    await submitter.start(workers=False)
    worker = start_worker(prefix)
    try:
        quit_record = await submitter.wait_for_result(
            await submitter.submit("quit_now", 3), timeout=30
        )
        after = await submitter.wait_for_result(await submitter.submit("nap", 4), timeout=30)
        assert worker.poll() is None
    finally:
        stop_worker(worker)
    await submitter.stop()
    assert quit_record.status is TaskStatus.FAILED and quit_record.error_type == "SystemExit"
    assert after.result == 4


async def test_a_result_that_cannot_be_pickled_fails_the_task(prefix: str) -> None:
    app = redis_app.make_app(prefix, REDIS_URL, SECRET)

    @app.task(max_retries=0)
    async def make_lock() -> object:
        return threading.Lock()

    async with app:
        record = await app.wait_for_result(await app.submit(make_lock), timeout=10)
        counts = await app.io_executor.broker.counts()
    assert record.status is TaskStatus.FAILED and record.error_type == "SerializationError"
    assert "result cannot be pickled" in (record.error or "") and "lock" in record.error
    assert counts["inflight"] == 0  # acknowledged: it is not run again after a restart


async def test_with_a_ttl_every_key_of_a_task_goes_away(prefix: str) -> None:
    app = Flowrra(
        Config(
            broker=BrokerConfig(REDIS_URL, queue_key=f"{prefix}:queue"),
            backend=BackendConfig(f"{REDIS_URL}?key_prefix={prefix}", ttl=1),
            secret_key=SECRET,
        )
    )
    app.task()(redis_app.nap)
    async with app:
        ids = await app.starmap("nap", [(i, 0.0) for i in range(300)])
        for task_id in ids:
            await app.wait_for_result(task_id, timeout=30)
        client = app.results_backend.client
        deadline = time.monotonic() + 15
        left: list[bytes] = []
        # what stays: the arrival counter, and the running workers' presence entries
        # (the app runs its workers here; they leave the list when it stops)
        allowed = {f"{prefix}:queue:io:seq", f"{prefix}:queue:io:workers"}
        allowed.add(f"{prefix}:queue:cpu:workers")
        while time.monotonic() < deadline:
            await app.results_backend.prune()
            left = [k async for k in client.scan_iter(f"{prefix}*")]
            if {k.decode() for k in left} <= allowed:
                break
            await asyncio.sleep(0.1)
    assert {k.decode() for k in left} <= allowed, left
    after_stop = {k.decode() async for k in client.scan_iter(f"{prefix}*")}
    assert after_stop <= {f"{prefix}:queue:io:seq"}, after_stop  # workers left the list
