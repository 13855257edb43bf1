"""Run planning: which due times fire, by missed-run policy, and that run times never
drift."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flowrra.scheduler import MissedRunPolicy, ScheduledTask, ScheduleType
from flowrra.scheduler.service import plan_runs

T0 = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
S = timedelta(seconds=1)


def interval(
    seconds: str, first: datetime, policy: str = "run_once", **kw: object
) -> ScheduledTask:
    return ScheduledTask(
        id="i",
        task_name="t",
        schedule_type=ScheduleType.INTERVAL,
        schedule=seconds,
        next_run_at=first,
        missed_runs=MissedRunPolicy(policy),
        **kw,
    )


def test_an_on_time_interval_run_fires_and_the_next_is_due_plus_interval() -> None:
    plan = plan_runs(interval("0.25", T0), T0 + 0.03 * S, grace_period=60)
    assert plan.fire == [T0] and plan.skipped is None and plan.keep_enabled
    assert plan.next_run_at == T0 + 0.25 * S  # from the due time, not from "now"


def test_interval_runs_never_drift() -> None:
    task = interval("0.1", T0)
    for _ in range(1000):
        plan = plan_runs(task, task.next_run_at + 0.037 * S, grace_period=60)  # type: ignore[operator]
        task.next_run_at = plan.next_run_at
    assert task.next_run_at == T0 + 100 * S


def test_missed_interval_runs_by_policy() -> None:
    now = T0 + 10.5 * S  # slots T0 .. T0+10s are due: 11 of them
    once = plan_runs(interval("1", T0), now, grace_period=60)
    assert once.fire == [T0 + 10 * S] and once.next_run_at == T0 + 11 * S
    every = plan_runs(interval("1", T0, "run_all", max_catchup=3), now, grace_period=60)
    assert every.fire == [T0 + 8 * S, T0 + 9 * S, T0 + 10 * S]
    assert every.next_run_at == T0 + 11 * S
    skip_late = plan_runs(interval("1", T0, "skip"), now, grace_period=0.2)
    assert skip_late.fire == [] and skip_late.skipped == T0 + 10 * S
    assert skip_late.next_run_at == T0 + 11 * S
    skip_in_grace = plan_runs(interval("1", T0, "skip"), now, grace_period=1)
    assert skip_in_grace.fire == [T0 + 10 * S]


def test_missed_cron_runs_by_policy() -> None:
    task = ScheduledTask(
        id="c",
        task_name="t",
        schedule_type=ScheduleType.CRON,
        schedule="0 * * * *",
        timezone="UTC",
        next_run_at=T0,
    )
    now = T0 + timedelta(hours=5, minutes=10)
    assert plan_runs(task, now, 60).fire == [T0 + timedelta(hours=5)]
    task.missed_runs, task.max_catchup = MissedRunPolicy.RUN_ALL, 100
    plan = plan_runs(task, now, 60)
    assert plan.fire == [T0 + timedelta(hours=h) for h in range(6)]  # none before T0
    assert plan.next_run_at == T0 + timedelta(hours=6)
    task.missed_runs = MissedRunPolicy.SKIP
    assert plan_runs(task, now, 60).fire == []
    assert plan_runs(task, T0 + timedelta(seconds=30), 60).fire == [T0]


def test_one_time_runs() -> None:
    task = ScheduledTask(
        id="o",
        task_name="t",
        schedule_type=ScheduleType.ONE_TIME,
        schedule=T0.isoformat(),
        next_run_at=T0,
    )
    plan = plan_runs(task, T0 + timedelta(days=2), 60)
    assert plan.fire == [T0] and plan.next_run_at is None and not plan.keep_enabled
    task.missed_runs = MissedRunPolicy.SKIP
    late = plan_runs(task, T0 + timedelta(days=2), 60)
    assert late.fire == [] and late.skipped == T0 and not late.keep_enabled
