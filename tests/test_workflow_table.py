"""Workflows in the task table: each row names its workflow and step, and the table (the
widget in the browser and its saved HTML copy alike) can show each workflow's rows
together."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import comm
import pytest
from comm.base_comm import BaseComm

from flowrra import Config, ExecutorConfig, Flowrra, call, chain, group, runtime
from flowrra.notebook import TaskTable
from flowrra.notebook.frontend import widget_file
from flowrra.notebook.table_state import (
    group_by_workflow,
    row_from_record,
    sort_rows,
    workflow_label,
)

NODE = shutil.which("node")


class QuietComm(BaseComm):
    """A comm that sends nothing (no kernel here)."""

    def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None,
                    buffers: Any = None, **keys: Any) -> None:  # fmt: skip
        pass


@pytest.fixture(autouse=True)
def quiet_comm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(comm, "create_comm", QuietComm)


@pytest.fixture
def app() -> Iterator[Flowrra]:
    """An app on the runtime loop (as in a kernel)."""
    application = Flowrra(Config(executor=ExecutorConfig(io_workers=4)))

    @application.task()
    async def add(x: int, y: int = 1) -> int:
        return x + y

    @application.task(max_retries=0)
    async def total(xs: list[int]) -> int:
        return sum(xs)

    runtime.run_sync(application.start)
    yield application
    runtime.run_sync(application.stop, False)


def test_rows_name_their_workflow_and_the_table_groups_them(app: Flowrra) -> None:
    before = runtime.run_sync(app.submit, "add", 100)
    handle = runtime.run_sync(app.run, chain(call("add", 1), group("add", "add"), "total"))
    runtime.run_sync(handle.result, 10)
    after = runtime.run_sync(app.submit, "add", 200)
    runtime.run_sync(app.wait_for_result, after, 10)
    table = TaskTable(app)
    try:
        table.refresh()
        by_id = {row["task_id"]: row for row in table.rows}
        assert by_id[handle.id]["workflow_id"] == handle.id
        assert [by_id[i]["workflow_step"] for i in handle.step_ids] == ["0", "1.0", "1.1", "2"]
        assert by_id[before]["workflow_id"] is None
        assert workflow_label(by_id[handle.steps["1.1"]]) == f"{handle.id[:8]} 1.1"
        assert workflow_label(by_id[handle.id]) == handle.id[:8]
        table.sort_by, table.sort_desc = "submitted_at", False  # oldest first
        table.group_by_workflow = True
        html = table.snapshot_html()
    finally:
        table.close()
    order = [html.index(f'title="{i}"') for i in [before, handle.id, *handle.step_ids, after]]
    assert order == sorted(order)  # the workflow, then its steps in order, together
    assert f"<code>{handle.id[:8]} 1.0</code>" in html


def test_grouping_keeps_other_rows_in_place() -> None:
    rows = [
        {"task_id": "x", "workflow_id": None},
        {"task_id": "s2", "workflow_id": "w", "workflow_step": "10"},
        {"task_id": "y", "workflow_id": None},
        {"task_id": "w", "workflow_id": "w", "workflow_step": "2"},  # failed at step 2
        {"task_id": "s1", "workflow_id": "w", "workflow_step": "9"},
    ]
    assert [r["task_id"] for r in group_by_workflow(rows)] == ["x", "w", "s1", "s2", "y"]


GROUP_IN_NODE = """
import fs from "fs";
const [file, rowsFile] = process.argv.slice(2);
const source = fs.readFileSync(file, "utf8")
  .replace("export default { render };", "export { sortRows, groupByWorkflow };");
const { sortRows, groupByWorkflow } = await import(
  "data:text/javascript," + encodeURIComponent(source));
const rows = JSON.parse(fs.readFileSync(rowsFile, "utf8"));
const statuses = ["pending", "running", "retrying", "success", "failed", "cancelled"];
const out = {};
for (const column of ["submitted_at", "status", "task_name"])
  out[column] = groupByWorkflow(sortRows(rows, column, true, statuses, 0)).map((r) => r.task_id);
console.log(JSON.stringify(out));
"""


@pytest.mark.skipif(NODE is None, reason="needs node to run the widget's ES module")
def test_the_browser_groups_rows_as_the_static_copy_does(tmp_path: Path) -> None:
    rng = random.Random(15)
    rows = []
    for i in range(120):
        workflow = rng.choice([None, "aa" * 16, "bb" * 16, "cc" * 16])
        task_id = workflow if workflow and rng.random() < 0.1 else f"{i:04x}{'ef' * 14}"
        step = None if workflow is None or task_id == workflow else rng.choice(
            ["0", "1", "1.0", "1.2", "1.10", "2", "10"]
        )  # fmt: skip
        record = {
            "task_id": task_id,
            "task_name": rng.choice(["alpha", "beta", None]),
            "status": rng.choice(["success", "failed", "running", "pending"]),
            "submitted_at": f"2026-01-01T00:00:{rng.randint(0, 59):02d}+00:00",
            "workflow_id": workflow,
            "workflow_step": step,
        }
        rows.append(row_from_record(record))
    rows = list({r["task_id"]: r for r in rows}.values())
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    (tmp_path / "group.mjs").write_text(GROUP_IN_NODE)
    result = subprocess.run(
        [NODE, str(tmp_path / "group.mjs"), str(widget_file("task_table.js")),
         str(tmp_path / "rows.json")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    in_browser = json.loads(result.stdout)
    for column, order in in_browser.items():
        grouped = group_by_workflow(sort_rows(rows, column, True))
        assert [r["task_id"] for r in grouped] == order, column
