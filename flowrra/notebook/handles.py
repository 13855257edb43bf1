"""Task handles: what ``%flowrra submit`` and ``%flowrra map`` return.

A :class:`TaskHandle` names one submitted task and can be asked about it from sync code
(``.status``, ``.result()``, ``.cancel()``: they block on the runtime loop, and Ctrl-C
stops only the wait) or awaited (``await handle``). :class:`TaskHandles` is a list of
them with a compact repr.
"""

from __future__ import annotations

import asyncio
import html
from collections import Counter
from collections.abc import Callable, Coroutine, Generator, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from flowrra import runtime
from flowrra.constants import STATUS_COLORS, TASK_STATUSES
from flowrra.exceptions import TaskCancelledError, TaskFailedError
from flowrra.notebook.table_state import format_duration
from flowrra.task import TaskResult, TaskStatus

if TYPE_CHECKING:
    from flowrra.app import Flowrra

__all__ = ["TaskHandle", "TaskHandles", "outcome"]

R = TypeVar("R")


def outcome(record: TaskResult) -> Any:
    """The value of a finished task, or its error raised.

    Raises:
        TaskCancelledError: the task ended CANCELLED.
        TaskFailedError: the task ended FAILED (``error_type`` and ``remote_traceback``
            say how).
    """
    if record.status is TaskStatus.SUCCESS:
        return record.result
    kind = TaskCancelledError if record.status is TaskStatus.CANCELLED else TaskFailedError
    raise kind(
        record.task_id,
        record.error or record.status.value,
        record.error_type,
        record.traceback,
    )


def _block(app: Flowrra, fn: Callable[..., Coroutine[Any, Any, R]], *args: Any) -> R:
    """Run an app coroutine from sync code, refusing where that would deadlock."""
    home = app._home_loop
    if home is not None and home is asyncio.events._get_running_loop():
        raise RuntimeError(
            "The app runs on this thread's event loop, which a blocking call would stop: "
            "await the handle (await handle) instead of calling handle.result()."
        )
    return runtime.run_sync(fn, *args)


class TaskHandle:
    """One submitted task of an app.

    Usage::

        handle = %flowrra submit add 1 2
        handle.status               # 'pending', 'running', ... 'success'
        handle.result(timeout=10)   # 3, or the task's error raised
        await handle                # the same, from async code
        handle.cancel()
    """

    __slots__ = ("_app", "task_id", "task_name")

    def __init__(self, app: Flowrra, task_id: str, task_name: str | None = None) -> None:
        """A handle on ``task_id`` of ``app`` (``task_name`` is for display)."""
        self._app = app
        self.task_id = task_id
        self.task_name = task_name

    @property
    def app(self) -> Flowrra:
        """The app the task was submitted to."""
        return self._app

    def record(self) -> TaskResult | None:
        """The task's record now (None if the app has none). Blocks briefly."""
        return _block(self._app, self._app.get_result, self.task_id)

    @property
    def status(self) -> str:
        """The task's status now: one of pending, running, retrying, success, failed,
        cancelled (or "unknown")."""
        record = self.record()
        return record.status.value if record is not None else "unknown"

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the task and return its value; re-raise its failure.

        Ctrl-C stops the wait, not the task.

        Raises:
            TaskFailedError: the task failed.
            TaskCancelledError: the task was cancelled.
            TaskTimeoutError: ``timeout`` seconds passed first (the task goes on).
        """
        return outcome(_block(self._app, self._app.wait_for_result, self.task_id, timeout))

    async def result_async(self, timeout: float | None = None) -> Any:
        """The awaitable form of :meth:`result`."""
        return outcome(await self._app.wait_for_result(self.task_id, timeout))

    def __await__(self) -> Generator[Any, None, Any]:
        return self.result_async().__await__()

    def cancel(self) -> bool:
        """Cancel the task; True once it is CANCELLED, False if it had already ended."""
        return _block(self._app, self._app.cancel, self.task_id)

    def _safe_record(self) -> TaskResult | None:
        try:
            return self.record()
        except Exception:  # a repr must not fail
            return None

    def __repr__(self) -> str:
        record = self._safe_record()
        status = record.status.value if record is not None else "unknown"
        parts = [self.task_name or "task", self.task_id[:8], status]
        if record is not None and record.duration is not None:
            parts.append(format_duration(record.duration.total_seconds()))
        if record is not None and record.error and status != "success":
            parts.append(f"{record.error_type or 'Error'}: {record.error}"[:120])
        return f"<TaskHandle {' '.join(parts)}>"

    def _repr_html_(self) -> str:
        record = self._safe_record()
        status = record.status.value if record is not None else "unknown"
        colour = STATUS_COLORS.get(status, "gray")
        duration = record.duration if record is not None else None
        error = ""
        if record is not None and record.error and status != "success":
            text = f"{record.error_type or 'Error'}: {record.error}"
            error = f" <span style='color:red'>{html.escape(text[:300])}</span>"
        took = f" in {format_duration(duration.total_seconds())}" if duration else ""
        return (
            f"<div class='flowrra-handle'><span style='color:{colour};font-weight:bold'>"
            f"{status.upper()}</span> <b>{html.escape(self.task_name or 'task')}</b> "
            f"<code title='{self.task_id}'>{self.task_id[:8]}</code>{took}{error}</div>"
        )


async def _records(app: Flowrra, ids: list[str]) -> list[TaskResult | None]:
    return [await app.get_result(task_id) for task_id in ids]


class TaskHandles(list[TaskHandle]):
    """A list of :class:`TaskHandle` (what ``%flowrra map`` returns).

    Usage::

        handles = %flowrra map square range(10)
        handles.results()        # [0, 1, 4, ...], or the first failure raised
        handles.statuses()       # {'success': 10}
    """

    def __init__(self, handles: Iterable[TaskHandle] = ()) -> None:
        """A list of ``handles``."""
        super().__init__(handles)

    @property
    def ids(self) -> list[str]:
        """The task ids, in order."""
        return [h.task_id for h in self]

    def results(self, timeout: float | None = None) -> list[Any]:
        """Every task's value, in order; the first failure is raised."""
        return [h.result(timeout) for h in self]

    def statuses(self) -> dict[str, int]:
        """How many tasks are in each status now."""
        if not self:
            return {}
        records = _block(self[0].app, _records, self[0].app, self.ids)
        found = Counter(r.status.value if r else "unknown" for r in records)
        return {s: found[s] for s in (*TASK_STATUSES, "unknown") if found[s]}

    def _summary(self) -> str:
        try:
            counts = self.statuses()
        except Exception:  # a repr must not fail
            counts = {}
        detail = ", ".join(f"{n} {s}" for s, n in counts.items())
        return f"{len(self)} task(s)" + (f": {detail}" if detail else "")

    def __repr__(self) -> str:
        return f"<TaskHandles {self._summary()}>"

    def _repr_html_(self) -> str:
        return (
            f"<div class='flowrra-handles'><b>TaskHandles</b> {html.escape(self._summary())}</div>"
        )
