// eventlog dashboard: plain JS over the HTTP API and the WebSocket firehose.
"use strict";

const state = { key: sessionStorage.getItem("eventlog-key") || "", admin: false, appendGlobs: [], heads: {}, rates: {}, ws: null, paused: false, timer: null };
const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "onclick") node.addEventListener("click", value);
    else if (value !== null && value !== undefined) node.setAttribute(name, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (state.key) headers.Authorization = "Bearer " + state.key;
  const reply = await fetch(path, { ...options, headers });
  const body = reply.status === 204 ? null : await reply.json().catch(() => null);
  if (!reply.ok) {
    const message = body && body.error ? body.error.message : reply.statusText;
    throw Object.assign(new Error(message), { status: reply.status });
  }
  return body;
}

function showError(error) {
  const box = $("#error");
  box.hidden = !error;
  box.textContent = error ? String(error.message || error) : "";
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

function sparkline(values) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 90 20");
  const max = Math.max(1, ...values);
  const points = values.map((v, i) => `${(i * 90) / Math.max(1, values.length - 1)},${19 - (v / max) * 18}`);
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", points.join(" "));
  svg.append(line);
  return svg;
}

function retentionText(r) {
  if (!r) return "";
  const parts = [];
  if (r.max_age) parts.push(`${r.max_age}s`);
  if (r.max_count) parts.push(`${r.max_count} events`);
  if (r.max_bytes) parts.push(bytes(r.max_bytes));
  return parts.join(", ") || "keep all";
}

async function loadStreams() {
  const { streams } = await api("/api/streams");
  const now = performance.now() / 1000;
  const rows = [];
  const options = [];
  for (const s of streams) {
    const prev = state.heads[s.name];
    const rates = (state.rates[s.name] = state.rates[s.name] || []);
    if (prev) rates.push(Math.max(0, (s.next_offset - prev.head) / Math.max(0.001, now - prev.at)));
    if (rates.length > 30) rates.shift();
    state.heads[s.name] = { head: s.next_offset, at: now };
    let holds = "";
    try {
      const info = await api(`/api/streams/${encodeURIComponent(s.name)}`);
      holds = (info.holds || []).map((h) => `${h.consumer} @${h.offset}`).join(", ");
    } catch (e) { holds = ""; }
    const rate = rates.length ? rates[rates.length - 1].toFixed(1) : "–";
    rows.push(el("tr", {}, el("td", {}, s.name), el("td", { class: "num" }, s.next_offset), el("td", { class: "num" }, s.count),
      el("td", { class: "num" }, bytes(s.bytes)), el("td", {}, sparkline(rates.length ? rates : [0]), " ", rate),
      el("td", {}, retentionText(s.retention)), el("td", {}, holds || "–")));
    options.push(s.name);
  }
  $("#streams tbody").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 7, class: "muted" }, "no streams yet"))]));
  const select = $("#tail-stream");
  const chosen = select.value;
  if ([...select.options].map((o) => o.value).join() !== options.join()) {
    select.replaceChildren(...options.map((n) => el("option", { value: n }, n)));
    if (options.includes(chosen)) select.value = chosen;
  }
}

async function loadConsumers() {
  const { consumers } = await api("/api/consumers");
  const names = [...new Set(consumers.map((c) => c.name))];
  const rows = [];
  for (const name of names) {
    const c = await api(`/api/consumers/${encodeURIComponent(name)}`);
    const runtime = c.runtime || {};
    for (const s of c.streams) {
      rows.push(el("tr", {}, el("td", {}, name), el("td", {}, s.stream), el("td", { class: "num" }, s.offset), el("td", { class: "num" }, s.lag ?? "–"),
        el("td", {}, runtime.state || "not running here"), el("td", { class: runtime.last_error ? "bad" : "" }, runtime.last_error || "–"),
        el("td", { class: "num" }, c.parked ?? 0)));
    }
  }
  $("#consumers tbody").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 7, class: "muted" }, "no consumers yet"))]));
}

async function act(button, path, body) {
  button.disabled = true;
  try {
    await api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body || {}) });
    button.textContent = "sent";
    setTimeout(refresh, 300);
  } catch (e) { showError(e); button.disabled = false; }
}

function endpointCard(base, e, deliveries) {
  const health = !e.enabled ? ["bad", "disabled" + (e.disabled_reason ? ": " + e.disabled_reason : "")]
    : e.failing_since ? ["bad", "failing since " + e.failing_since] : ["ok", "healthy"];
  const items = deliveries.slice(-5).reverse().map((d) => el("li", { "data-delivery": d.id },
    el("span", { class: d.status === "failed" ? "bad" : d.status === "delivered" ? "ok" : "" }, d.status),
    el("span", {}, `${d.event_type} @${d.offset}`),
    el("span", { class: "muted" }, `attempts ${d.attempts}` + (d.last_status ? `, HTTP ${d.last_status}` : "") + (d.last_error && d.last_error !== `HTTP ${d.last_status}` ? `, ${d.last_error}` : "")),
    state.admin && d.status !== "in_flight" && d.status !== "delivered" ? el("button", { class: "action", "data-retry": d.id, onclick: (ev) => act(ev.target, `${base}/${e.id}/deliveries/${d.id}/retry`) }, "Retry") : ""));
  return el("div", { class: "card", "data-endpoint": e.id },
    el("h3", {}, `${e.id} `, el("span", { class: "muted" }, `${e.kind} → ${e.stream}`)),
    el("div", { class: health[0] }, health[1]),
    state.admin ? el("button", { class: "action", "data-replay": e.id, onclick: (ev) => act(ev.target, `${base}/${e.id}/replay`, {}) }, "Replay all") : "",
    items.length ? el("ul", {}, ...items) : el("p", { class: "muted" }, "no deliveries yet"));
}

async function loadDeliveries() {
  const box = $("#endpoints");
  if (!state.admin) {
    box.replaceChildren(el("p", { class: "muted" }, "Webhook endpoints and notification targets need an admin key."));
    return;
  }
  const cards = [];
  for (const [base, field] of [["/api/webhooks", "webhooks"], ["/api/notifications", "notifications"]]) {
    let list = [];
    try { list = (await api(base))[field] || []; } catch (e) { if (e.status !== 503) throw e; }
    for (const e of list) {
      const { deliveries } = await api(`${base}/${encodeURIComponent(e.id)}/deliveries?limit=100`);
      cards.push(endpointCard(base, e, deliveries));
    }
  }
  box.replaceChildren(...(cards.length ? cards : [el("p", { class: "muted" }, "no endpoints yet")]));
}

// A shell-style glob (the server's fnmatch: *, ?, [..]) as a RegExp.
function globMatch(glob, name) {
  const source = glob.replace(/[.+^${}()|\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp("^" + source + "$").test(name);
}

// Cancelling a scheduled event needs append on its stream (or admin).
function mayAppend(stream) { return state.admin || state.appendGlobs.some((g) => globMatch(g, stream)); }

async function cancel(button, path) {
  button.disabled = true;
  try {
    await api(path, { method: "DELETE" });
    button.textContent = "cancelled";
    setTimeout(refresh, 300);
  } catch (e) { showError(e); button.disabled = false; }
}

async function loadSchedules() {
  let items = [];
  if (state.admin) {
    items = (await api("/api/schedules?limit=200")).schedules;
  } else { // without admin, one stream at a time: those the key may read
    for (const s of (await api("/api/streams")).streams) {
      items.push(...(await api(`/api/schedules?stream=${encodeURIComponent(s.name)}&limit=200`)).schedules);
    }
    items.sort((a, b) => a.deliver_at.localeCompare(b.deliver_at));
  }
  const rows = items.map((s) => el("tr", { "data-schedule": s.id },
    el("td", {}, s.deliver_at), el("td", {}, s.stream), el("td", {}, s.id), el("td", {}, s.type), el("td", {}, s.key ?? "–"),
    el("td", {}, mayAppend(s.stream) ? el("button", { class: "action", "data-cancel": s.id,
      onclick: (ev) => cancel(ev.target, `/api/schedules/${encodeURIComponent(s.stream)}/${encodeURIComponent(s.id)}`) }, "Cancel") : "")));
  $("#schedules tbody").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 6, class: "muted" }, "nothing scheduled"))]));
}

function follow() {
  if (state.ws) { state.ws.onclose = null; state.ws.close(); state.ws = null; }
  const stream = $("#tail-stream").value;
  if (!stream) { $("#tail-state").textContent = "no stream to follow yet"; return; }
  const params = new URLSearchParams({ from: "end" });
  const types = $("#tail-types").value.trim();
  if (types) params.set("types", types);
  if (state.key) params.set("access_token", state.key);
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/api/streams/${encodeURIComponent(stream)}/firehose?${params}`);
  state.ws = ws;
  $("#tail-state").textContent = `connecting to ${stream}…`;
  ws.onopen = () => { $("#tail-state").textContent = `following ${stream}` + (types ? ` (types ${types})` : ""); };
  ws.onmessage = (message) => {
    if (state.paused) return;
    const list = $("#tail-events");
    for (const line of String(message.data).split("\n")) {
      if (!line) continue;
      const event = JSON.parse(line);
      list.prepend(el("li", { "data-offset": event.offset }, `${event.offset} ${event.type} ${JSON.stringify(event.data)}`));
    }
    while (list.children.length > 200) list.lastChild.remove();
  };
  ws.onclose = (close) => { $("#tail-state").textContent = `closed (${close.code}${close.reason ? ": " + close.reason : ""})`; };
}

async function whoami() {
  try {
    const me = await api("/api/whoami");
    state.admin = me.admin;
    state.appendGlobs = me.scopes.filter((s) => s.startsWith("append:")).map((s) => s.slice(7));
    $("#who").textContent = me.auth ? `${me.name || "unknown key"}: ${me.admin ? "admin" : me.scopes.join(" ")}` + (me.tenant ? ` (tenant ${me.tenant})` : "") : "no auth (local)";
    return true;
  } catch (e) {
    state.admin = false;
    $("#who").textContent = e.status === 401 ? "enter an API key" : "";
    showError(e);
    return false;
  }
}

function page() { return (location.hash || "#streams").slice(1); }

async function refresh() {
  const current = page();
  try {
    if (current === "streams" || current === "tail") await loadStreams();
    if (current === "consumers") await loadConsumers();
    if (current === "deliveries") await loadDeliveries();
    if (current === "schedules") await loadSchedules();
    showError(null);
  } catch (e) { showError(e); }
}

function route() {
  const current = page();
  for (const section of document.querySelectorAll(".page")) section.hidden = section.id !== "page-" + current;
  for (const link of document.querySelectorAll("nav a")) link.classList.toggle("current", link.getAttribute("href") === "#" + current);
  refresh();
}

async function start() {
  $("#key").value = state.key;
  $("#login").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    state.key = $("#key").value.trim();
    sessionStorage.setItem("eventlog-key", state.key);
    if (await whoami()) route();
  });
  $("#tail-form").addEventListener("submit", (ev) => { ev.preventDefault(); follow(); });
  $("#tail-pause").addEventListener("click", (ev) => {
    state.paused = !state.paused;
    ev.target.textContent = state.paused ? "Resume" : "Pause";
  });
  window.addEventListener("hashchange", route);
  if (await whoami()) route();
  state.timer = setInterval(refresh, 2000);
}

start();
