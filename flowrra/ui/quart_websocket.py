"""WebSockets for Quart apps (0.1.8's ``flowrra.ui.quart_websocket``).

The blueprint of :func:`flowrra.ui.flask.create_blueprint`, registered on a Quart app,
already serves the dashboard's sockets (``<prefix>/ws`` and ``<prefix>/ws/table``).
:func:`setup_websocket` is 0.1.8's stand-alone events socket: every task event of every
app in the process (the global :data:`flowrra.events.event_bus`), as JSON arrays.

Usage::

    from quart import Quart
    from flowrra.ui.quart_websocket import setup_websocket

    app = Quart(__name__)
    setup_websocket(app)            # ws://host/flowrra/ws
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from flowrra.events import event_bus
from flowrra.ui.base.api import lower_headers, same_origin
from flowrra.ui.base.sockets import QuartSocket, forward_events

try:
    from quart import websocket

    QUART_AVAILABLE = True
except ImportError:  # pragma: no cover - depends on the environment
    websocket = None
    QUART_AVAILABLE = False

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from flowrra.web.server import Dashboard

__all__ = ["QUART_AVAILABLE", "add_dashboard_sockets", "setup_websocket", "websocket_endpoint"]

logger = logging.getLogger("flowrra.ui")

_MISSING = "Quart is required for WebSocket support. Install it with: pip install quart"


def _refused() -> tuple[str, int] | None:
    if same_origin(lower_headers(websocket.headers.items())):
        return None
    return "Cross-site WebSocket refused.", 403


async def websocket_endpoint() -> Any:
    """Serve the current Quart websocket: accept it and send the global bus's task
    events (JSON arrays, the newest event of each task, at most four frames a second)
    until the client goes away. A connection from another site is refused (403).

    Raises:
        ImportError: Quart is not installed.
    """
    if not QUART_AVAILABLE:
        raise ImportError(_MISSING)
    refused = _refused()
    if refused is not None:
        return refused
    socket = websocket._get_current_object()
    await socket.accept()
    await forward_events(event_bus, socket.send)  # Quart cancels it on disconnect
    return None


def setup_websocket(app: Any, path: str = "/flowrra/ws") -> None:
    """Register :func:`websocket_endpoint` on the Quart ``app`` at ``path``.

    Raises:
        ImportError: Quart is not installed.
    """
    if not QUART_AVAILABLE:
        raise ImportError(_MISSING)

    @app.websocket(path)
    async def flowrra_ws() -> Any:
        return await websocket_endpoint()

    logger.info("flowrra WebSocket endpoint registered at %s", path)


def add_dashboard_sockets(blueprint: Any, dashboard: Dashboard) -> None:
    """Serve the dashboard's sockets on a Quart ``blueprint``: ``/ws`` (task events) and
    ``/ws/table`` (the task table), refusing connections from other sites."""
    blueprint.add_websocket("/ws", "ws", _socket_view(dashboard.ws_events))
    blueprint.add_websocket("/ws/table", "ws_table", _socket_view(dashboard.ws_table))


def _socket_view(handler: Callable[[Any], Awaitable[None]]) -> Callable[[], Awaitable[Any]]:
    async def view() -> Any:
        refused = _refused()
        if refused is not None:
            return refused
        await handler(QuartSocket(websocket._get_current_object()))
        return None

    view.__name__ = handler.__name__
    return view
