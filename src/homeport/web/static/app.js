// homeport dashboard. No build step, no framework, nothing from a CDN.
//
// Data arrives on one EventSource (/api/stream): a "hello" snapshot, then diffs. The listeners
// table is keyed: each row element is kept in a Map by socket key, a diff touches only the rows
// it names, and a new row is inserted at its sorted place (binary search), so an update costs
// O(changed rows), not a re-render of thousands of rows.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const perf = (window.__homeport = { firstRender: null, renderMs: null, updates: [], hello: 0, measureLayout: false });

  const S = {
    rows: new Map(), // key -> row object
    els: new Map(), // key -> <tr>
    order: [], // keys in display order (all rows; filtered ones are hidden)
    sort: { key: "port", dir: 1 },
    selected: null,
    routes: [],
    services: [],
    projects: [],
    outputs: new Map(),
    outputId: null,
    events: [],
    access: [],
    acked: Number(localStorage.getItem("homeport.acked") || 0),
    lastAccess: 0,
    es: null,
  };
  const MAX_ACCESS = 1000;
  const MAX_EVENTS = 500;

  // ---- small helpers -------------------------------------------------------------------
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    if (attrs) for (const [k, v] of Object.entries(attrs)) {
      if (v == null || v === false) continue;
      if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v === true ? "" : v);
    }
    for (const k of kids) if (k != null) e.append(k);
    return e;
  }
  const hostPort = (a, p) => (a.includes(":") ? `[${a}]:${p}` : `${a}:${p}`);
  function age(started) {
    if (started == null) return "-";
    let s = Math.max(0, Math.floor(Date.now() / 1000 - started));
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m`;
    if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
    return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
  }
  const clock = (t) => new Date(t * 1000).toLocaleTimeString();
  function badge(text, cls) { return el("span", { class: `badge ${cls || text}`, text }); }
  async function api(path, opts) {
    const r = await fetch(path, { credentials: "same-origin", headers: { accept: "application/json", ...(opts && opts.headers) }, ...opts });
    if (r.status === 401) { showLogin(); throw new Error("not logged in"); }
    let data = {};
    try { data = await r.json(); } catch (e) { /* an empty or non-JSON body */ }
    if (!r.ok) throw new Error(data.error || `HTTP ${r.status}`);
    return data;
  }
  function post(path, body) {
    return api(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body || {}) });
  }

  // ---- login ---------------------------------------------------------------------------
  function showLogin() {
    if (S.es) { S.es.close(); S.es = null; }
    $("app").hidden = true;
    $("login").hidden = false;
    $("conn").textContent = "not logged in";
    $("conn").className = "conn down";
    clearData();
    $("login-token").focus();
  }
  function clearData() { // never keep data on screen once the session is gone
    S.rows.clear(); S.els.clear(); S.order = [];
    for (const id of ["l-body", "r-body", "s-body", "p-list", "a-body", "e-body", "alerts", "d-list", "u-list", "detail-body", "o-lines"]) $(id).replaceChildren();
  }
  async function login(ev) {
    ev.preventDefault();
    const v = $("login-token").value.trim();
    $("login-error").textContent = "";
    const m = v.match(/[?&]token=([^&#\s]+)/);
    if (m) { location.assign(`/login?token=${m[1]}`); return; }
    // The token file's content: trade it for a one-time link on this origin (sets the cookie).
    const r = await fetch("/api/login-links", { method: "POST", credentials: "same-origin", headers: { authorization: `Bearer ${v}` } });
    if (r.ok) {
      const code = new URL((await r.json()).url).searchParams.get("token");
      location.assign(`/login?token=${encodeURIComponent(code)}`);
      return;
    }
    if (v.length < 40) { location.assign(`/login?token=${encodeURIComponent(v)}`); return; } // a bare one-time code
    $("login-error").textContent = "That is not the token. Paste the link that `homeport open` prints, or the token file's content.";
  }

  // ---- tabs (roving tabindex, arrow keys) ------------------------------------------------
  const tabs = () => Array.from(document.querySelectorAll("[role=tab]"));
  function select(tab, focus) {
    for (const t of tabs()) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
      $(t.getAttribute("aria-controls")).hidden = !on;
    }
    if (focus) tab.focus();
    if (tab.id === "tab-events") ackAlerts();
    if (tab.id === "tab-doctor" && !$("d-list").children.length) runDoctor();
    history.replaceState(null, "", `#${tab.id.slice(4)}`);
  }
  function tabKeys(ev) {
    const list = tabs();
    const i = list.indexOf(ev.target);
    const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: list.length - 1 }[ev.key];
    if (next === undefined) return;
    ev.preventDefault();
    select(list[(next + list.length) % list.length], true);
  }

  // ---- listeners table -----------------------------------------------------------------
  const SORT = {
    port: (r) => r.port, proto: (r) => r.proto, address: (r) => r.address, exposure: (r) => r.exposure,
    process: (r) => r.process || "", pid: (r) => (r.pids[0] || 0), user: (r) => r.user || "",
    started: (r) => -(r.started || 0), route: (r) => r.route || "\uffff",
  };
  function compare(a, b) {
    const f = SORT[S.sort.key];
    const x = f(a), y = f(b);
    if (x < y) return -S.sort.dir;
    if (x > y) return S.sort.dir;
    return a.port - b.port || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
  }
  function fillRow(tr, r) {
    const exposed = r.exposure !== "loopback";
    const cell = (cls, attrs, ...kids) => el("div", { role: "cell", class: cls, ...attrs }, ...kids);
    const cells = [
      cell("c-port mono", { text: String(r.port) }),
      cell("c-proto", { text: r.proto }),
      cell("c-addr mono", { text: r.address, title: r.address }),
      cell("c-exp", null, badge(r.exposure)),
      cell("c-proc", { text: r.process || (r.owner_status === "known" ? "-" : `(${r.owner_status})`), title: r.command || r.owner_hint || "" }),
      cell("c-pid mono opt", { text: r.pids.join(" ") || "-" }),
      cell("c-user opt", { text: r.user || "-" }),
      cell("c-up opt", { text: age(r.started) }),
      cell("c-route", null, r.url ? el("a", { href: r.url, text: r.route, tabindex: "-1" }) : "-"),
    ];
    tr.replaceChildren(...cells);
    tr.classList.toggle("exposed", exposed);
    tr._search = `${r.port} ${r.proto} ${hostPort(r.address, r.port)} ${r.exposure} ${r.process || ""} ${r.pids.join(" ")} ${r.user || ""} ${r.route || ""} ${r.command || ""}`.toLowerCase();
  }
  function makeRow(r) {
    const tr = el("div", { role: "row", class: "lrow", tabindex: "0", "data-key": r.key, "aria-selected": "false" });
    fillRow(tr, r);
    return tr;
  }
  let filterText = "";
  function visible(tr, r) {
    if (!$("l-udp").checked && r.proto === "udp") return false;
    if ($("l-exposed").checked && r.exposure === "loopback") return false;
    return !filterText || filterText.split(/\s+/).every((w) => tr._search.includes(w));
  }
  function applyFilter() {
    filterText = $("l-filter").value.trim().toLowerCase();
    let shown = 0;
    for (const key of S.order) {
      const tr = S.els.get(key);
      const on = visible(tr, S.rows.get(key));
      tr.hidden = !on;
      shown += on;
    }
    $("l-empty").hidden = shown > 0 || S.order.length === 0;
    counts();
  }
  function position(r) { // binary search in S.order
    let lo = 0, hi = S.order.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (compare(S.rows.get(S.order[mid]), r) < 0) lo = mid + 1; else hi = mid;
    }
    return lo;
  }
  function insertRow(r) {
    const tr = makeRow(r);
    const i = position(r);
    const before = i < S.order.length ? S.els.get(S.order[i]) : null;
    S.order.splice(i, 0, r.key);
    S.rows.set(r.key, r);
    S.els.set(r.key, tr);
    $("l-body").insertBefore(tr, before);
    tr.hidden = !visible(tr, r);
    return tr;
  }
  function removeRow(key) {
    const tr = S.els.get(key);
    if (!tr) return;
    tr.remove();
    S.els.delete(key);
    S.rows.delete(key);
    const i = S.order.indexOf(key);
    if (i >= 0) S.order.splice(i, 1);
    if (S.selected === key) closeDetail();
  }
  function renderAll(rows) {
    const t0 = performance.now();
    S.rows.clear(); S.els.clear();
    const sorted = rows.slice().sort(compare);
    const frag = document.createDocumentFragment();
    for (const r of sorted) {
      S.rows.set(r.key, r);
      const tr = makeRow(r);
      S.els.set(r.key, tr);
      frag.append(tr);
    }
    S.order = sorted.map((r) => r.key);
    $("l-body").replaceChildren(frag);
    applyFilter();
    void $("l-body").offsetHeight; // include layout in the measured time
    perf.renderMs = performance.now() - t0;
    if (perf.firstRender === null) perf.firstRender = performance.now();
  }
  function applyListeners(d) {
    const t0 = performance.now();
    for (const key of d.removed) removeRow(key);
    for (const r of d.changed) {
      const tr = S.els.get(r.key);
      if (!tr) { insertRow(r); continue; }
      const old = S.rows.get(r.key);
      S.rows.set(r.key, r);
      if (compare(old, r) !== 0) { removeRow(r.key); insertRow(r); } else { fillRow(tr, r); tr.hidden = !visible(tr, r); }
    }
    for (const r of d.added) {
      if (S.els.has(r.key)) removeRow(r.key); // a snapshot and a diff may both carry it
      const tr = insertRow(r);
      if (perf.firstRender !== null) tr.classList.add("flash");
    }
    $("l-empty").hidden = true;
    counts();
    if (perf.measureLayout) void $("l-body").offsetHeight;
    perf.updates.push(performance.now() - t0);
  }
  function resort(key) {
    S.sort = { key, dir: S.sort.key === key ? -S.sort.dir : 1 };
    for (const th of document.querySelectorAll("#l-head [data-sort]")) {
      th.setAttribute("aria-sort", th.dataset.sort === key ? (S.sort.dir > 0 ? "ascending" : "descending") : "none");
    }
    const rows = S.order.map((k) => S.rows.get(k)).sort(compare);
    S.order = rows.map((r) => r.key);
    const frag = document.createDocumentFragment();
    for (const k of S.order) frag.append(S.els.get(k)); // moves the existing elements
    $("l-body").append(frag);
  }
  function refreshUptimes() {
    for (const [key, tr] of S.els) {
      const cell = tr.children[7];
      if (cell && !tr.hidden) cell.textContent = age(S.rows.get(key).started);
    }
  }

  // ---- details: who + explain ----------------------------------------------------------
  async function openDetail(key) {
    const r = S.rows.get(key);
    if (!r) return;
    if (S.selected) { const old = S.els.get(S.selected); if (old) old.setAttribute("aria-selected", "false"); }
    S.selected = key;
    S.els.get(key).setAttribute("aria-selected", "true");
    const target = hostPort(r.address, r.port);
    $("detail-title").textContent = `${r.proto} ${target}`;
    const body = $("detail-body");
    body.replaceChildren(el("p", { class: "note", text: "Loading…" }));
    $("detail").hidden = false;
    const [who, ex] = await Promise.allSettled([
      api(`/api/who?target=${encodeURIComponent(target)}`),
      api(`/api/explain?q=${encodeURIComponent(target)}`),
    ]);
    if (S.selected !== key) return;
    body.replaceChildren(...whoView(r, who), ...explainView(ex));
  }
  function whoView(r, res) {
    const out = [el("dl", null,
      el("dt", { text: "exposure" }), el("dd", null, badge(r.exposure)),
      el("dt", { text: "route" }), el("dd", null, r.url ? el("a", { href: r.url, text: r.url }) : "-"),
      el("dt", { text: "owner" }), el("dd", { text: r.owner_hint || r.owner_status }))];
    if (res.status !== "fulfilled") return [...out, el("p", { class: "error", text: `who: ${res.reason.message}` })];
    for (const l of res.value.listeners || []) {
      for (const p of l.owners || []) {
        const chain = (p.parents || []).map((x) => `${x.name} (${x.pid})`).join(" ← ");
        out.push(el("h3", { text: `${p.name} — pid ${p.pid}` }), el("dl", null,
          el("dt", { text: "command" }), el("dd", { class: "mono", text: (p.cmdline || []).join(" ") || p.name }),
          el("dt", { text: "cwd" }), el("dd", { class: "mono", text: p.cwd || "-" }),
          el("dt", { text: "user" }), el("dd", { text: p.user || "-" }),
          el("dt", { text: "started" }), el("dd", { text: p.start_time ? `${age(p.start_time)} ago` : "-" }),
          el("dt", { text: "parents" }), el("dd", { text: chain || "-" })));
      }
    }
    const clients = res.value.clients || [];
    out.push(el("h3", { text: `Clients (${clients.length})` }));
    if (clients.length) out.push(el("ul", null, ...clients.slice(0, 50).map((c) => {
      const who = (c.client_owners || []).map((p) => `${p.name} (${p.pid})`).join(", ");
      return el("li", { class: "mono", text: `${hostPort(c.remote_address, c.remote_port)} ${c.state}${who ? " — " + who : ""}` });
    })));
    return out;
  }
  function explainView(res) {
    if (res.status !== "fulfilled" || !res.value.available) return [];
    const e = res.value;
    const notes = [...(e.address?.notes || []), ...(e.port?.notes || []), ...(e.live?.notes || [])];
    const out = [el("h3", { text: "Explain" })];
    if (notes.length) out.push(el("ul", null, ...notes.map((n) => el("li", { text: n }))));
    for (const d of e.diagnosis || []) out.push(el("p", null, el("strong", { text: d.summary })));
    if ((e.next_steps || []).length) out.push(el("ul", null, ...e.next_steps.map((n) => el("li", { text: n }))));
    return out;
  }
  function closeDetail() {
    if (S.selected) { const tr = S.els.get(S.selected); if (tr) { tr.setAttribute("aria-selected", "false"); tr.focus(); } }
    S.selected = null;
    $("detail").hidden = true;
  }

  // ---- routes and services -------------------------------------------------------------
  function renderRoutes() {
    $("r-body").replaceChildren(...S.routes.map((r) => el("tr", null,
      el("td", null, el("a", { href: r.url, text: r.name })),
      el("td", { class: "mono", text: r.target }),
      el("td", { text: r.auth }),
      el("td", null, badge(r.health)),
      el("td", { text: String(r.requests_per_min) }),
      el("td", { text: r.service_id || "-" }))));
    $("r-empty").hidden = S.routes.length > 0;
    counts();
  }
  function renderServices() {
    $("s-body").replaceChildren(...S.services.map((s) => {
      const live = s.state === "running" || s.state === "starting";
      const act = (label, fn) => el("button", { type: "button", "data-act": fn, "data-id": s.id, text: label });
      return el("tr", { "data-id": s.id, "data-name": s.name },
        el("td", null, s.url ? el("a", { href: s.url, text: s.name }) : s.name),
        el("td", null, badge(s.state), s.exit_code != null ? ` ${s.exit_code}` : ""),
        el("td", { class: "mono", text: String(s.pid) }),
        el("td", { class: "mono", text: String(s.port) }),
        el("td", { text: s.started_by }),
        el("td", { class: "mono cmd", text: s.cmd.join(" "), title: s.cmd.join(" ") }),
        el("td", null, act("Output", "output"), " ", live ? act("Stop", "stop") : null, " ", act("Restart", "restart")));
    }));
    $("s-empty").hidden = S.services.length > 0;
  }
  function renderProjects() {
    $("p-list").replaceChildren(...S.projects.map((p) => {
      const act = (svc, label, fn) => el("button", { type: "button", "data-pact": fn, "data-project": p.id, "data-service": svc, text: label });
      const rows = p.services.map((s) => {
        const live = ["starting", "ready", "pending", "backoff"].includes(s.state);
        return el("tr", { "data-project": p.id, "data-service": s.name },
          el("td", null, s.url ? el("a", { href: s.url, text: s.name }) : s.name),
          el("td", null, badge(s.state), s.exit_code != null ? ` ${s.exit_code}` : ""),
          el("td", { class: "mono", text: s.pid != null ? String(s.pid) : "-" }),
          el("td", { class: "mono", text: s.port != null ? String(s.port) : "-" }),
          el("td", { text: String(s.restarts) }),
          el("td", { text: s.ready_since ? age(s.ready_since) : "-" }),
          el("td", { class: "note", text: s.message || "" }),
          el("td", null, live ? act(s.name, "Stop", "stop") : act(s.name, "Start", "start"), " ", act(s.name, "Restart", "restart")));
      });
      return el("section", { class: "project", "data-project": p.id },
        el("h3", null, p.id, " ", el("span", { class: "note", text: p.root || "" })),
        el("table", { class: "grid" },
          el("thead", null, el("tr", null, ...["Service", "State", "PID", "Port", "Restarts", "Ready for", "Note", "Actions"].map((h) => el("th", { text: h })))),
          el("tbody", null, ...rows)));
    }));
    $("p-empty").hidden = S.projects.length > 0;
  }
  async function projectAction(ev) {
    const b = ev.target.closest("button[data-pact]");
    if (!b) return;
    const { pact, project, service } = b.dataset;
    b.disabled = true;
    $("p-status").textContent = `${pact} ${service}…`;
    try {
      const res = await post(`/api/projects/${encodeURIComponent(project)}/${pact}`, { services: [service] });
      const s = res.project.services.find((x) => x.name === service);
      $("p-status").textContent = `${service}: ${s ? s.state : "?"}`;
    } catch (e) { $("p-status").textContent = `${pact} failed: ${e.message}`; }
    b.disabled = false;
  }
  async function serviceAction(ev) {
    const b = ev.target.closest("button[data-act]");
    if (!b) return;
    const { act, id } = b.dataset;
    if (act === "output") { showOutput(id); return; }
    b.disabled = true;
    $("s-status").textContent = `${act}…`;
    try {
      const res = await post(`/api/services/${id}/${act}`);
      $("s-status").textContent = `${res.service.name}: ${res.service.state}`;
      if (act === "restart") showOutput(res.service.id);
    } catch (e) { $("s-status").textContent = `${act} failed: ${e.message}`; }
    b.disabled = false;
  }
  async function startService(ev) {
    ev.preventDefault();
    const body = { name: $("s-name").value.trim(), cmd: $("s-cmd").value.trim() };
    if ($("s-cwd").value.trim()) body.cwd = $("s-cwd").value.trim();
    $("s-status").textContent = "starting…";
    try {
      const res = await post("/api/services/start", body);
      $("s-status").textContent = `${res.service.name} runs on port ${res.service.port}`;
      showOutput(res.service.id);
    } catch (e) { $("s-status").textContent = `could not start: ${e.message}`; }
  }
  async function showOutput(id) {
    S.outputId = id;
    const s = S.services.find((x) => x.id === id);
    $("output-title").textContent = `Output — ${s ? s.name : id}`;
    $("output").hidden = false;
    if (!S.outputs.has(id)) {
      try { S.outputs.set(id, (await api(`/api/services/${id}`)).lines); } catch (e) { S.outputs.set(id, [`(${e.message})`]); }
    }
    renderOutput();
  }
  function renderOutput() {
    const lines = S.outputs.get(S.outputId) || [];
    const q = $("o-search").value.toLowerCase();
    const pre = $("o-lines");
    const shown = q ? lines.filter((l) => l.toLowerCase().includes(q)) : lines;
    pre.textContent = shown.join("\n");
    if ($("o-follow").checked) pre.scrollTop = pre.scrollHeight;
  }

  // ---- access log ----------------------------------------------------------------------
  function accessMatch(a) {
    const route = $("a-route").value.trim().toLowerCase();
    const status = $("a-status").value.trim().toLowerCase();
    const client = $("a-client").value.trim();
    if (route && !(a.route || "").toLowerCase().includes(route) && !a.host.toLowerCase().includes(route)) return false;
    if (client && !a.client_addr.includes(client)) return false;
    if ($("a-external").checked && !a.external) return false;
    if (!$("a-control").checked && a.reason === "control") return false;
    if (status) {
      const s = String(a.status);
      if (!status.split(/[\s,]+/).some((p) => (p.endsWith("xx") ? s[0] === p[0] : s === p))) return false;
    }
    return true;
  }
  function accessRow(a) {
    return el("tr", { class: a.external ? "external" : null, "data-id": String(a.id) },
      el("td", { text: clock(a.time) }),
      el("td", { class: "mono" }, hostPort(a.client_addr, a.client_port), a.external ? " " : null, a.external ? badge("external") : null),
      el("td", { text: a.host }),
      el("td", { text: a.method }),
      el("td", { class: "mono wrap", text: a.path }),
      el("td", null, badge(String(a.status), a.status >= 500 ? "error" : a.status >= 400 ? "warn" : "ok")),
      el("td", { class: "opt", text: String(a.bytes_out) }),
      el("td", { class: "opt", text: a.duration_ms.toFixed(1) }),
      el("td", { text: a.route || (a.reason ? `(${a.reason})` : "-") }));
  }
  function renderAccess() {
    const shown = S.access.filter(accessMatch).slice(-500).reverse();
    $("a-body").replaceChildren(...shown.map(accessRow));
    $("a-empty").hidden = shown.length > 0;
    counts();
  }
  function addAccess(records) {
    // The snapshot and a live message can both carry a row: ids only grow, so skip old ones.
    records = records.filter((a) => a.id > S.lastAccess);
    if (!records.length) return;
    S.lastAccess = records[records.length - 1].id;
    S.access.push(...records);
    if (S.access.length > MAX_ACCESS) S.access.splice(0, S.access.length - MAX_ACCESS);
    const body = $("a-body");
    for (const a of records) if (accessMatch(a)) body.insertBefore(accessRow(a), body.firstChild);
    while (body.children.length > 500) body.lastChild.remove();
    $("a-empty").hidden = body.children.length > 0;
    counts();
  }

  // ---- events and alerts ---------------------------------------------------------------
  function eventText(e) { return e.data.message || `${e.kind} ${JSON.stringify(e.data)}`; }
  function eventRow(e) {
    return el("tr", { class: e.data.alert ? "external" : null },
      el("td", { text: clock(e.time) }),
      el("td", null, e.data.alert ? badge("alert", "error") : null, e.data.alert ? " " : null, e.kind),
      el("td", { class: "wrap", text: eventText(e) }));
  }
  function alertItem(e) {
    return el("li", null, el("time", { text: clock(e.time) }), el("span", { text: eventText(e) }));
  }
  function renderEvents() {
    $("e-body").replaceChildren(...S.events.slice().reverse().map(eventRow));
    $("e-empty").hidden = S.events.length > 0;
    const alerts = S.events.filter((e) => e.data.alert);
    $("alerts").replaceChildren(...alerts.slice().reverse().map(alertItem));
    $("alerts-empty").hidden = alerts.length > 0;
    renderBanner();
  }
  function addEvent(e) {
    if (S.events.length && S.events[S.events.length - 1].id >= e.id) return;
    S.events.push(e);
    if (S.events.length > MAX_EVENTS) S.events.shift();
    $("e-body").insertBefore(eventRow(e), $("e-body").firstChild);
    $("e-empty").hidden = true;
    if (e.data.alert) {
      $("alerts").insertBefore(alertItem(e), $("alerts").firstChild);
      $("alerts-empty").hidden = true;
      renderBanner();
    }
  }
  function unacked() { return S.events.filter((e) => e.data.alert && e.id > S.acked); }
  function renderBanner() {
    const list = unacked();
    const banner = $("alert-banner");
    $("n-alerts").textContent = list.length ? String(list.length) : "";
    if (!list.length) { banner.hidden = true; return; }
    const recent = list.slice(-3).reverse();
    banner.replaceChildren(el("strong", { text: `⚠ ${list.length} alert${list.length > 1 ? "s" : ""}:` }),
      el("ul", null, ...recent.map((e) => el("li", { text: eventText(e) }))),
      el("button", { type: "button", id: "alert-ack", text: "Dismiss" }));
    banner.hidden = false;
  }
  function ackAlerts() {
    const last = S.events.length ? S.events[S.events.length - 1].id : 0;
    S.acked = Math.max(S.acked, last);
    localStorage.setItem("homeport.acked", String(S.acked));
    renderBanner();
  }

  // ---- doctor --------------------------------------------------------------------------
  async function runDoctor() {
    $("d-status").textContent = "running…";
    try {
      const d = await api("/api/doctor");
      if (!d.available) { $("d-status").textContent = "doctor is not available in this build"; return; }
      $("d-list").replaceChildren(...d.checks.map((c) => el("li", { class: c.status },
        badge(c.status), " ", el("strong", { text: c.title }), " ", el("span", { text: c.summary }),
        c.fix ? el("div", { class: "fix" }, "fix: ", el("code", { text: c.fix })) : null)));
      $("d-status").textContent = `overall: ${d.status}`;
    } catch (e) { $("d-status").textContent = `doctor failed: ${e.message}`; }
  }

  const SEVERITY = { critical: "fail", high: "fail", medium: "warn", low: "info", info: "info" };
  async function runAudit() {
    const port = Number($("u-port").value.trim()) || undefined;
    $("u-status").textContent = "auditing…";
    $("u-run").disabled = true;
    try {
      const a = await post("/api/audit", port ? { port } : {});
      if (!a.available) { $("u-status").textContent = "audit is not available in this build"; return; }
      const items = a.findings.map((f) => el("li", { class: SEVERITY[f.severity] || "warn" },
        badge(f.severity, SEVERITY[f.severity] || "warn"), " ", el("strong", { text: f.title }), " ",
        el("span", { class: "mono", text: f.listener }), f.fix ? el("div", { class: "fix", text: `fix: ${f.fix}` }) : null));
      $("u-list").replaceChildren(...items);
      $("u-status").textContent = a.findings.length ? `${a.findings.length} finding(s)` : "no findings";
    } catch (e) { $("u-status").textContent = `audit failed: ${e.message}`; }
    $("u-run").disabled = false;
  }

  // ---- counts, connection --------------------------------------------------------------
  function counts() {
    let shown = 0, exposed = 0;
    for (const [key, tr] of S.els) { if (!tr.hidden) shown++; if (S.rows.get(key).exposure !== "loopback") exposed++; }
    $("n-listeners").textContent = shown === S.els.size ? String(S.els.size) : `${shown}/${S.els.size}`;
    $("n-routes").textContent = S.routes.length ? String(S.routes.length) : "";
    $("n-access").textContent = S.access.length ? String(S.access.length) : "";
    $("summary").textContent = `${S.els.size} listening · ${exposed} beyond loopback · ${S.routes.length} routes`;
  }
  const handlers = {
    hello(d) {
      perf.hello++;
      renderAll(d.listeners);
      S.routes = d.routes; renderRoutes();
      S.services = d.services; renderServices();
      S.projects = d.projects || []; renderProjects();
      S.events = d.events; renderEvents();
      S.access = d.access; renderAccess();
      S.lastAccess = d.access.length ? d.access[d.access.length - 1].id : 0;
      $("app").hidden = false;
      $("login").hidden = true;
    },
    listeners: applyListeners,
    events: (d) => d.events.forEach(addEvent),
    access: (d) => addAccess(d.records),
    routes: (d) => { S.routes = d.routes; renderRoutes(); },
    services: (d) => { S.services = d.services; renderServices(); },
    projects: (d) => { S.projects = d.projects; renderProjects(); },
    output: (d) => { S.outputs.set(d.id, d.lines); if (d.id === S.outputId) renderOutput(); },
  };
  // For bench/bench_dashboard.py: feed a message as if it came from the stream.
  perf.apply = (kind, data) => handlers[kind](data);
  function connect() {
    const es = (S.es = new EventSource("/api/stream"));
    for (const [name, fn] of Object.entries(handlers)) {
      es.addEventListener(name, (m) => fn(JSON.parse(m.data)));
    }
    es.onopen = () => { $("conn").textContent = "live"; $("conn").className = "conn live"; };
    es.onerror = async () => {
      $("conn").textContent = "reconnecting…";
      $("conn").className = "conn down";
      if (es.readyState === EventSource.CLOSED) { // refused (401?) rather than dropped
        try { await api("/api/status"); setTimeout(connect, 1000); } catch (e) { /* showLogin ran */ }
      }
    };
  }
  async function boot() {
    try { await api("/api/status"); } catch (e) { if (!$("login").hidden) return; $("conn").textContent = e.message; return; }
    connect();
  }

  // ---- wiring --------------------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", login);
    for (const t of tabs()) { t.addEventListener("click", () => select(t, false)); t.addEventListener("keydown", tabKeys); }
    const hash = location.hash.slice(1);
    if (hash && $(`tab-${hash}`)) select($(`tab-${hash}`), false);
    $("l-filter").addEventListener("input", applyFilter);
    $("l-exposed").addEventListener("change", applyFilter);
    $("l-udp").addEventListener("change", applyFilter);
    for (const th of document.querySelectorAll("#l-head [data-sort]")) th.querySelector("button").addEventListener("click", () => resort(th.dataset.sort));
    const body = $("l-body");
    body.addEventListener("click", (ev) => { const tr = ev.target.closest("[role=row]"); if (tr && !ev.target.closest("a")) openDetail(tr.dataset.key); });
    body.addEventListener("keydown", (ev) => {
      const tr = ev.target.closest("[role=row]");
      if (!tr) return;
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); openDetail(tr.dataset.key); return; }
      const step = { ArrowDown: "nextElementSibling", ArrowUp: "previousElementSibling" }[ev.key];
      if (!step) return;
      ev.preventDefault();
      let n = tr[step];
      while (n && n.hidden) n = n[step];
      if (n) n.focus();
    });
    $("detail-close").addEventListener("click", closeDetail);
    $("s-form").addEventListener("submit", startService);
    $("s-body").addEventListener("click", serviceAction);
    $("p-list").addEventListener("click", projectAction);
    $("o-search").addEventListener("input", renderOutput);
    for (const id of ["a-route", "a-status", "a-client", "a-external", "a-control"]) $(id).addEventListener("input", renderAccess);
    $("d-run").addEventListener("click", runDoctor);
    $("u-run").addEventListener("click", runAudit);
    $("alert-banner").addEventListener("click", (ev) => { if (ev.target.id === "alert-ack") ackAlerts(); });
    document.addEventListener("keydown", (ev) => {
      if (ev.key === "/" && !/INPUT|TEXTAREA/.test(document.activeElement.tagName)) { ev.preventDefault(); select($("tab-listeners"), false); $("l-filter").focus(); }
      if (ev.key === "Escape" && !$("detail").hidden) closeDetail();
    });
    setInterval(refreshUptimes, 15000);
    boot();
  });
})();
