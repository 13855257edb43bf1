"""``flowrra dashboard`` in a real browser (issue #14): the dashboard and two ``flowrra
worker`` processes on the test Redis, the pages driven with headless Chromium.

The task table moves while tasks run, a failed row's details show its traceback, cancel
from the page ends a running task CANCELLED, an argument holding ``<script>`` is shown as
text (no dialog ever opens), a schedule made with the page's form fires (every process
runs a scheduler on one SQLite file, and each run fires once) and a worker killed with
SIGKILL shows as lost. Screenshots go to test-artifacts/dashboard_*.png.

Needs Debian's chromium at /usr/bin/chromium, playwright, Starlette and uvicorn; without
them the test skips, except under ``CI=true``.
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="pip install -e '.[dashboard]' to test the dashboard")
pytest.importorskip("uvicorn", reason="pip install -e '.[dashboard]' to test the dashboard")

from flowrra import Flowrra
from flowrra.runtime import run_sync

from . import dashboard_app
from .services import REDIS_URL, require_redis
from .test_notebook_browser import ARTIFACTS, CHROMIUM, LAUNCH_ARGS, ROOT, _missing_browser
from .test_redis import SECRET

TIMEOUT = 15_000  # ms, for each expectation
SCRIPT = "<script>alert(1)</script>"
APP = "tests.dashboard_app:app"


@dataclass
class Deployment:
    """The processes under test and a submit-only app on the same Redis keys."""

    base: str
    workers: list[subprocess.Popen[bytes]]
    dashboard: subprocess.Popen[bytes]
    app: Flowrra
    logs: Path

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.base}{path}", timeout=10) as response:
            return json.load(response)

    def submit(self, name: str, *args: Any, **kwargs: Any) -> str:
        return run_sync(functools.partial(self.app.submit, name, *args, **kwargs))

    def result(self, task_id: str) -> Any:
        return run_sync(self.app.wait_for_result, task_id, 20)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def _wait_for_dashboard(url: str, process: subprocess.Popen[bytes], logs: Path) -> None:
    deadline = time.monotonic() + 30
    while not _answers(url):
        if process.poll() is not None:
            raise RuntimeError(f"flowrra dashboard exited: {_tail(logs)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer in 30 s: {_tail(logs)}")
        time.sleep(0.1)  # polling a condition: is it serving yet?


def _tail(logs: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(logs.glob("*.log")))


def _spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "flowrra", *command],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture
def browser() -> Iterator[Any]:
    reason = _missing_browser()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and the browser test cannot run: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def prefix() -> Iterator[str]:
    """A fresh key prefix on the test Redis; every key under it is deleted after. (Sync,
    unlike conftest's: Playwright's sync API runs a loop on this thread.)"""
    import redis

    require_redis()
    name = f"flowrra-test-dash-{uuid.uuid4().hex[:10]}"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(f"{name}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def deployment(prefix: str, tmp_path: Path) -> Iterator[Deployment]:
    """Two ``flowrra worker`` processes and ``flowrra dashboard`` on a free port, all with
    ``prefix`` and a scheduler on one SQLite file; the submit-only app is started on
    flowrra's runtime loop. Everything is stopped after (the Redis keys go with
    ``prefix``)."""
    env = dict(
        os.environ,
        FLOWRRA_TEST_PREFIX=prefix,
        FLOWRRA_TEST_REDIS_URL=REDIS_URL,
        FLOWRRA_TEST_SCHEDULE_DB=str(tmp_path / "schedules.db"),
        FLOWRRA_SECRET_KEY=SECRET,
    )
    env.pop("FLOWRRA_DASHBOARD_TOKEN", None)
    logs = tmp_path / "logs"
    logs.mkdir()
    port = _free_port()
    processes: list[subprocess.Popen[bytes]] = []
    app = dashboard_app.make_app(prefix, REDIS_URL, SECRET)  # submits only, no scheduler
    try:
        for n in (1, 2):
            worker = ["worker", "--app", APP, "--io-workers", "8", "--drain-timeout", "5"]
            processes.append(_spawn(worker, env, logs / f"worker{n}.log"))
        command = ["dashboard", "--app", APP, "--port", str(port)]
        processes.append(_spawn(command, env, logs / "dashboard.log"))
        base = f"http://127.0.0.1:{port}"
        _wait_for_dashboard(f"{base}/api/health", processes[-1], logs)
        run_sync(app.start, False)
        yield Deployment(base, processes[:2], processes[2], app, logs)
    finally:
        run_sync(app.stop, False)
        for process in reversed(processes):
            _stop(process)


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard_{name}.png"), full_page=True)


def _count(page: Any, status: str) -> Any:
    return page.locator(f".flowrra-tt-count[data-status='{status}'] .flowrra-tt-count-value")


def _row(page: Any, task_id: str) -> Any:
    return page.locator(f"tr.flowrra-tt-row[data-task-id='{task_id}']")


def _field(page: Any, label: str) -> Any:
    """The value of the field ``label`` in the task details."""
    fields = page.locator(".flowrra-tt-detail .flowrra-tt-field")
    exact = re.compile(f"^{re.escape(label)}$")
    named = fields.filter(has=page.locator(".flowrra-tt-field-label", has_text=exact))
    return named.locator(".flowrra-tt-field-value")


def check_table_moves(page: Any, site: Deployment) -> None:
    """Six naps of 2 s: the page shows them running, then done, without a reload."""
    from playwright.sync_api import expect

    ids = [site.submit("nap", i, 2.0) for i in range(6)]
    expect(_count(page, "running")).to_have_text("6", timeout=TIMEOUT)
    expect(page.locator("tr.flowrra-tt-row[data-status='running']")).to_have_count(6)
    expect(_row(page, ids[0]).locator(".flowrra-tt-cancel")).to_be_visible()
    # newest first, as in the notebook and as the server cuts pages
    expect(page.locator("tr.flowrra-tt-row").first).to_have_attribute("data-task-id", ids[5])
    expect(page.locator("th", has=page.locator("[data-column=submitted_at]"))).to_have_attribute(
        "aria-sort", "descending"
    )
    _shot(page, "tasks_running")
    expect(_count(page, "success")).to_have_text("6", timeout=TIMEOUT)
    expect(_count(page, "running")).to_have_text("0")
    expect(page.locator("tr.flowrra-tt-row[data-status='success']")).to_have_count(6)
    expect(_row(page, ids[5]).locator(".flowrra-tt-col-args")).to_have_text("(5, 2.0)")
    assert {site.result(i).result for i in ids} == set(range(6))
    # keyword arguments: in the row and in the details, as a call reads
    task_id = site.submit("nap", i=7, seconds=0.01)
    row = _row(page, task_id)
    expect(row).to_have_attribute("data-status", "success", timeout=TIMEOUT)
    expect(row.locator(".flowrra-tt-col-args")).to_have_text("(i=7, seconds=0.01)")
    row.click()
    expect(_field(page, "kwargs")).to_have_text('{"i":7,"seconds":0.01}', timeout=TIMEOUT)
    expect(_field(page, "args")).to_have_count(0)  # no positional ones
    expect(_field(page, "result")).to_have_text("7")
    page.locator(".flowrra-tt-close").click()


def check_traceback(page: Any, site: Deployment) -> None:
    """A failed row's details show the error and the traceback, frames and all."""
    from playwright.sync_api import expect

    task_id = site.submit("boom", "kaput")
    row = _row(page, task_id)
    expect(row).to_have_attribute("data-status", "failed", timeout=TIMEOUT)
    expect(_count(page, "failed")).to_have_text("1")
    row.click()
    detail = page.locator(".flowrra-tt-detail")
    expect(detail).to_contain_text("Traceback (most recent call last)", timeout=TIMEOUT)
    expect(detail).to_contain_text("ValueError: boom: kaput")
    expect(detail).to_contain_text("in _inner")
    expect(row).to_have_attribute("aria-selected", "true")
    _shot(page, "tasks_traceback")
    page.locator(".flowrra-tt-close").click()
    expect(detail).to_be_hidden()


def check_cancel(page: Any, site: Deployment) -> None:
    """Cancel on a running task's row: the worker running it stops it, CANCELLED."""
    from playwright.sync_api import expect

    task_id = site.submit("block", 300)
    row = _row(page, task_id)
    expect(row).to_have_attribute("data-status", "running", timeout=TIMEOUT)
    row.locator(".flowrra-tt-cancel").click()
    expect(row).to_have_attribute("data-status", "cancelled", timeout=TIMEOUT)
    expect(row.locator(".flowrra-tt-cancel")).to_have_count(0)
    expect(_count(page, "cancelled")).to_have_text("1")
    assert site.get(f"/api/records/{task_id}")["status"] == "cancelled"
    assert site.result(task_id).status.value == "cancelled"
    assert all(w.poll() is None for w in site.workers)  # the worker lives on


def check_escaping(page: Any, site: Deployment) -> None:
    """``<script>`` in an argument and a result is text: in the row and the details."""
    from playwright.sync_api import expect

    task_id = site.submit("echo", SCRIPT)
    row = _row(page, task_id)
    expect(row).to_have_attribute("data-status", "success", timeout=TIMEOUT)
    expect(row.locator(".flowrra-tt-col-args")).to_have_text(f"('{SCRIPT}')")
    row.click()
    expect(_field(page, "args")).to_have_text(json.dumps([SCRIPT]), timeout=TIMEOUT)
    expect(_field(page, "result")).to_have_text(json.dumps(SCRIPT))
    assert page.evaluate("document.querySelectorAll('script').length") == 1
    assert page.locator(".flowrra-tt script, .flowrra-tt img").count() == 0
    _shot(page, "tasks_escaped")


def check_schedule_fires(page: Any, site: Deployment) -> None:
    """An interval schedule made with the form fires (each run once, in whichever of
    the three schedulers claims it); its run history shows the runs; Disable stops it."""
    from playwright.sync_api import expect

    page.goto(f"{site.base}/schedules")
    form = page.locator("#fd-schedule-form")
    form.locator("select[name=kind]").select_option("interval")
    form.locator("select[name=task_name]").select_option("tick")
    form.locator("input[name=when]").fill("1")
    form.locator("input[name=args]").fill('["from the form"]')
    form.locator("input[name=description]").fill("made by the browser test")
    form.locator("button[type=submit]").click()
    expect(page.locator(".fd-status")).to_contain_text("Created schedule", timeout=TIMEOUT)
    expect(form.locator("input[name=when]")).to_have_attribute("placeholder", "*/5 * * * *")
    created = page.locator("#fd-schedules tr[data-id]")
    expect(created).to_have_count(1)
    schedule_id = created.get_attribute("data-id")
    created.locator("a").click()
    runs = page.locator(".fd-history tbody tr", has_text="submitted")
    expect(runs.nth(1)).to_be_visible(timeout=TIMEOUT)  # two runs at least, shown live
    _shot(page, "schedules")
    created.locator("button", has_text="Disable").click()
    expect(created).to_contain_text("disabled", timeout=TIMEOUT)
    fired = _runs_and_tasks_agree(site, schedule_id)
    assert len(fired) >= 2
    assert len({r["due_at"] for r in fired}) == len(fired)  # each due run fired once
    for run in fired:
        record = site.result(run["task_id"])
        assert record.task_name == "tick" and record.result == "from the form"
    assert page.locator(".fd-error").count() == 0


def _runs_and_tasks_agree(site: Deployment, schedule_id: str) -> list[dict[str, Any]]:
    """The schedule's runs once its tasks are exactly the ``tick`` tasks on record (a
    run that fired twice would leave a task more); the last run may still be recording."""
    deadline = time.monotonic() + 10
    while True:
        runs = site.get(f"/api/schedules/{schedule_id}")["runs"]
        fired = [r for r in runs if r["outcome"] == "submitted"]
        ticks = site.get("/api/records?name=tick&limit=500")["rows"]
        if {r["task_id"] for r in fired} == {t["task_id"] for t in ticks}:
            return fired
        assert time.monotonic() < deadline, f"runs {fired} and tasks {ticks} differ"
        time.sleep(0.1)  # polling a condition


def check_lost_worker(page: Any, site: Deployment) -> None:
    """Both workers alive; one killed with SIGKILL is shown as lost, the other alive."""
    from playwright.sync_api import expect

    page.goto(f"{site.base}/workers")
    table = page.locator("#fd-workers")
    expect(page.locator("h2")).to_have_text("Workers (2 alive)", timeout=TIMEOUT)
    for worker in site.workers:
        expect(table.locator("tr", has_text=f"{worker.pid}")).to_contain_text("alive")
    _shot(page, "workers")
    killed, kept = site.workers
    killed.send_signal(signal.SIGKILL)
    killed.wait(10)
    lost = table.locator("tr.fd-lost")
    expect(lost).to_have_count(1, timeout=TIMEOUT)
    expect(lost).to_contain_text(str(killed.pid))
    expect(lost.locator(".fd-state")).to_have_text("lost")
    expect(page.locator("h2")).to_have_text("Workers (1 alive)")
    expect(table.locator("tr", has_text=str(kept.pid))).to_contain_text("alive")
    _shot(page, "workers_lost")


def test_dashboard_in_a_browser(deployment: Deployment, browser: Any) -> None:
    from playwright.sync_api import expect

    site = deployment
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{site.base}/tasks")
        expect(page.locator("#fd-conn")).to_have_text("live", timeout=TIMEOUT)
        expect(page.locator(".flowrra-tt-empty")).to_have_text("no tasks yet")
        check_table_moves(page, site)
        check_traceback(page, site)
        check_cancel(page, site)
        check_escaping(page, site)
        check_schedule_fires(page, site)
        page.goto(f"{site.base}/")
        expect(page.locator(".fd-card.fd-s-failed .fd-n")).to_have_text("1", timeout=TIMEOUT)
        _shot(page, "overview")
        check_lost_worker(page, site)
        assert dialogs == [] and errors == []
    except Exception:
        print(_tail(site.logs))
        raise
    finally:
        page.close()
