"""flowrra's web dashboard: tasks, schedules and workers in a browser.

``flowrra dashboard --app module:app`` serves it; :func:`create_app` returns it as an
ASGI application to mount in a Starlette, FastAPI or Django project. Needs the
``dashboard`` extra (Starlette and uvicorn).
"""

from __future__ import annotations

from flowrra.web.data import DashboardData
from flowrra.web.server import create_app

__all__ = ["DashboardData", "create_app"]
