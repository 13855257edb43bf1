// flowrra's live task table: the front-end of flowrra.notebook.TaskTable (an anywidget).
// Plain ES module, no build step. The Python side owns the state (counts, rows, detail,
// sort); this file draws it and sends back filter and sort changes, row clicks and cancel
// requests.
//
// Rows are kept as DOM nodes keyed by task id and moved only when their place changes,
// so they do not jump between refreshes (and the browser's scroll anchoring holds the
// rows in view while new ones arrive above). Failed tasks have a section of their own at
// the top. Elapsed times of running tasks tick here, from the kernel's clock.

const LIVE = new Set(["pending", "running", "retrying"]);
const TICKING = new Set(["running", "retrying"]);
const DONE = ["success", "failed", "cancelled"];
const BAR_ORDER = ["success", "failed", "cancelled", "running", "retrying"];
const DESC_FIRST = new Set(["submitted_at", "elapsed", "attempt"]);
const COLUMNS = [
  { key: "status", label: "status" },
  { key: "task_name", label: "task" },
  { key: "task_id", label: "id" },
  { key: "workflow", label: "workflow", sortable: false }, // hidden while no row has one
  { key: "args", label: "args" },
  { key: "submitted_at", label: "submitted" },
  { key: "elapsed", label: "elapsed", num: true },
  { key: "attempt", label: "attempt", num: true },
  { key: "error", label: "error" },
];
const SPAN = COLUMNS.length + 1; // and the cancel column

// View state that outlives a view: a saved notebook's output is re-rendered when its
// static copy is renewed, and the new view picks up where the old one was.
const VIEW_STATE = new Map();

function h(tag, attrs = {}, children = []) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") el.textContent = String(value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) if (child) el.append(child);
  return el;
}

function formatDuration(seconds) {
  if (seconds === null || seconds === undefined) return "-";
  if (seconds < 1e-3) return `${Math.round(seconds * 1e6)} us`;
  if (seconds < 1) return `${(seconds * 1e3).toFixed(1)} ms`;
  if (seconds < 60) return `${seconds.toFixed(2)} s`;
  const minutes = Math.floor(seconds / 60);
  return `${minutes}m${String(Math.floor(seconds % 60)).padStart(2, "0")}s`;
}

function formatTicking(seconds) {
  // whole seconds while a task runs: the text changes once a second, not at every frame
  if (seconds < 60) return `${Math.floor(seconds)} s`;
  return formatDuration(seconds);
}

function parseTime(iso) {
  if (!iso) return null;
  const ms = Date.parse(String(iso).replace(/(\.\d{3})\d+/, "$1"));
  return Number.isNaN(ms) ? null : ms;
}

function formatTime(iso) {
  const ms = parseTime(iso);
  return ms === null ? "-" : new Date(ms).toLocaleTimeString();
}

function formatCount(n) {
  return Number(n).toLocaleString("en-US");
}

function errorText(record) {
  if (!record.error) return "";
  return record.error_type ? `${record.error_type}: ${record.error}` : record.error;
}

function attempt(record) {
  return record.attempt ?? (record.retries || 0) + 1;
}

function elapsed(record, nowMs) {
  if (record.duration !== null && record.duration !== undefined) return record.duration;
  const started = parseTime(record.started_at);
  if (started === null || !TICKING.has(record.status)) return null;
  return Math.max((nowMs - started) / 1000, 0);
}

function compare(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

function sortKey(column, statuses, nowMs) {
  if (column === "status") return (r) => (statuses.includes(r.status) ? statuses.indexOf(r.status) : 99);
  if (column === "elapsed") return (r) => elapsed(r, nowMs);
  if (column === "attempt") return (r) => attempt(r);
  if (column === "submitted_at") return (r) => r.submitted_at || null;
  return (r) => {
    const value = r[column];
    return value === null || value === undefined || value === "" ? null : String(value).toLowerCase();
  };
}

// The same order as flowrra.notebook.table_state.sort_rows: stable, ties newest first,
// rows without a value last either way.
function sortRows(rows, column, descending, statuses, nowMs) {
  const base = rows
    .slice()
    .sort((a, b) => compare(b.submitted_at || "", a.submitted_at || "") || compare(b.task_id, a.task_id));
  const key = sortKey(column, statuses, nowMs);
  const keyed = base.map((r) => [key(r), r]);
  const present = keyed.filter(([k]) => k !== null && k !== undefined);
  const missing = keyed.filter(([k]) => k === null || k === undefined);
  present.sort((a, b) => (descending ? compare(b[0], a[0]) : compare(a[0], b[0])));
  return present.map((p) => p[1]).concat(missing.map((p) => p[1]));
}

// A step's place as numbers: "1.10" after "1.9".
function stepOrder(step) {
  return String(step || "").split(".").filter(Boolean).map(Number);
}

function compareSteps(a, b) {
  const x = stepOrder(a);
  const y = stepOrder(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

// The same order as flowrra.notebook.table_state.group_by_workflow: each workflow's rows
// together where its first row was, the workflow's own row first, then its steps in order.
function groupByWorkflow(rows) {
  const groups = new Map();
  for (const r of rows) {
    const key = r.workflow_id || r.task_id;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(r);
  }
  const ordered = [];
  for (const [key, members] of groups) {
    if (members.length > 1) {
      members.sort((a, b) => {
        const own = (b.task_id === key) - (a.task_id === key); // the workflow's own row first
        return own || compareSteps(a.workflow_step, b.workflow_step);
      });
    }
    ordered.push(...members);
  }
  return ordered;
}

function workflowLabel(r) {
  if (!r.workflow_id) return "";
  if (r.task_id === r.workflow_id) return r.workflow_id.slice(0, 8);
  return `${r.workflow_id.slice(0, 8)} ${r.workflow_step || ""}`.trim();
}

function color(colors, status) {
  return colors[status] || "gray";
}

function badge(status, colors) {
  return h("span", { class: `flowrra-tt-badge flowrra-c-${color(colors, status)}`, text: status });
}

// A running task's progress (flowrra.progress): a small bar under its status badge.
function rowProgress(r) {
  const known = r.progress !== null && r.progress !== undefined;
  if (r.status !== "running" || (!known && !r.progress_message)) return null;
  const percent = known ? Math.round(Math.min(Math.max(r.progress, 0), 1) * 100) : null;
  const title = [known ? `${percent}%` : null, r.progress_message].filter(Boolean).join(": ");
  const fill = h("span", { class: "flowrra-tt-rowbar-fill", style: `width: ${known ? percent : 100}%` });
  return h(
    "span",
    {
      class: `flowrra-tt-rowbar${known ? "" : " flowrra-tt-rowbar-unknown"}`,
      role: "progressbar",
      "aria-valuemin": 0,
      "aria-valuemax": 100,
      "aria-valuenow": known ? percent : null,
      "aria-valuetext": title,
      title,
    },
    [fill],
  );
}

function progressText(d) {
  const parts = [];
  if (d.progress !== null && d.progress !== undefined) parts.push(`${Math.round(d.progress * 100)}%`);
  if (d.progress_done !== null && d.progress_done !== undefined) {
    const total = d.progress_total === null || d.progress_total === undefined ? "" : ` of ${d.progress_total}`;
    parts.push(`(${d.progress_done}${total})`);
  }
  if (d.progress_message) parts.push(d.progress_message);
  return parts.length ? parts.join(" ") : null;
}

function field(label, value, pre = false) {
  if (value === null || value === undefined || value === "") return null;
  return h("div", { class: "flowrra-tt-field" }, [
    h("span", { class: "flowrra-tt-field-label", text: label }),
    h(pre ? "pre" : "span", { class: "flowrra-tt-field-value", text: value }),
  ]);
}

function render({ model, el }) {
  const key = model.get("_view_key") || "";
  const saved = VIEW_STATE.get(key) || { scrollTop: 0, scrollLeft: 0, collapsed: false };
  VIEW_STATE.set(key, saved);
  let clockOffset = 0; // kernel clock minus browser clock, in ms
  let attached = false;
  let disposed = false;
  let ticker = null;
  let scheduled = false;
  const rowNodes = new Map(); // task id -> {tr, cells, signature}

  const now = () => Date.now() + clockOffset;
  const setClock = () => {
    const clock = model.get("clock");
    if (clock) clockOffset = clock * 1000 - Date.now();
  };
  setClock();

  // ------------------------------------------------------------------ the top
  const title = h("span", { class: "flowrra-tt-title", text: "flowrra tasks" });
  const appState = h("span", { class: "flowrra-tt-state" });
  const chips = h("span", { class: "flowrra-tt-counts" });
  const shown = h("span", { class: "flowrra-tt-shown" });
  const header = h("div", { class: "flowrra-tt-header" }, [title, appState, chips, shown]);
  const bar = h("div", { class: "flowrra-tt-bar", role: "progressbar" });
  const barLabel = h("span", { class: "flowrra-tt-progress-label" });
  const progress = h("div", { class: "flowrra-tt-progress" }, [bar, barLabel]);
  const filters = h("div", { class: "flowrra-tt-filters" });
  const top = h("div", { class: "flowrra-tt-top" }, [header, progress, filters]);
  const chipNodes = new Map();
  let filterKey = "";

  const setFilter = (trait, value) => {
    model.set(trait, value);
    model.save_changes();
  };

  function drawHeader() {
    const counts = model.get("counts") || {};
    const colors = model.get("colors") || {};
    const statuses = model.get("statuses") || Object.keys(counts);
    const current = model.get("status_filter") || "";
    const state = model.get("app_state") || "";
    appState.className = `flowrra-tt-state flowrra-tt-state-${state}`;
    appState.textContent = state;
    for (const status of statuses) {
      let chip = chipNodes.get(status);
      if (!chip) {
        chip = h(
          "button",
          {
            class: `flowrra-tt-count flowrra-c-${color(colors, status)}`,
            "data-status": status,
            title: `show only ${status} tasks (click again for all)`,
            onclick: () => setFilter("status_filter", model.get("status_filter") === status ? "" : status),
          },
          [h("span", { class: "flowrra-tt-count-name", text: status }), h("span", { class: "flowrra-tt-count-value" })],
        );
        chipNodes.set(status, chip);
        chips.append(chip);
      }
      chip.lastChild.textContent = String(counts[status] || 0);
      chip.setAttribute("aria-pressed", String(current === status));
    }
    const rows = model.get("rows") || [];
    const matching = model.get("matching");
    const name = model.get("name_filter") || "";
    let text = "";
    if (matching !== undefined && matching !== null && matching >= 0) {
      if (rows.length < matching) text = `showing ${formatCount(rows.length)} of ${formatCount(matching)}`;
    } else if (name) {
      text = `showing ${formatCount(rows.length)} ${name} task(s)`;
    }
    shown.textContent = text;
    shown.hidden = !text;
  }

  function drawProgress() {
    const counts = model.get("counts") || {};
    const colors = model.get("colors") || {};
    const total = model.get("total") || 0;
    const done = DONE.reduce((sum, s) => sum + (counts[s] || 0), 0);
    const segments = BAR_ORDER.filter((s) => counts[s]).map((status) =>
      h("div", {
        class: `flowrra-tt-segment flowrra-bg-${color(colors, status)}`,
        style: `width: ${((100 * counts[status]) / Math.max(total, 1)).toFixed(2)}%`,
        title: `${status}: ${counts[status]}`,
      }),
    );
    bar.replaceChildren(...segments);
    bar.setAttribute("aria-valuenow", String(total ? Math.floor((100 * done) / total) : 100));
    barLabel.textContent = `${done} / ${total} done`;
  }

  function select(trait, label, values) {
    const current = model.get(trait) || "";
    const options = [h("option", { value: "", text: `all ${label}` })].concat(
      values.map((v) => h("option", { value: v, text: v, selected: v === current })),
    );
    return h(
      "select",
      {
        class: `flowrra-tt-filter flowrra-tt-filter-${trait}`,
        "aria-label": `filter by ${label}`,
        onchange: (event) => setFilter(trait, event.target.value),
      },
      options,
    );
  }

  function drawFilters() {
    // rebuilt only when their options or values change: an open drop-down stays open
    const statuses = model.get("statuses") || [];
    const names = model.get("task_names") || [];
    const mode = model.get("mode");
    const grouped = Boolean(model.get("group_by_workflow"));
    const workflows = (model.get("rows") || []).some((r) => r.workflow_id);
    const next = JSON.stringify([
      statuses, names, model.get("status_filter"), model.get("name_filter"), mode, grouped, workflows,
    ]);
    if (next === filterKey) return;
    filterKey = next;
    const byWorkflow = h("input", {
      type: "checkbox",
      class: "flowrra-tt-group",
      checked: grouped,
      onchange: (event) => setFilter("group_by_workflow", event.target.checked),
    });
    filters.replaceChildren(
      select("status_filter", "statuses", statuses),
      select("name_filter", "tasks", names),
      workflows || grouped
        ? h("label", { class: "flowrra-tt-group-label", title: "show each workflow's rows together" }, [
            byWorkflow,
            " group by workflow",
          ])
        : "",
      mode === "snapshots" ? h("span", { class: "flowrra-tt-mode", text: "busy: showing snapshots" }) : "",
    );
  }

  // ---------------------------------------------------------------- the table
  const sortButtons = new Map();
  const headCells = COLUMNS.map((column) => {
    if (column.sortable === false) {
      return h("th", { class: `flowrra-tt-col-${column.key}` }, [h("span", { text: column.label })]);
    }
    const button = h("button", {
      class: "flowrra-tt-sort",
      "data-column": column.key,
      title: `sort by ${column.label}`,
      onclick: () => {
        if (model.get("sort_by") === column.key) model.set("sort_desc", !model.get("sort_desc"));
        else {
          model.set("sort_by", column.key);
          model.set("sort_desc", DESC_FIRST.has(column.key));
        }
        model.save_changes();
      },
    });
    sortButtons.set(column.key, button);
    return h("th", { class: `flowrra-tt-col-${column.key}${column.num ? " flowrra-tt-num" : ""}` }, [button]);
  });
  headCells.push(h("th", { class: "flowrra-tt-actions", "aria-label": "cancel" }));
  const tbody = h("tbody");
  const tableEl = h("table", { class: "flowrra-tt-table" }, [h("thead", {}, [h("tr", {}, headCells)]), tbody]);
  const scroll = h("div", { class: "flowrra-tt-scroll" }, [tableEl]);
  scroll.addEventListener("scroll", () => {
    saved.scrollTop = scroll.scrollTop;
    saved.scrollLeft = scroll.scrollLeft;
  });

  const failedHeader = h("tr", { class: "flowrra-tt-section", "data-section": "failed" }, [
    h("td", { colspan: SPAN }, [
      h("button", {
        class: "flowrra-tt-section-toggle",
        onclick: () => {
          saved.collapsed = !saved.collapsed;
          schedule();
        },
      }),
    ]),
  ]);
  const othersHeader = h("tr", { class: "flowrra-tt-section", "data-section": "others" }, [
    h("td", { colspan: SPAN, text: "other tasks" }),
  ]);
  const emptyRow = h("tr", { class: "flowrra-tt-empty" }, [h("td", { colspan: SPAN })]);

  function drawSortButtons() {
    const column = model.get("sort_by") || "submitted_at";
    const descending = model.get("sort_desc");
    for (const c of COLUMNS) {
      const button = sortButtons.get(c.key);
      if (!button) continue; // a column that does not sort
      const active = c.key === column;
      button.textContent = active ? `${c.label} ${descending ? "\u25bc" : "\u25b2"}` : c.label;
      button.parentElement.setAttribute("aria-sort", active ? (descending ? "descending" : "ascending") : "none");
    }
  }

  function makeRow(id) {
    const cells = {};
    for (const column of COLUMNS) {
      cells[column.key] = h("td", { class: `flowrra-tt-col-${column.key}${column.num ? " flowrra-tt-num" : ""}` });
    }
    cells.actions = h("td", { class: "flowrra-tt-actions" });
    // long values are cut to a width of their own (a table cell's max-width is ignored)
    const clips = { args: h("span", { class: "flowrra-tt-clip" }), error: h("span", { class: "flowrra-tt-clip" }) };
    cells.args.append(clips.args);
    cells.error.append(clips.error);
    const tr = h(
      "tr",
      {
        class: "flowrra-tt-row",
        tabindex: 0,
        "data-task-id": id,
        onclick: () => model.send({ type: "select", task_id: id }),
        onkeydown: (event) => {
          if (event.key === "Enter") model.send({ type: "select", task_id: id });
        },
      },
      Object.values(cells),
    );
    return { tr, cells, clips, signature: "" };
  }

  function fillRow(entry, r, selected, colors) {
    const signature = JSON.stringify([
      r.status, r.task_name, r.args, r.submitted_at, r.started_at, r.duration, attempt(r), r.error, r.error_type, selected,
      r.progress, r.progress_message, r.workflow_id, r.workflow_step,
    ]);
    if (signature === entry.signature) return;
    entry.signature = signature;
    const { tr, cells, clips } = entry;
    const id = r.task_id;
    tr.dataset.status = r.status;
    tr.classList.toggle("flowrra-tt-selected", selected);
    tr.setAttribute("aria-selected", String(selected));
    cells.status.replaceChildren(...[badge(r.status, colors), rowProgress(r)].filter(Boolean));
    cells.task_name.textContent = r.task_name || "-";
    cells.task_id.textContent = id.slice(0, 8);
    cells.task_id.title = id;
    cells.workflow.textContent = workflowLabel(r);
    cells.workflow.title = r.workflow_id ? `workflow ${r.workflow_id}` : "";
    clips.args.textContent = r.args || "";
    cells.args.title = r.args ? `${r.args} (click the row for all of it)` : "";
    cells.submitted_at.textContent = formatTime(r.submitted_at);
    cells.elapsed.textContent = r.duration === null || r.duration === undefined ? "-" : formatDuration(r.duration);
    cells.attempt.textContent = String(attempt(r));
    const error = errorText(r);
    clips.error.textContent = error;
    cells.error.title = error;
    if (LIVE.has(r.status)) {
      if (!cells.actions.firstChild) {
        cells.actions.append(
          h("button", {
            class: "flowrra-tt-cancel",
            title: "cancel this task",
            text: "cancel",
            onclick: (event) => {
              event.stopPropagation();
              event.currentTarget.disabled = true;
              model.send({ type: "cancel", task_id: id });
            },
          }),
        );
      }
    } else if (cells.actions.firstChild) {
      cells.actions.replaceChildren();
    }
  }

  function place(nodes) {
    let node = tbody.firstChild;
    for (const want of nodes) {
      if (node === want) {
        node = node.nextSibling;
        continue;
      }
      tbody.insertBefore(want, node); // moves a row only when its place changed
    }
    while (node) {
      const next = node.nextSibling;
      node.remove();
      node = next;
    }
  }

  let ticking = [];
  function drawBody() {
    const colors = model.get("colors") || {};
    const statuses = model.get("statuses") || [];
    const rows = model.get("rows") || [];
    const selected = (model.get("detail") || {}).task_id;
    const workflows = rows.some((r) => r.workflow_id);
    tableEl.classList.toggle("flowrra-tt-no-workflows", !workflows);
    const grouped = workflows && Boolean(model.get("group_by_workflow"));
    const sorted = sortRows(rows, model.get("sort_by") || "submitted_at", model.get("sort_desc"), statuses, now());
    const ordered = grouped ? groupByWorkflow(sorted) : sorted;
    const seen = new Set();
    const entryOf = (r) => {
      let entry = rowNodes.get(r.task_id);
      if (!entry) {
        entry = makeRow(r.task_id);
        rowNodes.set(r.task_id, entry);
      }
      seen.add(r.task_id);
      fillRow(entry, r, r.task_id === selected, colors);
      return entry;
    };
    const failed = ordered.filter((r) => r.status === "failed");
    const pin = !grouped && failed.length > 0 && failed.length < ordered.length;
    const nodes = [];
    if (pin) {
      failedHeader.querySelector("button").textContent = `${saved.collapsed ? "\u25b8" : "\u25be"} failed (${failed.length})`;
      nodes.push(failedHeader);
      for (const r of failed) {
        const entry = entryOf(r);
        if (!saved.collapsed) nodes.push(entry.tr);
      }
      nodes.push(othersHeader);
    }
    ticking = [];
    for (const r of pin ? ordered.filter((r) => r.status !== "failed") : ordered) {
      const entry = entryOf(r);
      nodes.push(entry.tr);
      if (TICKING.has(r.status) && r.started_at && (r.duration === null || r.duration === undefined)) {
        ticking.push([entry, r]);
      }
    }
    if (!nodes.length) {
      const filtered = model.get("status_filter") || model.get("name_filter");
      emptyRow.firstChild.textContent = filtered ? "no task matches the filters" : "no tasks yet";
      nodes.push(emptyRow);
    }
    for (const id of rowNodes.keys()) if (!seen.has(id)) rowNodes.delete(id);
    place(nodes);
    tick();
    if (ticking.length && ticker === null) ticker = setInterval(tick, 1000);
    else if (!ticking.length && ticker !== null) {
      clearInterval(ticker);
      ticker = null;
    }
  }

  function tick() {
    if (!alive()) return;
    const t = now();
    for (const [entry, r] of ticking) entry.cells.elapsed.textContent = formatTicking(elapsed(r, t));
  }

  // ---------------------------------------------------------------- details
  const panel = h("div", { class: "flowrra-tt-detail", hidden: true });
  function drawDetail() {
    const d = model.get("detail") || {};
    if (!d.task_id) {
      panel.hidden = true;
      panel.replaceChildren();
      return;
    }
    panel.hidden = false;
    const close = h("button", {
      class: "flowrra-tt-close",
      title: "close",
      text: "\u00d7",
      onclick: () => setFilter("detail", {}),
    });
    if (d.missing) {
      panel.replaceChildren(close, field("task", `${d.task_id}: no record`));
      return;
    }
    const retries = d.retries || 0;
    const failedNow = d.status === "failed";
    const fields = [
      close,
      h("div", { class: "flowrra-tt-detail-title" }, [
        badge(d.status, model.get("colors") || {}),
        h("b", { text: ` ${d.task_name || "-"} ` }),
        h("code", { text: d.task_id }),
      ]),
      field("attempt", `${attempt(d)} (${retries} ${retries === 1 ? "retry" : "retries"})`),
      field("duration", d.duration === null || d.duration === undefined ? null : formatDuration(d.duration)),
      field("args", d.args),
      field("kwargs", d.kwargs),
      field("result", d.result, true),
      field(failedNow ? "error" : "last error", d.error ? `${d.error_type || "Error"}: ${d.error}` : null, true),
      field("traceback", d.traceback, true),
      field("progress", progressText(d)),
      field("output", d.output, true),
    ];
    panel.replaceChildren(...fields.filter(Boolean));
  }

  // ------------------------------------------------------------------ drawing
  const root = h("div", { class: "flowrra-tt" }, [top, scroll, panel]);
  el.append(root);

  function alive() {
    // a view whose node was taken out of its output (the output re-rendered) is over
    if (disposed) return false;
    if (el.parentNode) attached = true;
    else if (attached) {
      dispose();
      return false;
    }
    return true;
  }

  const parts = {
    header: drawHeader,
    progress: drawProgress,
    filters: drawFilters,
    sort: drawSortButtons,
    body: drawBody,
    detail: drawDetail,
  };
  const dirty = new Set(Object.keys(parts));
  const TRAITS = {
    counts: ["header", "progress"],
    total: ["progress"],
    rows: ["header", "filters", "body"],
    matching: ["header"],
    app_state: ["header"],
    status_filter: ["header", "filters"],
    name_filter: ["header", "filters"],
    task_names: ["filters"],
    mode: ["filters"],
    sort_by: ["sort", "body"],
    sort_desc: ["sort", "body"],
    group_by_workflow: ["filters", "body"],
    detail: ["body", "detail"],
  };

  function draw() {
    scheduled = false;
    if (!alive()) return;
    for (const name of dirty) parts[name]();
    dirty.clear();
  }

  function schedule(names = ["body"]) {
    for (const name of names) dirty.add(name);
    if (!scheduled) {
      scheduled = true;
      Promise.resolve().then(draw);
    }
  }

  const listeners = Object.entries(TRAITS).map(([trait, names]) => [`change:${trait}`, () => schedule(names)]);
  listeners.push(["change:clock", setClock]);
  for (const [event, fn] of listeners) model.on(event, fn);

  function dispose() {
    if (disposed) return;
    disposed = true;
    for (const [event, fn] of listeners) model.off(event, fn);
    if (ticker !== null) clearInterval(ticker);
    ticker = null;
  }

  draw();
  if (saved.scrollTop || saved.scrollLeft) {
    requestAnimationFrame(() => {
      scroll.scrollTop = saved.scrollTop;
      scroll.scrollLeft = saved.scrollLeft;
    });
  }
  return dispose;
}

export default { render };
