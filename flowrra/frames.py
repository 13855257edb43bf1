"""Task records and schedules as pandas DataFrames (pandas is imported when called).

Every column has one fixed dtype, whatever the rows hold, so code written against a
full frame works on an empty one and on one where a column happens to be all missing:

- ``result``, ``args`` and ``kwargs`` hold each value as the Python object it is (an
  integer result stays an ``int`` beside a failed task's ``None``);
- text columns have pandas' default string dtype (``str`` from pandas 3, ``object``
  before), missing text is ``NaN`` there and ``None`` before;
- times are time-zone aware (UTC) at microsecond resolution, durations are
  ``timedelta64[us]`` (``duration``) and float seconds (``duration_s``);
- counts are ``int64``, ``status`` and ``type`` are categorical;
- ``progress`` (the fraction done a task last reported, 0 to 1) is ``float64``, ``NaN``
  when it reported none.

Usage::

    frame = await app.results_frame()
    frame.groupby("task_name")["duration_s"].mean()
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
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
    "duration_s",
    "retries",
    "priority",
    "args",
    "kwargs",
    "progress",
    "progress_message",
    "output",
    "workflow_id",
    "workflow_step",
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

_TIME = "datetime64[us, UTC]"
_DURATION = "timedelta64[us]"
_SCHEDULE_TYPES = ("cron", "interval", "one_time")


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ImportError(
            "DataFrames need pandas:"
            " pip install -e '.[notebook]' in flowrra's clone (or pip install pandas)"
        ) from None
    return pandas


def _text_dtype(pandas: Any) -> Any:
    """pandas' default dtype for text: ``str`` from pandas 3, ``object`` before."""
    return "str" if int(pandas.__version__.split(".")[0]) >= 3 else object


def _frame(
    pandas: Any,
    items: Sequence[Any],
    columns: dict[str, tuple[Callable[[Any], Any], Any]],
) -> pd.DataFrame:
    """A DataFrame with one row per item: each column is ``getter(item)`` as its dtype
    (datetimes through ``to_datetime``, so a naive one is read as UTC)."""
    data = {}
    for name, (getter, dtype) in columns.items():
        values = [getter(item) for item in items]
        if dtype == _TIME:
            times = pandas.to_datetime(pandas.Series(values, dtype=object), utc=True)
            data[name] = times.astype(_TIME)
        else:
            data[name] = pandas.Series(values, dtype=dtype)
    return pandas.DataFrame(data, columns=list(columns))


def _seconds(record: TaskResult) -> float | None:
    duration = record.duration
    return None if duration is None else duration.total_seconds()


def results_frame(records: Iterable[TaskResult]) -> pd.DataFrame:
    """One row per record with :data:`RESULT_COLUMNS` (see the module docstring for the
    dtypes, which an empty frame shares); ``status`` is categorical and the datetimes are
    time-zone aware (UTC)."""
    pandas = _pandas()
    text = _text_dtype(pandas)
    statuses = pandas.CategoricalDtype([s.value for s in TaskStatus])
    columns: dict[str, tuple[Callable[[TaskResult], Any], Any]] = {
        "task_id": (lambda r: r.task_id, text),
        "task_name": (lambda r: r.task_name, text),
        "status": (lambda r: r.status.value, statuses),
        "result": (lambda r: r.result, object),
        "error": (lambda r: r.error, text),
        "submitted_at": (lambda r: r.submitted_at, _TIME),
        "started_at": (lambda r: r.started_at, _TIME),
        "finished_at": (lambda r: r.finished_at, _TIME),
        "duration": (lambda r: r.duration, _DURATION),
        "duration_s": (_seconds, "float64"),
        "retries": (lambda r: r.retries, "int64"),
        "priority": (lambda r: r.priority, "int64"),
        "args": (lambda r: tuple(r.args), object),
        "kwargs": (lambda r: dict(r.kwargs or {}), object),
        "progress": (lambda r: r.progress, "float64"),
        "progress_message": (lambda r: r.progress_message, text),
        "output": (lambda r: r.output, text),
        "workflow_id": (lambda r: r.workflow_id, text),
        "workflow_step": (lambda r: r.workflow_step, text),
    }
    return _frame(pandas, list(records), columns)


def schedules_frame(schedules: Iterable[Any]) -> pd.DataFrame:
    """One row per schedule (:class:`flowrra.scheduler.ScheduledTask` or alike) with
    :data:`SCHEDULE_COLUMNS` (an empty frame has the same dtypes); ``type`` is categorical
    (cron, interval, one_time) and the datetimes are time-zone aware (UTC)."""
    pandas = _pandas()
    text = _text_dtype(pandas)
    columns: dict[str, tuple[Callable[[Any], Any], Any]] = {
        "schedule_id": (lambda s: s.id, text),
        "task_name": (lambda s: s.task_name, text),
        "type": (lambda s: s.schedule_type.value, pandas.CategoricalDtype(_SCHEDULE_TYPES)),
        "schedule": (lambda s: s.schedule, text),
        "enabled": (lambda s: bool(s.enabled), "bool"),
        "next_run_at": (lambda s: s.next_run_at, _TIME),
        "last_run_at": (lambda s: s.last_run_at, _TIME),
        "priority": (lambda s: s.priority, "int64"),
        "args": (lambda s: tuple(s.args), object),
        "kwargs": (lambda s: dict(s.kwargs), object),
        "description": (lambda s: s.description, text),
    }
    return _frame(pandas, list(schedules), columns)
