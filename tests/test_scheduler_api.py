"""The scheduler's API with the app (SQLite): create_scheduler and Config, bad input
that writes nothing, idempotent schedule_* calls, 0.1.8 names and hooks, options
reaching the task record, and the DataFrame view."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from flowrra import Config, ExecutorConfig, Flowrra, SchedulerConfig, TaskStatus
from flowrra.clock import utcnow
from flowrra.exceptions import ConfigError, FlowrraError
from flowrra.registry import TaskRegistry
from flowrra.scheduler import (
    MissedRunPolicy,
    ScheduleError,
    Scheduler,
    SchedulerBackendError,
    ScheduleType,
)
from flowrra.scheduler.backends import SQLiteSchedulerBackend

from .scheduler_support import Recorder, wait_until


@pytest.fixture
async def app() -> AsyncIterator[Flowrra]:
    application = Flowrra(Config(executor=ExecutorConfig(retry_delay=0.01)))
    yield application
    await application.stop(wait=False)
    if application.scheduler is not None:
        await application.scheduler.backend.close()


def with_tasks(app: Flowrra) -> dict[str, list]:
    calls: dict[str, list] = {"report": [], "slow": []}

    @app.task()
    async def report(*args: Any, **kwargs: Any) -> str:
        calls["report"].append((args, kwargs))
        return "sent"

    @app.task(max_retries=3)
    async def flaky() -> None:
        raise RuntimeError("boom")

    @app.task()
    async def slow() -> None:
        calls["slow"].append(1)
        await asyncio.sleep(10)

    return calls


async def test_create_scheduler_runs_with_the_app(app: Flowrra, tmp_path: Path) -> None:
    with_tasks(app)
    scheduler = app.create_scheduler(f"sqlite:///{tmp_path}/s.db", check_interval=2.5)
    assert app.scheduler is scheduler and scheduler.check_interval == 2.5
    assert isinstance(scheduler.backend, SQLiteSchedulerBackend)
    sid = await scheduler.schedule_once("report", utcnow(), args=(1,), kwargs={"to": "me"})
    async with app:
        assert scheduler.is_running
        await wait_until(lambda: _fired(scheduler, sid))
        [run] = await scheduler.list_runs(sid)
        record = await app.wait_for_result(run.task_id, timeout=5)
    assert not scheduler.is_running
    assert record.result == "sent" and record.args == (1,) and record.kwargs == {"to": "me"}


async def test_schedule_priority_retries_and_timeout_reach_the_task(
    app: Flowrra, tmp_path: Path
) -> None:
    calls = with_tasks(app)
    scheduler = app.create_scheduler(f"sqlite:///{tmp_path}/s.db")
    now = utcnow()
    flaky = await scheduler.schedule_once("flaky", now, max_retries=0, priority=7)
    slow = await scheduler.schedule_once("slow", now, timeout=0.05, priority=-2)
    async with app:
        await wait_until(lambda: _fired(scheduler, flaky))
        await wait_until(lambda: _fired(scheduler, slow))
        failed = await app.wait_for_result((await scheduler.list_runs(flaky))[0].task_id, 5)
        timed = await app.wait_for_result((await scheduler.list_runs(slow))[0].task_id, 5)
    assert failed.status is TaskStatus.FAILED and failed.retries == 0 and failed.priority == 7
    assert timed.status is TaskStatus.FAILED and "timeout of 0.05s" in timed.error
    assert timed.priority == -2 and calls["slow"] == [1]


async def test_config_creates_and_runs_the_scheduler(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/cfg.db"
    app = Flowrra(
        Config(scheduler=SchedulerConfig(database_url=url, check_interval=7, enabled=True))
    )
    with_tasks(app)
    assert app.scheduler is not None and app.scheduler.check_interval == 7.0
    assert app.scheduler.backend.database_path == f"{tmp_path}/cfg.db"
    async with app:
        assert app.scheduler.is_running
    assert Flowrra(Config(scheduler=SchedulerConfig(enabled=False))).scheduler is None


async def test_default_backend_is_sqlite_in_the_working_folder(
    app: Flowrra, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with_tasks(app)
    scheduler = app.create_scheduler()
    await scheduler.schedule_interval("report", 60)
    assert (tmp_path / ".flowrra_schedule.db").exists()


async def test_a_scheduler_created_on_a_running_app_starts(app: Flowrra) -> None:
    with_tasks(app)
    async with app:
        scheduler = app.create_scheduler("sqlite:///:memory:")
        await wait_until(lambda: _true(scheduler.is_running))
        with pytest.raises(FlowrraError, match="already has a running scheduler"):
            app.create_scheduler("sqlite:///:memory:")


async def test_an_unreachable_database_stops_the_app_from_starting(app: Flowrra) -> None:
    with_tasks(app)
    app.create_scheduler("postgresql://postgres:s3cret@127.0.0.1:1/x?connect_timeout=2")
    with pytest.raises(SchedulerBackendError, match=r"postgresql://postgres:\*\*\*@127") as info:
        await app.start()
    assert "s3cret" not in str(info.value)
    assert not app.is_running and not app.io_executor.is_running


async def test_memory_schedules_survive_stop_and_start(app: Flowrra) -> None:
    with_tasks(app)
    scheduler = app.create_scheduler("sqlite:///:memory:")
    sid = await scheduler.schedule_interval("report", 3600)
    async with app:
        pass
    async with app:
        assert [s.id for s in await scheduler.list_schedules()] == [sid]


async def test_bad_input_is_a_clear_error_and_writes_nothing(app: Flowrra) -> None:
    with_tasks(app)
    scheduler = app.create_scheduler("sqlite:///:memory:")
    soon = utcnow() + timedelta(hours=1)
    bad: list[tuple[Any, str]] = [
        (scheduler.schedule_interval("nope", 60), "Task 'nope' is not registered"),
        (scheduler.schedule_interval("report", 0), "Interval must be positive"),
        (scheduler.schedule_interval("report", -5), "Interval must be positive"),
        (scheduler.schedule_interval("report", "60"), "interval must be a number"),
        (scheduler.schedule_cron("report", "61 * * * *"), "bad minute field"),
        (scheduler.schedule_cron("report", "0 9 * * *", timezone="Nowhere/Town"), "time zone"),
        (scheduler.schedule_once("report", "tomorrow"), "run_at must be a datetime"),
        (scheduler.schedule_once("report", soon, args=(object(),)), "JSON-serializable"),
        (scheduler.schedule_once("report", soon, args="abc"), "args must be a tuple or list"),
        (scheduler.schedule_once("report", soon, priority=1.5), "priority"),
        (scheduler.schedule_once("report", soon, max_retries=-1), "max_retries"),
        (scheduler.schedule_once("report", soon, timeout=0), "timeout"),
        (scheduler.schedule_once("report", soon, missed_runs="later"), "missed_runs"),
        (scheduler.schedule_once("report", soon, task_id="a", schedule_id="b"), "not both"),
    ]
    for call, message in bad:
        with pytest.raises(ScheduleError, match=message) as info:
            await call
        assert isinstance(info.value, ValueError)
    assert await scheduler.list_schedules() == []
    with pytest.raises(ConfigError, match="Unsupported scheduler backend URL scheme: 'redis'"):
        app.create_scheduler("redis://localhost")
    with pytest.raises(ScheduleError, match="not found"):
        await scheduler.enable_task("missing")


async def test_schedule_calls_are_idempotent(app: Flowrra) -> None:
    with_tasks(app)
    scheduler = app.create_scheduler("sqlite:///:memory:")
    first = await scheduler.schedule_interval("report", 60, kwargs={"a": 1, "b": 2})
    assert await scheduler.schedule_interval("report", 60.0, kwargs={"b": 2, "a": 1}) == first
    same = await scheduler.schedule_interval("report", timedelta(minutes=1), (), {"b": 2, "a": 1})
    assert same == first
    assert await scheduler.schedule_interval("report", 61, kwargs={"a": 1, "b": 2}) != first
    cron = await scheduler.schedule_cron("report", "0 9 * * *", timezone="UTC")
    assert await scheduler.schedule_cron("report", " 0  9 * * * ", timezone="UTC") == cron
    assert await scheduler.schedule_cron("report", "0 9 * * *", timezone="Asia/Tokyo") != cron
    custom = await scheduler.schedule_interval("report", 5, task_id="my-id")
    assert custom == "my-id"
    assert await scheduler.schedule_interval("report", 5, schedule_id="other-id") == "my-id"
    assert (await scheduler.get_schedule(first)).schedule == "60"
    assert len(await scheduler.list_schedules()) == 5


async def test_0_1_8_names_and_models(app: Flowrra) -> None:
    with_tasks(app)
    scheduler = app.create_scheduler("sqlite:///:memory:")
    when = datetime(2031, 5, 4, 3, 2, 1, tzinfo=UTC)
    sid = await scheduler.schedule_once("report", when, ("a",), {"k": 1}, "a note")
    task = await scheduler.get_scheduled_task(sid)
    assert [t.id for t in await scheduler.list_scheduled_tasks()] == [sid]
    assert task.schedule_type is ScheduleType.ONE_TIME and task.schedule == when.isoformat()
    assert task.description == "a note" and task.missed_runs is MissedRunPolicy.RUN_ONCE
    data = task.to_dict()
    assert data["args"] == ["a"] and data["schedule_type"] == "one_time"
    assert type(task).from_dict(data) == task
    await scheduler.disable_task(sid)
    assert not (await scheduler.get_schedule(sid)).enabled
    await scheduler.enable_task(sid)
    assert (await scheduler.get_schedule(sid)).next_run_at == when
    assert await scheduler.unschedule(sid) and not await scheduler.unschedule(sid)


async def test_a_scheduler_needs_somewhere_to_submit() -> None:
    scheduler = Scheduler("sqlite:///:memory:", TaskRegistry())
    with pytest.raises(ScheduleError, match="requires either"):
        await scheduler.start()


async def test_legacy_submit_callback_and_executors(app: Flowrra) -> None:
    with_tasks(app)
    got: list[tuple] = []

    def callback(func: Any, *args: Any, **kwargs: Any) -> str:
        got.append((func.__name__, args, kwargs))
        return "legacy-id"

    legacy = Scheduler("sqlite:///:memory:", app.registry, 1.0)
    legacy.set_submit_callback(callback)
    await legacy.start()
    sid = await legacy.schedule_once("report", utcnow(), args=(5,), kwargs={"x": 1})
    await wait_until(lambda: _fired(legacy, sid))
    await legacy.stop()
    assert got == [("report", (5,), {"x": 1})]
    assert (await legacy.list_runs(sid))[0].task_id == "legacy-id"
    await legacy.backend.close()

    direct = Scheduler("sqlite:///:memory:", app.registry, 1.0, io_executor=app.io_executor)
    async with app:
        await direct.start()
        sid = await direct.schedule_once("report", utcnow(), priority=4)
        await wait_until(lambda: _fired(direct, sid))
        record = await app.wait_for_result((await direct.list_runs(sid))[0].task_id, 5)
        await direct.stop()
    assert record.result == "sent" and record.priority == 4
    await direct.backend.close()


async def test_a_failed_submit_keeps_the_run_due_and_retries() -> None:
    registry = TaskRegistry()
    registry.task()(_noop)
    rec, attempts = Recorder(), []

    async def submit(*args: Any, **kwargs: Any) -> str:
        attempts.append(utcnow())
        if len(attempts) == 1:
            raise ConnectionError("broker down")
        return await rec(*args, **kwargs)

    scheduler = Scheduler("sqlite:///:memory:", registry, 0.2, submit=submit)
    await scheduler.start()
    due = utcnow()
    sid = await scheduler.schedule_once("_noop", due)
    await rec.wait_for(1)
    await scheduler.stop()
    assert len(attempts) == 2 and attempts[1] - attempts[0] >= timedelta(seconds=0.2)
    [run] = await scheduler.list_runs(sid)
    assert run.due_at == due and run.task_id == "task-0"
    await scheduler.backend.close()


async def _noop() -> None: ...


async def test_calls_from_another_event_loop_run_on_the_schedulers(app: Flowrra) -> None:
    with_tasks(app)
    scheduler = app.create_scheduler("sqlite:///:memory:")
    async with app:
        await wait_until(lambda: _true(scheduler.is_running))

        def elsewhere() -> str:
            return asyncio.run(scheduler.schedule_interval("report", 30))

        sid = await asyncio.to_thread(elsewhere)
        assert (await scheduler.get_schedule(sid)).schedule == "30"


async def test_schedules_frame(app: Flowrra) -> None:
    pd = pytest.importorskip("pandas")
    with_tasks(app)
    scheduler = app.create_scheduler("sqlite:///:memory:")
    await scheduler.schedule_cron("report", "@daily", args=(1,), timezone="UTC", priority=2)
    await scheduler.schedule_interval("report", 90, kwargs={"a": 1}, description="poll")
    frame = await scheduler.schedules_frame()
    assert list(frame.columns) == [
        "schedule_id",
        "task_name",
        "type",
        "schedule",
        "enabled",
        "next_run_at",
        "last_run_at",
        "priority",
        "args",
        "kwargs",
        "description",
    ]
    assert list(frame["type"]) == ["cron", "interval"]
    assert isinstance(frame["type"].dtype, pd.CategoricalDtype)
    assert str(frame["next_run_at"].dt.tz) == "UTC" and frame["last_run_at"].isna().all()
    assert frame["args"][0] == (1,) and frame["kwargs"][1] == {"a": 1}
    assert frame["enabled"].dtype == bool and list(frame["priority"]) == [2, 0]


async def _fired(scheduler: Scheduler, sid: str) -> bool:
    return bool(await scheduler.list_runs(sid))


async def _true(value: bool) -> bool:
    return value
