"""The Redis broker and backend against the real Redis, and `flowrra worker` processes."""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flowrra import BrokerConfig, BrokerError, Config, Flowrra, TaskStatus
from flowrra.serialization import Signer
from flowrra.task import Task, TaskResult, task_of

from . import redis_app
from .services import REDIS_URL

SECRET = "test-secret-0123456789abcdef"
ROOT = Path(__file__).resolve().parents[1]


def app_for(prefix: str) -> Flowrra:
    return redis_app.make_app(prefix, REDIS_URL, SECRET)


def start_worker(
    prefix: str, *extra: str, app: str = "tests.redis_app:app", secret: str = SECRET
) -> subprocess.Popen[str]:
    """``flowrra worker --app APP EXTRA...`` on the test Redis under ``prefix``; its
    output is piped (read it with :func:`stop_worker`)."""
    env = dict(os.environ, FLOWRRA_TEST_PREFIX=prefix, FLOWRRA_SECRET_KEY=secret)
    env["FLOWRRA_TEST_REDIS_URL"] = REDIS_URL
    return subprocess.Popen(
        [sys.executable, "-m", "flowrra", "worker", "--app", app, *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop_worker(process: subprocess.Popen[str]) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=60)
    return out


async def cancel_as_a_new_worker_starts(
    submitter: Flowrra, prefix: str, task_id: str
) -> tuple[bool, TaskResult | None]:
    """Cancel ``task_id`` while a new worker (1 s leases, one IO slot) starts; what
    cancel() returned and the task's record then."""
    cancelling = asyncio.ensure_future(submitter.cancel(task_id))
    worker = start_worker(prefix, "--lease", "1", "--io-workers", "1")
    try:
        cancelled = await asyncio.wait_for(cancelling, timeout=30)
        return cancelled, await submitter.get_result(task_id)
    finally:
        stop_worker(worker)


async def test_submit_wait_retry_and_list_on_redis(prefix: str) -> None:
    app = app_for(prefix)
    calls = 0

    @app.task(max_retries=2)
    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ValueError("not yet")
        return "ok"

    async with app:
        one = await app.submit("nap", 7)
        record = await app.wait_for_result(one, timeout=10)
        assert record.result == 7 and record.status is TaskStatus.SUCCESS
        retried = await app.wait_for_result(await app.submit(flaky), timeout=10)
        assert retried.result == "ok" and retried.retries == 2
        announced: list[tuple[str, tuple, str]] = []
        app.events.subscribe(
            lambda e: (
                announced.append((e["task"]["task_id"], e["task"]["args"], e["task"]["status"]))
                if e["type"] == "task.submitted"
                else None
            )
        )
        ids = await app.map("nap", range(300))  # some leased to its workers at once
        results = [(await app.wait_for_result(i, timeout=10)).result for i in ids]
        assert results == list(range(300))
        # a bulk submit announces each task once, as submitted, with its arguments
        assert [a for a in announced if a[0] in ids] == [
            (i, (n,), "pending") for n, i in enumerate(ids)
        ]
        listed = await app.list_results(status="success", task_name="nap", limit=5)
        assert [r.task_id for r in listed] == ids[::-1][:5]
        assert (await app.get_result(one)).args == (7,)
        frame = await app.results_frame(task_name="nap", limit=3)
        assert len(frame) == 3 and set(frame["status"]) == {"success"}
        assert str(frame["finished_at"].dt.tz) == "UTC" and frame["duration"].notna().all()
    counts = await app.io_executor.broker.counts()  # after stop: acks are flushed
    await app.io_executor.broker.close()
    assert counts == {"queued": 0, "delayed": 0, "inflight": 0, "dead": 0, "held": 0}


async def test_a_lapsed_lease_of_a_task_running_here_is_reported(
    prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The lease keeper renews with ZADD XX, which cannot bring back a lease that has
    already lapsed (the task went back to the queue, and another worker may run it too).
    It reports such a lease: a warning names the task still running here, and the tasks
    that only finished and were acknowledged meanwhile are not reported."""
    app = app_for(prefix)
    broker = app.io_executor.broker
    broker.lease = 0.6  # type: ignore[union-attr]  # renewed every 0.2 s
    gate = asyncio.Event()

    @app.task(max_retries=0)
    async def held() -> str:
        await gate.wait()
        return "done"

    caplog.set_level("WARNING", logger="flowrra.worker")
    async with app:
        for _ in range(5):  # quick tasks, acknowledged between the keeper's beats
            await app.wait_for_result(await app.submit("nap", 1), timeout=10)
        task_id, other = await app.submit(held), await app.submit(held)
        client, inflight = broker.client, broker.keys["inflight"]  # type: ignore[union-attr]
        member = f"0:{task_id}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10

        async def renewed(times: int) -> None:  # the other task's lease renewed ``times``
            scores: set[float] = set()
            while len(scores) <= times:
                assert loop.time() < deadline, caplog.text
                score = await client.zscore(inflight, f"0:{other}")
                if score is not None:
                    scores.add(score)
                await asyncio.sleep(0.02)

        while await client.zscore(inflight, member) is None:
            assert loop.time() < deadline
            await asyncio.sleep(0.01)
        await client.zrem(inflight, member)  # its lease lapsed
        while "lapsed while it runs here" not in caplog.text:
            assert loop.time() < deadline, caplog.text
            await asyncio.sleep(0.02)
        await renewed(2)  # two more beats: the lapsed lease is not reported again
        gate.set()
        records = [await app.wait_for_result(i, timeout=10) for i in (task_id, other)]
    assert [r.result for r in records] == ["done", "done"]
    warnings = [r.getMessage() for r in caplog.records if "lapsed" in r.getMessage()]
    assert len(warnings) == 1 and task_id in warnings[0] and "held" in warnings[0], warnings


async def test_priority_order_and_submit_only_app(prefix: str) -> None:
    submitter = app_for(prefix)
    await submitter.start(workers=False)
    ids = []
    for label, priority in [("c", 5), ("a1", 1), ("b", 3), ("a2", 1)]:
        ids.append(await submitter.submit("nap", label, priority=priority))
    seen: list[str] = []
    submitter.events.subscribe(
        lambda e: seen.append(e["task"]["args"][0]) if e["type"] == "task.started" else None
    )
    worker = app_for(prefix)
    worker.config.executor.io_workers = 1
    async with worker:
        for task_id in ids:
            await submitter.wait_for_result(task_id, timeout=10)
    await submitter.stop()
    assert seen == ["a1", "a2", "b", "c"]  # events of another app reached this one


async def test_redis_down_names_the_url_without_password() -> None:
    app = Flowrra.from_urls(
        broker="redis://user:hunter2secret@127.0.0.1:1/0",
        backend="redis://user:hunter2secret@127.0.0.1:1/1",
    )
    with pytest.raises(BrokerError) as info:
        await app.start()
    assert "127.0.0.1:1" in str(info.value) and "***" in str(info.value)
    assert "hunter2secret" not in str(info.value) and "hunter2secret" not in repr(
        app.io_executor.broker
    )


async def test_redis_broker_with_in_memory_results_runs_here_and_warns(
    prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """flowrra 0.1.8 ran this setup: this process's workers, results kept in memory."""
    app = Flowrra(
        Config(broker=BrokerConfig(REDIS_URL, queue_key=f"{prefix}:queue"), secret_key=SECRET)
    )
    assert "workers in other processes cannot report results" in caplog.text

    @app.task()
    async def double(x: int) -> int:
        return 2 * x

    async with app:
        ids = [await app.submit(double, i) for i in range(5)]
        assert [(await app.wait_for_result(i, timeout=10)).result for i in ids] == [
            0, 2, 4, 6, 8,
        ]  # fmt: skip
    assert (await app.io_executor.broker.counts())["inflight"] == 0
    await app.io_executor.broker.close()


async def test_tampered_message_is_never_executed(prefix: str, tmp_path: Path) -> None:
    app = app_for(prefix)
    marker = tmp_path / "ran"

    @app.task()
    async def touch(path: str) -> None:
        Path(path).touch()

    await app.start(workers=False)
    broker = app.io_executor.broker
    forged = Task("forged-id", "touch", (str(marker),), {})
    broker.signer = Signer("an-attacker-secret-123456")
    await broker.push_many([(forged, None, None, 0.0)])
    broker.signer = Signer(SECRET)
    good = await app.submit("nap", 1)
    await app.stop()
    async with app:
        assert (await app.wait_for_result(good, timeout=10)).result == 1
    counts = await app.io_executor.broker.counts()  # after stop: acks are flushed
    await app.io_executor.broker.close()
    assert not marker.exists()
    assert counts["dead"] == 1 and counts["queued"] == 0 and counts["inflight"] == 0


async def test_stop_without_wait_returns_tasks_to_the_queue(prefix: str) -> None:
    app = app_for(prefix)
    started = asyncio.Event()

    @app.task(max_retries=0)
    async def slow() -> str:
        started.set()
        await asyncio.sleep(30)
        return "slow"

    await app.start()
    task_id = await app.submit(slow)
    await started.wait()
    await app.stop(wait=False)
    assert (await app.get_result(task_id)).status is TaskStatus.PENDING
    assert (await app.io_executor.broker.counts())["queued"] == 1
    await app.start(workers=False)
    assert (await app.get_result(task_id)).status is TaskStatus.PENDING
    await app.stop()


async def test_tasks_leased_at_submit_and_stopped_at_once_go_back_to_the_queue(
    prefix: str,
) -> None:
    # a task leased to this process by its submit is handed to the workers a loop turn
    # later (its submitter's next request goes out first); a stop in between must give
    # it back like any task not started, never leave it leased to a process that is gone
    app = app_for(prefix)
    runs: list[int] = []

    @app.task()
    async def note(i: int) -> int:
        runs.append(i)
        return i

    await app.start()
    ids = [await app.submit(note, i) for i in range(3)]
    remote = app.io_executor._remote
    assert remote is not None and remote.admitting >= 1  # the last one is on its way
    await app.stop(wait=False)
    counts = await app.io_executor.broker.counts()
    assert counts["inflight"] == 0  # none is left leased to a stopped process
    await app.start()
    done = [await app.wait_for_result(task_id, timeout=10) for task_id in ids]
    await app.stop()
    assert [r.result for r in done] == [0, 1, 2]
    assert sorted(runs) == [0, 1, 2]  # each ran once


async def test_tasks_leased_at_submit_end_in_one_status_index(prefix: str) -> None:
    # a task leased to this process by its submit is taken out of the pending index
    # only when nothing but its PENDING state was written from here; one whose RUNNING
    # state was written (it ran longer than a write) is taken out of every other index
    app = app_for(prefix)
    release = asyncio.Event()

    @app.task()
    async def quick() -> str:
        return "quick"

    @app.task()
    async def held() -> str:
        await release.wait()
        return "held"

    async with app:
        quick_ids = [await app.submit(quick) for _ in range(20)]
        held_id = await app.submit(held)
        while await app.list_results(status="running", task_name="held") == []:
            await asyncio.sleep(0.01)  # its RUNNING state reaches Redis
        release.set()
        for task_id in [*quick_ids, held_id]:
            await app.wait_for_result(task_id, timeout=10)
        for status in ("pending", "running", "retrying"):
            assert await app.list_results(status=status) == [], status
        done = {r.task_id for r in await app.list_results(status="success", limit=100)}
        assert done == {*quick_ids, held_id}


async def test_a_unique_key_is_let_go_among_tasks_that_hold_none(prefix: str) -> None:
    # the final writes of plain tasks leased at submit look for no unique key; the one
    # of a task that holds a key, written in the same calls, still lets it go
    app = app_for(prefix)

    @app.task()
    async def quick(i: int) -> int:
        return i

    async with app:
        first = await app.apply(quick, (0,), unique_key="k")
        plain = [await app.submit(quick, i) for i in range(1, 20)]
        for task_id in [first, *plain]:
            await app.wait_for_result(task_id, timeout=10)
        backend = app.io_executor.results
        await backend.drain()
        p = backend.prefix
        assert await backend.client.exists(f"{p}:unique:k", f"{p}:unique_keys") == 0
        again = await app.apply(quick, (0,), unique_key="k")
        assert again != first  # the key was let go when the first one finished
        await app.wait_for_result(again, timeout=10)


async def test_a_task_leased_at_submit_can_be_cancelled_at_once(prefix: str) -> None:
    # leased to this process by its submit and handed to the workers a loop turn later:
    # a cancel in between still finds it and it never runs
    app = app_for(prefix)
    ran: list[int] = []
    gate = asyncio.Event()

    @app.task()
    async def busy() -> None:
        await gate.wait()

    @app.task()
    async def note(i: int) -> int:
        ran.append(i)
        return i

    async with app:
        blockers = [await app.submit(busy) for _ in range(4)]  # every worker is busy
        task_id = await app.submit(note, 1)
        assert app.io_executor.active_count() == 5  # it counts as soon as submitted
        assert await app.cancel(task_id) is True
        gate.set()
        for blocker in blockers:
            await app.wait_for_result(blocker, timeout=10)
        record = await app.get_result(task_id)
    assert record is not None and record.status is TaskStatus.CANCELLED
    assert ran == []


def test_worker_refuses_to_start_without_a_secret(prefix: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "FLOWRRA_SECRET_KEY"}
    env["FLOWRRA_TEST_PREFIX"] = prefix
    done = subprocess.run(
        [sys.executable, "-m", "flowrra", "worker", "--app", "tests.redis_app:app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "FLOWRRA_SECRET_KEY" in done.stderr


async def test_a_closure_runs_on_a_worker_process(prefix: str) -> None:
    app = app_for(prefix)
    offset = 1000
    app.task(name="shipped")(_make_shipped(offset))
    app.task(name="cpu_lambda", cpu_bound=True)(lambda x: x * 2 + offset)
    worker = start_worker(prefix)
    try:
        await app.start(workers=False)
        ids = [await app.submit("shipped", 5), await app.submit("cpu_lambda", 4)]
        results = [(await app.wait_for_result(i, timeout=60)).result for i in ids]
        await app.stop()
    finally:
        log = stop_worker(worker)
    assert results == [1005, 1008], log
    assert "ready" in log and "Received shipped" in log


def _make_shipped(offset: int):
    async def shipped(x: int) -> int:
        return x + offset

    return shipped


async def test_kill_9_workers_lose_no_task(prefix: str) -> None:
    app = app_for(prefix)
    await app.start(workers=False)
    ids = await app.starmap("nap", [(i, 0.02) for i in range(500)])
    workers = [start_worker(prefix, "--lease", "1") for _ in range(2)]
    try:
        for kill in range(3):
            done = 0
            while done < 100 * (kill + 1):  # wait on results, then kill mid-run
                done = len(await app.list_results(status="success"))
                await asyncio.sleep(0.05)
            victim = workers[kill % 2]
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            workers[kill % 2] = start_worker(prefix, "--lease", "1")
        records = [await app.wait_for_result(i, timeout=120) for i in ids]
    finally:
        for worker in workers:
            stop_worker(worker)
        await app.stop()
    assert [r.result for r in records] == list(range(500))
    assert {r.status for r in records} == {TaskStatus.SUCCESS}


async def test_cancel_a_task_running_in_another_app(prefix: str) -> None:
    submitter, worker = app_for(prefix), app_for(prefix)
    started = asyncio.Event()
    submitter.events.subscribe(lambda e: started.set() if e["type"] == "task.started" else None)
    await submitter.start(workers=False)
    await worker.start()
    try:
        queued = await submitter.apply("nap", (1,), countdown=60)
        assert await submitter.cancel(queued) is True  # still waiting in Redis
        running = await submitter.submit("nap", 2, 60.0)
        await started.wait()  # the other app's event reached this one
        assert await submitter.cancel(running) is True  # running in the other app
        assert (await submitter.get_result(running)).status is TaskStatus.CANCELLED
        assert (await submitter.get_result(queued)).status is TaskStatus.CANCELLED
    finally:
        await worker.stop(wait=False)
        await submitter.stop()


async def test_a_cancel_outlives_the_worker_that_ran_the_task(prefix: str) -> None:
    """A cancel asked while the worker running the task is dead (kill -9) reaches no
    one; once the task's lease lapses, the worker that takes it again ends it CANCELLED
    without running it, and cancel() returns True. Before, the task ran again to its end
    and cancel() returned False."""
    submitter = app_for(prefix)
    started = asyncio.Event()
    submitter.events.subscribe(lambda e: started.set() if e["type"] == "task.started" else None)
    await submitter.start(workers=False)
    first = start_worker(prefix, "--lease", "1", "--io-workers", "1")
    try:
        task_id = await submitter.submit("nap", 3, 8.0)
        await started.wait()
        first.kill()  # kill -9: the task stays leased to a dead worker
        first.communicate(timeout=30)
        cancelled, record = await cancel_as_a_new_worker_starts(submitter, prefix, task_id)
    finally:
        await submitter.stop()
    assert cancelled is True
    assert record is not None and record.status is TaskStatus.CANCELLED, record


async def test_cancel_a_task_another_worker_took_but_has_not_started(prefix: str) -> None:
    """A worker takes up to 16 tasks per IO slot ahead: their records stay PENDING until
    each starts. A cancel from another process of such a task used to return False and
    the task ran; now the worker holding it ends it CANCELLED without running it, and
    the tasks beside it still run."""
    submitter = app_for(prefix)
    started = asyncio.Event()
    submitter.events.subscribe(lambda e: started.set() if e["type"] == "task.started" else None)
    await submitter.start(workers=False)
    worker = None
    try:
        first = await submitter.submit("nap", 0, 60.0)
        behind = await submitter.starmap("nap", [(i, 0.0) for i in range(1, 5)])
        worker = start_worker(prefix, "--io-workers", "1")  # its first take holds all five
        await started.wait()
        broker = submitter.io_executor.broker
        inflight = {m.decode() for m in await broker.client.zrange(broker.keys["inflight"], 0, -1)}
        assert inflight == {f"0:{task_id}" for task_id in [first, *behind]}
        assert (await submitter.get_result(behind[0])).status is TaskStatus.PENDING
        assert await submitter.cancel(behind[0]) is True
        cancelled = await submitter.get_result(behind[0])
        assert await submitter.cancel(first) is True  # the running one, as before
        rest = [await submitter.wait_for_result(t, timeout=30) for t in behind[1:]]
    finally:
        if worker is not None:
            stop_worker(worker)
        counts = await submitter.io_executor.broker.counts()
        await submitter.stop()
    assert counts == {
        "queued": 0,
        "delayed": 0,
        "inflight": 0,
        "dead": 0,
        "held": 0,
    }  # all acknowledged
    assert cancelled.status is TaskStatus.CANCELLED and cancelled.started_at is None
    assert cancelled.error == "Task was cancelled before it ran"
    assert [(r.status, r.result) for r in rest] == [(TaskStatus.SUCCESS, i) for i in (2, 3, 4)]


async def test_a_cancel_that_reaches_a_worker_before_its_task_ends_it_on_arrival(
    prefix: str,
) -> None:
    """The cancel request travels on pub/sub, the task on the take's reply: a worker may
    hear of the cancel first. It keeps it in mind, and the task ends CANCELLED when it
    arrives, without running."""
    submitter, worker = app_for(prefix), app_for(prefix)
    await submitter.start(workers=False)
    await worker.start()
    try:
        task_id = await submitter.apply("nap", (1,), countdown=1.0)
        worker._on_cancel_request(task_id)  # as its listener does; the task is not here yet
        record = await submitter.wait_for_result(task_id, timeout=30)
        later = await submitter.wait_for_result(await submitter.submit("nap", 2, 0.0), timeout=30)
    finally:
        await worker.stop()
        await submitter.stop()
    assert record.status is TaskStatus.CANCELLED and record.started_at is None
    assert later.result == 2


async def test_a_cancel_reaches_a_task_whose_worker_died_before_starting_it(prefix: str) -> None:
    """A task taken by a worker that died before it started it (its record PENDING): the
    cancel is noted in the queue, and the worker that takes the task again once the
    lease lapses ends it CANCELLED instead of running it. Before, cancel() returned
    False at once and the task ran."""
    submitter, taker = app_for(prefix), app_for(prefix)
    await submitter.start(workers=False)
    await taker.start(workers=False)
    try:
        task_id = await submitter.submit("nap", 1, 0.0)
        broker = taker.io_executor.broker
        broker.lease = 1.0  # a worker that takes the task and dies at once
        assert [item.task.id for item in (await broker.take(1)).tasks] == [task_id]
        cancelled, record = await cancel_as_a_new_worker_starts(submitter, prefix, task_id)
    finally:
        await taker.stop()
        await submitter.stop()
    assert cancelled is True
    assert record is not None and record.status is TaskStatus.CANCELLED, record
    assert record.result is None and record.started_at is None


async def test_payloads_and_records_pickled_as_objects_before_still_read(prefix: str) -> None:
    """Payloads and records now carry a task and a record as plain values (a quarter of
    the pickling); a payload written before, which pickled the Task itself, still reads
    as its PENDING record and runs, and a record that pickled the TaskResult still
    reads."""
    app = app_for(prefix)
    await app.start(workers=False)
    try:
        task_id = await app.apply("nap", (5,), {"seconds": 0.0}, priority=2)
        backend, broker = app.results_backend, app.io_executor.broker
        state, submitted_at, function = pickle.loads(
            backend._signer().verify(
                await backend.client.get(backend._key(task_id)), task_id.encode()
            )
        )
        old = backend._signer().dumps(
            (task_of(state), submitted_at, function), context=task_id.encode()
        )
        await backend.client.set(backend._key(task_id), old)
        await broker.client.hset(broker.keys["payloads"], task_id, old)  # type: ignore[union-attr]
        pending = await app.get_result(task_id)
    finally:
        await app.stop()
    async with app_for(prefix) as worker:
        record = await worker.wait_for_result(task_id, timeout=10)
        backend = worker.results_backend
        written = await backend.client.get(backend._key(task_id))
        old = backend._signer().dumps(record, context=task_id.encode())
        await backend.client.set(backend._key(task_id), old)
        assert await worker.get_result(task_id) == record
    assert type(pickle.loads(backend._signer().verify(written, task_id.encode()))) is tuple
    assert type(state) is tuple and task_of(state).id == task_id
    assert pending is not None and (pending.status, pending.args, pending.priority) == (
        TaskStatus.PENDING, (5,), 2,
    )  # fmt: skip
    assert (record.status, record.result) == (TaskStatus.SUCCESS, 5)


async def test_bulk_submit_in_chunks_keeps_fifo_and_records(prefix: str) -> None:
    # more than one chunk (2,000) and a partial one: order across chunks is kept
    submitter = app_for(prefix)
    await submitter.start(workers=False)
    ids = await submitter.starmap("nap", [(i, 0.0) for i in range(4_500)])
    broker = submitter.io_executor.broker
    queued = [m.decode() for m in await broker.client.zrange(broker.keys["queue"], 0, -1)]
    assert queued == ids
    pending = await submitter.list_results(status="pending", task_name="nap")
    assert len(pending) == 4_500 and pending[0].task_id == ids[-1]  # newest first
    record = await submitter.get_result(ids[1234])
    assert record is not None and record.args == (1234, 0.0) and record.priority == 0
    await submitter.stop()


async def test_record_writes_in_one_batch_keep_the_last_state(prefix: str) -> None:
    from flowrra.task import TaskResult

    app = app_for(prefix)
    await app.start(workers=False)
    backend = app.results_backend
    now = datetime.now(UTC)
    running = TaskResult("t1", TaskStatus.RUNNING, "nap", submitted_at=now, started_at=now)
    done = TaskResult("t1", TaskStatus.SUCCESS, "nap", 7, submitted_at=now, started_at=now)
    await backend.write_entries(backend.entries([running, done]))  # one script call
    assert (await app.get_result("t1")).result == 7
    assert [r.task_id for r in await app.list_results(status="success")] == ["t1"]
    assert await app.list_results(status="running") == []
    # a fresh (just submitted) record never replaces one a fast worker wrote first
    fresh = TaskResult("t1", TaskStatus.PENDING, "nap", submitted_at=now)
    await backend.write_entries(backend.entries([fresh]))
    assert (await app.get_result("t1")).status is TaskStatus.SUCCESS
    assert await app.list_results(status="pending") == []
    await app.stop()
