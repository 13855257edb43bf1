"""The app ``flowrra dashboard`` and ``flowrra worker`` run in the dashboard's browser test
(tests/test_dashboard_browser.py), configured from the environment as tests/redis_app.py
is: ``FLOWRRA_TEST_PREFIX`` (Redis keys), ``FLOWRRA_TEST_REDIS_URL`` and, when set,
``FLOWRRA_TEST_SCHEDULE_DB`` (a SQLite file: every process then runs a scheduler on it,
and they agree on who fires each run).

Besides tests/redis_app.py's tasks: ``boom`` fails with a traceback, ``block`` waits on a
long ``asyncio.sleep`` (to be cancelled), ``echo`` returns its text and ``tick`` is what
the schedule made from the page runs.
"""

from __future__ import annotations

import asyncio
import os

from flowrra import Flowrra

from .redis_app import PREFIX, URL
from .redis_app import make_app as make_redis_app

SCHEDULE_DB = os.environ.get("FLOWRRA_TEST_SCHEDULE_DB")


def _inner(text: str) -> None:
    raise ValueError(f"boom: {text}")


async def boom(text: str) -> None:
    """Fails (through a second frame, so the traceback has some depth)."""
    _inner(text)


async def block(seconds: float) -> str:
    """Waits ``seconds`` on the loop: running until someone cancels it."""
    await asyncio.sleep(seconds)
    return "woke up"


async def echo(text: str) -> str:
    return text


async def tick(label: str) -> str:
    return label


def make_app(
    prefix: str = PREFIX,
    url: str = URL,
    secret: str | None = None,
    schedule_db: str | None = None,
) -> Flowrra:
    """tests/redis_app.py's app under ``prefix`` plus ``boom``, ``block``, ``echo`` and
    ``tick``; with ``schedule_db``, a scheduler on that SQLite file."""
    app = make_redis_app(prefix, url, secret)
    app.task(max_retries=0)(boom)
    app.task(max_retries=0)(block)
    app.task(max_retries=0)(echo)
    app.task(max_retries=0)(tick)
    if schedule_db:
        app.create_scheduler(f"sqlite:///{schedule_db}", check_interval=1.0)
    return app


app = make_app(schedule_db=SCHEDULE_DB)
