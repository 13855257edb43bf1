"""Live updates for the adapters' WebSockets, built on :mod:`flowrra.web.live`.

:func:`forward_events` feeds 0.1.8's app-less sockets (Quart's ``setup_websocket``,
Django Channels' ``FlowrraConsumer``) from the global event bus. :class:`QuartSocket`
lets the dashboard's own socket handlers (:meth:`flowrra.web.server.Dashboard.ws_events`
and ``ws_table``) run over any object with Quart's websocket methods.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from flowrra.events import EventBus
from flowrra.web.live import IDLE_REFRESH, MAX_RATE, Changes

__all__ = ["QuartSocket", "forward_events"]


async def forward_events(bus: EventBus, send_text: Callable[[str], Awaitable[None]]) -> None:
    """Send the task events of ``bus`` with ``send_text``, as JSON arrays holding the
    newest event of each task since the last frame, at most MAX_RATE frames a second,
    until cancelled. Subscribes on entry and unsubscribes on the way out."""
    feed = Changes(bus)
    stream = feed.open_stream()
    try:
        seen = feed.version
        while True:
            await feed.wait(seen, IDLE_REFRESH)
            seen = feed.version
            events = stream.take()
            if events:
                await send_text(json.dumps(events))
            await asyncio.sleep(1 / MAX_RATE)
    finally:
        feed.close_stream(stream)
        await feed.close()


class QuartSocket:
    """The part of Starlette's ``WebSocket`` the dashboard's handlers use (``accept``,
    ``send_text``, ``receive``, ``receive_json``), over a Quart websocket.

    Usage::

        await dashboard.ws_table(QuartSocket(websocket._get_current_object()))
    """

    def __init__(self, socket: Any) -> None:
        """Wrap ``socket`` (Quart's ``websocket`` object, not its proxy)."""
        self._socket = socket

    async def accept(self) -> None:
        """Accept the connection."""
        await self._socket.accept()

    async def send_text(self, text: str) -> None:
        """Send one text frame."""
        await self._socket.send(text)

    async def receive(self) -> dict[str, Any]:
        """The next frame as an ASGI ``websocket.receive`` message. (Quart cancels the
        handler when the client goes away.)"""
        data = await self._socket.receive()
        key = "bytes" if isinstance(data, bytes) else "text"
        return {"type": "websocket.receive", key: data}

    async def receive_json(self) -> Any:
        """The next frame, parsed as JSON."""
        return json.loads(await self._socket.receive())
