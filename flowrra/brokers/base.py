"""The broker contract: where tasks wait until a worker takes them."""

from __future__ import annotations

from abc import ABC, abstractmethod

from flowrra.task import Task

__all__ = ["BaseBroker"]


class BaseBroker(ABC):
    """A queue of :class:`~flowrra.task.Task` objects: lower priority number first,
    first-in first-out within a priority.

    Subclasses implement :meth:`push`, :meth:`pop` and :meth:`size`; :meth:`close`
    releases connections.
    """

    @abstractmethod
    async def push(self, task: Task) -> None:
        """Add ``task`` to the queue (waiting for room if the queue is bounded)."""

    @abstractmethod
    async def pop(self, timeout: float | None = None) -> Task | None:
        """Take the next task; None after ``timeout`` seconds or once the broker closed."""

    @abstractmethod
    async def size(self) -> int:
        """Number of tasks waiting."""

    async def close(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Release resources. The default does nothing."""
