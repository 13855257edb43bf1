"""The dashboard in a Django project (0.1.8's ``flowrra.ui.django``).

Usage (``urls.py``)::

    from django.urls import include, path
    from flowrra.ui.django import get_urls

    urlpatterns = [path("flowrra/", include(get_urls(flowrra_app)))]

Pages at ``flowrra/``, ``flowrra/tasks/``, ``flowrra/schedules/`` and
``flowrra/workers/``; 0.1.8's JSON API under ``flowrra/api/`` with its URL names
(``flowrra_api_stats``, ...). Each path also answers without its trailing slash, the
form the dashboard's front-end calls. No templates or static-files settings are needed.

The views are plain (sync) views: they run the app's coroutines on the app's own loop,
or on flowrra's runtime loop while the app is not started (see
:meth:`BaseUIAdapter.run_blocking`), never on a fresh loop per request. Start the app
there once, e.g. in your ``AppConfig.ready``::

    from flowrra.runtime import run_sync
    run_sync(flowrra_app.start)

Nothing is ``csrf_exempt``: with Django's CSRF middleware on, the front-end sends the
``csrftoken`` cookie's value (the pages set it) as ``X-CSRFToken``, and other clients
must too. Requests that change something from another site are refused (403) either
way. Errors are ``{"error": message}`` (404 for an unknown task or schedule).
Live updates need Channels: see :mod:`flowrra.ui.django_websocket`; without it the task
table polls the JSON API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

try:
    from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
    from django.urls import URLPattern, path
    from django.views.decorators.csrf import ensure_csrf_cookie
except ImportError:  # pragma: no cover - depends on the environment
    raise ImportError(
        "Django is required for the Django adapter. Install it with: "
        "pip install -e '.[ui-django]' in a clone of flowrra."
    ) from None

from flowrra.ui.base import BaseUIAdapter
from flowrra.ui.base.api import Call, Endpoint, Page, Reply, lower_headers, refusal

if TYPE_CHECKING:
    from flowrra.app import Flowrra

__all__ = ["DjangoAdapter", "get_urls"]

_NOSNIFF = {"X-Content-Type-Options": "nosniff"}
View = Callable[..., HttpResponse]


def _headers(request: HttpRequest) -> dict[str, str]:
    headers = lower_headers(request.headers.items())
    headers.setdefault("host", request.get_host())
    return headers


def _json(reply: Reply) -> JsonResponse:
    return JsonResponse(reply.payload, status=reply.status, safe=False, headers=_NOSNIFF)


class DjangoAdapter(BaseUIAdapter):
    """The dashboard of one flowrra app as Django URL patterns.

    Usage::

        urlpatterns = [path("flowrra/", include(DjangoAdapter(flowrra_app).get_routes()))]
    """

    def get_routes(self) -> list[URLPattern]:
        """The URL patterns, named as in 0.1.8 (``flowrra_dashboard``,
        ``flowrra_api_stats``, ...; new: ``flowrra_workers``, ``flowrra_api_records``,
        ...). Fixed paths come before parameterised ones, so ``api/schedules/cron/``
        reaches the create view; ``DELETE api/schedules/<id>/`` deletes."""
        patterns: list[URLPattern] = []
        for page in self.pages():
            view = ensure_csrf_cookie(self._page(page))
            patterns += _routes(page.django_route(), view, f"flowrra_{page.name}")
        for route, endpoints in _by_route(self.endpoints()).items():
            first, *others = endpoints
            view = self._api(endpoints)
            patterns += _routes(route, view, f"flowrra_{first.name}")
            # the other methods' names, for reverse(); the first pattern answers them all
            patterns += [path(route, view, name=f"flowrra_{e.name}") for e in others]
        patterns += _routes("static/<path:name>", self._static, "flowrra_static")
        return patterns

    def _page(self, page: Page) -> View:
        def show(request: HttpRequest) -> HttpResponse:
            return HttpResponse(self.page_html(page, request.path), content_type="text/html")

        show.__name__ = f"flowrra_{page.name}"
        return show

    def _api(self, endpoints: list[Endpoint]) -> View:
        by_method = {e.method: e for e in endpoints}
        if "GET" in by_method:
            by_method["HEAD"] = by_method["GET"]

        def answer(request: HttpRequest, **params: str) -> HttpResponse:
            endpoint = by_method.get(request.method or "")
            if endpoint is None:
                return HttpResponseNotAllowed(sorted(by_method))
            refused = refusal(endpoint.method, _headers(request))
            if refused is not None:
                return _json(self.problem(refused.status, refused.message))
            call = Call(
                params=params,
                query=request.GET.dict(),
                body=request.body,
                content_type=request.content_type or "",
            )
            return _json(self.respond_blocking(endpoint, call))

        answer.__name__ = f"flowrra_{endpoints[0].name}"
        return answer

    def _static(self, request: HttpRequest, name: str) -> HttpResponse:
        found = self.static_file(name)
        if found is None:
            return _json(self.problem(404, "File not found"))
        content, media_type = found
        return HttpResponse(content, content_type=media_type, headers=_NOSNIFF)


def _by_route(endpoints: list[Endpoint]) -> dict[str, list[Endpoint]]:
    """Endpoints grouped by Django route (one view answers every method of a path), in
    order of first appearance."""
    groups: dict[str, list[Endpoint]] = {}
    for endpoint in endpoints:
        groups.setdefault(endpoint.django_route(), []).append(endpoint)
    return groups


def _routes(route: str, view: Any, name: str) -> list[URLPattern]:
    """``route`` under ``name``, and the same without its trailing slash (unnamed), as the
    dashboard's front-end calls it."""
    patterns = [path(route, view, name=name)]
    if route.endswith("/"):
        patterns.append(path(route[:-1], view))
    return patterns


def get_urls(flowrra_app: Flowrra) -> list[URLPattern]:
    """The dashboard of ``flowrra_app`` as URL patterns to include under a prefix
    (``path("flowrra/", include(get_urls(app)))``)."""
    return DjangoAdapter(flowrra_app).get_routes()
