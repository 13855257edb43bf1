"""Dashboard benchmarks (issue: a web dashboard), printed in one run.

(a) Scale: 100,000 task records on Redis; a `flowrra dashboard` process serves them.
    Time to load the tasks page as a browser does (the page, then the first page of
    records from /api/records) and a deep page (offset 50,000, status filter); target
    under 1 s. The server pages and filters: at most `limit` records cross the wire.
(b) Cost: 20,000 no-op tasks submitted in bulk and awaited, run by one `flowrra worker`
    process, with no dashboard and then with two dashboards open (two clients on
    /ws/table and /ws of a `flowrra dashboard` process); target: throughput with two
    dashboards at least 0.9 of throughput with none. Runs alternate; medians shown.

Usage: python benchmarks/bench_dashboard.py [--records 100000] [--n 20000] [--rounds 3]
Needs Redis on 127.0.0.1:6379 and the dashboard extra; keys live under a fresh prefix and
are deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
URL = os.environ.get("FLOWRRA_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def env_for(prefix: str) -> dict[str, str]:
    return {
        **os.environ,
        "FLOWRRA_BENCH_PREFIX": prefix,
        "PYTHONPATH": str(ROOT),
        "FLOWRRA_SECRET_KEY": "bench-secret-0123456789",
    }


def start(prefix: str, *command: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "flowrra", *command, "--app", "benchmarks.dash_app:app"],
        env=env_for(prefix),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def fetch(url: str) -> bytes:
    return urllib.request.urlopen(url, timeout=30).read()


async def fill(prefix: str, records: int) -> None:
    """``records`` finished no-op tasks, run by this process's own workers."""
    from benchmarks import dash_app

    app = dash_app.make_app(prefix)
    await app.start()
    ids: list[str] = []
    for chunk in range(0, records, 20_000):
        ids += await app.starmap(
            dash_app.noop, [(i,) for i in range(chunk, min(records, chunk + 20_000))]
        )
    for task_id in ids:
        await app.wait_for_result(task_id)
    await app.stop()


def part_a(prefix: str, records: int, port: int) -> None:
    started = time.perf_counter()
    asyncio.run(fill(prefix, records))
    print(f"(a) {records:,} records stored in {time.perf_counter() - started:.1f} s")
    dashboard = start(prefix, "dashboard", "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/api/health")
        loads, deep = [], []
        for _ in range(5):
            t0 = time.perf_counter()
            fetch(f"{base}/tasks")
            page = json.loads(fetch(f"{base}/api/records?limit=100"))
            loads.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            fetch(f"{base}/api/records?status=success&offset=50000&limit=100")
            deep.append(time.perf_counter() - t0)
        print(
            f"(a) tasks page (shell + first 100 of {page['total']:,} records): median "
            f"{statistics.median(loads) * 1e3:.0f} ms, max {max(loads) * 1e3:.0f} ms "
            f"(target < 1000 ms); page at offset 50,000 with a status filter: median "
            f"{statistics.median(deep) * 1e3:.0f} ms"
        )
    finally:
        stop(dashboard)


async def run_batch(app: Any, n: int) -> float:
    from benchmarks import dash_app

    t0 = time.perf_counter()
    ids = await app.starmap(dash_app.noop, [(i,) for i in range(n)])
    await asyncio.gather(*(app.wait_for_result(i) for i in ids))
    return n / (time.perf_counter() - t0)


async def clients(port: int, stop_event: asyncio.Event) -> int:
    import websockets

    frames = 0

    async def follow(path: str) -> None:
        nonlocal frames
        async with websockets.connect(f"ws://127.0.0.1:{port}{path}") as socket:
            while not stop_event.is_set():
                try:
                    await asyncio.wait_for(socket.recv(), 0.5)
                    frames += 1
                except TimeoutError:
                    pass

    await asyncio.gather(*(follow(p) for p in ("/ws/table", "/ws", "/ws/table", "/ws")))
    return frames


async def part_b_round(prefix: str, n: int, port: int | None) -> tuple[float, int]:
    from benchmarks import dash_app

    app = dash_app.make_app(prefix)
    await app.start(workers=False)
    try:
        if port is None:
            return await run_batch(app, n), 0
        stop_event = asyncio.Event()
        watching = asyncio.ensure_future(clients(port, stop_event))
        await asyncio.sleep(1.0)  # the clients are connected and have had their first state
        rate = await run_batch(app, n)
        stop_event.set()
        return rate, await watching
    finally:
        await app.stop()


def part_b(prefix: str, n: int, rounds: int, port: int) -> None:
    worker = start(prefix, "worker")
    dashboard = start(prefix, "dashboard", "--port", str(port))
    try:
        wait_http(f"http://127.0.0.1:{port}/api/health")
        asyncio.run(part_b_round(prefix, 1000, None))  # warm up: the worker is taking tasks
        none, two, frames = [], [], []
        for _ in range(rounds):
            none.append(asyncio.run(part_b_round(prefix, n, None))[0])
            rate, seen = asyncio.run(part_b_round(prefix, n, port))
            two.append(rate)
            frames.append(seen)
        a, b = statistics.median(none), statistics.median(two)
        print(
            f"(b) {n:,} tasks through one flowrra worker: no dashboard {a:,.0f} tasks/s, two "
            f"dashboards open {b:,.0f} tasks/s (ratio {b / a:.2f}, target >= 0.9; "
            f"{statistics.median(frames):.0f} frames received by the 4 sockets per round)"
        )
    finally:
        stop(dashboard)
        stop(worker)


def clean(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(URL)
    keys = list(client.scan_iter(f"{prefix}*", count=10_000))
    for i in range(0, len(keys), 5000):
        client.delete(*keys[i : i + 5000])


def main() -> None:
    sys.path.insert(0, str(ROOT))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="a,b")
    parser.add_argument("--port", type=int, default=5599)
    args = parser.parse_args()
    for part in args.only.split(","):
        prefix = f"flowrra-bench-{uuid.uuid4().hex[:8]}"
        try:
            if part == "a":
                part_a(prefix, args.records, args.port)
            elif part == "b":
                part_b(prefix, args.n, args.rounds, args.port)
        finally:
            clean(prefix)


if __name__ == "__main__":
    main()
