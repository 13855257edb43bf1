"""Run (d) of bench_redis.py on flowrra 0.1.8; bench_redis runs this with the 0.1.8 python.

Usage: FLOWRRA_018_PYTHON -I redis_loop_018.py URL N (a copy in a temp dir, so that the repo
is on neither the cwd nor sys.path). One process, broker and backend on Redis at URL (0.1.8:
`Config(broker=BrokerConfig(url, queue_key=...), backend=BackendConfig(url))`, 4 IO
workers, its default), N no-op tasks submitted one at a time with `await app.submit(noop)`,
then each awaited with `await app.wait_for_result(task_id)`. Prints one JSON line: the
version, the seconds of the loop, of its submit part, and the errors.

0.1.8 stores records at the fixed keys ``flowrra:task:<id>`` (no prefix); the queue key is
unique to this run; both are deleted at the end. Its `wait_for` GETs and then SUBSCRIBEs,
so a completion published in between is lost (a known 0.1.8 bug): each wait has a timeout
of LOST_WAKEUP_S, after which the record is read again; such lost wake-ups are counted.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

LOST_WAKEUP_S = 2.0


async def noop() -> None:
    return None


async def wait_one(app, task_id: str, errors: Counter) -> bool:
    """Wait for ``task_id``; True if the wake-up was lost (it completed meanwhile)."""
    while True:
        try:
            await app.wait_for_result(task_id, timeout=LOST_WAKEUP_S)
            return False
        except TimeoutError:
            record = await app.get_result(task_id)
            if record is not None and record.status.value in ("success", "failed"):
                return True
        except Exception as exc:
            errors[f"wait: {type(exc).__name__}: {str(exc)[:120]}"] += 1
            return False


async def cleanup(url: str, queue_key: str, ids: list[str]) -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(url)
    keys = [f"flowrra:task:{task_id}" for task_id in ids] + [queue_key]
    for start in range(0, len(keys), 1000):
        await client.delete(*keys[start : start + 1000])
    await client.aclose()


async def main(url: str, n: int) -> dict:
    import flowrra
    from flowrra import BackendConfig, BrokerConfig, Config, Flowrra

    where = Path(flowrra.__file__).parent.parent
    assert flowrra.__version__ == "0.1.8", f"imported flowrra {flowrra.__version__}"
    assert where.name.endswith("-packages"), f"flowrra imported from {where}, not a venv"
    queue_key = f"bench018-{uuid.uuid4().hex[:8]}:queue"
    app = Flowrra(Config(broker=BrokerConfig(url, queue_key=queue_key), backend=BackendConfig(url)))
    app.task()(noop)
    ids: list[str] = []
    errors: Counter = Counter()
    lost = 0
    try:
        async with app:
            started = time.perf_counter()
            for _ in range(n):
                try:
                    ids.append(await app.submit(noop))
                except Exception as exc:
                    errors[f"submit: {type(exc).__name__}: {str(exc)[:120]}"] += 1
            submitted = time.perf_counter()
            for task_id in ids:
                lost += await wait_one(app, task_id, errors)
            done = time.perf_counter()
    finally:
        await cleanup(url, queue_key, ids)
    return {
        "version": flowrra.__version__,
        "seconds": done - started,
        "submit_seconds": submitted - started,
        "errors": dict(errors),
        "lost_wakeups": lost,
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], int(sys.argv[2])))))
