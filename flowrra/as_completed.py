"""``app.as_completed(ids)``: task records in the order the tasks finish.

One object serves both kinds of code, as dask's ``as_completed`` does::

    async for record in app.as_completed(ids):     # in async code (or a notebook cell)
        ...
    for record in app.as_completed(ids):           # in plain sync code, e.g. a notebook
        ...

Each id is waited on with the result backend's own wait (no polling: woken by the
completion, on Redis by its message); a record is yielded as soon as its task ends,
whatever its status (a failed task's record is yielded, not raised). The sync form runs
the waits on flowrra's runtime loop and blocks on a queue between records: Ctrl-C stops
the iteration (and its waits), never the tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from flowrra import runtime
from flowrra.exceptions import TaskTimeoutError
from flowrra.task import TaskResult

if TYPE_CHECKING:
    from flowrra.app import Flowrra

__all__ = ["AsCompleted"]

_SLICE = 0.1  # seconds a sync caller blocks between looks for Ctrl-C
_END = object()


class _Failure:
    """An error raised by the waits, carried to the sync caller's thread."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class AsCompleted:
    """Records of ``ids`` as their tasks finish, for ``async for`` and for ``for``.

    ``timeout`` (seconds) bounds the whole iteration: when it runs out before every task
    has finished, :class:`~flowrra.exceptions.TaskTimeoutError` is raised (the tasks go
    on). An id the app has no record of raises
    :class:`~flowrra.exceptions.UnknownTaskIdError`.

    Usage::

        ids = await app.map(crunch, range(100))
        async for record in app.as_completed(ids, timeout=60):
            print(record.task_id, record.status, record.result)
    """

    def __init__(self, app: Flowrra, ids: Iterable[str], timeout: float | None = None) -> None:
        """Records of ``ids`` of ``app``; nothing is waited on before iterating."""
        self._app = app
        self._ids = list(ids)
        self._timeout = timeout

    def __len__(self) -> int:
        return len(self._ids)

    def __aiter__(self) -> AsyncIterator[TaskResult]:
        return self._records()

    async def _records(self) -> AsyncIterator[TaskResult]:
        loop = asyncio.get_running_loop()
        finished: asyncio.Queue[asyncio.Future[TaskResult]] = asyncio.Queue()
        waits = [asyncio.ensure_future(self._app.wait_for_result(i)) for i in self._ids]
        for wait in waits:
            wait.add_done_callback(finished.put_nowait)
        deadline = None if self._timeout is None else loop.time() + self._timeout
        try:
            for _ in waits:
                left = None if deadline is None else max(0.0, deadline - loop.time())
                try:
                    async with asyncio.timeout(left):
                        done = await finished.get()
                except TimeoutError:
                    raise self._timed_out(waits) from None
                yield done.result()
        finally:
            for wait in waits:
                wait.cancel()
            with contextlib.suppress(BaseException):  # the cancelled waits end quietly
                await asyncio.gather(*waits, return_exceptions=True)

    def _timed_out(self, waits: list[asyncio.Future[TaskResult]]) -> TaskTimeoutError:
        left = [task_id for task_id, wait in zip(self._ids, waits, strict=True) if not wait.done()]
        error = TaskTimeoutError(left[0], self._timeout)
        error.args = (
            f"{len(left)} of {len(waits)} task(s) did not complete within {self._timeout}s "
            f"(the first: {left[0]})",
        )
        return error

    def __iter__(self) -> Iterator[TaskResult]:
        home = self._app._home_loop
        if home is not None and home is asyncio.events._get_running_loop():
            raise RuntimeError(
                "The app runs on this thread's event loop, which a blocking loop would "
                "stop: use 'async for record in app.as_completed(ids)' here."
            )
        return self._blocking()

    def _blocking(self) -> Iterator[TaskResult]:
        found: queue.SimpleQueue[Any] = queue.SimpleQueue()
        pump = runtime.submit(self._pump, found)
        try:
            while True:
                item = _take(found)
                if item is _END:
                    return
                if isinstance(item, _Failure):
                    raise item.error
                yield item
        finally:
            pump.cancel()

    async def _pump(self, found: queue.SimpleQueue[Any]) -> None:
        try:
            async for record in self:
                found.put(record)
        except Exception as exc:
            found.put(_Failure(exc))
        else:
            found.put(_END)


def _take(found: queue.SimpleQueue[Any]) -> Any:
    """The next item, waiting in short slices so that Ctrl-C is seen at once."""
    while True:
        try:
            return found.get(timeout=_SLICE)
        except queue.Empty:
            time.sleep(0)
