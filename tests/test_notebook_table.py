"""The task table without a browser: its state (``counts``, ``rows``, ``detail``), the
messages it sends through a recording comm, its front-end messages, and the static HTML
copy its output carries (through a recording display publisher, and in a real kernel)."""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import comm
import nbformat
import pytest
import traitlets
from comm.base_comm import BaseComm
from IPython.core.displaypub import DisplayPublisher
from IPython.core.interactiveshell import InteractiveShell
from nbclient import NotebookClient

from flowrra import Config, ExecutorConfig, Flowrra, runtime
from flowrra.clock import utcnow
from flowrra.constants import TASK_STATUSES
from flowrra.notebook import TaskTable
from flowrra.notebook.frontend import widget_file
from flowrra.notebook.table_state import (
    SORT_COLUMNS,
    TaskTableState,
    format_rows,
    row_from_record,
    short_args,
    snapshot_html,
    sort_rows,
)

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

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

    @application.task(max_retries=1, retry_delay=3600)
    async def later() -> None:
        raise RuntimeError("try again later")

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
    assert set(table.task_names) == {"nap", "boom", "slow", "blink", "later"}
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
    # at most one message per flush (a flush counts itself before its message goes out,
    # and a flush that changes nothing sends none)
    assert 0 < len(messages) <= table.flushes - flushes_before
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
    assert len(table.rows) == 50 and table.matching == 301
    # the failure is older than the newest 50, and still shown: failed rows come first
    assert table.rows[0]["task_name"] == "boom"
    assert all(r["status"] == "success" for r in table.rows[1:])
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


# ------------------------------------------------------------------ what the rows say
def test_rows_show_short_arguments_and_the_attempt(app: Flowrra) -> None:
    ids = [
        run(app.submit, "nap", 3),
        run(lambda: app.submit("nap", i=4)),
        run(app.submit, "nap", "x" * 500),
        run(app.submit, "boom"),  # fails twice: max_retries=1
    ]
    wait_all(app, ids)
    table = TaskTable(app)
    rows = {r["task_id"]: r for r in table.rows}
    assert rows[ids[0]]["args"] == "(3)" and rows[ids[1]]["args"] == "(i=4)"
    assert len(rows[ids[2]]["args"]) <= 80 and "..." in rows[ids[2]]["args"]
    assert rows[ids[3]]["args"] == "()"
    assert rows[ids[3]]["attempt"] == 2 and rows[ids[0]]["attempt"] == 1
    table.close()


def test_short_args_never_fail_on_a_bad_repr() -> None:
    class Stubborn:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    text = short_args((Stubborn(), [1, 2, 3, 4, 5, 6, 7]), {"key": "v" * 100})
    assert text.startswith("(<") and "..." in text and len(text) <= 80


def test_failed_rows_are_not_crowded_out_by_newer_tasks() -> None:
    state = TaskTableState(max_rows=20)
    for i in range(15):
        state.apply(_record(f"f{i}", "failed", i))
    for i in range(15, 200):  # many newer successes: the oldest rows are trimmed
        state.apply(_record(f"s{i}", "success", i))
    rows = state.rows()
    assert len(rows) == 20
    assert [r["task_id"] for r in rows[:10]] == [f"f{i}" for i in range(14, 4, -1)]  # half
    assert all(r["status"] == "success" for r in rows[10:])
    assert state.matching() == 200


def _record(task_id: str, status: str, second: int, **extra: Any) -> dict[str, Any]:
    moment = (utcnow().replace(microsecond=0) + timedelta(seconds=second)).isoformat()
    return {
        "task_id": task_id,
        "task_name": "t",
        "status": status,
        "submitted_at": moment,
        "started_at": moment,
        "finished_at": moment if status in ("success", "failed", "cancelled") else None,
        **extra,
    }


def test_capped_rows_say_how_many_there_are(app: Flowrra) -> None:
    wait_all(app, [*run(app.map, "nap", range(11)), run(app.submit, "boom")])
    table = TaskTable(app, max_rows=5)
    assert len(table.rows) == 5 and table.matching == 12
    assert "showing 5 of 12" in table.snapshot_html()
    table.status_filter = "success"
    table.refresh()
    assert table.matching == 11 and "showing 5 of 11" in table.snapshot_html()
    table.status_filter, table.name_filter = "", "nap"
    table.refresh()
    assert table.matching == -1  # the counts are per status: unknown for one task name
    assert "matching the filters" in table.snapshot_html()
    table.close()


def test_sort_rows_is_stable_with_missing_values_last() -> None:
    rows = [
        row_from_record(_record("a", "success", 1, task_name="beta")),
        row_from_record(_record("b", "running", 2, task_name="alpha")),
        row_from_record(_record("c", "pending", 3, task_name="beta", started_at=None)),
        row_from_record(_record("d", "failed", 4, task_name="gamma", error="bad")),
    ]
    now = utcnow() + timedelta(seconds=100)
    ids = lambda ordered: [r["task_id"] for r in ordered]  # noqa: E731
    assert ids(sort_rows(rows)) == ["d", "c", "b", "a"]  # newest first
    assert ids(sort_rows(rows, "task_name", False)) == ["b", "c", "a", "d"]  # ties: newest
    assert ids(sort_rows(rows, "status", False)) == ["c", "b", "a", "d"]
    elapsed = ids(sort_rows(rows, "elapsed", True, now))
    assert elapsed[0] == "b" and elapsed[-1] == "c"  # running ticks; pending has none
    assert ids(sort_rows(rows, "error", True))[0] == "d"
    assert ids(sort_rows(rows, "error", False))[0] == "d"  # empty values last either way
    with pytest.raises(ValueError, match="sort_by must be one of"):
        sort_rows(rows, "colour")


def test_a_bad_sort_column_is_refused(app: Flowrra) -> None:
    table = TaskTable(app)
    with pytest.raises(traitlets.TraitError, match="sort_by"):
        table.sort_by = "colour"
    table.sort_by, table.sort_desc = "task_name", False
    table.close()


def test_the_static_copy_escapes_every_value() -> None:
    state = TaskTableState()
    state.apply(
        _record(
            "<i>id</i>",
            "failed",
            1,
            task_name="<img src=x onerror=alert(1)>",
            args=("<script>alert(1)</script>",),
            kwargs={"<k>": "&"},
            error="<b>bad</b>",
            error_type="Value<Error>",
        )
    )
    html = snapshot_html(state.counts, state.rows(), matching=state.matching())
    assert "<script" not in html and "<img" not in html and "<b>bad" not in html
    assert "<i>id" not in html and "Value<Error>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "Value&lt;Error&gt;: &lt;b&gt;bad&lt;/b&gt;" in html


def test_the_static_copy_pins_failed_tasks_and_follows_the_sort(app: Flowrra) -> None:
    wait_all(app, [*run(app.map, "nap", range(3)), run(app.submit, "boom")])
    table = TaskTable(app)
    html = table.snapshot_html()
    assert html.index("failed (1)") < html.index("boom") < html.index("other tasks")
    args = [html.index(f"<code>({i})</code>") for i in range(3)]
    assert args[2] < args[1] < args[0]  # newest first
    table.sort_desc = False
    html = table.snapshot_html()
    args = [html.index(f"<code>({i})</code>") for i in range(3)]
    assert args[0] < args[1] < args[2]
    table.close()


NODE = shutil.which("node")
SORT_IN_NODE = """
import fs from "fs";
const [file, rowsFile, now] = process.argv.slice(2);
const source = fs.readFileSync(file, "utf8")
  .replace("export default { render };", "export { sortRows };");
const { sortRows } = await import("data:text/javascript," + encodeURIComponent(source));
const rows = JSON.parse(fs.readFileSync(rowsFile, "utf8"));
const statuses = ["pending", "running", "retrying", "success", "failed", "cancelled"];
const orders = {};
for (const column of JSON.parse(process.argv[5]))
  for (const descending of [true, false])
    orders[`${column} ${descending}`] = sortRows(rows, column, descending, statuses, Number(now))
      .map((r) => r.task_id);
console.log(JSON.stringify(orders));
"""


@pytest.mark.skipif(NODE is None, reason="needs node to run the widget's ES module")
def test_the_browser_sorts_rows_as_the_static_copy_does(tmp_path: Path) -> None:
    # the widget (task_table.js) and the saved HTML (sort_rows) show the same order
    rng = random.Random(7)
    start = utcnow().replace(microsecond=0)
    rows = []
    for i in range(80):
        status = rng.choice(list(TASK_STATUSES))
        submitted = start + timedelta(seconds=rng.randint(0, 20))
        started = None if status == "pending" else submitted + timedelta(seconds=1)
        finished = (
            started + timedelta(seconds=rng.random() * 5)
            if started and status in ("success", "failed", "cancelled")
            else None
        )
        record = {
            "task_id": f"{i:04x}{'ab' * 14}",
            "task_name": rng.choice(["alpha", "Beta", "gamma", None]),
            "status": status,
            "submitted_at": submitted.isoformat(),
            "started_at": started and started.isoformat(),
            "finished_at": finished and finished.isoformat(),
            "retries": rng.randint(0, 2),
            "error": rng.choice([None, "", "bad", "Worse"]),
            "args": (rng.randint(0, 3),),
        }
        rows.append(row_from_record(record))
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    (tmp_path / "sort.mjs").write_text(SORT_IN_NODE)
    now = start + timedelta(seconds=60)
    result = subprocess.run(
        [
            NODE,
            str(tmp_path / "sort.mjs"),
            str(widget_file("task_table.js")),
            str(tmp_path / "rows.json"),
            str(now.timestamp() * 1000),
            json.dumps(SORT_COLUMNS),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    in_browser = json.loads(result.stdout)
    for column in SORT_COLUMNS:
        for descending in (True, False):
            ordered = [r["task_id"] for r in sort_rows(rows, column, descending, now)]
            assert ordered == in_browser[f"{column} {str(descending).lower()}"], column


# ---------------------------------------------------------------------------- details
def test_details_show_the_retry_reason_while_a_task_waits_to_retry(app: Flowrra) -> None:
    table = TaskTable(app, refresh_hz=20)
    later = run(app.submit, "later")
    eventually(lambda: table.counts["retrying"] == 1)
    table.comm.front_end_says({"type": "select", "task_id": later})
    eventually(lambda: table.detail.get("task_id") == later)
    detail = table.detail
    assert detail["status"] == "retrying" and detail["retries"] == 1 and detail["attempt"] == 2
    assert detail["error"] == "try again later" and detail["error_type"] == "RuntimeError"
    run(app.cancel, later)
    table.close()


def test_details_follow_the_selected_task(app: Flowrra) -> None:
    table = TaskTable(app, refresh_hz=20)
    slow = run(app.submit, "slow")
    eventually(lambda: table.counts["running"] == 1)
    table.comm.front_end_says({"type": "select", "task_id": slow})
    eventually(lambda: table.detail.get("status") == "running")
    table.comm.front_end_says({"type": "cancel", "task_id": slow})
    eventually(lambda: table.detail.get("status") == "cancelled")  # without a new click
    table.close()


# --------------------------------------------------------------- the output's HTML copy
class RecordingPublisher(DisplayPublisher):
    """A display publisher that keeps what is published (from any thread)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.messages: list[dict[str, Any]] = []
        self.changed = threading.Condition()

    def publish(  # type: ignore[override]
        self,
        data: dict[str, Any],
        metadata: Any = None,
        *args: Any,
        transient: dict[str, Any] | None = None,
        update: bool = False,
        **kwargs: Any,
    ) -> None:
        with self.changed:
            self.messages.append({"data": data, "transient": transient, "update": update})
            self.changed.notify_all()

    def wait_for(self, check: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict:
        with self.changed:
            found = self.changed.wait_for(
                lambda: any(check(m) for m in self.messages), timeout=timeout
            )
            assert found, f"no such display message in {len(self.messages)}"
            return next(m for m in reversed(self.messages) if check(m))


@pytest.fixture
def shell(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[InteractiveShell, Any]]:
    """An IPython shell as in a kernel (display ids work), publishing to a recorder."""
    shell = InteractiveShell.instance()
    publisher = RecordingPublisher(shell=shell)
    monkeypatch.setattr(shell, "display_pub", publisher)
    monkeypatch.setattr(shell, "kernel", object(), raising=False)
    yield shell, publisher


def _html(message: dict[str, Any]) -> str:
    return message["data"].get("text/html", "")


def test_a_displayed_table_carries_its_html_copy_and_renews_it(
    app: Flowrra, shell: tuple[InteractiveShell, RecordingPublisher]
) -> None:
    from IPython.display import display

    ipython, publisher = shell
    table = TaskTable(app, refresh_hz=20)
    display(table)
    shown = publisher.messages[0]
    assert {WIDGET_MIME, "text/html", "text/plain"} <= set(shown["data"])
    assert "no tasks yet" in _html(shown) and not shown["update"]
    display_id = shown["transient"]["display_id"]

    # tasks end between cells: the copy is renewed once the table has settled
    wait_all(app, [*run(app.map, "nap", range(3)), run(app.submit, "boom")])
    renewed = publisher.wait_for(lambda m: m["update"] and "boom" in _html(m))
    assert renewed["transient"]["display_id"] == display_id
    assert WIDGET_MIME in renewed["data"] and "4 task(s)" in _html(renewed)

    # the end of a cell renews it at once
    wait_all(app, [run(app.submit, "nap", 42)])
    ipython.run_cell("pass")
    assert "(42)" in _html(publisher.messages[-1]) and publisher.messages[-1]["update"]

    # a closed table leaves its last state, static: no widget to find any more
    table.close()
    final = publisher.messages[-1]
    assert final["update"] and set(final["data"]) == {"text/plain", "text/html"}
    assert "(42)" in _html(final)
    count = len(publisher.messages)
    ipython.run_cell("pass")
    assert len(publisher.messages) == count  # a closed table is not renewed


def test_outside_a_kernel_the_table_is_shown_without_a_display_id(
    app: Flowrra, shell: tuple[InteractiveShell, RecordingPublisher], monkeypatch: Any
) -> None:
    from IPython.display import display

    ipython, publisher = shell
    monkeypatch.delattr(ipython, "kernel")
    table = TaskTable(app)
    display(table)
    assert publisher.messages[0]["transient"] is None
    wait_all(app, [run(app.submit, "nap", 1)])
    ipython.run_cell("pass")
    assert len(publisher.messages) == 1
    table.close()
    assert len(publisher.messages) == 1


KERNEL_CELLS = [
    """
from flowrra import Flowrra
from flowrra.notebook import TaskTable

app = Flowrra()

@app.task()
async def add(a, b):
    return a + b

@app.task(max_retries=0)
async def broken(note):
    raise ValueError(note)

await app.start()
""",
    "table = TaskTable(app)\ntable",
    """
ids = [await app.submit(add, i, i) for i in range(3)]
ids.append(await app.submit(broken, "<script>alert('x')</script>"))
for task_id in ids:
    await app.wait_for_result(task_id)
""",
    "other = TaskTable(app)\ndisplay(other)\nother.close()",
]


def test_a_saved_notebook_shows_the_tables_last_state() -> None:
    cells = [nbformat.v4.new_code_cell(source.strip()) for source in KERNEL_CELLS]
    notebook = nbformat.v4.new_notebook(cells=cells)
    NotebookClient(notebook, kernel_name="python3", timeout=60).execute()
    (live,) = notebook.cells[1].outputs
    assert WIDGET_MIME in live["data"]  # the widget, and next to it its last state
    html = live["data"]["text/html"]
    assert "4 task(s): 3 success, 1 failed" in html and "(2, 2)" in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html and "<script" not in html
    (closed,) = notebook.cells[3].outputs
    assert set(closed["data"]) == {"text/plain", "text/html"}  # closed: the copy alone
    assert "(2, 2)" in closed["data"]["text/html"]


async def test_a_snapshot_of_a_redis_app_counts_from_its_indexes(prefix: str) -> None:
    """The Redis backend's ``count_by_status`` is a coroutine: the table awaits it (it
    raised "'coroutine' object is not iterable" when a table opened on a Redis app)."""
    from flowrra.notebook.table_state import TaskTableState, read_snapshot

    from .test_redis import app_for

    app = app_for(prefix)
    await app.start()
    try:
        nap = app.registry.spec("nap").func
        ids = await app.starmap(nap, [(i, 0) for i in range(5)])
        for task_id in ids:
            await app.wait_for_result(task_id)
        snapshot = await read_snapshot(app, TaskTableState(), full=True)
        assert snapshot.counts["success"] == 5
        assert {row["task_id"] for row in snapshot.rows} == set(ids)
    finally:
        await app.stop()
