"""Redis benchmarks (issue: Redis broker and backend), printed in one run.

(a) One process, broker and backend on Redis: 20,000 no-op IO tasks submitted in bulk
    (app.starmap) then awaited, end to end; target >= 5,000 tasks/s. Beside it a raw
    redis-py baseline doing the least a queue must: RPUSH the jobs in a pipeline, 4
    consumers LPOP 100 at a time and SET each result in a pipeline, then MGET them.
(b) Round trip of one task through a `flowrra worker` in another process: p50 < 2 ms,
    p99 < 10 ms.
(c) Bulk submit (app.starmap) of 20,000 tasks from a process that only submits
    (`start(workers=False)`, as a notebook driving workers elsewhere); target >= 50,000
    tasks/s. Beside it a raw redis-py baseline: the same number of pickled, signed
    payloads RPUSHed in one pipeline. The submit rate inside run (a), where the same
    process also runs the workers, is printed too.

Usage: python benchmarks/bench_redis.py [--n 20000] [--samples 300] [--rounds 3]
Each measurement runs --rounds times (alternating with its baseline); medians are shown.
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


async def bulk_submit(n: int) -> float:
    """Tasks/s of ``app.starmap`` of ``n`` tasks from an app without local workers."""
    prefix = f"bench-bulk-{uuid.uuid4().hex[:8]}"
    app = make_app(prefix, URL, SECRET)
    try:
        await app.start(workers=False)
        await app.starmap("nap", [(i, 0.0) for i in range(100)])  # connections, function
        started = time.perf_counter()
        await app.starmap("nap", [(i, 0.0) for i in range(n)])
        rate = n / (time.perf_counter() - started)
        await app.stop(wait=False)
        return rate
    finally:
        await cleanup(prefix)


async def raw_bulk(n: int) -> float:
    """Payloads/s of the least a bulk submit does: pickle and sign each, one pipeline."""
    import hmac
    import pickle

    prefix = f"bench-rawbulk-{uuid.uuid4().hex[:8]}"
    client = aioredis.from_url(URL)
    key = SECRET.encode()
    await client.ping()
    started = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        payload = pickle.dumps(("nap", (i, 0.0), {}), protocol=pickle.HIGHEST_PROTOCOL)
        pipe.rpush(f"{prefix}:q", hmac.digest(key, payload, "sha256") + payload)
    await pipe.execute()
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
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n, med = args.n, statistics.median
    runs: dict[str, list[float]] = {k: [] for k in ("e2e", "insubmit", "raw", "bulk", "rawbulk")}
    p50s: list[float] = []
    p99s: list[float] = []
    for r in range(args.rounds):
        end_to_end, in_run = asyncio.run(flowrra_end_to_end(n))
        runs["e2e"].append(end_to_end)
        runs["insubmit"].append(in_run)
        runs["raw"].append(asyncio.run(raw_baseline(n)))
        runs["bulk"].append(asyncio.run(bulk_submit(n)))
        runs["rawbulk"].append(asyncio.run(raw_bulk(n)))
        times = sorted(asyncio.run(round_trip(args.samples)))
        p50s.append(statistics.median(times) * 1e3)
        p99s.append(times[int(len(times) * 0.99) - 1] * 1e3)
        print(
            f"  round {r + 1}/{args.rounds}: end to end {end_to_end:,.0f}/s (raw "
            f"{runs['raw'][-1]:,.0f}), round trip p50 {p50s[-1]:.2f} ms p99 {p99s[-1]:.2f} ms, "
            f"bulk submit {runs['bulk'][-1]:,.0f}/s (raw {runs['rawbulk'][-1]:,.0f}, "
            f"in run (a) {in_run:,.0f})",
            flush=True,
        )
    e2e, raw, bulk, rawbulk = (med(runs[k]) for k in ("e2e", "raw", "bulk", "rawbulk"))
    print(f"Medians of {args.rounds} rounds")
    print(f"(a) {n:,} no-op IO tasks through Redis, one process")
    print(f"    flowrra end to end {e2e:10,.0f} tasks/s  (target >= 5,000)")
    print(f"    raw redis-py       {raw:10,.0f} jobs/s")
    print(f"    ratio              {e2e / raw:10.2f}x")
    print(f"(b) round trip through a worker process ({args.samples} samples a round)")
    print(f"    p50 {med(p50s):6.2f} ms (target < 2)   p99 {med(p99s):6.2f} ms (target < 10)")
    print(f"(c) bulk submit of {n:,} tasks, submit-only process")
    print(f"    flowrra app.starmap {bulk:10,.0f} tasks/s  (target >= 50,000)")
    print(f"    raw pickle+sign+RPUSH {rawbulk:10,.0f} payloads/s, ratio {bulk / rawbulk:.2f}x")
    print(f"    (inside run (a), workers in the same process: {med(runs['insubmit']):,.0f}/s)")


if __name__ == "__main__":
    main()
