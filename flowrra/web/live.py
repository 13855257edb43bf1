"""Live updates for dashboard clients, coalesced: at most :data:`MAX_RATE` per second.

:class:`Changes` turns the app's task events (from this process, or records other
processes stored on Redis) into a version number that clients wait on; each client then
re-reads what it shows, so a burst of ten thousand events costs a client at most four
reads a second. :class:`EventStream` keeps each client's events, one per task (the
newest), between two sends.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from flowrra.web.data import jsonable

__all__ = ["MAX_RATE", "Changes", "EventStream"]

#: Updates sent to one client per second, at most.
MAX_RATE = 4.0
#: Seconds between two reads when nothing happened (workers come and go, clocks tick).
IDLE_REFRESH = 5.0


class Changes:
    """A version that grows with every task event of an app; clients wait for it.

    Usage::

        changes = Changes(app.events)
        version = changes.version
        await changes.wait(version, timeout=5)
    """

    def __init__(self, bus: Any) -> None:
        """Follow ``bus`` (an :class:`~flowrra.events.EventBus`) from the running loop."""
        self.version = 0
        self._bus = bus
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._event = asyncio.Event()
        self._poked = False
        self._streams: set[EventStream] = set()
        bus.subscribe(self._on_event)

    def _on_event(self, event: dict) -> None:
        for stream in tuple(self._streams):
            stream.add(event)
        if threading.get_ident() == self._thread:
            self._bump()
        elif not self._poked:  # from another thread: one wake-up per loop turn
            self._poked = True
            self._loop.call_soon_threadsafe(self._bump)

    def _bump(self) -> None:
        self._poked = False
        self.version += 1
        self._event.set()

    def poke(self) -> None:
        """Count a change that did not come from the bus (a client's own action)."""
        self._bump()

    async def wait(self, seen: int, timeout: float) -> None:
        """Return once the version is past ``seen``, or after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self.version <= seen:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._event.clear()
            try:
                await asyncio.wait_for(self._event.wait(), left)
            except TimeoutError:
                return

    def open_stream(self) -> EventStream:
        """A buffer of this bus's events for one client."""
        stream = EventStream()
        self._streams.add(stream)
        return stream

    def close_stream(self, stream: EventStream) -> None:
        """Stop filling ``stream``."""
        self._streams.discard(stream)

    async def close(self) -> None:
        """Stop following the bus."""
        await self._bus.unsubscribe(self._on_event)


class EventStream:
    """One client's pending events: the newest of each task, in order of arrival."""

    LIMIT = 2000  # tasks kept between two sends; older ones are dropped first

    def __init__(self) -> None:
        """Start empty."""
        self._events: dict[str, dict] = {}
        self.dropped = 0

    def add(self, event: dict) -> None:
        """Keep ``event`` (replacing an earlier one of its task)."""
        task_id = event.get("task_id", "")
        self._events.pop(task_id, None)
        self._events[task_id] = event
        if len(self._events) > self.LIMIT:
            self._events.pop(next(iter(self._events)))
            self.dropped += 1

    def take(self) -> list[dict[str, Any]]:
        """The pending events, JSON-ready; the buffer is emptied."""
        events, self._events = self._events, {}
        return [jsonable(e) for e in events.values()]
