"""The app ``flowrra worker`` processes run in the throttling tests (configured from env,
as tests/redis_app.py): tasks with a rate limit and concurrency caps."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from flowrra import Flowrra

from .redis_app import PREFIX, URL, redis_config

#: The shared rate of ``paced``: starts a second, over every worker process.
RATE = 20


async def paced(i: int) -> int:
    """Returns the id of the process that ran it (both workers must take part)."""
    return os.getpid()


async def capped(i: int, seconds: float) -> int:
    await asyncio.sleep(seconds)
    return os.getpid()


async def once_slow(path: str) -> str:
    """Its first run (the one whose worker is killed) waits for ever; the next returns."""
    marker = Path(path)
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        await asyncio.sleep(3600)
    return "done"


def make_app(prefix: str = PREFIX, url: str = URL, secret: str | None = None) -> Flowrra:
    """An app on Redis whose keys all live under ``prefix``, with ``paced`` (``RATE``/s),
    ``capped`` (2 at once) and ``once_slow`` (1 at once)."""
    app = Flowrra(redis_config(prefix, url, secret))
    app.task(max_retries=0, rate_limit=f"{RATE}/s")(paced)
    app.task(max_retries=0, concurrency=2)(capped)
    app.task(max_retries=0, concurrency=1)(once_slow)
    return app


app = make_app()
