// flowrra's live task table: the front-end of flowrra.notebook.TaskTable (an anywidget).
// Plain ES module, no build step. The Python side owns the state (counts, rows, detail);
// this file draws it and sends back filter changes, row clicks and cancel requests.

const LIVE = new Set(["pending", "running", "retrying"]);
const DONE = ["success", "failed", "cancelled"];
const BAR_ORDER = ["success", "failed", "cancelled", "running", "retrying"];

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

function formatTime(iso) {
  if (!iso) return "-";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleTimeString();
}

function badge(status, colors) {
  const color = colors[status] || "gray";
  return h("span", { class: `flowrra-tt-badge flowrra-c-${color}`, text: status });
}

function header(model) {
  const counts = model.get("counts") || {};
  const colors = model.get("colors") || {};
  const statuses = model.get("statuses") || Object.keys(counts);
  const state = model.get("app_state") || "";
  const chips = statuses.map((status) =>
    h("span", { class: `flowrra-tt-count flowrra-c-${colors[status] || "gray"}`, "data-status": status }, [
      h("span", { class: "flowrra-tt-count-name", text: status }),
      h("span", { class: "flowrra-tt-count-value", text: counts[status] || 0 }),
    ]),
  );
  return h("div", { class: "flowrra-tt-header" }, [
    h("span", { class: "flowrra-tt-title", text: "flowrra tasks" }),
    h("span", { class: `flowrra-tt-state flowrra-tt-state-${state}`, text: state }),
    h("span", { class: "flowrra-tt-counts" }, chips),
  ]);
}

function progress(model) {
  const counts = model.get("counts") || {};
  const colors = model.get("colors") || {};
  const total = model.get("total") || 0;
  const done = DONE.reduce((sum, s) => sum + (counts[s] || 0), 0);
  const segments = BAR_ORDER.filter((s) => counts[s]).map((status) =>
    h("div", {
      class: `flowrra-tt-segment flowrra-bg-${colors[status] || "gray"}`,
      style: `width: ${((100 * counts[status]) / Math.max(total, 1)).toFixed(2)}%`,
      title: `${status}: ${counts[status]}`,
    }),
  );
  const pct = total ? Math.floor((100 * done) / total) : 100;
  return h("div", { class: "flowrra-tt-progress" }, [
    h("div", { class: "flowrra-tt-bar", role: "progressbar", "aria-valuenow": pct }, segments),
    h("span", { class: "flowrra-tt-progress-label", text: `${done} / ${total} done` }),
  ]);
}

function select(model, trait, label, values) {
  const current = model.get(trait) || "";
  const options = [h("option", { value: "", text: `all ${label}` })].concat(
    values.map((v) => h("option", { value: v, text: v, selected: v === current })),
  );
  return h(
    "select",
    {
      class: `flowrra-tt-filter flowrra-tt-filter-${trait}`,
      "aria-label": `filter by ${label}`,
      onchange: (event) => {
        model.set(trait, event.target.value);
        model.save_changes();
      },
    },
    options,
  );
}

function filters(model) {
  const mode = model.get("mode");
  return h("div", { class: "flowrra-tt-filters" }, [
    select(model, "status_filter", "statuses", model.get("statuses") || []),
    select(model, "name_filter", "tasks", model.get("task_names") || []),
    mode === "snapshots"
      ? h("span", { class: "flowrra-tt-mode", text: "busy: showing snapshots" })
      : null,
  ]);
}

function row(model, record, colors, selected) {
  const id = record.task_id;
  const cancel = LIVE.has(record.status)
    ? h("button", {
        class: "flowrra-tt-cancel",
        title: "cancel this task",
        text: "cancel",
        onclick: (event) => {
          event.stopPropagation();
          model.send({ type: "cancel", task_id: id });
        },
      })
    : null;
  const error = record.error ? `${record.error_type ? record.error_type + ": " : ""}${record.error}` : "";
  return h(
    "tr",
    {
      class: `flowrra-tt-row${id === selected ? " flowrra-tt-selected" : ""}`,
      "data-task-id": id,
      "data-status": record.status,
      onclick: () => model.send({ type: "select", task_id: id }),
    },
    [
      h("td", {}, [badge(record.status, colors)]),
      h("td", { class: "flowrra-tt-name", text: record.task_name || "-" }),
      h("td", { class: "flowrra-tt-id", title: id, text: id.slice(0, 8) }),
      h("td", { text: formatTime(record.submitted_at) }),
      h("td", { class: "flowrra-tt-num", text: formatDuration(record.duration) }),
      h("td", { class: "flowrra-tt-num", text: record.retries || 0 }),
      h("td", { class: "flowrra-tt-error", title: error, text: error }),
      h("td", {}, [cancel]),
    ],
  );
}

function table(model) {
  const colors = model.get("colors") || {};
  const rows = model.get("rows") || [];
  const selected = (model.get("detail") || {}).task_id;
  const head = ["status", "task", "id", "submitted", "duration", "retries", "error", ""].map((t) =>
    h("th", { text: t }),
  );
  const body = rows.length
    ? rows.map((r) => row(model, r, colors, selected))
    : [h("tr", { class: "flowrra-tt-empty" }, [h("td", { colspan: 8, text: "no tasks yet" })])];
  return h("div", { class: "flowrra-tt-scroll" }, [
    h("table", { class: "flowrra-tt-table" }, [
      h("thead", {}, [h("tr", {}, head)]),
      h("tbody", {}, body),
    ]),
  ]);
}

function field(label, value, pre = false) {
  if (value === null || value === undefined || value === "") return null;
  return h("div", { class: "flowrra-tt-field" }, [
    h("span", { class: "flowrra-tt-field-label", text: label }),
    h(pre ? "pre" : "span", { class: "flowrra-tt-field-value", text: value }),
  ]);
}

function detail(model) {
  const d = model.get("detail") || {};
  if (!d.task_id) return null;
  const close = h("button", {
    class: "flowrra-tt-close",
    title: "close",
    text: "\u00d7",
    onclick: () => {
      model.set("detail", {});
      model.save_changes();
    },
  });
  if (d.missing) {
    return h("div", { class: "flowrra-tt-detail" }, [close, field("task", `${d.task_id}: no record`)]);
  }
  return h("div", { class: "flowrra-tt-detail" }, [
    close,
    h("div", { class: "flowrra-tt-detail-title" }, [
      badge(d.status, model.get("colors") || {}),
      h("b", { text: ` ${d.task_name || "-"} ` }),
      h("code", { text: d.task_id }),
    ]),
    field("duration", formatDuration(d.duration)),
    field("retries", String(d.retries || 0)),
    field("args", d.args),
    field("kwargs", d.kwargs),
    field("result", d.result, true),
    field("error", d.error ? `${d.error_type || "Error"}: ${d.error}` : null, true),
    field("traceback", d.traceback, true),
  ]);
}

function render({ model, el }) {
  const root = h("div", { class: "flowrra-tt" });
  el.append(root);
  let scheduled = false;
  const draw = () => {
    scheduled = false;
    root.replaceChildren(header(model), progress(model), filters(model), table(model));
    const panel = detail(model);
    if (panel) root.append(panel);
  };
  const schedule = () => {
    if (!scheduled) {
      scheduled = true;
      Promise.resolve().then(draw);
    }
  };
  const events = ["counts", "rows", "total", "detail", "task_names", "mode", "app_state", "status_filter", "name_filter"];
  for (const name of events) model.on(`change:${name}`, schedule);
  draw();
  return () => {
    for (const name of events) model.off(`change:${name}`, schedule);
  };
}

export default { render };
