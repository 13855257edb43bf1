"""Every public coroutine of an app runs on the app's home loop.

An app binds to the loop it is started on. When a caller awaits one of its coroutines
from another loop (a notebook cell while the app lives on flowrra's runtime thread, say),
the call is sent to the home loop with ``asyncio.run_coroutine_threadsafe`` and the
caller awaits the wrapped future. :func:`on_home_loop` does this for every public
coroutine, so no method does it by hand.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

__all__ = ["on_home_loop"]

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")

_running_loop = asyncio.events._get_running_loop  # None outside a loop; no exception cost


async def _on_other_loop(coro: Coroutine[Any, Any, R], home: asyncio.AbstractEventLoop) -> R:
    future = asyncio.run_coroutine_threadsafe(coro, home)
    return await asyncio.wrap_future(future)


def on_home_loop(
    method: Callable[Concatenate[S, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, R]]:
    """Make ``method`` run on ``self._home_loop`` when awaited from another loop.

    On the home loop (the common case) the method's own coroutine is returned as is,
    so the check costs one attribute read and one comparison.
    """

    @functools.wraps(method)
    def wrapper(self: S, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
        home = self._home_loop  # type: ignore[attr-defined]
        coro = method(self, *args, **kwargs)
        if home is None or home is _running_loop() or not home.is_running():
            return coro
        return _on_other_loop(coro, home)

    return wrapper
