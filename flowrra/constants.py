"""Constants shared by flowrra's faces: status names and their colours, event types."""

from __future__ import annotations

__all__ = [
    "EVENT_TYPES",
    "STATUS_COLORS",
    "TASK_STATUSES",
    "TERMINAL_STATUSES",
]

#: Every status a task record can have, in lifecycle order.
TASK_STATUSES = ("pending", "running", "retrying", "success", "failed", "cancelled")

#: Statuses after which a record never changes again.
TERMINAL_STATUSES = frozenset({"success", "failed", "cancelled"})

#: Colour names for each status (CSS badge suffixes in the notebook widget).
STATUS_COLORS = {
    "pending": "gray",
    "running": "blue",
    "retrying": "orange",
    "success": "green",
    "failed": "red",
    "cancelled": "purple",
}

#: Event types the executors emit, in lifecycle order.
EVENT_TYPES = (
    "task.submitted",
    "task.started",
    "task.progress",
    "task.retrying",
    "task.succeeded",
    "task.failed",
    "task.cancelled",
)
