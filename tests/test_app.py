"""The app on the embedded defaults: lifecycle, submit forms, retries, priority, timeouts,
cancel, back-pressure, stop, memory bounds and events."""

from __future__ import annotations

import asyncio
import warnings
from datetime import UTC, datetime, timedelta

import pytest

from flowrra import (
    Config,
    ExecutorConfig,
    ExecutorNotRunningError,
    Flowrra,
    TaskNotFoundError,
    TaskStatus,
    TaskTimeoutError,
)
from flowrra.backends.memory import InMemoryBackend
from flowrra.exceptions import ConfigError, FlowrraError, UnknownTaskIdError
from flowrra.task import Task

from .conftest import EventLog


def cpu_square(x: int) -> int:
    return x * x


async def test_submit_by_function_and_by_name(app: Flowrra) -> None:
    @app.task()
    async def add(a: int, b: int = 0) -> int:
        return a + b

    async with app:
        by_func = await app.submit(add, 1, b=2)
        by_name = await app.submit("add", 5)
        assert (await app.wait_for_result(by_func)).result == 3
        record = await app.wait_for_result(by_name)
    assert record.result == 5 and record.status is TaskStatus.SUCCESS
    assert record.args == (5,) and record.kwargs == {}
    for stamp in (record.submitted_at, record.started_at, record.finished_at):
        assert stamp is not None and stamp.tzinfo is not None
    assert record.submitted_at <= record.started_at <= record.finished_at
    assert record.duration is not None and record.duration >= timedelta(0)


async def test_bad_submits_raise_clear_errors(app: Flowrra) -> None:
    @app.task()
    async def known() -> None: ...

    async def unregistered() -> None: ...

    with pytest.raises(ExecutorNotRunningError, match=r"await app.start\(\)"):
        await app.submit(known)
    async with app:
        with pytest.raises(TaskNotFoundError, match="Task 'unregistered' not registered"):
            await app.submit(unregistered)
        with pytest.raises(TaskNotFoundError, match="Task 'nope' not registered"):
            await app.submit("nope")
        with pytest.raises(ConfigError, match="priority must be a whole number"):
            await app.submit(known, priority="high")
        with pytest.raises(ConfigError, match="countdown or eta, not both"):
            await app.apply(known, countdown=1, eta=datetime.now(UTC))
    with pytest.raises(ExecutorNotRunningError):
        await app.submit(known)


async def test_wait_timeout_unknown_id_and_get_result(app: Flowrra) -> None:
    release = asyncio.Event()

    @app.task()
    async def blocked() -> str:
        await release.wait()
        return "done"

    async with app:
        task_id = await app.submit(blocked)
        with pytest.raises(TaskTimeoutError, match=r"did not complete within 0\.05s") as info:
            await app.wait_for_result(task_id, timeout=0.05)
        assert isinstance(info.value, TimeoutError) and info.value.task_id == task_id
        pending = await app.get_result(task_id)
        assert pending is not None and not pending.is_complete
        release.set()
        assert (await app.wait_for_result(task_id, timeout=5)).result == "done"
        with pytest.raises(UnknownTaskIdError, match="No record of task 'missing'") as unknown:
            await app.wait_for_result("missing", timeout=1)
        assert isinstance(unknown.value, FlowrraError)
        assert await app.get_result("missing") is None


async def test_retries_then_success_keep_the_record_whole(app: Flowrra, event_log) -> None:
    calls = 0

    @app.task(max_retries=2)
    async def flaky(x: int) -> int:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ValueError(f"attempt {calls} failed")
        return x

    app.events.subscribe(event_log)
    async with app:
        task_id = await app.apply(flaky, (7,), priority=3)
        record = await app.wait_for_result(task_id, timeout=5)
    assert record.result == 7 and record.retries == 2 and calls == 3
    assert record.error is None and record.error_type is None  # a success carries no error
    assert record.args == (7,) and record.priority == 3 and record.submitted_at is not None
    assert event_log.types(task_id) == [
        "task.submitted",
        "task.started",
        "task.retrying",
        "task.started",
        "task.retrying",
        "task.started",
        "task.succeeded",
    ]
    retrying = [e for e in event_log.events if e["type"] == "task.retrying"]
    assert retrying[0]["task"]["error"] == "attempt 1 failed"
    assert retrying[0]["task"]["args"] == (7,)  # the record keeps its inputs


async def test_failure_after_retries_carries_type_and_traceback(app: Flowrra) -> None:
    @app.task(max_retries=1)
    async def broken() -> None:
        raise KeyError("missing-key")

    async with app:
        record = await app.wait_for_result(await app.submit(broken), timeout=5)
    assert record.status is TaskStatus.FAILED and record.retries == 1
    assert record.error_type == "KeyError" and "missing-key" in record.error
    assert "Traceback" in record.traceback and "broken" in record.traceback


async def test_backoff_is_exponential_capped_with_optional_jitter() -> None:
    app = Flowrra(Config(executor=ExecutorConfig(max_retry_delay=5.0)))
    task = Task("i", "n", (), {}, max_retries=10, retry_delay=1.0)
    delays = []
    for attempt in range(1, 6):
        task.current_retry = attempt
        delays.append(app.io_executor.retry_delay_for(task))
    assert delays == [1.0, 2.0, 4.0, 5.0, 5.0]
    jittery = Flowrra(Config(executor=ExecutorConfig(retry_jitter=True)))
    task.current_retry = 3
    assert all(2.0 <= jittery.io_executor.retry_delay_for(task) <= 4.0 for _ in range(50))


async def test_a_task_waiting_to_retry_holds_no_worker(event_log: EventLog) -> None:
    app = Flowrra(Config(executor=ExecutorConfig(io_workers=1)))
    attempts = 0

    @app.task(max_retries=1, retry_delay=0.3)
    async def fails_once() -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("first try")

    @app.task()
    async def quick() -> str:
        return "quick"

    app.events.subscribe(event_log)
    async with app:
        slow_id = await app.submit(fails_once)
        quick_id = await app.submit(quick)
        await app.wait_for_result(slow_id, timeout=5)
    order = [(e["type"], e["task_id"]) for e in event_log.events]
    assert order.index(("task.succeeded", quick_id)) < order.index(("task.succeeded", slow_id))
    assert (
        order.index(("task.succeeded", quick_id))
        < [i for i, o in enumerate(order) if o == ("task.started", slow_id)][1]
    )


async def test_priority_lower_first_and_fifo_within_a_priority() -> None:
    app = Flowrra(Config(executor=ExecutorConfig(io_workers=1)))
    gate = asyncio.Event()
    ran: list[str] = []

    @app.task()
    async def hold() -> None:
        await gate.wait()

    @app.task()
    async def record(label: str) -> None:
        ran.append(label)

    async with app:
        first = await app.submit(hold)
        await asyncio.sleep(0)  # the only worker takes `hold`
        ids = []
        for label, priority in [("c1", 5), ("a1", 1), ("b1", 3), ("a2", 1), ("c2", 5), ("a3", 1)]:
            ids.append(await app.submit(record, label, priority=priority))
        gate.set()
        for task_id in [first, *ids]:
            await app.wait_for_result(task_id, timeout=5)
    assert ran == ["a1", "a2", "a3", "b1", "c1", "c2"]


async def test_apply_options_never_clash_with_task_parameters(app: Flowrra) -> None:
    @app.task()
    async def takes_timeout(timeout: float, priority: str) -> tuple[float, str]:
        return timeout, priority

    async with app:
        task_id = await app.apply(
            takes_timeout, kwargs={"timeout": 99.0, "priority": "mine"}, timeout=5, priority=2
        )
        record = await app.wait_for_result(task_id, timeout=5)
    assert record.result == (99.0, "mine") and record.priority == 2


async def test_countdown_and_eta_delay_the_start(app: Flowrra) -> None:
    @app.task()
    async def stamp() -> datetime:
        return datetime.now(UTC)

    async with app:
        before = datetime.now(UTC)
        by_countdown = await app.apply(stamp, countdown=0.2)
        by_eta = await app.apply(stamp, eta=before + timedelta(seconds=0.3))
        assert (await app.get_result(by_countdown)).status is TaskStatus.PENDING
        ran_at = (await app.wait_for_result(by_countdown, timeout=5)).result
        ran_eta = (await app.wait_for_result(by_eta, timeout=5)).result
    assert ran_at - before >= timedelta(seconds=0.2)
    assert ran_eta - before >= timedelta(seconds=0.3)


async def test_timeout_fails_the_task_with_a_timeout_error(app: Flowrra) -> None:
    @app.task(timeout=0.1)
    async def too_slow() -> None:
        await asyncio.sleep(30)

    @app.task()
    async def raises_timeout_itself() -> None:
        raise TimeoutError("the service timed out")

    async with app:
        record = await app.wait_for_result(await app.submit(too_slow), timeout=5)
        own = await app.apply(raises_timeout_itself, max_retries=0)
        own_record = await app.wait_for_result(own, timeout=5)
    assert record.status is TaskStatus.FAILED and record.retries == 0
    assert record.error_type == "TimeoutError" and "exceeded its timeout of 0.1s" in record.error
    assert own_record.error == "the service timed out"  # not mistaken for our timeout


async def test_map_and_starmap(app: Flowrra) -> None:
    @app.task()
    async def double(x: int) -> int:
        return 2 * x

    @app.task()
    async def add(a: int, b: int) -> int:
        return a + b

    async with app:
        ids = await app.map(double, range(5))
        pair_ids = await app.starmap("add", [(1, 2), (3, 4)])
        results = [(await app.wait_for_result(i, timeout=5)).result for i in ids + pair_ids]
    assert results == [0, 2, 4, 6, 8, 3, 7]


async def test_cancel_pending_and_running(app: Flowrra, event_log: EventLog) -> None:
    started = asyncio.Event()
    ran: list[str] = []

    @app.task()
    async def long_running() -> None:
        started.set()
        await asyncio.sleep(60)

    @app.task()
    async def later(label: str) -> None:
        ran.append(label)

    app.events.subscribe(event_log)
    async with app:
        running = await app.submit(long_running)
        await started.wait()
        delayed = await app.apply(later, ("delayed",), countdown=30)
        assert await app.cancel(running) is True
        assert await app.cancel(delayed) is True
        assert await app.cancel(running) is False  # already finished
        assert await app.cancel("unknown") is False
        records = [await app.wait_for_result(i, timeout=5) for i in (running, delayed)]
    assert [r.status for r in records] == [TaskStatus.CANCELLED, TaskStatus.CANCELLED]
    assert ran == []
    assert event_log.types(running)[-1] == "task.cancelled"


async def test_cancel_a_queued_task_never_runs() -> None:
    app = Flowrra(Config(executor=ExecutorConfig(io_workers=1)))
    gate = asyncio.Event()
    ran: list[int] = []

    @app.task()
    async def hold() -> None:
        await gate.wait()

    @app.task()
    async def note(x: int) -> None:
        ran.append(x)

    async with app:
        first = await app.submit(hold)
        queued = [await app.submit(note, i) for i in range(3)]
        assert await app.cancel(queued[1])
        gate.set()
        for task_id in [first, *queued]:
            await app.wait_for_result(task_id, timeout=5)
    assert ran == [0, 2]


async def test_full_queue_makes_submit_wait_and_retries_never_deadlock() -> None:
    app = Flowrra(Config(executor=ExecutorConfig(io_workers=2, max_queue_size=3)))
    attempts: dict[int, int] = {}

    @app.task(max_retries=2, retry_delay=0)
    async def flaky(i: int) -> int:
        attempts[i] = attempts.get(i, 0) + 1
        await asyncio.sleep(0)
        if attempts[i] < 3:
            raise RuntimeError("again")
        return i

    async with app:
        ids = [await app.submit(flaky, i) for i in range(40)]  # far more than the bound
        assert app.io_executor.queue_size() <= 3 + 2  # bound, plus retries over it
        results = [await app.wait_for_result(i, timeout=10) for i in ids]
    assert [r.result for r in results] == list(range(40))


async def test_stop_wait_drains_and_stop_nowait_cancels() -> None:
    app = Flowrra(Config(executor=ExecutorConfig(io_workers=2)))

    @app.task()
    async def nap(seconds: float) -> float:
        await asyncio.sleep(seconds)
        return seconds

    await app.start()
    ids = [await app.submit(nap, 0.01) for _ in range(10)]
    await app.stop(wait=True, timeout=10)
    assert [(await app.get_result(i)).status for i in ids] == [TaskStatus.SUCCESS] * 10

    await app.start()
    ids = [await app.submit(nap, 30) for _ in range(5)]
    await asyncio.sleep(0)
    await app.stop(wait=False)
    statuses = {(await app.get_result(i)).status for i in ids}
    assert statuses == {TaskStatus.CANCELLED}


async def test_stop_timeout_cancels_what_is_left() -> None:
    app = Flowrra(Config(executor=ExecutorConfig(io_workers=1)))

    @app.task()
    async def nap(seconds: float) -> float:
        await asyncio.sleep(seconds)
        return seconds

    await app.start()
    quick = await app.submit(nap, 0)
    slow = [await app.submit(nap, 30) for _ in range(3)]
    await app.stop(wait=True, timeout=0.3)
    assert (await app.get_result(quick)).status is TaskStatus.SUCCESS
    records = [await app.get_result(i) for i in slow]
    assert {r.status for r in records} == {TaskStatus.CANCELLED}
    assert all("stopped" in r.error for r in records)
    assert not app.is_running


async def test_start_and_stop_are_idempotent_and_restartable(app: Flowrra) -> None:
    @app.task()
    async def one() -> int:
        return 1

    await app.start()
    await app.start()
    assert app.is_running
    await app.stop()
    await app.stop()
    async with app:
        assert (await app.wait_for_result(await app.submit(one), timeout=5)).result == 1


async def test_in_memory_backend_evicts_oldest_completed_only() -> None:
    backend = InMemoryBackend(max_results=5)
    app = Flowrra()
    app._backend = backend  # share a small backend with both executors
    app.io_executor.results = backend
    app.io_executor._store_now = backend.store_nowait
    gate = asyncio.Event()

    @app.task()
    async def hold() -> None:
        await gate.wait()

    @app.task()
    async def quick(i: int) -> int:
        return i

    async with app:
        held = await app.submit(hold)
        ids = [await app.submit(quick, i) for i in range(20)]
        for task_id in ids[-5:]:
            await app.wait_for_result(task_id, timeout=5)
        assert len(backend) == 6  # five newest completed + the running one
        assert await app.get_result(ids[0]) is None
        assert (await app.get_result(held)).status is TaskStatus.RUNNING
        gate.set()
        await app.wait_for_result(held, timeout=5)


async def test_list_results_by_status_and_name_newest_first(app: Flowrra) -> None:
    @app.task(max_retries=0)
    async def maybe(ok: bool) -> bool:
        if not ok:
            raise ValueError("no")
        return ok

    @app.task()
    async def other() -> None: ...

    async with app:
        ids = [await app.submit(maybe, ok) for ok in (True, False, True, False)]
        ids.append(await app.submit(other))
        for task_id in ids:
            await app.wait_for_result(task_id, timeout=5)
        failed = await app.list_results(status="failed")
        named = await app.list_results(task_name="maybe", limit=2, offset=1)
        by_status = await app.results_backend.list_by_status(TaskStatus.SUCCESS)
    assert [r.task_id for r in failed] == [ids[3], ids[1]]
    assert [r.task_id for r in named] == [ids[2], ids[1]]
    assert [r.task_id for r in by_status] == [ids[4], ids[2], ids[0]]


async def test_a_failing_subscriber_touches_nothing(app: Flowrra, event_log: EventLog) -> None:
    def bad(event: dict) -> None:
        raise RuntimeError("subscriber bug")

    async def bad_async(event: dict) -> None:
        raise RuntimeError("async subscriber bug")

    seen_async: list[str] = []

    async def good_async(event: dict) -> None:
        seen_async.append(event["type"])

    app.events.subscribe(bad)
    app.events.subscribe(bad_async)
    app.events.subscribe(event_log)
    app.events.subscribe(good_async)

    @app.task()
    async def fine() -> str:
        return "fine"

    async with app:
        record = await app.wait_for_result(await app.submit(fine), timeout=5)
        await asyncio.sleep(0)
    assert record.result == "fine"
    assert event_log.types() == ["task.submitted", "task.started", "task.succeeded"]
    assert seen_async == event_log.types()
    await app.events.unsubscribe(event_log)
    assert not app.events.remove(event_log)


async def test_each_app_has_its_own_bus_and_the_global_bus_still_hears() -> None:
    from flowrra.events import event_bus

    first, second = Flowrra(), Flowrra()
    heard: list[str] = []
    legacy: list[str] = []
    second.events.subscribe(lambda e: heard.append(e["type"]))
    event_bus.subscribe(legacy.append)

    @first.task()
    async def t() -> None: ...

    try:
        async with first:
            await first.wait_for_result(await first.submit(t), timeout=5)
    finally:
        event_bus.remove(legacy.append)
    assert heard == [] and len(legacy) == 3


async def test_cpu_bound_module_level_function_runs_in_a_process(app: Flowrra) -> None:
    app.task(cpu_bound=True)(cpu_square)
    async with app:
        ids = await app.map(cpu_square, [2, 3])
        results = [(await app.wait_for_result(i, timeout=60)).result for i in ids]
        pids = app.cpu_executor.pool.pids
    assert results == [4, 9]
    assert pids and all(pid != __import__("os").getpid() for pid in pids)


async def test_workers_start_while_a_long_burst_is_still_being_submitted() -> None:
    # A run of submits never suspends by itself; the executor lets the loop run so the
    # first tasks start at once rather than after the whole burst (and the loop is shared).
    app = Flowrra(Config(executor=ExecutorConfig(io_workers=4)))
    submitted = 0
    seen_at_start: list[int] = []

    @app.task()
    async def note() -> None:
        seen_at_start.append(submitted)

    async with app:
        ids = []
        for _ in range(3_000):
            ids.append(await app.submit(note))
            submitted += 1
        burst = submitted
        for task_id in ids:
            await app.wait_for_result(task_id, timeout=10)
    assert len(seen_at_start) == 3_000
    assert min(seen_at_start) < burst  # the first tasks ran during the burst


async def test_apply_in_a_loop_lets_workers_start_during_the_loop() -> None:
    app = Flowrra(Config(executor=ExecutorConfig(io_workers=2)))
    started = asyncio.Event()
    seen_while_submitting: list[bool] = []

    @app.task()
    async def mark(i: int) -> int:
        started.set()
        return i

    async with app:
        ids = []
        for i in range(2_000):
            ids.append(await app.apply(mark, (i,), priority=1))
            seen_while_submitting.append(started.is_set())
        results = [(await app.wait_for_result(i, timeout=10)).result for i in ids]
    assert results == list(range(2_000))
    assert any(seen_while_submitting)


async def test_map_lets_workers_start_during_a_long_map() -> None:
    app = Flowrra(Config(executor=ExecutorConfig(io_workers=2)))
    started = asyncio.Event()
    done_before_return: list[bool] = []

    @app.task()
    async def mark(i: int) -> int:
        started.set()
        return i

    async with app:
        ids = await app.map(mark, range(3_000))
        done_before_return.append(started.is_set())
        results = [(await app.wait_for_result(i, timeout=10)).result for i in ids]
    assert results == list(range(3_000))
    assert done_before_return == [True]


async def test_tasks_start_in_queue_order_when_many_workers_wake_at_once() -> None:
    # idle workers are woken, then take the head of the queue when they run: a worker
    # that is already running can never start a later task before an earlier one
    app = Flowrra(Config(executor=ExecutorConfig(io_workers=10)))
    order: list[int] = []

    @app.task()
    async def quick(i: int) -> int:
        order.append(i)
        return i

    async with app:
        await app.wait_for_result(await app.submit(quick, -1), timeout=5)  # all idle now
        ids = [await app.submit(quick, i) for i in range(50)]
        for task_id in ids:
            await app.wait_for_result(task_id, timeout=5)
    assert order == list(range(-1, 50))


async def test_event_timestamps_are_the_times_of_the_changes(app: Flowrra) -> None:
    events: list[dict] = []
    app.events.subscribe(events.append)

    @app.task()
    async def one() -> int:
        return 1

    async with app:
        await app.wait_for_result(await app.submit(one), timeout=5)
    by_type = {e["type"]: e for e in events}
    assert set(by_type) == {"task.submitted", "task.started", "task.succeeded"}
    for kind, field in [
        ("task.submitted", "submitted_at"),
        ("task.started", "started_at"),
        ("task.succeeded", "finished_at"),
    ]:
        event = by_type[kind]
        assert event["timestamp"] == event["task"][field]
        assert datetime.fromisoformat(event["timestamp"]).utcoffset() == timedelta(0)


async def test_the_repr_says_which_workers_run_here(prefix: str) -> None:
    from . import redis_app
    from .services import REDIS_URL

    local = Flowrra(Config(executor=ExecutorConfig(io_workers=4, cpu_workers=2)))
    async with local:
        assert repr(local) == "<Flowrra running, 0 task(s), io_workers=4, cpu_workers=2>"
    submit_only = redis_app.make_app(prefix, REDIS_URL, "repr-test-secret-0123456789")
    await submit_only.start(workers=False)
    try:
        assert repr(submit_only) == "<Flowrra running, 4 task(s), workers=none (submit-only)>"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            page = submit_only._repr_html_()
        assert "<td>none (submit-only)</td>" in page
        assert [str(w.message) for w in caught] == []  # no Redis count left un-awaited
    finally:
        await submit_only.stop()
    io_only = redis_app.make_app(prefix, REDIS_URL, "repr-test-secret-0123456789")
    await io_only.start(workers={"io"})
    try:
        assert repr(io_only).endswith("io_workers=8, cpu_workers=none>")
        assert "<td>io 8, cpu none</td>" in io_only._repr_html_()
    finally:
        await io_only.stop()
    assert repr(io_only) == "<Flowrra stopped, 4 task(s), io_workers=8, cpu_workers=2>"
