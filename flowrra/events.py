"""Task events: every change of a task's state, delivered to subscribers.

Each app has its own :class:`EventBus` (``app.events``). Executors publish
``task.submitted``, ``task.started``, ``task.retrying``, ``task.succeeded``,
``task.failed`` and ``task.cancelled``, and ``task.progress`` while a running task
reports progress or output (at most four times a second per task); the event is a
dict::

    {"type": "task.succeeded", "timestamp": "2026-...+00:00",
     "task_id": "...", "task": {...TaskResult.to_dict...}}

``timestamp`` is the time of the change (the record's ``submitted_at``, ``started_at`` or
``finished_at``; the time of publishing for ``task.retrying``).

With no subscriber, publishing costs one attribute check. A sync subscriber is called
inline; one that returns an awaitable (an ``async def`` subscriber) has it scheduled on
the running loop. A failing subscriber is logged and never touches the task or the
other subscribers.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from flowrra.clock import utcnow

if TYPE_CHECKING:
    from flowrra.task import TaskResult

__all__ = ["EventBus", "Subscriber", "event_bus"]

logger = logging.getLogger(__name__)

Subscriber = Callable[[dict], Awaitable[None] | None]


class EventBus:
    """Broadcasts task events to subscribers; thread-safe to (un)subscribe.

    Usage::

        def on_event(event: dict) -> None:
            print(event["type"], event["task_id"])

        app.events.subscribe(on_event)
        ...
        await app.events.unsubscribe(on_event)
    """

    def __init__(self) -> None:
        """Create a bus with no subscribers."""
        self._subscribers: tuple[Subscriber, ...] = ()
        self._lock = threading.Lock()
        self._pending: set[asyncio.Task[Any]] = set()
        self._forward: EventBus | None = None

    @property
    def has_subscribers(self) -> bool:
        """True when an event published now would reach someone."""
        return bool(self._subscribers) or (
            self._forward is not None and bool(self._forward._subscribers)
        )

    def subscribe(self, fn: Subscriber) -> None:
        """Add a subscriber: a function (sync or async) taking the event dict."""
        if not callable(fn):
            raise TypeError(f"An event subscriber must be callable, got {type(fn).__name__}")
        with self._lock:
            if fn not in self._subscribers:
                self._subscribers = (*self._subscribers, fn)

    async def async_subscribe(self, fn: Subscriber) -> None:
        """Add a subscriber (the awaitable form of :meth:`subscribe`)."""
        self.subscribe(fn)

    def remove(self, fn: Subscriber) -> bool:
        """Remove a subscriber at once; True if it was subscribed."""
        with self._lock:
            if fn not in self._subscribers:
                return False
            self._subscribers = tuple(s for s in self._subscribers if s != fn)
            return True

    async def unsubscribe(self, fn: Subscriber) -> None:
        """Remove a subscriber (absent ones are ignored)."""
        self.remove(fn)

    async def emit(self, event: dict) -> None:
        """Deliver ``event`` to every subscriber and wait for async ones to finish."""
        awaitables = [a for a in self._deliver(event) if a is not None]
        if awaitables:
            await asyncio.gather(*(self._guard(a, event) for a in awaitables))

    def publish(self, event_type: str, record: TaskResult) -> None:
        """Publish a task event built from ``record``; free when nobody listens."""
        if not self._subscribers and (self._forward is None or not self._forward._subscribers):
            return
        task = record.to_dict
        # the change's own time when the record has it (set just before publishing):
        # one clock read and one ISO conversion fewer per event
        field = _TIME_OF.get(event_type)
        stamp = task[field] if field is not None else None
        event = {
            "type": event_type,
            "timestamp": stamp or utcnow().isoformat(),
            "task_id": record.task_id,
            "task": task,
        }
        self.publish_event(event)

    def publish_event(self, event: dict) -> None:
        """Deliver a ready-made event dict without waiting for async subscribers."""
        for fn in self._subscribers:
            try:
                value = fn(event)
            except Exception:
                logger.exception("Error in event subscriber %s", _name(fn))
                continue
            if value is not None and inspect.isawaitable(value):
                task = asyncio.ensure_future(self._guard(value, event))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)
        forward = self._forward
        if forward is not None and forward._subscribers:
            forward.publish_event(event)

    def _deliver(self, event: dict) -> list[Awaitable[Any] | None]:
        out: list[Awaitable[Any] | None] = []
        for fn in self._subscribers:
            try:
                value = fn(event)
            except Exception:
                logger.exception("Error in event subscriber %s", _name(fn))
                continue
            out.append(value if inspect.isawaitable(value) else None)
        return out

    @staticmethod
    async def _guard(awaitable: Awaitable[Any], event: dict) -> None:
        try:
            await awaitable
        except Exception:
            logger.exception("Error in async event subscriber for %s", event.get("type"))


#: The record field that holds the time of each event's change.
_TIME_OF = {
    "task.submitted": "submitted_at",
    "task.started": "started_at",
    "task.succeeded": "finished_at",
    "task.failed": "finished_at",
    "task.cancelled": "finished_at",
}


def _name(fn: object) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


#: A process-wide bus kept for flowrra 0.1.8 code that subscribed to
#: ``flowrra.events.event_bus``: every app forwards its events here too. New code should
#: subscribe to ``app.events``.
event_bus = EventBus()
