"""Shared ground for the ``flowrra.ui`` adapter tests: a started app with a scheduler,
and each framework's own test client behind one small interface (:class:`Web`).

The app runs on flowrra's runtime loop (as in a notebook, or a WSGI server after
``run_sync(app.start)``): the sync clients (FastAPI's, Flask's, Django's) call from the
test's thread, Quart's from a loop of its own, and every view reaches the app on its
home loop.

Django is configured here once, with this module as ROOT_URLCONF: :func:`django_web`
swaps :data:`urlpatterns`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import django
from django.conf import settings

from flowrra import Config, ExecutorConfig, Flowrra
from flowrra.runtime import run_sync

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="flowrra-tests",
        ALLOWED_HOSTS=["testserver", "localhost", "127.0.0.1"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[],
        MIDDLEWARE=[
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
        ],
    )
    django.setup()

#: The URL patterns of the Django tests (replaced per test by :func:`django_web`).
urlpatterns: list[Any] = []

SCRIPT = "<script>alert(1)</script>"
PREFIX = "/flowrra"


def make_app(tmp_path: Path | None) -> Flowrra:
    """An app with the tasks ``echo(value)`` and ``boom()``, a SQLite scheduler when
    ``tmp_path`` is given, started on the runtime loop."""
    app = Flowrra(Config(executor=ExecutorConfig(io_workers=2, retry_delay=0.01)))

    @app.task(max_retries=0)
    async def echo(value: Any) -> Any:
        return value

    @app.task(max_retries=0)
    async def boom() -> None:
        raise RuntimeError("<b>boom</b>")

    if tmp_path is not None:
        app.create_scheduler(f"sqlite:///{tmp_path / 'schedules.db'}")
    run_sync(app.start)
    return app


def stop_app(app: Flowrra) -> None:
    """Stop ``app`` on the runtime loop."""
    run_sync(app.stop, False)


def run_task(app: Flowrra, name: str, *args: Any) -> str:
    """Submit ``name(*args)``, wait until it is finished, return its id."""
    task_id = run_sync(app.submit, name, *args)
    run_sync(app.wait_for_result, task_id, 10)
    return task_id


@dataclass
class Answer:
    """One response, whatever the framework."""

    status: int
    body: bytes
    headers: Mapping[str, str]

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


@dataclass
class Web:
    """A framework's test client mounted at ``/flowrra``.

    ``path`` takes 0.1.8's paths without a trailing slash (``/api/stats``); Django's
    0.1.8 routes end with one, which :meth:`url` adds.
    """

    name: str
    send: Callable[[str, str, dict[str, Any]], Answer]
    host: str
    error_key: str = "error"
    cron_status: int = 201
    slash: bool = False
    close: Callable[[], None] = lambda: None
    extra: dict[str, Any] = field(default_factory=dict)

    def url(self, path: str) -> str:
        if self.slash and path.startswith("/api/"):
            path = path.split("?")[0] + "/" + ("?" + path.split("?")[1] if "?" in path else "")
        return PREFIX + path

    def request(self, method: str, path: str, **options: Any) -> Answer:
        return self.send(method, self.url(path), options)

    def get(self, path: str, **options: Any) -> Answer:
        return self.request("GET", path, **options)

    def post(self, path: str, **options: Any) -> Answer:
        return self.request("POST", path, **options)

    def put(self, path: str, **options: Any) -> Answer:
        return self.request("PUT", path, **options)

    def delete(self, path: str, **options: Any) -> Answer:
        return self.request("DELETE", path, **options)

    def raw_get(self, full_path: str) -> Answer:
        """GET a full path as given (no slash added), following one redirect."""
        answer = self.send("GET", full_path, {})
        if 300 <= answer.status < 400:
            answer = self.send("GET", answer.headers["location"], {})
        return answer

    @property
    def origin(self) -> str:
        return f"http://{self.host}"


def _lower(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _body(options: dict[str, Any]) -> tuple[bytes | None, str | None]:
    if "json" in options:
        return json.dumps(options["json"]).encode(), "application/json"
    if "data" in options:
        return options["data"].encode(), options.get("content_type", "text/plain")
    return None, None


def fastapi_web(app: Flowrra) -> Web:
    """FastAPI's TestClient on an app including ``create_router`` at /flowrra."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from flowrra.ui.fastapi import create_router

    api = FastAPI()
    api.include_router(create_router(app), prefix=PREFIX)
    client = TestClient(api)
    client.__enter__()

    def send(method: str, url: str, options: dict[str, Any]) -> Answer:
        body, kind = _body(options)
        headers = dict(options.get("headers", {}))
        if kind:
            headers["content-type"] = kind
        r = client.request(method, url, content=body, headers=headers, follow_redirects=False)
        return Answer(r.status_code, r.content, _lower(r.headers))

    def close() -> None:
        client.__exit__(None, None, None)

    return Web(
        "fastapi",
        send,
        "testserver",
        "detail",
        200,
        close=close,
        extra={"api": api, "client": client},
    )


def flask_web(app: Flowrra) -> Web:
    """Flask's test client on a Flask app registering ``create_blueprint`` at /flowrra."""
    from flask import Flask

    from flowrra.ui.flask import create_blueprint

    web = Flask("flask_host")
    web.register_blueprint(create_blueprint(app), url_prefix=PREFIX)
    client = web.test_client()

    def send(method: str, url: str, options: dict[str, Any]) -> Answer:
        body, kind = _body(options)
        r = client.open(
            url, method=method, data=body, content_type=kind, headers=options.get("headers", {})
        )
        return Answer(r.status_code, r.get_data(), _lower(r.headers))

    return Web("flask", send, "localhost", extra={"app": web})


def quart_web(app: Flowrra) -> Web:
    """Quart's test client (on a loop of its own) on a Quart app registering the same
    ``create_blueprint`` at /flowrra."""
    from quart import Quart

    from flowrra.ui.flask import create_blueprint

    web = Quart("quart_host")
    web.register_blueprint(create_blueprint(app), url_prefix=PREFIX)
    client = web.test_client()
    loop = asyncio.new_event_loop()

    async def call(method: str, url: str, options: dict[str, Any]) -> Answer:
        body, kind = _body(options)
        headers = dict(options.get("headers", {}))
        if kind:
            headers["content-type"] = kind
        r = await client.open(url, method=method, data=body or b"", headers=headers)
        return Answer(r.status_code, await r.get_data(), _lower(r.headers))

    def send(method: str, url: str, options: dict[str, Any]) -> Answer:
        return loop.run_until_complete(call(method, url, options))

    return Web("quart", send, "localhost", close=loop.close, extra={"app": web})


def django_web(app: Flowrra, enforce_csrf: bool = False) -> Web:
    """Django's test client with ``path("flowrra/", include(get_urls(app)))``."""
    from django.test import Client
    from django.urls import clear_url_caches, include, path

    from flowrra.ui.django import get_urls

    global urlpatterns
    urlpatterns = [path("flowrra/", include(get_urls(app)))]
    clear_url_caches()
    client = Client(enforce_csrf_checks=enforce_csrf)

    def send(method: str, url: str, options: dict[str, Any]) -> Answer:
        body, kind = _body(options)
        r = client.generic(
            method,
            url,
            data=body or b"",
            content_type=kind or "application/octet-stream",
            headers=options.get("headers", {}),
        )
        return Answer(r.status_code, r.content, _lower(r.headers))

    return Web("django", send, "testserver", slash=True, extra={"client": client})


FRAMEWORKS: dict[str, Callable[[Flowrra], Web]] = {
    "fastapi": fastapi_web,
    "flask": flask_web,
    "quart": quart_web,
    "django": django_web,
}


def webs(app: Flowrra, name: str) -> Iterator[Web]:
    """The :class:`Web` of framework ``name`` for ``app``, closed after."""
    web = FRAMEWORKS[name](app)
    try:
        yield web
    finally:
        web.close()
