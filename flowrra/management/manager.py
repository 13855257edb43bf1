"""The :class:`FlowrraManager`: one object answering "what is this app doing?"."""

from __future__ import annotations

import inspect
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from flowrra.clock import utcnow
from flowrra.scheduler.models import MissedRunPolicy, ScheduledTask, ScheduleError
from flowrra.task import TaskResult, TaskStatus

if TYPE_CHECKING:
    from flowrra.app import Flowrra
    from flowrra.scheduler import Scheduler

__all__ = ["FlowrraManager"]

_NO_SCHEDULER = "No scheduler configured. Create one with app.create_scheduler() first."


def _task_dict(record: TaskResult) -> dict[str, Any]:
    return {
        "task_id": record.task_id,
        "task_name": record.task_name,
        "status": record.status.value,
        "submitted_at": record.submitted_at,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "args": record.args,
        "kwargs": record.kwargs,
        "retries": record.retries,
        "priority": record.priority,
        "result": record.result,
        "error": record.error,
        "error_type": record.error_type,
    }


def _schedule_dict(task: ScheduledTask) -> dict[str, Any]:
    return {
        "id": task.id,
        "task_name": task.task_name,
        "schedule_type": task.schedule_type.value,
        "schedule": task.schedule,
        "timezone": task.timezone,
        "enabled": task.enabled,
        "next_run_at": task.next_run_at,
        "last_run_at": task.last_run_at,
        "priority": task.priority,
        "description": task.description,
        "missed_runs": task.missed_runs.value,
        "created_at": task.created_at,
        "updated_at": task.updated_at,
    }


def _health(healthy: bool, message: str) -> dict[str, Any]:
    return {"healthy": healthy, "message": message}


class FlowrraManager:
    """Statistics, registered tasks, task records, schedules and health of an app.

    Usage::

        manager = FlowrraManager(app)
        stats = await manager.get_stats()
        failed = await manager.list_failed_tasks(limit=20)
        schedule_id = await manager.create_schedule_interval("poll", 60)
        report = await manager.health_check()

    Every method is a coroutine returning plain dicts and lists; datetimes are aware UTC
    ``datetime`` objects and statuses are their value strings (``"success"``). Schedule
    methods raise :class:`~flowrra.scheduler.models.ScheduleError` (a ``ValueError``)
    when the app has no scheduler.
    """

    def __init__(self, app: Flowrra) -> None:
        """Manage ``app``."""
        self.app = app

    @property
    def scheduler(self) -> Scheduler | None:
        """The app's scheduler, or None."""
        return self.app.scheduler

    def _require_scheduler(self) -> Scheduler:
        scheduler = self.app.scheduler
        if scheduler is None:
            raise ScheduleError(_NO_SCHEDULER)
        return scheduler

    # ------------------------------------------------------------------ stats
    async def _status_counts(self) -> dict[str, int]:
        counter = getattr(self.app.results_backend, "count_by_status", None)
        if callable(counter):
            counts = counter()
            if inspect.isawaitable(counts):  # the Redis backend reads its indexes
                counts = await counts
            return dict(counts)
        records = await self.app.list_results()
        counts = dict.fromkeys((s.value for s in TaskStatus), 0)
        for record in records:
            counts[record.status.value] += 1
        return counts

    async def get_stats(self) -> dict[str, Any]:
        """The app, its executors, its tasks (registered, pending and counts by status)
        and its scheduler (None without one)."""
        counts = await self._status_counts()
        executors = {
            kind: {
                "running": executor.is_running,
                "workers": executor.worker_count,
                "queued": executor.queue_size(),
                "active": executor.active_count(),
            }
            for kind, executor in (("io", self.app.io_executor), ("cpu", self.app.cpu_executor))
        }
        return {
            "app": {"running": self.app.is_running},
            "executors": executors,
            "tasks": {
                "registered": len(self.app.registry),
                "pending": counts.get(TaskStatus.PENDING.value, 0),
                "by_status": counts,
            },
            "scheduler": await self._scheduler_summary(),
        }

    async def _scheduler_summary(self) -> dict[str, Any] | None:
        scheduler = self.app.scheduler
        if scheduler is None:
            return None
        total, enabled = await scheduler.count_schedules()
        return {
            "enabled": True,
            "running": scheduler.is_running,
            "total_schedules": total,
            "enabled_schedules": enabled,
        }

    # -------------------------------------------------------- registered tasks
    async def list_registered_tasks(self) -> list[dict[str, Any]]:
        """Every registered task with its options: name, cpu_bound, max_retries,
        retry_delay, timeout."""
        return [
            {
                "name": spec.name,
                "cpu_bound": spec.cpu_bound,
                "max_retries": spec.max_retries,
                "retry_delay": spec.retry_delay,
                "timeout": spec.timeout,
            }
            for spec in self.app.registry.specs()
        ]

    async def get_task_info(self, task_name: str) -> dict[str, Any] | None:
        """One registered task's options plus its ``module`` and ``qualname``, or None."""
        if not self.app.registry.is_registered(task_name):
            return None
        spec = self.app.registry.spec(task_name)
        return {
            "name": spec.name,
            "cpu_bound": spec.cpu_bound,
            "max_retries": spec.max_retries,
            "retry_delay": spec.retry_delay,
            "timeout": spec.timeout,
            "module": getattr(spec.func, "__module__", None),
            "qualname": getattr(spec.func, "__qualname__", None),
        }

    # ------------------------------------------------------------ task records
    async def _list(self, status: TaskStatus | None, limit: int | None) -> list[dict[str, Any]]:
        return [_task_dict(r) for r in await self.app.list_results(status=status, limit=limit)]

    async def list_pending_tasks(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Tasks submitted and not started yet, newest first."""
        return await self._list(TaskStatus.PENDING, limit)

    async def list_running_tasks(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Tasks running now, newest first."""
        return await self._list(TaskStatus.RUNNING, limit)

    async def list_retrying_tasks(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Tasks waiting for a retry, newest first."""
        return await self._list(TaskStatus.RETRYING, limit)

    async def list_completed_tasks(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Tasks that succeeded, newest first."""
        return await self._list(TaskStatus.SUCCESS, limit)

    async def list_failed_tasks(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Tasks that failed, newest first."""
        return await self._list(TaskStatus.FAILED, limit)

    async def list_recent_tasks(self, limit: int | None = 20) -> list[dict[str, Any]]:
        """The latest tasks of every status, newest first."""
        return await self._list(None, limit)

    async def get_task_result(self, task_id: str) -> dict[str, Any] | None:
        """One task's status (a string), result, error and completion time, or None."""
        record = await self.app.get_result(task_id)
        if record is None:
            return None
        return {
            "task_id": record.task_id,
            "status": record.status.value,
            "result": record.result,
            "error": record.error,
            "completed_at": record.finished_at if record.is_complete else None,
        }

    # -------------------------------------------------------------- schedules
    async def list_schedules(self, enabled_only: bool = False) -> list[dict[str, Any]]:
        """Every schedule (or only the enabled ones); ``[]`` without a scheduler."""
        scheduler = self.app.scheduler
        if scheduler is None:
            return []
        return [_schedule_dict(t) for t in await scheduler.list_schedules(enabled_only)]

    async def get_schedule(self, schedule_id: str, runs: int = 10) -> dict[str, Any] | None:
        """One schedule with its args, kwargs, retries, timeout and its latest ``runs``
        runs (``"runs"``: due_at, fired_at, task_id, outcome, error); None if unknown."""
        scheduler = self.app.scheduler
        if scheduler is None:
            return None
        task = await scheduler.get_schedule(schedule_id)
        if task is None:
            return None
        history = await scheduler.list_runs(schedule_id, runs)
        return {
            **_schedule_dict(task),
            "args": task.args,
            "kwargs": task.kwargs,
            "max_retries": task.max_retries,
            "retry_delay": task.retry_delay,
            "timeout": task.timeout,
            "max_catchup": task.max_catchup,
            "runs": [
                {
                    "due_at": run.due_at,
                    "fired_at": run.fired_at,
                    "task_id": run.task_id,
                    "outcome": run.outcome.value,
                    "error": run.error,
                }
                for run in history
            ],
        }

    async def get_scheduler_stats(self) -> dict[str, Any] | None:
        """The scheduler's state and schedule counts, or None without a scheduler."""
        scheduler = self.app.scheduler
        if scheduler is None:
            return None
        total, enabled = await scheduler.count_schedules()
        return {
            "running": scheduler.is_running,
            "check_interval": scheduler.check_interval,
            "total_schedules": total,
            "enabled_schedules": enabled,
            "disabled_schedules": total - enabled,
        }

    async def create_schedule_cron(
        self,
        task_name: str,
        cron: str,
        args: tuple | list = (),
        kwargs: dict | None = None,
        enabled: bool = True,
        description: str | None = None,
        priority: int = 0,
        *,
        timezone: str | None = None,
        missed_runs: MissedRunPolicy | str = MissedRunPolicy.RUN_ONCE,
    ) -> str:
        """See :meth:`flowrra.scheduler.Scheduler.schedule_cron`; returns the schedule id."""
        return await self._require_scheduler().schedule_cron(
            task_name,
            cron,
            args,
            kwargs,
            enabled,
            description,
            priority=priority,
            timezone=timezone,
            missed_runs=missed_runs,
        )

    async def create_schedule_interval(
        self,
        task_name: str,
        interval: float | timedelta,
        args: tuple | list = (),
        kwargs: dict | None = None,
        enabled: bool = True,
        description: str | None = None,
        priority: int = 0,
        *,
        missed_runs: MissedRunPolicy | str = MissedRunPolicy.RUN_ONCE,
    ) -> str:
        """See :meth:`flowrra.scheduler.Scheduler.schedule_interval`; returns the id."""
        return await self._require_scheduler().schedule_interval(
            task_name,
            interval,
            args,
            kwargs,
            enabled,
            description,
            priority=priority,
            missed_runs=missed_runs,
        )

    async def create_schedule_once(
        self,
        task_name: str,
        run_at: datetime,
        args: tuple | list = (),
        kwargs: dict | None = None,
        description: str | None = None,
        priority: int = 0,
    ) -> str:
        """See :meth:`flowrra.scheduler.Scheduler.schedule_once`; returns the id."""
        return await self._require_scheduler().schedule_once(
            task_name, run_at, args, kwargs, description, priority=priority
        )

    async def enable_schedule(self, schedule_id: str) -> None:
        """Enable a schedule (ScheduleError if unknown or without a scheduler)."""
        await self._require_scheduler().enable_task(schedule_id)

    async def disable_schedule(self, schedule_id: str) -> None:
        """Disable a schedule (ScheduleError if unknown or without a scheduler)."""
        await self._require_scheduler().disable_task(schedule_id)

    async def delete_schedule(self, schedule_id: str) -> bool:
        """Delete a schedule; True if it existed."""
        return await self._require_scheduler().unschedule(schedule_id)

    # ----------------------------------------------------------------- health
    async def _scheduler_health(self) -> dict[str, Any] | None:
        scheduler = self.app.scheduler
        if scheduler is None:
            return None
        if not scheduler.is_running:
            return _health(False, "Scheduler is not running")
        try:
            await scheduler.count_schedules()
        except Exception as exc:
            return _health(False, f"Schedule database unreachable: {exc}")
        return _health(True, "Scheduler is running")

    async def health_check(self) -> dict[str, Any]:
        """``{"healthy", "timestamp", "components": {"app", "io_executor", "cpu_executor",
        "scheduler"}}``; each component ``{"healthy", "message"}`` or None if absent.
        The scheduler is healthy when it runs and its database answers."""
        running = self.app.is_running
        components: dict[str, dict[str, Any] | None] = {
            "app": _health(running, "App is running" if running else "App is not running"),
        }
        for name, executor in (
            ("io_executor", self.app.io_executor),
            ("cpu_executor", self.app.cpu_executor),
        ):
            ok = executor.is_running
            components[name] = _health(ok, "Running" if ok else "Not running")
        components["scheduler"] = await self._scheduler_health()
        healthy = all(c["healthy"] for c in components.values() if c is not None)
        return {"healthy": healthy, "timestamp": utcnow(), "components": components}
