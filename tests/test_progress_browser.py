"""The task table's row progress bar and the output in its details, drawn by the
widget's own module (widgets/task_table.js) in a real browser, from the rows Python makes.

Needs Debian's chromium at /usr/bin/chromium and playwright (no ``playwright install``).
"""

from __future__ import annotations

import json

import pytest

from flowrra.assets import widget_file
from flowrra.constants import STATUS_COLORS, TASK_STATUSES
from flowrra.notebook.table import _detail
from flowrra.notebook.table_state import row_from_record
from flowrra.task import TaskResult, TaskStatus

from .test_notebook_browser import CHROMIUM, LAUNCH_ARGS, _missing_browser

RENDER = """(traits) => {
  const handlers = {};
  const model = {
    get: (key) => traits[key],
    set: (key, value) => {
      traits[key] = value;
      for (const fn of handlers[`change:${key}`] || []) fn();
    },
    on: (event, fn) => (handlers[event] = handlers[event] || []).push(fn),
    off: () => {},
    send: () => {},
    save_changes: () => {},
  };
  window.model = model;
  const el = document.createElement("div");
  document.body.append(el);
  window.flowrraTable.render({ model, el });
}"""


def _record(task_id: str, status: TaskStatus, **fields: object) -> TaskResult:
    return TaskResult(task_id, status, "job", submitted_at=None, **fields)  # type: ignore[arg-type]


@pytest.mark.skipif(_missing_browser() is not None, reason=str(_missing_browser()))
def test_rows_show_a_progress_bar_and_details_show_the_output() -> None:
    from playwright.sync_api import sync_playwright

    running = _record(
        "a" * 32, TaskStatus.RUNNING, progress_done=21, progress_total=50,
        progress_message="<b>half</b> way", output="line one\n<script>x</script>\n",
    )  # fmt: skip
    counting = _record("b" * 32, TaskStatus.RUNNING, progress_done=7, progress_message="7 files")
    finished = _record("c" * 32, TaskStatus.SUCCESS, progress_done=1, progress_total=1)
    rows = [row_from_record(r) for r in (running, counting, finished)]
    traits = {
        "rows": rows,
        "counts": {"running": 2, "success": 1},
        "total": 3,
        "matching": 3,
        "statuses": list(TASK_STATUSES),
        "colors": STATUS_COLORS,
        "sort_by": "submitted_at",
        "sort_desc": True,
        "detail": {},
        "task_names": ["job"],
        "status_filter": "",
        "name_filter": "",
        "app_state": "running",
        "mode": "events",
    }
    source = widget_file("task_table.js").read_text()
    source = source.replace("export default { render };", "window.flowrraTable = { render };")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        page = browser.new_page()
        page.set_content("<html><body></body></html>")
        page.add_style_tag(content=widget_file("task_table.css").read_text())
        page.add_script_tag(content=source, type="module")
        page.wait_for_function("() => window.flowrraTable !== undefined")
        page.evaluate(RENDER, json.loads(json.dumps(traits)))
        bars = page.locator(".flowrra-tt-rowbar")
        assert bars.count() == 2  # the running rows only
        known = page.locator(f'tr[data-task-id="{"a" * 32}"] .flowrra-tt-rowbar')
        assert known.get_attribute("aria-valuenow") == "42"
        assert known.get_attribute("title") == "42%: <b>half</b> way"
        fill = known.locator(".flowrra-tt-rowbar-fill").get_attribute("style")
        assert fill is not None and "width: 42%" in fill
        unknown = page.locator(f'tr[data-task-id="{"b" * 32}"] .flowrra-tt-rowbar')
        assert unknown.get_attribute("aria-valuenow") is None
        assert "flowrra-tt-rowbar-unknown" in (unknown.get_attribute("class") or "")
        detail = json.loads(json.dumps(_detail(running.task_id, running)))
        page.evaluate("(d) => window.model.set('detail', d)", detail)
        panel = page.locator(".flowrra-tt-detail")
        panel.wait_for(state="visible")
        text = panel.inner_text()
        assert "42% (21 of 50) <b>half</b> way" in text
        assert "line one\n<script>x</script>" in text  # shown as text, never run
        assert page.locator(".flowrra-tt-detail script").count() == 0
        browser.close()
