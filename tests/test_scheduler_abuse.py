"""The scheduler under abuse: reversed cron ranges, intervals that are not a finite
positive number, many processes starting on one fresh SQLite file at once, and a MySQL
scheduler used after its app stopped."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from flowrra import Flowrra
from flowrra.management import FlowrraManager
from flowrra.scheduler import CronExpression, ScheduleError
from flowrra.scheduler.backends import SQLiteSchedulerBackend

from .scheduler_support import drop, unique_prefix
from .services import MYSQL_URL, require_mysql

STARTER = Path(__file__).with_name("scheduler_starter.py")
ROOT = Path(__file__).resolve().parent.parent


def child_env() -> dict[str, str]:
    """The environment of a child process that imports flowrra from this tree."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT)}


# ------------------------------------------------------------------ cron ranges
@pytest.mark.parametrize(
    ("expression", "field", "written"),
    [
        ("10-5 * * * *", "minute", "10-5"),
        ("0 22-6 * * *", "hour", "22-6"),
        ("0 0 20-3 * *", "day of month", "20-3"),
        ("0 0 1 11-2 *", "month", "11-2"),
        ("0 0 1 dec-jan *", "month", "dec-jan"),
        ("0 9 * * fri-mon", "day of week", "fri-mon"),
        ("1,50-10/5 * * * *", "minute", "50-10"),
    ],
)
def test_a_reversed_range_names_its_field(expression: str, field: str, written: str) -> None:
    with pytest.raises(ScheduleError) as info:
        CronExpression(expression, "UTC")
    assert isinstance(info.value, ValueError)  # 0.1.8 raised ValueError: Invalid range
    assert f"{field} field: range {written} is reversed" in str(info.value)
    assert "to wrap around" in str(info.value)


@pytest.mark.parametrize(
    ("expression", "weekdays"),
    [
        ("0 9 * * mon-fri", {1, 2, 3, 4, 5}),
        ("0 9 * * sat-sun", {6, 0}),  # Sunday ends the week as 7
        ("0 9 * * 5-0", {5, 6, 0}),
        ("0 9 * * 1-7", {0, 1, 2, 3, 4, 5, 6}),
    ],
)
def test_ranges_ending_on_sunday_are_not_reversed(expression: str, weekdays: set[int]) -> None:
    assert CronExpression(expression, "UTC").weekdays == weekdays


async def test_schedule_cron_refuses_a_reversed_range(tmp_path: Path) -> None:
    app = Flowrra()

    @app.task()
    async def report() -> None: ...

    scheduler = app.create_scheduler(f"sqlite:///{tmp_path / 's.db'}")
    try:
        with pytest.raises(ScheduleError, match="minute field: range 10-5 is reversed"):
            await scheduler.schedule_cron("report", "10-5 * * * *")
        assert await scheduler.list_schedules() == []
    finally:
        await scheduler.backend.close()


# -------------------------------------------------------------------- intervals
@pytest.fixture
async def manager(tmp_path: Path) -> AsyncIterator[FlowrraManager]:
    app = Flowrra()

    @app.task()
    async def poll() -> None: ...

    scheduler = app.create_scheduler(f"sqlite:///{tmp_path / 's.db'}")
    yield FlowrraManager(app)
    await scheduler.backend.close()


BAD_INTERVALS = [
    (math.inf, "finite"),
    (-math.inf, "finite"),
    (math.nan, "finite"),
    (0, "positive"),
    (-5, "positive"),
    (timedelta(0), "positive"),
    (timedelta(seconds=-1), "positive"),
    (timedelta.max, "at most"),
    (1e300, "at most"),
    (10**400, "at most"),
]


@pytest.mark.parametrize(("interval", "message"), BAD_INTERVALS)
async def test_an_interval_must_be_finite_and_positive(
    manager: FlowrraManager, interval: object, message: str
) -> None:
    scheduler = manager.app.scheduler
    with pytest.raises(ScheduleError, match=message) as info:
        await scheduler.schedule_interval("poll", interval)
    assert isinstance(info.value, ValueError)
    with pytest.raises(ScheduleError, match=message):
        await manager.create_schedule_interval("poll", interval)  # type: ignore[arg-type]
    assert await scheduler.list_schedules() == []


@pytest.mark.parametrize("option", ["timeout", "retry_delay"])
@pytest.mark.parametrize("value", [math.inf, math.nan])
async def test_other_durations_must_be_finite(
    manager: FlowrraManager, option: str, value: float
) -> None:
    with pytest.raises(ScheduleError, match=f"{option} must be a finite number"):
        await manager.app.scheduler.schedule_interval("poll", 60, **{option: value})


@pytest.mark.parametrize("value", [math.inf, math.nan])
def test_check_interval_must_be_finite(value: float) -> None:
    app = Flowrra()
    with pytest.raises(ValueError, match="check_interval must be a finite number"):
        app.create_scheduler("sqlite:///:memory:", check_interval=value)


# ------------------------------------------------- SQLite: starting together
class LockRetries(logging.Handler):
    """Sets an asyncio event when the SQLite backend says it will try a locked database
    again (emitted on the loop's thread)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "is locked" in record.getMessage():
            self.seen.set()


@pytest.fixture
def lock_retries() -> Iterator[LockRetries]:
    handler = LockRetries()
    logger = logging.getLogger("flowrra.scheduler")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


async def test_start_waits_while_another_process_holds_a_fresh_file(
    tmp_path: Path, lock_retries: LockRetries
) -> None:
    """SQLite answers "database is locked" at once, without waiting for busy_timeout,
    when switching a file to WAL could deadlock: here, another connection holds the
    write lock of the fresh (not yet WAL) file. The start must wait for it."""
    path = tmp_path / "fresh.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    backend = SQLiteSchedulerBackend(str(path), timeout=10)
    starting = asyncio.create_task(backend.initialize())
    try:
        retried = asyncio.create_task(lock_retries.seen.wait())
        await asyncio.wait({starting, retried}, return_when=asyncio.FIRST_COMPLETED)
        assert not starting.done(), starting.exception()  # it waits instead of failing
        other.execute("COMMIT")
        await starting
        assert await backend.count() == (0, 0)
        mode = other.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"
    finally:
        retried.cancel()
        other.close()
        await backend.close()


async def test_start_gives_up_after_the_lock_timeout_saying_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "held.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    backend = SQLiteSchedulerBackend(str(path), timeout=0.2)
    try:
        with pytest.raises(Exception, match=r"longer than the lock timeout \(0.2s\).*\?timeout="):
            await backend.initialize()
    finally:
        other.close()
        await backend.close()


def test_twenty_processes_start_together_on_a_fresh_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'together.db'}"
    count = 20
    read_end, write_end = os.pipe()
    procs = []
    try:
        for _ in range(count):
            procs.append(
                subprocess.Popen(
                    [sys.executable, str(STARTER), url, str(read_end)],
                    pass_fds=(read_end,),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    cwd=ROOT,
                    env=child_env(),
                )
            )
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
    finally:
        os.close(read_end)
        os.close(write_end)  # end of file: every process starts now
    failures = []
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        if proc.returncode:
            failures.append(err.strip().splitlines()[-1])
    assert failures == []
    check = sqlite3.connect(tmp_path / "together.db")
    try:
        assert check.execute("SELECT COUNT(*) FROM flowrra_schedules").fetchone()[0] == count
    finally:
        check.close()


# ----------------------------------------------------- MySQL after the app stopped
AFTER_STOP = """
import asyncio
import sys

from flowrra import Flowrra

app = Flowrra()


@app.task()
async def ping() -> None: ...


scheduler = app.create_scheduler(sys.argv[1])


async def run_app() -> str:
    async with app:
        return await scheduler.schedule_interval("ping", 60)


async def same_loop() -> None:
    schedule_id = await run_app()
    print(len(await scheduler.list_runs(schedule_id)), len(await scheduler.list_schedules()))


if sys.argv[2] == "same-loop":
    asyncio.run(same_loop())
else:
    schedule_id = asyncio.run(run_app())
    print(len(asyncio.run(scheduler.list_runs(schedule_id))), 1)
"""


@pytest.fixture
async def mysql_url() -> AsyncIterator[str]:
    require_mysql()
    url = f"{MYSQL_URL}?table_prefix={unique_prefix()}"
    yield url
    await drop(url)


@pytest.mark.parametrize("how", ["same-loop", "new-loop"])
def test_mysql_used_after_the_app_stopped_exits_cleanly(
    mysql_url: str, tmp_path: Path, how: str
) -> None:
    script = tmp_path / "after_stop.py"
    script.write_text(textwrap.dedent(AFTER_STOP))
    done = subprocess.run(
        [sys.executable, str(script), mysql_url, how],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=child_env(),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "1"]
    assert "Exception ignored" not in done.stderr, done.stderr
    assert "Event loop is closed" not in done.stderr, done.stderr
