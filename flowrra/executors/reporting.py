"""How running tasks' progress and output reach their records, coalesced.

A task's :class:`~flowrra.context.TaskContext` keeps the latest values; its reporter
publishes them at most once per :data:`~flowrra.context.PROGRESS_INTERVAL` seconds:

- :class:`ProgressReporter`, an executor's, on the executor's loop: the values go on
  the task's record, the record is stored (in memory, the record itself; on Redis, a
  RUNNING snapshot that rides the backend's batched writes) and a ``task.progress`` event
  is published. A CPU task's reports arrive from its worker process (see
  :class:`PipeReporter`) into the same kind of context in the executor's process;
- :class:`PipeReporter`, a CPU worker process's: a thread of its own sends the values
  to the pool over the worker's pipe (a small message, the output only when it
  changed); the last values travel with the task's reply.
"""

from __future__ import annotations

import contextlib
import contextvars
import pickle
import threading
import time
from typing import TYPE_CHECKING, Any

from flowrra import capture
from flowrra.context import PROGRESS_INTERVAL, TaskContext

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from flowrra.executors.base import BaseTaskExecutor

__all__ = ["PROGRESS_MESSAGE", "PipeReporter", "ProgressReporter"]

#: The first byte of a progress message on a CPU worker's pipe (replies are pickles).
PROGRESS_MESSAGE = b"P"

_monotonic = time.monotonic


class ProgressReporter:
    """Publishes the reports of an executor's running tasks; holds output capture
    while the executor runs (:meth:`start`, :meth:`stop`).

    Usage::

        reporter = ProgressReporter(executor)
        reporter.start()          # on the executor's loop
        context = TaskContext(task, record, reporter)
    """

    def __init__(self, executor: BaseTaskExecutor) -> None:
        """Report for ``executor`` (its config's ``output_limit`` bounds outputs)."""
        self._executor = executor
        self.output_limit: int = executor._config.executor.output_limit
        self._thread: int | None = None
        self._capturing = False

    def start(self) -> None:
        """The executor starts on the running loop: publish there; capture output."""
        self._thread = threading.get_ident()
        if self.output_limit > 0 and not self._capturing:
            capture.acquire()
            self._capturing = True

    def stop(self) -> None:
        """The executor stopped: let go of output capture."""
        if self._capturing:
            self._capturing = False
            capture.release()

    def arm(self, context: TaskContext) -> None:
        """Plan the next publication of ``context`` (from any thread)."""
        loop = self._executor._home_loop
        if loop is None:
            return
        if threading.get_ident() == self._thread:
            self._plan(context)
            return
        # from a thread the task runs (asyncio.to_thread); a closed loop has nobody to tell
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._plan, context, context=contextvars.Context())

    def _plan(self, context: TaskContext) -> None:
        live = context.live
        loop = self._executor._home_loop
        if live is None or loop is None or not context.running or live.handle is not None:
            return
        delay = max(live.flushed_at + PROGRESS_INTERVAL - _monotonic(), 0.0)
        # published in a context of its own: what subscribers print is not the task's
        live.handle = loop.call_later(delay, self._publish, context, context=contextvars.Context())

    def disarm(self, context: TaskContext) -> None:
        """The body ended: drop the planned publication (on the loop)."""
        live = context.live
        if live is not None and live.handle is not None:
            live.handle.cancel()
            live.handle = None

    def _publish(self, context: TaskContext) -> None:
        record = context.record
        if record is None or not context.running:
            return
        context.copy_to(record)
        executor = self._executor
        executor._save_sync(record)
        events = executor.events
        if events.has_subscribers:
            events.publish("task.progress", record)


class PipeReporter:
    """A CPU worker process's reporter: sends its running task's values to the pool.

    The task's thread only notes values (:class:`~flowrra.context.TaskContext`); a
    daemon thread, started on the first report, sends them at most once per
    :data:`~flowrra.context.PROGRESS_INTERVAL`. ``lock`` orders its sends with the
    replies the worker sends.
    """

    def __init__(self, conn: Connection) -> None:
        """Send on ``conn``, the worker's end of its pipe."""
        self._conn = conn
        self.lock = threading.Lock()
        self.output_limit = 0
        self._context: TaskContext | None = None
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def begin(self, context: TaskContext, output_limit: int) -> None:
        """``context``'s task starts; keep at most ``output_limit`` characters of output."""
        with self.lock:
            self.output_limit = output_limit
            self._context = context

    def end(self) -> None:
        """The task's body ended: nothing more is sent for it (its reply carries the
        last values)."""
        with self.lock:
            self._context = None

    def arm(self, context: TaskContext) -> None:
        """Wake the sending thread (start it the first time)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="flowrra-progress", daemon=True)
            self._thread.start()
        self._wake.set()

    def disarm(self, context: TaskContext) -> None:
        """Nothing to drop: :meth:`end` stops the sends."""

    def _run(self) -> None:
        wake = self._wake
        while True:
            wake.wait()
            wake.clear()
            context = self._context
            live = context.live if context is not None else None
            if live is None:
                continue
            delay = live.flushed_at + PROGRESS_INTERVAL - _monotonic()
            if delay > 0:
                time.sleep(delay)  # coalesce: the reports made meanwhile go in one message
            if not self._send(context):
                return

    def _send(self, context: TaskContext | None) -> bool:
        with self.lock:
            if context is None or self._context is not context:
                return True
            values = context.take()
            if values is None:
                return True
            try:
                self._conn.send_bytes(PROGRESS_MESSAGE + pickle.dumps(values))
            except OSError:
                return False  # the pool is gone: the worker ends too
        return True


def child_values(data: bytes) -> Any:
    """The values of a progress message (see :data:`PROGRESS_MESSAGE`)."""
    return pickle.loads(data[len(PROGRESS_MESSAGE) :])
