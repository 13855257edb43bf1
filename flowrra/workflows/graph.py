"""A workflow compiled for running: flat, picklable columns, one row per node.

Each node is a call (one task), a chain or a group; a chord is compiled as a chain of its
group and its callback. Nodes are numbered depth first (node 0 is the top), so the calls
come in the order the workflow was written. Every call gets its task id when the
workflow is submitted: the ids of all its steps are known at once, and a step submitted
twice (after a worker died) keeps its id.

A step's name is its place in the workflow: ``"2"`` is the third step of the top chain
or group, ``"2.0"`` the first step inside it.

The graph keeps one list per field rather than an object per node: a group of ten
thousand steps is then a few lists (quick to make, to pickle, and for the garbage
collector, which never has to walk ten thousand node objects while the group runs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flowrra.registry import TaskSpec
from flowrra.task import TaskResult, TaskStatus, new_task_id
from flowrra.workflows.signatures import Call, Chain, Chord, Group, Step

__all__ = ["CALL", "CHAIN", "GROUP", "NO_INPUT", "WORKFLOW_TASK_NAME", "Graph", "compile"]

CALL, CHAIN, GROUP = "call", "chain", "group"

#: The ``task_name`` of a workflow's own record (its row in the task table).
WORKFLOW_TASK_NAME = "workflow"

_NO_KWARGS: dict[str, Any] = {}  # the kwargs of a step that has none (never changed)


class _NoInput:
    """The input of a step that gets none (the first step of a workflow)."""

    def __repr__(self) -> str:
        return "NO_INPUT"

    def __reduce__(self) -> str:
        return "NO_INPUT"


NO_INPUT: Any = _NoInput()


@dataclass(eq=False)
class Graph:
    """A compiled workflow: its ``id``, a short ``description``, when it was submitted,
    at which ``priority`` its steps run, and per node (row ``i`` of each list): ``kind``
    (call, chain, group), ``parent`` (-1 for the top), ``position`` among the parent's
    children, ``path`` (the step's name), ``children``; for a call ``task`` (the
    registered name), ``args``, ``kwargs`` and ``task_id`` (None for a chain or group);
    ``shipped`` for tasks that travel by value."""

    id: str
    description: str
    submitted_at: datetime
    priority: int = 0
    kind: list[str] = field(default_factory=list)
    parent: list[int] = field(default_factory=list)
    position: list[int] = field(default_factory=list)
    path: list[str] = field(default_factory=list)
    children: list[tuple[int, ...]] = field(default_factory=list)
    task: list[str | None] = field(default_factory=list)
    args: list[tuple] = field(default_factory=list)
    kwargs: list[dict[str, Any]] = field(default_factory=list)
    task_id: list[str | None] = field(default_factory=list)
    #: Tasks whose function travels by value (defined in a notebook cell, say): name ->
    #: (digest of the function stored in Redis, cpu_bound, max_retries, retry_delay,
    #: timeout), so a worker that does not know the task can still submit its steps.
    shipped: dict[str, tuple[str, bool, int, float, float | None]] = field(default_factory=dict)
    _paths: dict[str, int] | None = field(default=None, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_paths"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _paths=None)

    def __len__(self) -> int:
        return len(self.kind)

    def index_of(self, path: str | None) -> int | None:
        """The node of the step named ``path``, or None."""
        paths = self._paths
        if paths is None:
            paths = self._paths = {p: i for i, p in enumerate(self.path)}
        return None if path is None else paths.get(path)

    def calls(self) -> list[int]:
        """The nodes that run a task, in the order written."""
        return [i for i, kind in enumerate(self.kind) if kind == CALL]

    def steps(self) -> dict[str, str]:
        """Step name -> task id, in the order written."""
        path, task_id = self.path, self.task_id
        return {path[i]: task_id[i] for i in self.calls()}  # type: ignore[misc]

    def expand(self, index: int, value: Any) -> tuple[list[tuple[int, Any]], list[int]]:
        """What starting node ``index`` with input ``value`` submits: ``(call, input)``
        pairs, and the empty groups it reaches (they finish at once, with ``[]``)."""
        kind, children = self.kind, self.children
        if kind[index] == GROUP and all(kind[c] == CALL for c in children[index]):
            members = children[index]  # the common case: a group of calls
            return ([(c, value) for c in members], []) if members else ([], [index])
        calls: list[tuple[int, Any]] = []
        empty: list[int] = []
        todo = [index]
        while todo:
            at = todo.pop()
            if kind[at] == CALL:
                calls.append((at, value))
            elif kind[at] == CHAIN:
                todo.append(children[at][0])
            elif not children[at]:
                empty.append(at)
            else:
                todo.extend(reversed(children[at]))
        return calls, empty

    def followers(self) -> dict[int, int]:
        """Each step of a chain but the last -> the step started when it is done."""
        return {
            before: after
            for i, kind in enumerate(self.kind)
            if kind == CHAIN
            for before, after in zip(self.children[i], self.children[i][1:], strict=False)
        }

    def submitted(self, done: set[int]) -> set[int]:
        """The calls that may have been submitted once the nodes ``done`` were done: the
        first ones, and those of each chain step whose step before is done."""
        started = [0] + [after for before, after in self.followers().items() if before in done]
        return {call for node in started for call, _ in self.expand(node, NO_INPUT)[0]}

    def record(self, status: TaskStatus, finished_at: datetime | None = None) -> TaskResult:
        """The workflow's own record (its row in the task table), in ``status``."""
        return TaskResult(
            self.id, status, WORKFLOW_TASK_NAME, None, None, self.submitted_at,
            self.submitted_at, finished_at, 0, (self.description,), {}, self.priority,
            workflow_id=self.id,
        )  # fmt: skip

    def step_record(self, index: int) -> TaskResult:
        """The PENDING record of step ``index`` made when the workflow is submitted (the
        step is submitted once the steps before it are done)."""
        return TaskResult(
            self.task_id[index], TaskStatus.PENDING, self.task[index], None, None,  # type: ignore[arg-type]
            self.submitted_at, None, None, 0, self.args[index], dict(self.kwargs[index]),
            self.priority, workflow_id=self.id, workflow_step=self.path[index],
        )  # fmt: skip


_INPUT = object()  # stands for the previous result when a step's arguments are checked


class _Compiler:
    """Turns a workflow of steps into the rows of a :class:`Graph`, checking every call."""

    def __init__(
        self, graph: Graph, resolve: Callable[[Callable[..., Any] | str], TaskSpec]
    ) -> None:
        self.graph = graph
        self.resolve = resolve
        self.specs: dict[Any, TaskSpec] = {}  # task (function or name) -> its spec

    def row(
        self,
        kind: str,
        parent: int,
        position: int,
        path: str,
        called: tuple[str, tuple, dict, str] | None = None,
    ) -> int:
        """Append a node; ``called`` is a call's (task name, args, kwargs, task id)."""
        task, args, kwargs, task_id = called or (None, (), _NO_KWARGS, None)
        g = self.graph
        g.kind.append(kind)
        g.parent.append(parent)
        g.position.append(position)
        g.path.append(path)
        g.children.append(())
        g.task.append(task)
        g.args.append(args)
        g.kwargs.append(kwargs)
        g.task_id.append(task_id)
        return len(g.kind) - 1

    def call(self, step: Call, parent: int, position: int, path: str, fed: bool) -> None:
        spec = self.specs.get(step.task)
        if spec is None:
            spec = self.specs[step.task] = self.resolve(step.task)
        args, kwargs = step.args, step.kwargs
        accepts = spec.accepts
        if accepts is not None:
            try:  # TaskSpec.check_arguments inline: a group may have many thousand steps
                accepts(*((_INPUT, *args) if fed else args), **kwargs)
            except TypeError:
                checked = (_INPUT, *args) if fed else args
                spec.check_arguments(checked, kwargs, f"step {path} of the workflow")
        kept = dict(kwargs) if kwargs else _NO_KWARGS
        self.row(CALL, parent, position, path, (spec.name, args, kept, new_task_id()))

    def calls(
        self, steps: tuple[Call, ...], parent: int, prefix: str, fed: bool
    ) -> tuple[int, ...]:
        """The rows of a group's members that are all calls (the common case, column by
        column); return their node numbers."""
        g, n, first = self.graph, len(steps), len(self.graph.kind)
        names = []
        for i, step in enumerate(steps):
            spec = self.specs.get(step.task)
            if spec is None:
                spec = self.specs[step.task] = self.resolve(step.task)
            accepts = spec.accepts
            if accepts is not None:
                args = (_INPUT, *step.args) if fed else step.args
                try:
                    accepts(*args, **step.kwargs)
                except TypeError:
                    spec.check_arguments(args, step.kwargs, f"step {prefix}{i} of the workflow")
            names.append(spec.name)
        g.kind += [CALL] * n
        g.parent += [parent] * n
        g.position += range(n)
        g.path += [f"{prefix}{i}" for i in range(n)]
        g.children += [()] * n
        g.task += names
        g.args += [step.args for step in steps]
        g.kwargs += [dict(step.kwargs) if step.kwargs else _NO_KWARGS for step in steps]
        g.task_id += [new_task_id() for _ in range(n)]
        return tuple(range(first, first + n))

    def add(self, step: Step, parent: int, position: int, path: str, fed: bool) -> int:
        if type(step) is Call:
            self.call(step, parent, position, path, fed)
            return len(self.graph.kind) - 1
        if isinstance(step, Chord):
            step = Chain((step.header, step.callback))
        kind = CHAIN if isinstance(step, Chain) else GROUP
        index = self.row(kind, parent, position, path)
        prefix = f"{path}." if path else ""
        steps = step.steps  # type: ignore[union-attr]
        if kind == GROUP and steps and all(type(child) is Call for child in steps):
            self.graph.children[index] = self.calls(steps, index, prefix, fed)  # type: ignore[arg-type]
            return index
        children = []
        for i, child in enumerate(step.steps):  # type: ignore[union-attr]
            fed_child = fed if kind == GROUP or i == 0 else True
            if type(child) is Call:  # the common case, without a frame of its own
                self.call(child, index, i, f"{prefix}{i}", fed_child)
                children.append(len(self.graph.kind) - 1)
            else:
                children.append(self.add(child, index, i, f"{prefix}{i}", fed_child))
        self.graph.children[index] = tuple(children)
        return index


def compile(
    workflow: Step,
    resolve: Callable[[Callable[..., Any] | str], TaskSpec],
    submitted_at: datetime,
    priority: int = 0,
) -> Graph:
    """Compile ``workflow``; ``resolve`` maps a step's task to its registered spec.

    Raises:
        TaskNotFoundError: a step's task is not registered.
        TypeError: a step's task does not take its arguments (a step fed by the one
            before it is checked with that result as its first argument); or
            ``workflow`` is not a step.
    """
    if not isinstance(workflow, Call | Chain | Group | Chord):
        raise TypeError(
            "app.run() takes a workflow: call(...), chain(...), group(...) or chord(...); "
            f"got {type(workflow).__name__}"
        )
    graph = Graph(new_task_id(), workflow.describe(), submitted_at, priority)
    _Compiler(graph, resolve).add(workflow, -1, 0, "0" if type(workflow) is Call else "", False)
    return graph
