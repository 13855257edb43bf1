"""What ``await app.run(workflow)`` returns: a handle on the submitted workflow."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from flowrra.exceptions import TaskCancelledError, UnknownTaskIdError, WorkflowFailedError
from flowrra.home_loop import run_on_home_loop
from flowrra.task import TaskResult, TaskStatus
from flowrra.workflows.graph import Graph

if TYPE_CHECKING:
    import pandas as pd

    from flowrra.app import Flowrra

__all__ = ["WorkflowHandle", "workflow_outcome"]


def workflow_outcome(record: TaskResult) -> Any:
    """The result of an ended workflow (its record), or its failure raised.

    Raises:
        WorkflowFailedError: a step failed (``step`` names it).
        TaskCancelledError: the workflow (or one of its steps) was cancelled.
    """
    if record.status is TaskStatus.SUCCESS:
        return record.result
    if record.status is TaskStatus.CANCELLED:
        raise TaskCancelledError(record.task_id, record.error or "cancelled", record.error_type)
    raise WorkflowFailedError(
        record.task_id, record.workflow_step, record.error or "failed", record.error_type,
        record.traceback,
    )  # fmt: skip


class WorkflowHandle:
    """A submitted workflow: its ``id``, its steps' ids, its result, its status, cancel.

    Every method may be awaited from any loop (the app's own coroutines do the work on
    its loop). A workflow has a record of its own in the app's results (task name
    ``workflow``, id ``handle.id``): ``app.wait_for_result(handle.id)`` works as well, from
    any process that shares the Redis backend.

    Usage::

        handle = await app.run(flowrra.chain(flowrra.call(fetch, url), parse, store))
        handle.steps            # {'0': '3f2c...', '1': '9ab0...', '2': '17de...'}
        await handle.status()   # TaskStatus.RUNNING
        await handle.result()   # store's result, or WorkflowFailedError naming the step
        await handle.cancel()   # cancels the steps not yet finished
    """

    __slots__ = ("_app", "_graph")

    def __init__(self, app: Flowrra, graph: Graph) -> None:
        """A handle on the workflow ``graph`` submitted to ``app``."""
        self._app = app
        self._graph = graph

    @classmethod
    async def attach(cls, app: Flowrra, workflow_id: str) -> WorkflowHandle:
        """A handle on a workflow submitted elsewhere (another process, on Redis).

        Raises:
            UnknownTaskIdError: no such workflow is kept (unknown, or ended and expired).
        """
        graph = await run_on_home_loop(app, app._workflows.graph(workflow_id))
        if graph is None:
            raise UnknownTaskIdError(workflow_id)
        return cls(app, graph)

    @property
    def id(self) -> str:
        """The workflow's id (also the id of its own record)."""
        return self._graph.id

    @property
    def description(self) -> str:
        """What the workflow is, shortly: ``chain(fetch, parse, store)``."""
        return self._graph.description

    @property
    def steps(self) -> dict[str, str]:
        """Step name -> task id, in the order written; every step has its id (and a
        record) from the start. Names give the place: ``"1.3"`` is the fourth step
        inside the second one."""
        return self._graph.steps()

    @property
    def step_ids(self) -> list[str]:
        """The task ids of the steps, in the order written."""
        return list(self._graph.steps().values())

    async def result(self, timeout: float | None = None) -> Any:
        """Wait for the workflow and return its result (the last step's for a chain, the
        list of results for a group, the callback's for a chord).

        Raises:
            WorkflowFailedError: a step failed after its retries (``step`` names it).
            TaskCancelledError: the workflow or a step was cancelled.
            TaskTimeoutError: ``timeout`` seconds passed first (the workflow goes on).
        """
        return workflow_outcome(await self._app.wait_for_result(self.id, timeout))

    def __await__(self) -> Generator[Any, None, Any]:
        return self.result().__await__()

    async def record(self) -> TaskResult | None:
        """The workflow's own record now."""
        return await self._app.get_result(self.id)

    async def status(self) -> TaskStatus:
        """The workflow's status now: RUNNING, then SUCCESS, FAILED or CANCELLED."""
        record = await self.record()
        if record is None:
            raise UnknownTaskIdError(self.id)
        return record.status

    async def step_records(self) -> list[TaskResult]:
        """The records of the steps now, in the order written."""
        found = await asyncio.gather(*(self._app.get_result(i) for i in self.step_ids))
        return [record for record in found if record is not None]

    async def results_frame(self) -> pd.DataFrame:
        """The steps' records as a DataFrame (see :meth:`Flowrra.results_frame`), in the
        order written. Needs pandas."""
        from flowrra.frames import results_frame

        return results_frame(await self.step_records())

    async def cancel(self) -> bool:
        """Cancel the workflow: its steps not yet finished are cancelled and it ends
        CANCELLED. False if it had already ended."""
        return await self._app.cancel(self.id)

    def __repr__(self) -> str:
        count = len(self._graph.calls())
        return f"<WorkflowHandle {self.id[:8]} {self.description}, {count} step(s)>"
