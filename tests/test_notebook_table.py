"""The task table without a browser: its state (``counts``, ``rows``, ``detail``), the
messages it sends through a recording comm, and its front-end messages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import comm
import pytest
from comm.base_comm import BaseComm

from flowrra import Config, ExecutorConfig, Flowrra, runtime
from flowrra.notebook import TaskTable
from flowrra.notebook.table_state import TaskTableState, format_rows, row_from_record

ROW_KEYS = {"task_id", "task_name", "status", "submitted_at", "duration", "retries", "error"}


class RecordingComm(BaseComm):
    """A comm that keeps what the widget sends."""

    def __init__(self, **kwargs: Any) -> None:
        self.sent: list[tuple[str, Any]] = []
        super().__init__(**kwargs)

    def publish_msg(
        self,
        msg_type: str,
        data: Any = None,
        metadata: Any = None,
        buffers: Any = None,
        **keys: Any,
    ) -> None:
        self.sent.append((msg_type, data))

    def updates(self) -> list[dict]:
        return [d for t, d in self.sent if t == "comm_msg" and d.get("method") == "update"]

    def front_end_says(self, content: dict) -> None:
        """Deliver a custom message as the browser would."""
        self.handle_msg(
            {"content": {"data": {"method": "custom", "content": content}}, "buffers": []}
        )


@pytest.fixture(autouse=True)
def recording_comm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(comm, "create_comm", RecordingComm)


@pytest.fixture
def app() -> Iterator[Flowrra]:
    """An app on the runtime loop (as in a kernel), with tasks: nap, boom, slow."""
    application = Flowrra(Config(executor=ExecutorConfig(io_workers=4, max_queue_size=20_000)))

    @application.task()
    async def nap(i: int = 0) -> int:
        return i

    @application.task(max_retries=1, retry_delay=0.01)
    async def boom() -> None:
        raise ValueError("boom")

    @application.task()
    async def slow() -> None:
        await asyncio.sleep(30)

    @application.task()
    async def blink() -> None:
        await asyncio.sleep(0.001)

    runtime.run_sync(application.start)
    yield application
    runtime.run_sync(application.stop, False)


def run(fn: Callable[..., Any], *args: Any) -> Any:
    return runtime.run_sync(fn, *args)


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def wait_all(app: Flowrra, ids: list[str]) -> None:
    for task_id in ids:
        run(app.wait_for_result, task_id, 10)


def test_a_table_opened_late_shows_the_earlier_tasks(app: Flowrra) -> None:
    wait_all(app, [*run(app.map, "nap", range(5)), run(app.submit, "boom")])
    table = TaskTable(app)
    assert table.counts["success"] == 5 and table.counts["failed"] == 1
    assert table.total == 6 and len(table.rows) == 6
    assert set(table.rows[0]) >= ROW_KEYS
    failed = next(r for r in table.rows if r["status"] == "failed")
    assert failed["error"] == "boom" and failed["retries"] == 1
    assert set(table.task_names) == {"nap", "boom", "slow", "blink"}
    table.close()


def test_it_follows_events_and_shows_running_tasks_first(app: Flowrra) -> None:
    table = TaskTable(app, refresh_hz=20)
    slow = run(app.submit, "slow")
    wait_all(app, run(app.map, "nap", range(3)))
    eventually(lambda: table.counts["success"] == 3 and table.counts["running"] == 1)
    assert table.rows[0]["task_id"] == slow and table.rows[0]["status"] == "running"
    assert [r["status"] for r in table.rows[1:]] == ["success"] * 3
    assert table.rows[1]["submitted_at"] >= table.rows[3]["submitted_at"]  # newest first
    assert table.mode == "events" and table.app_state == "running"
    table.close()


def test_flushes_are_coalesced_one_message_each(app: Flowrra) -> None:
    table = TaskTable(app, refresh_hz=4)
    sent = table.comm.updates
    before = len(sent())
    flushes_before = table.flushes
    started = time.monotonic()
    for _ in range(10):  # 100 tasks over about a second: 300 events
        wait_all(app, run(app.map, "nap", range(10)))
        time.sleep(0.1)
    eventually(lambda: table.counts["success"] == 100)
    elapsed = time.monotonic() - started
    messages = sent()[before:]
    assert len(messages) == table.flushes - flushes_before  # one message per flush
    assert len(messages) <= 4 * elapsed + 2
    assert all({"counts", "rows"} <= set(m["state"]) for m in messages)  # hold_sync
    table.close()


def test_a_burst_switches_to_snapshots_and_ends_exact(app: Flowrra) -> None:
    table = TaskTable(app, refresh_hz=10)
    modes: list[str] = []
    table.observe(lambda change: modes.append(change["new"]), names="mode")
    wait_all(app, run(app.starmap, "blink", [()] * 4_000))  # a second or two of events
    eventually(lambda: table.counts["success"] == 4_000 and table.mode == "events")
    assert modes[:2] == ["snapshots", "events"]
    assert table.total == 4_000 and len(table.rows) == 200
    table.close()


def test_a_burst_in_steps_reads_all_records_only_when_it_is_over(
    app: Flowrra, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a cell submitting in a loop on the app's loop: the workers catch up whenever it lets
    # go (nothing in flight when the table looks), but tasks keep coming. The table waits
    # for a refresh period with no submission before it calls the burst over, instead of
    # reading every record again at each look (a full read costs ~15 ms per 100,000).
    import flowrra.notebook.table as table_module

    reads: list[bool] = []
    real_load = table_module.load_snapshot

    async def counting_load(app: Flowrra, state: TaskTableState, full: bool) -> Any:
        reads.append(full)
        return await real_load(app, state, full)

    monkeypatch.setattr(table_module, "load_snapshot", counting_load)
    table = TaskTable(app, refresh_hz=4)

    async def submit_in_steps() -> int:
        count = 0
        started = time.monotonic()
        while time.monotonic() - started < 1.5:
            for _ in range(100):
                await app.submit("nap")
            count += 100
            await asyncio.sleep(0.002)
        return count

    count = run(submit_in_steps)
    eventually(lambda: table.counts["success"] == count and table.mode == "events")
    assert len(reads) <= 3  # on opening, at the end, and at most one budgeted sample
    table.close()


def test_front_end_select_shows_the_traceback(app: Flowrra) -> None:
    failed = run(app.submit, "boom")
    wait_all(app, [failed])
    table = TaskTable(app)
    table.comm.front_end_says({"type": "select", "task_id": failed})
    eventually(lambda: table.detail.get("task_id") == failed)
    assert table.detail["status"] == "failed"
    assert "ValueError: boom" in table.detail["traceback"]
    table.comm.front_end_says({"type": "select", "task_id": "nope"})
    eventually(lambda: table.detail.get("missing") is True)
    table.close()


def test_front_end_cancel_cancels_the_task(app: Flowrra) -> None:
    table = TaskTable(app, refresh_hz=20)
    slow = run(app.submit, "slow")
    eventually(lambda: table.counts["running"] == 1)
    table.comm.front_end_says({"type": "cancel", "task_id": slow})
    eventually(lambda: table.counts["cancelled"] == 1 and table.counts["running"] == 0)
    assert run(app.get_result, slow).status.value == "cancelled"
    table.close()


def test_filters_reload_matching_rows(app: Flowrra) -> None:
    wait_all(app, [run(app.submit, "boom"), *run(app.map, "nap", range(300))])
    table = TaskTable(app, max_rows=50)
    assert len(table.rows) == 50 and all(r["status"] == "success" for r in table.rows)
    table.status_filter = "failed"
    table.refresh()
    assert [r["task_name"] for r in table.rows] == ["boom"]  # older than the newest 50
    table.status_filter, table.name_filter = "", "nap"
    table.refresh()
    assert len(table.rows) == 50 and {r["task_name"] for r in table.rows} == {"nap"}
    assert table.counts["success"] == 300  # counts ignore the filters
    table.close()


def test_close_unsubscribes(app: Flowrra) -> None:
    table = TaskTable(app)
    feed = table._feed
    assert feed.on_event in app.events._subscribers
    table.close()
    eventually(lambda: feed.on_event not in app.events._subscribers)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_rows"):
        TaskTable(Flowrra(), max_rows=0)
    with pytest.raises(ValueError, match="refresh_hz"):
        TaskTable(Flowrra(), refresh_hz=0)


def test_state_counts_each_task_once() -> None:
    state = TaskTableState(max_rows=10)
    record = {"task_id": "a", "task_name": "t", "status": "pending", "submitted_at": "x"}
    state.apply(record)
    state.apply({**record, "status": "running"})
    state.apply({**record, "status": "success"})
    state.apply({**record, "status": "running"})  # a late duplicate is ignored
    assert state.counts["success"] == 1 and state.total == 1
    assert state.rows()[0]["status"] == "success"
    text = format_rows(state.counts, state.rows())
    assert "success 1" in text and "t" in text


def test_rows_come_from_records_and_dicts(app: Flowrra) -> None:
    task_id = run(app.submit, "nap", 3)
    record = run(app.wait_for_result, task_id, 5)
    from_record, from_dict = row_from_record(record), row_from_record(record.to_dict)
    assert from_record == from_dict and from_record["duration"] >= 0
