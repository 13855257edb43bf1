"""The app the ``flowrra worker`` processes of the progress tests run (configured from
env): ``crunch``, ``chatter`` and ``report`` of :mod:`tests.progress_tasks`."""

from __future__ import annotations

from flowrra import ExecutorConfig, Flowrra

from .progress_tasks import chatter, crunch, report
from .redis_app import PREFIX, URL, redis_config


def make_app(prefix: str = PREFIX, url: str = URL, secret: str | None = None) -> Flowrra:
    """An app on Redis whose keys all live under ``prefix``, with the progress tasks."""
    app = Flowrra(redis_config(prefix, url, secret, ExecutorConfig(io_workers=4, cpu_workers=1)))
    app.task(cpu_bound=True, max_retries=0)(crunch)
    app.task(cpu_bound=True, max_retries=0)(chatter)
    app.task(max_retries=0)(report)
    return app


app = make_app()
