"""The dashboard in a Flask or Quart app (0.1.8's ``flowrra.ui.flask``).

Usage::

    from flask import Flask                 # or: from quart import Quart
    from flowrra.ui.flask import create_blueprint

    web = Flask(__name__)
    web.register_blueprint(create_blueprint(flowrra_app), url_prefix="/flowrra")

One blueprint serves both: registered on a Flask app its views are plain functions that
run the app's coroutines on the app's own loop (flowrra's runtime loop while the app is
not started, see :meth:`BaseUIAdapter.run_blocking`); registered on a Quart app it
becomes a Quart blueprint with async views and the dashboard's WebSockets
(``<prefix>/ws`` and ``<prefix>/ws/table``). Flask has no WebSockets: its task table
polls the JSON API instead.

Errors are ``{"error": message}``: 400 for a bad request, 404 for an unknown task or
schedule, 403 for a change requested from another site, 415 for a body that is not JSON.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

try:
    import flask
except ImportError:  # pragma: no cover - depends on the environment
    raise ImportError(
        "Flask or Quart is required for the Flask adapter. Install it with: "
        "pip install -e '.[ui-flask]' in a clone of flowrra."
    ) from None

try:
    import quart
except ImportError:  # pragma: no cover - depends on the environment
    quart = None

from flowrra.ui.base import BaseUIAdapter
from flowrra.ui.base.api import Call, Endpoint, Page, Reply, lower_headers, refusal

if TYPE_CHECKING:
    from flowrra.app import Flowrra

__all__ = ["USING_QUART", "FlaskAdapter", "FlowrraBlueprint", "create_blueprint", "is_quart_app"]

#: True when Quart is installed. 0.1.8 then served Quart views to every app, Flask ones
#: included; now the app that registers the blueprint decides (see FlowrraBlueprint).
USING_QUART = quart is not None

_NOSNIFF = {"X-Content-Type-Options": "nosniff"}


def is_quart_app(app: Any) -> bool:
    """True when ``app`` is a Quart application."""
    return quart is not None and isinstance(app, quart.Quart)


class FlowrraBlueprint(flask.Blueprint):
    """The dashboard's blueprint (named ``"flowrra"``): Flask views, or the Quart
    blueprint of the same routes when a Quart app registers it."""

    def __init__(self, adapter: FlaskAdapter, name: str = "flowrra") -> None:
        """The blueprint of ``adapter``'s routes."""
        super().__init__(name, __name__)
        self.adapter = adapter
        adapter.add_flask_routes(self)

    def register(self, app: Any, options: dict[str, Any]) -> None:
        """Register on ``app``: a Quart app gets the Quart blueprint instead."""
        if is_quart_app(app):
            self.adapter.quart_blueprint(self.name).register(app, options)
            return
        super().register(app, options)


class FlaskAdapter(BaseUIAdapter):
    """The dashboard of one flowrra app as a Flask (or Quart) blueprint.

    Usage::

        blueprint = FlaskAdapter(flowrra_app).get_routes()
        web.register_blueprint(blueprint, url_prefix="/flowrra")
    """

    def get_routes(self) -> flask.Blueprint:
        """The blueprint: pages, JSON API and ``/static/<filename>`` (endpoint
        ``flowrra.static``), with 0.1.8's endpoint names."""
        return FlowrraBlueprint(self)

    # --------------------------------------------------------------- Flask
    def add_flask_routes(self, blueprint: flask.Blueprint) -> None:
        """Add the Flask views (sync; they block on the app's loop) to ``blueprint``."""
        for page in self.pages():
            blueprint.add_url_rule(page.path, page.flask_name, self._flask_page(page))
        for endpoint in self.endpoints():
            blueprint.add_url_rule(
                endpoint.flask_rule(),
                endpoint.flask_endpoint,
                self._flask_api(endpoint),
                methods=[endpoint.method],
            )
        blueprint.add_url_rule("/static/<path:filename>", "static", self._static)

    def _flask_page(self, page: Page) -> Callable[[], flask.Response]:
        def show() -> flask.Response:
            request = flask.request
            body = self.page_html(page, request.script_root + request.path)
            return flask.Response(body, mimetype="text/html")

        show.__name__ = page.flask_name
        return show

    def _flask_api(self, endpoint: Endpoint) -> Callable[..., flask.Response]:
        def answer(**params: str) -> flask.Response:
            request = flask.request
            refused = refusal(request.method, lower_headers(request.headers.items()))
            if refused is not None:
                return _response(self.problem(refused.status, refused.message))
            call = Call(
                params=params,
                query=request.args.to_dict(),
                body=request.get_data(),
                content_type=request.content_type or "",
            )
            return _response(self.respond_blocking(endpoint, call))

        answer.__name__ = endpoint.flask_endpoint
        return answer

    # --------------------------------------------------------------- Quart
    def quart_blueprint(self, name: str = "flowrra") -> Any:
        """The same routes as a Quart blueprint (async views that await the app's
        coroutines on its home loop), plus the WebSockets ``/ws`` and ``/ws/table``.

        Raises:
            ImportError: Quart is not installed.
        """
        if quart is None:
            raise ImportError("Quart is not installed: pip install quart")
        from flowrra.ui.quart_websocket import add_dashboard_sockets

        blueprint = quart.Blueprint(name, __name__)
        for page in self.pages():
            blueprint.add_url_rule(page.path, page.flask_name, self._quart_page(page))
        for endpoint in self.endpoints():
            blueprint.add_url_rule(
                endpoint.flask_rule(),
                endpoint.flask_endpoint,
                self._quart_api(endpoint),
                methods=[endpoint.method],
            )
        blueprint.add_url_rule("/static/<path:filename>", "static", self._quart_static)
        add_dashboard_sockets(blueprint, self.dashboard)
        lifespan: list[Any] = []

        async def start() -> None:
            context = self.dashboard.lifespan(None)
            await context.__aenter__()
            lifespan.append(context)

        async def stop() -> None:
            while lifespan:
                await lifespan.pop().__aexit__(None, None, None)

        blueprint.before_app_serving(start)
        blueprint.after_app_serving(stop)
        return blueprint

    def _quart_page(self, page: Page) -> Callable[[], Awaitable[Any]]:
        async def show() -> Any:
            request = quart.request
            body = self.page_html(page, request.root_path + request.path)
            return quart.Response(body, mimetype="text/html")

        show.__name__ = page.flask_name
        return show

    def _quart_api(self, endpoint: Endpoint) -> Callable[..., Awaitable[Any]]:
        async def answer(**params: str) -> Any:
            request = quart.request
            refused = refusal(request.method, lower_headers(request.headers.items()))
            if refused is not None:
                return _quart_response(self.problem(refused.status, refused.message))
            call = Call(
                params=params,
                query=request.args.to_dict(),
                body=await request.get_data(),
                content_type=request.content_type or "",
            )
            return _quart_response(await self.respond(endpoint, call))

        answer.__name__ = endpoint.flask_endpoint
        return answer

    # -------------------------------------------------------------- static
    def _static(self, filename: str) -> flask.Response:
        found = self.static_file(filename)
        if found is None:
            return _response(self.problem(404, "File not found"))
        content, media_type = found
        return flask.Response(content, mimetype=media_type, headers=_NOSNIFF)

    async def _quart_static(self, filename: str) -> Any:
        found = self.static_file(filename)
        if found is None:
            return _quart_response(self.problem(404, "File not found"))
        content, media_type = found
        return quart.Response(content, mimetype=media_type, headers=_NOSNIFF)


def _response(reply: Reply) -> flask.Response:
    response = flask.jsonify(reply.payload)
    response.status_code = reply.status
    response.headers.update(_NOSNIFF)
    return response


def _quart_response(reply: Reply) -> Any:
    response = quart.jsonify(reply.payload)
    response.status_code = reply.status
    response.headers.update(_NOSNIFF)
    return response


def create_blueprint(flowrra_app: Flowrra) -> flask.Blueprint:
    """The dashboard of ``flowrra_app`` as a blueprint for a Flask or a Quart app
    (``web.register_blueprint(create_blueprint(app), url_prefix="/flowrra")``)."""
    return FlaskAdapter(flowrra_app).get_routes()
