"""Redis is shared ground: garbage, swapped values and a wrong secret written into
flowrra's keys never stop a worker and never make it run what was not submitted."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import pytest

from flowrra import Flowrra, TaskStatus
from flowrra.exceptions import SignatureError

from . import redis_app
from .services import REDIS_URL

SECRET = "hostile-secret-0123456789abcdef"


def app_for(prefix: str, secret: str | None = SECRET) -> Flowrra:
    return redis_app.make_app(prefix, REDIS_URL, secret)


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    """Wait for ``check()`` to hold (a condition, with a deadline that fails clearly)."""
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_malformed_members_are_set_aside_and_workers_go_on(
    prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = app_for(prefix)
    broker = app.io_executor.broker
    await app.start()
    client = broker.client
    await client.zadd(broker.keys["inflight"], {"no-separator": 0, "x:not-a-priority": 0})
    await client.zadd(broker.keys["delayed"], {"garbage": 0})
    await client.zadd(broker.keys["queue"], {"ghost-id": 0})  # queued, no payload
    record = await app.wait_for_result(await app.submit("nap", 1, 0.0), timeout=10)
    assert record.result == 1

    async def three_dead() -> bool:
        return await client.llen(broker.keys["dead"]) == 3

    await until(three_dead)
    await app.stop()
    assert "malformed entry" in caplog.text and "without a payload" in caplog.text
    assert await client.zcard(broker.keys["inflight"]) == 0
    await broker.close()


async def test_keys_of_the_wrong_type_are_renamed_and_workers_go_on(
    prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = app_for(prefix)
    broker, backend = app.io_executor.broker, app.results_backend
    await broker.client.set(broker.keys["inflight"], "not a sorted set")
    await broker.client.set(broker.keys["payloads"], "not a hash")
    await broker.client.set(f"{backend.prefix}:status:success", "not a sorted set")
    async with app:
        record = await app.wait_for_result(await app.submit("nap", 2, 0.0), timeout=10)
        listed = await app.list_results(status="success")
    assert record.result == 2 and [r.task_id for r in listed] == [record.task_id]
    client = broker.client
    assert await client.get(f"{broker.keys['inflight']}:corrupt") == b"not a sorted set"
    assert await client.get(f"{backend.prefix}:status:success:corrupt") == b"not a sorted set"
    assert "renamed to" in caplog.text
    await broker.close()


async def test_limit_keys_of_the_wrong_type_are_renamed_and_limited_tasks_run(
    prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = app_for(prefix)
    app.task(name="paced", rate_limit="100/s", concurrency=2)(redis_app.nap)
    q = app.io_executor.broker.queue_key
    client = app.io_executor.broker.client
    await client.hset(f"{q}:limit:paced", "not", "a string")  # keys of one task name
    await client.set(f"{q}:running:paced", "not a sorted set")
    await client.set(f"{q}:held:ghost", "not a sorted set")  # a name that is due now
    await client.zadd(f"{q}:held", {"ghost": 0})
    async with app:
        ids = await app.starmap("paced", [(i, 0.0) for i in range(4)])
        records = [await app.wait_for_result(i, timeout=10) for i in ids]
    assert [r.result for r in records] == [0, 1, 2, 3]
    for key in (f"{q}:limit:paced", f"{q}:running:paced", f"{q}:held:ghost"):
        assert await client.exists(f"{key}:corrupt"), key
        assert f"Redis key {key} holds a" in caplog.text
    assert await client.zscore(f"{q}:held", "ghost") is None  # its entry went with it
    await app.io_executor.broker.close()


async def test_a_name_index_or_unique_key_of_the_wrong_type_does_not_stop_submits(
    prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = app_for(prefix)
    backend = app.results_backend
    client = backend.client
    # keys of a task name and of a unique key not used yet, so not known to any index
    await client.set(f"{backend.prefix}:name:nap", "not a sorted set")
    await client.hset(f"{backend.prefix}:unique:report", "not", "a string")
    async with app:
        first = await app.wait_for_result(await app.submit("nap", 1, 0.0), timeout=10)
        unique = await app.apply("nap", (2, 0.0), unique_key="report")
        again = await app.apply("nap", (3, 0.0), unique_key="report")
        second = await app.wait_for_result(unique, timeout=10)
        listed = await app.list_results(task_name="nap")
    assert (first.result, second.result, again) == (1, 2, unique)
    assert {r.task_id for r in listed} == {first.task_id, unique}
    for key in (f"{backend.prefix}:name:nap", f"{backend.prefix}:unique:report"):
        assert await client.exists(f"{key}:corrupt"), key
        assert f"Redis key {key} holds a" in caplog.text
    await app.io_executor.broker.close()


async def test_an_unusable_arrival_counter_starts_again(prefix: str) -> None:
    submitter, worker = app_for(prefix), app_for(prefix)
    broker = submitter.io_executor.broker
    seq = f"{broker.queue_key}:seq"
    client = broker.client
    values = ["not a number", "99999999999999999999", "-5", "1099511627776"]
    await submitter.start(workers=False)
    ids = []
    for i, value in enumerate(values):  # each breaks the next submit's queue entry
        await client.set(seq, value)
        ids.append(await submitter.submit("nap", i, 0.0))
    await client.set(seq, "not a number")  # and the move of a delayed task to the queue
    ids.append(await submitter.apply("nap", (9, 0.0), countdown=0.05))
    await submitter.stop()
    async with worker:
        done = [await worker.wait_for_result(task_id, 10) for task_id in ids]
    assert [r.result for r in done] == [0, 1, 2, 3, 9]
    dead = [m.decode() for m in await client.lrange(broker.keys["dead"], 0, -1)]
    assert dead == [f"malformed value of {seq}: {v}" for v in [*values, "not a number"]]
    await broker.close()


async def test_an_unusable_delivery_count_starts_again(
    prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    submitter = app_for(prefix)
    broker = submitter.io_executor.broker
    await submitter.start(workers=False)
    task_id = await submitter.submit("nap", 4, 0.0)
    client = broker.client
    # as if a worker took it and died: its lease has lapsed; and its count is garbage
    await client.zrem(broker.keys["queue"], task_id)
    await client.zadd(broker.keys["inflight"], {f"0:{task_id}": 0})
    await client.hset(broker.keys["deliveries"], task_id, "garbage")
    await submitter.stop()
    worker = app_for(prefix)
    async with worker:
        record = await worker.wait_for_result(task_id, timeout=10)
    assert record.status is TaskStatus.SUCCESS and record.result == 4
    dead = [m.decode() for m in await client.lrange(broker.keys["dead"], 0, -1)]
    assert dead == [f"malformed value of {broker.keys['deliveries']} for {task_id}"]
    assert "Dead-lettered a malformed entry" in caplog.text
    await broker.close()


async def test_limits_out_of_range_are_ignored_and_takes_go_on(prefix: str) -> None:
    submitter = app_for(prefix)
    broker = submitter.io_executor.broker
    await submitter.start(workers=False)
    ids = [await submitter.submit("nap", i, 0.0) for i in range(4)]
    garbage = ["inf|0|0|nap", "1e308|1e308|0|nap", "0|0|1e300|nap", "nan|0|nan|nap"]
    for task_id, entry in zip(ids, garbage, strict=True):  # a limits entry of each
        await broker.client.hset(f"{broker.queue_key}:limits", task_id, entry)
    await submitter.stop()
    worker = app_for(prefix)
    async with worker:  # they run as tasks without limits
        done = [await worker.wait_for_result(task_id, timeout=10) for task_id in ids]
    assert [r.result for r in done] == [0, 1, 2, 3]
    await broker.close()


async def test_a_unique_key_entry_out_of_range_lets_its_key_go_at_once(prefix: str) -> None:
    submitter = app_for(prefix)
    backend = submitter.results_backend
    await submitter.start(workers=False)
    ids = [await submitter.apply("nap", (i, 0.0), unique_key=f"k{i}") for i in range(3)]
    entries = ["inf|k0", "1e300|k1", "nan|k2"]  # what each holds, rewritten by someone
    for task_id, entry in zip(ids, entries, strict=True):
        await backend.client.hset(f"{backend.prefix}:unique_keys", task_id, entry)
    await submitter.stop()
    worker = app_for(prefix)
    async with worker:
        done = [await worker.wait_for_result(task_id, timeout=10) for task_id in ids]
        assert [r.result for r in done] == [0, 1, 2]
        fresh = await worker.apply("nap", (3, 0.0), unique_key="k0")  # the key is free
        assert fresh not in ids and (await worker.wait_for_result(fresh, 10)).result == 3
    await backend.close()


async def test_a_rate_step_written_far_ahead_does_not_stall_its_task(prefix: str) -> None:
    app = app_for(prefix)
    app.task(name="paced", rate_limit="100/s")(redis_app.nap)
    client = app.io_executor.broker.client
    key = f"{app.io_executor.broker.queue_key}:limit:paced"
    async with app:
        for i, value in enumerate(["inf", "nan", "1e300", str(time.time() + 3600)]):
            await client.set(key, value)  # when the next start may come, rewritten
            record = await app.wait_for_result(await app.submit("paced", i, 0.0), 10)
            assert record.result == i
    await app.io_executor.broker.close()


async def test_queue_scores_no_submit_gives_leave_nothing_in_flight(prefix: str) -> None:
    submitter = app_for(prefix)
    broker = submitter.io_executor.broker
    await submitter.start(workers=False)
    ids = [await submitter.submit("nap", i, 0.0) for i in range(4)]
    scores = [float("inf"), float("-inf"), 1e300, -1e300]  # rewritten by someone else
    await broker.client.zadd(broker.keys["queue"], dict(zip(ids, scores, strict=True)))
    await submitter.stop()
    worker = app_for(prefix)
    async with worker:
        done = [await worker.wait_for_result(task_id, timeout=10) for task_id in ids]
    assert sorted(r.result for r in done) == [0, 1, 2, 3]
    counts = await broker.counts()  # after stop: acknowledgements are flushed
    assert counts == {"queued": 0, "delayed": 0, "inflight": 0, "dead": 0, "held": 0}
    await broker.close()


async def test_a_record_key_of_another_type_is_set_aside_with_a_clear_error(
    prefix: str,
) -> None:
    submitter = app_for(prefix)
    backend = submitter.results_backend
    await submitter.start(workers=False)
    task_id = await submitter.submit("nap", 5, 0.0)
    key = f"{backend.prefix}:result:{task_id}"
    await backend.client.delete(key)
    await backend.client.hset(key, "not", "a record")  # written by something else
    with pytest.raises(SignatureError, match=rf"Redis held a hash there.*{key}:corrupt"):
        await submitter.get_result(task_id)
    assert await submitter.get_result(task_id) is None  # set aside: no record now
    assert await backend.client.hgetall(f"{key}:corrupt") == {b"not": b"a record"}
    worker = app_for(prefix)
    async with worker:  # the task still runs, and its records are written again
        record = await submitter.wait_for_result(task_id, timeout=10)
    await submitter.stop()
    assert record.status is TaskStatus.SUCCESS and record.result == 5
    await backend.close()


async def test_a_task_whose_payload_was_removed_ends_failed(prefix: str) -> None:
    submitter = app_for(prefix)
    await submitter.start(workers=False)
    broker = submitter.io_executor.broker
    task_id = await submitter.submit("nap", 1, 0.0)
    await broker.client.hdel(broker.keys["payloads"], task_id)
    worker = app_for(prefix)
    async with worker:
        record = await submitter.wait_for_result(task_id, timeout=10)
    await submitter.stop()
    assert record.status is TaskStatus.FAILED and "missing" in (record.error or "")


def greeter(greeting: str) -> Callable[[str], Awaitable[str]]:
    async def greet(name: str) -> str:  # a closure: shipped by value, as from a notebook
        return f"{greeting}, {name}"

    return greet


async def test_a_function_copied_onto_another_digest_is_refused(prefix: str) -> None:
    submitter = app_for(prefix)
    greet, shout = greeter("hello"), greeter("HEY")
    submitter.task(name="greet", max_retries=0)(greet)
    submitter.task(name="shout", max_retries=0)(shout)
    await submitter.start(workers=False)
    shout_id = await submitter.submit("shout", "bob")
    greet_id = await submitter.submit("greet", "alice")
    remote = submitter.io_executor._remote
    assert remote is not None
    functions = submitter.io_executor.broker.keys["functions"]
    client = submitter.io_executor.broker.client
    # someone with write access but no secret copies shout's signed blob onto greet
    shout_blob = await client.hget(functions, remote.submits._digests[shout][0])
    await client.hset(functions, remote.submits._digests[greet][0], shout_blob)
    worker = app_for(prefix)  # another app: it has no function loaded yet
    async with worker:
        shouted = await submitter.wait_for_result(shout_id, timeout=10)
        greeted = await submitter.wait_for_result(greet_id, timeout=10)
    await submitter.stop()
    assert shouted.result == "HEY, bob"
    assert greeted.status is TaskStatus.FAILED and greeted.result is None
    assert greeted.error_type == "SignatureError"
    assert await client.hget(functions, remote.submits._digests[greet][0]) is None  # set aside
    assert await client.llen(submitter.io_executor.broker.keys["dead"]) == 1
    await worker.io_executor.broker.close()


async def test_a_record_copied_onto_another_id_is_refused(prefix: str) -> None:
    app = app_for(prefix)
    async with app:
        first = await app.submit("nap", 1, 0.0)
        second = await app.submit("nap", 2, 0.0)
        for task_id in (first, second):
            await app.wait_for_result(task_id, timeout=10)
        backend = app.results_backend
        blob = await backend.client.get(f"{backend.prefix}:result:{first}")
        await backend.client.set(f"{backend.prefix}:result:{second}", blob)
        with pytest.raises(SignatureError, match="failed its signature check"):
            await app.get_result(second)
        listed = await app.list_results()
        assert [r.task_id for r in listed] == [first]
        assert await backend.client.llen(f"{backend.prefix}:dead") >= 1


async def test_a_submitted_record_is_its_payload_and_cannot_move_either(prefix: str) -> None:
    """A task's fresh record and its queue payload are one signed blob, written once
    (one pickle of the arguments per submit): read as the record, it is the PENDING
    record with everything submitted. Copied onto another task, as its record or as its
    payload, it is refused: the signature binds it to its own id."""
    app = app_for(prefix)
    await app.start(workers=False)
    try:
        first = await app.apply("nap", (1,), {"seconds": 0.5}, priority=3)
        second = await app.submit("nap", 2)
        backend, broker = app.results_backend, app.io_executor.broker
        blob = await backend.client.get(f"{backend.prefix}:result:{first}")
        payload = await broker.client.hget(broker.keys["payloads"], first)  # type: ignore[union-attr]
        record = await app.get_result(first)
        listed = {r.task_id: r for r in await app.list_results(status="pending")}
        await backend.client.set(f"{backend.prefix}:result:{second}", blob)
        with pytest.raises(SignatureError, match="failed its signature check"):
            await app.get_result(second)
        await broker.client.hset(broker.keys["payloads"], second, blob)  # type: ignore[union-attr]
    finally:
        await app.stop()
    assert blob == payload
    assert record is not None and listed[first] == record
    assert (record.status, record.task_name, record.args, record.kwargs, record.priority) == (
        TaskStatus.PENDING, "nap", (1,), {"seconds": 0.5}, 3,
    )  # fmt: skip
    assert record.submitted_at is not None and record.started_at is None
    worker = app_for(prefix)  # the swapped payload is dead-lettered, never run
    async with worker:
        ended = await worker.wait_for_result(first, timeout=10)
        dead = await worker.io_executor.broker.client.llen(broker.keys["dead"])  # type: ignore[union-attr]
    assert ended.result == 1 and dead >= 1


async def test_a_worker_with_another_secret_fails_the_task_within_seconds(prefix: str) -> None:
    submitter = app_for(prefix)
    await submitter.start(workers=False)
    task_id = await submitter.submit("nap", 1, 0.0)
    worker = app_for(prefix, secret="another-secret-9876543210fedcba")
    started = time.monotonic()
    async with worker:
        record = await submitter.wait_for_result(task_id, timeout=10)
    await submitter.stop()
    assert time.monotonic() - started < 5
    assert record.status is TaskStatus.FAILED and record.error_type == "SignatureError"
    assert "FLOWRRA_SECRET_KEY" in (record.error or "")
    counts = await submitter.io_executor.broker.counts()
    assert counts["dead"] == 1 and counts["queued"] == counts["inflight"] == 0
    await submitter.io_executor.broker.close()


async def test_a_forged_dead_letter_notice_does_not_fail_a_queued_task(prefix: str) -> None:
    submitter = app_for(prefix)
    await submitter.start(workers=False)
    task_id = await submitter.submit("nap", 1, 0.0)
    backend = submitter.results_backend
    await backend.announce_dead_letter(task_id, "forged")  # anyone can publish this
    await submitter.stop()  # waits for the notice's handling to end
    record = await submitter.get_result(task_id)
    assert record is not None and record.status is TaskStatus.PENDING
    await backend.close()


async def test_forged_final_messages_never_end_a_wait(prefix: str) -> None:
    submitter = app_for(prefix)
    await submitter.start(workers=False)
    backend = submitter.results_backend
    await backend.listen()
    heard, waited, replayed = [await submitter.submit("nap", i, 0.0) for i in range(3)]
    origin = backend.origin  # every message this process publishes shows it
    client = backend.client

    async def forge(task_id: str, blob: bytes) -> None:
        # a client that can publish but has no secret: garbage, or a record of the task
        # that Redis holds (its signed PENDING blob) announced under a final status
        await client.publish(backend.channel, f"{origin}|success|{task_id}|".encode() + blob)

    pending_blob = await client.get(f"{backend.prefix}:result:{replayed}")
    await forge(heard, b"garbage")  # heard while nobody waits: kept unverified
    waiting = asyncio.ensure_future(submitter.wait_for_result(waited, timeout=30))
    await until(lambda: asyncio.sleep(0, waited in backend._waiters))
    await forge(waited, pending_blob.replace(replayed.encode(), waited.encode()))
    await forge(waited, await client.get(f"{backend.prefix}:result:{waited}"))
    await forge(replayed, pending_blob)
    await until(lambda: asyncio.sleep(0, replayed in backend._recent))  # all heard
    assert not waiting.done()
    worker = app_for(prefix)
    async with worker:
        records = [
            await submitter.wait_for_result(heard, timeout=10),
            await waiting,
            await submitter.wait_for_result(replayed, timeout=10),
        ]
    await submitter.stop()
    assert [(r.status, r.result) for r in records] == [(TaskStatus.SUCCESS, i) for i in range(3)]
    await backend.close()


async def test_malformed_worker_entries_are_skipped(prefix: str) -> None:
    app = app_for(prefix)
    broker = app.io_executor.broker
    await app.start(workers=False)
    try:
        key = broker.keys["workers"]
        now = time.time()
        garbage = {
            "not-json": "{", "a-list": "[1, 2]", "nan": '{"beat": "nan"}',
            "infinite": '{"beat": 1e999}', "no-beat": "{}", "ancient": '{"beat": "1e9"}',
            "a-string-beat": json.dumps({"beat": str(now - 1), "host": "elsewhere"}),
        }  # fmt: skip
        await broker.client.hset(key, mapping=garbage)
        listed = await broker.workers()
        left = {k.decode() for k in await broker.client.hkeys(key)}
    finally:
        await app.stop()
    assert [(w["id"], w["beat"], w["host"]) for w in listed] == [
        ("a-string-beat", now - 1, "elsewhere")
    ]
    assert "ancient" not in left and "not-json" in left  # lost for a day: dropped
    await broker.close()


async def test_submit_only_with_a_generated_secret_warns(
    prefix: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLOWRRA_SECRET_KEY", raising=False)
    app = app_for(prefix, secret=None)
    await app.start(workers=False)
    await app.stop()
    assert "workers in other processes cannot verify its tasks" in caplog.text


def test_a_password_in_the_query_is_hidden_everywhere() -> None:
    app = Flowrra.from_urls(
        broker="redis://127.0.0.1:1/0?password=hunter2secret",
        backend="redis://127.0.0.1:1/1?password=hunter2secret",
    )
    shown = " ".join([repr(app.io_executor.broker), repr(app.results_backend), repr(app.config)])
    assert "hunter2secret" not in shown and "password=***" in shown
