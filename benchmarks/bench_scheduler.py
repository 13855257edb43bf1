"""Benchmark of the persistent scheduler: 10,000 schedules in PostgreSQL, 100 due each
second.

Usage: python benchmarks/bench_scheduler.py [--url URL] [--seconds S] [--rounds N]
[--schedules N] [--per-second N]

Each round fills a fresh table prefix with ``--schedules`` interval schedules (interval
``schedules / per-second`` seconds) so that ``--per-second`` of them fall due every
second; in the "burst" layout they all fall due on the same instant of each second, in
the "spread" layout evenly through it. It then starts a scheduler (timed: connect, check
the tables, first look for due runs), lets it fire for ``--seconds`` and reads the
lateness of every run (fire time minus due time) from the run history. Rounds alternate
the layouts; medians are reported. The app is the real one (``app.apply`` into the
in-memory queue, a no-op task).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from datetime import timedelta
from typing import Any

from flowrra import Flowrra
from flowrra.clock import utcnow
from flowrra.scheduler import Scheduler
from flowrra.scheduler.backends import get_scheduler_backend

DEFAULT_URL = os.environ.get(
    "FLOWRRA_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def with_prefix(url: str, prefix: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}table_prefix={prefix}"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def populate(
    scheduler: Scheduler, count: int, per_second: int, burst: bool, lead: float
) -> Any:
    """``count`` interval schedules; ``per_second`` due each second from now + ``lead``."""
    period = count / per_second
    first = utcnow() + timedelta(seconds=lead)
    first = first.replace(microsecond=0) + timedelta(seconds=1)
    chunk = 200
    for start in range(0, count, chunk):
        await asyncio.gather(
            *(
                scheduler.schedule_interval(
                    "noop",
                    period,
                    args=(i,),
                    start_at=first
                    + timedelta(seconds=i // per_second)
                    + (timedelta(0) if burst else timedelta(seconds=(i % per_second) / per_second)),
                    missed_runs="run_all",
                )
                for i in range(start, min(count, start + chunk))
            )
        )
    return first


async def one_round(args: argparse.Namespace, burst: bool) -> dict[str, float]:
    prefix = f"bench{uuid.uuid4().hex[:8]}_"
    url = with_prefix(args.url, prefix)
    app = Flowrra()

    @app.task(max_retries=0)
    async def noop(i: int) -> None:
        return None

    async def submit(task_name: str, task_args: tuple, kwargs: dict, **options: Any) -> str:
        return await app.apply(task_name, task_args, kwargs, **options)

    filler = Scheduler(url, app.registry, submit=submit)
    setup_started = time.perf_counter()
    lead = 4.0 + args.schedules / 600  # room for inserting them and starting
    first = await populate(filler, args.schedules, args.per_second, burst, lead)
    setup = time.perf_counter() - setup_started
    if (first - utcnow()).total_seconds() < 1.5:
        print("warning: inserting the schedules ran past their first due time", file=sys.stderr)
    await filler.backend.close()
    await asyncio.sleep(max(0.0, (first - utcnow()).total_seconds() - 1.5))

    await app.start()
    scheduler = Scheduler(url, app.registry, 60.0, submit=submit)  # a fresh process's view
    started = time.perf_counter()
    await scheduler.start()
    start_seconds = time.perf_counter() - started
    probe = get_scheduler_backend(url)
    checked = time.perf_counter()
    await probe.next_due_time(utcnow(), ["noop"])
    check_seconds = time.perf_counter() - checked
    await probe.close()

    end = first + timedelta(seconds=args.seconds)
    await asyncio.sleep(max(0.0, (end - utcnow()).total_seconds()) + 0.5)
    await scheduler.stop()
    await app.stop()

    reader = get_scheduler_backend(url)
    lateness: list[float] = []
    fired_tasks = [t for t in await reader.list_all() if t.last_run_at is not None]
    for task in fired_tasks:
        for run in await reader.list_runs(task.id, 1000):
            if run.due_at < end:
                lateness.append((run.fired_at - run.due_at).total_seconds() * 1000)
    await reader.drop_tables()
    await reader.close()
    expected = args.per_second * args.seconds
    return {
        "setup_s": setup,
        "start_s": start_seconds,
        "check_ms": check_seconds * 1000,
        "fired": len(lateness),
        "expected": expected,
        "p50_ms": percentile(lateness, 0.50),
        "p99_ms": percentile(lateness, 0.99),
        "max_ms": max(lateness),
    }


def show(layout: str, results: list[dict[str, float]]) -> None:
    med = {key: statistics.median(r[key] for r in results) for key in results[0]}
    print(
        f"{layout:6} | start {med['start_s'] * 1000:7.1f} ms | first check "
        f"{med['check_ms']:6.1f} ms | fired {int(med['fired']):5d}/{int(med['expected'])} | "
        f"lateness p50 {med['p50_ms']:6.1f} ms, p99 {med['p99_ms']:6.1f} ms, "
        f"max {med['max_ms']:6.1f} ms | setup {med['setup_s']:5.1f} s"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=1, help="rounds per layout")
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--per-second", type=int, default=100)
    args = parser.parse_args()
    print(
        f"{args.schedules} schedules, {args.per_second} due per second, {args.seconds:g} s per "
        f"round, {args.rounds} round(s) per layout; Python {sys.version.split()[0]}; "
        f"{get_scheduler_backend(args.url).display_url}"
    )
    results: dict[str, list[dict[str, float]]] = {"burst": [], "spread": []}
    for _ in range(args.rounds):
        for layout in ("burst", "spread"):
            result = await one_round(args, burst=layout == "burst")
            results[layout].append(result)
            show(layout, [result])
    print("medians:")
    for layout, rounds in results.items():
        show(layout, rounds)
    worst = max(statistics.median(r["p99_ms"] for r in rounds) for rounds in results.values())
    start = max(statistics.median(r["start_s"] for r in rounds) for rounds in results.values())
    print(
        f"targets: start < 1 s: {'yes' if start < 1 else 'NO'} ({start * 1000:.0f} ms); "
        f"lateness p99 < 100 ms: {'yes' if worst < 100 else 'NO'} ({worst:.1f} ms)"
    )


if __name__ == "__main__":
    asyncio.run(main())
