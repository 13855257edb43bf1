"""The base of the ``flowrra.ui`` adapters (0.1.8's ``BaseUIAdapter``).

An adapter serves the dashboard of one flowrra app inside a web framework: its pages
(the shell of :mod:`flowrra.web`, filled by the dashboard's front-end), 0.1.8's JSON API
and the new endpoints the front-end calls. The routes are described once
(:meth:`BaseUIAdapter.pages`, :meth:`BaseUIAdapter.endpoints`); each framework's adapter
only translates them.

Every answer is computed on the app's home loop: async frameworks await
:meth:`BaseUIAdapter.respond`, sync ones (Flask, Django) call
:meth:`BaseUIAdapter.respond_blocking`, which blocks on the app's loop (or flowrra's
runtime loop when the app has none), never on a fresh loop per request.
"""

from __future__ import annotations

import asyncio
import mimetypes
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from flowrra import runtime
from flowrra.exceptions import FlowrraError
from flowrra.home_loop import home_loop_of, run_on_home_loop
from flowrra.ui.base.api import PAGES, ApiError, Call, Endpoint, Page, Reply, page_root
from flowrra.ui.base.formatter import Formatter
from flowrra.ui.base.schedule_service import ScheduleService
from flowrra.ui.base.ui_service import UIService
from flowrra.web.server import Dashboard, page_html

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from flowrra.app import Flowrra

__all__ = ["BaseUIAdapter"]

R = TypeVar("R")
_WEB = Path(__file__).resolve().parent.parent.parent / "web"


class BaseUIAdapter(ABC):
    """The dashboard of one flowrra app, for a web framework to route.

    Framework adapters (FastAPI, Flask and Quart, Django) implement :meth:`get_routes`.

    Usage::

        class MyAdapter(BaseUIAdapter):
            def get_routes(self) -> list:
                return [(e.method, e.path, e.name) for e in self.endpoints()]
    """

    #: The key of the message in a JSON error body (FastAPI's adapter uses ``"detail"``).
    error_key = "error"
    #: The status of ``POST /api/schedules/cron`` (0.1.8: 201, and 200 with FastAPI).
    cron_created_status = 201

    def __init__(self, flowrra_app: Flowrra) -> None:
        """Serve ``flowrra_app`` (started or not; its records are read from its backend)."""
        self.flowrra = flowrra_app
        self.dashboard = Dashboard(flowrra_app, None)
        self.data = self.dashboard.data
        self.manager = self.data.manager
        self.ui_service = UIService(self.manager)
        self.schedule_service = ScheduleService(self.manager)
        self.formatter = Formatter

    @abstractmethod
    def get_routes(self) -> Any:
        """The framework's routes: an ``APIRouter`` (FastAPI), a ``Blueprint`` (Flask and
        Quart) or a list of URL patterns (Django)."""
        raise NotImplementedError

    # ------------------------------------------------------------ file paths
    @property
    def templates_dir(self) -> Path:
        """0.1.8's template folder. The pages are no longer templates: this is the
        folder of the dashboard's front-end (``flowrra/web/static``)."""
        return _WEB / "static"

    @property
    def static_dir(self) -> Path:
        """The folder of the dashboard's front-end (``flowrra/web/static``). Only the
        files of :func:`flowrra.web.server.static_files` are served."""
        return _WEB / "static"

    # ---------------------------------------------------- 0.1.8's page data
    async def get_dashboard_data(self) -> dict[str, Any]:
        """See :meth:`UIService.get_dashboard_data`."""
        return await self.ui_service.get_dashboard_data()

    async def get_tasks_page_data(
        self, status: str | None = None, limit: int = 50
    ) -> dict[str, Any]:
        """See :meth:`UIService.get_tasks_page_data`."""
        return await self.ui_service.get_tasks_page_data(status, limit)

    async def get_schedules_page_data(self, enabled_only: bool = False) -> dict[str, Any]:
        """See :meth:`UIService.get_schedules_page_data`."""
        return await self.ui_service.get_schedules_page_data(enabled_only)

    # ----------------------------------------------------------- formatting
    @staticmethod
    def format_datetime(dt: Any) -> str:
        """See :meth:`Formatter.format_datetime`."""
        return Formatter.format_datetime(dt)

    @staticmethod
    def format_duration(seconds: float | None) -> str:
        """See :meth:`Formatter.format_duration`."""
        return Formatter.format_duration(seconds)

    @staticmethod
    def get_status_color(status: str) -> str:
        """See :meth:`Formatter.get_status_color`."""
        return Formatter.get_status_color(status)

    # ------------------------------------------------------- 0.1.8's API
    async def get_stats(self) -> dict[str, Any]:
        """The app, its executors, task counts per status and the scheduler."""
        return await self.data.stats()

    async def health_check(self) -> dict[str, Any]:
        """Health of the app, its executors and its scheduler."""
        return await self.data.health()

    async def list_tasks(self) -> list[dict[str, Any]]:
        """The registered tasks and their options."""
        return await self.data.registered_tasks()

    async def get_task(self, task_name: str) -> dict[str, Any] | None:
        """One registered task, or None."""
        return await self.data.registered_task(task_name)

    async def list_schedules(self, enabled_only: bool = False) -> list[dict[str, Any]]:
        """Every schedule, or the enabled ones (``[]`` without a scheduler)."""
        return await self.data.schedules(enabled_only)

    async def get_schedule(self, schedule_id: str) -> dict[str, Any] | None:
        """One schedule with its latest runs, or None."""
        return await self.data.schedule(schedule_id)

    async def create_schedule_cron(
        self,
        task_name: str,
        cron: str,
        args: tuple | list = (),
        kwargs: dict | None = None,
        enabled: bool = True,
        description: str | None = None,
        priority: int = 0,
    ) -> dict[str, str]:
        """Create a cron schedule: ``{"schedule_id": id}``."""
        return await self.schedule_service.create_schedule_cron(
            task_name, cron, args, kwargs, enabled, description, priority
        )

    async def enable_schedule(self, schedule_id: str) -> dict[str, str]:
        """Enable a schedule: ``{"status": "enabled", "schedule_id": id}``."""
        return await self.schedule_service.enable_schedule(schedule_id)

    async def disable_schedule(self, schedule_id: str) -> dict[str, str]:
        """Disable a schedule: ``{"status": "disabled", "schedule_id": id}``."""
        return await self.schedule_service.disable_schedule(schedule_id)

    async def delete_schedule(self, schedule_id: str) -> dict[str, Any]:
        """Delete a schedule: ``{"deleted": bool, "schedule_id": id}``."""
        return await self.schedule_service.delete_schedule(schedule_id)

    # ------------------------------------------------------------- routes
    def pages(self) -> tuple[Page, ...]:
        """The HTML pages: ``/``, ``/tasks``, ``/schedules`` and ``/workers``."""
        return PAGES

    def endpoints(self) -> list[Endpoint]:
        """Every JSON route: 0.1.8's API (its paths and route names) and the endpoints
        the dashboard's front-end calls. Fixed paths come before parameterised ones."""
        e = Endpoint
        return [
            e("GET", "/api/stats", "api_stats", self._stats),
            e("GET", "/api/health", "api_health", self._health),
            e("GET", "/api/tasks", "api_tasks_list", self._tasks_list),
            e("GET", "/api/tasks/{task_name}", "api_task_detail", self._task_detail),
            e("GET", "/api/schedules", "api_schedules_list", self._schedules_list),
            e("POST", "/api/schedules", "api_create", self._create, 201),
            e(
                "POST",
                "/api/schedules/cron",
                "api_create_schedule",
                self._create_cron,
                self.cron_created_status,
                "api_create_schedule_cron",
            ),
            e("GET", "/api/schedules/{schedule_id}", "api_schedule_detail", self._schedule),
            e(
                "DELETE",
                "/api/schedules/{schedule_id}",
                "api_delete_schedule",
                self._delete,
                flask_name="api_delete",
            ),
            e(
                "PUT",
                "/api/schedules/{schedule_id}/enable",
                "api_enable_schedule",
                self._enable,
                flask_name="api_enable",
            ),
            e(
                "PUT",
                "/api/schedules/{schedule_id}/disable",
                "api_disable_schedule",
                self._disable,
                flask_name="api_disable",
            ),
            e("GET", "/api/records", "api_records", self._records),
            e("GET", "/api/records/{task_id}", "api_record", self._record),
            e("POST", "/api/records/{task_id}/cancel", "api_cancel", self._cancel),
            e("GET", "/api/workers", "api_workers", self._workers),
            e("GET", "/api/overview", "api_overview", self._overview),
        ]

    def page_html(self, page: Page, path: str) -> str:
        """The HTML of ``page`` requested at the full ``path``: the dashboard's shell with
        the mount prefix as its root, so the front-end's links and calls stay under it."""
        return page_html(page.page, page_root(path, page.path))

    def static_file(self, name: str) -> tuple[bytes, str] | None:
        """The bytes and media type of the front-end file ``name``; None for any name
        that is not one of :func:`flowrra.web.server.static_files` (no paths at all)."""
        path = self.dashboard.files.get(name)
        if path is None:
            return None
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return path.read_bytes(), kind

    def problem(self, status: int, message: str) -> Reply:
        """An error answer in this framework's shape: ``{error_key: message}``."""
        return Reply(status, {self.error_key: message})

    # -------------------------------------------------------- answering
    async def respond(self, endpoint: Endpoint, call: Call) -> Reply:
        """Answer ``call`` on the app's home loop (for async frameworks)."""
        return await run_on_home_loop(self.flowrra, self._reply(endpoint, call))

    def respond_blocking(self, endpoint: Endpoint, call: Call) -> Reply:
        """Answer ``call`` from a thread without a running loop (Flask, Django)."""
        return self.run_blocking(self._reply, endpoint, call)

    def run_blocking(self, fn: Callable[..., Coroutine[Any, Any, R]], *args: Any) -> R:
        """Run ``fn(*args)`` on the app's home loop, or on flowrra's runtime loop while the
        app has none, and block until it returns: aiosqlite connections, Redis pools and
        the app's queues stay on the loop they belong to.

        Raises:
            RuntimeError: called on the home loop's own thread (it would wait for ever).
        """
        home = home_loop_of(self.flowrra)
        if home is None or not home.is_running():
            return runtime.run_sync(fn, *args)
        if home is asyncio.events._get_running_loop():
            raise RuntimeError(
                "This view blocks until the flowrra app's loop answers, and it runs on "
                "that loop's thread: serve the async adapter (FastAPI, Quart) instead."
            )
        return runtime.wait(asyncio.run_coroutine_threadsafe(fn(*args), home))

    async def _reply(self, endpoint: Endpoint, call: Call) -> Reply:
        try:
            return Reply(endpoint.status, await endpoint.answer(call))
        except ApiError as exc:
            return self.problem(exc.status, exc.message)
        except (FlowrraError, ValueError) as exc:
            return self.problem(400, str(exc))

    # ------------------------------------------------------------ answers
    async def _stats(self, call: Call) -> Any:
        return await self.data.stats()

    async def _health(self, call: Call) -> Any:
        return await self.data.health()

    async def _tasks_list(self, call: Call) -> Any:
        return await self.data.registered_tasks()

    async def _task_detail(self, call: Call) -> Any:
        return _found(await self.data.registered_task(call.params["task_name"]), "Task")

    async def _schedules_list(self, call: Call) -> Any:
        return await self.data.schedules(call.flag("enabled_only"))

    async def _schedule(self, call: Call) -> Any:
        return _found(await self.data.schedule(call.params["schedule_id"]), "Schedule")

    async def _create(self, call: Call) -> Any:
        return {"schedule_id": await self.data.create_schedule(call.json())}

    async def _create_cron(self, call: Call) -> Any:
        body = {**call.json(), "kind": "cron"}
        return {"schedule_id": await self.data.create_schedule(body)}

    async def _known_schedule(self, call: Call) -> str:
        schedule_id = call.params["schedule_id"]
        _found(await self.data.schedule(schedule_id, runs=0), "Schedule")
        return schedule_id

    async def _enable(self, call: Call) -> Any:
        return await self.enable_schedule(await self._known_schedule(call))

    async def _disable(self, call: Call) -> Any:
        return await self.disable_schedule(await self._known_schedule(call))

    async def _delete(self, call: Call) -> Any:
        return await self.delete_schedule(call.params["schedule_id"])

    async def _records(self, call: Call) -> Any:
        q = call.query
        try:
            offset, limit = int(q.get("offset") or 0), int(q.get("limit") or 100)
        except ValueError:
            raise ApiError(400, "offset and limit must be integers.") from None
        return await self.data.tasks_page(q.get("status"), q.get("name"), offset, limit)

    async def _record(self, call: Call) -> Any:
        return _found(await self.data.task(call.params["task_id"]), "Task")

    async def _cancel(self, call: Call) -> Any:
        return await self.data.cancel(call.params["task_id"])

    async def _workers(self, call: Call) -> Any:
        return await self.data.workers()

    async def _overview(self, call: Call) -> Any:
        return await self.data.overview()


def _found(value: R | None, what: str) -> R:
    if value is None:
        raise ApiError(404, f"{what} not found")
    return value
