"""The task registry: task names mapped to functions and their run options."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flowrra.exceptions import ConfigError, DuplicateTaskError, InvalidTaskError, TaskNotFoundError
from flowrra.limits import Rate, TaskLimits, task_limits

__all__ = ["TaskRegistry", "TaskSpec", "task_name_of"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(slots=True)
class TaskSpec:
    """A registered task: its function and the defaults every submit starts from.

    ``accepts`` (made by :meth:`TaskRegistry.register`) takes exactly the arguments
    ``func`` takes and does nothing; None when ``func``'s signature cannot be read.
    ``limits``: its rate limit and concurrency cap (None: neither).
    """

    name: str
    func: Callable[..., Any]
    cpu_bound: bool = False
    max_retries: int = 3
    retry_delay: float = 1.0
    timeout: float | None = None
    accepts: Callable[..., None] | None = field(default=None, repr=False, compare=False)
    limits: TaskLimits | None = None

    def check_arguments(self, args: tuple, kwargs: dict, where: str = "") -> None:
        """Raise ``TypeError`` at once if ``func`` would refuse ``args`` and ``kwargs``.

        The message is Python's own (``add() missing 1 required positional argument:
        'y'``) with the task's name and signature; ``where`` (e.g. ``"item 3 of map()"``)
        says which of many submits it was. No check when the signature is unknown.
        """
        accepts = self.accepts
        if accepts is None:
            return
        try:
            accepts(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(_refusal(self, exc, where)) from None


def _refusal(spec: TaskSpec, exc: TypeError, where: str) -> str:
    within = f" ({where})" if where else ""
    return (
        f"Task '{spec.name}' cannot take these arguments{within}: {exc}. Nothing was "
        f"submitted; pass the arguments it takes: {_call_text(spec)}"
    )


def _call_text(spec: TaskSpec) -> str:
    """``add(x, y=2)``: the task's parameters, without annotations."""
    accepts = spec.accepts
    assert accepts is not None
    signature = inspect.signature(spec.func, follow_wrapped=False)
    params = [p.replace(annotation=p.empty) for p in signature.parameters.values()]
    plain = signature.replace(parameters=params, return_annotation=signature.empty)
    return f"{accepts.__qualname__}{plain}"


class _Default:
    """Stands for a parameter's default in the source of an argument check."""

    def __repr__(self) -> str:
        return "_default"


_DEFAULT = _Default()


def _argument_check(func: Callable[..., Any], name: str = "task") -> Callable[..., None] | None:
    """A function that takes exactly the arguments ``func`` takes and does nothing.

    Calling it costs a plain call and raises Python's own ``TypeError`` (named after
    ``func``, else ``name``) for arguments ``func`` would refuse; ``Signature.bind``
    costs a hundred times more. None when ``func``'s signature cannot be read (some
    builtins). Decorators are not looked through (``__wrapped__``): a wrapper that
    takes ``*args, **kwargs`` accepts anything, as calling it would.
    """
    try:
        signature = inspect.signature(func, follow_wrapped=False)
    except (TypeError, ValueError):
        return None
    params = [
        p.replace(annotation=p.empty, default=p.empty if p.default is p.empty else _DEFAULT)
        for p in signature.parameters.values()
    ]
    text = str(signature.replace(parameters=params, return_annotation=signature.empty))
    namespace: dict[str, Any] = {}
    try:
        exec(f"def accepts{text}:\n    return None", {"_default": None}, namespace)
    except SyntaxError:  # a hand-made __signature__ that no def can have
        return None
    accepts = namespace["accepts"]
    own = getattr(func, "__name__", None)
    accepts.__name__ = own if isinstance(own, str) else name
    qualname = getattr(func, "__qualname__", None)
    accepts.__qualname__ = qualname if isinstance(qualname, str) else accepts.__name__
    return accepts


def task_name_of(func: Callable[..., Any]) -> str:
    """The name a function is registered under (``task_name``), else its own name."""
    name = getattr(func, "task_name", None)
    if isinstance(name, str):
        return name
    return getattr(func, "__name__", None) or type(func).__name__


def _check_options(name: str, max_retries: int, retry_delay: float, timeout: float | None) -> None:
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise InvalidTaskError(
            f"Task '{name}': max_retries must be a whole number >= 0, got {max_retries!r}"
        )
    if isinstance(retry_delay, bool) or not isinstance(retry_delay, int | float) or retry_delay < 0:
        raise InvalidTaskError(
            f"Task '{name}': retry_delay must be a number of seconds >= 0, got {retry_delay!r}"
        )
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
    ):
        raise InvalidTaskError(
            f"Task '{name}': timeout must be a number of seconds > 0 or None, got {timeout!r}"
        )


class TaskRegistry:
    """Task names mapped to functions, shared by an app's executors.

    Usage::

        registry = TaskRegistry()

        @registry.task()
        async def fetch(url: str) -> bytes: ...

        registry.get_or_raise("fetch")

    ``strict_cpu_checks=True`` (the default, as in flowrra 0.1.8) accepts only
    module-level functions as CPU-bound tasks, the ones a process pool can import by
    name. The :class:`~flowrra.Flowrra` app uses ``strict_cpu_checks=False``: it ships
    other callables (closures, lambdas, functions defined in a notebook) by value.
    """

    def __init__(self, strict_cpu_checks: bool = True) -> None:
        """Create an empty registry; see the class docstring for ``strict_cpu_checks``."""
        self.strict_cpu_checks = strict_cpu_checks
        self._tasks: dict[str, Callable[..., Any]] = {}
        self._specs: dict[str, TaskSpec] = {}
        # id(function) -> the name it has in *this* registry: the same function may be
        # registered in several apps under different names (the registry keeps the
        # function alive, so its id stays its own)
        self._names: dict[int, str] = {}

    def task(
        self,
        name: str | None = None,
        cpu_bound: bool = False,
        max_retries: int = 3,
        retry_delay: float = 1.0,
        *,
        timeout: float | None = None,
        rate_limit: str | Rate | None = None,
        concurrency: int | None = None,
    ) -> Callable[[F], F]:
        """Decorator that registers a function as a task and returns it unchanged.

        Args:
            name: Task name (defaults to the function's name).
            cpu_bound: Run it in a worker process (a sync function) instead of on the
                event loop (an ``async def`` function).
            max_retries: Further attempts after a failure.
            retry_delay: Seconds before the first retry; doubles with each retry.
            timeout: Seconds an attempt may run before it is stopped (None: no limit).
            rate_limit: At most this many starts of the task, ``"N/s"``, ``"N/m"`` or
                ``"N/h"`` (for every process on a Redis broker; per app in memory).
            concurrency: At most this many of the task running at once (likewise).
        """

        def decorator(func: F) -> F:
            self.register(
                func,
                name=name,
                cpu_bound=cpu_bound,
                max_retries=max_retries,
                retry_delay=retry_delay,
                timeout=timeout,
                rate_limit=rate_limit,
                concurrency=concurrency,
            )
            return func

        return decorator

    def register(
        self,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        cpu_bound: bool = False,
        max_retries: int = 3,
        retry_delay: float = 1.0,
        timeout: float | None = None,
        rate_limit: str | Rate | None = None,
        concurrency: int | None = None,
    ) -> TaskSpec:
        """Register ``func`` (the non-decorator form of :meth:`task`) and return its spec."""
        if not callable(func):
            raise InvalidTaskError(f"A task must be callable, got {type(func).__name__}")
        task_name = name or getattr(func, "__name__", None) or type(func).__name__
        is_async = inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
            getattr(func, "__call__", None)  # noqa: B004 - async callable instances
        )
        if cpu_bound and is_async:
            raise InvalidTaskError(
                f"CPU-bound task '{task_name}' must be a sync function, not async. "
                "Drop cpu_bound=True to run it on the event loop as an IO task."
            )
        qualname = getattr(func, "__qualname__", task_name)
        if cpu_bound and self.strict_cpu_checks and qualname != getattr(func, "__name__", None):
            raise InvalidTaskError(
                f"CPU-bound task '{task_name}' must be module-level "
                "(this registry has strict_cpu_checks=True)"
            )
        if not cpu_bound and not is_async:
            raise InvalidTaskError(
                f"Task '{task_name}' must be an async function. Define it with 'async def', "
                "or register it with cpu_bound=True to run it in a worker process."
            )
        if task_name in self._tasks:
            raise DuplicateTaskError(
                f"Task '{task_name}' is already registered; pass name=... to register "
                "another function under a different name"
            )
        _check_options(task_name, max_retries, retry_delay, timeout)
        try:
            limits = task_limits(rate_limit, concurrency)
        except ConfigError as exc:
            raise InvalidTaskError(f"Task '{task_name}': {exc}") from None
        spec = TaskSpec(
            task_name,
            func,
            cpu_bound,
            max_retries,
            float(retry_delay),
            _float(timeout),
            _argument_check(func, task_name),
            limits,
        )
        for attr, value in (
            ("task_name", task_name),
            ("cpu_bound", cpu_bound),
            ("max_retries", max_retries),
            ("retry_delay", retry_delay),
            ("__flowrra_task__", True),
        ):
            try:
                setattr(func, attr, value)
            except (AttributeError, TypeError):  # e.g. a builtin or a slotted instance
                break
        self._tasks[task_name] = func
        self._specs[task_name] = spec
        self._names[id(func)] = task_name
        return spec

    def name_of(self, func: Callable[..., Any]) -> str:
        """The name ``func`` is registered under in this registry.

        A function registered in two apps under two names has a name in each; the
        ``task_name`` attribute stamped on it (0.1.8's) only tells the latest. For a
        function this registry does not know, its ``task_name`` or its own name.
        """
        name = self._names.get(id(func))
        if name is not None and self._tasks.get(name) is func:
            return name
        return task_name_of(func)

    def spec_for(self, task: Callable[..., Any] | str) -> TaskSpec:
        """The :class:`TaskSpec` of a registered function or name; TaskNotFoundError if
        ``task`` is not registered here (a function must be the registered one)."""
        name = task if isinstance(task, str) else self.name_of(task)
        spec = self._specs.get(name)
        if spec is None or (not isinstance(task, str) and spec.func is not task):
            raise TaskNotFoundError(name)
        return spec

    def get(self, name: str) -> Callable[..., Any] | None:
        """The function registered under ``name``, or None."""
        return self._tasks.get(name)

    def get_or_raise(self, name: str) -> Callable[..., Any]:
        """The function registered under ``name``; :class:`TaskNotFoundError` if none."""
        try:
            return self._tasks[name]
        except KeyError:
            raise TaskNotFoundError(name) from None

    def spec(self, name: str) -> TaskSpec:
        """The :class:`TaskSpec` registered under ``name``; TaskNotFoundError if none."""
        try:
            return self._specs[name]
        except KeyError:
            raise TaskNotFoundError(name) from None

    def specs(self) -> list[TaskSpec]:
        """Every registered :class:`TaskSpec`, in registration order."""
        return list(self._specs.values())

    def list_tasks(self) -> list[str]:
        """Registered task names, in registration order."""
        return list(self._tasks)

    def is_registered(self, name: str) -> bool:
        """True if a task is registered under ``name``."""
        return name in self._tasks

    def unregister(self, name: str) -> bool:
        """Remove the task ``name``; True if it was registered."""
        self._specs.pop(name, None)
        func = self._tasks.pop(name, None)
        if func is None:
            return False
        if self._names.get(id(func)) == name:
            del self._names[id(func)]
            for other, registered in self._tasks.items():  # another name of the same function
                if registered is func:
                    self._names[id(func)] = other
                    break
        return True

    def __len__(self) -> int:
        return len(self._tasks)

    def __contains__(self, name: object) -> bool:
        return name in self._tasks


def _float(value: float | None) -> float | None:
    return None if value is None else float(value)
