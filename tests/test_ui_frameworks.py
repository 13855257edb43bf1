"""flowrra.ui, framework by framework: 0.1.8's names (modules, route names, endpoint
names, URL names), the WebSockets, Flask versus Quart, Django's routing and CSRF, the
loop the sync views run on, and the framework-free base (Formatter, UIService,
ScheduleService, BaseUIAdapter)."""

from __future__ import annotations

import asyncio
import inspect
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import flowrra.ui
from flowrra import Flowrra
from flowrra.management import FlowrraManager
from flowrra.runtime import run_sync, runtime_loop
from flowrra.ui import BaseUIAdapter, Formatter, ScheduleService, UIService
from flowrra.ui.base.api import Call, Endpoint, page_root

from .ui_support import (
    SCRIPT,
    django_web,
    fastapi_web,
    flask_web,
    make_app,
    quart_web,
    run_task,
    stop_app,
)


@pytest.fixture
def flowrra_app(tmp_path: Path) -> Iterator[Flowrra]:
    app = make_app(tmp_path)
    yield app
    stop_app(app)


async def _running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


# --------------------------------------------------------------------- the base
def test_exports_and_0_1_8_module_paths() -> None:
    assert flowrra.ui.__all__ == ["BaseUIAdapter", "Formatter", "ScheduleService", "UIService"]
    from flowrra.ui import base, django, django_websocket, fastapi, flask, quart_websocket

    assert base.BaseUIAdapter is BaseUIAdapter
    from flowrra.ui.base.adapter import BaseUIAdapter as FromAdapter
    from flowrra.ui.base.formatter import Formatter as FromFormatter
    from flowrra.ui.base.schedule_service import ScheduleService as FromSchedules
    from flowrra.ui.base.ui_service import UIService as FromService

    assert (FromAdapter, FromFormatter, FromSchedules, FromService) == (
        BaseUIAdapter,
        Formatter,
        ScheduleService,
        UIService,
    )
    assert callable(fastapi.create_router) and issubclass(fastapi.FastAPIAdapter, BaseUIAdapter)
    assert callable(flask.create_blueprint) and issubclass(flask.FlaskAdapter, BaseUIAdapter)
    assert callable(django.get_urls) and issubclass(django.DjangoAdapter, BaseUIAdapter)
    assert flask.USING_QUART is True and quart_websocket.QUART_AVAILABLE is True
    assert callable(quart_websocket.setup_websocket)
    assert callable(quart_websocket.websocket_endpoint)
    assert django_websocket.CHANNELS_AVAILABLE is True
    assert len(django_websocket.websocket_urlpatterns) == 1
    assert set(fastapi.CreateScheduleRequest.model_fields) == {
        "task_name",
        "cron",
        "args",
        "kwargs",
        "enabled",
        "description",
        "priority",
    }


def test_import_flowrra_ui_imports_no_web_framework() -> None:
    code = (
        "import sys, flowrra.ui, flowrra.ui.base;"
        "bad = [m for m in ('starlette', 'fastapi', 'flask', 'quart', 'django', 'jinja2')"
        " if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_formatter() -> None:
    from datetime import datetime

    assert Formatter.format_datetime(None) == "Never"
    assert Formatter.format_datetime("yesterday") == "yesterday"
    assert Formatter.format_datetime(datetime(2026, 3, 1, 9, 30)) == "2026-03-01 09:30:00"
    assert Formatter.format_datetime(5) == "5"
    assert Formatter.format_duration(45.5) == "45.5s"
    assert Formatter.format_duration(150) == "2.5m"
    assert Formatter.format_duration(7200) == "2.0h"
    assert Formatter.format_duration(None) == "-"
    assert Formatter.get_status_color("FAILED") == "red"
    assert Formatter.get_status_color("whatever") == "gray"


async def test_ui_service_and_schedule_service(flowrra_app: Flowrra) -> None:
    manager = FlowrraManager(flowrra_app)
    ui, schedules = UIService(manager), ScheduleService(manager)
    await flowrra_app.submit("boom")
    failed = (await flowrra_app.list_results())[0].task_id
    await flowrra_app.wait_for_result(failed, 10)
    made = await schedules.create_schedule_cron("echo", "0 9 * * *", (1,), None, True, "daily")
    schedule_id = made["schedule_id"]

    dashboard = await ui.get_dashboard_data()
    assert set(dashboard) == {"stats", "recent_failed_tasks", "schedules", "total_schedules"}
    assert dashboard["recent_failed_tasks"][0]["task_id"] == failed
    assert dashboard["total_schedules"] == 1 and dashboard["schedules"][0]["id"] == schedule_id

    page = await ui.get_tasks_page_data()
    assert set(page) == {"registered_tasks", "tasks", "status_filter"}
    assert [t["task_id"] for t in page["tasks"]] == [failed] and page["status_filter"] is None
    assert (await ui.get_tasks_page_data("retrying"))["tasks"] == []  # 0.1.8: ValueError
    with pytest.raises(ValueError, match="Invalid task status"):
        await ui.get_tasks_page_data("bogus")

    page = await ui.get_schedules_page_data(enabled_only=True)
    assert page["enabled_only"] is True and page["scheduler_stats"]["total_schedules"] == 1

    assert await schedules.disable_schedule(schedule_id) == {
        "status": "disabled",
        "schedule_id": schedule_id,
    }
    assert await schedules.enable_schedule(schedule_id) == {
        "status": "enabled",
        "schedule_id": schedule_id,
    }
    assert (await schedules.get_schedule(schedule_id))["id"] == schedule_id
    assert len(await schedules.list_schedules()) == 1
    assert await schedules.delete_schedule(schedule_id) == {
        "deleted": True,
        "schedule_id": schedule_id,
    }


def test_base_adapter_is_abstract_and_keeps_0_1_8_attributes(flowrra_app: Flowrra) -> None:
    with pytest.raises(TypeError):
        BaseUIAdapter(flowrra_app)  # type: ignore[abstract]

    class Listing(BaseUIAdapter):
        def get_routes(self) -> list[tuple[str, str]]:
            return [(e.method, e.path) for e in self.endpoints()]

    adapter = Listing(flowrra_app)
    assert adapter.flowrra is flowrra_app and adapter.formatter is Formatter
    assert isinstance(adapter.manager, FlowrraManager)
    assert isinstance(adapter.ui_service, UIService)
    assert isinstance(adapter.schedule_service, ScheduleService)
    assert (adapter.static_dir / "dashboard.js").is_file()
    assert ("DELETE", "/api/schedules/{schedule_id}") in adapter.get_routes()
    assert adapter.format_duration(150) == "2.5m" and adapter.get_status_color("success")
    assert run_sync(adapter.get_task, "echo")["name"] == "echo"
    assert run_sync(adapter.list_schedules) == []


def test_route_descriptions() -> None:
    async def nothing(call: Call) -> None:
        return None

    endpoint = Endpoint(
        "PUT", "/api/schedules/{schedule_id}/enable", "api_enable_schedule", nothing
    )
    assert endpoint.params == ["schedule_id"]
    assert endpoint.flask_rule() == "/api/schedules/<schedule_id>/enable"
    assert endpoint.django_route() == "api/schedules/<str:schedule_id>/enable/"
    assert page_root("/flowrra/tasks", "/tasks") == "/flowrra"
    assert page_root("/flowrra/tasks/", "/tasks") == "/flowrra"
    assert page_root("/flowrra/", "/") == "/flowrra"
    assert page_root("/", "/") == ""
    assert page_root("/tasks", "/tasks") == ""
    assert page_root("/a/b/workers", "/workers") == "/a/b"


# ---------------------------------------------------------- loops (0.1.8 bug 42)
def test_sync_views_run_on_the_apps_home_loop(flowrra_app: Flowrra) -> None:
    from flowrra.ui.flask import FlaskAdapter

    adapter = FlaskAdapter(flowrra_app)
    home = flowrra_app._home_loop
    assert home is runtime_loop()
    assert adapter.run_blocking(_running_loop) is home
    assert adapter.run_blocking(_running_loop) is home  # the same loop, every request

    async def from_the_home_loop() -> None:
        adapter.run_blocking(_running_loop)

    with pytest.raises(RuntimeError, match="async adapter"):
        run_sync(from_the_home_loop)


def test_sync_views_of_an_app_not_started_use_the_runtime_loop(tmp_path: Path) -> None:
    from flowrra.ui.flask import FlaskAdapter

    app = Flowrra()
    app.create_scheduler(f"sqlite:///{tmp_path / 's.db'}")
    adapter = FlaskAdapter(app)
    assert adapter.run_blocking(_running_loop) is runtime_loop()
    web = flask_web(app)
    assert web.get("/api/stats").json()["app"] == {"running": False}
    assert web.get("/api/schedules").json() == []  # the SQLite connection opens on that loop
    assert web.get("/api/schedules").json() == []
    run_sync(app.scheduler.backend.close)


# ------------------------------------------------------------------------ FastAPI
def test_fastapi_route_names(flowrra_app: Flowrra) -> None:
    web = fastapi_web(flowrra_app)
    try:
        api = web.extra["api"]
        names = {
            "dashboard": ({}, "/flowrra/"),
            "tasks": ({}, "/flowrra/tasks"),
            "schedules": ({}, "/flowrra/schedules"),
            "workers": ({}, "/flowrra/workers"),
            "api_stats": ({}, "/flowrra/api/stats"),
            "api_health": ({}, "/flowrra/api/health"),
            "api_tasks_list": ({}, "/flowrra/api/tasks"),
            "api_task_detail": ({"task_name": "t"}, "/flowrra/api/tasks/t"),
            "api_schedules_list": ({}, "/flowrra/api/schedules"),
            "api_schedule_detail": ({"schedule_id": "s"}, "/flowrra/api/schedules/s"),
            "api_create_schedule": ({}, "/flowrra/api/schedules/cron"),
            "api_enable_schedule": ({"schedule_id": "s"}, "/flowrra/api/schedules/s/enable"),
            "api_disable_schedule": ({"schedule_id": "s"}, "/flowrra/api/schedules/s/disable"),
            "api_delete_schedule": ({"schedule_id": "s"}, "/flowrra/api/schedules/s"),
            "static_files": ({"file_path": "app.js"}, "/flowrra/static/app.js"),
            "api_records": ({}, "/flowrra/api/records"),
            "api_cancel": ({"task_id": "x"}, "/flowrra/api/records/x/cancel"),
            "ws": ({}, "/flowrra/ws"),
            "ws_table": ({}, "/flowrra/ws/table"),
        }
        for name, (params, path) in names.items():
            assert api.url_path_for(name, **params) == path, name
    finally:
        web.close()


def test_fastapi_under_another_prefix_and_a_root_path(flowrra_app: Flowrra) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from flowrra.ui.fastapi import create_router

    api = FastAPI()
    api.include_router(create_router(flowrra_app), prefix="/ops/queue")
    with TestClient(api, root_path="/proxy") as client:
        r = client.get("/ops/queue/schedules")
        assert r.status_code == 200
        assert 'data-root="/proxy/ops/queue"' in r.text
        assert 'href="/proxy/ops/queue/workers"' in r.text


def test_fastapi_websockets(flowrra_app: Flowrra) -> None:
    from starlette.websockets import WebSocketDisconnect

    web = fastapi_web(flowrra_app)
    client = web.extra["client"]
    try:
        with client.websocket_connect("/flowrra/ws/table") as table:
            first = table.receive_json()
            assert first["type"] == "state" and first["state"]["rows"] == []
            task_id = run_task(flowrra_app, "echo", SCRIPT)
            state = table.receive_json()["state"]
            while not state.get("rows"):
                state = table.receive_json()["state"]
            assert state["rows"][0]["task_id"] == task_id
            table.send_json({"type": "select", "task_id": task_id})
            detail = table.receive_json()["state"]["detail"]
            assert detail["args"] == [SCRIPT]

        with client.websocket_connect("/flowrra/ws") as events:
            client.get("/flowrra/api/health")  # a round trip on the server's loop: subscribed
            task_id = run_task(flowrra_app, "echo", 2)
            seen: list[dict[str, Any]] = []
            while not any(e["type"] == "task.succeeded" for e in seen):
                seen += json.loads(events.receive_text())
            assert {e["task_id"] for e in seen} == {task_id}

        for path in ("/flowrra/ws", "/flowrra/ws/table"):
            with pytest.raises(WebSocketDisconnect) as refused:  # noqa: SIM117
                with client.websocket_connect(path, headers={"origin": "http://evil.example"}):
                    pass
            assert refused.value.code == 4403
    finally:
        web.close()


# ------------------------------------------------------------------ Flask, Quart
def test_flask_endpoint_names_and_sync_views(flowrra_app: Flowrra) -> None:
    from flask import url_for

    web = flask_web(flowrra_app).extra["app"]
    endpoints = {
        "dashboard": "/flowrra/",
        "tasks_page": "/flowrra/tasks",
        "schedules_page": "/flowrra/schedules",
        "workers_page": "/flowrra/workers",
        "api_stats": "/flowrra/api/stats",
        "api_health": "/flowrra/api/health",
        "api_tasks_list": "/flowrra/api/tasks",
        "api_schedules_list": "/flowrra/api/schedules",
        "api_create_schedule_cron": "/flowrra/api/schedules/cron",
        "api_records": "/flowrra/api/records",
        "api_overview": "/flowrra/api/overview",
    }
    with web.test_request_context():
        for name, path in endpoints.items():
            assert url_for(f"flowrra.{name}") == path
        for name in ("api_schedule_detail", "api_delete"):
            assert url_for(f"flowrra.{name}", schedule_id="s") == "/flowrra/api/schedules/s"
        assert url_for("flowrra.api_enable", schedule_id="s") == "/flowrra/api/schedules/s/enable"
        assert url_for("flowrra.api_disable", schedule_id="s").endswith("/s/disable")
        assert url_for("flowrra.api_task_detail", task_name="t") == "/flowrra/api/tasks/t"
        assert url_for("flowrra.static", filename="dashboard.js") == "/flowrra/static/dashboard.js"
    # Quart is installed, yet a Flask app gets plain views (0.1.8 bug 45) and no sockets
    flowrra_views = [f for n, f in web.view_functions.items() if n.startswith("flowrra.")]
    assert len(flowrra_views) == 21
    assert not any(inspect.iscoroutinefunction(f) for f in flowrra_views)
    assert not any("/ws" in rule.rule for rule in web.url_map.iter_rules())


def test_flask_blueprint_can_be_renamed(flowrra_app: Flowrra) -> None:
    from flask import Flask, url_for

    from flowrra.ui.flask import create_blueprint

    web = Flask("renamed")
    web.register_blueprint(create_blueprint(flowrra_app), url_prefix="/ops", name="ops")
    with web.test_request_context():
        assert url_for("ops.dashboard") == "/ops/"
    page = web.test_client().get("/ops/tasks")
    assert page.status_code == 200 and 'data-root="/ops"' in page.get_data(as_text=True)


def test_quart_app_gets_async_views_and_sockets(flowrra_app: Flowrra) -> None:
    web = quart_web(flowrra_app)
    try:
        app = web.extra["app"]
        views = [f for n, f in app.view_functions.items() if n.startswith("flowrra.")]
        assert views and all(inspect.iscoroutinefunction(f) for f in views)
        rules = {r.rule for r in app.url_map.iter_rules() if r.websocket}
        assert rules == {"/flowrra/ws", "/flowrra/ws/table"}
    finally:
        web.close()


async def test_quart_websockets(flowrra_app: Flowrra) -> None:
    from quart import Quart
    from quart.testing import WebsocketResponseError

    from flowrra.ui.flask import create_blueprint

    app = Quart("quart_sockets")
    app.register_blueprint(create_blueprint(flowrra_app), url_prefix="/flowrra")
    async with app.test_app() as test_app:  # runs the blueprint's before/after serving
        client = test_app.test_client()
        async with client.websocket("/flowrra/ws/table") as table:
            first = json.loads(await table.receive())
            assert first["type"] == "state" and first["state"]["rows"] == []
            task_id = await flowrra_app.submit("echo", SCRIPT)
            await flowrra_app.wait_for_result(task_id, 10)
            state = json.loads(await table.receive())["state"]
            while not state.get("rows"):
                state = json.loads(await table.receive())["state"]
            assert state["rows"][0]["task_id"] == task_id

        async with client.websocket("/flowrra/ws") as events:
            await client.get("/flowrra/api/health")  # a round trip: the socket subscribed
            task_id = await flowrra_app.submit("echo", 2)
            seen: list[dict[str, Any]] = []
            while not any(e["type"] == "task.succeeded" for e in seen):
                seen += json.loads(await events.receive())
            assert {e["task_id"] for e in seen} == {task_id}

        for path in ("/flowrra/ws", "/flowrra/ws/table"):
            with pytest.raises(WebsocketResponseError) as refused:
                async with client.websocket(path, headers={"Origin": "http://evil.example"}) as ws:
                    await ws.receive()
            assert refused.value.response.status_code == 403


async def test_quart_setup_websocket_sends_the_global_bus(flowrra_app: Flowrra) -> None:
    from quart import Quart

    from flowrra.ui.quart_websocket import setup_websocket

    app = Quart("quart_global")
    setup_websocket(app)
    client = app.test_client()
    async with client.websocket("/flowrra/ws") as events:
        await client.get("/nothing-here")  # a round trip: the socket subscribed
        task_id = await flowrra_app.submit("echo", 3)
        seen: list[dict[str, Any]] = []
        while not any(e["type"] == "task.succeeded" for e in seen):
            seen += json.loads(await events.receive())
        assert task_id in {e["task_id"] for e in seen}


# ------------------------------------------------------------------------- Django
def test_django_url_names_and_routing(flowrra_app: Flowrra) -> None:
    from django.urls import resolve, reverse

    web = django_web(flowrra_app)
    names_0_1_8 = {
        "flowrra_dashboard": ([], "/flowrra/"),
        "flowrra_tasks": ([], "/flowrra/tasks/"),
        "flowrra_schedules": ([], "/flowrra/schedules/"),
        "flowrra_api_stats": ([], "/flowrra/api/stats/"),
        "flowrra_api_health": ([], "/flowrra/api/health/"),
        "flowrra_api_tasks_list": ([], "/flowrra/api/tasks/"),
        "flowrra_api_task_detail": (["t"], "/flowrra/api/tasks/t/"),
        "flowrra_api_schedules_list": ([], "/flowrra/api/schedules/"),
        "flowrra_api_schedule_detail": (["s"], "/flowrra/api/schedules/s/"),
        "flowrra_api_create_schedule": ([], "/flowrra/api/schedules/cron/"),
        "flowrra_api_enable_schedule": (["s"], "/flowrra/api/schedules/s/enable/"),
        "flowrra_api_disable_schedule": (["s"], "/flowrra/api/schedules/s/disable/"),
        "flowrra_api_delete_schedule": (["s"], "/flowrra/api/schedules/s/"),
        "flowrra_workers": ([], "/flowrra/workers/"),
        "flowrra_api_records": ([], "/flowrra/api/records/"),
        "flowrra_static": (["dashboard.js"], "/flowrra/static/dashboard.js"),
    }
    for name, (args, path) in names_0_1_8.items():
        assert reverse(name, args=args) == path, name
    # 0.1.8 resolved api/schedules/cron/ to the detail view: the create view was unreachable
    assert resolve("/flowrra/api/schedules/cron/").url_name == "flowrra_api_create_schedule"
    assert resolve("/flowrra/api/schedules/cron").url_name is None  # the front-end's form
    assert web.get("/api/schedules/cron").status == 405
    assert web.request("PATCH", "/api/stats").status == 405
    # without the trailing slash too, as the front-end calls them
    schedule_id = web.post("/api/schedules/cron", json={"task_name": "echo", "cron": "* * * * *"})
    schedule_id = schedule_id.json()["schedule_id"]
    assert web.send("PUT", f"/flowrra/api/schedules/{schedule_id}/disable", {}).status == 200
    r = web.send("DELETE", f"/flowrra/api/schedules/{schedule_id}", {})
    assert r.json() == {"deleted": True, "schedule_id": schedule_id}
    assert web.send("GET", "/flowrra/api/stats", {}).status == 200


def test_django_csrf_middleware_stays_in_force(flowrra_app: Flowrra) -> None:
    web = django_web(flowrra_app, enforce_csrf=True)
    body = {"task_name": "echo", "cron": "* * * * *"}
    assert web.post("/api/schedules/cron", json=body).status == 403  # Django's own check
    page = web.raw_get("/flowrra/")  # the pages set the csrftoken cookie for the front-end
    token = web.extra["client"].cookies["csrftoken"].value
    assert page.status == 200 and token
    r = web.post("/api/schedules/cron", json=body, headers={"X-CSRFToken": token})
    assert r.status == 201
    evil = {"X-CSRFToken": token, "Origin": "http://evil.example"}
    assert web.post("/api/schedules/cron", json=body, headers=evil).status == 403


class _Socket:
    """A WebSocket client over asgiref's ApplicationCommunicator (Channels' own
    WebsocketCommunicator imports daphne, which is not installed)."""

    def __init__(self, app: Any, path: str, headers: list[tuple[bytes, bytes]] | None = None):
        from asgiref.testing import ApplicationCommunicator

        scope = {
            "type": "websocket",
            "path": path,
            "query_string": b"",
            "headers": [(b"host", b"testserver"), *(headers or [])],
            "subprotocols": [],
        }
        self.communicator = ApplicationCommunicator(app, scope)

    async def connect(self) -> dict[str, Any]:
        await self.communicator.send_input({"type": "websocket.connect"})
        return await self.communicator.receive_output(10)

    async def receive(self) -> Any:
        message = await self.communicator.receive_output(10)
        return json.loads(message["text"])

    async def close(self) -> None:
        await self.communicator.send_input({"type": "websocket.disconnect", "code": 1000})
        await self.communicator.wait(10)


async def test_django_channels_sockets(flowrra_app: Flowrra) -> None:
    from channels.routing import URLRouter

    from flowrra.ui.django_websocket import FlowrraConsumer, get_websocket_urls

    router = URLRouter(get_websocket_urls(flowrra_app))
    table = _Socket(router, "/flowrra/ws/table")
    assert (await table.connect())["type"] == "websocket.accept"
    assert (await table.receive())["state"]["rows"] == []
    task_id = await flowrra_app.submit("echo", SCRIPT)
    state = (await table.receive())["state"]
    while not state.get("rows"):
        state = (await table.receive())["state"]
    assert state["rows"][0]["task_id"] == task_id
    await table.close()

    for app, path in ((router, "/flowrra/ws"), (FlowrraConsumer.as_asgi(), "/flowrra/ws")):
        events = _Socket(app, path)
        assert (await events.connect())["type"] == "websocket.accept"
        await flowrra_app.list_results()  # a round trip to the app's loop: subscribed
        task_id = await flowrra_app.submit("echo", 4)
        seen: list[dict[str, Any]] = []
        while not any(e["task_id"] == task_id and e["type"] == "task.succeeded" for e in seen):
            seen += await events.receive()
        await events.close()

    evil = [(b"origin", b"http://evil.example")]
    for app, path in ((router, "/flowrra/ws/table"), (FlowrraConsumer.as_asgi(), "/flowrra/ws")):
        refused = await _Socket(app, path, evil).connect()
        assert refused == {"type": "websocket.close", "code": 4403} or (
            refused["type"] == "websocket.close" and refused["code"] == 4403
        )
