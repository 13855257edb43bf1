"""flowrra.ui in a real browser: the dashboard served by a Flask app (no WebSockets: the
task table polls), a Django project (CSRF middleware on, no Channels) and a FastAPI app
(WebSockets), each on a local port, driven with headless Chromium.

Needs Debian's chromium at /usr/bin/chromium and the playwright package (see
tests/test_notebook_browser.py); without them the test skips, except under ``CI=true``.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flowrra import Flowrra

from .test_notebook_browser import CHROMIUM, LAUNCH_ARGS, _missing_browser
from .ui_support import PREFIX, SCRIPT, make_app, run_task, stop_app

TIMEOUT = 20_000  # ms


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = _missing_browser()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and the browser test cannot run: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def flowrra_app(tmp_path: Path) -> Iterator[Flowrra]:
    app = make_app(tmp_path)
    yield app
    stop_app(app)


def _wsgi(app: Any) -> Iterator[str]:
    """Serve the WSGI ``app`` on a free port (bound before the thread starts, so the
    browser's first request waits in the listen queue); yield its base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)


def _asgi(app: Any) -> Iterator[str]:
    """Serve the ASGI ``app`` with uvicorn on a socket bound here."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def flask_site(app: Flowrra) -> Iterator[str]:
    from flask import Flask

    from flowrra.ui.flask import create_blueprint

    web = Flask("browser_flask")
    web.register_blueprint(create_blueprint(app), url_prefix=PREFIX)
    yield from _wsgi(web)


def django_site(app: Flowrra) -> Iterator[str]:
    from django.core.wsgi import get_wsgi_application

    from .ui_support import django_web

    django_web(app)  # installs the URL patterns
    yield from _wsgi(get_wsgi_application())


def fastapi_site(app: Flowrra) -> Iterator[str]:
    from fastapi import FastAPI

    from flowrra.ui.fastapi import create_router

    api = FastAPI()
    api.include_router(create_router(app), prefix=PREFIX)
    yield from _asgi(api)


SITES: dict[str, tuple[Callable[[Flowrra], Iterator[str]], str, str]] = {
    # framework: (server, the tasks page's suffix, what the connection label says)
    "flask": (flask_site, "", "polling"),
    "django": (django_site, "/", "polling"),
    "fastapi": (fastapi_site, "", "live"),
}


@pytest.mark.parametrize("framework", list(SITES))
def test_dashboard_pages_work_in_the_browser(
    browser: Any, flowrra_app: Flowrra, framework: str
) -> None:
    serve, slash, live = SITES[framework]
    task_id = run_task(flowrra_app, "echo", SCRIPT)
    sites = serve(flowrra_app)
    base = next(sites)
    page = browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        # the task table: filled over a WebSocket (FastAPI) or by polling the JSON API
        page.goto(f"{base}{PREFIX}/tasks{slash}")
        row = f"tr[data-task-id='{task_id}']"
        page.wait_for_selector(row, timeout=TIMEOUT)
        page.wait_for_function(
            "text => document.getElementById('fd-conn').textContent === text",
            arg=live,
            timeout=TIMEOUT,
        )
        page.locator(row).first.click()
        page.wait_for_function(
            "text => document.querySelector('.flowrra-tt-detail')?.innerText.includes(text)",
            arg=SCRIPT,  # shown as text, never parsed as markup
            timeout=TIMEOUT,
        )
        assert page.evaluate("document.querySelectorAll('script').length") == 1
        run_task(flowrra_app, "boom")  # a change after the page loaded reaches it
        page.wait_for_selector(
            ".flowrra-tt-count[data-status='failed'] .flowrra-tt-count-value >> text=1",
            timeout=TIMEOUT,
        )

        # schedules: create, disable, delete through the page's own requests
        # (on Django with its CSRF middleware on: the page sends the token)
        page.goto(f"{base}{PREFIX}/schedules{slash}")
        form = page.locator("#fd-schedule-form")
        form.locator("input[name=when]").fill("*/5 * * * *")
        form.locator("input[name=args]").fill(f'["{SCRIPT}"]')
        form.locator("button[type=submit]").click()
        created = "#fd-schedules tr[data-id]"
        page.wait_for_selector(created, timeout=TIMEOUT)
        page.locator(f"{created} button >> text=Disable").click()
        page.wait_for_selector(f"{created} >> text=disabled", timeout=TIMEOUT)
        page.locator(f"{created} button >> text=Delete").click()
        page.wait_for_selector(created, state="detached", timeout=TIMEOUT)
        assert page.locator(".fd-error").count() == 0

        # overview and workers pages load through the prefix
        page.goto(f"{base}{PREFIX}/")
        page.wait_for_selector(".fd-card.fd-s-success", timeout=TIMEOUT)
        page.locator("nav a >> text=Workers").click()
        page.wait_for_selector("#fd-workers", timeout=TIMEOUT)
        assert dialogs == []
    finally:
        page.close()
        sites.close()
