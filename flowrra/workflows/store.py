"""Where a running workflow's progress is kept: which steps are done, the results a
group collects, which next steps were submitted, and how the workflow ended.

:class:`MemoryWorkflowStore` keeps it in this process (an app with in-memory results);
:class:`~flowrra.workflows.redis_store.RedisWorkflowStore` keeps it in Redis, where any
worker that finishes a step moves the workflow on. Both answer the same calls; every
call that decides what happens next (:meth:`mark`, :meth:`end`) is atomic, so two
workers finishing a group's last two steps at once start its callback once.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from flowrra.workflows.graph import Graph

if TYPE_CHECKING:
    from flowrra.backends.base import BaseResultBackend

__all__ = [
    "AGAIN",
    "ENDED",
    "FIRST",
    "Mark",
    "MemoryRun",
    "MemoryWorkflowStore",
    "WorkflowStore",
    "store_for",
]

#: :meth:`WorkflowStore.mark` states: marked now, marked before (a step that ran again
#: after its worker died), or the workflow has ended (or is unknown).
FIRST, AGAIN, ENDED = 0, 1, 2


#: What :meth:`WorkflowStore.mark` found: its state and, for a member of a group, how
#: many of the group's members are done (-1 otherwise).
Mark = tuple[int, int]


class WorkflowStore(Protocol):
    """The calls the workflow engine makes; see the module docstring."""

    #: True when no call ever waits (the engine may then run a step's bookkeeping inline).
    local: bool

    async def create(self, graph: Graph) -> None:
        """Keep a new workflow."""

    async def graph(self, workflow_id: str) -> Graph | None:
        """The workflow's graph, or None once it is gone."""

    async def knows(self, workflow_id: str) -> bool:
        """True if ``workflow_id`` is a workflow kept here."""

    async def mark(self, workflow_id: str, node: int, value: Any = None, group: int = -1) -> Mark:
        """Mark ``node`` done; as a member of ``group``, keep ``value`` and count it."""

    async def values(self, workflow_id: str, nodes: tuple[int, ...]) -> list[Any]:
        """The values kept for ``nodes`` (members of a group), in order."""

    async def launched(self, workflow_id: str, node: int) -> bool:
        """True once :meth:`set_launched` was called for ``node``."""

    def set_launched(self, workflow_id: str, node: int) -> None:
        """Note that ``node`` was started (its steps submitted); need not wait."""

    async def done_among(self, workflow_id: str, nodes: list[int]) -> set[int]:
        """Those of ``nodes`` marked done."""

    async def end(self, workflow_id: str, outcome: str) -> str | None:
        """End the workflow with ``outcome`` unless it has ended; return the outcome in
        force (``outcome`` if this call ended it or it had ended with the same one), or
        None if the workflow is unknown."""

    def forget(self, workflow_id: str) -> None:
        """The ended workflow's end is written: what is kept only for it may go."""


@dataclass(eq=False)
class MemoryRun:
    """One workflow in a :class:`MemoryWorkflowStore`: its graph, the nodes done, the
    values and counts of its groups' members, the nodes started, how it ended."""

    graph: Graph
    done: set[int] = field(default_factory=set)
    values: dict[int, Any] = field(default_factory=dict)
    counts: dict[int, int] = field(default_factory=dict)
    launched: set[int] = field(default_factory=set)
    ended: str | None = None


class MemoryWorkflowStore:
    """Workflows in this process: one entry per running workflow, dropped once its end
    is written."""

    local = True

    def __init__(self) -> None:
        """An empty store."""
        self._runs: dict[str, MemoryRun] = {}

    def __len__(self) -> int:
        return len(self._runs)

    async def create(self, graph: Graph) -> None:
        """Keep a new workflow."""
        self._runs[graph.id] = MemoryRun(graph)

    async def graph(self, workflow_id: str) -> Graph | None:
        """The graph of a running workflow, or None."""
        return self.graph_now(workflow_id)

    async def knows(self, workflow_id: str) -> bool:
        """True while ``workflow_id`` runs here."""
        return workflow_id in self._runs

    def graph_now(self, workflow_id: str) -> Graph | None:
        """:meth:`graph`, without a coroutine."""
        run = self._runs.get(workflow_id)
        return None if run is None else run.graph

    async def mark(self, workflow_id: str, node: int, value: Any = None, group: int = -1) -> Mark:
        """See :meth:`WorkflowStore.mark`."""
        return self.mark_now(workflow_id, node, value, group)

    def mark_now(self, workflow_id: str, node: int, value: Any = None, group: int = -1) -> Mark:
        """:meth:`mark`, without a coroutine (a finished step's bookkeeping, inline)."""
        run = self._runs.get(workflow_id)
        if run is None or run.ended is not None:
            return ENDED, -1
        if node in run.done:
            return AGAIN, run.counts.get(group, 0) if group >= 0 else -1
        run.done.add(node)
        if group < 0:
            return FIRST, -1
        run.values[node] = value
        count = run.counts[group] = run.counts.get(group, 0) + 1
        return FIRST, count

    def run_of(self, workflow_id: str) -> MemoryRun | None:
        """The progress of a running workflow (for the engine's inline bookkeeping)."""
        return self._runs.get(workflow_id)

    async def values(self, workflow_id: str, nodes: tuple[int, ...]) -> list[Any]:
        """See :meth:`WorkflowStore.values`."""
        kept = self._runs[workflow_id].values
        return [kept.pop(node) for node in nodes]  # each group is collected once

    async def launched(self, workflow_id: str, node: int) -> bool:
        """See :meth:`WorkflowStore.launched`."""
        run = self._runs.get(workflow_id)
        return run is not None and node in run.launched

    def set_launched(self, workflow_id: str, node: int) -> None:
        """See :meth:`WorkflowStore.set_launched`."""
        run = self._runs.get(workflow_id)
        if run is not None:
            run.launched.add(node)

    async def done_among(self, workflow_id: str, nodes: list[int]) -> set[int]:
        """See :meth:`WorkflowStore.done_among`."""
        run = self._runs.get(workflow_id)
        return set() if run is None else run.done.intersection(nodes)

    async def end(self, workflow_id: str, outcome: str) -> str | None:
        """See :meth:`WorkflowStore.end`."""
        run = self._runs.get(workflow_id)
        if run is None:
            return None
        if run.ended is None:
            run.ended = outcome
        return run.ended

    def forget(self, workflow_id: str) -> None:
        """Drop the ended workflow."""
        self._runs.pop(workflow_id, None)


def store_for(backend: BaseResultBackend) -> WorkflowStore:
    """Workflows live where the results do: in Redis with a Redis backend (any worker
    moves them on), else in this process."""
    redis_backends = sys.modules.get("flowrra.backends.redis")
    if redis_backends is not None and isinstance(backend, redis_backends.RedisBackend):
        from flowrra.workflows.redis_store import RedisWorkflowStore

        return RedisWorkflowStore(backend)
    return MemoryWorkflowStore()
