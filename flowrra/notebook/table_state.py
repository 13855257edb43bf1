"""What the task table shows, kept without any widget: counts per status and rows.

:class:`TaskTableState` is fed task records (the ``task`` dict of an event, or a
:class:`~flowrra.task.TaskResult` from a snapshot) and answers with ``counts`` and
``rows``. It is plain Python so it can be tested, and reused for the text form of
``%flowrra status``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flowrra.constants import TASK_STATUSES, TERMINAL_STATUSES
from flowrra.home_loop import run_on_home_loop
from flowrra.task import TaskResult

if TYPE_CHECKING:
    from flowrra.app import Flowrra

__all__ = [
    "ROW_FIELDS",
    "Snapshot",
    "TaskTableState",
    "format_duration",
    "format_rows",
    "load_snapshot",
    "read_snapshot",
    "row_from_record",
]

#: Keys of each row dict.
ROW_FIELDS = (
    "task_id",
    "task_name",
    "status",
    "submitted_at",
    "started_at",
    "finished_at",
    "duration",
    "retries",
    "priority",
    "error",
    "error_type",
)

_LIVE = ("pending", "running", "retrying")
_FINISHED_MEMORY = 4096  # finished ids remembered, so a late duplicate event counts once
_ERROR_CHARS = 300


def format_duration(seconds: float | None) -> str:
    """``seconds`` for people: ``"-"``, ``"850 us"``, ``"12.3 ms"``, ``"4.56 s"``, ``"2m05s"``."""
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def _seconds_between(start: Any, end: Any) -> float | None:
    if not start or not end:
        return None
    if isinstance(start, str):
        start, end = datetime.fromisoformat(start), datetime.fromisoformat(end)
    return (end - start).total_seconds()


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def row_from_record(record: Mapping[str, Any] | TaskResult) -> dict[str, Any]:
    """One JSON-ready row (:data:`ROW_FIELDS`) from a record dict or a TaskResult."""
    get = record.get if isinstance(record, Mapping) else record.__getattribute__
    status = get("status")
    error = get("error")
    return {
        "task_id": get("task_id"),
        "task_name": get("task_name"),
        "status": getattr(status, "value", status),
        "submitted_at": _iso(get("submitted_at")),
        "started_at": _iso(get("started_at")),
        "finished_at": _iso(get("finished_at")),
        "duration": _seconds_between(get("started_at"), get("finished_at")),
        "retries": get("retries") or 0,
        "priority": get("priority") or 0,
        "error": error[:_ERROR_CHARS] if isinstance(error, str) else error,
        "error_type": get("error_type"),
    }


def _newest_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: r["submitted_at"] or "", reverse=True)


@dataclass
class Snapshot:
    """The app's records at one moment: counts, live task statuses and candidate rows."""

    counts: dict[str, int]
    rows: list[dict[str, Any]]
    live: dict[str, str] | None = None
    task_names: list[str] = field(default_factory=list)


class TaskTableState:
    """Counts per status and the rows to show, kept up to date record by record.

    ``rows()`` lists running tasks first, then the newest, at most ``max_rows``, filtered
    by ``status_filter`` and ``name_filter`` ("" shows all).

    Usage::

        state = TaskTableState(max_rows=50)
        state.apply(event["task"])
        state.counts, state.rows()
    """

    def __init__(self, max_rows: int = 200) -> None:
        """Start empty; ``max_rows`` bounds the rows shown."""
        self.max_rows = max_rows
        self.status_filter = ""
        self.name_filter = ""
        self.counts: dict[str, int] = dict.fromkeys(TASK_STATUSES, 0)
        self.task_names: list[str] = []
        self._live: dict[str, str] = {}
        self._finished: dict[str, None] = {}
        self._recent: dict[str, dict[str, Any]] = {}
        self._rows: list[dict[str, Any]] | None = None

    # ----------------------------------------------------------------- filters
    def matches(self, row: Mapping[str, Any]) -> bool:
        """True when ``row`` passes the status and task-name filters."""
        return (not self.status_filter or row["status"] == self.status_filter) and (
            not self.name_filter or row["task_name"] == self.name_filter
        )

    # ---------------------------------------------------------------- updating
    def apply(self, record: Mapping[str, Any]) -> None:
        """Take one record dict (an event's ``task``): update counts and rows."""
        task_id, status = record["task_id"], record["status"]
        if not self._count(task_id, status, record.get("task_name")):
            return
        recent = self._recent
        if task_id in recent or (
            (not self.status_filter or status == self.status_filter)
            and (not self.name_filter or record.get("task_name") == self.name_filter)
        ):
            recent[task_id] = row_from_record(record)
            self._rows = None
            if len(recent) > 3 * self.max_rows:
                self._trim()

    def _count(self, task_id: str, status: str, task_name: str | None) -> bool:
        """Move ``task_id``'s count to ``status``; False for a record of a task already
        final (a late duplicate, ignored)."""
        previous = self._live.get(task_id)
        if previous is None and task_id in self._finished:
            return False
        if previous == status:
            return True
        counts = self.counts
        if previous is not None:
            counts[previous] -= 1
        counts[status] = counts.get(status, 0) + 1
        if status in TERMINAL_STATUSES:
            self._live.pop(task_id, None)
            self._remember_finished(task_id)
        else:
            self._live[task_id] = status
        if task_name and task_name not in self.task_names:
            self.task_names = [*self.task_names, task_name]
        return True

    def _remember_finished(self, task_id: str) -> None:
        finished = self._finished
        finished[task_id] = None
        if len(finished) > _FINISHED_MEMORY:
            del finished[next(iter(finished))]

    def _trim(self) -> None:
        """Forget the oldest rows that are not running (they come back with their
        next event), keeping twice ``max_rows``."""
        keep = 2 * self.max_rows
        for task_id in list(self._recent):
            if len(self._recent) <= keep:
                break
            if self._recent[task_id]["status"] != "running":
                del self._recent[task_id]

    def reset(self, snapshot: Snapshot) -> None:
        """Start again from ``snapshot`` (its ``live`` map, when given, enables exact
        counting of the events that follow)."""
        self.counts = {**dict.fromkeys(TASK_STATUSES, 0), **snapshot.counts}
        if snapshot.live is not None:
            self._live = dict(snapshot.live)
            self._finished = {}
        self._recent = {row["task_id"]: row for row in snapshot.rows}
        names = dict.fromkeys([*self.task_names, *snapshot.task_names])
        self.task_names = [n for n in names if n]
        self._rows = None

    # ----------------------------------------------------------------- reading
    def rows(self) -> list[dict[str, Any]]:
        """The rows to show: running tasks first, then the newest; filtered; bounded."""
        if self._rows is None:
            shown = [r for r in self._recent.values() if self.matches(r)]
            running = [r for r in shown if r["status"] == "running"]
            others = [r for r in shown if r["status"] != "running"]
            self._rows = (_newest_first(running) + _newest_first(others))[: self.max_rows]
        return self._rows

    @property
    def total(self) -> int:
        """How many tasks the counts cover."""
        return sum(self.counts.values())

    @property
    def live_count(self) -> int:
        """Tasks not finished yet (pending, running or retrying)."""
        return sum(self.counts.get(s, 0) for s in _LIVE)


def format_rows(counts: Mapping[str, int], rows: Iterable[Mapping[str, Any]]) -> str:
    """The text form of the table (``%flowrra status`` with no widgets)."""
    header = " | ".join(f"{s} {counts.get(s, 0)}" for s in TASK_STATUSES)
    lines = [header, f"{'STATUS':<10} {'TASK':<20} {'ID':<8}  {'DURATION':>9} RETRIES  ERROR"]
    for row in rows:
        lines.append(
            f"{row['status']:<10} {(row['task_name'] or '-')[:20]:<20} {row['task_id'][:8]:<8}"
            f"  {format_duration(row['duration']):>9} {row['retries']:>7}  "
            f"{(row['error'] or '')[:60]}"
        )
    return "\n".join(lines)


async def read_snapshot(app: Flowrra, state: TaskTableState, full: bool) -> Snapshot:
    """The app's records now, for ``state``'s filters; run it on the app's home loop
    (:func:`load_snapshot` does), so it reads them in one step.

    ``full`` also lists every unfinished task (needed to follow events exactly).
    Counts come from the backend's ``count_by_status()`` when it has one, else from
    listing every record.
    """
    counter = getattr(app.results_backend, "count_by_status", None)
    live: dict[str, str] | None = None
    if counter is not None:
        counts = dict(counter())
        if full:  # nothing to list when the counts say no task is unfinished
            statuses = [s for s in _LIVE if counts.get(s)]
            live = {r.task_id: s for s in statuses for r in await app.list_results(s)}
    else:
        records = await app.list_results()
        counts = dict.fromkeys(TASK_STATUSES, 0)
        for record in records:
            counts[record.status.value] += 1
        live = {r.task_id: r.status.value for r in records if r.status.value in _LIVE}
    return Snapshot(counts, await _candidate_rows(app, state), live, app.registry.list_tasks())


async def _candidate_rows(app: Flowrra, state: TaskTableState) -> list[dict[str, Any]]:
    status, name, limit = state.status_filter or None, state.name_filter or None, state.max_rows
    records = await app.list_results(status, name, limit)
    if status is None:
        records += await app.list_results("running", name, limit)
    return [row_from_record(r) for r in records]


async def load_snapshot(app: Flowrra, state: TaskTableState, full: bool) -> Snapshot:
    """:func:`read_snapshot` run on ``app``'s home loop."""
    return await run_on_home_loop(app, read_snapshot(app, state, full))
