"""``flowrra demo``: a small, realistic workload on the embedded defaults.

32 IO tasks (24 "downloads", some of which fail and are retried with backoff, and 8
"parses", one of which fails for good), 4 "reports" (CPU tasks in worker processes), a
live progress line fed by the app's event bus, and a table of the results. No server is
needed.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections import Counter
from typing import TextIO

from flowrra.app import Flowrra
from flowrra.config import Config, ExecutorConfig
from flowrra.task import TaskResult

__all__ = ["main", "run_demo"]

app = Flowrra(Config(executor=ExecutorConfig(io_workers=8, cpu_workers=2, retry_delay=0.05)))


@app.task(max_retries=3)
async def download(page: int, flaky: bool) -> int:
    """Pretend to fetch a page: a short wait, and a transient error on flaky pages."""
    await asyncio.sleep(random.uniform(0.01, 0.08))
    if flaky and random.random() < 0.6:
        raise ConnectionError(f"page {page}: connection reset")
    return 1_000 + 37 * page


@app.task(max_retries=0)
async def parse(page: int) -> int:
    """Pretend to parse a page; page 13 is malformed and fails for good."""
    await asyncio.sleep(0.01)
    if page == 13:
        raise ValueError("page 13: malformed document")
    return page * 2


@app.task(cpu_bound=True)
def report(n: int) -> int:
    """A CPU-bound task: sum of squares below n, run in a worker process."""
    return sum(i * i for i in range(n))


class Progress:
    """A one-line progress display fed by task events."""

    def __init__(self, total: int, out: TextIO) -> None:
        self.total = total
        self.out = out
        self.counts: Counter[str] = Counter()
        self.started = time.perf_counter()

    def __call__(self, event: dict) -> None:
        kind = event["type"].removeprefix("task.")
        if kind in ("succeeded", "failed", "cancelled", "retrying"):
            self.counts[kind] += 1
            if self.out.isatty():  # redraw in place on a terminal; logs get the last line
                self.draw()

    def draw(self) -> None:
        done = self.counts["succeeded"] + self.counts["failed"] + self.counts["cancelled"]
        width = 30
        filled = width * done // self.total
        bar = "#" * filled + "-" * (width - filled)
        self.out.write(
            f"\r[{bar}] {done}/{self.total} done  ok={self.counts['succeeded']} "
            f"failed={self.counts['failed']} retries={self.counts['retrying']} "
            f"{time.perf_counter() - self.started:5.2f}s"
        )
        self.out.flush()


def _table(records: list[TaskResult]) -> str:
    lines = [f"{'task':10} {'args':16} {'status':9} {'retries':>7} {'ms':>7}  result / error"]
    for r in records:
        duration = f"{r.duration.total_seconds() * 1000:7.1f}" if r.duration else "      -"
        outcome = repr(r.result) if r.is_success else f"{r.error_type}: {r.error}"
        args = ", ".join(map(str, r.args))
        lines.append(
            f"{r.task_name or '':10} {args:16.16} {r.status.value:9} {r.retries:7} "
            f"{duration}  {outcome[:50]}"
        )
    return "\n".join(lines)


async def run_demo(out: TextIO = sys.stdout, seed: int = 7) -> list[TaskResult]:
    """Run the demo workload and print its progress and results table to ``out``."""
    random.seed(seed)
    pages = range(1, 25)
    progress = Progress(total=len(pages) + 8 + 4, out=out)
    app.events.subscribe(progress)
    out.write("flowrra demo: in-memory queue and results, no server needed\n")
    async with app:
        ids = await app.starmap(download, [(p, p % 4 == 0) for p in pages])
        ids += await app.map(parse, range(10, 18))
        ids += await app.map(report, [200_000, 400_000, 600_000, 800_000])
        records = [await app.wait_for_result(task_id, timeout=120) for task_id in ids]
    await app.events.unsubscribe(progress)
    progress.draw()
    out.write("\n\n" + _table(records) + "\n")
    counts = Counter(r.status.value for r in records)
    out.write(
        f"\n{len(records)} tasks: "
        + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        + f", {sum(r.retries for r in records)} retries\n"
    )
    return records


def main() -> int:
    """Entry point of ``flowrra demo``."""
    asyncio.run(run_demo())
    return 0
