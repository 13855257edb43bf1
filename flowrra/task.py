"""The task vocabulary: :class:`Task` (a job to run), :class:`TaskResult` (its record)
and :class:`TaskStatus` (where it is in its life).

A record lives PENDING -> RUNNING -> (RETRYING -> RUNNING)* -> SUCCESS | FAILED | CANCELLED
and keeps ``submitted_at``, ``args``, ``kwargs`` and ``priority`` the whole way.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, NamedTuple

from flowrra.constants import STATUS_COLORS
from flowrra.limits import TaskLimits

__all__ = ["StepTag", "Task", "TaskResult", "TaskStatus", "new_task_id"]


class TaskStatus(Enum):
    """Where a task is in its life. SUCCESS, FAILED and CANCELLED are terminal."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    RETRYING = "retrying"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """True for SUCCESS, FAILED and CANCELLED: the record will not change again."""
        return self in _TERMINAL


_TERMINAL = frozenset({TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.CANCELLED})
_SUCCESS, _FAILED, _CANCELLED = TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.CANCELLED

_ids: list[str] = []
os.register_at_fork(after_in_child=_ids.clear)  # a forked child must not reuse the batch


def _fresh_ids(count: int = 4096) -> list[str]:
    raw = os.urandom(16 * count).hex()
    return [raw[i : i + 32] for i in range(0, len(raw), 32)]


def new_task_id() -> str:
    """A new task id: 128 random bits as 32 hex digits (the form of ``uuid4().hex``).

    Made in batches from ``os.urandom``: ``uuid.uuid4()`` costs several microseconds,
    more than the rest of a submit.
    """
    if not _ids:
        _ids.extend(_fresh_ids())
    return _ids.pop()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse_dt(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


@dataclass(slots=True, eq=True)
class TaskResult:
    """The record of one task: status, result or error, timings and inputs.

    Fields after ``kwargs`` are additions of flowrra 0.2 and optional, so code that
    builds a ``TaskResult`` the 0.1.8 way still works.

    ``progress_done``, ``progress_total`` and ``progress_message`` are what the task's
    last attempt reported with :func:`flowrra.progress` (``progress`` is the fraction
    done), and ``output`` what it printed and logged (the last ``output_limit``
    characters, 64 KiB by default); live while it runs, final once it ends.

    Usage::

        record = await app.wait_for_result(task_id)
        if record.is_success:
            print(record.result, record.duration)
        else:
            print(record.error_type, record.error)
    """

    task_id: str
    status: TaskStatus
    task_name: str | None = None
    result: Any = None
    error: str | None = None
    submitted_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    retries: int = 0
    args: tuple = ()
    kwargs: dict = None  # type: ignore[assignment]  # None becomes {} (0.1.8 signature)
    priority: int = 0
    error_type: str | None = None
    traceback: str | None = None
    progress_done: float | None = None
    progress_total: float | None = None
    progress_message: str | None = None
    output: str | None = None
    workflow_id: str | None = None
    workflow_step: str | None = None

    def __post_init__(self) -> None:
        if self.kwargs is None:
            self.kwargs = {}

    def __reduce__(self) -> tuple[Any, tuple]:
        # datetimes as POSIX seconds and the status as its value: pickling an aware
        # datetime or an enum member costs several microseconds each
        state = (
            self.task_id, self.status.value, self.task_name, self.result, self.error,
            _stamp(self.submitted_at), _stamp(self.started_at), _stamp(self.finished_at),
            self.retries, self.args, self.kwargs, self.priority, self.error_type,
            self.traceback,
        )  # fmt: skip
        if self.progress_done is not None or self.output is not None:  # progress, output
            state += (self.progress_done, self.progress_total, self.progress_message, self.output)
        if self.workflow_id is not None:  # a workflow or one of its steps
            return _rebuild_step_result, (self.workflow_id, self.workflow_step, *state)
        return _rebuild_result, state

    @property
    def progress(self) -> float | None:
        """How far the task got, from 0 to 1: ``progress_done / progress_total`` as it
        last reported them (see :func:`flowrra.progress`); None without a total."""
        total = self.progress_total
        if not total or self.progress_done is None:
            return None
        return min(max(self.progress_done / total, 0.0), 1.0)

    @property
    def is_complete(self) -> bool:
        """True once the task has ended: SUCCESS, FAILED or CANCELLED."""
        status = self.status
        return status is _SUCCESS or status is _FAILED or status is _CANCELLED

    @property
    def is_success(self) -> bool:
        """True when the task ended SUCCESS."""
        return self.status is TaskStatus.SUCCESS

    @property
    def duration(self) -> timedelta | None:
        """Run time of the last attempt, or ``None`` while it has not finished."""
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    @property
    def to_dict(self) -> dict:
        """The record as a dict (a property, as in flowrra 0.1.8): status as its value
        string and datetimes as ISO strings."""
        return {
            "task_id": self.task_id,
            "status": self.status.value,
            "task_name": self.task_name,
            "result": self.result,
            "error": self.error,
            "submitted_at": _iso(self.submitted_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "retries": self.retries,
            "args": self.args,
            "kwargs": self.kwargs,
            "priority": self.priority,
            "error_type": self.error_type,
            "traceback": self.traceback,
            "progress": self.progress,
            "progress_done": self.progress_done,
            "progress_total": self.progress_total,
            "progress_message": self.progress_message,
            "output": self.output,
            "workflow_id": self.workflow_id,
            "workflow_step": self.workflow_step,
        }

    @classmethod
    def from_dict(cls, data: dict) -> TaskResult:
        """Build a record from :attr:`to_dict` output (``task_id`` and ``status`` required)."""
        return cls(
            task_id=data["task_id"],
            status=TaskStatus(data["status"]),
            task_name=data.get("task_name"),
            result=data.get("result"),
            error=data.get("error"),
            submitted_at=_parse_dt(data.get("submitted_at")),
            started_at=_parse_dt(data.get("started_at")),
            finished_at=_parse_dt(data.get("finished_at")),
            retries=data.get("retries", 0),
            args=tuple(data.get("args", ())),
            kwargs=data.get("kwargs") or {},
            priority=data.get("priority", 0),
            error_type=data.get("error_type"),
            traceback=data.get("traceback"),
            progress_done=data.get("progress_done"),
            progress_total=data.get("progress_total"),
            progress_message=data.get("progress_message"),
            output=data.get("output"),
            workflow_id=data.get("workflow_id"),
            workflow_step=data.get("workflow_step"),
        )

    def _repr_html_(self) -> str:
        status = self.status.value
        colour = STATUS_COLORS.get(status, "gray")
        duration = self.duration
        rows = [
            ("task", self.task_name),
            ("id", self.task_id),
            ("duration", f"{duration.total_seconds():.3f}s" if duration else "-"),
            ("retries", self.retries),
        ]
        if self.is_success:
            rows.append(("result", repr(self.result)[:500]))
        if self.error:
            rows.append(("error", f"{self.error_type or 'Error'}: {self.error}"))
        body = "".join(
            f"<tr><th style='text-align:left'>{k}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in rows
        )
        return (
            f"<div class='flowrra-result'><span style='color:{colour};font-weight:bold'>"
            f"{status.upper()}</span><table>{body}</table></div>"
        )


def _stamp(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _from_stamp(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _rebuild_result(
    task_id: str, status: str, task_name: str | None, result: Any, error: str | None,
    submitted_at: float | None, started_at: float | None, finished_at: float | None,
    retries: int, args: tuple, kwargs: dict, priority: int, error_type: str | None,
    traceback: str | None, progress_done: float | None = None,
    progress_total: float | None = None, progress_message: str | None = None,
    output: str | None = None,
) -> TaskResult:  # fmt: skip
    """Unpickle a :class:`TaskResult` (see its ``__reduce__``; records pickled before
    progress and output existed have none)."""
    return TaskResult(
        task_id, TaskStatus(status), task_name, result, error, _from_stamp(submitted_at),
        _from_stamp(started_at), _from_stamp(finished_at), retries, args, kwargs, priority,
        error_type, traceback, progress_done, progress_total, progress_message, output,
    )  # fmt: skip


def _rebuild_step_result(workflow_id: str, workflow_step: str | None, *state: Any) -> TaskResult:
    """Unpickle the :class:`TaskResult` of a workflow or of one of its steps."""
    record = _rebuild_result(*state)
    record.workflow_id = workflow_id
    record.workflow_step = workflow_step
    return record


def _rebuild_task(
    id: str, name: str, args: tuple, kwargs: dict, max_retries: int, retry_delay: float,
    current_retry: int, priority: int, cpu_bound: bool, timeout: float | None,
    eta: float | None, limits: TaskLimits | None = None, workflow_id: str | None = None,
    workflow_step: str | None = None,
) -> Task:  # fmt: skip
    """Unpickle a :class:`Task` (see its ``__reduce__``)."""
    return Task(
        id, name, args, kwargs, max_retries, retry_delay, current_retry, priority, cpu_bound,
        timeout, _from_stamp(eta), limits, workflow_id, workflow_step,
    )  # fmt: skip


@dataclass(slots=True)
class Task:
    """A job on its way to a worker: what to run, with what, and how to retry it.

    ``timeout`` (seconds), ``eta`` (aware datetime) and ``limits`` (its rate limit and
    concurrency cap, :class:`~flowrra.limits.TaskLimits`) are additions of flowrra 0.2.
    Tasks order by ``priority``: a lower number runs first.
    """

    id: str
    name: str
    args: tuple
    kwargs: dict
    max_retries: int = 3
    retry_delay: float = 1.0
    current_retry: int = 0
    priority: int = 0
    cpu_bound: bool = False
    timeout: float | None = None
    eta: datetime | None = field(default=None)
    limits: TaskLimits | None = None
    #: The workflow this task is a step of, and which step (see :mod:`flowrra.workflows`).
    workflow_id: str | None = None
    workflow_step: str | None = None

    def __lt__(self, other: Task) -> bool:
        return self.priority < other.priority

    def __reduce__(self) -> tuple[Any, tuple]:
        return _rebuild_task, (
            self.id, self.name, self.args, self.kwargs, self.max_retries, self.retry_delay,
            self.current_retry, self.priority, self.cpu_bound, self.timeout, _stamp(self.eta),
            self.limits, self.workflow_id, self.workflow_step,
        )  # fmt: skip


def task_state(task: Task) -> tuple:
    """``task`` as the plain tuple a Redis payload carries (see :func:`task_of`):
    pickling it costs a quarter of pickling the :class:`Task`, whose ``__reduce__`` names
    a function that pickle looks up by importing its module, once per payload."""
    return task.__reduce__()[1]


def record_state(record: TaskResult) -> tuple[bool, tuple]:
    """``record`` as the plain values a Redis record blob carries (see
    :func:`record_of`): whether it belongs to a workflow, and its fields. As with
    :func:`task_state`, pickling plain values saves the module import pickle makes for
    the rebuilding function named by ``TaskResult.__reduce__``, once per record (and
    unpickling them, the lookup of that function)."""
    rebuild, state = record.__reduce__()
    return rebuild is _rebuild_step_result, state


def record_of(value: tuple[bool, tuple]) -> TaskResult:
    """The record of :func:`record_state`'s values."""
    step, state = value
    return _rebuild_step_result(*state) if step else _rebuild_result(*state)


def task_of(value: Task | tuple) -> Task:
    """The task of a payload's first item: a :func:`task_state` tuple, or a
    :class:`Task` (payloads written before 0.2's plain tuples).

    Raises:
        TypeError: ``value`` is neither.
    """
    if type(value) is tuple:
        return _rebuild_task(*value)
    if isinstance(value, Task):
        return value
    raise TypeError(f"a task payload holds a {type(value).__name__}, not a task")


def pending_record(task: Task, submitted_at: float | None) -> TaskResult:
    """The record of ``task`` as submitted (PENDING), ``submitted_at`` a timestamp: what
    a worker holds for a task it took, and what a Redis record that shares its task's
    queue payload reads as."""
    return TaskResult(
        task.id, TaskStatus.PENDING, task.name, None, None, _from_stamp(submitted_at), None,
        None, task.current_retry, task.args, task.kwargs, task.priority,
        workflow_id=task.workflow_id, workflow_step=task.workflow_step,
    )  # fmt: skip


class StepTag(NamedTuple):
    """The identity a workflow gives one of its steps before it is submitted: the task
    id chosen in advance, the workflow's id and the step's place in it (``"1.3"``)."""

    task_id: str
    workflow_id: str
    step: str
