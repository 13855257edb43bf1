"""The app ``flowrra worker`` processes run in the workflow tests (configured from env).

``python -m tests.workflow_app FILE`` submits a chord and a chain from a process that
exits at once (after writing their ids to FILE): the test waits for them elsewhere.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from flowrra import BackendConfig, BrokerConfig, Config, ExecutorConfig, Flowrra
from flowrra.workflows import call, chain, chord

PREFIX = os.environ.get("FLOWRRA_TEST_PREFIX", "flowrra-test")
URL = os.environ.get("FLOWRRA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def add(x: int, y: int = 1) -> int:
    return x + y


async def total(xs: list[int]) -> int:
    return sum(xs)


async def tally(xs: list[int], path: str) -> int:
    """A chord callback that notes each run of it in ``path``."""
    with open(path, "a") as log:
        log.write("run\n")
    return sum(xs)


async def stall_once(x: int, path: str) -> int:
    """Notes each run in ``path``; the first run never ends (its worker is killed)."""
    first = not Path(path).exists()
    with open(path, "a") as log:
        log.write("run\n")
    if first:
        await asyncio.Event().wait()
    return x * 10


def make_app(
    prefix: str = PREFIX, url: str = URL, secret: str | None = None, tasks: bool = True
) -> Flowrra:
    """An app on Redis whose keys all live under ``prefix``, with the tasks above (or
    none: ``tasks=False``)."""
    app = Flowrra(
        Config(
            broker=BrokerConfig(url, queue_key=f"{prefix}:queue"),
            backend=BackendConfig(f"{url}{'&' if '?' in url else '?'}key_prefix={prefix}"),
            executor=ExecutorConfig(io_workers=8, retry_delay=0.05),
            secret_key=secret,
        )
    )
    for task in (add, total, tally, stall_once) if tasks else ():
        app.task(max_retries=0)(task)
    return app


app = make_app()


async def _submit_and_exit(out: str) -> None:
    await app.start(workers=False)
    first = await app.run(chord((call(add, i) for i in range(20)), total))
    second = await app.run(chain(call(add, 1), add, call(add, y=100)))
    await app.stop()
    Path(out).write_text(f"{first.id} {second.id}")


if __name__ == "__main__":
    asyncio.run(_submit_and_exit(sys.argv[1]))
