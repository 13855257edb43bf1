"""Redis benchmarks (issue: Redis broker and backend), printed in one run.

(a) One process, broker and backend on Redis: 20,000 no-op IO tasks submitted in bulk
    (app.starmap) then awaited, end to end; target >= 5,000 tasks/s. Beside it a raw
    redis-py baseline doing the least a queue must: RPUSH the jobs in a pipeline, 4
    consumers LPOP 100 at a time and SET each result in a pipeline, then MGET them.
(b) Round trip of one task through a `flowrra worker` in another process: p50 < 2 ms,
    p99 < 10 ms.
(c) Bulk submit (app.starmap) of 20,000 tasks; target >= 50,000 tasks/s.

Usage: python benchmarks/bench_redis.py [--n 20000] [--samples 300]
Needs Redis on 127.0.0.1:6379; uses keys under a random prefix and deletes them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.redis_app import make_app  # noqa: E402 - the repo root goes on sys.path first

URL = "redis://127.0.0.1:6379/0"
SECRET = "bench-secret-0123456789abcdef"


async def cleanup(prefix: str) -> None:
    client = aioredis.from_url(URL)
    keys = [k async for k in client.scan_iter(f"{prefix}*")]
    for start in range(0, len(keys), 1000):
        await client.delete(*keys[start : start + 1000])
    await client.aclose()


async def flowrra_end_to_end(n: int) -> tuple[float, float]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    app = make_app(prefix, URL, SECRET)
    try:
        async with app:
            started = time.perf_counter()
            ids = await app.starmap("nap", [(i, 0.0) for i in range(n)])
            submitted = time.perf_counter()
            for task_id in ids:
                await app.wait_for_result(task_id)
            done = time.perf_counter()
        return n / (done - started), n / (submitted - started)
    finally:
        await cleanup(prefix)


async def raw_baseline(n: int) -> float:
    prefix = f"bench-raw-{uuid.uuid4().hex[:8]}"
    client = aioredis.from_url(URL)
    queue = f"{prefix}:q"

    async def consumer() -> None:
        while True:
            jobs = await client.lpop(queue, 100)
            if not jobs:
                return
            pipe = client.pipeline(transaction=False)
            for job in jobs:
                pipe.set(f"{prefix}:r:{job.decode()}", b"null")
            await pipe.execute()

    started = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        pipe.rpush(queue, str(i))
    await pipe.execute()
    await asyncio.gather(*(consumer() for _ in range(4)))
    for start in range(0, n, 1000):
        await client.mget([f"{prefix}:r:{i}" for i in range(start, min(n, start + 1000))])
    rate = n / (time.perf_counter() - started)
    await client.aclose()
    await cleanup(prefix)
    return rate


async def round_trip(samples: int) -> list[float]:
    prefix = f"bench-rt-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, FLOWRRA_TEST_PREFIX=prefix, FLOWRRA_SECRET_KEY=SECRET)
    worker = subprocess.Popen(
        [sys.executable, "-m", "flowrra", "worker", "--app", "tests.redis_app:app",
         "--loglevel", "warning"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    app = make_app(prefix, URL, SECRET)
    times: list[float] = []
    try:
        await app.start(workers=False)
        await app.wait_for_result(await app.submit("nap", 0, 0.0), timeout=60)  # worker up
        for i in range(samples):
            started = time.perf_counter()
            await app.wait_for_result(await app.submit("nap", i, 0.0), timeout=10)
            times.append(time.perf_counter() - started)
        await app.stop()
    finally:
        worker.terminate()
        worker.wait(60)
        await cleanup(prefix)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()
    end_to_end, submit_rate = asyncio.run(flowrra_end_to_end(args.n))
    raw = asyncio.run(raw_baseline(args.n))
    times = sorted(asyncio.run(round_trip(args.samples)))
    p50 = statistics.median(times) * 1e3
    p99 = times[int(len(times) * 0.99) - 1] * 1e3
    print(f"(a) {args.n:,} no-op IO tasks through Redis, one process")
    print(f"    flowrra end to end {end_to_end:10,.0f} tasks/s  (target >= 5,000)")
    print(f"    raw redis-py       {raw:10,.0f} jobs/s")
    print(f"    ratio              {end_to_end / raw:10.2f}x")
    print(f"(b) round trip through a worker process ({args.samples} samples)")
    print(f"    p50 {p50:6.2f} ms (target < 2)   p99 {p99:6.2f} ms (target < 10)")
    print(f"(c) bulk submit of {args.n:,} tasks: {submit_rate:,.0f} tasks/s (target >= 50,000)")


if __name__ == "__main__":
    main()
