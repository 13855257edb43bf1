// flowrra dashboard: the pages around the live task table. Plain ES module, no build step.
// The task table itself is widgets/task_table.js, the same module the notebook widget
// uses, fed here by a WebSocket (SocketModel) instead of a kernel comm.
// Every value from a task is set with textContent: nothing from the server is parsed as HTML.

import tableWidget from "./task_table.js";

const main = document.getElementById("fd-main");
const ROOT = main.dataset.root || "";
const conn = document.getElementById("fd-conn");

function h(tag, attrs = {}, children = []) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") el.textContent = String(value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) if (child !== null && child !== undefined) el.append(child);
  return el;
}

function setConn(text, ok) {
  conn.textContent = text;
  conn.className = `fd-conn ${ok ? "fd-ok" : "fd-bad"}`;
}

async function api(path, options = {}) {
  const init = { credentials: "same-origin", headers: {}, ...options };
  if (init.body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(init.body);
  }
  // Django's CSRF cookie, when the host project uses its CSRF middleware (flowrra.ui.django)
  const csrf = /(?:^|;\s*)csrftoken=([^;]+)/.exec(document.cookie);
  if (csrf && init.method && init.method !== "GET") init.headers["X-CSRFToken"] = decodeURIComponent(csrf[1]);
  const response = await fetch(`${ROOT}${path}`, init);
  if (response.status === 401) {
    window.location.href = `${ROOT}/login`;
    throw new Error("login needed");
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.detail || data.error || `${response.status} ${response.statusText}`);
  return data;
}

function socketUrl(path) {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${window.location.host}${ROOT}${path}`;
}

function when(iso) {
  if (!iso) return "-";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

function ago(seconds) {
  if (seconds === null || seconds === undefined) return "-";
  if (seconds < 60) return `${seconds.toFixed(0)} s ago`;
  if (seconds < 3600) return `${(seconds / 60).toFixed(0)} min ago`;
  return `${(seconds / 3600).toFixed(1)} h ago`;
}

function table(headers, rows, attrs = {}) {
  return h("table", { class: "fd-table", ...attrs }, [
    h("thead", {}, [h("tr", {}, headers.map((t) => h("th", { text: t })))]),
    h("tbody", {}, rows.length ? rows : [h("tr", {}, [h("td", { colspan: headers.length, class: "fd-empty", text: "none" })])]),
  ]);
}

function notice(text, bad = true) {
  return h("p", { class: bad ? "fd-error" : "fd-note", role: "status", text });
}

// The API gives a task's args, kwargs and result as JSON values; the table's details show
// text fields (the notebook sends reprs), so they become JSON text here, in full.
function tableDetail(d) {
  if (!d || !d.task_id || d.missing) return d;
  const text = (v) => (v === null || v === undefined ? null : JSON.stringify(v));
  const args = Array.isArray(d.args) && d.args.length ? text(d.args) : null;
  const kwargs = d.kwargs && Object.keys(d.kwargs).length ? text(d.kwargs) : null;
  return { ...d, args, kwargs, result: text(d.result) };
}

// ------------------------------------------------------------- a model over a socket
class SocketModel {
  constructor(path) {
    // client-side traits, with the notebook table's defaults: newest first, as pages are cut
    this.state = { sort_by: "submitted_at", sort_desc: true };
    this.handlers = new Map();
    this.pending = {};
    this.path = path;
    this.connect();
  }
  connect() {
    this.ws = new WebSocket(socketUrl(this.path));
    this.ws.onopen = () => { this.opened = true; setConn("live", true); };
    this.ws.onclose = () => {
      if (!this.opened) { this.poll(); return; } // no WebSockets where the page is mounted
      setConn("reconnecting", false);
      setTimeout(() => this.connect(), 2000);
    };
    this.ws.onmessage = (message) => {
      const data = JSON.parse(message.data);
      if (data.type !== "state") return;
      for (const [key, value] of Object.entries(data.state)) {
        this.state[key] = key === "detail" ? tableDetail(value) : value;
        this.emit(key);
      }
    };
  }
  emit(key) {
    for (const cb of this.handlers.get(`change:${key}`) || []) cb();
  }
  get(key) { return this.state[key]; }
  set(key, value) {
    this.state[key] = value;
    this.pending[key] = value;
    this.emit(key);
  }
  save_changes() {
    for (const [key, value] of Object.entries(this.pending)) this.send({ type: "set", key, value });
    this.pending = {};
  }
  send(content) {
    if (this.polling) this.request(content).catch((e) => setConn(String(e.message), false));
    else if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(content));
  }
  // Without WebSockets (a Flask app, Django without Channels) the same state comes from the
  // JSON API every two seconds, and messages become requests (as TableView does them).
  poll() {
    this.polling = true;
    this.view = { status_filter: "", name_filter: "", offset: 0, selected: null };
    const tick = () => this.refresh().then(() => setConn("polling", true), (e) => setConn(String(e.message), false));
    tick();
    setInterval(tick, 2000);
  }
  async refresh() {
    const v = this.view;
    const query = new URLSearchParams({ status: v.status_filter, name: v.name_filter, offset: v.offset, limit: 100 });
    const page = await api(`/api/records?${query}`);
    const detail = v.selected ? tableDetail(await api(`/api/records/${encodeURIComponent(v.selected)}`).catch(() => ({}))) : {};
    const state = { detail, max_rows: page.limit, mode: "events", status_filter: v.status_filter, name_filter: v.name_filter };
    for (const key of ["counts", "rows", "total", "matching", "offset", "limit", "task_names", "statuses", "colors"]) state[key] = page[key];
    for (const [key, value] of Object.entries(state)) {
      if (JSON.stringify(this.state[key]) === JSON.stringify(value)) continue;
      this.state[key] = value;
      this.emit(key);
    }
  }
  async request(content) {
    const v = this.view;
    if (content.type === "set" && (content.key === "status_filter" || content.key === "name_filter")) {
      v[content.key] = content.value;
      v.offset = 0;
    } else if (content.type === "set" && content.key === "offset") v.offset = content.value;
    else if (content.type === "set" && content.key === "detail" && !content.value) v.selected = null;
    else if (content.type === "select") v.selected = content.task_id;
    else if (content.type === "cancel") {
      await api(`/api/records/${encodeURIComponent(content.task_id)}/cancel`, { method: "POST" }).catch(() => {});
    }
    await this.refresh();
  }
  on(name, cb) {
    if (!this.handlers.has(name)) this.handlers.set(name, new Set());
    this.handlers.get(name).add(cb);
  }
  off(name, cb) { this.handlers.get(name)?.delete(cb); }
}

// --------------------------------------------------------------------- the pages
function tasksPage() {
  const model = new SocketModel("/ws/table");
  const holder = h("div", { class: "fd-tasks" });
  const pager = h("div", { class: "fd-pager" });
  main.replaceChildren(holder, pager);
  tableWidget.render({ model, el: holder });
  const drawPager = () => {
    const offset = model.get("offset") || 0;
    const limit = model.get("limit") || 100;
    const matching = model.get("matching") || 0;
    const last = Math.min(offset + limit, matching);
    const go = (value) => { model.set("offset", value); model.save_changes(); };
    pager.replaceChildren(
      h("button", { type: "button", disabled: offset <= 0, onclick: () => go(Math.max(0, offset - limit)), text: "‹ newer" }),
      h("span", { class: "fd-range", text: matching ? `${offset + 1}–${last} of ${matching.toLocaleString()}` : "no tasks" }),
      h("button", { type: "button", disabled: last >= matching, onclick: () => go(offset + limit), text: "older ›" }),
    );
  };
  for (const key of ["offset", "limit", "matching"]) model.on(`change:${key}`, drawPager);
  drawPager();
}

function chart(series) {
  const width = 600, height = 120;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("class", "fd-chart");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "tasks finished per second and failures over time");
  if (series.length < 2) return svg;
  const top = Math.max(1, ...series.map((p) => p.per_s));
  const t0 = series[0].t, t1 = series[series.length - 1].t;
  const x = (t) => ((t - t0) / Math.max(t1 - t0, 1)) * (width - 4) + 2;
  const y = (v) => height - 4 - (v / top) * (height - 8);
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", series.map((p) => `${x(p.t)},${y(p.per_s)}`).join(" "));
  line.setAttribute("class", "fd-line");
  svg.append(line);
  for (const p of series.filter((p) => p.failed > 0)) {
    const dot = document.createElementNS(ns, "circle");
    dot.setAttribute("cx", x(p.t)); dot.setAttribute("cy", y(p.per_s)); dot.setAttribute("r", 3);
    dot.setAttribute("class", "fd-fail");
    svg.append(dot);
  }
  return svg;
}

function workerRows(workers) {
  return workers.map((w) => h("tr", { class: w.lost ? "fd-lost" : "" }, [
    h("td", { text: w.host || "-" }),
    h("td", { text: w.pid ?? "-" }),
    h("td", { text: (w.queues || []).join(", ") }),
    h("td", { text: w.concurrency ?? "-" }),
    h("td", { text: w.running ?? 0 }),
    h("td", { text: ago(w.seconds_since_beat) }),
    h("td", {}, [h("span", { class: `fd-state ${w.lost ? "fd-bad" : "fd-ok"}`, text: w.lost ? "lost" : "alive" })]),
  ]));
}

async function overviewPage() {
  const draw = async () => {
    let data;
    try { data = await api("/api/overview"); setConn("live", true); } catch (e) { setConn(String(e.message), false); return; }
    const cards = Object.entries(data.counts).map(([status, n]) =>
      h("div", { class: `fd-card fd-s-${status}` }, [h("div", { class: "fd-n", text: n.toLocaleString() }), h("div", { text: status })]));
    const perS = data.series.length ? data.series[data.series.length - 1].per_s : 0;
    main.replaceChildren(
      h("section", { class: "fd-cards" }, cards),
      h("h2", { text: `Throughput: ${perS.toFixed(1)} tasks/s` }),
      chart(data.series),
      h("h2", { text: "Queues" }),
      table(["queue", "waiting"], data.queues.map((q) => h("tr", {}, [h("td", { text: q.queue }), h("td", { text: q.waiting })]))),
      h("h2", { text: "Workers" }),
      table(["host", "pid", "queues", "concurrency", "running", "last beat", "state"], workerRows(data.workers)),
      h("h2", { text: "Failed in the last hour" }),
      table(["task", "id", "finished", "error"], data.failed_last_hour.map((r) => h("tr", {}, [
        h("td", { text: r.task_name }), h("td", { class: "fd-id", text: r.task_id.slice(0, 8) }),
        h("td", { text: when(r.finished_at) }), h("td", { class: "fd-err", text: r.error || "" }),
      ]))),
    );
  };
  await draw();
  setInterval(draw, 2000);
}

async function workersPage() {
  const draw = async () => {
    let workers;
    try { workers = await api("/api/workers"); setConn("live", true); } catch (e) { setConn(String(e.message), false); return; }
    main.replaceChildren(
      h("h2", { text: `Workers (${workers.filter((w) => !w.lost).length} alive)` }),
      table(["host", "pid", "queues", "concurrency", "running", "last beat", "state"], workerRows(workers), { id: "fd-workers" }),
    );
  };
  await draw();
  setInterval(draw, 2000);
}

function scheduleForm(taskNames, reload, status) {
  const kind = h("select", { name: "kind" }, ["cron", "interval", "once"].map((k) => h("option", { value: k, text: k })));
  const task = h("select", { name: "task_name" }, taskNames.map((n) => h("option", { value: n, text: n })));
  const when_ = h("input", { name: "when", placeholder: "*/5 * * * *", required: true });
  const args = h("input", { name: "args", placeholder: "[1, 2]" });
  const kwargs = h("input", { name: "kwargs", placeholder: '{"x": 1}' });
  const description = h("input", { name: "description", placeholder: "what it is for" });
  kind.addEventListener("change", () => {
    when_.placeholder = { cron: "*/5 * * * *", interval: "seconds, e.g. 60", once: "2026-12-01T09:00:00+00:00" }[kind.value];
  });
  const form = h("form", { class: "fd-form", id: "fd-schedule-form" }, [
    h("label", {}, ["kind ", kind]), h("label", {}, ["task ", task]), h("label", {}, ["when ", when_]),
    h("label", {}, ["args ", args]), h("label", {}, ["kwargs ", kwargs]), h("label", {}, ["description ", description]),
    h("button", { type: "submit", text: "Create schedule" }),
  ]);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { kind: kind.value, task_name: task.value, description: description.value || null };
    try {
      if (kind.value === "cron") body.cron = when_.value;
      else if (kind.value === "interval") body.interval = Number(when_.value);
      else body.run_at = when_.value;
      body.args = args.value ? JSON.parse(args.value) : [];
      body.kwargs = kwargs.value ? JSON.parse(kwargs.value) : {};
      const made = await api("/api/schedules", { method: "POST", body });
      status.replaceChildren(notice(`Created schedule ${made.schedule_id}`, false));
      form.reset();
      kind.dispatchEvent(new Event("change")); // the placeholder follows the kind reset
      await reload();
    } catch (e) {
      status.replaceChildren(notice(String(e.message)));
    }
  });
  return form;
}

async function schedulesPage() {
  const status = h("div", { class: "fd-status" });
  const list = h("div");
  const history = h("div", { class: "fd-history" });
  let shown = null; // the schedule whose runs are shown: refreshed with the list
  const showHistory = async (id) => {
    shown = id;
    let s;
    try {
      s = await api(`/api/schedules/${encodeURIComponent(id)}`);
    } catch (e) {
      if (shown === id) { shown = null; history.replaceChildren(); } // deleted meanwhile
      return;
    }
    if (shown !== id) return; // another schedule was clicked meanwhile
    history.replaceChildren(
      h("h2", { text: `Runs of ${s.task_name} (${s.schedule})` }),
      table(["due", "fired", "outcome", "task id", "error"], s.runs.map((r) => h("tr", {}, [
        h("td", { text: when(r.due_at) }), h("td", { text: when(r.fired_at) }), h("td", { text: r.outcome }),
        h("td", { class: "fd-id", text: r.task_id || "-" }), h("td", { class: "fd-err", text: r.error || "" }),
      ]))),
    );
  };
  const act = async (method, path) => {
    try { await api(path, { method }); await reload(); } catch (e) { status.replaceChildren(notice(String(e.message))); }
  };
  const reload = async () => {
    const schedules = await api("/api/schedules");
    list.replaceChildren(table(["task", "type", "schedule", "next run", "last run", "state", ""], schedules.map((s) => {
      const id = encodeURIComponent(s.id);
      return h("tr", { "data-id": s.id }, [
        h("td", {}, [h("a", { href: "#", onclick: (e) => { e.preventDefault(); showHistory(s.id); }, text: s.task_name })]),
        h("td", { text: s.schedule_type }), h("td", { text: s.schedule }),
        h("td", { text: when(s.next_run_at) }), h("td", { text: when(s.last_run_at) }),
        h("td", { text: s.enabled ? "enabled" : "disabled" }),
        h("td", { class: "fd-actions" }, [
          s.enabled
            ? h("button", { type: "button", onclick: () => act("PUT", `/api/schedules/${id}/disable`), text: "Disable" })
            : h("button", { type: "button", onclick: () => act("PUT", `/api/schedules/${id}/enable`), text: "Enable" }),
          h("button", { type: "button", class: "fd-danger", onclick: () => act("DELETE", `/api/schedules/${id}`), text: "Delete" }),
        ]),
      ]);
    }), { id: "fd-schedules" }));
    if (shown !== null) await showHistory(shown);
  };
  let names = [];
  try {
    names = (await api("/api/tasks")).map((t) => t.name);
    await reload();
  } catch (e) {
    status.replaceChildren(notice(String(e.message)));
  }
  main.replaceChildren(h("h2", { text: "Schedules" }), status, list, h("h2", { text: "New schedule" }), scheduleForm(names, reload, status), history);
  setConn("ready", true);
  setInterval(() => reload().catch(() => {}), 5000);
}

const pages = { overview: overviewPage, tasks: tasksPage, schedules: schedulesPage, workers: workersPage };
(pages[main.dataset.page] || overviewPage)();
