"""flowrra 0.1.8's UI adapters: the web dashboard inside your FastAPI, Flask, Quart or
Django project.

Each adapter serves the dashboard of :mod:`flowrra.web` (its pages, the live task table,
schedules and workers) under the prefix you mount it at, with 0.1.8's routes, route names
and JSON answers:

- FastAPI: ``app.include_router(flowrra.ui.fastapi.create_router(flowrra_app),
  prefix="/flowrra")`` (extra ``ui-fastapi``).
- Flask or Quart: ``app.register_blueprint(flowrra.ui.flask.create_blueprint(flowrra_app),
  url_prefix="/flowrra")`` (extra ``ui-flask``).
- Django: ``path("flowrra/", include(flowrra.ui.django.get_urls(flowrra_app)))`` (extra
  ``ui-django``; WebSockets with Channels, see :mod:`flowrra.ui.django_websocket`).

The adapters add no authentication: protect the prefix the way your project protects
its admin pages. Requests that change something are refused when a browser says they
come from another site. This package imports no web framework; each adapter module
imports its own.
"""

from flowrra.ui.base import BaseUIAdapter, Formatter, ScheduleService, UIService

__all__ = ["BaseUIAdapter", "Formatter", "ScheduleService", "UIService"]
