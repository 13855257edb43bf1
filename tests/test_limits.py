"""Throttling and unique jobs (issue #15): rate limits, concurrency caps and unique keys,
in memory and on Redis (in one process and across two ``flowrra worker`` processes)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest

from flowrra import BrokerConfig, Config, ExecutorConfig, Flowrra, TaskStatus
from flowrra.exceptions import ConfigError, InvalidTaskError
from flowrra.limits import Rate, TaskLimits
from flowrra.task import Task, TaskResult

from . import limits_app, test_redis
from .services import REDIS_URL
from .test_redis import stop_worker

SECRET = "test-secret-0123456789abcdef"
ROOT = Path(__file__).resolve().parents[1]
FORMAT = "'N/s', 'N/m' or 'N/h'"


# ------------------------------------------------------------------ measuring
def start_rate(records: list[TaskResult]) -> float:
    """Starts a second between the first and the last start of ``records``."""
    starts = sorted(r.started_at.timestamp() for r in records if r.started_at is not None)
    assert len(starts) == len(records) >= 2
    return (len(starts) - 1) / (starts[-1] - starts[0])


def max_overlap(records: list[TaskResult]) -> int:
    """The most ``[started_at, finished_at]`` intervals of ``records`` open at once."""
    edges = []
    for r in records:
        assert r.started_at is not None and r.finished_at is not None
        edges += [(r.started_at.timestamp(), 1), (r.finished_at.timestamp(), -1)]
    most = now = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):  # an end before a start
        now += step
        most = max(most, now)
    return most


def start_order(records: list[TaskResult]) -> list[str]:
    return [r.task_id for r in sorted(records, key=lambda r: r.started_at)]


async def results(app: Flowrra, ids: list[str], timeout: float = 60) -> list[TaskResult]:
    return [await app.wait_for_result(i, timeout=timeout) for i in ids]


def started_event(app: Flowrra, task_name: str) -> asyncio.Event:
    """Set when a task of ``task_name`` starts (events of other processes included)."""
    started = asyncio.Event()

    def on_event(event: dict) -> None:
        if event["type"] == "task.started" and event["task"]["task_name"] == task_name:
            started.set()

    app.events.subscribe(on_event)
    return started


async def nap(seconds: float = 0.0) -> None:
    await asyncio.sleep(seconds)


# ------------------------------------------------------------------ vocabulary
@pytest.mark.parametrize(
    ("text", "interval"),
    [("10/s", 0.1), ("1.5/m", 40.0), (" 3 / h ", 1200.0), ("20/s", 0.05)],
)
def test_rates_parse(text: str, interval: float) -> None:
    assert Rate.parse(text).interval == pytest.approx(interval)


@pytest.mark.parametrize("text", ["10", "10/d", "0/s", "-1/s", "ten/s", "", 10, None, "1e9999/s"])
def test_bad_rates_name_the_format(text: object) -> None:
    with pytest.raises(ConfigError, match=FORMAT):
        Rate.parse(text)  # type: ignore[arg-type]


def test_bad_task_options_are_refused_at_registration() -> None:
    app = Flowrra()
    with pytest.raises(InvalidTaskError, match=f"Task 'fast'.*{FORMAT}"):
        app.task(name="fast", rate_limit="100 per second")(nap)
    with pytest.raises(InvalidTaskError, match="concurrency must be a whole number >= 1"):
        app.task(name="none_at_once", concurrency=0)(nap)
    spec = app.registry.register(nap, name="ok", rate_limit="5/m", concurrency=2)
    assert spec.limits == TaskLimits(Rate(5, 60.0), 2)
    assert app.registry.spec("ok").limits is spec.limits


async def test_bad_submit_options_are_refused(app: Flowrra) -> None:
    app.task()(nap)
    async with app:
        for options, message in [
            ({"rate_limit": "1/d"}, FORMAT),
            ({"concurrency": -1}, "concurrency must be a whole number >= 1"),
            ({"concurrency": True}, "concurrency must be a whole number >= 1"),
            ({"unique_for": 5}, "unique_for needs a unique_key"),
            ({"unique_key": ""}, "unique_key must be a non-empty string"),
            ({"unique_key": "k", "unique_for": -1}, "unique_for must be seconds >= 0"),
        ]:
            with pytest.raises(ConfigError, match=message):
                await app.apply(nap, **options)
        assert await app.list_results() == []


def test_a_task_carries_its_limits_when_pickled() -> None:
    import pickle

    task = Task("t1", "name", (1,), {}, limits=TaskLimits(Rate.parse("3/s"), 4))
    assert pickle.loads(pickle.dumps(task)).limits == TaskLimits(Rate(3, 1.0), 4)


# ------------------------------------------------------------------ the contract
class ThrottleContract:
    """Each behaviour against one place where tasks wait; subclassed per backend."""

    def make(self, io_workers: int = 4) -> Flowrra:
        raise NotImplementedError

    async def leftovers(self) -> list[str]:
        """Keys a finished run must not leave behind."""
        return []

    async def test_a_rate_limit_spaces_starts(self) -> None:
        app = self.make(io_workers=8)
        app.task(name="spaced", rate_limit="20/s")(nap)
        async with app:
            records = await results(app, await app.map("spaced", [0.0] * 20))
        assert 18 <= start_rate(records) <= 22, start_rate(records)
        assert await self.leftovers() == []

    async def test_a_task_held_back_holds_no_worker(self) -> None:
        app = self.make(io_workers=1)
        app.task(name="slowly", rate_limit="2/s")(nap)
        app.task(name="free")(nap)
        async with app:
            held = await app.map("slowly", [0.0] * 5)
            free = await app.submit("free")
            await app.wait_for_result(free, timeout=30)
            assert (await app.get_result(held[-1])).status is TaskStatus.PENDING
            records = await results(app, held)
        assert {r.status for r in records} == {TaskStatus.SUCCESS}

    async def test_a_concurrency_cap_is_never_exceeded(self) -> None:
        app = self.make(io_workers=8)
        app.task(name="three", concurrency=3)(nap)
        async with app:
            records = await results(app, await app.map("three", [0.1] * 12))
        assert max_overlap(records) == 3
        assert await self.leftovers() == []

    async def test_held_tasks_keep_their_place(self) -> None:
        app = self.make(io_workers=1)
        app.task(name="limited", rate_limit="2/s")(nap)
        app.task(name="brisk", rate_limit="4/s")(nap)
        app.task(name="other")(nap)
        started = started_event(app, "limited")
        async with app:
            # in order within a priority; a better priority goes first
            fifo = await app.starmap("limited", [(0.0,)] * 5, priority=5)
            await started.wait()
            urgent = await app.apply("limited", priority=1)
            records = await results(app, [*fifo, urgent])
            assert start_order(records) == [fifo[0], urgent, *fifo[1:]]
            assert start_rate(records) < 3  # held back all along
            # let go, a held task goes ahead of what was queued after it
            first, second = await app.map("brisk", [0.0, 0.0])
            behind = await app.map("other", [0.02] * 60)
            order = start_order(await results(app, [first, second, *behind]))
        assert order[0] == first and 2 <= order.index(second) < 40, order.index(second)

    async def test_submits_override_the_limits(self) -> None:
        app = self.make(io_workers=8)
        app.task(name="slow_rate", rate_limit="1/s")(nap)
        app.task(name="one_at_once", concurrency=1)(nap)
        app.task(name="unlimited")(nap)
        async with app:
            fast = [await app.apply("slow_rate", rate_limit="100/s") for _ in range(5)]
            wide = [await app.apply("one_at_once", (0.2,), concurrency=3) for _ in range(6)]
            paced = [await app.apply("unlimited", rate_limit="5/s") for _ in range(3)]
            fast_records = await results(app, fast)
            wide_records = await results(app, wide)
            paced_records = await results(app, paced)
        assert start_rate(fast_records) > 8  # the task's own 1/s would take 4 s
        assert max_overlap(wide_records) == 3
        assert start_rate(paced_records) < 10  # unlimited would start them at once

    async def test_cancelling_a_held_task(self) -> None:
        app = self.make(io_workers=4)
        app.task(name="rare", rate_limit="4/s")(nap)
        started = started_event(app, "rare")
        async with app:
            ids = await app.map("rare", [0.0] * 4)
            await started.wait()
            assert await app.cancel(ids[2]) is True
            records = await results(app, ids)
        statuses = [r.status for r in records]
        assert statuses == [TaskStatus.SUCCESS] * 2 + [TaskStatus.CANCELLED, TaskStatus.SUCCESS]
        assert await self.leftovers() == []

    async def test_cpu_tasks_are_limited_too(self, tmp_path: Path) -> None:
        from .cpu_tasks import announce_then_sleep

        app = self.make()
        app.task(name="one_cpu", cpu_bound=True, concurrency=1)(announce_then_sleep)
        async with app:
            ids = await app.starmap("one_cpu", [(str(tmp_path / str(i)), 0.2) for i in range(3)])
            records = await results(app, ids)
        assert max_overlap(records) == 1

    async def test_a_unique_key_returns_the_unfinished_task(self) -> None:
        app = self.make()
        app.task(name="report")(nap)
        async with app:
            ids = await asyncio.gather(
                *[app.apply("report", (0.3,), unique_key="report:2026-11") for _ in range(20)]
            )
            assert len(set(ids)) == 1
            assert [r.task_id for r in await app.list_results()] == ids[:1]
            await app.wait_for_result(ids[0], timeout=30)
            again = await app.apply("report", unique_key="report:2026-11")
            other = await app.apply("report", unique_key="report:2026-12")
            assert again != ids[0] and other != again
            await results(app, [again, other])

    async def test_unique_for_covers_the_finished_task_for_a_time(self) -> None:
        app = self.make()
        app.task(name="daily")(nap)
        async with app:
            first = await app.apply("daily", unique_key="daily", unique_for=timedelta(seconds=1))
            done = await app.wait_for_result(first, timeout=30)
            assert await app.apply("daily", unique_key="daily") == first
            left = 1.0 - (time.time() - done.finished_at.timestamp())
            await asyncio.sleep(max(0.0, left) + 0.5)  # the time it covers, by definition
            later = await app.apply("daily", unique_key="daily")
            assert later != first
            await app.wait_for_result(later, timeout=30)

    async def test_cancelling_frees_the_unique_key(self) -> None:
        app = self.make()
        app.task(name="later")(nap)
        async with app:
            waiting = await app.apply("later", unique_key="k", countdown=60)
            assert await app.apply("later", unique_key="k") == waiting
            assert await app.cancel(waiting) is True
            fresh = await app.apply("later", unique_key="k")
            assert fresh != waiting
            await app.wait_for_result(fresh, timeout=30)


class TestInMemory(ThrottleContract):
    def make(self, io_workers: int = 4) -> Flowrra:
        return Flowrra(Config(executor=ExecutorConfig(io_workers=io_workers, retry_delay=0.01)))

    async def test_stop_runs_or_cancels_held_tasks(self) -> None:
        app = self.make()
        app.task(name="rare", rate_limit="10/s")(nap)
        await app.start()
        ids = await app.map("rare", [0.0] * 3)
        await app.stop(wait=True)
        assert {r.status for r in await results(app, ids)} == {TaskStatus.SUCCESS}
        await app.start()
        ids = await app.map("rare", [0.0] * 3)
        await app.stop(wait=False)
        statuses = [r.status for r in await results(app, ids)]
        assert statuses[1:] == [TaskStatus.CANCELLED] * 2  # held back when the app stopped
        assert app.io_executor._throttle.parked() == 0  # type: ignore[union-attr]


class TestOnRedis(ThrottleContract):
    @pytest.fixture(autouse=True)
    def _on(self, prefix: str) -> None:
        self.prefix = prefix

    def make(self, io_workers: int = 4) -> Flowrra:
        app = limits_app.make_app(self.prefix, REDIS_URL, SECRET)
        app.config.executor.io_workers = io_workers
        return app

    async def leftovers(self) -> list[str]:
        import redis.asyncio as aioredis

        client = aioredis.from_url(REDIS_URL)
        try:
            found = [k.decode() async for k in client.scan_iter(f"{self.prefix}:queue:*")]
        finally:
            await client.aclose()
        allowed = (":seq", ":functions", ":workers")  # and the rate's step, which expires
        return [k for k in found if not k.endswith(allowed) and ":limit:" not in k]

    async def test_counts_show_the_tasks_held_back(self) -> None:
        app = self.make(io_workers=1)
        app.task(name="rare", rate_limit="1/m")(nap)
        async with app:
            broker = app.io_executor.broker
            ids = await app.map("rare", [0.0] * 4)
            await app.wait_for_result(ids[0], timeout=30)
            deadline = time.monotonic() + 10
            while (counts := await broker.counts())["held"] < 3:  # the worker takes them
                assert time.monotonic() < deadline, counts
                await asyncio.sleep(0.02)
            # each task is in one place: none counted twice, none missing
            assert counts == {"queued": 0, "delayed": 0, "inflight": 0, "dead": 0, "held": 3}
            # a held-back key of the wrong type (a hostile write) counts as none
            await broker.client.set(f"{broker.queue_key}:held:bogus", "x")
            await broker.client.zadd(f"{broker.queue_key}:held", {"bogus": time.time() + 60})
            assert (await broker.counts())["held"] == 3

    async def test_a_unique_key_is_one_task_for_every_submitter(self) -> None:
        apps = [self.make(), self.make()]
        for app in apps:
            await app.start(workers=False)
        try:
            ids = await asyncio.gather(
                *[app.apply("paced", (i,), unique_key="k") for i in range(10) for app in apps]
            )
            assert len(set(ids)) == 1
            counts = await apps[0].io_executor.broker.counts()  # type: ignore[union-attr]
            assert counts["queued"] == 1 and len(await apps[1].list_results()) == 1
        finally:
            for app in apps:
                await app.stop()
        client = apps[0].results_backend.client
        worker = self.make()
        async with worker:
            await worker.wait_for_result(ids[0], timeout=30)
            # let go in the write that stored the final record
            assert await client.get(f"{self.prefix}:unique:k") is None
            assert await client.hlen(f"{self.prefix}:unique_keys") == 0
        await client.aclose()

    async def test_a_stale_unique_key_is_taken_over(self) -> None:
        app = self.make()
        async with app:
            client = app.results_backend.client
            await client.set(f"{self.prefix}:unique:k", "a-task-that-never-was")
            task_id = await app.apply("paced", (1,), unique_key="k")
            assert task_id != "a-task-that-never-was"
            assert (await app.wait_for_result(task_id, timeout=30)).is_success

    async def test_unique_keys_need_the_backend_on_the_broker_server(self) -> None:
        app = Flowrra(
            Config(
                broker=BrokerConfig(REDIS_URL, queue_key=f"{self.prefix}:queue"),
                secret_key=SECRET,
            )
        )
        app.task()(nap)
        async with app:
            with pytest.raises(ConfigError, match="same write that records and queues"):
                await app.apply(nap, unique_key="k")
        assert await app.list_results() == []


# ------------------------------------------------------------ worker processes
def start_worker(prefix: str, *extra: str) -> subprocess.Popen[str]:
    return test_redis.start_worker(prefix, *extra, app="tests.limits_app:app", secret=SECRET)


async def wait_ready(process: subprocess.Popen[str]) -> None:
    """Wait for a worker's "ready" line (its output before it is kept in the test log)."""
    assert process.stdout is not None
    lines: list[str] = []
    while " ready: " not in (lines[-1] if lines else ""):
        line = await asyncio.to_thread(process.stdout.readline)
        assert line, f"the worker exited: {''.join(lines)}"
        lines.append(line)


async def test_two_worker_processes_share_one_rate_and_one_cap(prefix: str) -> None:
    app = limits_app.make_app(prefix, REDIS_URL, SECRET)
    await app.start(workers=False)
    workers = [start_worker(prefix), start_worker(prefix)]
    try:
        await asyncio.gather(*[wait_ready(worker) for worker in workers])
        paced = await results(app, await app.map("paced", range(40)), timeout=120)
        capped = await results(app, await app.starmap("capped", [(i, 0.2) for i in range(12)]))
    finally:
        logs = [stop_worker(worker) for worker in workers]
        await app.stop()
    assert {r.status for r in paced + capped} == {TaskStatus.SUCCESS}, logs
    rate = start_rate(paced)
    assert abs(rate - limits_app.RATE) <= 0.1 * limits_app.RATE, rate
    assert len({r.result for r in paced}) == 2, ("both workers take part", logs)
    assert max_overlap(capped) == 2


async def test_a_slot_is_shared_by_processes_and_a_killed_workers_frees_itself(
    prefix: str, tmp_path: Path
) -> None:
    app = limits_app.make_app(prefix, REDIS_URL, SECRET)
    started = started_event(app, "once_slow")
    await app.start(workers=False)
    first = start_worker(prefix, "--lease", "3")
    second = None
    try:
        await wait_ready(first)
        stuck = await app.submit("once_slow", str(tmp_path / "ran"))  # runs for ever in first
        await asyncio.wait_for(started.wait(), 60)
        first.send_signal(signal.SIGSTOP)  # from now on only the second worker takes tasks
        second = start_worker(prefix, "--lease", "1")
        await wait_ready(second)
        behind = await app.submit("once_slow", str(tmp_path / "ran"))
        await asyncio.sleep(0.5)  # time enough for a wrong limiter to start it at once
        first.send_signal(signal.SIGKILL)
        first.wait()
        records = await results(app, [stuck, behind])
    finally:
        logs = [stop_worker(w) for w in (first, second) if w is not None]
        await app.stop()
    assert [r.result for r in records] == ["done", "done"], logs
    # the stopped, then dead, worker's slot held the second task back (in the other
    # process) until its lease lapsed; then the first task ran again (its second
    # delivery) and the second one after it
    again, after = records
    assert after.started_at >= again.finished_at
    assert max_overlap(records) == 1
