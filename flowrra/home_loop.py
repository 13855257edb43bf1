"""Every public coroutine of an app runs on the app's home loop.

An app binds to the loop it is started on. When a caller awaits one of its coroutines
from another loop (a notebook cell while the app lives on flowrra's runtime thread, say),
the call is sent to the home loop with ``asyncio.run_coroutine_threadsafe`` and the
caller awaits the wrapped future. :func:`on_home_loop` does this for every public
coroutine, so no method does it by hand.

An app with no home yet, used inside a running IPython kernel, is sent to the runtime
loop of :mod:`flowrra.runtime` (a daemon thread with its own loop): ``await
app.start()`` in a cell starts the app there, and it keeps running while cells block and
between them. The kernel is recognised from ``sys.modules``; IPython is never imported
for it.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

__all__ = ["home_loop_of", "on_home_loop", "run_on_home_loop"]

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")

_running_loop = asyncio.events._get_running_loop  # None outside a loop; no exception cost


async def _on_other_loop(coro: Coroutine[Any, Any, R], home: asyncio.AbstractEventLoop) -> R:
    future = asyncio.run_coroutine_threadsafe(coro, home)
    return await asyncio.wrap_future(future)


def _kernel_loop() -> asyncio.AbstractEventLoop | None:
    """The runtime loop when running inside an IPython kernel, else None."""
    if "ipykernel" not in sys.modules:
        return None
    from flowrra import runtime

    return runtime.runtime_loop() if runtime.in_kernel() else None


def home_loop_of(owner: object) -> asyncio.AbstractEventLoop | None:
    """The loop ``owner``'s coroutines run on: its ``_home_loop``, else the runtime loop
    inside a kernel, else None (they run on the caller's loop)."""
    home = getattr(owner, "_home_loop", None)
    return home if home is not None else _kernel_loop()


def _routed(
    coro: Coroutine[Any, Any, R], home: asyncio.AbstractEventLoop | None
) -> Coroutine[Any, Any, R]:
    if home is None:
        home = _kernel_loop()
        if home is None:
            return coro
    if home is _running_loop() or not home.is_running():
        return coro
    return _on_other_loop(coro, home)


def run_on_home_loop(owner: object, coro: Coroutine[Any, Any, R]) -> Coroutine[Any, Any, R]:
    """Return an awaitable running ``coro`` on ``owner``'s home loop (see the module doc).

    For code outside the app that must touch its state in one step on its loop, such
    as the task table reading a snapshot.
    """
    return _routed(coro, getattr(owner, "_home_loop", None))


def on_home_loop(
    method: Callable[Concatenate[S, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, R]]:
    """Make ``method`` run on ``self._home_loop`` when awaited from another loop.

    On the home loop (the common case) the method's own coroutine is returned as is,
    so the check costs one attribute read and one comparison. An app without a home
    loop inside an IPython kernel runs on the runtime loop.
    """

    @functools.wraps(method)
    def wrapper(self: S, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
        home = self._home_loop  # type: ignore[attr-defined]
        coro = method(self, *args, **kwargs)
        if home is not None and (home is _running_loop() or not home.is_running()):
            return coro
        return _routed(coro, home)

    return wrapper
