"""The adapters' routes, described once for every web framework.

A :class:`Page` is one HTML page of the dashboard, an :class:`Endpoint` one JSON route:
its method, path (``{name}`` marks a path parameter), 0.1.8's route name and the
coroutine that answers a :class:`Call`. The FastAPI, Flask, Quart and Django adapters
turn these into their own routes, so every framework serves the same API.

Mutating requests from another site are refused here (:func:`refusal`), with the
dashboard's own same-origin rule (:meth:`flowrra.web.security.Guard._same_origin`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flowrra.web.security import Guard

__all__ = [
    "PAGES",
    "UNSAFE_METHODS",
    "ApiError",
    "Call",
    "Endpoint",
    "Page",
    "Reply",
    "lower_headers",
    "page_root",
    "refusal",
    "same_origin",
]

#: Methods that change state: refused when a browser says they come from another site.
UNSAFE_METHODS = frozenset({"POST", "PUT", "DELETE", "PATCH"})

_PARAM = re.compile(r"\{(\w+)\}")


class ApiError(Exception):
    """An answer other than success: an HTTP status and a message for the client."""

    def __init__(self, status: int, message: str) -> None:
        """Answer ``status`` with ``message``."""
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Call:
    """One API request, as every framework can give it: path parameters, query
    parameters, the raw body and its content type."""

    params: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    content_type: str = ""

    def flag(self, name: str) -> bool:
        """True when the query parameter ``name`` is ``"true"`` (any case)."""
        return str(self.query.get(name, "false")).lower() == "true"

    def json(self) -> dict[str, Any]:
        """The body as a JSON object.

        Raises:
            ApiError: 400 without a body, or one that is not a JSON object; 415 when it
                is not sent as ``application/json`` (a cross-site form cannot be).
        """
        if not self.body.strip():
            raise ApiError(400, "Request body required")
        kind = self.content_type.split(";")[0].strip().lower()
        if kind != "application/json":
            raise ApiError(415, "Send a JSON body (Content-Type: application/json).")
        try:
            body = json.loads(self.body)
        except ValueError:
            raise ApiError(400, "The body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise ApiError(400, "The body must be a JSON object.")
        return body


@dataclass(frozen=True)
class Reply:
    """An answer to a :class:`Call`: an HTTP status and a JSON-ready body."""

    status: int
    payload: Any


@dataclass(frozen=True)
class Endpoint:
    """One JSON route: ``answer(call)`` returns the JSON-ready body of a success
    (``status``) or raises :class:`ApiError`."""

    method: str
    path: str
    name: str
    answer: Callable[[Call], Awaitable[Any]]
    status: int = 200
    flask_name: str = ""

    @property
    def flask_endpoint(self) -> str:
        """The endpoint name in a Flask or Quart blueprint (0.1.8's view names)."""
        return self.flask_name or self.name

    @property
    def params(self) -> list[str]:
        """The names of the path parameters, in order."""
        return _PARAM.findall(self.path)

    def flask_rule(self) -> str:
        """The path as a Werkzeug rule: ``/api/tasks/<task_name>``."""
        return _PARAM.sub(r"<\1>", self.path)

    def django_route(self) -> str:
        """The path as a Django route, with 0.1.8's trailing slash:
        ``api/tasks/<str:task_name>/``."""
        return _PARAM.sub(r"<str:\1>", self.path).lstrip("/") + "/"


@dataclass(frozen=True)
class Page:
    """One HTML page: its path, its name in :data:`flowrra.web.server.PAGES` and its
    route names (FastAPI and Django, then Flask)."""

    path: str
    page: str
    name: str
    flask_name: str

    def django_route(self) -> str:
        """The path as a Django route: ``""`` or ``"tasks/"``."""
        local = self.path.strip("/")
        return f"{local}/" if local else ""


#: The dashboard's pages with 0.1.8's route names (``workers`` is new).
PAGES = (
    Page("/", "overview", "dashboard", "dashboard"),
    Page("/tasks", "tasks", "tasks", "tasks_page"),
    Page("/schedules", "schedules", "schedules", "schedules_page"),
    Page("/workers", "workers", "workers", "workers_page"),
)


def page_root(path: str, local: str) -> str:
    """The prefix the adapter is mounted under, from a request's full ``path`` and the
    page's own ``local`` path: ``page_root("/flowrra/tasks/", "/tasks")`` is
    ``"/flowrra"``; ``""`` at the top."""
    full = path.rstrip("/")
    own = local.strip("/")
    if own and full.endswith("/" + own):
        full = full[: -len(own) - 1]
    return full


def lower_headers(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Request headers as a dict with lower-case names."""
    return {name.lower(): value for name, value in items}


def same_origin(headers: Mapping[str, str]) -> bool:
    """True unless the browser says the request comes from another site (``Origin``
    other than the ``Host``, or ``Sec-Fetch-Site`` other than same-origin); requests
    from programs, which send neither, pass. ``headers`` has lower-case names."""
    return Guard._same_origin(dict(headers))


def refusal(method: str, headers: Mapping[str, str]) -> ApiError | None:
    """403 for a state-changing request from another site, else None."""
    if method.upper() in UNSAFE_METHODS and not same_origin(headers):
        return ApiError(403, "Cross-site request refused.")
    return None
