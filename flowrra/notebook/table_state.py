"""What the task table shows, kept without any widget: counts per status and rows.

:class:`TaskTableState` is fed task records (the ``task`` dict of an event, or a
:class:`~flowrra.task.TaskResult` from a snapshot) and answers with ``counts`` and
``rows``. It is plain Python so it can be tested, and reused for the text form of
``%flowrra status`` and for :func:`snapshot_html`, the static copy of the table that a
saved notebook shows where the live widget cannot run (GitHub, nbviewer, a closed kernel).

The order of the rows on screen is the browser's business (``widgets/task_table.js``):
failed tasks in a section of their own at the top, then the others, each sorted by the
chosen column. :func:`sort_rows` is the same order in Python, for the snapshot.
"""

from __future__ import annotations

import html
import inspect
import reprlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flowrra.clock import utcnow
from flowrra.constants import STATUS_COLORS, TASK_STATUSES, TERMINAL_STATUSES
from flowrra.home_loop import run_on_home_loop
from flowrra.task import TaskResult

if TYPE_CHECKING:
    from flowrra.app import Flowrra

__all__ = [
    "ROW_FIELDS",
    "SORT_COLUMNS",
    "Snapshot",
    "TaskTableState",
    "elapsed_seconds",
    "format_duration",
    "format_rows",
    "group_by_workflow",
    "load_snapshot",
    "read_snapshot",
    "row_from_record",
    "short_args",
    "snapshot_html",
    "sort_rows",
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
    "args",
    "attempt",
    "progress",
    "progress_message",
    "workflow_id",
    "workflow_step",
)

#: The columns the rows can be sorted by (the table's ``sort_by``): row keys, and
#: ``"elapsed"`` (run time so far, or the duration of a finished task).
SORT_COLUMNS = (
    "status",
    "task_name",
    "task_id",
    "args",
    "submitted_at",
    "elapsed",
    "attempt",
    "error",
)

_LIVE = ("pending", "running", "retrying")
_TICKING = ("running", "retrying")  # their elapsed time grows until they finish
_FINISHED_MEMORY = 4096  # finished ids remembered, so a late duplicate event counts once
_ERROR_CHARS = 300
_ARGS_CHARS = 80
_MESSAGE_CHARS = 200

_args_repr = reprlib.Repr()
_args_repr.maxstring = _args_repr.maxother = 40
_args_repr.maxlevel = 2
_args_repr.maxtuple = _args_repr.maxlist = _args_repr.maxdict = _args_repr.maxset = 5


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


def short_args(args: Iterable[Any] | None, kwargs: Mapping[str, Any] | None) -> str:
    """A task's arguments as a short call-like repr, ``(3, 'x', key=1)``, at most 80
    characters (long values are cut with ``...``, the end with an ellipsis)."""
    if not args and not kwargs:
        return "()"
    parts = [_args_repr.repr(value) for value in args or ()]
    parts += [f"{key}={_args_repr.repr(value)}" for key, value in (kwargs or {}).items()]
    text = f"({', '.join(parts)})"
    return text if len(text) <= _ARGS_CHARS else text[: _ARGS_CHARS - 1] + "\u2026"


def row_from_record(
    record: Mapping[str, Any] | TaskResult, args: str | None = None
) -> dict[str, Any]:
    """One JSON-ready row (:data:`ROW_FIELDS`) from a record dict or a TaskResult.

    ``args`` is the row's :func:`short_args` when it is known already (a task's
    arguments never change, so the table works it out once per task).
    """
    get = record.get if isinstance(record, Mapping) else record.__getattribute__
    status = get("status")
    error = get("error")
    message = get("progress_message")
    retries = get("retries") or 0
    if args is None:
        args = short_args(get("args"), get("kwargs"))
    return {
        "task_id": get("task_id"),
        "task_name": get("task_name"),
        "status": getattr(status, "value", status),
        "submitted_at": _iso(get("submitted_at")),
        "started_at": _iso(get("started_at")),
        "finished_at": _iso(get("finished_at")),
        "duration": _seconds_between(get("started_at"), get("finished_at")),
        "retries": retries,
        "priority": get("priority") or 0,
        "error": error[:_ERROR_CHARS] if isinstance(error, str) else error,
        "error_type": get("error_type"),
        "args": args,
        "attempt": retries + 1,
        "progress": get("progress"),
        "progress_message": message[:_MESSAGE_CHARS] if isinstance(message, str) else None,
        "workflow_id": get("workflow_id"),
        "workflow_step": get("workflow_step"),
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
        previous = recent.get(task_id)
        if previous is not None or (
            (not self.status_filter or status == self.status_filter)
            and (not self.name_filter or record.get("task_name") == self.name_filter)
        ):
            args = previous["args"] if previous is not None else None
            recent[task_id] = row_from_record(record, args)
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
        """Forget the oldest rows, keeping twice ``max_rows``: first those neither
        running nor failed, then failed ones (running rows come back with their next
        event)."""
        keep = 2 * self.max_rows
        recent = self._recent
        oldest_first = sorted(recent, key=lambda task_id: recent[task_id]["submitted_at"] or "")
        for spared in (("running", "failed"), ("running",)):
            for task_id in oldest_first:
                if len(recent) <= keep:
                    return
                if task_id in recent and recent[task_id]["status"] not in spared:
                    del recent[task_id]

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
        """The rows to show, filtered, at most ``max_rows``: running tasks first, then
        the newest failed ones (up to half the rows, so failures are never crowded out
        by newer successes), then the newest of the rest."""
        if self._rows is None:
            shown = _newest_first([r for r in self._recent.values() if self.matches(r)])
            running = [r for r in shown if r["status"] == "running"]
            failed = [r for r in shown if r["status"] == "failed"][: self.max_rows // 2]
            first = {r["task_id"] for r in running} | {r["task_id"] for r in failed}
            rest = [r for r in shown if r["task_id"] not in first]
            self._rows = (running + failed + rest)[: self.max_rows]
        return self._rows

    def matching(self) -> int | None:
        """How many tasks pass the filters (the rows are taken from these): all of them,
        or those of the status filter; None when a task-name filter is set (the counts
        are per status only)."""
        if self.name_filter:
            return None
        if self.status_filter:
            return self.counts.get(self.status_filter, 0)
        return self.total

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


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def elapsed_seconds(row: Mapping[str, Any], now: datetime | None = None) -> float | None:
    """A row's run time: its duration once finished, the time since it started while it
    runs or waits to retry (at ``now``, default the current time), else None."""
    if row.get("duration") is not None:
        return row["duration"]
    started = _parse_time(row.get("started_at"))
    if started is None or row.get("status") not in _TICKING:
        return None
    return max(((now or utcnow()) - started).total_seconds(), 0.0)


def _text_key(name: str) -> Callable[[Mapping[str, Any]], str | None]:
    def key(row: Mapping[str, Any]) -> str | None:
        value = row.get(name)
        return None if value is None or value == "" else str(value).lower()

    return key


def _sort_key(column: str, now: datetime | None) -> Callable[[Mapping[str, Any]], Any]:
    if column == "status":
        order = {status: i for i, status in enumerate(TASK_STATUSES)}
        return lambda row: order.get(row["status"], len(order))
    if column == "elapsed":
        return lambda row: elapsed_seconds(row, now)
    if column == "attempt":
        return lambda row: row.get("attempt") or (row.get("retries") or 0) + 1
    if column == "submitted_at":
        return lambda row: row.get("submitted_at") or None
    return _text_key(column)


def sort_rows(
    rows: Iterable[Mapping[str, Any]],
    sort_by: str = "submitted_at",
    descending: bool = True,
    now: datetime | None = None,
) -> list[Mapping[str, Any]]:
    """``rows`` in the table's order for ``sort_by`` (one of :data:`SORT_COLUMNS`):
    a stable sort, ties newest first, rows without a value last either way.

    Raises:
        ValueError: ``sort_by`` is not one of :data:`SORT_COLUMNS`.
    """
    if sort_by not in SORT_COLUMNS:
        raise ValueError(f"sort_by must be one of {', '.join(SORT_COLUMNS)}; got {sort_by!r}")
    key = _sort_key(sort_by, now)
    base = sorted(rows, key=lambda r: (r.get("submitted_at") or "", r["task_id"]), reverse=True)
    keyed = [(key(row), row) for row in base]
    present = [pair for pair in keyed if pair[0] is not None]
    present.sort(key=lambda pair: pair[0], reverse=descending)
    return [row for _, row in present] + [row for value, row in keyed if value is None]


def _step_order(step: str | None) -> tuple[int, ...]:
    """``"1.10"`` after ``"1.9"``: a step's place as numbers."""
    try:
        return tuple(int(part) for part in (step or "").split(".") if part)
    except ValueError:
        return ()


def group_by_workflow(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """``rows`` (in the table's order) with each workflow's rows together, where its
    first row was: the workflow's own row, then its steps in the order written. Rows of
    no workflow keep their places (``widgets/task_table.js`` does the same)."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row.get("workflow_id") or row["task_id"], []).append(row)
    ordered: list[Mapping[str, Any]] = []
    for key, members in groups.items():
        if len(members) > 1:
            members.sort(key=lambda r: (r["task_id"] != key, _step_order(r.get("workflow_step"))))
        ordered += members
    return ordered


def workflow_label(row: Mapping[str, Any]) -> str:
    """A row's workflow cell: ``"3f2c9a01 1.2"`` for a step, ``"3f2c9a01"`` for the
    workflow's own row, ``""`` for a task of no workflow."""
    workflow = row.get("workflow_id")
    if not workflow:
        return ""
    if row.get("task_id") == workflow:
        return workflow[:8]
    return f"{workflow[:8]} {row.get('workflow_step') or ''}".rstrip()


_HEX_COLORS = {  # as widgets/task_table.css: 4.5:1 or more on white
    "gray": "#4b5563",
    "blue": "#1d4ed8",
    "orange": "#c2410c",
    "green": "#15803d",
    "red": "#b91c1c",
    "purple": "#6d28d9",
}
_HTML_COLUMNS = (
    "status", "task", "id", "workflow", "args", "submitted", "elapsed", "attempt", "error",
)  # fmt: skip


def _local_time(value: Any) -> str:
    moment = _parse_time(value)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _html_row(row: Mapping[str, Any], now: datetime) -> str:
    esc = html.escape
    status = str(row.get("status") or "")
    color = _HEX_COLORS[STATUS_COLORS.get(status, "gray")]
    error = row.get("error") or ""
    if error and row.get("error_type"):
        error = f"{row['error_type']}: {error}"
    task_id = str(row.get("task_id") or "")
    done = row.get("progress")
    shown = f"{status} {done:.0%}" if status == "running" and done is not None else status
    cells = [
        f'<td><b style="color:{color}">{esc(shown)}</b></td>',
        f"<td>{esc(str(row.get('task_name') or '-'))}</td>",
        f'<td title="{esc(task_id)}"><code>{esc(task_id[:8])}</code></td>',
        f"<td><code>{esc(workflow_label(row))}</code></td>",
        f"<td><code>{esc(str(row.get('args') or ''))}</code></td>",
        f"<td>{esc(_local_time(row.get('submitted_at')))}</td>",
        f'<td style="text-align:right">{esc(format_duration(elapsed_seconds(row, now)))}</td>',
        f'<td style="text-align:right">{esc(str(row.get("attempt") or 1))}</td>',
        f"<td>{esc(error)}</td>",
    ]
    return f'<tr data-status="{esc(status)}">{"".join(cells)}</tr>'


def _section(title: str) -> str:
    return (
        f'<tr><th colspan="{len(_HTML_COLUMNS)}" style="text-align:left">'
        f"{html.escape(title)}</th></tr>"
    )


def _html_summary(
    counts: Mapping[str, int], shown: int, matching: int | None, app_state: str, now: datetime
) -> str:
    total = sum(counts.values())
    parts = [f"{n} {s}" for s in TASK_STATUSES if (n := counts.get(s, 0))]
    summary = f"{total} task(s)" + (f": {', '.join(parts)}" if parts else "")
    if matching is None:
        summary += f"; showing {shown:,} matching the filters"
    elif shown < matching:
        summary += f"; showing {shown:,} of {matching:,}"
    state = f" (app {app_state})" if app_state else ""
    return (
        f"<p><b>flowrra tasks</b>{html.escape(state)}: {html.escape(summary)}. "
        f"<i>A snapshot as of {html.escape(_local_time(now))}; run the notebook for the "
        "live table.</i></p>"
    )


def snapshot_html(
    counts: Mapping[str, int],
    rows: Iterable[Mapping[str, Any]],
    *,
    matching: int | None = None,
    sort_by: str = "submitted_at",
    descending: bool = True,
    status_filter: str = "",
    app_state: str = "",
    now: datetime | None = None,
    by_workflow: bool = False,
) -> str:
    """The table as static HTML, for a saved notebook (GitHub, nbviewer, a closed kernel):
    the counts, then the rows in the widget's order (failed tasks in a section of their
    own first, each section sorted by ``sort_by``). Every value is HTML-escaped.

    ``matching`` is how many tasks pass the filters (None: unknown), so a capped table
    says "showing 200 of 30,000". ``by_workflow`` shows each workflow's rows together
    (:func:`group_by_workflow`), without the failed section.
    """
    now = now or utcnow()
    rows = list(rows)
    ordered = sort_rows(rows, sort_by, descending, now)
    if by_workflow:
        ordered = group_by_workflow(ordered)
    failed = [r for r in ordered if r.get("status") == "failed"]
    body: list[str] = []
    pin = not by_workflow and status_filter != "failed"
    if failed and pin and len(failed) < len(ordered):
        body.append(_section(f"failed ({len(failed)})"))
        body += [_html_row(r, now) for r in failed]
        body.append(_section("other tasks"))
        body += [_html_row(r, now) for r in ordered if r.get("status") != "failed"]
    else:
        body += [_html_row(r, now) for r in ordered]
    if not body:
        body.append(f'<tr><td colspan="{len(_HTML_COLUMNS)}"><i>no tasks yet</i></td></tr>')
    head = "".join(f'<th style="text-align:left">{c}</th>' for c in _HTML_COLUMNS)
    return (
        '<div class="flowrra-tt-static">'
        + _html_summary(counts, len(rows), matching, app_state, now)
        + f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


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
        found = counter()  # the Redis backend's reads its indexes: a coroutine
        counts = dict(await found if inspect.isawaitable(found) else found)
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
    if status is None:  # the rows shown first: running, and failed (up to half)
        records += await app.list_results("running", name, limit)
        records += await app.list_results("failed", name, max(limit // 2, 1))
    return [row_from_record(r) for r in records]


async def load_snapshot(app: Flowrra, state: TaskTableState, full: bool) -> Snapshot:
    """:func:`read_snapshot` run on ``app``'s home loop."""
    return await run_on_home_loop(app, read_snapshot(app, state, full))
