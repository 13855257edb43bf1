"""Task records and schedules as pandas DataFrames (pandas is imported when called)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flowrra.task import TaskResult, TaskStatus

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RESULT_COLUMNS", "SCHEDULE_COLUMNS", "results_frame", "schedules_frame"]

RESULT_COLUMNS = (
    "task_id",
    "task_name",
    "status",
    "result",
    "error",
    "submitted_at",
    "started_at",
    "finished_at",
    "duration",
    "retries",
    "priority",
    "args",
    "kwargs",
)

SCHEDULE_COLUMNS = (
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
)


def _pandas() -> object:
    try:
        import pandas
    except ImportError:
        raise ImportError(
            "DataFrames need pandas: pip install 'flowrra[notebook]' (or pip install pandas)"
        ) from None
    return pandas


def results_frame(records: Iterable[TaskResult]) -> pd.DataFrame:
    """One row per record with :data:`RESULT_COLUMNS`; ``status`` is categorical and the
    datetimes are time-zone aware (UTC)."""
    pd = _pandas()
    rows = [
        {
            "task_id": r.task_id,
            "task_name": r.task_name,
            "status": r.status.value,
            "result": r.result,
            "error": r.error,
            "submitted_at": r.submitted_at,
            "started_at": r.started_at,
            "finished_at": r.finished_at,
            "duration": r.duration,
            "retries": r.retries,
            "priority": r.priority,
            "args": r.args,
            "kwargs": r.kwargs,
        }
        for r in records
    ]
    frame = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))  # type: ignore[attr-defined]
    for column in ("submitted_at", "started_at", "finished_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)  # type: ignore[attr-defined]
    frame["duration"] = pd.to_timedelta(frame["duration"])  # type: ignore[attr-defined]
    frame["status"] = pd.Categorical(  # type: ignore[attr-defined]
        frame["status"], categories=[s.value for s in TaskStatus]
    )
    return frame


def schedules_frame(schedules: Iterable[Any]) -> pd.DataFrame:
    """One row per schedule (:class:`flowrra.scheduler.ScheduledTask` or alike) with
    :data:`SCHEDULE_COLUMNS`; ``type`` is categorical (cron, interval, one_time) and the
    datetimes are time-zone aware (UTC)."""
    pd = _pandas()
    rows = [
        {
            "schedule_id": s.id,
            "task_name": s.task_name,
            "type": s.schedule_type.value,
            "schedule": s.schedule,
            "enabled": bool(s.enabled),
            "next_run_at": s.next_run_at,
            "last_run_at": s.last_run_at,
            "priority": s.priority,
            "args": tuple(s.args),
            "kwargs": dict(s.kwargs),
            "description": s.description,
        }
        for s in schedules
    ]
    frame = pd.DataFrame(rows, columns=list(SCHEDULE_COLUMNS))  # type: ignore[attr-defined]
    for column in ("next_run_at", "last_run_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)  # type: ignore[attr-defined]
    frame["enabled"] = frame["enabled"].astype(bool)
    frame["type"] = pd.Categorical(  # type: ignore[attr-defined]
        frame["type"], categories=["cron", "interval", "one_time"]
    )
    return frame
