"""The scheduler against every backend (one class, subclassed per backend): firing on
time without drift, waking on changes, options reaching the task, missed-run policies
across a restart, and each run fired once by several schedulers, even when one dies."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest

from flowrra.clock import utcnow
from flowrra.registry import TaskRegistry
from flowrra.scheduler import RunOutcome, ScheduledTask, Scheduler, ScheduleType

from .scheduler_support import (
    Clock,
    PerKindDatabase,
    Recorder,
    make_backend,
    wait_until,
)

MS = timedelta(milliseconds=1)


def registry() -> TaskRegistry:
    tasks = TaskRegistry()

    @tasks.task()
    async def job(*args: Any, **kwargs: Any) -> None: ...

    @tasks.task()
    async def marker(*args: Any) -> None: ...

    return tasks


class SchedulerContract(PerKindDatabase):
    """Subclasses set ``kind``: sqlite, postgresql or mysql."""

    @pytest.fixture
    async def make(self, url: str) -> AsyncIterator[Callable[..., Scheduler]]:
        made: list[Scheduler] = []

        def factory(submit: Any = None, **options: Any) -> Scheduler:
            options.setdefault("check_interval", 5.0)
            scheduler = Scheduler(url, registry(), submit=submit or Recorder(), **options)
            made.append(scheduler)
            return scheduler

        yield factory
        for scheduler in made:
            await scheduler.stop()
            await scheduler.backend.close()

    async def test_runs_fire_on_their_grid_and_never_drift(self, make) -> None:
        # How late a run fires is a speed figure: benchmarks/bench_scheduler.py measures it
        # (p99 under 100 ms). Here: every run is due on the schedule's own grid, none twice,
        # none early, and a run missed while the loop stalled is dropped, not fired late.
        rec = Recorder()
        scheduler = make(rec)
        await scheduler.start()
        start = utcnow() + timedelta(seconds=0.2)
        sid = await scheduler.schedule_interval("job", 0.15, start_at=start)
        await rec.wait_for(5)
        await scheduler.stop()
        runs = sorted(await scheduler.list_runs(sid), key=lambda r: r.due_at)
        assert len(runs) >= 5
        steps = [(r.due_at - start) / (150 * MS) for r in runs]
        assert all(step == int(step) for step in steps), steps  # on the grid: no drift
        assert steps[0] >= 0 and steps == sorted(set(steps))  # each due time once
        assert all(r.fired_at >= r.due_at for r in runs)
        assert all(r.outcome is RunOutcome.SUBMITTED for r in runs)
        stored = await scheduler.get_schedule(sid)
        assert stored.next_run_at == runs[-1].due_at + 150 * MS
        assert stored.last_run_at == runs[-1].fired_at

    async def test_one_time_runs_fire_once_and_stay_as_a_record(self, make) -> None:
        rec = Recorder()
        scheduler = make(rec)
        await scheduler.start()
        run_at = utcnow() + timedelta(seconds=0.1)
        sid = await scheduler.schedule_once("job", run_at, args=("once",))
        await rec.wait_for(1)
        await scheduler.stop()
        stored = await scheduler.get_schedule(sid)
        assert not stored.enabled and stored.next_run_at is None
        assert stored.last_run_at is not None and stored.last_run_at >= run_at
        assert await scheduler.schedule_once("job", run_at, args=["once"]) == sid
        await scheduler.start()  # restarted: it must not fire again
        await scheduler.schedule_once("marker", utcnow(), args=("after",))
        await rec.wait_for(2)
        await scheduler.stop()
        assert rec.args_of() == [("once",), ("after",)]
        [run] = await scheduler.list_runs(sid)
        assert run.task_id == "task-0" and run.due_at == run_at

    async def test_a_change_made_here_wakes_the_loop_at_once(self, make) -> None:
        rec = Recorder()
        scheduler = make(rec, check_interval=30.0)
        await scheduler.start()
        await asyncio.sleep(0.05)  # let it go to sleep for check_interval
        await scheduler.schedule_once("job", utcnow())
        await rec.wait_for(1, timeout=1.0)

    async def test_a_change_made_elsewhere_is_seen_within_check_interval(self, url, make) -> None:
        rec = Recorder()
        scheduler = make(rec, check_interval=0.3)
        await scheduler.start()
        other = make_backend(url)  # another process's connection
        now = utcnow()
        await other.add(
            ScheduledTask(
                "from-elsewhere", "job", ScheduleType.ONE_TIME, now.isoformat(), next_run_at=now
            )
        )
        await other.close()
        await rec.wait_for(1, timeout=2.0)
        assert utcnow() - now < timedelta(seconds=1.5)

    async def test_disabled_schedules_wait_and_enabling_drops_missed_runs(self, make) -> None:
        rec = Recorder()
        scheduler = make(rec)
        await scheduler.start()
        sid = await scheduler.schedule_interval(
            "job", 0.1, args=("x",), enabled=False, start_at=utcnow()
        )
        await scheduler.schedule_once("marker", utcnow() + timedelta(seconds=0.3))
        await rec.wait_for(1)
        assert rec.args_of() == [()]  # only the marker: the disabled one never fired
        enabled_at = utcnow()
        await scheduler.enable_task(sid)
        await rec.wait_for(3)
        await scheduler.disable_task(sid)
        runs = await scheduler.list_runs(sid)
        assert runs and all(r.due_at > enabled_at for r in runs)
        assert not (await scheduler.get_schedule(sid)).enabled

    async def test_priority_retries_and_timeout_reach_the_submit(self, make) -> None:
        rec = Recorder()
        scheduler = make(rec)
        await scheduler.start()
        await scheduler.schedule_once(
            "job",
            utcnow(),
            args=(1, [2]),
            kwargs={"z": 1, "a": {"b": None}},
            priority=3,
            max_retries=1,
            retry_delay=0.5,
            timeout=2,
        )
        await rec.wait_for(1)
        call = rec.calls[0]
        assert (call["task_name"], call["args"], call["kwargs"]) == (
            "job",
            (1, [2]),
            {"a": {"b": None}, "z": 1},
        )
        assert (call["priority"], call["max_retries"], call["retry_delay"], call["timeout"]) == (
            3,
            1,
            0.5,
            2.0,
        )

    async def test_missed_runs_follow_the_policy_across_a_restart(self, make) -> None:
        clock, before = Clock(), Recorder()
        first = make(before, clock=clock, grace_period=1.0)
        await first.start()
        start = clock() + timedelta(seconds=0.05)
        ids = {
            policy: await first.schedule_interval(
                "job", 5, args=(policy,), start_at=start, missed_runs=policy, max_catchup=3
            )
            for policy in ("skip", "run_once", "run_all")
        }
        await before.wait_for(3)
        await first.stop()  # everything is down for 23 seconds: 4 runs missed each
        clock.advance(23)
        after = Recorder()
        second = make(after, clock=clock, grace_period=1.0)  # a new process, same database
        await second.start()
        await after.wait_for(4)
        await wait_until(lambda: _history(second, ids["skip"], 2))
        await second.stop()
        slot = [start + timedelta(seconds=5 * i) for i in range(6)]
        assert Counter(a[0] for a in after.args_of()) == {"run_all": 3, "run_once": 1}
        assert await _dues(second, ids["run_all"]) == slot[:1] + slot[2:5]
        assert await _dues(second, ids["run_once"]) == [slot[0], slot[4]]
        skipped = await second.list_runs(ids["skip"])
        assert [r.outcome for r in skipped] == [RunOutcome.SKIPPED, RunOutcome.SUBMITTED]
        assert skipped[0].due_at == slot[4]
        for sid in ids.values():
            assert (await second.get_schedule(sid)).next_run_at == slot[5]

    async def test_two_schedulers_fire_each_run_exactly_once(self, make) -> None:
        recs = [Recorder(), Recorder()]
        schedulers = [make(rec, lease_seconds=5) for rec in recs]
        setup = schedulers[0]
        start = utcnow() + timedelta(seconds=0.3)
        for i in range(60):
            await setup.schedule_once("job", start + i * 10 * MS, args=(f"once-{i}",))
        interval = await setup.schedule_interval(
            "job", 0.05, args=("beat",), start_at=start, missed_runs="run_all"
        )
        await asyncio.gather(*(s.start() for s in schedulers))
        await wait_until(lambda: _count(recs, "once-59"), timeout=5)
        await asyncio.gather(*(s.stop() for s in schedulers))
        fired = Counter(a[0] for rec in recs for a in rec.args_of())
        assert all(fired[f"once-{i}"] == 1 for i in range(60)), fired
        dues = await _dues(setup, interval, limit=1000)
        assert fired["beat"] == len(dues) >= 5
        assert dues == [start + i * 50 * MS for i in range(len(dues))]  # none twice, none lost

    async def test_a_dead_schedulers_claimed_run_is_fired_by_another(self, make) -> None:
        claimed, never = asyncio.Event(), asyncio.Event()

        async def hang(*args: Any, **kwargs: Any) -> str:
            claimed.set()
            await never.wait()
            return "unreachable"

        doomed = make(hang, lease_seconds=0.5)
        await doomed.start()
        sid = await doomed.schedule_once("job", utcnow(), args=("precious",))
        await asyncio.wait_for(claimed.wait(), 5)
        doomed._task.cancel()  # dies between claim and record: no release, no mark
        await asyncio.gather(doomed._task, return_exceptions=True)
        doomed._task = None
        leased = await doomed.get_schedule(sid)
        assert leased.lease_owner == doomed.name and leased.next_run_at is not None
        rec = Recorder()
        survivor = make(rec)
        await survivor.start()
        await rec.wait_for(1, timeout=3)
        await survivor.stop()
        assert rec.args_of() == [("precious",)]
        [run] = await survivor.list_runs(sid)
        assert run.scheduler == survivor.name and run.fired_at >= leased.lease_until

    async def test_schedules_of_unknown_tasks_are_left_alone(self, url, make) -> None:
        rec = Recorder()
        scheduler = make(rec)
        other = make_backend(url)
        now = utcnow()
        await other.add(
            ScheduledTask("ghost", "ghost", ScheduleType.ONE_TIME, "x", next_run_at=now)
        )
        await other.close()
        await scheduler.start()
        sid = await scheduler.schedule_once("job", now + timedelta(seconds=0.05))
        await rec.wait_for(1)
        await wait_until(lambda: _history(scheduler, sid, 1))
        ghost = await scheduler.get_schedule("ghost")
        assert ghost.enabled and ghost.next_run_at == now and ghost.lease_owner is None
        assert await scheduler.backend.next_due_time(utcnow(), ["job", "marker"]) is None


async def _history(scheduler: Scheduler, sid: str, count: int) -> bool:
    return len(await scheduler.list_runs(sid)) >= count


async def _dues(scheduler: Scheduler, sid: str, limit: int = 100) -> list:
    return sorted(r.due_at for r in await scheduler.list_runs(sid, limit))


async def _count(recs: list[Recorder], key: str) -> bool:
    return any((key,) == a for rec in recs for a in rec.args_of())


class TestSQLiteScheduler(SchedulerContract):
    kind = "sqlite"


class TestPostgreSQLScheduler(SchedulerContract):
    kind = "postgresql"


class TestMySQLScheduler(SchedulerContract):
    kind = "mysql"
