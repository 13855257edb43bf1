"""What 0.1.8's pages showed, gathered in one call per page (``UIService``)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from flowrra.constants import TASK_STATUSES
from flowrra.task import TaskStatus

if TYPE_CHECKING:
    from flowrra.management import FlowrraManager

__all__ = ["UIService"]


class UIService:
    """The data of 0.1.8's dashboard, tasks and schedules pages.

    Usage::

        service = UIService(FlowrraManager(app))
        page = await service.get_tasks_page_data(status="failed", limit=50)
        page["tasks"]   # the newest failed task records
    """

    def __init__(self, manager: FlowrraManager) -> None:
        """Work through ``manager``."""
        self.manager = manager

    async def get_dashboard_data(self) -> dict[str, Any]:
        """``{"stats", "recent_failed_tasks", "schedules", "total_schedules"}``: statistics,
        the ten newest failures and the first five schedules. A part that fails is
        shown empty instead of failing the page."""
        stats, failed, schedules = await asyncio.gather(
            self.manager.get_stats(),
            self.manager.list_failed_tasks(limit=10),
            self.manager.list_schedules(),
            return_exceptions=True,
        )
        schedule_list = schedules if isinstance(schedules, list) else []
        return {
            "stats": stats if isinstance(stats, dict) else {},
            "recent_failed_tasks": failed if isinstance(failed, list) else [],
            "schedules": schedule_list[:5],
            "total_schedules": len(schedule_list),
        }

    async def get_tasks_page_data(
        self, status: str | None = None, limit: int = 200
    ) -> dict[str, Any]:
        """``{"registered_tasks", "tasks", "status_filter"}``: the newest ``limit`` task
        records of every status, or of ``status`` (one of
        :data:`flowrra.constants.TASK_STATUSES`).

        Raises:
            ValueError: ``status`` is not a task status.
        """
        if status is not None and status not in TASK_STATUSES:
            raise ValueError(
                f"Invalid task status: {status!r}. Use one of {', '.join(TASK_STATUSES)}."
            )
        wanted = TaskStatus(status) if status is not None else None
        registered, tasks = await asyncio.gather(
            self.manager.list_registered_tasks(),
            # one newest-first list of every status (0.1.8 joined limit // 4 per status)
            self.manager._list(wanted, limit),
        )
        return {"registered_tasks": registered, "tasks": tasks, "status_filter": status}

    async def get_schedules_page_data(self, enabled_only: bool = False) -> dict[str, Any]:
        """``{"schedules", "scheduler_stats", "enabled_only"}`` (stats None without a
        scheduler)."""
        schedules, scheduler_stats = await asyncio.gather(
            self.manager.list_schedules(enabled_only),
            self.manager.get_scheduler_stats(),
        )
        return {
            "schedules": schedules,
            "scheduler_stats": scheduler_stats,
            "enabled_only": enabled_only,
        }
