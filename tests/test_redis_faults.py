"""Redis faults on a server of our own (a free port, stopped by its pid): an ACL user, a
unix socket and TLS (``rediss://``) in the URL, and a restart in the middle of a run that
loses no task."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections import Counter
from typing import Any

import pytest

from flowrra import (
    BackendConfig,
    BackendError,
    BrokerConfig,
    BrokerError,
    Config,
    Flowrra,
    TaskStatus,
    TaskTimeoutError,
)
from flowrra.clock import utcnow
from flowrra.task import TaskResult

from . import redis_app
from .redis_server import RedisServer


async def _statuses_once_drained(backend: Any, ids: list[str]) -> Counter:
    """How many of ``ids`` have each status in Redis once ``backend``'s writes are in."""
    await asyncio.wait_for(backend.drain(), timeout=60)
    stored = await asyncio.gather(*(backend.get(task_id) for task_id in ids))
    return Counter(r.status if r else None for r in stored)


def _record(task_id: str, status: TaskStatus) -> TaskResult:
    """A record of task ``task_id`` of ``nap`` in ``status``."""
    done = utcnow() if status.is_terminal else None
    return TaskResult(task_id, status, "nap", 1, None, utcnow(), utcnow(), done)


SECRET = "fault-secret-0123456789abcdef"


async def test_acl_user_and_unix_socket_urls(server: RedisServer) -> None:
    for url in (
        f"redis://alice:wonderland-pw@127.0.0.1:{server.port}/0",
        f"unix://{server.socket}?db=0",
    ):
        app = redis_app.make_app("acl", url, SECRET)
        async with app:
            record = await app.wait_for_result(await app.submit("nap", 3, 0.0), timeout=10)
        assert record.result == 3, url


async def test_tls_url_with_a_trusted_ca_and_a_clear_error_without(server: RedisServer) -> None:
    url = f"rediss://alice:wonderland-pw@127.0.0.1:{server.tls_port}/0"
    app = redis_app.make_app("tls", f"{url}?ssl_ca_certs={server.ca_file}", SECRET)
    async with app:
        record = await app.wait_for_result(await app.submit("nap", 5, 0.0), timeout=10)
        listed = await app.list_results(status="success")
    assert record.result == 5 and [r.task_id for r in listed] == [record.task_id]
    # the server's certificate is not trusted without its CA: the error names the URL
    # with the password hidden
    untrusted = redis_app.make_app("tls", url, SECRET)
    with pytest.raises(BrokerError) as info:
        await untrusted.start()
    message = str(info.value)
    assert f"rediss://alice:***@127.0.0.1:{server.tls_port}/0" in message
    assert "wonderland-pw" not in message
    assert "add ?ssl_ca_certs=" in message  # says what to do


async def test_a_restart_mid_run_loses_no_task_and_runs_none_twice(server: RedisServer) -> None:
    """Redis stops (its data kept) and starts again while a worker runs 200 tasks under
    a one-second lease: every task succeeds, once."""
    url = f"redis://alice:wonderland-pw@127.0.0.1:{server.port}/0"
    app = redis_app.make_app("restart", url, SECRET)
    app.task(max_retries=0)(tally)
    app.io_executor.broker.lease = 1.0  # type: ignore[union-attr]
    RUNS.clear()
    await app.start()
    ids = await app.starmap("tally", [(i,) for i in range(200)])
    while len(await app.list_results(status="success")) < 40:  # mid-run
        await asyncio.sleep(0.02)
    server.stop()
    await asyncio.sleep(0.5)  # the app meets a dead server for a while
    server.start()
    records = [await app.wait_for_result(i, timeout=120) for i in ids]
    await app.stop()
    failed = [(r.task_id, r.error) for r in records if r.status is not TaskStatus.SUCCESS]
    assert [r.result for r in records] == list(range(200)), failed[:3]
    assert {r.status for r in records} == {TaskStatus.SUCCESS}
    # one worker process: the tasks it held or had finished while Redis was away (their
    # leases lapsed) are not run again when its takes find them
    assert [RUNS[f"tally:{i}"] for i in range(200)] == [1] * 200


def fault_app(
    server: RedisServer, budget: float = 10.0, prefix: str = "faults", **connection: float
) -> Flowrra:
    """An app on ``server`` with ``nap``; ``connection``: max_connections, socket_timeout
    for both broker and backend."""
    url = server.url()
    app = Flowrra(
        Config(
            broker=BrokerConfig(
                url, queue_key=f"{prefix}:queue", retry_budget=budget, **connection
            ),
            backend=BackendConfig(f"{url}?key_prefix={prefix}", retry_budget=budget, **connection),
            secret_key=SECRET,
        )
    )
    app.task(max_retries=0)(redis_app.nap)
    return app


async def test_calls_ride_out_a_short_outage(server: RedisServer) -> None:
    app = fault_app(server)
    await app.start()
    await app.wait_for_result(await app.submit("nap", 0, 0.0), timeout=10)
    server.stop(signal.SIGKILL)  # kill -9, then back a second later

    def restart() -> None:
        time.sleep(1.0)
        server.start()

    back = asyncio.get_running_loop().run_in_executor(None, restart)
    task_id = await app.submit("nap", 7, 0.0)  # while the server is down
    listed = await app.list_results()
    record = await app.wait_for_result(task_id, timeout=30)
    await back
    await app.stop()
    assert record.result == 7 and len(listed) >= 1


async def test_after_the_retry_budget_the_error_names_the_url_without_password(
    server: RedisServer,
) -> None:
    app = fault_app(server, budget=0.5)
    await app.start(workers=False)
    server.stop(signal.SIGKILL)
    started = time.monotonic()
    with pytest.raises(BrokerError) as submit_error:
        await app.submit("nap", 1, 0.0)
    with pytest.raises(BackendError) as read_error:
        await app.list_results()
    assert time.monotonic() - started < 5
    for error in (submit_error.value, read_error.value):
        assert f"redis://alice:***@127.0.0.1:{server.port}/0" in str(error)
        assert "wonderland-pw" not in str(error)
    server.start()
    await app.stop()


def frozen(server: RedisServer) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=0.1) as sock:
            sock.sendall(b"PING\r\n")
            sock.recv(16)
            return False
    except OSError:
        return True


async def test_a_wait_timeout_holds_while_redis_is_paused(server: RedisServer) -> None:
    app = fault_app(server)
    await app.start(workers=False)
    task_id = await app.submit("nap", 1, 0.0)  # no worker: it stays pending
    app.results_backend._fresh.clear()  # make the wait read Redis, as another process would
    pause = server.pause(3)
    deadline = time.monotonic() + 5
    while not frozen(server):  # DEBUG SLEEP has reached the server
        assert time.monotonic() < deadline
    started = time.monotonic()
    with pytest.raises(TaskTimeoutError):
        await app.wait_for_result(task_id, timeout=1)
    assert time.monotonic() - started < 1.1
    pause.wait()
    await app.stop()


@pytest.mark.parametrize("own_reader", [True, False], ids=["hiredis-line", "redis-py-methods"])
async def test_writes_survive_a_script_flush_and_killed_connections(
    server: RedisServer, own_reader: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write script runs over a connection of its own (flowrra.redis_wire.ScriptLine):
    a server that forgot the script (SCRIPT FLUSH, a restart without it) or a connection
    killed under it costs the next submit nothing but a reload or a reconnect. Both ways
    the line can read its socket are run."""
    import redis.asyncio as aioredis

    from flowrra.redis_wire import ScriptLine

    monkeypatch.setattr(ScriptLine, "own_reader", own_reader)
    app = fault_app(server)
    admin = aioredis.from_url(f"redis://127.0.0.1:{server.port}/0")
    await app.start()
    try:
        first = await app.wait_for_result(await app.submit("nap", 1, 0.0), timeout=10)
        await admin.script_flush()
        second = await app.wait_for_result(await app.submit("nap", 2, 0.0), timeout=10)
        killed = await admin.client_kill_filter(_type="normal", skipme=True)
        started = time.monotonic()
        third = await app.wait_for_result(await app.submit("nap", 3, 0.0), timeout=10)
        took = time.monotonic() - started
    finally:
        await app.stop()
        await admin.aclose()
    assert (first.result, second.result, third.result) == (1, 2, 3)
    assert killed >= 1
    assert took < 1.0  # reconnected at once, not after the retry backoff's first sleep


async def test_writes_sent_without_waiting_keep_their_order_through_a_lost_connection(
    server: RedisServer,
) -> None:
    """A result write goes out from the call that finds the write line idle and is
    finished from its reply's callback (flowrra.redis_client.Batcher's fast way). When
    its connection is gone under it, it and the writes queued behind it go the awaited
    way, which reconnects, in the order they were made: a task's RUNNING then SUCCESS
    records end as SUCCESS, and ``drain`` returns only once both are in Redis."""
    import redis.asyncio as aioredis

    from flowrra.backends.redis import RedisBackend
    from flowrra.task import new_task_id

    backend = RedisBackend(f"redis://127.0.0.1:{server.port}/0", key_prefix="fastway")
    admin = aioredis.from_url(f"redis://127.0.0.1:{server.port}/0")

    try:
        warm = new_task_id()
        await backend.store(warm, _record(warm, TaskStatus.SUCCESS))  # the line is open now
        ids = [new_task_id() for _ in range(3)]
        for round_ in range(2):
            if round_:  # the line's connection killed: the next write meets it closed
                assert await admin.client_kill_filter(_type="normal", skipme=True) >= 1
            for task_id in ids:
                backend.store_nowait(task_id, _record(task_id, TaskStatus.RUNNING))
                backend.store_nowait(task_id, _record(task_id, TaskStatus.SUCCESS))
            await asyncio.wait_for(backend.drain(), timeout=10)
            stored = [await backend.get(task_id) for task_id in ids]
            assert [r.status if r else None for r in stored] == [TaskStatus.SUCCESS] * 3
            ids = [new_task_id() for _ in range(3)]
    finally:
        await backend.close()
        await admin.aclose()


async def test_batches_prepared_ahead_keep_their_order_through_a_lost_connection(
    server: RedisServer,
) -> None:
    """A full batch (4,000 writes) queued behind a write in flight is prepared while that
    write is out, and sent as soon as its reply lands. 6,000 tasks each written RUNNING
    then SUCCESS end SUCCESS: with the line open, and with its connection lost while the
    first batch is out and the next one is prepared. Then the first batch goes the
    awaited way, and the ones behind it follow, in order."""
    from flowrra.backends.redis import RedisBackend
    from flowrra.task import new_task_id

    backend = RedisBackend(f"redis://127.0.0.1:{server.port}/0", key_prefix="ahead")

    def write(ids: list[str]) -> None:
        for task_id in ids:
            backend.store_nowait(task_id, _record(task_id, TaskStatus.RUNNING))
            backend.store_nowait(task_id, _record(task_id, TaskStatus.SUCCESS))

    try:
        warm = new_task_id()
        await backend.store(warm, _record(warm, TaskStatus.SUCCESS))  # the line is open now
        batcher, line = backend._writes, backend._line()
        for lose in (False, True):
            ids = [new_task_id() for _ in range(6000)]
            write(ids[:2000])  # the first batch: sent at the end of this turn
            await asyncio.sleep(0)
            assert line._replies is not None and line._replies.waiting  # it is out
            write(ids[2000:])  # 8,000 writes behind it: the next 4,000 prepared now
            assert batcher._ahead is not None
            if lose:
                line._transport.abort()  # the first batch fails: the awaited way
            assert await _statuses_once_drained(backend, ids) == {TaskStatus.SUCCESS: 6000}
    finally:
        await backend.close()


async def test_a_full_batch_goes_out_in_the_turn_it_filled_and_keeps_its_order(
    server: RedisServer,
) -> None:
    """Writes made in one turn of the loop (a gather of thousands of submits) go out as
    soon as a whole batch (4,000) is queued, not when the turn ends: Redis stores the first
    batch while the turn makes the rest. 6,000 tasks each written RUNNING then SUCCESS in
    one turn end SUCCESS, with the line open and with its connection lost while the first
    batch is out; ``drain`` returns only once every write is in Redis."""
    from flowrra.backends.redis import RedisBackend
    from flowrra.task import new_task_id

    backend = RedisBackend(f"redis://127.0.0.1:{server.port}/0", key_prefix="turn")

    try:
        warm = new_task_id()
        await backend.store(warm, _record(warm, TaskStatus.SUCCESS))  # the line is open now
        line = backend._line()
        for lose in (False, True):
            await backend.drain()  # idle: the next write goes the fast way
            ids = [new_task_id() for _ in range(6000)]
            sent_in_turn = []
            for task_id in ids:  # one turn: no await in this loop
                backend.store_nowait(task_id, _record(task_id, TaskStatus.RUNNING))
                backend.store_nowait(task_id, _record(task_id, TaskStatus.SUCCESS))
                sent_in_turn.append(bool(line._replies and line._replies.waiting))
            assert sent_in_turn.index(True) == 1999  # the 4,000th write sent the batch
            if lose:
                line._transport.abort()  # the first batch fails: the awaited way
            assert await _statuses_once_drained(backend, ids) == {TaskStatus.SUCCESS: 6000}
    finally:
        await backend.close()


@pytest.mark.parametrize("lose", [False, True], ids=["line-open", "connection-lost"])
async def test_a_burst_of_submits_keeps_two_batches_out_and_loses_none(
    server: RedisServer, lose: bool
) -> None:
    """A gather of 9,000 submits: the first 4,000 go out while the turn goes on, and the
    next 4,000 (new tasks only, which need no order among batches) go out before the
    first batch's reply, so Redis always has the next batch at hand. With the connection
    lost while both are out, both are written again the awaited way, in order: no
    submit fails, and every task is recorded and queued exactly once."""
    app = fault_app(server, prefix=f"burst{int(lose)}")
    await app.start(workers=False)
    line = app._backend._line()  # type: ignore[attr-defined]
    out: list[int] = []

    async def meanwhile() -> None:  # runs in the same turn, after 8,000 submits' first steps
        out.append(len(line._replies.waiting))
        if lose:
            line._transport.abort()

    try:
        calls = [app.submit("nap", i, 0.0) for i in range(9000)]
        calls.insert(8000, meanwhile())
        got = await asyncio.wait_for(asyncio.gather(*calls), timeout=60)
        ids = [task_id for task_id in got if task_id is not None]
        counts = await app.io_executor.broker.counts()  # type: ignore[union-attr]
        statuses = await app._backend.count_by_status()  # type: ignore[attr-defined]
    finally:
        await app.stop()
    assert out == [2]  # two batches were out at once
    assert len(set(ids)) == 9000
    assert counts["queued"] == 9000 and counts["dead"] == 0
    assert statuses["pending"] == 9000


@pytest.mark.parametrize("own_reader", [True, False], ids=["hiredis-line", "redis-py-methods"])
async def test_a_line_never_writes_into_a_connection_the_server_closed(
    server: RedisServer, own_reader: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection that sat idle in the pool while the server closed it (a restart, a
    CLIENT KILL) is made again before a script line takes it over. Before, redis-py 8's
    pool handed it out unchecked and the line's writes went into a closed transport,
    unanswered until ``socket_timeout``: after a Redis restart, every result write stalled
    that long, the finished tasks' leases lapsed meanwhile and they ran again and again."""
    import redis.asyncio as aioredis

    from flowrra.redis_client import connect
    from flowrra.redis_wire import ScriptLine

    monkeypatch.setattr(ScriptLine, "own_reader", own_reader)
    client = connect(server.url(), max_connections=4, socket_timeout=60.0)
    admin = aioredis.from_url(f"redis://127.0.0.1:{server.port}/0")
    try:
        await client.ping()  # its connection now waits in the pool
        (idle,) = client.connection_pool._available_connections
        assert await admin.client_kill_filter(_type="normal", skipme=True) >= 1
        while not idle._reader.at_eof():  # this process has seen the server close it
            await asyncio.sleep(0.01)
        line = ScriptLine(client, "return ARGV[1]")
        reply = await asyncio.wait_for(line(["after the kill"]), timeout=10)
    finally:
        await client.aclose()
        await admin.aclose()
    assert reply == b"after the kill"


async def test_a_line_waiting_on_a_frozen_server_sleeps_instead_of_polling(
    server: RedisServer,
) -> None:
    """A script line keeps the loop polling for a reply only for a short window after a
    request (FLOWRRA_REDIS_BUSY_POLL_US, 500 us by default): a call that waits most of a
    second on a frozen server (DEBUG SLEEP) costs the process next to no CPU, and a line
    whose replies keep coming later than the window stops polling."""
    from flowrra.redis_client import connect
    from flowrra.redis_wire import ScriptLine

    # ARGV[2]: milliseconds the script keeps the server busy before it answers
    slow = """
    if ARGV[2] then
        local t = redis.call('TIME')
        local until_us = t[1] * 1000000 + t[2] + ARGV[2] * 1000
        repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] >= until_us
    end
    return ARGV[1]"""
    client = connect(server.url(), max_connections=4, socket_timeout=60.0)
    line = ScriptLine(client, slow, busy_poll=0.0005)
    try:
        assert [await line([str(i)]) for i in range(20)] == [str(i).encode() for i in range(20)]
        pause = server.pause(1.0)
        deadline = time.monotonic() + 5
        while not frozen(server):
            assert time.monotonic() < deadline
        cpu, wall = time.process_time(), time.monotonic()
        reply = await asyncio.wait_for(line(["after the pause"]), timeout=10)
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        pause.wait()
        for _ in range(8):  # replies 3 ms after each request, six times the window
            assert await line(["slow", "3"]) == b"slow"
        poll = line._replies.poll if line._replies is not None else None
    finally:
        await client.aclose()
    assert reply == b"after the pause"
    assert wall > 0.5  # it did wait on the frozen server
    assert cpu < 0.2, f"{cpu:.3f}s of CPU while waiting {wall:.3f}s"
    assert poll is not None and poll.score < 0 and not poll.turning  # it stopped polling


@pytest.mark.parametrize("raw", ["fast", "-1", "200000"])
async def test_a_bad_busy_poll_setting_is_refused_when_the_app_is_made(
    raw: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FLOWRRA_REDIS_BUSY_POLL_US must be whole microseconds from 0 to 100000: anything
    else is a ConfigError naming the variable when the Redis broker or backend is made,
    not a failure on the first submit; 0 turns the polling off."""
    from flowrra.exceptions import ConfigError
    from flowrra.redis_wire import busy_poll_window

    monkeypatch.setenv("FLOWRRA_REDIS_BUSY_POLL_US", raw)
    with pytest.raises(ConfigError, match="FLOWRRA_REDIS_BUSY_POLL_US must be a whole number"):
        Flowrra(Config(broker=BrokerConfig("redis://127.0.0.1:1/0"), secret_key=SECRET))
    monkeypatch.setenv("FLOWRRA_REDIS_BUSY_POLL_US", "0")
    assert busy_poll_window() == 0.0


async def test_the_write_line_counts_toward_max_connections(server: RedisServer) -> None:
    """The backend's write line is a connection of its pool: with max_connections=2, 500
    concurrent submits and waits still use at most two connections, and all succeed."""
    import redis.asyncio as aioredis

    app = fault_app(server, prefix="bounded", max_connections=2)
    admin = aioredis.from_url(f"redis://127.0.0.1:{server.port}/0")
    await app.start(workers=False)
    try:
        ids = await asyncio.gather(*(app.submit("nap", i, 0.0) for i in range(500)))
        reads = await asyncio.gather(*(app.get_result(i) for i in ids))
        clients = await admin.client_list()
    finally:
        await app.stop()
        await admin.aclose()
    assert [r.status for r in reads] == [TaskStatus.PENDING] * 500
    # besides this admin connection: each of broker and backend holds at most 2 normal
    # connections (pub/sub listeners have their own, as before)
    normal = [c for c in clients if c.get("flags") != "P" and "client-list" not in c.get("cmd", "")]
    assert len(normal) <= 4, normal


@pytest.mark.parametrize("own_reader", [True, False], ids=["hiredis-line", "redis-py-methods"])
async def test_a_submit_outlasts_a_pause_longer_than_the_socket_timeout(
    server: RedisServer, own_reader: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write whose reply is overdue (socket_timeout 0.3 s, server frozen 1.5 s) is
    dropped and made again within the retry budget: the submit returns once the server
    is back, and its task runs once."""
    from flowrra.redis_wire import ScriptLine

    monkeypatch.setattr(ScriptLine, "own_reader", own_reader)
    app = fault_app(server, prefix="paused", socket_timeout=0.3)
    await app.start()
    try:
        await app.wait_for_result(await app.submit("nap", 0, 0.0), timeout=10)
        pause = server.pause(1.5)
        deadline = time.monotonic() + 5
        while not frozen(server):
            assert time.monotonic() < deadline
        task_id = await app.submit("nap", 9, 0.0)
        record = await app.wait_for_result(task_id, timeout=30)
        pause.wait()
        listed = [r.task_id for r in await app.list_results()]
    finally:
        await app.stop()
    assert record.result == 9 and record.status is TaskStatus.SUCCESS
    assert listed.count(task_id) == 1


@pytest.mark.parametrize("own_reader", [True, False], ids=["hiredis", "redis-py-pubsub"])
async def test_waits_and_wake_ups_come_back_after_subscriptions_are_killed(
    server: RedisServer, own_reader: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A submit-only app waits on tasks another app's workers run: the worker hears of
    them through the broker's subscription, the waiter of their ends through the
    backend's. Both subscriptions killed (CLIENT KILL TYPE pubsub) are made again, and
    the next task goes through both as before."""
    import redis.asyncio as aioredis

    from flowrra.redis_wire import ScriptLine

    monkeypatch.setattr(ScriptLine, "own_reader", own_reader)
    submitter = fault_app(server, prefix="subs")
    worker = fault_app(server, prefix="subs")
    admin = aioredis.from_url(f"redis://127.0.0.1:{server.port}/0")
    await submitter.start(workers=False)
    await worker.start()
    try:
        first = await submitter.wait_for_result(await submitter.submit("nap", 1, 0.0), timeout=10)
        killed = await admin.client_kill_filter(_type="pubsub")
        second = await submitter.wait_for_result(await submitter.submit("nap", 2, 0.0), timeout=10)
    finally:
        await worker.stop()
        await submitter.stop()
        await admin.aclose()
    assert (first.result, second.result) == (1, 2)
    assert killed >= 2  # the broker's and the backend's of each app that listens


GATES: dict[str, asyncio.Event] = {}
RUNS: dict[str, int] = {}


async def tally(i: int) -> int:
    """Counts its runs for ``i``; returns ``i`` after a short nap."""
    RUNS[f"tally:{i}"] = RUNS.get(f"tally:{i}", 0) + 1
    await asyncio.sleep(0.02)
    return i


async def gated(key: str) -> str:
    """Counts its runs under ``key`` and returns once ``GATES[key]`` is set."""
    RUNS[key] = RUNS.get(key, 0) + 1
    await GATES[key].wait()
    return key


async def test_a_task_whose_lease_lapses_while_it_runs_here_runs_once(
    server: RedisServer,
) -> None:
    """Redis away for longer than the lease (a restart, a partition) lets the lease of a
    task lapse while its worker still runs it; the worker's next take leases it again.
    That worker must not start it a second time, nor, after five such lapses, fail it as
    undeliverable while it still runs. Before, a worker ran it once per lapse and then
    failed it: after a Redis restart, tasks ran five times and some ended FAILED."""
    import redis.asyncio as aioredis

    app = fault_app(server, prefix="lapse")
    app.task(max_retries=0)(gated)
    GATES["lapse"] = asyncio.Event()
    RUNS.clear()
    broker = app.io_executor.broker
    inflight, deliveries = broker.keys["inflight"], broker.keys["deliveries"]  # type: ignore[union-attr]
    admin = aioredis.from_url(f"redis://127.0.0.1:{server.port}/0")
    await app.start()
    try:
        task_id = await app.submit("gated", "lapse")
        while RUNS.get("lapse", 0) == 0:
            await asyncio.sleep(0.01)
        (member,) = await admin.zrange(inflight, 0, -1)
        for lapse in range(1, 6):  # the lease lapses, the worker's next take finds it
            while int(await admin.hget(deliveries, task_id) or 0) < lapse:
                if await admin.zscore(inflight, member) is None:
                    break  # no longer leased: ended (as undeliverable, before the fix)
                await admin.zadd(inflight, {member: 0}, xx=True)
                await admin.publish(broker.channel, 1)  # type: ignore[union-attr]
                await asyncio.sleep(0.02)
        GATES["lapse"].set()
        record = await app.wait_for_result(task_id, timeout=10)
        left = await admin.zrange(inflight, 0, -1), await admin.hlen(deliveries)
    finally:
        await app.stop()
        await admin.aclose()
    assert (record.status, record.result, RUNS["lapse"]) == (TaskStatus.SUCCESS, "lapse", 1)
    assert left == ([], 0)  # acknowledged: nothing of it is left leased or counted


async def test_a_busy_loop_outside_task_bodies_is_not_blamed_on_a_task(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The loop of a process with workers blocked by code that is no task's (here the
    test itself; in a notebook, a gather of thousands of submits) is logged at INFO
    without advice meant for task bodies; before, a warning blamed the tasks held."""
    app = fault_app(server, prefix="busy")
    app.task(max_retries=0)(gated)
    GATES["busy"] = asyncio.Event()
    await app.start()
    try:
        task_id = await app.submit("gated", "busy")  # held, waiting: not blocking
        while RUNS.get("busy", 0) == 0:
            await asyncio.sleep(0.01)
        with caplog.at_level("INFO", logger="flowrra.worker"):
            time.sleep(2.0)  # blocks the loop, outside any task's body
            await asyncio.sleep(0)
        GATES["busy"].set()
        await app.wait_for_result(task_id, timeout=10)
    finally:
        await app.stop()
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if "loop" in r.getMessage()]
    assert any(level == "INFO" and "outside any task's body" in m for level, m in lines), lines
    assert not any("must await" in m for _, m in lines), lines
