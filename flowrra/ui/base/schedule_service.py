"""Schedule operations in 0.1.8's answer shapes (``ScheduleService``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowrra.management import FlowrraManager

__all__ = ["ScheduleService"]


class ScheduleService:
    """Lists, creates, enables, disables and deletes an app's schedules.

    Usage::

        service = ScheduleService(FlowrraManager(app))
        made = await service.create_schedule_cron("report", "0 9 * * *")
        await service.disable_schedule(made["schedule_id"])

    Every method raises :class:`~flowrra.scheduler.models.ScheduleError` (a
    ``ValueError``) when the app has no scheduler, except the listers, which answer
    ``[]`` or None.
    """

    def __init__(self, manager: FlowrraManager) -> None:
        """Work through ``manager``."""
        self.manager = manager

    async def list_schedules(self, enabled_only: bool = False) -> list[dict[str, Any]]:
        """Every schedule, or only the enabled ones."""
        return await self.manager.list_schedules(enabled_only)

    async def get_schedule(self, schedule_id: str) -> dict[str, Any] | None:
        """One schedule with its latest runs, or None."""
        return await self.manager.get_schedule(schedule_id)

    async def create_schedule_cron(
        self,
        task_name: str,
        cron: str,
        args: tuple | list = (),
        kwargs: dict | None = None,
        enabled: bool = True,
        description: str | None = None,
        priority: int = 0,
    ) -> dict[str, str]:
        """Create a cron schedule: ``{"schedule_id": id}``."""
        schedule_id = await self.manager.create_schedule_cron(
            task_name, cron, tuple(args), kwargs, enabled, description, priority
        )
        return {"schedule_id": schedule_id}

    async def enable_schedule(self, schedule_id: str) -> dict[str, str]:
        """Enable a schedule: ``{"status": "enabled", "schedule_id": id}``."""
        await self.manager.enable_schedule(schedule_id)
        return {"status": "enabled", "schedule_id": schedule_id}

    async def disable_schedule(self, schedule_id: str) -> dict[str, str]:
        """Disable a schedule: ``{"status": "disabled", "schedule_id": id}``."""
        await self.manager.disable_schedule(schedule_id)
        return {"status": "disabled", "schedule_id": schedule_id}

    async def delete_schedule(self, schedule_id: str) -> dict[str, Any]:
        """Delete a schedule: ``{"deleted": bool, "schedule_id": id}``."""
        deleted = await self.manager.delete_schedule(schedule_id)
        return {"deleted": deleted, "schedule_id": schedule_id}
