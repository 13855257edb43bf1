"""The in-memory limiter: rate limits and concurrency caps of an executor's tasks.

A worker that takes a task its limits do not let start yet does not wait with it: the
task is parked here, and the worker takes the next one. A parked task goes back to the
queue, at the front of its priority (no task of that priority queued after it passes
it), when its name may start a task again: at the time the rate says, or when a running
task of its name ends. Tasks of one name wait in queue order, so a task keeps its place
among equal priorities. (On Redis the take script does the same in Redis, for every
worker process at once: :mod:`flowrra.brokers.redis_limits`.)
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flowrra.brokers.memory import InMemoryBroker
from flowrra.limits import TaskLimits, rate_granted, rate_wait
from flowrra.task import Task

__all__ = ["Throttle"]


@dataclass(slots=True)
class _Gate:
    """The limiter state of one task name."""

    tat: float = 0.0  # when the next start is due (the rate's theoretical arrival time)
    running: int = 0  # tasks of this name running under a concurrency cap
    parked: list[tuple[int, float, Task]] = field(default_factory=list)  # heap: queue order
    released: Task | None = None  # back in the queue, not started yet
    released_key: tuple[int, float] = (0, 0.0)
    timer: asyncio.TimerHandle | None = None

    def wait(self, limits: TaskLimits, now: float) -> float | None:
        """Seconds until ``limits`` let a task start (0: now; None: when one ends)."""
        cap = limits.concurrency
        if cap is not None and self.running >= cap:
            return None
        rate = limits.rate
        return 0.0 if rate is None else rate_wait(self.tat, now, rate)

    def grant(self, limits: TaskLimits, now: float) -> None:
        """Count a start of a task with ``limits`` at ``now``."""
        if limits.rate is not None:
            self.tat = rate_granted(self.tat, now, limits.rate)
        if limits.concurrency is not None:
            self.running += 1


class Throttle:
    """Holds back the tasks of one in-memory executor that their limits do not let
    start yet (see the module docstring).

    ``queue`` is the executor's queue; ``active`` its records of unfinished tasks (a
    parked task that was cancelled meanwhile is dropped, not queued again).

    Usage (the executor's worker loop)::

        if task.limits is not None and not throttle.admit(task):
            continue                  # parked: this worker takes the next task
        try:
            await run(task)
        finally:
            throttle.done(task)
    """

    def __init__(self, queue: InMemoryBroker, active: Mapping[str, Any]) -> None:
        """Throttle the tasks of ``queue``; see the class docstring."""
        self._queue = queue
        self._active = active
        self._gates: dict[str, _Gate] = {}
        self._order = itertools.count()

    def parked(self) -> int:
        """Tasks held back now."""
        return sum(len(gate.parked) for gate in self._gates.values())

    def admit(self, task: Task) -> bool:
        """True if ``task`` may start now (it is counted as started); else park it."""
        limits = task.limits
        assert limits is not None
        gate = self._gates.get(task.name)
        if gate is None:
            gate = self._gates[task.name] = _Gate()
        key: tuple[int, float] = (task.priority, math.inf)
        if gate.released is task:  # it waited here: it keeps its place
            key, gate.released = gate.released_key, None
        now = time.monotonic()
        ahead = bool(gate.parked) and gate.parked[0][:2] < key  # one of its name waits
        wait = None if ahead else gate.wait(limits, now)
        if wait == 0.0:
            gate.grant(limits, now)
            self._next(task.name, gate)
            return True
        order = next(self._order) if key[1] == math.inf else key[1]
        heapq.heappush(gate.parked, (key[0], order, task))
        self._next(task.name, gate)
        return False

    def done(self, task: Task) -> None:
        """``task``'s attempt ended: free its slot and let a task of its name go."""
        limits = task.limits
        gate = self._gates.get(task.name)
        if gate is None or limits is None:
            return
        if limits.concurrency is not None and gate.running > 0:
            gate.running -= 1
        self._next(task.name, gate)

    def forget(self, task_id: str) -> None:
        """A queued task was cancelled: if it was let go from here, let the next go."""
        for name, gate in self._gates.items():
            if gate.released is not None and gate.released.id == task_id:
                gate.released = None
                self._next(name, gate)
                return

    def _next(self, name: str, gate: _Gate) -> None:
        """Let the first parked task of ``name`` go back to the queue, at the front of its
        priority, if its limits let it start now; else be called again when they may."""
        if gate.released is not None:
            return  # one at a time: the next goes once this one started
        parked = gate.parked
        while parked and parked[0][2].id not in self._active:
            heapq.heappop(parked)  # cancelled while it waited here
        if not parked:
            return
        head = parked[0][2]
        assert head.limits is not None
        wait = gate.wait(head.limits, time.monotonic())
        if wait is None:
            return  # a running task of its name ends first: done() calls again
        if wait > 0:
            self._call_later(name, gate, wait)
            return
        priority, order, _ = heapq.heappop(parked)
        gate.released, gate.released_key = head, (priority, order)
        self._queue.push_nowait(head, front=True)

    def _call_later(self, name: str, gate: _Gate, wait: float) -> None:
        loop = asyncio.get_running_loop()
        when = loop.time() + wait
        if gate.timer is not None and gate.timer.when() <= when:
            return
        if gate.timer is not None:
            gate.timer.cancel()
        gate.timer = loop.call_at(when, self._timed, name)

    def _timed(self, name: str) -> None:
        gate = self._gates.get(name)
        if gate is not None:
            gate.timer = None
            self._next(name, gate)

    def clear(self) -> list[Task]:
        """Drop every parked task (the executor stopped) and return them."""
        parked = []
        for gate in self._gates.values():
            if gate.timer is not None:
                gate.timer.cancel()
            parked.extend(entry[2] for entry in sorted(gate.parked, key=lambda e: e[:2]))
        self._gates.clear()
        return parked
