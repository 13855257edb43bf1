"""The live task table: an anywidget fed by the app's events on the runtime thread.

:class:`TaskTable` starts from the app's records, then follows ``app.events``. Events are
queued by a subscriber that does nothing else, and flushed at most ``refresh_hz`` times
a second, one widget message per flush (``hold_sync``), from the runtime loop: the table
moves while a cell blocks.

When events arrive faster than a table can use them (a burst: thousands a second), the
table unsubscribes, so the executors stop paying for building events, and reads a
snapshot of the app's records instead, within a budget of the loop's time; when the
burst is over (a refresh period with nothing submitted and nothing in flight) it
subscribes again and resynchronises. Counts are exact whenever they are shown.

Widget callbacks (filters, row clicks, cancel buttons) may run on a kernel subshell
thread: they only post work to the runtime loop.

Displayed in a kernel, the table's output carries a static HTML copy of itself
(``text/html``, :func:`~flowrra.notebook.table_state.snapshot_html`) next to the widget,
so a saved notebook shows the table where the widget cannot run (GitHub, nbviewer, a
closed kernel). The copy follows the table at coalesced moments, through the output's
display id: at the end of each cell, once the table has been still for a second
(``SNAPSHOT_SETTLE``), at least every ``SNAPSHOT_MAX_AGE`` seconds while it keeps
changing, and when the table closes (then the output keeps the copy alone).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
import uuid
import weakref
from collections import deque
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any

from flowrra import runtime
from flowrra.backends.memory import InMemoryBackend
from flowrra.clock import utcnow
from flowrra.constants import STATUS_COLORS, TASK_STATUSES
from flowrra.notebook.frontend import widget_file
from flowrra.notebook.table_state import (
    SORT_COLUMNS,
    TaskTableState,
    format_rows,
    load_snapshot,
    row_from_record,
    snapshot_html,
)

try:
    import anywidget
    import traitlets as t
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "The task table needs anywidget and ipywidgets:"
        " pip install -e '.[notebook]' in flowrra's clone"
    ) from exc

if TYPE_CHECKING:
    from flowrra.app import Flowrra
    from flowrra.task import TaskResult

__all__ = [
    "BURST_EVENTS_PER_SECOND",
    "REFRESH_BUDGET",
    "SNAPSHOT_MAX_AGE",
    "SNAPSHOT_SETTLE",
    "TaskTable",
    "close_tables_of",
]

logger = logging.getLogger("flowrra.notebook")

#: Above this many events a second the table reads snapshots instead of events.
BURST_EVENTS_PER_SECOND = 2000

#: The share of the runtime loop's time refreshes may take: a refresh that took longer
#: (a snapshot of very many records) spaces the next one out.
REFRESH_BUDGET = 0.01

#: Seconds without a change after which a displayed table's static HTML copy is renewed.
SNAPSHOT_SETTLE = 1.0

#: Seconds at most between renewals of the static HTML copy while the table keeps changing.
SNAPSHOT_MAX_AGE = 30.0

#: Seconds a snapshot is expected to take per in-memory record before one was timed.
_SNAPSHOT_COST_PER_RECORD = 1e-6

_DETAIL_CHARS = 5000
_OPEN_TIMEOUT = 10.0


def _detail(task_id: str, record: TaskResult | None) -> dict[str, Any]:
    if record is None:
        return {"task_id": task_id, "missing": True}
    row = row_from_record(record)
    row.update(
        result=repr(record.result)[:_DETAIL_CHARS] if record.is_success else None,
        error=record.error,
        traceback=record.traceback,
        args=repr(record.args)[:_DETAIL_CHARS],
        kwargs=repr(record.kwargs)[:_DETAIL_CHARS],
        progress_message=record.progress_message,
        progress_done=record.progress_done,
        progress_total=record.progress_total,
        output=record.output,
    )
    return row


class _Feed:
    """Keeps a table's state from the app's events; lives on the runtime loop."""

    def __init__(self, table: TaskTable, app: Flowrra, refresh_hz: float) -> None:
        self.table = table
        self.app = app
        self.interval = 1.0 / refresh_hz
        self.state = TaskTableState(table.max_rows)
        self.queue: deque[dict[str, Any]] = deque()
        self.burst_limit = max(50, int(BURST_EVENTS_PER_SECOND / refresh_hz))
        self.seen = 0
        self.sampling = False
        self.subscribed = False
        self.closed = False
        self.ticker: asyncio.Task[None] | None = None
        self.flushes = 0
        self.cost_per_record = _SNAPSHOT_COST_PER_RECORD
        self.last_submitted = -1
        self.quiet = True
        self.last_push = 0.0
        self.reselect: asyncio.Task[None] | None = None

    # ------------------------------------------------------------- events
    def on_event(self, event: dict) -> None:
        """The subscriber: queue the record; leave for snapshots on a burst."""
        self.queue.append(event["task"])
        self.seen += 1
        if self.seen > self.burst_limit and self.subscribed:
            self.subscribed = False
            self.sampling = True
            self.app.events.remove(self.on_event)

    def _subscribe(self) -> None:
        if not self.subscribed:
            self.subscribed = True
            self.app.events.subscribe(self.on_event)

    def _unsubscribe(self) -> None:
        if self.subscribed:
            self.subscribed = False
            self.app.events.remove(self.on_event)

    # ----------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Load the app's records, then follow its events (on the runtime loop)."""
        await self.resync()
        if not self.closed:
            self.ticker = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        """Stop following (on the runtime loop)."""
        self.closed = True
        self._unsubscribe()
        if self.ticker is not None:
            self.ticker.cancel()

    def _look(self) -> None:
        """Once a refresh period: note whether anything was submitted since the last."""
        app = self.app
        submitted = app.io_executor.submitted + app.cpu_executor.submitted
        self.quiet = submitted == self.last_submitted
        self.last_submitted = submitted

    def _idle(self) -> bool:
        """No task in flight, and none submitted over the last refresh period: a burst
        that submits in steps (its workers keeping up between them) is not over yet."""
        app = self.app
        active = app.io_executor.active_count() + app.cpu_executor.active_count()
        return self.quiet and active == 0

    def _records(self) -> int:
        """How many records a snapshot scans (in memory; 0 where counts are indexed)."""
        backend = self.app.results_backend
        return len(backend) if isinstance(backend, InMemoryBackend) else 0

    async def _run(self) -> None:
        delay = waited = self.interval
        while not self.closed:
            await asyncio.sleep(self.interval)
            waited += self.interval
            self.table._renew_snapshot_if_due()
            self._look()
            if self.sampling and not self._idle():
                # the first snapshot of a burst keeps to the budget too: its cost is
                # estimated from the number of records before it is taken
                expected = self.cost_per_record * self._records() / REFRESH_BUDGET
                if waited < max(delay, expected):
                    continue
            elif waited < delay and not self.sampling:
                continue  # the last refresh was costly: space them out, unless all is done
            records = self._records() if self.sampling else 0
            started = time.perf_counter()
            try:
                await self.tick()
            except Exception:
                logger.exception("The task table could not refresh")
            took = time.perf_counter() - started
            if records >= 1000:
                self.cost_per_record = took / records
            delay = max(self.interval, took / REFRESH_BUDGET)
            waited = 0.0

    async def tick(self) -> None:
        """One refresh: flush queued events, or read a snapshot during a burst."""
        if self.sampling:
            await self._sample()
        else:
            self._flush()

    # ------------------------------------------------------------- refreshes
    async def resync(self) -> None:
        """Subscribe and start again from a full snapshot of the app's records."""
        if self.closed:
            return
        self._subscribe()
        self.queue.clear()
        self.seen = 0
        self.sampling = False
        snapshot = await load_snapshot(self.app, self.state, True)
        self.state.reset(snapshot)
        self.push()

    async def settle(self) -> None:
        """Apply the events queued so far now (not during a burst): the end of a cell."""
        if not self.sampling and not self.closed:
            self._flush()

    def _flush(self) -> None:
        self.seen = 0
        queue = self.queue
        if not queue:
            if self.table.app_state != self._app_state():
                self.push()
            return
        latest: dict[str, dict[str, Any]] = {}
        while queue:
            record = queue.popleft()
            latest[record["task_id"]] = record
        for record in latest.values():
            self.state.apply(record)
        self.push()
        selected = self.table.detail.get("task_id")
        if selected in latest and not self.table.detail.get("missing"):
            # the task shown in the details moved on (a retry, its end): show it anew
            self.reselect = asyncio.get_running_loop().create_task(self.select(selected))

    async def _sample(self) -> None:
        self.queue.clear()
        if self._idle():
            await self.resync()  # the burst is over: follow events again
            return
        before = self.state.counts
        snapshot = await load_snapshot(self.app, self.state, False)
        change = sum(abs(n - before.get(s, 0)) for s, n in snapshot.counts.items())
        if change <= self.burst_limit // 2:
            await self.resync()  # quiet again (tasks may still wait on a timer)
            return
        self.state.reset(snapshot)
        self.push()

    def _app_state(self) -> str:
        return "running" if self.app.is_running else "stopped"

    def push(self) -> None:
        """Send the state to the front-end: one message."""
        table, state = self.table, self.state
        self.flushes += 1
        self.last_push = time.monotonic()
        matching = state.matching()
        with table.hold_sync():
            table.counts = dict(state.counts)
            table.total = state.total
            table.rows = state.rows()
            table.matching = -1 if matching is None else matching
            table.task_names = list(state.task_names)
            table.mode = "snapshots" if self.sampling else "events"
            table.app_state = self._app_state()
            table.clock = utcnow().timestamp()

    # ---------------------------------------------------------- front-end asks
    async def refilter(self, status: str, name: str) -> None:
        """Apply new filters: reload the matching rows from the app."""
        self.state.status_filter, self.state.name_filter = status, name
        await self.resync()

    async def select(self, task_id: str) -> None:
        """Show the result, error and traceback of ``task_id``."""
        self.table.detail = _detail(task_id, await self.app.get_result(task_id))

    async def cancel(self, task_id: str) -> None:
        """Cancel ``task_id`` (its event updates the table)."""
        await self.app.cancel(task_id)


class _Display:
    """Where a table is displayed in a kernel: one display id for its outputs, and the
    bookkeeping that keeps their static HTML copy in step with the table, renewed at
    coalesced moments (never per event: each renewal re-renders the outputs)."""

    def __init__(self) -> None:
        self.display_id = f"flowrra-task-table-{uuid.uuid4().hex}"
        self.shown = False
        self.lock = threading.Lock()
        self.sent_flushes = -1
        self.sent_at = 0.0
        self.dirty = False
        self.changed_at = 0.0

    def show(self, table: TaskTable) -> None:
        """Display ``table`` (called by IPython): with a display id inside a kernel."""
        from IPython import get_ipython
        from IPython.display import display

        data, metadata = table._repr_mimebundle_()
        shell = get_ipython()
        if getattr(shell, "kernel", None) is None:  # a terminal: no display ids
            display(data, raw=True, metadata=metadata)
            return
        with self.lock:
            self.sent_flushes, self.sent_at, self.dirty = table.flushes, time.monotonic(), False
            display(data, raw=True, metadata=metadata, display_id=self.display_id)
            self.shown = True
        _shown_tables.add(table)
        _watch_cells(shell)

    def due(self, feed: _Feed, now: float) -> bool:
        """True when the copy is behind the table and the table has settled, or the
        copy is old."""
        if not self.shown or (feed.flushes == self.sent_flushes and not self.dirty):
            return False
        still = now - max(feed.last_push, self.changed_at)
        return still >= SNAPSHOT_SETTLE or now - self.sent_at >= SNAPSHOT_MAX_AGE

    def mark_changed(self) -> None:
        """The order on screen changed (a sort): the copy follows once it has settled."""
        self.dirty, self.changed_at = True, time.monotonic()

    def renew(self, table: TaskTable, final: bool = False) -> None:
        """Replace the outputs' data with the table's state now; ``final`` (the table
        closes) leaves the static copy alone, as the widget is gone."""
        with self.lock:
            if not self.shown:
                return
            self.sent_flushes, self.sent_at, self.dirty = table.flushes, time.monotonic(), False
            data, metadata = table._repr_mimebundle_()
            if final:
                self.shown = False
                data = {"text/plain": data["text/plain"], "text/html": data["text/html"]}
            # an empty context: the kernel's latest parent header, not the one of the
            # cell that opened the table, so the update belongs to the cell running now
            contextvars.Context().run(self._publish, data, metadata)

    def _publish(self, data: dict[str, Any], metadata: dict[str, Any]) -> None:
        from IPython.display import update_display

        update_display(data, raw=True, metadata=metadata, display_id=self.display_id)


class TaskTable(anywidget.AnyWidget):
    """A live table of an app's tasks.

    A header with counts per status (a click filters by it), a progress bar and
    "showing 200 of 30,000" when the rows are capped; rows with status colours, the
    call's arguments (a short repr), elapsed time (ticking while a task runs), attempt
    number and error; failed tasks in a section of their own at the top; a click on a
    column header sorts by it (``sort_by``, ``sort_desc``); a workflow column (shown when
    a row is a workflow or one of its steps: the workflow's short id and the step) and
    ``group_by_workflow`` (a checkbox) to show each workflow's rows together; filters by
    status and task name; a click on a row shows its arguments in full, result, error
    (the last failure or retry reason), retries and traceback; pending and running rows
    have a cancel button. Rows are kept in place between refreshes; the header stays in view.

    The rows taken from the app are running tasks first, then failed ones (up to half of
    ``max_rows``), then the newest. In a kernel the output also carries a static HTML
    copy of the table, renewed at coalesced moments, which a saved notebook shows
    where widgets do not run.

    Its state can be read without a browser: ``counts`` (status -> int) and ``rows``
    (dicts with task_id, task_name, status, submitted_at, started_at, finished_at,
    duration in seconds, retries, attempt, priority, error, error_type, args).

    Args:
        app: The :class:`~flowrra.Flowrra` app to show.
        max_rows: Rows shown at most.
        refresh_hz: Refreshes (widget messages) per second at most.

    Usage::

        from flowrra.notebook import TaskTable

        TaskTable(app)                   # last expression of a cell: displayed
        table = TaskTable(app, max_rows=50, refresh_hz=2)
        table.counts["success"], table.rows[:3]
    """

    _esm = widget_file("task_table.js")
    _css = widget_file("task_table.css")

    counts = t.Dict(help="Tasks per status, over all the app's records.").tag(sync=True)
    rows = t.List(help="The rows shown: running first, then newest.").tag(sync=True)
    total = t.Int(0, help="How many tasks the counts cover.").tag(sync=True)
    status_filter = t.Unicode("", help="Show only this status ('' for all).").tag(sync=True)
    name_filter = t.Unicode("", help="Show only this task name ('' for all).").tag(sync=True)
    task_names = t.List(help="Task names known to the app.").tag(sync=True)
    statuses = t.List(list(TASK_STATUSES), help="Every status, in order.").tag(sync=True)
    colors = t.Dict(dict(STATUS_COLORS), help="Colour name of each status.").tag(sync=True)
    detail = t.Dict(help="The selected task: result, error, traceback.").tag(sync=True)
    max_rows = t.Int(200, help="Rows shown at most.").tag(sync=True)
    mode = t.Unicode("events", help="'events', or 'snapshots' during a burst.").tag(sync=True)
    app_state = t.Unicode("", help="'running' or 'stopped'.").tag(sync=True)
    matching = t.Int(
        -1, help="Tasks passing the filters (-1: unknown, with a task-name filter)."
    ).tag(sync=True)
    sort_by = t.Enum(SORT_COLUMNS, "submitted_at", help="The column the rows are sorted by.").tag(
        sync=True
    )
    sort_desc = t.Bool(True, help="Sort descending (newest, longest, last first).").tag(sync=True)
    group_by_workflow = t.Bool(
        False, help="Show each workflow's rows together: the workflow, then its steps."
    ).tag(sync=True)
    clock = t.Float(0.0, help="The kernel's clock at the last refresh (POSIX seconds).").tag(
        sync=True
    )
    _view_key = t.Unicode(help="Names this table's view state in the browser.").tag(sync=True)

    def __init__(
        self, app: Flowrra, max_rows: int = 200, refresh_hz: float = 4.0, **kwargs: Any
    ) -> None:
        """Show ``app``'s tasks; see the class docstring."""
        if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
            raise ValueError(f"max_rows must be a whole number >= 1, got {max_rows!r}")
        if isinstance(refresh_hz, bool) or not 0 < refresh_hz <= 60:
            raise ValueError(f"refresh_hz must be > 0 and <= 60, got {refresh_hz!r}")
        super().__init__(max_rows=max_rows, _view_key=uuid.uuid4().hex, **kwargs)
        self._app = app
        self._refresh_hz = float(refresh_hz)
        self._display = _Display()
        self._feed = _Feed(self, app, refresh_hz)
        self.on_msg(self._on_front_end_msg)
        self.observe(self._on_filter, names=["status_filter", "name_filter"])
        self.observe(self._on_sort, names=["sort_by", "sort_desc", "group_by_workflow"])
        _open_tables.add(self)
        self._open()

    @property
    def app(self) -> Flowrra:
        """The app shown."""
        return self._app

    @property
    def refresh_hz(self) -> float:
        """Refreshes per second at most."""
        return self._refresh_hz

    @property
    def flushes(self) -> int:
        """How many times the table has sent its state (one message each)."""
        return self._feed.flushes

    def _can_block(self) -> bool:
        home = self._app._home_loop
        caller = asyncio.events._get_running_loop()
        return not runtime.in_runtime_thread() and (home is None or home is not caller)

    def _open(self) -> None:
        future = runtime.spawn(self._feed.start)
        if self._can_block():
            try:
                future.result(_OPEN_TIMEOUT)
            except FutureTimeout:
                logger.warning("The task table is still loading the app's records")

    def refresh(self, timeout: float | None = _OPEN_TIMEOUT) -> None:
        """Re-read the app's records and send them now; blocks until done."""
        runtime.run_sync(self._feed.resync, timeout=timeout)

    def _on_filter(self, change: dict[str, Any]) -> None:
        runtime.spawn(self._feed.refilter, self.status_filter, self.name_filter)

    def _on_sort(self, change: dict[str, Any]) -> None:
        self._display.mark_changed()  # the static copy follows the order on screen

    # ------------------------------------------------------------ display
    def snapshot_html(self) -> str:
        """The table as static HTML, as the output's ``text/html`` carries it: the
        counts, then the rows in the order on screen; every value HTML-escaped."""
        return snapshot_html(
            self.counts,
            self.rows,
            matching=None if self.matching < 0 else self.matching,
            sort_by=self.sort_by,
            descending=self.sort_desc,
            status_filter=self.status_filter,
            app_state=self.app_state,
            by_workflow=self.group_by_workflow,
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """The widget, with its static HTML copy next to it (``text/html``)."""
        data, metadata = super()._repr_mimebundle_(**kwargs)
        return {**data, "text/html": self.snapshot_html()}, metadata

    def _ipython_display_(self) -> None:
        """Display the table; in a kernel with a display id, so its static copy can be
        renewed as the table changes."""
        self._display.show(self)

    def _renew_snapshot_if_due(self) -> None:
        """On the runtime loop, once a refresh period: renew the static copy if due."""
        if self._display.due(self._feed, time.monotonic()):
            self._renew_snapshot()

    def _renew_snapshot_after_cell(self) -> None:
        """At the end of a cell: apply the events so far, then renew the copy if behind."""
        feed = self._feed
        if not self._display.shown or feed.closed:
            return
        if feed.queue:
            try:
                runtime.run_sync(feed.settle, timeout=_SETTLE_TIMEOUT)
            except TimeoutError:
                return  # the loop is busy: the next coalesced moment renews it
        display = self._display
        if feed.flushes != display.sent_flushes or display.dirty:
            self._renew_snapshot()

    def _renew_snapshot(self, final: bool = False) -> None:
        try:
            self._display.renew(self, final)
        except Exception:  # a display that failed must never stop the table
            logger.exception("The task table could not renew its static HTML copy")

    def _on_front_end_msg(self, widget: Any, content: Any, buffers: Any) -> None:
        if not isinstance(content, dict) or not isinstance(content.get("task_id"), str):
            return
        action = {"select": self._feed.select, "cancel": self._feed.cancel}.get(
            content.get("type", "")
        )
        if action is not None:
            runtime.spawn(action, content["task_id"])

    def close(self) -> None:
        """Stop following the app and close the widget."""
        feed = getattr(self, "_feed", None)
        if feed is not None and not feed.closed:
            feed.closed = True
            runtime.post(feed.stop)
            self._renew_snapshot(final=True)  # the output keeps the last state, static
            _shown_tables.discard(self)
        super().close()

    @property
    def following(self) -> bool:
        """True while the table follows its app (until it is closed)."""
        feed = getattr(self, "_feed", None)
        return feed is not None and not feed.closed

    def text(self) -> str:
        """The table as text: counts, then one line per row."""
        return format_rows(self.counts, self.rows)

    def __repr__(self) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in self.counts.items() if n)
        return f"<TaskTable {self.total} task(s){': ' + counts if counts else ''}>"


_open_tables: weakref.WeakSet[TaskTable] = weakref.WeakSet()
_shown_tables: weakref.WeakSet[TaskTable] = weakref.WeakSet()
_SETTLE_TIMEOUT = 1.0


def _after_cell(*args: Any) -> None:
    """IPython's ``post_run_cell``: renew the static copy of every displayed table."""
    for table in list(_shown_tables):
        try:
            table._renew_snapshot_after_cell()
        except Exception:  # never a traceback under the user's cell
            logger.exception("The task table could not renew its static HTML copy")


def _watch_cells(shell: Any) -> None:
    """Renew displayed tables' static copies at the end of each cell of ``shell``."""
    if _after_cell not in shell.events.callbacks["post_run_cell"]:
        shell.events.register("post_run_cell", _after_cell)


def close_tables_of(app: Flowrra) -> int:
    """Close every table following ``app`` (flowrra stopped it); return how many."""
    tables = [table for table in list(_open_tables) if table.app is app and table.following]
    for table in tables:
        table.close()
    return len(tables)
