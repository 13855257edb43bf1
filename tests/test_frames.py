"""Task records and schedules as DataFrames: every column keeps one dtype, whatever the
rows hold (integer results beside failures, no rows at all)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pandas as pd
import pytest

from flowrra import Flowrra
from flowrra.clock import utcnow
from flowrra.frames import RESULT_COLUMNS, SCHEDULE_COLUMNS


def _tasks(app: Flowrra) -> None:
    @app.task()
    async def add(a: int, b: int = 0) -> int:
        return a + b

    @app.task(max_retries=0)
    async def boom(text: str) -> None:
        raise ValueError(text)


async def test_integer_results_stay_integers_beside_a_failure(app: Flowrra) -> None:
    _tasks(app)
    async with app:
        ids = [await app.submit("add", i, b=10) for i in range(3)]
        ids.append(await app.submit("boom", "no"))
        for task_id in ids:
            await app.wait_for_result(task_id, timeout=10)
        frame = await app.results_frame()
    frame = frame.set_index("task_id").loc[ids]
    assert frame["result"].dtype == object
    assert frame["result"].tolist() == [10, 11, 12, None]
    assert all(type(value) is int for value in frame["result"].iloc[:3])
    assert frame["status"].tolist() == ["success"] * 3 + ["failed"]
    assert frame["args"].tolist() == [(0,), (1,), (2,), ("no",)]
    assert frame["kwargs"].tolist() == [{"b": 10}] * 3 + [{}]
    assert frame["error"].iloc[3] == "no"


async def test_duration_in_seconds_beside_the_timedelta(app: Flowrra) -> None:
    _tasks(app)
    async with app:
        record = await app.wait_for_result(await app.submit("add", 1), timeout=10)
        frame = await app.results_frame()
    columns = list(frame.columns)
    assert columns.index("duration_s") == columns.index("duration") + 1
    assert frame["duration_s"].dtype == "float64"
    assert frame["duration_s"].iloc[0] == pytest.approx(record.duration.total_seconds())
    assert frame["duration_s"].iloc[0] == pytest.approx(frame["duration"].iloc[0].total_seconds())


async def test_unfinished_tasks_have_no_duration_and_keep_the_dtypes(app: Flowrra) -> None:
    release = asyncio.Event()

    @app.task()
    async def hold() -> str:
        await release.wait()
        return "held"

    async with app:
        empty = await app.results_frame()
        ids = [await app.submit(hold) for _ in range(5)]  # 4 io workers: one waits
        live = await app.results_frame()
        release.set()
        for task_id in ids:
            await app.wait_for_result(task_id, timeout=10)
    assert set(live["status"]) == {"pending", "running"}
    assert live["duration_s"].isna().all() and live["duration"].isna().all()
    assert live["result"].tolist() == [None] * 5
    pd.testing.assert_series_equal(live.dtypes, empty.dtypes)


async def test_an_empty_results_frame_has_the_same_columns_and_dtypes(app: Flowrra) -> None:
    _tasks(app)
    async with app:
        await app.wait_for_result(await app.submit("add", 1), timeout=10)
        await app.wait_for_result(await app.submit("boom", "x"), timeout=10)
        full = await app.results_frame()
        empty = await app.results_frame(status="cancelled")
    assert len(full) == 2 and len(empty) == 0
    assert list(full.columns) == list(empty.columns) == list(RESULT_COLUMNS)
    pd.testing.assert_series_equal(full.dtypes, empty.dtypes)
    assert str(full["finished_at"].dt.tz) == "UTC"
    assert full["retries"].dtype == "int64" and full["priority"].dtype == "int64"
    assert list(full["status"].cat.categories) == [
        "pending",
        "running",
        "success",
        "failed",
        "retrying",
        "cancelled",
    ]


async def test_an_empty_schedules_frame_has_the_same_columns_and_dtypes(
    app: Flowrra, tmp_path: Path
) -> None:
    _tasks(app)
    scheduler = app.create_scheduler(f"sqlite:///{tmp_path}/s.db")
    empty = await scheduler.schedules_frame()
    await scheduler.schedule_interval("add", 3600, args=(1,), kwargs={"b": 2}, priority=3)
    await scheduler.schedule_cron("add", "0 9 * * *", args=(2,))
    await scheduler.schedule_once("add", utcnow(), args=(3,))
    full = await scheduler.schedules_frame()
    await scheduler.backend.close()
    assert len(full) == 3 and len(empty) == 0
    assert list(full.columns) == list(empty.columns) == list(SCHEDULE_COLUMNS)
    pd.testing.assert_series_equal(full.dtypes, empty.dtypes)
    assert sorted(full["type"]) == ["cron", "interval", "one_time"]
    assert full["priority"].dtype == "int64" and full["enabled"].dtype == bool
    row = full.set_index("type").loc["interval"]
    assert row["args"] == (1,) and row["kwargs"] == {"b": 2} and row["priority"] == 3
