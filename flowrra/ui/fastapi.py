"""The dashboard in a FastAPI app (0.1.8's ``flowrra.ui.fastapi``).

Usage::

    from fastapi import FastAPI
    from flowrra.ui.fastapi import create_router

    api = FastAPI()
    api.include_router(create_router(flowrra_app), prefix="/flowrra")

Pages at ``/flowrra/``, ``/flowrra/tasks``, ``/flowrra/schedules`` and
``/flowrra/workers``; 0.1.8's JSON API under ``/flowrra/api/``; live updates on the
WebSockets ``/flowrra/ws`` (task events) and ``/flowrra/ws/table`` (the task table).
Errors are ``{"detail": message}``: 400 for a bad request (0.1.8 answered 500), 404 for
an unknown task or schedule, 403 for a change requested from another site.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

try:
    from fastapi import APIRouter, Depends, HTTPException, Request, WebSocket
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from pydantic import BaseModel
except ImportError:  # pragma: no cover - depends on the environment
    raise ImportError(
        "FastAPI is required for the FastAPI adapter. Install it with: "
        "pip install -e '.[ui-fastapi]' in a clone of flowrra."
    ) from None

from flowrra.ui.base import BaseUIAdapter
from flowrra.ui.base.api import Call, Endpoint, Page, Reply, lower_headers, refusal, same_origin

if TYPE_CHECKING:
    from flowrra.app import Flowrra

__all__ = ["CreateScheduleRequest", "FastAPIAdapter", "create_router"]

_NOSNIFF = {"X-Content-Type-Options": "nosniff"}


class CreateScheduleRequest(BaseModel):
    """The body of ``POST /api/schedules/cron``."""

    task_name: str
    cron: str
    args: tuple = ()
    kwargs: dict | None = None
    enabled: bool = True
    description: str | None = None
    priority: int = 0


def _refuse_cross_site(request: Request) -> None:
    """A dependency of every state-changing route: 403 for a request from another site."""
    refused = refusal(request.method, lower_headers(request.headers.items()))
    if refused is not None:
        raise HTTPException(refused.status, refused.message)


def _full_path(request: Request) -> str:
    """The request's path with the ASGI ``root_path`` (which servers include in ``path``
    and some test clients do not)."""
    root, path = request.scope.get("root_path", ""), request.scope["path"]
    return path if path.startswith(root) else root + path


def _json(reply: Reply) -> Response:
    return JSONResponse(reply.payload, status_code=reply.status, headers=_NOSNIFF)


class FastAPIAdapter(BaseUIAdapter):
    """The dashboard of one flowrra app as a FastAPI ``APIRouter``.

    Usage::

        router = FastAPIAdapter(flowrra_app).get_routes()
        api.include_router(router, prefix="/flowrra")
    """

    error_key = "detail"
    cron_created_status = 200  # 0.1.8's FastAPI answer

    def get_routes(self) -> APIRouter:
        """The router: pages, JSON API, ``/static/{file_path}`` and two WebSockets. Its
        lifespan (run by the app that includes it) listens for records other processes
        store on Redis and closes the live feed at shutdown."""
        router = APIRouter(lifespan=self.dashboard.lifespan)
        router.add_api_websocket_route("/ws", self._socket(self.dashboard.ws_events), name="ws")
        router.add_api_websocket_route(
            "/ws/table", self._socket(self.dashboard.ws_table), name="ws_table"
        )
        for page in self.pages():
            router.add_api_route(
                page.path,
                self._page(page),
                methods=["GET"],
                name=page.name,
                response_class=HTMLResponse,
                include_in_schema=False,
            )
        guard = [Depends(_refuse_cross_site)]
        for endpoint in self.endpoints():
            unsafe = endpoint.method != "GET"
            view = self._cron(endpoint) if endpoint.name == "api_create_schedule" else None
            router.add_api_route(
                endpoint.path,
                view or self._api(endpoint),
                methods=[endpoint.method],
                name=endpoint.name,
                status_code=endpoint.status,
                dependencies=guard if unsafe else None,
            )
        router.add_api_route(
            "/static/{file_path:path}",
            self._static,
            methods=["GET"],
            name="static_files",
            include_in_schema=False,
        )
        return router

    def _page(self, page: Page) -> Callable[[Request], Awaitable[Response]]:
        async def show(request: Request) -> Response:
            return HTMLResponse(self.page_html(page, _full_path(request)))

        show.__name__ = page.name
        return show

    def _api(self, endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
        async def answer(request: Request) -> Response:
            call = Call(
                params=dict(request.path_params),
                query=dict(request.query_params),
                body=await request.body(),
                content_type=request.headers.get("content-type", ""),
            )
            return _json(await self.respond(endpoint, call))

        answer.__name__ = endpoint.name
        answer.__doc__ = endpoint.answer.__doc__
        return answer

    def _cron(self, endpoint: Endpoint) -> Callable[..., Awaitable[Response]]:
        async def api_create_schedule(body: CreateScheduleRequest) -> Response:
            """Create a cron schedule: ``{"schedule_id"}``."""
            payload = {**body.model_dump(), "args": list(body.args)}
            call = Call(body=JSONResponse(payload).body, content_type="application/json")
            return _json(await self.respond(endpoint, call))

        return api_create_schedule

    def _socket(self, handler: Callable[[Any], Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        async def socket(websocket: WebSocket) -> None:
            if not same_origin(lower_headers(websocket.headers.items())):
                await websocket.close(code=4403)
                return
            await handler(websocket)

        socket.__name__ = handler.__name__
        return socket

    async def _static(self, file_path: str) -> Response:
        """One of the dashboard's front-end files, by exact name; anything else is 404."""
        found = self.static_file(file_path)
        if found is None:
            return JSONResponse({"detail": "File not found"}, status_code=404)
        content, media_type = found
        return Response(content, media_type=media_type, headers=_NOSNIFF)


def create_router(flowrra_app: Flowrra) -> APIRouter:
    """The dashboard of ``flowrra_app`` as an ``APIRouter`` to include under a prefix
    (``api.include_router(create_router(app), prefix="/flowrra")``)."""
    return FastAPIAdapter(flowrra_app).get_routes()
