"""flowrra.ui: 0.1.8's adapters serve the new dashboard in FastAPI, Flask, Quart and
Django, each through the framework's own test client and a real app (started on the
runtime loop, with a SQLite scheduler).

Every test here runs once per framework; the framework-specific parts (route names,
WebSockets, CSRF, Flask-versus-Quart) are in tests/test_ui_frameworks.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowrra import Flowrra

from .ui_support import SCRIPT, Web, make_app, run_task, stop_app, webs


@pytest.fixture
def flowrra_app(tmp_path: Path) -> Iterator[Flowrra]:
    app = make_app(tmp_path)
    yield app
    stop_app(app)


@pytest.fixture(params=["fastapi", "flask", "quart", "django"])
def web(request: pytest.FixtureRequest, flowrra_app: Flowrra) -> Iterator[Web]:
    yield from webs(flowrra_app, request.param)


def _schedule(web: Web, **body: object) -> str:
    r = web.post("/api/schedules/cron", json={"task_name": "echo", "cron": "*/5 * * * *", **body})
    assert r.status == web.cron_status, r.text
    assert set(r.json()) == {"schedule_id"}
    return r.json()["schedule_id"]


# ------------------------------------------------------------------------- pages
@pytest.mark.parametrize(
    ("path", "page"),
    [("/", "overview"), ("/tasks", "tasks"), ("/schedules", "schedules"), ("/workers", "workers")],
)
def test_pages_are_the_dashboard_shell_under_the_mount_prefix(
    web: Web, flowrra_app: Flowrra, path: str, page: str
) -> None:
    run_task(flowrra_app, "echo", SCRIPT)
    url = path if web.name != "django" or path == "/" else path + "/"
    r = web.raw_get("/flowrra" + url)
    assert r.status == 200 and r.content_type.startswith("text/html")
    assert f'data-page="{page}"' in r.text and 'data-root="/flowrra"' in r.text
    assert '<script type="module" src="/flowrra/static/dashboard.js"></script>' in r.text
    assert 'href="/flowrra/tasks"' in r.text and 'href="/flowrra/static/dashboard.css"' in r.text
    # the shell carries no task data: the argument never reaches the HTML
    assert "alert(1)" not in r.text and r.text.count("<script") == 1


def test_tasks_page_ignores_a_bad_status(web: Web) -> None:
    """0.1.8 answered ``/tasks?status=retrying`` (and any unknown status) with 500."""
    url = "/flowrra/tasks" + ("/" if web.name == "django" else "")
    assert web.raw_get(url + "?status=bogus").status == 200


# ------------------------------------------------------------------------ static
def test_static_serves_the_front_end(web: Web) -> None:
    for name, kind in [
        ("dashboard.js", "javascript"),
        ("dashboard.css", "text/css"),
        ("task_table.js", "javascript"),
        ("task_table.css", "text/css"),
    ]:
        r = web.raw_get(f"/flowrra/static/{name}")
        assert r.status == 200 and kind in r.content_type, (name, r.status, r.content_type)
        assert r.headers.get("x-content-type-options") == "nosniff"


@pytest.mark.parametrize(
    "name",
    [
        "..%2f..%2fapp.py",
        "..%2F..%2Fweb%2Fserver.py",
        "..%2f..%2f..%2f..%2f..%2f..%2fetc%2fhostname",
        "%2fetc%2fpasswd",
        "/etc/passwd",
        "..\\..\\app.py",
        "server.py",
        "",
    ],
)
def test_static_refuses_anything_but_the_listed_files(web: Web, name: str) -> None:
    r = web.raw_get(f"/flowrra/static/{name}")
    assert r.status == 404, (name, r.status)
    assert b"import" not in r.body and b"root:" not in r.body


# ------------------------------------------------------------------ 0.1.8's API
def test_stats_health_and_registered_tasks(web: Web, flowrra_app: Flowrra) -> None:
    run_task(flowrra_app, "echo", 1)
    stats = web.get("/api/stats").json()
    assert set(stats) == {"app", "executors", "tasks", "scheduler"}
    assert stats["app"] == {"running": True}
    assert stats["tasks"]["registered"] == 2 and stats["tasks"]["by_status"]["success"] == 1
    assert {"pending", "running"} <= set(stats["tasks"])
    assert stats["scheduler"]["running"] is True

    health = web.get("/api/health").json()
    assert health["healthy"] is True and isinstance(health["timestamp"], str)
    assert set(health["components"]) == {"app", "io_executor", "cpu_executor", "scheduler"}

    tasks = web.get("/api/tasks").json()
    assert [t["name"] for t in tasks] == ["echo", "boom"]
    assert set(tasks[0]) == {"name", "cpu_bound", "max_retries", "retry_delay", "timeout"}
    detail = web.get("/api/tasks/echo").json()
    assert detail["name"] == "echo" and detail["module"] == "tests.ui_support"


def test_unknown_task_and_schedule_are_404(web: Web) -> None:
    r = web.get("/api/tasks/nope")
    assert r.status == 404 and r.json() == {web.error_key: "Task not found"}
    r = web.get("/api/schedules/nope")
    assert r.status == 404 and r.json() == {web.error_key: "Schedule not found"}
    for verb in ("enable", "disable"):
        r = web.put(f"/api/schedules/nope/{verb}")
        assert r.status == 404 and r.json() == {web.error_key: "Schedule not found"}


def test_cron_schedule_create_disable_enable_delete(web: Web) -> None:
    assert web.get("/api/schedules").json() == []
    schedule_id = _schedule(web, args=[1, SCRIPT], description="nightly", priority=3)
    [listed] = web.get("/api/schedules").json()
    assert listed["id"] == schedule_id and listed["enabled"] is True
    assert listed["schedule"] == "*/5 * * * *" and listed["priority"] == 3

    r = web.put(f"/api/schedules/{schedule_id}/disable")
    assert r.status == 200 and r.json() == {"status": "disabled", "schedule_id": schedule_id}
    assert web.get("/api/schedules?enabled_only=true").json() == []
    detail = web.get(f"/api/schedules/{schedule_id}").json()
    assert detail["enabled"] is False and detail["args"] == [1, SCRIPT] and detail["runs"] == []

    r = web.put(f"/api/schedules/{schedule_id}/enable")
    assert r.json() == {"status": "enabled", "schedule_id": schedule_id}
    assert [s["id"] for s in web.get("/api/schedules?enabled_only=true").json()] == [schedule_id]

    r = web.delete(f"/api/schedules/{schedule_id}")
    assert r.status == 200 and r.json() == {"deleted": True, "schedule_id": schedule_id}
    assert web.get(f"/api/schedules/{schedule_id}").status == 404
    assert web.delete(f"/api/schedules/{schedule_id}").json() == {
        "deleted": False,
        "schedule_id": schedule_id,
    }


def test_create_schedule_errors_are_400_not_500(web: Web) -> None:
    """0.1.8 let FastAPI's ValueErrors become 500; every framework now says 400 (or 422
    where FastAPI validates the body itself)."""
    r = web.post("/api/schedules/cron", json={"task_name": "echo", "cron": "not a cron"})
    assert r.status == 400 and "cron" in r.json()[web.error_key].lower()
    r = web.post("/api/schedules/cron", json={"task_name": "nope", "cron": "* * * * *"})
    assert r.status == 400 and "nope" in r.json()[web.error_key]
    r = web.post("/api/schedules", json={"kind": "interval", "task_name": "echo"})
    assert r.status == 400 and "interval" in r.json()[web.error_key]
    r = web.post("/api/schedules")
    assert r.status == 400 and r.json() == {web.error_key: "Request body required"}
    r = web.post("/api/schedules", data="task_name=echo", content_type="text/plain")
    assert r.status == 415
    r = web.post("/api/schedules/cron", json={"cron": "* * * * *"})
    assert r.status == (422 if web.name == "fastapi" else 400)


def test_new_create_route_takes_every_kind(web: Web) -> None:
    r = web.post("/api/schedules", json={"kind": "interval", "task_name": "echo", "interval": 60})
    assert r.status == 201
    r = web.post(
        "/api/schedules",
        json={"kind": "once", "task_name": "echo", "run_at": "2099-01-01T00:00:00+00:00"},
    )
    assert r.status == 201
    kinds = sorted(s["schedule_type"] for s in web.get("/api/schedules").json())
    assert kinds == ["interval", "one_time"]


# ---------------------------------------------------------------- the new API
def test_records_hold_the_script_argument_only_as_a_json_string(
    web: Web, flowrra_app: Flowrra
) -> None:
    task_id = run_task(flowrra_app, "echo", SCRIPT)
    r = web.get("/api/records")
    assert r.status == 200 and r.content_type.startswith("application/json")
    assert r.headers.get("x-content-type-options") == "nosniff"
    [row] = r.json()["rows"]
    assert row["task_id"] == task_id and row["args_repr"] == repr(SCRIPT)
    detail = web.get(f"/api/records/{task_id}").json()
    assert detail["args"] == [SCRIPT] and detail["result"] == SCRIPT
    page = web.get("/api/records?status=success&name=echo&limit=5&offset=0").json()
    assert page["matching"] == 1 and page["limit"] == 5


def test_records_errors(web: Web) -> None:
    r = web.get("/api/records?status=bogus")
    assert r.status == 400 and "bogus" in r.json()[web.error_key]
    assert web.get("/api/records?limit=many").status == 400
    assert web.get("/api/records?limit=100000").status == 400
    r = web.get("/api/records/nope")
    assert r.status == 404 and r.json() == {web.error_key: "Task not found"}


def test_cancel_workers_and_overview(web: Web, flowrra_app: Flowrra) -> None:
    task_id = run_task(flowrra_app, "boom")
    r = web.post(f"/api/records/{task_id}/cancel")
    assert r.status == 200 and r.json() == {
        "task_id": task_id,
        "cancelled": False,
        "status": "failed",
    }
    assert web.post("/api/records/nope/cancel").status == 400
    assert web.get("/api/workers").json() == []
    overview = web.get("/api/overview").json()
    assert overview["counts"]["failed"] == 1 and overview["app"] == {"running": True}
    assert overview["failed_last_hour"][0]["error"].startswith("<b>boom</b>")


# ------------------------------------------------------------------- security
@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
def test_cross_site_changes_are_refused(web: Web, headers: dict[str, str]) -> None:
    schedule_id = _schedule(web)
    refused = [
        web.post(
            "/api/schedules/cron", json={"task_name": "echo", "cron": "* * * * *"}, headers=headers
        ),
        web.post(
            "/api/schedules",
            json={"kind": "interval", "task_name": "echo", "interval": 5},
            headers=headers,
        ),
        web.put(f"/api/schedules/{schedule_id}/disable", headers=headers),
        web.delete(f"/api/schedules/{schedule_id}", headers=headers),
        web.post(f"/api/records/{schedule_id}/cancel", headers=headers),
    ]
    for r in refused:
        assert r.status == 403, (r.status, r.text)
        assert r.json() == {web.error_key: "Cross-site request refused."}
    [still] = web.get("/api/schedules", headers=headers).json()  # reading is allowed
    assert still["id"] == schedule_id and still["enabled"] is True


def test_same_origin_changes_pass(web: Web) -> None:
    schedule_id = _schedule(web)
    for headers in ({"Origin": web.origin}, {"Sec-Fetch-Site": "same-origin"}):
        r = web.put(f"/api/schedules/{schedule_id}/disable", headers=headers)
        assert r.status == 200, r.text


def test_error_messages_are_json_strings_not_markup(web: Web) -> None:
    r = web.get("/api/tasks/" + "%3Cscript%3E")
    assert r.status == 404 and r.content_type.startswith("application/json")
    r = web.post("/api/schedules/cron", json={"task_name": SCRIPT, "cron": "* * * * *"})
    assert r.status == 400 and r.content_type.startswith("application/json")
    assert SCRIPT in r.json()[web.error_key]


def test_routes_match_the_front_end(web: Web) -> None:
    """Every path the dashboard's front-end calls is served (without a trailing slash
    too, for Django)."""
    script = (Path(__file__).parents[1] / "flowrra" / "web" / "static" / "dashboard.js").read_text()
    called = set(re.findall(r'api\("(/api/[a-z]+)"', script))
    assert {"/api/overview", "/api/workers", "/api/schedules", "/api/tasks"} <= called
    for path in called:
        r = web.raw_get("/flowrra" + path)
        assert r.status == 200, (path, r.status)
