// SPDX-License-Identifier: Apache-2.0
// The Trainyard web console. Three views chosen by the URL's fragment: #/
// (cluster overview), #/jobs?state=&queue=&user= (job list with filters),
// #/job/ID (one job: summary, actions, live charts, ranks, events, plan).
// Each view fetches its JSON document (/api/...) when the server's event
// stream (/api/events, read through fetch) says it changed, or every 2 s
// where there is no stream, and redraws without reloading; a job's charts get only the points
// after the last one they hold, one series per attempt (a requeued job
// restarts from its checkpoint). The console acts as the user its token names (`you` in
// /api/cluster): it offers cancel, hold and release where trainctl would
// allow them, and the server checks again. Every value from the server
// goes into the page as text (textContent), never as markup.
"use strict";

const POLL_MS = 2000;
let timer = null;   // the current view's poll
let charts = [];    // Chart.js instances of the job view

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const k of kids) if (k !== null && k !== undefined) e.append(k);
  return e;
}

// A job as trainctl names it: an array's element as ARRAY_TASK (122_0), its
// own id otherwise (an element has one too, the link to its page).
function jobLabel(j) { return j.array_job_id !== null && j.array_job_id !== undefined ? `${j.array_job_id}_${j.array_task_id}` : String(j.id); }
function stateTag(s) { return el("span", { class: "state state-" + s, text: s }); }

function fmtTime(ms) { return ms ? new Date(ms).toLocaleString() : "-"; }

function fmtDur(s) {
  if (s === null || s === undefined || s < 0) return "-";
  s = Math.floor(s);
  const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, sec = s % 60;
  return h ? `${h}h${String(m).padStart(2, "0")}m` : m ? `${m}m${String(sec).padStart(2, "0")}s` : `${sec}s`;
}

function fmtBytes(b) {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
  return (i ? b.toFixed(1) : b) + " " + u[i];
}

function tableRow(heads, r) {
  return el("tr", {}, ...r.map((c, i) => {
    const td = el("td", { class: heads[i].num ? "num" : heads[i].cls || "" });
    if (c instanceof Node) td.append(c); else td.textContent = c === null || c === undefined ? "-" : String(c);
    return td;
  }));
}

function table(id, heads, rows) {
  const t = el("table", { id });
  t.append(el("thead", {}, el("tr", {}, ...heads.map(h => el("th", { class: h.num ? "num" : "", text: h.label || h })))));
  t.append(el("tbody", {}, ...rows.map(r => tableRow(heads, r))));
  return t;
}

function bar(used, total) {
  const pct = total ? Math.min(100, 100 * used / total) : 0;
  // The width through the CSSOM: the server's Content-Security-Policy
  // refuses style attributes in markup.
  const fill = el("i");
  fill.style.width = `${pct}%`;
  const b = el("span", { class: "bar" }, fill);
  return el("span", {}, b, `${used}/${total}`);
}

let me = null; // whom the console acts as: {user, uid, operator} (/api/cluster's `you`)

// ---- the token -----------------------------------------------------------------------------

// The token is kept in this tab's sessionStorage, never in a cookie (a
// cookie would go to every other service on this host, whatever its port),
// and goes with each request as "Authorization: Bearer". It comes in the
// address's fragment, which the browser never sends to a server:
// #token=TOKEN, as `trainctl web-token` prints it, or a view's
// #/job/7?token=TOKEN. It is taken out of the address bar and the history.
const TOKEN_KEY = "trainyard_token";

function takeToken() {
  const hash = location.hash.replace(/^#/, "");
  const [path, qs] = hash.startsWith("token=") ? ["/", hash] : hash.split("?");
  const params = new URLSearchParams(qs || "");
  const token = params.get("token");
  if (token === null) return;
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  params.delete("token");
  history.replaceState(null, "", "/#" + (path || "/") + (params.toString() ? "?" + params : ""));
}

// The headers of every request: the token's, where there is one.
function authHeaders(extra) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return Object.assign(token ? { Authorization: `Bearer ${token}` } : {}, extra || {});
}

async function api(path, method) {
  const opts = { cache: "no-store", headers: authHeaders() };
  // X-Requested-With: the server takes a POST only from a page's own script.
  if (method) Object.assign(opts, { method, headers: authHeaders({ "X-Requested-With": "trainyard-console" }) });
  const r = await fetch(path, opts);
  const body = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
  if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
  return body;
}

function setStatus(text, bad) {
  const s = document.getElementById("status");
  s.textContent = text;
  s.className = "status" + (bad ? " error" : "");
}

// ---- overview ----------------------------------------------------------------------------

function noteYou(you) {
  me = you;
  document.getElementById("you").textContent = you ? `${you.user}${you.operator ? " (operator)" : ""}` : "";
}

function renderOverview(view, c) {
  noteYou(c.you);
  const j = c.jobs;
  const cpus = c.nodes.reduce((a, n) => [a[0] + n.cpus_used, a[1] + n.cpus], [0, 0]);
  const gpus = c.nodes.reduce((a, n) => [a[0] + n.gpus_used, a[1] + n.gpus], [0, 0]);
  const up = c.nodes.filter(n => n.state === "UP").length;
  const card = (v, label, id) => el("div", { class: "card", id }, el("b", { text: String(v) }), el("span", { text: label }));
  view.replaceChildren(
    el("h1", { text: "Cluster" }),
    el("div", { class: "cards" },
      card(`${up}/${c.nodes.length}`, "nodes up", "card-nodes"),
      card(j.RUNNING || 0, "jobs running", "card-running"),
      card(j.PENDING || 0, "jobs pending", "card-pending"),
      card(`${cpus[0]}/${cpus[1]}`, "CPUs used", "card-cpus"),
      card(`${gpus[0]}/${gpus[1]}`, "GPUs used", "card-gpus")),
    el("section", {}, el("h2", { text: "Nodes" }),
      table("nodes-table", ["Node", "State", { label: "CPUs" }, { label: "GPUs" }, { label: "Memory" },
        { label: "Tasks", num: true }, { label: "Heartbeat", num: true }, { label: "Reason", cls: "reason" }],
        c.nodes.map(n => [n.name, stateTag(n.state), bar(n.cpus_used, n.cpus), bar(n.gpus_used, n.gpus),
          `${fmtBytes(n.mem_used)} / ${fmtBytes(n.memory)}`, n.running_tasks, fmtDur(n.heartbeat_age_s) + " ago", n.reason]))),
    el("section", {}, el("h2", { text: "Queues" }),
      table("queues-table", ["Queue", "State", { label: "Tier", num: true }, { label: "Pending", num: true },
        { label: "Running", num: true }, { label: "GPUs used", num: true }, { label: "Fair share", num: true },
        { label: "Usage", num: true }, { label: "Memory/node (default / max)", num: true }],
        c.queues.map(q => [el("a", { href: `#/jobs?queue=${encodeURIComponent(q.name)}`, text: q.name }),
          stateTag(q.state), q.tier, q.pending, q.running, q.gpus_used,
          q.share === undefined ? "-" : (100 * q.share).toFixed(0) + "%",
          q.usage === undefined ? "-" : (100 * q.usage).toFixed(0) + "%",
          `${q.default_mem ? fmtBytes(q.default_mem) : "-"} / ${q.max_mem ? fmtBytes(q.max_mem) : "-"}`]))));
}

// ---- job list ------------------------------------------------------------------------------

const STATES = ["PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY",
  "NODE_FAIL", "PREEMPTED"];

function jobsForm(params) {
  const state = el("select", { name: "state", id: "filter-state" }, el("option", { value: "", text: "any" }),
    el("option", { value: "PENDING,RUNNING", text: "active" }), ...STATES.map(s => el("option", { value: s, text: s })));
  state.value = params.get("state") || "";
  const queue = el("input", { name: "queue", id: "filter-queue", placeholder: "any", value: params.get("queue") || "" });
  const user = el("input", { name: "user", id: "filter-user", placeholder: "any", value: params.get("user") || "" });
  const f = el("form", { class: "filters" },
    el("label", {}, "State", state), el("label", {}, "Queue", queue), el("label", {}, "User", user),
    el("button", { type: "submit", text: "Filter" }));
  f.addEventListener("submit", ev => {
    ev.preventDefault();
    const p = new URLSearchParams();
    for (const [k, v] of new FormData(f)) if (v) p.set(k, v);
    location.hash = "#/jobs" + (p.toString() ? "?" + p : "");
  });
  return f;
}

function renderJobs(holder, data, now) {
  holder.replaceChildren(
    table("jobs-table", [{ label: "ID", num: true }, "Name", "User", "Queue", "State", "Kind",
      { label: "Nodes" }, { label: "Time", num: true }, { label: "Reason", cls: "reason" }],
      data.jobs.map(j => [el("a", { href: `#/job/${j.id}`, text: jobLabel(j) }), j.name, j.user, j.queue,
        stateTag(j.state), j.kind, j.nodes.length ? j.nodes.join(",") : `(${j.n_nodes})`,
        fmtDur(((j.end_ms || now) - (j.start_ms || j.submit_ms)) / 1000), j.reason])),
    el("p", { class: "muted", id: "jobs-count",
      text: data.truncated ? `${data.jobs.length} newest of ${data.matched} jobs` : `${data.matched} jobs` }));
}

// ---- history ------------------------------------------------------------------------------------

// NODE_FAIL and PREEMPTED: the ends of a job submitted with --no-requeue.
const ENDED = ["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED"];

// Finished jobs from the controller's store (GetHistory's query, as
// `trainctl history`): newest end first, a page at a time; "Older" follows
// the answer's cursor. A user sees their own jobs, an operator everyone's.
function showHistory(view, params) {
  const state = el("select", { name: "state", id: "history-state" }, el("option", { value: "", text: "any" }),
    ...ENDED.map(s => el("option", { value: s, text: s })));
  state.value = params.get("state") || "";
  const queue = el("input", { name: "queue", placeholder: "any", value: params.get("queue") || "" });
  const user = el("input", { name: "user", placeholder: me && !me.operator ? me.user : "any", value: params.get("user") || "" });
  const form = el("form", { class: "filters" }, el("label", {}, "State", state), el("label", {}, "Queue", queue),
    el("label", {}, "User", user), el("button", { type: "submit", text: "Filter" }));
  form.addEventListener("submit", ev => {
    ev.preventDefault();
    const p = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) p.set(k, v);
    location.hash = "#/history" + (p.toString() ? "?" + p : "");
  });
  const more = el("button", { type: "button", id: "history-older", text: "Older" });
  const heads = [{ label: "ID", num: true }, "Name", "User", "Queue", "State", { label: "Exit", num: true }, "Nodes",
    "Ended", { label: "Run time", num: true }, { label: "CPU time", num: true }, { label: "Reason", cls: "reason" }];
  const tbl = table("history-table", heads, []), body = tbl.querySelector("tbody");
  const count = el("p", { class: "muted", id: "history-count" });
  view.replaceChildren(el("h1", { text: "History" }), form, el("section", {}, tbl, count, more));
  const q = new URLSearchParams({ limit: "50" });
  for (const k of ["state", "queue", "user"]) if (params.get(k)) q.set(k, params.get(k));
  let next = null, shown = 0;
  const page = async () => {
    more.disabled = true;
    if (next) q.set("before", next);
    try {
      const d = await api("/api/history?" + q);
      for (const j of d.jobs)
        body.append(tableRow(heads, [el("a", { href: `#/job/${j.id}`, text: String(j.id) }), j.name, j.user, j.queue,
          stateTag(j.state), j.signal ? `signal ${j.signal}` : j.exit_code, j.nodes || "-", fmtTime(j.end_ms),
          fmtDur(((j.end_ms || 0) - (j.start_ms || j.end_ms || 0)) / 1000), fmtDur(j.cpu_s), j.reason]));
      shown += d.jobs.length;
      next = d.next;
      count.textContent = `${shown} job(s)` + (next ? ", older ones on the next page" : ", the oldest shown");
      setStatus("updated " + new Date().toLocaleTimeString(), false);
    } catch (e) { setStatus(e.message, true); }
    more.disabled = !next;
    more.hidden = !next;
    view.dataset.historyRows = String(shown);
  };
  more.addEventListener("click", page);
  return page;
}

// ---- one job ----------------------------------------------------------------------------------

const PALETTE = ["#c0392b", "#2458c6", "#17692f", "#8e44ad", "#d68910", "#117a8b"];
// A series of up to MARKED points draws each point: a test accuracy measured
// once per epoch, or once at the end of a short run, is one point, which a
// line alone would not show.
const MARKED = 30;
const pointRadius = ctx => (ctx.dataset.data.length <= MARKED ? 3 : 0);

function newChart(canvas, label) {
  if (typeof Chart === "undefined") return null; // Chart.js missing: the tables still work
  // An accuracy is a fraction: its axis shows 0 to 1 unless a value lies outside.
  const y = label === "test accuracy" ? { suggestedMin: 0, suggestedMax: 1 } : {};
  return new Chart(canvas, {
    type: "line",
    data: { datasets: [] },
    options: {
      animation: false, responsive: true, maintainAspectRatio: false, parsing: false, normalized: true,
      scales: { x: { type: "linear", suggestedMin: 0, title: { display: true, text: "step" } }, y: { ...y, title: { display: true, text: label } } },
      plugins: { legend: { display: true } },
    },
  });
}

// The series of one attempt on chart i (made on first use): a requeued job
// restarts from its checkpoint's step, so each attempt is a line of its own
// instead of one line running back.
function series(cv, i, label, attempt) {
  cv._series = cv._series || [];
  if (!cv._series[attempt]) {
    const color = PALETTE[(i + attempt) % PALETTE.length];
    const ds = { label: attempt ? `${label} (attempt ${attempt + 1})` : label, data: [],
      borderColor: color, backgroundColor: color, pointRadius, borderWidth: 1.5 };
    cv._series[attempt] = ds;
    if (charts[i]) charts[i].data.datasets.push(ds);
  }
  return cv._series[attempt].data;
}

// Adds [step, loss, samples/s, accuracy, time, attempt] points to the three
// charts (a point of a step already shown replaces it: a test accuracy may
// arrive with a later report of the same step). The canvases carry the
// count, the series (and how many of them draw their points) and the last
// point for tests and for anyone reading the DOM.
function addPoints(canvases, points) {
  const labels = ["loss", "samples/s", "test accuracy"];
  for (const [i, cv] of canvases.entries()) {
    const col = i + 1;
    for (const p of points) {
      if (p[col] === null) continue;
      const held = series(cv, i, labels[i], p[5] || 0), pt = { x: p[0], y: p[col] };
      const last = held.length ? held[held.length - 1].x : -1;
      if (pt.x < last) continue; // already shown (a stream resent it after reconnecting)
      if (pt.x === last) held[held.length - 1] = pt;
      else held.push(pt);
      cv._last = { step: pt.x, y: pt.y, attempt: p[5] || 0 };
    }
    if (charts[i]) charts[i].update("none");
    const all = (cv._series || []).filter(Boolean);
    cv.dataset.points = String(all.reduce((n, d) => n + d.data.length, 0));
    cv.dataset.series = String(all.length);
    cv.dataset.marked = String(all.filter(d => d.data.length && d.data.length <= MARKED).length);
    // Within each series the steps only go up (the DOM says so for tests).
    cv.dataset.monotonic = String(all.every(d => d.data.every((q, k) => !k || q.x > d.data[k - 1].x)));
    if (cv._last) { cv.dataset.lastStep = String(cv._last.step); cv.dataset.last = String(cv._last.y); cv.dataset.lastAttempt = String(cv._last.attempt); }
  }
}

function jobSummary(d) {
  const j = d.job, p = d.progress;
  const kv = [["State", stateTag(j.state)],
    ...(j.array_job_id !== null ? [["Array", el("span", { id: "job-array", text: `element ${j.array_task_id} of array ${j.array_job_id} (job id ${j.id})` })]] : []), ["Reason", j.reason || "-"], ["User", j.user], ["Queue", j.queue],
    ["Kind", j.kind], ["Resources", `${j.n_nodes} node(s) x ${j.tasks_per_node} task(s), ${j.gpus_per_node} GPU(s)/node, ${j.cpus_per_task} CPU(s)/task` +
      (j.exclusive ? ", whole nodes (exclusive)" : "") +
      (j.required_nodes ? `, on ${j.required_nodes} (-w)` : "") + (j.excluded_nodes ? `, never on ${j.excluded_nodes} (-x)` : "")],
    ["Nodes", j.nodes.join(", ") || "-"], ["Submitted", fmtTime(j.submit_ms)], ["Started", fmtTime(j.start_ms)],
    ["Ended", fmtTime(j.end_ms)], ["Requeued", String(j.requeue_count) + (j.no_requeue ? " (--no-requeue: never)" : "")]];
  if (p) kv.push(["Progress", `step ${p.step}/${p.total_steps}, loss ${p.loss.toFixed(4)}, ${p.samples_per_s.toFixed(0)} samples/s` +
    (p.test_accuracy !== null ? `, test accuracy ${p.test_accuracy.toFixed(4)}` : "") +
    (p.checkpoint_step ? `, checkpoint at step ${p.checkpoint_step}` : "")]);
  return el("dl", { class: "kv", id: "job-summary" }, ...kv.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", {}, v)]));
}

function jobTables(d) {
  const j = d.job;
  return [
    el("section", {}, el("h2", { text: "Ranks" }),
      table("ranks-table", [{ label: "Rank", num: true }, "Node", "State", { label: "Exit", num: true }, { label: "Reason", cls: "reason" }],
        j.ranks.map(r => [r.rank, r.node, stateTag(r.state), r.exit_code === undefined ? "-" :
          r.oom_killed ? "out of memory" : r.signal ? `signal ${r.signal}` : r.timed_out ? "timed out" : r.exit_code,
          r.reason]))),
    el("section", {}, el("h2", { text: "History" }),
      table("events-table", ["Time", "From", "To", "By", { label: "Reason", cls: "reason" }],
        j.events.map(e => [fmtTime(e.time_ms), e.from || "(submit)", stateTag(e.to), e.actor, e.reason]))),
  ];
}

// ---- the plan as tables ---------------------------------------------------------------------

const fmtMs = s => s === null || s === undefined ? "-" : (1e3 * s).toFixed(3) + " ms";

// What the planner chose (`trainctl plan`'s tables): the prediction, each
// op with its strategy, sharding and the communication it costs, the
// collectives, and the alternatives it weighed.
function planTables(d) {
  const p = d.plan, comm = new Map();
  for (const c of p.collectives) {
    const k = c.at || "";
    const v = comm.get(k) || { s: 0, bytes: 0 };
    comm.set(k, { s: v.s + c.predicted_s, bytes: v.bytes + c.bytes });
  }
  const lay = l => l.map(x => x === null ? "-" : x).join(" ");
  const kv = [["Mesh", `${p.mesh[0]} x ${p.mesh[1]} (data x tensor)`], ["Batch", String(p.batch)],
    ["Predicted step", `${fmtMs(p.predicted_step_s)} (compute ${fmtMs(p.compute_s)}, communication ${fmtMs(p.communication_s)})`],
    ["Memory per device", `${fmtBytes(p.memory_per_device_bytes)} of ${fmtBytes(p.device_memory_bytes)}`],
    ["Search", `${d.search_ms.toFixed(1)} ms, ${p.exact ? "exact" : "heuristic"}`]];
  return [
    el("dl", { class: "kv", id: "plan-summary" }, ...kv.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })])),
    el("h3", { text: "Ops" }),
    table("plan-ops", ["Op", "Type", "Strategy", "Inputs", "Outputs", { label: "Comm. time", num: true },
      { label: "Comm. bytes", num: true }, { label: "Note", cls: "reason" }],
      p.ops.map(o => {
        const c = comm.get(o.name);
        return [o.name, o.op, o.strategy, lay(o.sharding.inputs), lay(o.sharding.outputs),
          c ? fmtMs(c.s) : "-", c ? fmtBytes(c.bytes) : "-", o.fallback || ""];
      })),
    el("h3", { text: "Collectives" }),
    p.collectives.length ? table("plan-collectives", ["Phase", "Collective", { label: "Axis", num: true },
      { label: "Bytes", num: true }, { label: "Time", num: true }, "Tensor", "At op"],
      p.collectives.map(c => [c.phase, c.kind, c.mesh_axis, fmtBytes(c.bytes), fmtMs(c.predicted_s), c.tensor, c.at]))
      : el("p", { class: "muted", text: "None: the ranks never talk." }),
    el("h3", { text: "Alternatives" }),
    table("plan-alternatives", ["Plan", "Mesh", { label: "Predicted step", num: true }, { label: "Memory/device", num: true },
      "Fits", { label: "Note", cls: "reason" }],
      d.alternatives.map(a => [a.name, a.mesh ? `${a.mesh[0]}x${a.mesh[1]}` : "-", fmtMs(a.predicted_step_s),
        a.memory_per_device_bytes === null ? "-" : fmtBytes(a.memory_per_device_bytes), a.mesh ? (a.fits ? "yes" : "no") : "n/a", a.note || ""])),
  ];
}

// ---- actions ------------------------------------------------------------------------------------

// Cancel, hold and release as trainctl offers them to this user: on their
// own jobs, or any job for an operator; the server decides and says why not.
// An array's element is acted on alone (as `trainctl cancel 122_0`); the
// whole array only by its own button, whose confirm says so.
function jobActions(j, after) {
  const mine = me && (me.operator || me.uid === j.uid);
  const box = el("div", { class: "actions", id: "job-actions" });
  if (!mine) return box;
  const name_ = jobLabel(j), element = j.array_job_id !== null;
  const act = (name, label, path, question) => {
    const b = el("button", { type: "button", id: `action-${name}`, text: label });
    b.addEventListener("click", async () => {
      // Every action asks first: a click meant for something else (another
      // page's trick, a slip) does not act alone.
      if (!confirm(question || `${label} job ${name_}?`)) return;
      b.disabled = true;
      try { await api(path, "POST"); setStatus(`${label}: done`, false); after(); }
      catch (e) { setStatus(e.message, true); }
      b.disabled = false;
    });
    return b;
  };
  const own = name => `/api/jobs/${j.id}/${name}`;
  if (j.state === "PENDING" || j.state === "RUNNING")
    box.append(act("cancel", element ? `Cancel ${name_}` : "Cancel", own("cancel"),
      element ? `Cancel job ${name_}, this element of array ${j.array_job_id} only?` : `Cancel job ${name_}?`));
  if (j.state === "PENDING") box.append(act("hold", "Hold", own("hold")), act("release", "Release", own("release")));
  if (element)
    box.append(act("cancel-array", `Cancel array ${j.array_job_id}`, `/api/arrays/${j.array_job_id}/cancel`,
      `Cancel the whole array ${j.array_job_id}: every one of its elements still pending or running, not only ${name_}?`));
  return box;
}

async function showJob(view, id) {
  if (!me) noteYou((await api("/api/cluster")).you);
  const d0 = await api(`/api/jobs/${id}`);
  const head = el("h1", { text: `Job ${jobLabel(d0.job)}: ${d0.job.name || "(no name)"}` });
  const summary = el("section", {}, jobSummary(d0));
  const canvases = ["chart-loss", "chart-rate", "chart-acc"].map(cid => el("canvas", { id: cid, "data-points": "0" }));
  const chartBox = el("section", { id: "charts" }, el("h2", { text: "Training" }),
    d0.job.kind === "graph" ? el("div", { class: "charts" }, ...canvases.map(c => el("div", { class: "chart" }, c)))
                            : el("p", { class: "muted", text: "A command job: it reports no training steps." }));
  const tables = el("div", {}, ...jobTables(d0));
  const planNote = d0.has_plan ? "Loading…"
    : d0.plan_withheld ? "Withheld: only the job's owner and operators see its plan."
    : "None: data parallel, or not a graph job.";
  const plan = el("section", { id: "plan" }, el("h2", { text: "Plan" }), el("p", { class: "muted", text: planNote }));
  const actions = el("div");
  view.replaceChildren(head, actions, summary, chartBox, tables, plan);
  charts.forEach(c => c && c.destroy());
  charts = d0.job.kind === "graph" ? [newChart(canvases[0], "loss"), newChart(canvases[1], "samples/s"),
    newChart(canvases[2], "test accuracy")] : [];
  if (d0.has_plan) api(`/api/jobs/${id}/plan`).then(p => plan.replaceChildren(el("h2", { text: "Plan" }), ...planTables(p)))
    .catch(e => plan.append(el("p", { class: "error", text: e.message })));
  let after = null; // the last point held: [attempt, step]
  const progress = points => {
    if (!points.length) return;
    addPoints(canvases, points);
    const l = points[points.length - 1];
    after = [l[5] || 0, l[0]];
  };
  let curveLoaded = false;
  const poll = async () => {
    const d = await api(`/api/jobs/${id}`);
    summary.replaceChildren(jobSummary(d));
    tables.replaceChildren(...jobTables(d));
    actions.replaceChildren(jobActions(d.job, () => route()));
    // The curve by polling, or once before the event stream carries it on:
    // from the last point shown (it may have been completed since).
    if (d.job.kind === "graph" && (!live || !curveLoaded)) {
      const q = after === null ? "" : `?after=${Math.max(0, after[1] - 1)}&attempt=${after[0]}`;
      progress((await api(`/api/jobs/${id}/progress` + q)).points);
      curveLoaded = true;
    }
    return d.job.state !== "RUNNING" && d.job.state !== "PENDING";
  };
  const events = () => `/api/events?job=${id}` + (after ? `&after=${after[1]}&attempt=${after[0]}` : "");
  return { poll, progress, events };
}

// ---- routing -----------------------------------------------------------------------------

async function route() {
  clearTimeout(timer);
  const view = document.getElementById("view");
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, qs] = hash.split("?");
  const params = new URLSearchParams(qs || "");
  document.getElementById("nav-overview").className = path === "/" ? "active" : "";
  document.getElementById("nav-jobs").className = path.startsWith("/job") ? "active" : "";
  document.getElementById("nav-history").className = path === "/history" ? "active" : "";
  let view_ = null; // {poll, events (the stream's address), progress (its points)}
  if (path === "/") {
    view_ = { poll: async () => renderOverview(view, await api("/api/cluster")) };
  } else if (path === "/jobs") {
    const holder = el("div", { id: "jobs" }, el("p", { class: "muted", text: "Loading…" }));
    view.replaceChildren(el("h1", { text: "Jobs" }), jobsForm(params), holder);
    const q = new URLSearchParams();
    for (const k of ["state", "queue", "user"]) if (params.get(k)) q.set(k, params.get(k));
    view_ = { poll: async () => renderJobs(holder, await api("/api/jobs?" + q), Date.now()) };
  } else if (path === "/history") {
    // Loaded once (history does not change under the reader), paged on demand.
    if (!me) try { noteYou((await api("/api/cluster")).you); } catch (e) { /* the page says why */ }
    await showHistory(view, params)();
    return;
  } else if (/^\/job\/\d+$/.test(path)) {
    try { view_ = await showJob(view, path.slice(5)); } catch (e) { view.replaceChildren(el("p", { class: "error", text: e.message })); return; }
  } else {
    view.replaceChildren(el("p", { class: "error", text: `No such page: ${path}` }));
    return;
  }
  const gen = ++routeGen;
  let done = false;
  const tick = async () => {
    if (gen !== routeGen) return;
    try {
      done = await view_.poll();
      setStatus("updated " + new Date().toLocaleTimeString() + (live ? " (live)" : ""), false);
      // When the first view had its data on screen (bench/observe reads it).
      if (!document.body.dataset.firstRenderMs) document.body.dataset.firstRenderMs = String(Math.round(performance.now()));
    }
    catch (e) { setStatus(e.message, true); }
    // Polling: every POLL_MS until the job ended. Live: a slow refresh for
    // what no event announces (heartbeat ages).
    clearTimeout(timer);
    if (!done || live) timer = setTimeout(tick, live ? SLOW_POLL_MS : POLL_MS);
  };
  await tick();
  listen(view_, tick, gen);
}

// ---- live updates ------------------------------------------------------------------------------

// Server-sent events (/api/events) tell the page when to fetch again and
// bring a job's new points. They are read through fetch(), which sends the
// token's header (EventSource cannot send headers); where the browser cannot
// read a response as a stream, or the stream fails STREAM_TRIES times
// without an event between, the page polls.
const SLOW_POLL_MS = 30000, STREAM_TRIES = 3;
let stream = null, live = false, failures = 0, routeGen = 0;

// Reads the event stream at path until it ends or ctl aborts it: on("open")
// once it answers, then on(name, data) for each event ("message" unnamed);
// comments (": ping") and retry lines are skipped. Rejects when it ends.
async function readEvents(path, ctl, on) {
  const r = await fetch(path, { cache: "no-store", headers: authHeaders(), signal: ctl.signal });
  if (!r.ok || !r.body) throw new Error(`events: HTTP ${r.status}`);
  on("open", "");
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error("events: the stream ended");
    buf += value;
    for (let end; (end = buf.indexOf("\n\n")) >= 0; buf = buf.slice(end + 2)) {
      let name = "message", data = null;
      for (const line of buf.slice(0, end).split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data = (data === null ? "" : data + "\n") + line.slice(5).replace(/^ /, "");
      }
      if (data !== null) on(name, data);
    }
  }
}

function listen(v, tick, gen) {
  if (stream) stream.abort();
  stream = null;
  live = false;
  if (typeof TextDecoderStream === "undefined" || typeof AbortController === "undefined" ||
      failures >= STREAM_TRIES) return;
  const ctl = new AbortController();
  stream = ctl;
  const heard = () => {
    failures = 0;
    document.body.dataset.live = "events";
    if (!live) { live = true; clearTimeout(timer); timer = setTimeout(tick, SLOW_POLL_MS); }
  };
  readEvents(v.events ? v.events() : "/api/events", ctl, (name, data) => {
    if (ctl !== stream) return;
    // Open: fetch once more, for what changed between the page's fetch and now.
    if (name === "open" || name === "cluster" || name === "job") { heard(); if (gen === routeGen) tick(); }
    else if (name === "progress") { heard(); if (v.progress && gen === routeGen) v.progress(JSON.parse(data).points); }
  }).catch(() => {
    // Reopened from here, from the page's current cursor, polling
    // meanwhile; for good after STREAM_TRIES. A stream this page closed
    // (another view's) is done.
    if (ctl !== stream) return;
    ctl.abort();
    stream = null;
    live = false;
    clearTimeout(timer);
    timer = setTimeout(tick, POLL_MS);
    if (++failures < STREAM_TRIES) setTimeout(() => { if (gen === routeGen && !stream) listen(v, tick, gen); }, 3000);
    else document.body.dataset.live = "polling";
  });
  document.body.dataset.live = "connecting";
}

takeToken();
window.addEventListener("hashchange", () => { takeToken(); route(); });
route();
