"""Real scheduler processes on one database: two of them fire each of 300 due runs
exactly once, and a scheduler killed between submitting a run and recording it leaves
the run to another."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from flowrra.clock import utcnow
from flowrra.registry import TaskRegistry
from flowrra.scheduler import Scheduler

from .scheduler_support import KINDS, Recorder, backend_url, drop, unique_prefix

WORKER = Path(__file__).with_name("scheduler_worker.py")
ONCE, BEATS, BEAT = 240, 4, 0.2


def setup_scheduler(url: str, submit: Recorder | None = None) -> Scheduler:
    registry = TaskRegistry()

    @registry.task()
    async def record(key: str) -> None: ...

    return Scheduler(url, registry, 0.5, submit=submit)


async def start_worker(url: str, out: Path, *options: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), url, str(out), *options],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = await asyncio.to_thread(proc.stdout.readline)  # type: ignore[union-attr]
    assert line.strip() == "ready", line
    return proc


async def wait_exit(proc: subprocess.Popen, timeout: float = 30) -> int:
    return await asyncio.to_thread(proc.wait, timeout)


@pytest.fixture
async def url(request: pytest.FixtureRequest, tmp_path: Path):
    url = backend_url(request.param, tmp_path, unique_prefix())
    yield url
    await drop(url)


@pytest.mark.parametrize("url", KINDS, indirect=True)
async def test_two_processes_fire_each_due_run_exactly_once(url: str, tmp_path: Path) -> None:
    outs = [tmp_path / "a.txt", tmp_path / "b.txt"]
    start = time.time() + 1.2
    until = str(start + ONCE * 0.01 + 1.0)
    setup = setup_scheduler(url)
    try:
        await check_exactly_once(setup, url, outs, until)
    finally:
        await setup.backend.close()


async def check_exactly_once(setup: Scheduler, url: str, outs: list[Path], until: str) -> None:
    await setup.backend.initialize()  # tables exist before two processes race for them
    start = float(until) - ONCE * 0.01 - 1.0
    workers = [await start_worker(url, out, "--until", until) for out in outs]
    try:
        first = utcnow() + timedelta(seconds=start - time.time())
        once_ids = [
            await setup.schedule_once("record", first + timedelta(seconds=i * 0.01), (f"once-{i}",))
            for i in range(ONCE)
        ]
        beat_ids = {
            f"beat-{k}": await setup.schedule_interval(
                "record", BEAT, (f"beat-{k}",), start_at=first, missed_runs="run_all"
            )
            for k in range(BEATS)
        }
        assert [await wait_exit(w) for w in workers] == [0, 0]
    finally:
        for worker in workers:
            worker.kill()
    lines = [line for out in outs for line in out.read_text().split()]
    fired = Counter(lines)
    assert all(fired[f"once-{i}"] == 1 for i in range(ONCE)), fired
    for sid in once_ids:
        stored = await setup.get_schedule(sid)
        assert not stored.enabled and stored.last_run_at is not None
    total = ONCE
    for key, sid in beat_ids.items():
        dues = sorted(r.due_at for r in await setup.list_runs(sid, 1000))
        assert dues == [first + i * timedelta(seconds=BEAT) for i in range(len(dues))]
        assert fired[key] == len(dues) >= 3
        total += len(dues)
    assert total >= 250


@pytest.mark.parametrize("url", KINDS, indirect=True)
async def test_a_killed_scheduler_leaves_its_run_to_another(url: str, tmp_path: Path) -> None:
    out = tmp_path / "dead.txt"
    rec = Recorder()
    setup = setup_scheduler(url, rec)
    try:
        await check_killed(setup, rec, url, out)
    finally:
        await setup.backend.close()


async def check_killed(setup: Scheduler, rec: Recorder, url: str, out: Path) -> None:
    sid = await setup.schedule_once("record", utcnow(), ("precious",))
    doomed = await start_worker(url, out, "--die-after-submit", "--lease", "1")
    assert await wait_exit(doomed) == -9
    assert out.read_text() == "submitted precious\n"
    stranded = await setup.get_schedule(sid)
    assert stranded.enabled and stranded.lease_owner is not None  # submitted, never recorded
    await setup.start()
    await rec.wait_for(1, timeout=5)
    await setup.stop()
    assert rec.args_of() == [("precious",)]
    [run] = await setup.list_runs(sid)
    assert run.scheduler == setup.name and run.fired_at >= stranded.lease_until
    assert not (await setup.get_schedule(sid)).enabled
