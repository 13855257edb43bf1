"""FlowrraManager: stats, registered tasks, task records, schedules and health, as plain
dicts (statuses as strings, pending counted for real)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest

from flowrra import Config, ExecutorConfig, Flowrra
from flowrra.clock import utcnow
from flowrra.management import FlowrraManager
from flowrra.management.manager import FlowrraManager as FromModule
from flowrra.scheduler import ScheduleError

from .scheduler_support import wait_until


@pytest.fixture
async def app() -> AsyncIterator[Flowrra]:
    application = Flowrra(Config(executor=ExecutorConfig(io_workers=1, retry_delay=0.01)))
    gate = asyncio.Event()

    @application.task(max_retries=0, timeout=9)
    async def ok(x: int) -> int:
        return x * 2

    @application.task(max_retries=0)
    async def bad() -> None:
        raise ValueError("nope")

    @application.task()
    async def blocked() -> None:
        await gate.wait()

    application.gate = gate  # type: ignore[attr-defined]
    yield application
    gate.set()
    await application.stop(wait=False)
    if application.scheduler is not None:
        await application.scheduler.backend.close()


async def test_registered_tasks_and_info(app: Flowrra) -> None:
    manager = FlowrraManager(app)
    assert FromModule is FlowrraManager and manager.app is app
    tasks = {t["name"]: t for t in await manager.list_registered_tasks()}
    assert tasks["ok"] == {
        "name": "ok",
        "cpu_bound": False,
        "max_retries": 0,
        "retry_delay": 0.01,
        "timeout": 9.0,
    }
    info = await manager.get_task_info("ok")
    assert info["module"] == __name__ and info["qualname"].endswith("ok")
    assert await manager.get_task_info("missing") is None


async def test_stats_and_task_lists(app: Flowrra) -> None:
    manager = FlowrraManager(app)
    async with app:
        done = await app.submit("ok", 21)
        failed = await app.submit("bad")
        await app.wait_for_result(done, 5)
        await app.wait_for_result(failed, 5)
        running = await app.submit("blocked")
        queued = await app.submit("ok", 1)  # one worker, busy: stays pending
        await wait_until(lambda: _status(app, running, "running"))
        stats = await manager.get_stats()
        assert stats["app"] == {"running": True} and stats["scheduler"] is None
        assert stats["executors"]["io"]["running"] and stats["executors"]["io"]["workers"] == 1
        assert stats["tasks"]["registered"] == 3 and stats["tasks"]["pending"] == 1
        assert stats["tasks"]["by_status"]["success"] == 1
        assert [t["task_id"] for t in await manager.list_pending_tasks()] == [queued]
        assert [t["task_id"] for t in await manager.list_running_tasks()] == [running]
        [success] = await manager.list_completed_tasks()
        assert success["result"] == 42 and success["status"] == "success"
        [failure] = await manager.list_failed_tasks()
        assert failure["error"] == "nope" and failure["error_type"] == "ValueError"
        assert await manager.list_retrying_tasks() == []
        assert len(await manager.list_recent_tasks(limit=3)) == 3
        result = await manager.get_task_result(done)
        assert result["status"] == "success" and result["result"] == 42
        assert isinstance(result["completed_at"], datetime)
        assert (await manager.get_task_result(queued))["completed_at"] is None
        assert await manager.get_task_result("unknown") is None
        app.gate.set()  # type: ignore[attr-defined]


async def test_schedules_through_the_manager(app: Flowrra) -> None:
    manager = FlowrraManager(app)
    assert await manager.list_schedules() == [] and await manager.get_scheduler_stats() is None
    assert await manager.get_schedule("x") is None
    with pytest.raises(ScheduleError, match="No scheduler configured") as info:
        await manager.create_schedule_interval("ok", 60)
    assert isinstance(info.value, ValueError)
    with pytest.raises(ScheduleError, match="No scheduler configured"):
        await manager.enable_schedule("x")
    app.create_scheduler("sqlite:///:memory:")
    cron = await manager.create_schedule_cron("ok", "0 9 * * *", (1,), timezone="UTC")
    every = await manager.create_schedule_interval("ok", 30, (2,), description="poll", priority=1)
    once = await manager.create_schedule_once("ok", utcnow() + timedelta(hours=1), (3,))
    listed = await manager.list_schedules()
    assert [s["id"] for s in listed] == [cron, every, once]
    assert listed[1]["schedule_type"] == "interval" and listed[1]["description"] == "poll"
    await manager.disable_schedule(every)
    assert {s["id"] for s in await manager.list_schedules(enabled_only=True)} == {cron, once}
    await manager.enable_schedule(every)
    stats = await manager.get_scheduler_stats()
    assert stats == {
        "running": False,
        "check_interval": 60.0,
        "total_schedules": 3,
        "enabled_schedules": 3,
        "disabled_schedules": 0,
    }
    assert await manager.delete_schedule(once) and not await manager.delete_schedule(once)
    fires_now = await manager.create_schedule_once("ok", utcnow(), (4,))
    async with app:
        await wait_until(lambda: _has_runs(manager, fires_now))
        detail = await manager.get_schedule(fires_now)
        record = await app.wait_for_result(detail["runs"][0]["task_id"], 5)
        stats = await manager.get_stats()
    assert detail["args"] == (4,) and detail["runs"][0]["outcome"] == "submitted"
    assert record.result == 8
    assert stats["scheduler"] == {
        "enabled": True,
        "running": True,
        "total_schedules": 3,
        "enabled_schedules": 2,
    }


async def test_health_check(app: Flowrra) -> None:
    manager = FlowrraManager(app)
    report = await manager.health_check()
    assert report["healthy"] is False and report["components"]["scheduler"] is None
    assert report["components"]["app"] == {"healthy": False, "message": "App is not running"}
    app.create_scheduler("sqlite:///:memory:")
    async with app:
        await wait_until(lambda: _running(app))
        report = await manager.health_check()
    assert report["healthy"] is True and report["timestamp"].tzinfo is not None
    assert report["components"]["scheduler"] == {
        "healthy": True,
        "message": "Scheduler is running",
    }
    assert set(report["components"]) == {"app", "io_executor", "cpu_executor", "scheduler"}


async def _status(app: Flowrra, task_id: str, status: str) -> bool:
    record = await app.get_result(task_id)
    return record is not None and record.status.value == status


async def _has_runs(manager: FlowrraManager, schedule_id: str) -> bool:
    detail = await manager.get_schedule(schedule_id)
    return bool(detail and detail["runs"])


async def _running(app: Flowrra) -> bool:
    return app.scheduler is not None and app.scheduler.is_running
