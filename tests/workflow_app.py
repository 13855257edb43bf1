"""The app ``flowrra worker`` processes run in the workflow tests (configured from env).

``python -m tests.workflow_app FILE`` submits a chord and a chain from a process that
exits at once (after writing their ids to FILE): the test waits for them elsewhere.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from flowrra import Flowrra
from flowrra.workflows import call, chain, chord

from .redis_app import PREFIX, URL, redis_config


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
    app = Flowrra(redis_config(prefix, url, secret))
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
