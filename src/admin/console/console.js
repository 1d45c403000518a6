// The director's web console: the four Piranha panels (control/monitoring, global settings,
// redundancy, virtual servers) and the configuration's history, over the JSON API. No external
// assets; a change made here is a revision like any other.
"use strict";

const state = { csrf: null, config: null, revision: null, timer: null };

function $(selector, root) { return (root || document).querySelector(selector); }
function all(selector, root) { return Array.from((root || document).querySelectorAll(selector)); }

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function say(text, bad) {
  const box = $("#message");
  box.textContent = text;
  box.className = bad ? "bad" : "good";
}

async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (state.csrf && method !== "GET") headers["X-CSRF-Token"] = state.csrf;
  const response = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (response.status === 401 && path !== "/api/login") showLogin();
  return { status: response.status, ok: response.ok, data: data || {} };
}

// --- log in and out ---------------------------------------------------------------------

function showLogin() {
  state.csrf = null;
  clearInterval(state.timer);
  $("#tabs").hidden = true;
  all(".panel").forEach((p) => { p.hidden = true; });
  $("#login").hidden = false;
}

async function start() {
  const session = await api("GET", "/api/session");
  if (!session.ok) { showLogin(); return; }
  state.csrf = session.data.csrf;
  $("#login").hidden = true;
  $("#tabs").hidden = false;
  show("monitor");
}

$("#login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const reply = await api("POST", "/api/login", { password: $("#password").value });
  $("#password").value = "";
  if (!reply.ok) { say(reply.data.error || "login failed", true); return; }
  say("logged in");
  start();
});

$("#logout").addEventListener("click", async () => {
  await api("POST", "/api/logout", {});
  showLogin();
  say("logged out");
});

// --- panels ------------------------------------------------------------------------------

function show(name) {
  all("#tabs button[data-panel]").forEach((b) => b.classList.toggle("current", b.dataset.panel === name));
  all(".panel").forEach((p) => { p.hidden = p.id !== name; });
  clearInterval(state.timer);
  if (name === "monitor") { refresh(); state.timer = setInterval(refresh, 2000); }
  else if (name === "history") loadHistory();
  else loadEditor($("#" + name + " .editor"));
}

all("#tabs button[data-panel]").forEach((b) => b.addEventListener("click", () => show(b.dataset.panel)));

// --- control / monitoring ----------------------------------------------------------------

all("#monitor .actions button").forEach((b) => b.addEventListener("click", async () => {
  const action = b.dataset.action;
  if (action === "reboot" && !confirm("Reboot this box?")) return;
  const reply = await api("POST", "/api/" + action, {});
  say(reply.ok ? (reply.data.done || action + " asked") : reply.data.error, !reply.ok);
  refresh();
}));

function ms(value) { return value === null || value === undefined ? "never" : (value / 1000).toFixed(3) + " s"; }

async function refresh() {
  const reply = await api("GET", "/api/status");
  if (!reply.ok) return;
  const status = reply.data;
  $("#box").textContent = (status.hostname || "") + (status.revision ? " · revision " + status.revision : "");
  $("#refreshed").textContent = "updated " + new Date().toLocaleTimeString();
  renderPair(status.pair);
  renderTable(status.ipvs);
  const log = $("#log");
  const follow = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  log.textContent = (status.log || []).slice(-100).join("\n");
  // The newest lines in view, unless the reader has scrolled up to older ones.
  if (follow) log.scrollTop = log.scrollHeight;
}

function renderPair(pair) {
  const box = $("#pair");
  box.replaceChildren();
  if (!pair) { box.append(el("p", {}, "No pair: this box runs alone.")); return; }
  if (pair.error) { box.append(el("p", { class: "bad" }, pair.error)); return; }
  const peer = pair.peer
    ? `peer ${pair.peer.node}: ${pair.peer.role} (${pair.peer.alive ? "alive" : "LOST"}), revision ${pair.peer.revision}`
    : "peer: never heard";
  box.append(
    el("p", { id: "role", class: "role-" + pair.role }, `This node is ${pair.role} for ${ms(pair.for_ms)}`),
    el("p", {}, peer),
    el("ul", {}, (pair.channels || []).map((c) => el("li", {},
      `${c.channel}: last beat ${c.last_beat_ms_ago === null ? "never" : ms(c.last_beat_ms_ago) + " ago"}`))),
    el("details", {}, el("summary", {}, "Transitions"),
      el("ul", {}, (pair.transitions || []).map((t) => el("li", {}, `at ${ms(t.at_ms)}: ${t.from} → ${t.to}: ${t.reason}`)))),
  );
}

function renderTable(ipvs) {
  const body = $("#ipvs tbody");
  body.replaceChildren();
  if (!ipvs || ipvs.error) { body.append(el("tr", {}, el("td", { colspan: 10 }, ipvs ? ipvs.error : "no table"))); return; }
  for (const service of ipvs.services || []) {
    const key = service.fwmark !== undefined ? "fwmark " + service.fwmark
      : `${service.protocol.toUpperCase()} ${service.address}:${service.port}`;
    const destinations = service.destinations.length ? service.destinations : [null];
    destinations.forEach((d, i) => {
      const cells = [
        el("td", {}, i === 0 ? key : ""), el("td", {}, i === 0 ? service.scheduler : ""),
      ];
      if (!d) { cells.push(el("td", { colspan: 8 }, "no real server")); body.append(el("tr", {}, cells)); return; }
      const health = d.health || {};
      const names = health.real_server ? { vs: health.virtual_server, rs: health.real_server } : null;
      const weight = el("input", { type: "number", min: 0, value: d.weight, class: "weight",
        "data-vs": names && names.vs, "data-rs": names && names.rs, disabled: !names });
      cells.push(
        el("td", {}, `${d.address}:${d.port}` + (names ? ` (${names.rs})` : "")),
        el("td", {}, d.forwarding),
        el("td", {}, weight),
        el("td", {}, d.active_connections), el("td", {}, d.inactive_connections),
        el("td", { class: "health-" + (health.state || "none") }, health.state || (health.sorry_server ? "sorry server" : "")),
        el("td", {}, d.stats.connections),
        el("td", {}, names ? [
          el("button", { class: "set-weight", onclick: () => realServer(names, "weight", Number(weight.value)) }, "Set weight"),
          el("button", { onclick: () => realServer(names, "drain") }, "Drain"),
          el("button", { onclick: () => realServer(names, "enable") }, "Enable"),
        ] : []),
      );
      body.append(el("tr", {}, cells));
    });
  }
}

async function realServer(names, action, weight) {
  const body = { virtual_server: names.vs, real_server: names.rs, action };
  if (action === "weight") body.weight = weight;
  const reply = await api("POST", "/api/real-server", body);
  say(reply.ok ? `${action} ${names.vs}/${names.rs}: ${reply.data.said}` : reply.data.error, !reply.ok);
  refresh();
}

// --- configuration editors ---------------------------------------------------------------

async function loadEditor(editor) {
  const reply = await api("GET", "/api/config");
  if (!reply.ok) { say(reply.data.error, true); return; }
  state.config = reply.data.config;
  state.revision = reply.data.revision;
  renderEditor(editor);
}

function renderEditor(editor) {
  editor.replaceChildren();
  const parts = editor.dataset.parts.split(" ");
  for (const part of parts) {
    if (state.config[part] === undefined || state.config[part] === null) {
      editor.append(el("p", {}, `No ${part} section. `,
        el("button", { onclick: () => { state.config[part] = part === "virtual_servers" ? [] : {}; renderEditor(editor); } }, "Add one")));
      continue;
    }
    editor.append(field(state.config, part, part, () => renderEditor(editor)));
  }
  const comment = el("input", { type: "text", placeholder: "what this change is for", class: "comment" });
  editor.append(el("div", { class: "apply" }, comment,
    el("button", { class: "apply-button", onclick: () => apply(editor, comment.value) }, "Apply"),
    el("button", { onclick: () => loadEditor(editor) }, "Discard")));
}

// The fields of `parent[key]` at `path` (the validator's form: a.b[2].c).
function field(parent, key, path, rerender) {
  const value = parent[key];
  if (key === "password_hash") return null;
  if (Array.isArray(value) && value.every((v) => v !== null && typeof v === "object")) {
    const list = el("fieldset", { "data-path": path }, el("legend", {}, key));
    value.forEach((item, i) => {
      const entry = field(value, i, `${path}[${i}]`, rerender);
      entry.append(el("button", { class: "remove", onclick: () => { value.splice(i, 1); rerender(); } }, "Remove"));
      list.append(entry);
    });
    list.append(el("button", { class: "add", onclick: () => {
      value.push(value.length ? blank(value[value.length - 1]) : {});
      rerender();
    } }, "Add " + key.replace(/s$/, "").replace(/_/g, " ")));
    return list;
  }
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    const legend = typeof key === "number" ? (value.name || `#${key + 1}`) : key;
    const set = el("fieldset", { "data-path": path }, el("legend", {}, legend));
    for (const k of Object.keys(value)) {
      const child = field(value, k, `${path}.${k}`, rerender);
      if (child) set.append(child);
    }
    const name = el("input", { type: "text", placeholder: "field", class: "new-key" });
    const text = el("input", { type: "text", placeholder: "value", class: "new-value" });
    set.append(el("div", { class: "new-field" }, name, text, el("button", { onclick: () => {
      if (!name.value) return;
      value[name.value] = parse(text.value);
      rerender();
    } }, "Add field")));
    return set;
  }
  let input;
  if (typeof value === "boolean") {
    input = el("input", { type: "checkbox", checked: value });
    input.addEventListener("change", () => { parent[key] = input.checked; });
  } else if (Array.isArray(value)) {
    const numbers = value.length > 0 && value.every((v) => typeof v === "number");
    input = el("input", { type: "text", value: value.join(", ") });
    input.addEventListener("input", () => {
      const items = input.value.split(",").map((s) => s.trim()).filter((s) => s !== "");
      parent[key] = numbers ? items.map(Number) : items;
    });
  } else if (typeof value === "number") {
    input = el("input", { type: "number", value });
    input.addEventListener("input", () => { parent[key] = input.value === "" ? null : Number(input.value); });
  } else {
    input = el("input", { type: "text", value: value === null ? "" : value });
    input.addEventListener("input", () => { parent[key] = value === null ? parse(input.value) : input.value; });
  }
  input.dataset.path = path;
  return el("label", { class: "field" }, el("span", {}, key), input);
}

// A new list entry shaped like `like`: its fields, emptied.
function blank(like) {
  const out = {};
  for (const [k, v] of Object.entries(like)) {
    if (typeof v === "boolean" || typeof v === "number") out[k] = v;
    else if (Array.isArray(v)) out[k] = [];
    else if (v !== null && typeof v === "object") out[k] = blank(v);
    else out[k] = "";
  }
  return out;
}

function parse(text) {
  if (text === "") return null;
  try { return JSON.parse(text); } catch (e) { return text; }
}

async function apply(editor, comment) {
  all("[data-path].problem", editor).forEach((e) => e.classList.remove("problem"));
  all(".problem-text", editor).forEach((e) => e.remove());
  const reply = await api("PUT", "/api/config", { config: state.config, comment: comment || undefined });
  if (reply.ok) {
    say(reply.data.said || "applied");
    loadEditor(editor);
    return;
  }
  const problems = reply.data.problems || [];
  const lines = problems.map((p) => `${p.path}: ${p.message}`);
  say((reply.data.error || "refused") + (lines.length ? ": " + lines.join("; ") : ""), true);
  for (const p of problems) {
    const target = all("[data-path]", editor).find((e) => e.dataset.path === p.path)
      || all("[data-path]", editor).find((e) => p.path.startsWith(e.dataset.path + "."));
    if (target) {
      target.classList.add("problem");
      target.after(el("span", { class: "problem-text" }, p.message));
    }
  }
}

// --- history -----------------------------------------------------------------------------

async function loadHistory() {
  const reply = await api("GET", "/api/config/history");
  const body = $("#revisions tbody");
  body.replaceChildren();
  $("#diff").textContent = "";
  if (!reply.ok) { say(reply.data.error, true); return; }
  for (const r of reply.data.revisions.slice().reverse()) {
    body.append(el("tr", { class: r.current ? "current" : null },
      el("td", {}, r.revision + (r.current ? " (in force)" : "")),
      el("td", {}, new Date(r.time_ms).toISOString().replace("T", " ").slice(0, 19)),
      el("td", {}, r.author), el("td", {}, r.comment),
      el("td", {},
        r.revision > 1 ? el("button", { onclick: () => showDiff(r.revision - 1, r.revision) }, "Changes") : null,
        r.current ? null : el("button", { onclick: () => rollback(r.revision) }, "Roll back to this"))));
  }
}

async function showDiff(from, to) {
  const reply = await api("GET", `/api/config/diff?from=${from}&to=${to}`);
  $("#diff").textContent = reply.ok ? reply.data.diff : reply.data.error;
}

async function rollback(revision) {
  if (!confirm(`Put revision ${revision} in force again?`)) return;
  const reply = await api("POST", "/api/config/rollback", { revision });
  say(reply.ok ? reply.data.done : reply.data.error, !reply.ok);
  loadHistory();
}

start();
