"""The app the ``flowrra worker`` processes of the progress tests run (configured from
env): ``crunch``, ``chatter`` and ``report`` of :mod:`tests.progress_tasks`."""

from __future__ import annotations

import os

from flowrra import BackendConfig, BrokerConfig, Config, ExecutorConfig, Flowrra

from .progress_tasks import chatter, crunch, report

PREFIX = os.environ.get("FLOWRRA_TEST_PREFIX", "flowrra-test")
URL = os.environ.get("FLOWRRA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def make_app(prefix: str = PREFIX, url: str = URL, secret: str | None = None) -> Flowrra:
    """An app on Redis whose keys all live under ``prefix``, with the progress tasks."""
    app = Flowrra(
        Config(
            broker=BrokerConfig(url, queue_key=f"{prefix}:queue"),
            backend=BackendConfig(f"{url}{'&' if '?' in url else '?'}key_prefix={prefix}"),
            executor=ExecutorConfig(io_workers=4, cpu_workers=1),
            secret_key=secret,
        )
    )
    app.task(cpu_bound=True, max_retries=0)(crunch)
    app.task(cpu_bound=True, max_retries=0)(chatter)
    app.task(max_retries=0)(report)
    return app


app = make_app()
