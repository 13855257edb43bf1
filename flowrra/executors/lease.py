"""Keeping leases on Redis tasks alive from a thread, and noticing a blocked event loop.

A worker holds each task it took from Redis under a lease that lapses unless renewed.
If renewing depended on the event loop, an ``async def`` task that blocks the loop (a long
``time.sleep``, a heavy pandas call) would lose its lease while it still runs, and the
task would run again elsewhere. :class:`LeaseKeeper` renews from a thread of its own, with
a blocking Redis client of its own, and logs a warning naming the task that keeps the
loop from running for more than :data:`BLOCKED_AFTER` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable

__all__ = ["BEAT_EVERY", "BLOCKED_AFTER", "LeaseKeeper"]

logger = logging.getLogger("flowrra.worker")

#: Seconds without a turn of the event loop after which the running task is named.
BLOCKED_AFTER = 1.0
_TICK = 0.25
#: Seconds between two presence beats (what dashboards show as a worker's last beat).
BEAT_EVERY = 2.0


class LeaseKeeper:
    """Renews leases every ``lease / 3`` seconds and watches the loop, from a thread.

    ``members`` returns the ``priority:id`` members held now (called from the thread);
    ``renew`` sends them to Redis (blocking) and returns those it found lapsed, which go
    to ``lost`` on the loop; ``running`` names the task whose body the loop is in when it
    blocks (None when the loop is elsewhere: the code that blocks is not a task's, e.g. a
    gather of thousands of submits, and is only logged at INFO).
    """

    def __init__(
        self,
        name: str,
        lease: float,
        members: Callable[[], list[str]],
        renew: Callable[[list[str]], list[str] | None],
        running: Callable[[asyncio.AbstractEventLoop], str | None],
        presence: Callable[[], None] | None = None,
        leave: Callable[[], None] | None = None,
        lost: Callable[[list[str]], None] | None = None,
    ) -> None:
        """Describe the keeper; :meth:`start` starts its thread. ``presence`` (if given)
        is called every :data:`BEAT_EVERY` seconds from the thread to say the worker is
        alive, ``leave`` once when the keeper stops."""
        self.lease = lease
        self._members = members
        self._renew = renew
        self._running = running
        self._presence = presence
        self._leave = leave
        self._lost = lost
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"flowrra-lease-{name}", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tick = time.monotonic()
        self._ticker: asyncio.TimerHandle | None = None
        self._warned = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start watching ``loop`` and renewing leases."""
        self._loop = loop
        self._tick = time.monotonic()
        self._ticker = loop.call_soon(self._beat)
        self._thread.start()

    def _beat(self) -> None:  # on the loop: proof that it turns
        self._tick = time.monotonic()
        assert self._loop is not None
        self._ticker = self._loop.call_later(_TICK, self._beat)

    def stop(self) -> None:
        """Stop the thread (waits for it briefly) and the loop's beat."""
        self._stopped.set()
        if self._ticker is not None:
            self._ticker.cancel()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        if self._leave is not None:
            try:
                self._leave()
            except Exception as exc:
                logger.debug("Could not take this worker off the list: %s", exc)

    def _run(self) -> None:
        next_renew = next_beat = 0.0
        while True:
            now = time.monotonic()
            if now >= next_renew:
                next_renew = now + self.lease / 3
                self._renew_now()
            if self._presence is not None and now >= next_beat:
                next_beat = now + BEAT_EVERY
                self._beat_presence()
            self._watch(now)
            if self._stopped.wait(_TICK):
                return

    def _beat_presence(self) -> None:
        assert self._presence is not None
        try:
            self._presence()
        except Exception as exc:
            logger.debug("Could not report this worker's presence: %s", exc)

    def _renew_now(self) -> None:
        try:
            members = self._members()
            lapsed = self._renew(members) if members else None
        except Exception as exc:
            logger.warning("Could not renew the leases of running tasks: %s", exc)
            return
        if lapsed and self._lost is not None and self._loop is not None:
            with contextlib.suppress(RuntimeError):  # a closed loop: nothing runs there
                self._loop.call_soon_threadsafe(self._lost, lapsed)

    def _watch(self, now: float) -> None:
        blocked = now - self._tick
        if blocked <= BLOCKED_AFTER:
            self._warned = False
            return
        if self._warned or self._loop is None:
            return
        self._warned = True
        task = self._running(self._loop)
        if task is None:
            logger.info(
                "The event loop has been busy for %.1fs outside any task's body (a large "
                "gather of submits, a slow callback); leases are renewed meanwhile.",
                blocked,
            )
            return
        logger.warning(
            "%s has blocked the event loop for %.1fs: an async task must await, not block "
            "(use cpu_bound=True or asyncio.to_thread for blocking work). Its lease is "
            "renewed meanwhile, so it is not run again elsewhere.",
            task,
            blocked,
        )
