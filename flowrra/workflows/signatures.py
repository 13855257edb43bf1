"""How a workflow is written: steps made of plain registered task functions.

``@app.task()`` returns the function unchanged, so a step names the function and its
arguments with :func:`call` instead of calling it::

    flowrra.chain(flowrra.call(fetch, url), parse, store)        # store(parse(fetch(url)))
    flowrra.group(flowrra.call(fetch, u) for u in urls)          # [fetch(u) for u in urls]
    flowrra.chord((flowrra.call(fetch, u) for u in urls), merge)  # merge([fetch(u), ...])

A bare function (or a task's registered name) is a step with no arguments of its own.
In a chain, every step after the first gets the previous step's result as its first
argument (before its own); the members of a group all get the same input; a chord's
callback gets the list of the group's results, in the group's order. Chains, groups and
chords nest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = ["Call", "Chain", "Chord", "Group", "Step", "call", "chain", "chord", "group"]

_SHOWN = 4  # parts named in a description before "... N more"


def _task_label(task: Callable[..., Any] | str) -> str:
    return task if isinstance(task, str) else getattr(task, "__name__", repr(task))


def _listed(parts: list[str]) -> str:
    if len(parts) <= _SHOWN + 1:
        return ", ".join(parts)
    return ", ".join(parts[:_SHOWN]) + f", ... {len(parts) - _SHOWN} more"


class Call(NamedTuple):
    """One step: a registered task (its function or its name) and its own arguments.

    (A named tuple: a group of ten thousand steps is made in a few milliseconds.)

    Usage::

        flowrra.call(fetch, "https://example.org", timeout=5)
    """

    task: Callable[..., Any] | str
    args: tuple = ()
    kwargs: dict[str, Any] = {}  # noqa: RUF012 - never changed: call() makes a new one

    def describe(self) -> str:
        """The task's name, as the workflow's description shows it."""
        return _task_label(self.task)

    def __repr__(self) -> str:
        inner = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"call({', '.join([self.describe(), *inner])})"


@dataclass(frozen=True, slots=True, eq=False)
class Chain:
    """Steps run one after the other; each after the first gets the previous result as
    its first argument. The chain's result is its last step's."""

    steps: tuple[Step, ...]

    def describe(self) -> str:
        """``chain(fetch, parse, store)``."""
        return f"chain({_listed([s.describe() for s in self.steps])})"


@dataclass(frozen=True, slots=True, eq=False)
class Group:
    """Steps run in parallel; the group's result is the list of theirs, in order."""

    steps: tuple[Step, ...]

    def describe(self) -> str:
        """``group(fetch x100)`` when every member calls one task, else the members."""
        steps = self.steps
        if len(steps) > 1 and all(type(s) is Call for s in steps):
            task = steps[0].task  # type: ignore[union-attr]
            if all(s.task is task or s.task == task for s in steps):  # type: ignore[union-attr]
                return f"group({_task_label(task)} x{len(steps)})"
        names = [s.describe() for s in steps]
        if len(names) > 1 and len(set(names)) == 1:  # e.g. a chain per input
            return f"group({names[0]} x{len(names)})"
        return f"group({_listed(names)})"


@dataclass(frozen=True, slots=True, eq=False)
class Chord:
    """A group, then a callback that gets the list of the group's results."""

    header: Group
    callback: Step

    def describe(self) -> str:
        """``chord(group(fetch x10), merge)``."""
        return f"chord({self.header.describe()}, {self.callback.describe()})"


#: Anything a workflow is made of.
Step = Call | Chain | Group | Chord


_STEPS = (Call, Chain, Group, Chord)


def _step(item: Any, where: str) -> Step:
    """``item`` as a step: steps as they are, a function or a task name as ``call(item)``."""
    if type(item) is Call or isinstance(item, _STEPS):
        return item
    if isinstance(item, str) or callable(item):
        return Call(item)
    raise TypeError(
        f"{where} takes steps: call(task, *args), chain(...), group(...), chord(...), or a "
        f"registered task function; got {type(item).__name__}"
    )


def call(task: Callable[..., Any] | str, /, *args: Any, **kwargs: Any) -> Call:
    """A step that runs ``task`` (a registered function or its name) with ``args`` and
    ``kwargs``. In a chain, the previous step's result comes first: ``call(parse,
    "utf-8")`` after ``fetch`` runs ``parse(<fetch's result>, "utf-8")``."""
    if not (callable(task) or isinstance(task, str)):
        raise TypeError(f"call() takes a registered task function or name, got {task!r}")
    return Call(task, args, kwargs)


def chain(*steps: Any) -> Chain:
    """Steps run one after the other, each after the first getting the previous result
    as its first argument; the chain's result is the last step's.

    Raises:
        ValueError: no steps.
    """
    if not steps:
        raise ValueError("chain() needs at least one step")
    return Chain(tuple(_step(s, "chain()") for s in steps))


def _members(steps: tuple[Any, ...], where: str) -> tuple[Step, ...]:
    """``group(a, b)`` and ``group([a, b])`` (any iterable, a generator too) alike."""
    if len(steps) == 1 and not isinstance(steps[0], str) and not callable(steps[0]):
        only = steps[0]
        if not isinstance(only, _STEPS) and isinstance(only, Iterable):
            steps = tuple(only)
    return tuple([s if type(s) is Call else _step(s, where) for s in steps])


def group(*steps: Any) -> Group:
    """Steps run in parallel: ``group(a, b, c)`` or ``group(iterable_of_steps)``. The
    result is the list of their results, in the order given (an empty group's is ``[]``)."""
    return Group(_members(steps, "group()"))


def chord(header: Group | Iterable[Any], callback: Any) -> Chord:
    """A group (``header``: a :func:`group` or an iterable of steps), then ``callback``,
    which gets the list of the group's results as its first argument."""
    members = header if isinstance(header, Group) else Group(_members((header,), "chord()"))
    return Chord(members, _step(callback, "chord()"))
