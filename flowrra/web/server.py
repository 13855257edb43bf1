"""The dashboard as an ASGI application (Starlette): pages, a JSON API, WebSockets.

:func:`create_app` builds it for one flowrra app. ``flowrra dashboard`` serves it with
uvicorn; a FastAPI, Starlette or Django ASGI project can mount it under a prefix::

    from starlette.routing import Mount
    routes = [Mount("/flowrra", app=create_app(flowrra_app))]
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from flowrra.exceptions import FlowrraError
from flowrra.web.data import DashboardData, jsonable
from flowrra.web.live import IDLE_REFRESH, MAX_RATE, Changes
from flowrra.web.security import COOKIE, Guard, resolve_token

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.websockets import WebSocket

    from flowrra.app import Flowrra

__all__ = ["PAGES", "Dashboard", "TableView", "create_app", "page_html", "static_files"]

logger = logging.getLogger("flowrra.web")

_STATIC = Path(__file__).resolve().parent / "static"
#: The dashboard's pages: path -> (page name, title).
PAGES = {
    "/": ("overview", "Overview"),
    "/tasks": ("tasks", "Tasks"),
    "/schedules": ("schedules", "Schedules"),
    "/workers": ("workers", "Workers"),
}
_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".svg": "image/svg+xml",
}


def static_files() -> dict[str, Path]:
    """The files ``/static/`` serves, by name: the dashboard's own folder and the task
    table's ES module and stylesheet (the same files the notebook widget uses). Nothing
    else is ever served."""
    from flowrra.assets import widget_file

    files = {p.name: p for p in _STATIC.iterdir() if p.is_file() and p.suffix in _TYPES}
    for name in ("task_table.js", "task_table.css"):
        files[name] = widget_file(name)
    return files


def page_html(page: str, root: str, token_needed: bool = False) -> str:
    """The HTML of the dashboard page ``page`` (a name of :data:`PAGES`) served under the
    path ``root`` (``""`` or a mount prefix such as ``"/flowrra"``): a shell the
    front-end fills; it holds no task data. The ``flowrra.ui`` adapters serve it."""
    titles = {name: title for name, title in PAGES.values()}
    return _shell(page, titles[page], root, token_needed)


def _shell(page: str, title: str, root: str, token_needed: bool) -> str:
    nav = "".join(
        f'<a href="{html.escape(root + path)}" class="{"active" if name == page else ""}">'
        f"{html.escape(label)}</a>"
        for path, (name, label) in PAGES.items()
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>flowrra · {html.escape(title)}</title>
<link rel="stylesheet" href="{html.escape(root)}/static/task_table.css">
<link rel="stylesheet" href="{html.escape(root)}/static/dashboard.css">
</head><body>
<header class="fd-top"><span class="fd-brand">flowrra</span><nav>{nav}</nav>
<span id="fd-conn" class="fd-conn">connecting</span></header>
<main id="fd-main" data-page="{html.escape(page)}" data-root="{html.escape(root)}"
 data-token="{"1" if token_needed else ""}"></main>
<script type="module" src="{html.escape(root)}/static/dashboard.js"></script>
</body></html>"""


_LOGIN = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>flowrra · log in</title><link rel="stylesheet" href="{root}/static/dashboard.css">
</head><body><main class="fd-login"><h1>flowrra dashboard</h1>
<form method="post" action="{root}/login"><label>Token
<input type="password" name="token" autofocus autocomplete="current-password"></label>
<button type="submit">Log in</button></form><p class="fd-error">{error}</p></main>
</body></html>"""


def create_app(
    app: Flowrra,
    *,
    token: str | None = None,
    manage_app: bool = False,
) -> Any:
    """The dashboard of ``app`` as an ASGI application (Starlette).

    Args:
        app: The flowrra app whose tasks, schedules and workers are shown. On Redis the
            dashboard sees the whole deployment; in memory, this process's tasks.
        token: Required on every request when set (else ``FLOWRRA_DASHBOARD_TOKEN``).
            Without one, only requests to a loopback host name are answered.
        manage_app: Start ``app`` when the server starts and stop it when it stops
            (``flowrra dashboard`` does; leave False when your project runs the app).
            On a Redis broker it starts without local workers.

    Raises:
        FlowrraError: Starlette is not installed (the message names the extra).
    """
    try:
        from starlette.applications import Starlette
    except ImportError:
        raise FlowrraError(
            "The dashboard needs Starlette and uvicorn: pip install -e '.[dashboard]' in a "
            "clone of flowrra."
        ) from None
    handlers = Dashboard(app, resolve_token(token), manage_app)
    starlette = Starlette(routes=handlers.routes(), lifespan=handlers.lifespan)
    starlette.state.flowrra = app
    starlette.state.dashboard = handlers
    return Guard(starlette, handlers.secret)


class Dashboard:
    """The handlers behind :func:`create_app`, for one app (also used by the
    ``flowrra.ui`` adapters of 0.1.8)."""

    def __init__(self, app: Flowrra, secret: str | None, manage_app: bool = False) -> None:
        """Serve ``app``; ``secret`` is the token (None: loopback only)."""
        self.app = app
        self.data = DashboardData(app)
        self.secret = secret
        self.manage_app = manage_app
        self.files = static_files()
        self._changes: Changes | None = None

    def changes(self) -> Changes:
        """The app's change feed (made on first use, on the server's loop)."""
        if self._changes is None:
            self._changes = Changes(self.app.events)
        return self._changes

    @contextlib.asynccontextmanager
    async def lifespan(self, _: Any) -> AsyncIterator[None]:
        """Start (and stop) the app when asked to, and listen for other processes'
        records."""
        if self.manage_app:
            await self.app.start(workers=not _on_redis(self.app))
        listen = getattr(self.app.results_backend, "listen", None)
        if listen is not None:
            await listen()
        try:
            yield
        finally:
            feed, self._changes = self._changes, None
            if feed is not None:
                await feed.close()
            if self.manage_app:
                await self.app.stop()

    def routes(self) -> list[Any]:
        """Starlette routes: pages, 0.1.8's API and route names, the new API, sockets."""
        from starlette.routing import Route, WebSocketRoute

        g = _answering
        pages = [
            Route(path, self._page(name, title), name=name) for path, (name, title) in PAGES.items()
        ]
        return [
            *pages,
            Route("/login", self.login_form, methods=["GET"], name="login_form"),
            Route("/login", self.login, methods=["POST"], name="login"),
            Route("/static/{name}", self.static, name="static_files"),
            Route("/api/stats", g(self.api_stats), name="api_stats"),
            Route("/api/health", g(self.api_health), name="api_health"),
            Route("/api/tasks", g(self.api_tasks_list), name="api_tasks_list"),
            Route("/api/tasks/{task_name}", g(self.api_task_detail), name="api_task_detail"),
            Route("/api/schedules", g(self.api_schedules_list), name="api_schedules_list"),
            Route("/api/schedules", g(self.api_create), methods=["POST"], name="api_create"),
            Route(
                "/api/schedules/cron",
                g(self.api_create_cron),
                methods=["POST"],
                name="api_create_schedule",
            ),
            Route(
                "/api/schedules/{schedule_id}",
                g(self.api_schedule_detail),
                name="api_schedule_detail",
            ),
            Route(
                "/api/schedules/{schedule_id}",
                g(self.api_delete_schedule),
                methods=["DELETE"],
                name="api_delete_schedule",
            ),
            Route(
                "/api/schedules/{schedule_id}/enable",
                g(self.api_enable_schedule),
                methods=["PUT", "POST"],
                name="api_enable_schedule",
            ),
            Route(
                "/api/schedules/{schedule_id}/disable",
                g(self.api_disable_schedule),
                methods=["PUT", "POST"],
                name="api_disable_schedule",
            ),
            Route("/api/records", g(self.api_records), name="api_records"),
            Route("/api/records/{task_id}", g(self.api_record), name="api_record"),
            Route(
                "/api/records/{task_id}/cancel",
                g(self.api_cancel),
                methods=["POST"],
                name="api_cancel",
            ),
            Route("/api/workers", g(self.api_workers), name="api_workers"),
            Route("/api/overview", g(self.api_overview), name="api_overview"),
            WebSocketRoute("/ws", self.ws_events, name="ws"),
            WebSocketRoute("/ws/table", self.ws_table, name="ws_table"),
        ]

    # ---------------------------------------------------------------- pages
    def _page(self, name: str, title: str) -> Any:
        async def show(request: Request) -> Response:
            from starlette.responses import HTMLResponse

            return HTMLResponse(_shell(name, title, _root(request), self.secret is not None))

        show.__name__ = f"page_{name}"
        return show

    async def login_form(self, request: Request) -> Response:
        """The login form (a token field)."""
        from starlette.responses import HTMLResponse

        return HTMLResponse(_LOGIN.format(root=html.escape(_root(request)), error=""))

    async def login(self, request: Request) -> Response:
        """Check the form's token; on success set the cookie and go to the overview."""
        from starlette.responses import HTMLResponse, RedirectResponse

        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        presented = (form.get("token") or [""])[0]
        if not Guard(_nothing, self.secret).token_ok(presented):
            body = _LOGIN.format(root=html.escape(_root(request)), error="Wrong token.")
            return HTMLResponse(body, status_code=401)
        response = RedirectResponse(f"{_root(request)}/", status_code=303)
        if self.secret is not None:
            response.set_cookie(
                COOKIE, presented, httponly=True, samesite="strict", path=_root(request) or "/"
            )
        return response

    async def static(self, request: Request) -> Response:
        """One of :func:`static_files`, by exact name; anything else is 404."""
        from starlette.responses import Response

        path = self.files.get(request.path_params["name"])
        if path is None:
            return _problem("File not found", 404)
        return Response(path.read_bytes(), media_type=_TYPES[path.suffix])

    # --------------------------------------------------------- 0.1.8's API
    async def api_stats(self, request: Request) -> Response:
        """The app, executors, task counts and scheduler."""
        return _ok(await self.data.stats())

    async def api_health(self, request: Request) -> Response:
        """Health of the app, executors and scheduler."""
        return _ok(await self.data.health())

    async def api_tasks_list(self, request: Request) -> Response:
        """The registered tasks."""
        return _ok(await self.data.registered_tasks())

    async def api_task_detail(self, request: Request) -> Response:
        """One registered task, or 404."""
        found = await self.data.registered_task(request.path_params["task_name"])
        return _ok(found) if found is not None else _problem("Task not found", 404)

    async def api_schedules_list(self, request: Request) -> Response:
        """Every schedule (``?enabled_only=true`` for the enabled ones)."""
        enabled_only = request.query_params.get("enabled_only", "false").lower() == "true"
        return _ok(await self.data.schedules(enabled_only))

    async def api_schedule_detail(self, request: Request) -> Response:
        """One schedule with its run history, or 404."""
        found = await self.data.schedule(request.path_params["schedule_id"])
        return _ok(found) if found is not None else _problem("Schedule not found", 404)

    async def api_create_cron(self, request: Request) -> Response:
        """0.1.8's ``POST /api/schedules/cron``: ``{"schedule_id"}``."""
        body = await _body(request)
        body["kind"] = "cron"
        return _ok({"schedule_id": await self.data.create_schedule(body)})

    async def api_create(self, request: Request) -> Response:
        """``POST /api/schedules`` with ``kind`` cron, interval or once: 201."""
        schedule_id = await self.data.create_schedule(await _body(request))
        return _ok({"schedule_id": schedule_id}, 201)

    async def _known(self, request: Request) -> str | None:
        schedule_id = request.path_params["schedule_id"]
        found = await self.data.schedule(schedule_id, runs=0)
        return schedule_id if found is not None else None

    async def api_enable_schedule(self, request: Request) -> Response:
        """Enable a schedule; 404 if unknown."""
        schedule_id = await self._known(request)
        if schedule_id is None:
            return _problem("Schedule not found", 404)
        await self.data.manager.enable_schedule(schedule_id)
        return _ok({"status": "enabled", "schedule_id": schedule_id})

    async def api_disable_schedule(self, request: Request) -> Response:
        """Disable a schedule; 404 if unknown."""
        schedule_id = await self._known(request)
        if schedule_id is None:
            return _problem("Schedule not found", 404)
        await self.data.manager.disable_schedule(schedule_id)
        return _ok({"status": "disabled", "schedule_id": schedule_id})

    async def api_delete_schedule(self, request: Request) -> Response:
        """Delete a schedule: ``{"deleted", "schedule_id"}``."""
        schedule_id = request.path_params["schedule_id"]
        deleted = await self.data.manager.delete_schedule(schedule_id)
        return _ok({"deleted": deleted, "schedule_id": schedule_id})

    # -------------------------------------------------------------- new API
    async def api_records(self, request: Request) -> Response:
        """A page of task records: ``?status=&name=&offset=&limit=``."""
        q = request.query_params
        try:
            offset, limit = int(q.get("offset", 0)), int(q.get("limit", 100))
        except ValueError:
            return _problem("offset and limit must be integers.", 400)
        return _ok(await self.data.tasks_page(q.get("status"), q.get("name"), offset, limit))

    async def api_record(self, request: Request) -> Response:
        """One task's details, or 404."""
        found = await self.data.task(request.path_params["task_id"])
        return _ok(found) if found is not None else _problem("Task not found", 404)

    async def api_cancel(self, request: Request) -> Response:
        """Cancel a task: ``{"task_id", "cancelled", "status"}``."""
        result = await self.data.cancel(request.path_params["task_id"])
        self.changes().poke()
        return _ok(result)

    async def api_workers(self, request: Request) -> Response:
        """The workers that report to the app's broker."""
        return _ok(await self.data.workers())

    async def api_overview(self, request: Request) -> Response:
        """Counts, throughput over time, queues, workers, recent failures."""
        return _ok(await self.data.overview())

    # ------------------------------------------------------------ websockets
    async def ws_events(self, socket: WebSocket) -> None:
        """Task events as JSON arrays (the newest event of each task since the last
        frame), at most MAX_RATE frames a second."""
        await socket.accept()
        feed = self.changes()
        stream = feed.open_stream()
        closed = asyncio.get_running_loop().create_task(_until_closed(socket))
        try:
            seen = feed.version
            while not closed.done():
                await feed.wait(seen, IDLE_REFRESH)
                seen = feed.version
                events = stream.take()
                if events:
                    await socket.send_text(json.dumps(events))
                await asyncio.sleep(1 / MAX_RATE)
        except Exception:  # the client went away
            pass
        finally:
            feed.close_stream(stream)
            closed.cancel()

    async def ws_table(self, socket: WebSocket) -> None:
        """The task table's state, in the shape of the notebook widget's traits, at most
        MAX_RATE times a second; the client sends filters, page, selection and cancels."""
        await socket.accept()
        feed = self.changes()
        view = TableView()
        wake = asyncio.Event()

        async def listen() -> None:
            while True:
                await view.on_message(await socket.receive_json(), self)
                wake.set()

        reader = asyncio.get_running_loop().create_task(listen())
        last: dict[str, Any] = {}
        try:
            while not reader.done():
                seen = feed.version
                state = await view.state(self.data)
                changed = {k: v for k, v in state.items() if last.get(k) != v}
                if changed:
                    await socket.send_text(json.dumps({"type": "state", "state": changed}))
                    last.update(changed)
                await asyncio.sleep(1 / MAX_RATE)
                await _first(feed.wait(seen, IDLE_REFRESH), wake.wait(), reader)
                wake.clear()
        except Exception:  # the client went away
            pass
        finally:
            reader.cancel()
            view.close()
            with contextlib.suppress(BaseException):
                await reader


class TableView:
    """What one dashboard client's task table shows: filters, page and selection."""

    def __init__(self, limit: int = 100) -> None:
        """Everything, first page, nothing selected."""
        self.status_filter = ""
        self.name_filter = ""
        self.offset = 0
        self.limit = limit
        self.selected: str | None = None
        self._cancels: set[asyncio.Task[None]] = set()

    async def on_message(self, message: Any, dashboard: Dashboard) -> None:
        """Apply a client message: ``{"type": "set", "key", "value"}`` for a filter,
        the page offset or clearing the detail; ``{"type": "select"|"cancel",
        "task_id"}``. Anything else is ignored."""
        if not isinstance(message, dict):
            return
        kind, task_id = message.get("type"), message.get("task_id")
        if kind == "set":
            self._set(message.get("key"), message.get("value"))
        elif kind == "select" and isinstance(task_id, str):
            self.selected = task_id
        elif kind == "cancel" and isinstance(task_id, str):
            # in the background: a cancel waits for the process that runs the task (for
            # ever if it died), and this client's next messages must not wait behind it
            job = asyncio.get_running_loop().create_task(self._cancel(task_id, dashboard))
            self._cancels.add(job)
            job.add_done_callback(self._cancels.discard)

    async def _cancel(self, task_id: str, dashboard: Dashboard) -> None:
        with contextlib.suppress(FlowrraError):
            await dashboard.data.cancel(task_id)
        dashboard.changes().poke()

    def close(self) -> None:
        """Stop waiting for this client's cancels (the cancel requests were sent)."""
        for job in tuple(self._cancels):
            job.cancel()

    def _set(self, key: Any, value: Any) -> None:
        if key in ("status_filter", "name_filter") and isinstance(value, str):
            setattr(self, key, value)
            self.offset = 0
        elif key == "offset" and isinstance(value, int) and value >= 0:
            self.offset = value
        elif key == "detail" and not value:
            self.selected = None

    async def state(self, data: DashboardData) -> dict[str, Any]:
        """The table's state now, keyed like the notebook widget's traits."""
        try:
            page = await data.tasks_page(
                self.status_filter or None, self.name_filter or None, self.offset, self.limit
            )
        except FlowrraError as exc:
            return {"error": str(exc)}
        detail = (await data.task(self.selected) or {}) if self.selected else {}
        return {
            **{k: page[k] for k in ("counts", "rows", "total", "matching", "offset", "limit")},
            **{k: page[k] for k in ("task_names", "statuses", "colors")},
            "detail": detail,
            "max_rows": self.limit,
            "mode": "events",
            "app_state": "running" if data.app.is_running else "stopped",
            "status_filter": self.status_filter,
            "name_filter": self.name_filter,
        }


def _answering(handler: Any) -> Any:
    """Wrap an API handler: a FlowrraError or ValueError becomes 400 with its message."""

    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except (FlowrraError, ValueError) as exc:
            return _problem(str(exc), 400)

    run.__name__ = handler.__name__
    run.__doc__ = handler.__doc__
    return run


def _root(request: Request | WebSocket) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _ok(value: Any, status: int = 200) -> Response:
    from starlette.responses import JSONResponse

    return JSONResponse(jsonable(value), status_code=status)


def _problem(message: str, status: int) -> Response:
    from starlette.responses import JSONResponse

    return JSONResponse({"detail": message}, status_code=status)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        raise FlowrraError("A JSON body is needed.")
    try:
        body = json.loads(raw)
    except ValueError:
        raise FlowrraError("The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise FlowrraError("The body must be a JSON object.")
    return body


async def _nothing(scope: Any, receive: Any, send: Any) -> None:
    return None


async def _first(*waits: Any) -> None:
    jobs = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(jobs, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait, job in zip(waits, jobs, strict=True):
            if job is not wait:  # made here (not a task passed in): stop it
                job.cancel()


def _on_redis(app: Flowrra) -> bool:
    return hasattr(app.io_executor.broker, "queue_key")


async def _until_closed(socket: WebSocket) -> None:
    with contextlib.suppress(Exception):
        while True:
            message = await socket.receive()
            if message["type"] == "websocket.disconnect":
                return
