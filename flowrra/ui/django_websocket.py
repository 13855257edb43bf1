"""WebSockets for Django with Channels (0.1.8's ``flowrra.ui.django_websocket``).

:func:`get_websocket_urls` gives the dashboard's sockets for one app (``flowrra/ws``: task
events; ``flowrra/ws/table``: the live task table), to route next to
:func:`flowrra.ui.django.get_urls`::

    from channels.routing import ProtocolTypeRouter, URLRouter
    from django.core.asgi import get_asgi_application
    from flowrra.ui.django_websocket import get_websocket_urls

    application = ProtocolTypeRouter({
        "http": get_asgi_application(),
        "websocket": URLRouter(get_websocket_urls(flowrra_app)),
    })

:data:`websocket_urlpatterns` is 0.1.8's list: :class:`FlowrraConsumer` at
``flowrra/ws``, sending every task event of the process (the global event bus). Sockets
opened from another site are refused. Needs ``pip install channels`` (and the
``dashboard`` extra, for :func:`get_websocket_urls`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from flowrra.events import event_bus
from flowrra.ui.base.api import lower_headers, same_origin
from flowrra.ui.base.sockets import forward_events
from flowrra.web.server import Dashboard

try:
    from channels.generic.websocket import AsyncWebsocketConsumer

    CHANNELS_AVAILABLE = True
except ImportError:  # pragma: no cover - depends on the environment
    CHANNELS_AVAILABLE = False

    class AsyncWebsocketConsumer:  # type: ignore[no-redef]
        """Stands in for Channels' consumer when Channels is not installed."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            """Accept anything (FlowrraConsumer raises ImportError first)."""


if TYPE_CHECKING:
    from flowrra.app import Flowrra

__all__ = ["CHANNELS_AVAILABLE", "FlowrraConsumer", "get_websocket_urls", "websocket_urlpatterns"]

_MISSING = (
    "Django-Channels is required for WebSocket support. Install it with: pip install channels"
)
AsgiApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def _scope_headers(scope: dict[str, Any]) -> dict[str, str]:
    return lower_headers(
        (name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]
    )


class FlowrraConsumer(AsyncWebsocketConsumer):
    """Sends every task event of the process (the global event bus) to one client: JSON
    arrays holding the newest event of each task, at most four frames a second.

    Usage::

        websocket_urlpatterns = [path("flowrra/ws", FlowrraConsumer.as_asgi())]
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """A consumer for one connection.

        Raises:
            ImportError: Channels is not installed.
        """
        if not CHANNELS_AVAILABLE:
            raise ImportError(_MISSING)
        super().__init__(*args, **kwargs)
        self.forward_task: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        """Accept a same-site connection (refuse others) and start forwarding events."""
        if not same_origin(_scope_headers(self.scope)):
            await self.close(code=4403)
            return
        await self.accept()
        self.forward_task = asyncio.ensure_future(forward_events(event_bus, self._send_text))

    async def _send_text(self, text: str) -> None:
        await self.send(text_data=text)

    async def disconnect(self, code: int) -> None:
        """Stop forwarding and unsubscribe."""
        task, self.forward_task = self.forward_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _socket(handler: Callable[[Any], Awaitable[None]]) -> AsgiApp:
    """An ASGI app running one of the dashboard's socket handlers over Starlette's
    ``WebSocket`` (Channels' URLRouter routes to plain ASGI apps)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        from starlette.websockets import WebSocket

        socket = WebSocket(scope, receive, send)
        if not same_origin(_scope_headers(scope)):
            await socket.close(code=4403)
            return
        await handler(socket)

    app.__name__ = handler.__name__
    return app


def get_websocket_urls(flowrra_app: Flowrra, prefix: str = "flowrra/") -> list[Any]:
    """The dashboard's sockets for ``flowrra_app`` as URL patterns for Channels'
    ``URLRouter``: ``<prefix>ws`` (task events, name ``flowrra_ws``) and
    ``<prefix>ws/table`` (the task table, ``flowrra_ws_table``). Use the prefix the
    HTTP patterns are included under."""
    from django.urls import path

    dashboard = Dashboard(flowrra_app, None)
    return [
        path(f"{prefix}ws", _socket(dashboard.ws_events), name="flowrra_ws"),
        path(f"{prefix}ws/table", _socket(dashboard.ws_table), name="flowrra_ws_table"),
    ]


if CHANNELS_AVAILABLE:
    from django.urls import path as _path

    websocket_urlpatterns = [_path("flowrra/ws", FlowrraConsumer.as_asgi())]
else:  # pragma: no cover - depends on the environment
    websocket_urlpatterns = []
