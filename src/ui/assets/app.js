// Bulwark live dashboard: reads GET /api/v1/actors/stream (Server-Sent Events
// over fetch, because EventSource cannot send the Authorization header) and
// calls the management API for its buttons. Every value from the server is
// written with textContent, never as HTML.
"use strict";

const KEY = "bulwark.key"; // sessionStorage: this tab only, gone when it closes
const STREAM = "/api/v1/actors/stream";
const RATE_WINDOW_MS = 5000; // calls/s is averaged over this window
const MAX_EVENTS = 200;

const $ = (id) => document.getElementById(id);
let session = null; // AbortController of the open stream
const samples = new Map(); // upstream -> [{t, calls}] within RATE_WINDOW_MS
const lastState = new Map(); // actor row key -> {state, restarts}, for the change log

// ---- login ----------------------------------------------------------------

function key() {
  return sessionStorage.getItem(KEY);
}

function showLogin(message) {
  if (session) session.abort();
  session = null;
  sessionStorage.removeItem(KEY);
  $("dashboard").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  setLink("offline");
}

function showDashboard() {
  $("login").hidden = true;
  $("dashboard").hidden = false;
  $("logout").hidden = false;
  $("key").value = "";
  connect();
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = $("key").value.trim();
  if (!value) return;
  sessionStorage.setItem(KEY, value);
  showDashboard();
});

$("logout").addEventListener("click", () => showLogin(""));

function setLink(state) {
  const link = $("link");
  link.dataset.state = state;
  link.textContent = state;
}

// ---- the stream -----------------------------------------------------------

async function connect() {
  if (session) session.abort();
  const controller = new AbortController();
  session = controller;
  while (session === controller) {
    try {
      const response = await fetch(STREAM, {
        headers: { Authorization: "Bearer " + key(), Accept: "text/event-stream" },
        signal: controller.signal,
        cache: "no-store",
      });
      if (response.status === 401 || response.status === 403) {
        showLogin(await refusal(response));
        return;
      }
      if (!response.ok || !response.body) throw new Error("HTTP " + response.status);
      setLink("live");
      await readEvents(response.body, onEvent);
    } catch (err) {
      if (controller.signal.aborted) return;
      console.warn("dashboard stream:", err);
    }
    if (session !== controller) return;
    setLink("reconnecting");
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

async function refusal(response) {
  try {
    const body = await response.json();
    return "Key refused: " + (body.message || body.detail || response.status);
  } catch {
    return "Key refused (HTTP " + response.status + ")";
  }
}

// Splits a text/event-stream body into events and hands each to `handle`.
async function readEvents(body, handle) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) handle(name, data.join("\n"));
    }
  }
}

function onEvent(name, data) {
  if (name !== "snapshot") return;
  render(JSON.parse(data));
  $("updated").textContent = "updated " + new Date().toLocaleTimeString();
}

// ---- rendering ------------------------------------------------------------

// Rows are kept by actor and updated in place, so a button is not replaced
// under the pointer between two snapshots.
const treeRows = new Map(); // "kind/name" -> <tr>
const flaggedRows = new Map(); // "server/tool" -> <tr>

function render(snapshot) {
  const now = Date.now();
  const nodes = [];
  const root = snapshot.actors;
  nodes.push([root, 0]);
  const listed = new Map((snapshot.upstreams || []).map((u) => [u.name, u]));
  const inTree = new Set();
  for (const child of root.children || []) {
    if (child.kind === "server_supervisor") {
      inTree.add(child.name);
      const upstream = listed.get(child.name);
      child.source = upstream && upstream.source;
    }
    nodes.push([child, 1]);
    for (const grandchild of child.children || []) nodes.push([grandchild, 2]);
  }
  // Upstreams the tree does not hold (disabled ones): still listed, to enable them.
  for (const upstream of listed.values()) {
    if (inTree.has(upstream.name)) continue;
    const state = upstream.enabled ? upstream.status : "disabled";
    nodes.push([
      { name: upstream.name, kind: "server_supervisor", state, enabled: upstream.enabled, source: upstream.source },
      1,
    ]);
  }
  const rows = nodes.map(([node, depth]) => actorRow(node, depth, now));
  keepRows($("tree-body"), treeRows, rows);
  renderGuardrails(snapshot.guardrails || {});
  renderCache(root);
}

// Puts `rows` into `body` in order, forgetting rows no longer shown.
function keepRows(body, byKey, rows) {
  const shown = new Set(rows.map((row) => row.dataset.key));
  for (const [rowKey, row] of byKey) {
    if (!shown.has(rowKey)) {
      byKey.delete(rowKey);
      row.remove();
    }
  }
  const current = Array.from(body.children);
  if (current.length !== rows.length || current.some((row, i) => row !== rows[i])) {
    body.replaceChildren(...rows);
  }
}

// The row kept under `rowKey` in `byKey`; made (with `data` attributes and
// `build`) the first time.
function keyedRow(byKey, rowKey, data, build) {
  let row = byKey.get(rowKey);
  if (!row) {
    row = document.createElement("tr");
    row.dataset.key = rowKey;
    Object.assign(row.dataset, data);
    build(row);
    byKey.set(rowKey, row);
  }
  return row;
}

function actorRow(node, depth, now) {
  const rowKey = node.kind + "/" + node.name;
  const row = keyedRow(treeRows, rowKey, { kind: node.kind, name: node.name, depth: String(depth) }, (tr) => {
    for (let i = 0; i < 13; i++) tr.append(document.createElement("td"));
    tr.children[5].className = "exit";
    tr.children[2].append(document.createElement("span"));
    tr.children[2].firstChild.className = "state";
  });
  const isUpstream = node.kind === "upstream";
  noteChange(rowKey, node, isUpstream || node.kind === "server_supervisor");
  row.dataset.state = node.state;
  if (node.restarts !== undefined) row.dataset.restarts = String(node.restarts);
  const rate = isUpstream ? callRate(node.name, node.calls_finished, now) : null;
  const measured = isUpstream && node.calls_finished > 0;
  const badge = row.children[2].firstChild;
  badge.dataset.state = node.state;
  const texts = [
    node.name,
    node.kind,
    null,
    show(node.restarts),
    node.uptime_secs === undefined ? "" : duration(node.uptime_secs),
    node.last_exit || "",
    rate === null ? "" : rate.toFixed(1),
    ms(node.p50_le_ms, measured),
    ms(node.p99_le_ms, measured),
    show(node.calls_in_flight),
    show(node.mailbox_depth),
    show(node.messages_handled),
  ];
  // A pool instance out of rotation says so next to its state.
  const state = node.ejected ? node.state + ", ejected" : node.state;
  texts.forEach((text, i) => setText(i === 2 ? badge : row.children[i], text === null ? state : text));
  // The stderr tail (masked by the server) on hover of the last exit.
  const tail = (node.stderr_tail || []).join("\n");
  if (row.children[5].title !== tail) row.children[5].title = tail;
  if (node.kind === "server_supervisor") {
    const enabled = node.enabled !== false && node.state !== "disabled";
    const fromFile = node.source === "file";
    const shape = enabled + "/" + fromFile;
    if (row.dataset.actions !== shape) {
      row.dataset.actions = shape;
      row.dataset.enabled = String(enabled);
      row.children[12].replaceWith(actions(node.name, enabled, fromFile));
    }
  }
  return row;
}

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function show(value) {
  return value === undefined || value === null ? "" : String(value);
}

// Latencies are histogram bucket bounds: "≤ 25 ms"; beyond the last bucket: "> 60 s".
function ms(bound, measured) {
  if (!measured) return "";
  return bound === undefined || bound === null ? "> 60 s" : "≤ " + bound + " ms";
}

function duration(secs) {
  const s = Math.floor(secs);
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
  return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
}

function callRate(name, calls, now) {
  if (calls === undefined) return null;
  const list = samples.get(name) || [];
  list.push({ t: now, calls });
  while (list.length > 2 && now - list[0].t > RATE_WINDOW_MS) list.shift();
  samples.set(name, list);
  const first = list[0];
  const seconds = (now - first.t) / 1000;
  // A restarted gateway's counter starts over: no negative rates.
  return seconds > 0 ? Math.max(0, calls - first.calls) / seconds : 0;
}

// Logs each state change of a server or upstream, as the stream saw it, and
// restarts quick enough to fall between two snapshots.
function noteChange(rowKey, node, logged) {
  const previous = lastState.get(rowKey);
  lastState.set(rowKey, { state: node.state, restarts: node.restarts });
  if (!logged || previous === undefined) return;
  const before = previous.state;
  let change;
  if (before !== node.state) change = before + " → " + node.state;
  else if (node.restarts > previous.restarts) change = "restarted (" + node.restarts + " restarts)";
  else return;
  const item = document.createElement("li");
  item.dataset.name = node.name;
  item.dataset.kind = node.kind;
  item.dataset.from = before;
  item.dataset.to = node.state;
  item.textContent = new Date().toLocaleTimeString() + "  " + node.kind + " " + node.name + ": " + change;
  const list = $("events");
  list.prepend(item);
  while (list.children.length > MAX_EVENTS) list.lastChild.remove();
}

// Upstreams from the config file are read-only through the API (409):
// their Disable/Enable button is shown off, with the reason.
function actions(name, enabled, fromFile) {
  const td = cell("", "actions");
  if (enabled) td.append(button("Restart", "restart", name, () => upstreamAction(name, "restart")));
  const verb = enabled ? "disable" : "enable";
  const toggle = button(enabled ? "Disable" : "Enable", verb, name, () => upstreamAction(name, verb));
  if (fromFile) {
    toggle.disabled = true;
    toggle.dataset.readOnly = "true";
    toggle.title = "From the config file: change `enabled` there";
  }
  td.append(toggle);
  return td;
}

function button(label, action, name, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.dataset.action = action;
  b.dataset.name = name;
  b.addEventListener("click", async () => {
    if (b.dataset.readOnly) return;
    b.disabled = true;
    try {
      await onClick();
    } finally {
      b.disabled = false;
    }
  });
  return b;
}

function renderGuardrails(report) {
  const stats = report.stats || {};
  $("g-blocked").textContent = show(stats.blocked);
  $("g-redacted").textContent = show(stats.redacted) + " / " + show(stats.masked);
  const flagged = report.flagged_tools || [];
  $("g-flagged").textContent = String(flagged.length);
  $("flagged").hidden = flagged.length === 0;
  $("flagged-none").hidden = flagged.length > 0;
  const rows = flagged.map((tool) => {
    const rowKey = tool.server + "/" + tool.tool;
    const row = keyedRow(flaggedRows, rowKey, { server: tool.server, tool: tool.tool }, (tr) =>
      tr.append(cell(tool.server), cell(tool.tool), cell(""), cell(""), cell("")),
    );
    const flags = tool.flags || [];
    setText(row.children[2], flags.join(", "));
    setText(row.children[3], tool.action);
    const changed = flags.includes("definition_changed");
    if (row.dataset.changed !== String(changed)) {
      row.dataset.changed = String(changed);
      const last = cell("");
      if (changed) last.append(button("Approve", "approve", rowKey, () => approve(tool.server, tool.tool)));
      row.children[4].replaceWith(last);
    }
    return row;
  });
  keepRows($("flagged-body"), flaggedRows, rows);
}

function renderCache(root) {
  const cache = (root.children || []).find((c) => c.cache);
  const ratio = cache && cache.cache.hit_ratio;
  $("cache-ratio").textContent =
    ratio === undefined || ratio === null
      ? "no reads"
      : (ratio * 100).toFixed(1) + " % of " + (cache.cache.hits + cache.cache.misses);
}

// ---- actions --------------------------------------------------------------

function upstreamAction(name, verb) {
  return call("POST", "/api/v1/upstreams/" + encodeURIComponent(name) + "/" + verb, null, verb + " " + name);
}

function approve(server, tool) {
  return call("POST", "/api/v1/guardrails/approve", { server, tool }, "approve " + server + "/" + tool);
}

async function call(method, path, body, what) {
  const headers = { Authorization: "Bearer " + key() };
  if (body) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  } catch (err) {
    notice("error", what + ": " + err);
    return;
  }
  if (response.status === 401) {
    showLogin(await refusal(response));
    return;
  }
  let detail = "";
  try {
    const answer = await response.json();
    detail = answer.detail || answer.error || answer.message || "";
  } catch {
    // No JSON body: the status says enough.
  }
  if (response.ok) notice("ok", what + ": done");
  else notice("error", what + ": " + response.status + (detail ? " — " + detail : ""));
}

function notice(kind, text) {
  const el = $("notice");
  el.dataset.kind = kind;
  el.textContent = new Date().toLocaleTimeString() + "  " + text;
}

// ---- start ----------------------------------------------------------------

if (key()) showDashboard();
else showLogin("");
