"""The running task as the task sees it: :func:`current_task` and :func:`progress`.

While a task's body runs (an IO task on the loop, a CPU task in a worker process, either
on a ``flowrra worker``), a context variable holds its :class:`TaskContext`: its id,
name, attempt and options, the progress it reported and the output it printed or
logged (see :mod:`flowrra.capture`).

:func:`progress` is cheap enough to call in a tight loop: it stores the latest values in
the context (a few attribute writes) and, at most once per :data:`PROGRESS_INTERVAL`
seconds, the context's :class:`Reporter` publishes them (the record, a
``task.progress`` event). The last values reach the final record whatever the timing.

Usage::

    from flowrra import current_task, progress

    @app.task(cpu_bound=True)
    def crunch(items: list[int]) -> int:
        print("attempt", current_task().attempt)
        for done, item in enumerate(items, 1):
            ...
            progress(done, len(items), message=f"item {item}")
"""

from __future__ import annotations

import numbers
import time
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any, Protocol

from flowrra.exceptions import ConfigError, FlowrraError

if TYPE_CHECKING:
    from flowrra.task import Task, TaskResult

__all__ = [
    "PROGRESS_INTERVAL",
    "OutputBuffer",
    "Reporter",
    "TaskContext",
    "current_context",
    "current_task",
    "progress",
]

#: Seconds at least between two publications of a task's progress and output.
PROGRESS_INTERVAL = 0.25

_current: ContextVar[TaskContext | None] = ContextVar("flowrra_task_context", default=None)
_monotonic = time.monotonic


class Reporter(Protocol):
    """Where a :class:`TaskContext` sends what its task reports (an executor's side in
    this process, or the pipe to the parent in a CPU worker process)."""

    #: Characters of output kept per task (0: output is not captured).
    output_limit: int

    def arm(self, context: TaskContext) -> None:
        """Publish ``context``'s live values soon: now if the last publication is
        :data:`PROGRESS_INTERVAL` seconds old, else when it will be."""

    def disarm(self, context: TaskContext) -> None:
        """Forget a publication :meth:`arm` planned (the task's body has ended)."""


class OutputBuffer:
    """The tail of a task's output: at most ``limit`` characters, older text dropped.

    When text was dropped, :meth:`text` starts with a line that says how much. The
    writer's thread compacts; :meth:`text` only reads, so another thread may call it.
    """

    __slots__ = ("_dropped", "_parts", "_size", "limit")

    def __init__(self, limit: int) -> None:
        """An empty buffer keeping at most ``limit`` characters."""
        self.limit = limit
        self._parts: list[str] = []
        self._size = 0
        self._dropped = 0

    def write(self, text: str) -> None:
        """Append ``text`` (older text beyond the limit is dropped, in bulk)."""
        self._parts.append(text)
        self._size += len(text)
        if self._size > 2 * self.limit + 4096:
            joined = "".join(self._parts)
            keep = joined[-self.limit :] if self.limit else ""
            self._dropped += len(joined) - len(keep)
            self._parts = [keep]
            self._size = len(keep)

    def replace(self, text: str) -> None:
        """Hold ``text`` (the whole output so far, kept elsewhere) instead."""
        self._parts = [text]
        self._size = len(text)
        self._dropped = 0

    def text(self) -> str | None:
        """The output kept (None if there was none), at most ``limit`` characters."""
        joined = "".join(self._parts[:])
        dropped = self._dropped
        if len(joined) > self.limit:
            dropped += len(joined) - self.limit
            joined = joined[-self.limit :] if self.limit else ""
        if not dropped:
            return joined or None
        note = f"[flowrra: {dropped:,} earlier characters of output dropped]\n"
        if len(note) >= self.limit:
            return joined
        return note + joined[len(note) :]


class _Live:
    """What a task reported since it started (made on its first report)."""

    __slots__ = ("armed", "changed", "done", "flushed_at", "handle", "message", "output", "total")

    def __init__(self) -> None:
        self.done: float | None = None
        self.total: float | None = None
        self.message: str | None = None
        self.output: OutputBuffer | None = None
        self.armed = False
        self.changed = False  # output written since the last publication
        self.flushed_at = _monotonic()  # the first publication waits an interval too
        self.handle: Any = None  # the reporter's planned publication


class TaskContext:
    """The task whose body is running: what :func:`current_task` returns.

    Attributes (read-only): ``task_id``, ``name``, ``attempt`` (1 for the first run, 2 for
    the first retry...), ``retries`` (``attempt - 1``) and ``options`` (a dict of the
    task's options as this run has them: ``max_retries``, ``retry_delay``, ``timeout``,
    ``priority``, ``cpu_bound``, ``eta``, ``rate_limit``, ``concurrency``).

    Usage::

        context = current_task()
        print(context.task_id, context.name, context.attempt, context.options["timeout"])
        context.progress(3, 10, "three of ten")
    """

    __slots__ = ("_live", "_record", "_reporter", "_task", "retries")

    def __init__(self, task: Task, record: TaskResult | None, reporter: Reporter) -> None:
        """The context of ``task`` (whose record is ``record`` in an executor's process;
        None in a CPU worker process). A record carrying an earlier attempt's progress
        or output has them cleared: each attempt reports its own."""
        self._task = task
        #: Retries before this run (``attempt - 1``).
        self.retries: int = task.current_retry
        self._record = record
        self._reporter: Reporter | None = reporter
        self._live: _Live | None = None
        if record is not None and (record.progress_done is not None or record.output is not None):
            record.progress_done = record.progress_total = None
            record.progress_message = record.output = None

    # ------------------------------------------------------------ what it is
    @property
    def task_id(self) -> str:
        """The task's id."""
        return self._task.id

    @property
    def name(self) -> str:
        """The task's registered name."""
        return self._task.name

    @property
    def attempt(self) -> int:
        """Which run of the task this is: 1 for the first, 2 for the first retry, ..."""
        return self.retries + 1

    @property
    def options(self) -> dict[str, Any]:
        """The task's options for this run (a new dict each time)."""
        task = self._task
        limits = getattr(task, "limits", None)
        rate = getattr(limits, "rate", None)
        return {
            "max_retries": task.max_retries,
            "retry_delay": task.retry_delay,
            "timeout": task.timeout,
            "priority": task.priority,
            "cpu_bound": task.cpu_bound,
            "eta": task.eta,
            "rate_limit": None if rate is None else str(rate),
            "concurrency": getattr(limits, "concurrency", None),
        }

    @property
    def task(self) -> Task:
        """The :class:`~flowrra.task.Task` being run (its arguments are not kept in a
        CPU worker process)."""
        return self._task

    @property
    def record(self) -> TaskResult | None:
        """The task's record in the executor's process (None in a CPU worker process)."""
        return self._record

    @property
    def running(self) -> bool:
        """True until the task's body has ended."""
        return self._reporter is not None

    def __repr__(self) -> str:
        return f"<TaskContext {self.name}[{self.task_id}] attempt {self.attempt}>"

    # -------------------------------------------------------------- entering
    def enter(self) -> Token[TaskContext | None]:
        """Make this the current task (in the running context); give the token to
        :meth:`leave`."""
        return _current.set(self)

    def leave(self, token: Token[TaskContext | None]) -> None:
        """The body has ended: stop being current, stop planned publications and put
        the last values on the record (they travel with its next write)."""
        _current.reset(token)
        live = self._live
        reporter, self._reporter = self._reporter, None
        if live is None:
            return
        if live.armed and reporter is not None:
            reporter.disarm(self)
            live.armed = False
        if self._record is not None:
            self.copy_to(self._record)

    # ------------------------------------------------------------- reporting
    def progress(self, done: float, total: float | None = None, message: str | None = None) -> None:
        """Report progress: ``done`` of ``total`` (see :func:`progress`)."""
        reporter = self._reporter
        if reporter is None:
            return  # the body has ended (something it started reports late)
        if type(done) is not int and type(done) is not float:
            done = _number(done, "done")
        if total is not None:
            if type(total) is not int and type(total) is not float:
                total = _number(total, "total")
            if total <= 0:
                raise ConfigError(f"progress(): total must be > 0 or None, got {total!r}")
        if message is not None and type(message) is not str:
            raise ConfigError(f"progress(): message must be a str or None, got {message!r}")
        live = self._live or self._start_live()
        live.done = done
        live.total = total
        if message is not None:
            live.message = message
        if not live.armed:
            self._arm(live, reporter)

    @property
    def captures(self) -> bool:
        """True while output written by this task is kept (not printed)."""
        reporter = self._reporter
        return reporter is not None and reporter.output_limit > 0

    def write(self, text: str) -> None:
        """Keep ``text`` as output of the task (what it printed or logged)."""
        reporter = self._reporter
        if reporter is None:
            return
        live = self._live or self._start_live()
        buffer = live.output
        if buffer is None:
            buffer = live.output = OutputBuffer(reporter.output_limit)
        buffer.write(text)
        live.changed = True
        if not live.armed:
            self._arm(live, reporter)

    def _start_live(self) -> _Live:
        """The live values, made at the first report."""
        live = self._live = _Live()
        return live

    def _arm(self, live: _Live, reporter: Any) -> None:
        """Ask ``reporter`` to publish this task's values soon (once per publication)."""
        live.armed = True
        reporter.arm(self)

    # ------------------------------------------------- for reporters' use only
    @property
    def live(self) -> _Live | None:
        """The values reported so far (None before the first report)."""
        return self._live

    def take(self) -> tuple[Any, ...] | None:
        """For a reporter about to publish: the live values as ``(done, total,
        message, output)`` where output is None when unchanged since the last take;
        None when nothing was reported. Marks the publication done."""
        live = self._live
        if live is None:
            return None
        live.armed = False
        live.handle = None
        live.flushed_at = _monotonic()
        output = None
        if live.changed and live.output is not None:
            live.changed = False  # first: a write from another thread meanwhile is sent next
            output = live.output.text()
        return live.done, live.total, live.message, output

    def absorb(self, values: tuple[Any, ...]) -> None:
        """Take values sent by the task's CPU worker process (see :meth:`take`) as if
        they were reported here: an output given replaces the output held."""
        done, total, message, output = values
        reporter = self._reporter
        if reporter is None:
            return
        live = self._live
        if live is None:
            live = self._start_live()
            live.flushed_at -= PROGRESS_INTERVAL  # the worker process waited already
        if done is not None:
            live.done, live.total = done, total
        if message is not None:
            live.message = message
        if output is not None:
            if live.output is None:
                live.output = OutputBuffer(max(reporter.output_limit, len(output)))
            live.output.replace(output)
            live.changed = True
        if not live.armed:
            self._arm(live, reporter)

    def copy_to(self, record: TaskResult) -> None:
        """Put the live values on ``record`` (the output only if it changed)."""
        values = self.take()
        if values is None:
            return
        done, total, message, output = values
        record.progress_done = done
        record.progress_total = total
        record.progress_message = message
        if output is not None:
            record.output = output


def _number(value: Any, what: str) -> float:
    """``value`` as a plain int or float (a NumPy number, say); refuses anything else."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"progress(): {what} must be a number, got {value!r}")
    return int(value) if isinstance(value, numbers.Integral) else float(value)


def current_context() -> TaskContext | None:
    """The running task's context, or None outside a task (no error)."""
    context = _current.get()
    return context if context is not None and context._reporter is not None else None


def current_task() -> TaskContext:
    """The task whose body is running here: its id, name, attempt and options.

    Works in IO tasks, in CPU tasks (in their worker process) and on a ``flowrra
    worker``, and in whatever a task runs in its own context (``await`` calls,
    ``asyncio.to_thread``).

    Raises:
        FlowrraError: called outside a task's body.
    """
    context = _current.get()
    if context is None or context._reporter is None:
        raise FlowrraError(
            "current_task() works only inside a task: call it from the body of a function "
            "registered with @app.task() while flowrra runs it"
        )
    return context


def progress(done: float, total: float | None = None, message: str | None = None) -> None:
    """Report the running task's progress: ``done`` of ``total`` (any numbers, e.g.
    items or bytes; without ``total`` the task counts with no known end), and
    optionally a short ``message`` (None keeps the last one).

    The record gets ``progress`` (``done / total``, from 0 to 1), ``progress_done``,
    ``progress_total`` and ``progress_message``; the task table shows a bar. Calls are
    coalesced: at most one publication per :data:`PROGRESS_INTERVAL` seconds, so a
    task may call this in its innermost loop. Outside a task it does nothing (the
    task's function may be called directly).

    Raises:
        ConfigError: ``done`` or ``total`` is not a number, ``total`` is not > 0, or
            ``message`` is not a string.
    """
    context = _current.get()
    if context is not None:
        context.progress(done, total, message)
