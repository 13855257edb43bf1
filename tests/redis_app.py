"""The app ``flowrra worker`` processes run in the Redis tests (configured from env)."""

from __future__ import annotations

import asyncio
import os
import time

from flowrra import BackendConfig, BrokerConfig, Config, ExecutorConfig, Flowrra

PREFIX = os.environ.get("FLOWRRA_TEST_PREFIX", "flowrra-test")
URL = os.environ.get("FLOWRRA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def nap(i: int, seconds: float = 0.01) -> int:
    await asyncio.sleep(seconds)
    return i


def cube(x: int) -> int:
    return x**3


async def hog(path: str, seconds: float) -> int:
    """Blocks the event loop (as a careless task does) and counts its runs in ``path``."""
    with open(path, "a") as log:
        log.write("run\n")
    time.sleep(seconds)
    return 1


async def quit_now(code: int) -> None:
    """Raises SystemExit inside a task: the worker must survive it."""
    raise SystemExit(code)


def redis_config(
    prefix: str, url: str, secret: str | None, executor: ExecutorConfig | None = None
) -> Config:
    """Broker and backend on ``url`` with every key under ``prefix`` (the test apps'
    shared set-up); 8 IO workers and quick retries unless ``executor`` says otherwise."""
    return Config(
        broker=BrokerConfig(url, queue_key=f"{prefix}:queue"),
        backend=BackendConfig(f"{url}{'&' if '?' in url else '?'}key_prefix={prefix}"),
        executor=executor or ExecutorConfig(io_workers=8, retry_delay=0.05),
        secret_key=secret,
    )


def make_app(prefix: str = PREFIX, url: str = URL, secret: str | None = None) -> Flowrra:
    """An app on Redis whose keys all live under ``prefix``, with ``nap``, ``cube``,
    ``hog`` and ``quit_now``."""
    app = Flowrra(redis_config(prefix, url, secret))
    app.task(max_retries=0)(nap)
    app.task(cpu_bound=True)(cube)
    app.task(max_retries=0)(hog)
    app.task(max_retries=0)(quit_now)
    return app


app = make_app()
