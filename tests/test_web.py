"""The web dashboard (flowrra.web): its JSON API, pages, sockets and security, against a
real app through Starlette's test client (a real ASGI round trip, no server process)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="pip install -e '.[dashboard]' to test the dashboard")

from starlette.testclient import TestClient

from flowrra import Config, ExecutorConfig, Flowrra
from flowrra.web import create_app

LOCAL = "http://127.0.0.1"
HOSTILE = "<script>alert('x')</script>"


def make_app(tmp_path: Path) -> Flowrra:
    app = Flowrra(Config(executor=ExecutorConfig(io_workers=4, retry_delay=0.01)))
    gate: dict[str, asyncio.Event] = {}

    @app.task(max_retries=0)
    async def add(x: int, y: int) -> int:
        return x + y

    @app.task(max_retries=0)
    async def boom(text: str) -> None:
        raise ValueError(f"bad {text}")

    @app.task(max_retries=0)
    async def hold(name: str) -> str:
        gate.setdefault(name, asyncio.Event())
        await gate[name].wait()
        return name

    app.create_scheduler(f"sqlite:///{tmp_path / 'schedules.db'}")
    return app


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = make_app(tmp_path)
    with TestClient(create_app(app, manage_app=True), base_url=LOCAL) as test_client:
        yield test_client


def call(client: TestClient, job: Any) -> Any:
    """Run ``job()`` (a coroutine function) on the server's loop."""
    return client.portal.call(job)


def app_of(client: TestClient) -> Flowrra:
    return client.app.app.state.flowrra  # type: ignore[attr-defined]


def test_pages_render_the_shell_and_never_task_data(client: TestClient) -> None:
    app = app_of(client)
    task_id = call(client, lambda: app.submit(boom, HOSTILE))
    call(client, lambda: app.wait_for_result(task_id))
    for path in ("/", "/tasks", "/schedules", "/workers"):
        page = client.get(path)
        assert page.status_code == 200
        assert 'id="fd-main"' in page.text and "<script>alert" not in page.text
    assert client.get("/static/task_table.js").status_code == 200  # the notebook's module
    record = client.get(f"/api/records/{task_id}").json()
    assert record["args"] == [HOSTILE]  # a JSON string: the page sets it as text
    assert record["status"] == "failed" and record["error_type"] == "ValueError"
    assert "raise ValueError" in record["traceback"]


boom = None  # replaced per test by the app's task (a module-level name for the lambdas)


@pytest.fixture(autouse=True)
def _names(client: TestClient) -> None:
    global boom, add, hold
    tasks = app_of(client).registry
    boom, add, hold = (tasks.spec(n).func for n in ("boom", "add", "hold"))


add = hold = None


def test_records_are_paged_and_filtered_on_the_server(client: TestClient) -> None:
    app = app_of(client)
    ids = call(client, lambda: app.starmap(add, [(i, i) for i in range(30)]))
    failed = call(client, lambda: app.submit(boom, "x"))
    for task_id in [*ids, failed]:
        call(client, lambda task_id=task_id: app.wait_for_result(task_id))
    page = client.get("/api/records", params={"limit": 10, "offset": 5}).json()
    assert page["total"] == 31 and page["matching"] == 31 and len(page["rows"]) == 10
    assert page["counts"]["success"] == 30 and page["counts"]["failed"] == 1
    only_failed = client.get("/api/records", params={"status": "failed"}).json()
    assert [r["task_id"] for r in only_failed["rows"]] == [failed]
    by_name = client.get("/api/records", params={"name": "add", "limit": 500}).json()
    assert by_name["matching"] == 30 and {r["task_name"] for r in by_name["rows"]} == {"add"}
    assert by_name["rows"][0]["args_repr"] == "29, 29" and by_name["rows"][0]["attempt"] == 1
    bad = client.get("/api/records", params={"status": "bogus"})
    assert bad.status_code == 400 and "use one of" in bad.json()["detail"]
    assert client.get("/api/records", params={"limit": 0}).status_code == 400
    assert client.get("/api/records/nosuchid").status_code == 404


def test_cancel_from_the_api_ends_a_running_task_cancelled(client: TestClient) -> None:
    app = app_of(client)
    task_id = call(client, lambda: app.submit(hold, "a"))

    async def running() -> None:
        while (await app.get_result(task_id)).status.value != "running":
            await asyncio.sleep(0.01)

    call(client, running)
    answer = client.post(f"/api/records/{task_id}/cancel")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"task_id": task_id, "cancelled": True, "status": "cancelled"}
    unknown = client.post("/api/records/nosuchid/cancel")
    assert unknown.status_code == 400 and "No task has the id" in unknown.json()["detail"]


def test_schedules_api_keeps_0_1_8_shapes(client: TestClient) -> None:
    made = client.post(
        "/api/schedules/cron", json={"task_name": "add", "cron": "*/5 * * * *", "args": [1, 2]}
    )
    assert made.status_code == 200
    schedule_id = made.json()["schedule_id"]
    listed = client.get("/api/schedules").json()
    assert [s["id"] for s in listed] == [schedule_id] and listed[0]["next_run_at"]
    assert client.put(f"/api/schedules/{schedule_id}/disable").json() == {
        "status": "disabled",
        "schedule_id": schedule_id,
    }
    assert client.get("/api/schedules", params={"enabled_only": "true"}).json() == []
    assert client.put(f"/api/schedules/{schedule_id}/enable").json()["status"] == "enabled"
    detail = client.get(f"/api/schedules/{schedule_id}").json()
    assert detail["args"] == [1, 2] and detail["runs"] == []
    interval = client.post(
        "/api/schedules", json={"kind": "interval", "task_name": "add", "interval": 60}
    )
    assert interval.status_code == 201
    once = client.post(
        "/api/schedules",
        json={"kind": "once", "task_name": "add", "run_at": "2099-01-01T00:00:00+00:00"},
    )
    assert once.status_code == 201
    for body, words in (
        ({"task_name": "add", "cron": "not a cron"}, "cron"),
        ({"kind": "interval", "task_name": "add"}, "interval"),
        ({"kind": "cron"}, "task_name"),
        ({"kind": "weekly", "task_name": "add"}, "'kind'"),
    ):
        answer = client.post("/api/schedules", json=body)
        assert answer.status_code == 400 and words in answer.json()["detail"], answer.text
    assert client.delete(f"/api/schedules/{schedule_id}").json() == {
        "deleted": True,
        "schedule_id": schedule_id,
    }
    assert client.get(f"/api/schedules/{schedule_id}").status_code == 404
    assert client.put(f"/api/schedules/{schedule_id}/enable").status_code == 404


def test_0_1_8_read_endpoints(client: TestClient) -> None:
    stats = client.get("/api/stats").json()
    assert stats["app"]["running"] is True and stats["tasks"]["registered"] == 3
    assert "running" in stats["tasks"]  # 0.1.8's dashboard read a key that did not exist
    assert client.get("/api/health").json()["components"]["app"]["healthy"] is True
    assert {t["name"] for t in client.get("/api/tasks").json()} == {"add", "boom", "hold"}
    assert client.get("/api/tasks/add").json()["qualname"].endswith("add")
    assert client.get("/api/tasks/nosuch").json() == {"detail": "Task not found"}
    overview = client.get("/api/overview").json()
    assert set(overview) >= {"counts", "series", "queues", "workers", "failed_last_hour"}


def test_the_table_socket_sends_the_widget_state_and_takes_actions(client: TestClient) -> None:
    app = app_of(client)
    task_id = call(client, lambda: app.submit(hold, "b"))
    with client.websocket_connect("ws://127.0.0.1/ws/table") as socket:
        state: dict[str, Any] = {}
        while state.get("counts", {}).get("running") != 1:
            state.update(socket.receive_json()["state"])
        assert state["rows"][0]["task_id"] == task_id and state["statuses"][0] == "pending"
        socket.send_json({"type": "select", "task_id": task_id})
        while state.get("detail", {}).get("task_id") != task_id:
            state.update(socket.receive_json()["state"])
        socket.send_json({"type": "cancel", "task_id": task_id})
        while state["counts"].get("cancelled") != 1:
            state.update(socket.receive_json()["state"])
        socket.send_json({"type": "set", "key": "status_filter", "value": "success"})
        while state.get("status_filter") != "success":
            state.update(socket.receive_json()["state"])
        assert state["rows"] == []


def test_the_event_socket_streams_coalesced_events(client: TestClient) -> None:
    app = app_of(client)
    with client.websocket_connect("ws://127.0.0.1/ws") as socket:
        ids = call(client, lambda: app.starmap(add, [(i, 1) for i in range(50)]))
        seen: dict[str, str] = {}
        while sum(1 for s in seen.values() if s == "task.succeeded") < 50:
            frame = json.loads(socket.receive_text())
            assert isinstance(frame, list)
            for event in frame:
                seen[event["task_id"]] = event["type"]
        assert set(seen) == set(ids)


# ------------------------------------------------------------------ security
def test_static_files_are_a_whitelist(client: TestClient) -> None:
    for path in (
        "/static/..%2fserver.py",
        "/static/..%2F..%2Fapp.py",
        "/static/%2Fetc%2Fpasswd",
        "/static/../../etc/passwd",
        "/static/server.py",
        "/static/__init__.py",
    ):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert "import" not in answer.text and "root:" not in answer.text


def test_without_a_token_only_loopback_host_names_are_answered(client: TestClient) -> None:
    assert client.get("/api/stats", headers={"host": "localhost:5555"}).status_code == 200
    rebound = client.get("/api/stats", headers={"host": "attacker.example:5555"})
    assert rebound.status_code == 403 and "--token" in rebound.json()["detail"]


def test_cross_site_changes_are_refused(client: TestClient) -> None:
    body = {"task_name": "add", "cron": "* * * * *"}
    for headers in (
        {"origin": "http://evil.example"},
        {"origin": "null"},
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},
    ):
        answer = client.post("/api/schedules/cron", json=body, headers=headers)
        assert answer.status_code == 403, headers
    form = client.post("/api/schedules/cron", data={"task_name": "add", "cron": "* * * * *"})
    assert form.status_code == 415  # a cross-site HTML form cannot send JSON
    same = client.post("/api/schedules/cron", json=body, headers={"origin": LOCAL})
    assert same.status_code == 200
    assert client.get("/api/schedules").json()[0]["task_name"] == "add"


def test_a_token_guards_pages_api_and_sockets(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    web = create_app(app, token="s3cret-token", manage_app=True)
    with TestClient(web, base_url="http://dash.example") as client:
        assert client.get("/api/stats").status_code == 401
        page = client.get("/tasks", headers={"accept": "text/html"}, follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/login"
        assert (
            client.get("/api/stats", headers={"authorization": "Bearer wrong"}).status_code == 401
        )
        ok = client.get("/api/stats", headers={"authorization": "Bearer s3cret-token"})
        assert ok.status_code == 200 and "s3cret" not in ok.text
        refused = client.websocket_connect("ws://dash.example/ws")
        with pytest.raises(Exception), refused as socket:  # noqa: B017  closed unopened
            socket.receive_text()
        assert client.post("/login", data={"token": "nope"}).status_code == 401
        login = client.post("/login", data={"token": "s3cret-token"}, follow_redirects=False)
        assert login.status_code == 303
        cookie = login.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert client.get("/api/stats").status_code == 200  # the cookie now carries it
        with client.websocket_connect("ws://dash.example/ws/table") as socket:
            assert "counts" in socket.receive_json()["state"]


def test_no_password_from_a_url_is_shown(tmp_path: Path) -> None:
    from flowrra import SchedulerConfig  # noqa: F401  (documented name; imported for shape)

    app = make_app(tmp_path)
    app.create_scheduler(f"sqlite:///{tmp_path / 'other.db'}")
    with TestClient(create_app(app, manage_app=True), base_url=LOCAL) as client:
        for path in ("/api/stats", "/api/health", "/api/overview", "/api/workers", "/"):
            assert "password" not in client.get(path).text.lower()


# ------------------------------------------------------------------ the command
def _dashboard(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flowrra", "dashboard", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        cwd=Path(__file__).resolve().parent.parent,
    )


def test_the_command_refuses_a_public_address_without_a_token() -> None:
    done = _dashboard("--app", "tests.redis_app:app", "--host", "0.0.0.0")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "flowrra dashboard: listening on 0.0.0.0 needs a token; set FLOWRRA_DASHBOARD_TOKEN "
        "(or pass --token) and give it to the people who may use the dashboard"
    ]
    bad_app = _dashboard("--app", "tests.redis_app:nosuch")
    assert bad_app.returncode == 2 and "has no attribute 'nosuch'" in bad_app.stderr
    assert "dashboard" in _dashboard("--help").stdout.lower()


def test_the_command_serves_the_dashboard_on_uvicorn(tmp_path: Path) -> None:
    import socket
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "dashapp.py").write_text(
        "from flowrra import Flowrra\n"
        "app = Flowrra()\n"
        "@app.task()\n"
        "async def ping() -> str:\n"
        "    return 'pong'\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    command = [sys.executable, "-m", "flowrra", "dashboard", "--app", "dashapp:app"]
    server = subprocess.Popen(
        [*command, "--port", str(port)], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        assert server.stderr is not None
        line = server.stderr.readline()  # printed before uvicorn starts listening
        assert f"serving dashapp:app on http://127.0.0.1:{port}/" in line
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/tasks") as answer:
                    assert json.load(answer) == [
                        {
                            "name": "ping",
                            "cpu_bound": False,
                            "max_retries": 3,
                            "retry_delay": 1.0,
                            "timeout": None,
                        }
                    ]
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
    finally:
        server.terminate()  # uvicorn shuts down cleanly, then re-raises SIGTERM
        assert server.wait(30) in (0, -signal.SIGTERM)
        assert server.stderr is not None and "Traceback" not in server.stderr.read()


def test_rows_say_which_workflow_and_step_a_task_belongs_to(client: TestClient) -> None:
    from flowrra import call, chain

    app = app_of(client)

    async def run() -> str:
        handle = await app.run(chain(call(add, 1, 2), call(add, 10)))
        await handle.result()
        return handle.id

    workflow_id = client.portal.call(run)
    rows = client.get("/api/records", params={"name": "add"}).json()["rows"]
    assert {(r["workflow_id"], r["workflow_step"]) for r in rows} == {
        (workflow_id, "0"),
        (workflow_id, "1"),
    }
