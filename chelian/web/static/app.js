/* chelian console: sign in, a live map of your cars, and a page per car.
 *
 * Why it is shaped like this:
 * - One WebSocket (/api/v1/live) for the whole fleet, authenticated by its first message;
 *   the server coalesces updates per car and flushes a batch every ~300 ms (chelian/web/push.py).
 * - Batches are merged into `pending` and applied once per animation frame, so 1 000 cars
 *   moving cost one canvas redraw per frame, never one per message.
 * - Cars are Leaflet vector markers on a canvas renderer (an arrow pointing along the
 *   heading); the basemap is the simulator's roads as GeoJSON from /api/v1/map/roads.
 * - Plain script, no build step: what is in the repository is what the browser runs.
 */
(function () {
  "use strict";

  const API = "/api/v1";
  const TOKEN_KEY = "chelian.token";
  const FINAL = new Set(["succeeded", "failed", "rejected", "expired"]);
  const ALERT_MS = 15 * 60 * 1000;
  const COLOURS = { online: "#16a34a", offline: "#8a94a6", alert: "#dc2626" };
  const $ = (id) => document.getElementById(id);

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY),
    email: null,
    cars: new Map(),        // vin -> car (merged updates)
    markers: new Map(),     // vin -> CarMarker
    pending: new Map(),     // vin -> merged update not yet drawn
    ws: null, retry: 0, fitted: false, listDirty: true,
    stats: { fps: 0, lagMs: null, frames: 0, batches: 0, updates: 0 },
    carPage: null,          // {vin, ...} while a car page is open
  };
  window.chelianConsole = state;   // for the e2e test and for curious users

  // --- HTTP -------------------------------------------------------------------------------

  class HttpError extends Error {
    constructor(status, detail) { super(detail); this.status = status; }
  }

  async function api(path, options = {}) {
    const headers = Object.assign({}, options.headers || {});
    if (state.token) headers.Authorization = "Bearer " + state.token;
    let response;
    try {
      response = await fetch(API + path, Object.assign({}, options, { headers }));
    } catch (err) {
      throw new HttpError(0, "cannot reach the chelian server (" + err.message + ")");
    }
    if (response.status === 401 && state.token) { signOut("Your session has expired: please sign in again."); }
    if (!response.ok) {
      let detail = response.statusText;
      try { const body = await response.json(); detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail); } catch (_) { /* not JSON */ }
      throw new HttpError(response.status, detail);
    }
    return response.status === 204 ? null : response.json();
  }

  // --- sign in / out ------------------------------------------------------------------------

  async function signIn(event) {
    event.preventDefault();
    const error = $("login-error");
    error.hidden = true;
    $("login-submit").disabled = true;
    try {
      const body = new URLSearchParams({ username: $("email").value, password: $("password").value });
      const tok = await api("/auth/token", { method: "POST", body });
      state.token = tok.access_token;
      sessionStorage.setItem(TOKEN_KEY, state.token);
      $("password").value = "";
      start();
    } catch (err) {
      error.textContent = err.status === 401 || err.status === 400 ? "Wrong e-mail or password." : err.message;
      error.hidden = false;
    } finally {
      $("login-submit").disabled = false;
    }
  }

  function signOut(message) {
    state.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    if (state.ws) { state.ws.onclose = null; state.ws.close(); state.ws = null; }
    state.cars.clear(); state.pending.clear();
    state.markers.forEach((m) => m.remove()); state.markers.clear();
    state.fitted = false;
    $("console").hidden = true;
    $("login").hidden = false;
    const error = $("login-error");
    error.textContent = message || ""; error.hidden = !message;
  }

  function banner(text, isError) {
    const b = $("banner");
    b.textContent = text || ""; b.hidden = !text; b.classList.toggle("error", !!isError);
  }

  // --- map --------------------------------------------------------------------------------

  let map = null, renderer = null;

  /* A CircleMarker drawn as an arrow along `heading`: Leaflet's canvas renderer gives hit
     testing, clicks and batched redraws for free; only the shape is ours. */
  const CarMarker = L.CircleMarker.extend({
    options: { radius: 10, heading: 0, weight: 1.5, color: "#ffffff", fillOpacity: 1 },
    _updatePath: function () {
      const r = this._renderer;
      if (!r._drawing || this._empty()) return;
      const ctx = r._ctx, p = this._point, s = this._radius;
      const a = ((this.options.heading || 0) * Math.PI) / 180;
      ctx.save();
      ctx.translate(p.x, p.y);
      ctx.rotate(a);
      ctx.beginPath();
      ctx.moveTo(0, -s * 1.2); ctx.lineTo(s * 0.8, s * 0.9); ctx.lineTo(0, s * 0.45); ctx.lineTo(-s * 0.8, s * 0.9);
      ctx.closePath();
      ctx.restore();
      r._fillStroke(ctx, this);
    },
  });

  function initMap() {
    if (map) return;
    renderer = L.canvas({ padding: 0.3 });
    map = L.map("map", { preferCanvas: true, renderer, zoomControl: true, attributionControl: true })
      .setView([42.2808, -83.743], 14);
    map.attributionControl.setPrefix("Leaflet | roads: chelian simulator");
    const legend = L.DomUtil.create("div", "legend", map.getContainer());
    legend.innerHTML = Object.entries(COLOURS).map(([k, c]) =>
      `<span><i class="dot" style="background:${c}"></i>${k}</span>`).join("");
    loadRoads();
  }

  async function loadRoads() {
    try {
      const roads = await api("/map/roads");
      const style = (f) => {   // roads widen as you zoom in, like on a printed map
        const scale = Math.max(0.4, Math.min(1.6, 2 ** (map.getZoom() - 16)));
        return { color: "#ffffff", opacity: 1, weight: (f.properties.kind === "main" ? 8 : 5) * scale };
      };
      const layer = L.geoJSON(roads, { renderer: L.canvas({ padding: 0.5 }), interactive: false, style }).addTo(map);
      map.on("zoomend", () => layer.setStyle(style));
      layer.bringToBack();
      if (!state.fitted && layer.getBounds().isValid()) map.fitBounds(layer.getBounds(), { padding: [10, 10] });
    } catch (err) {
      if (err.status !== 401) banner("The road map could not be loaded: " + err.message, true);
    }
  }

  function status(car) {
    if (car.alert && Date.now() - car.alert.ts_ms < ALERT_MS) return "alert";
    return car.online ? "online" : "offline";
  }

  function drawCar(car) {
    if (car.lat == null || car.lon == null) return;
    let m = state.markers.get(car.vin);
    const colour = COLOURS[status(car)];
    if (!m) {
      m = new CarMarker([car.lat, car.lon], { renderer, heading: car.heading || 0, fillColor: colour });
      m.on("click", () => { location.hash = "#/car/" + car.vin; });
      m.bindTooltip(() => `${esc(car.name || car.vin)}<br>${fmtSpeed(car.speed)} · ${status(car)}`);
      m.addTo(map);
      state.markers.set(car.vin, m);
      return;
    }
    m.options.heading = car.heading || 0;
    if (m.options.fillColor !== colour) m.options.fillColor = colour;
    m.setLatLng([car.lat, car.lon]);   // schedules one canvas redraw per frame, whatever the count
  }

  // --- live push --------------------------------------------------------------------------

  function connectLive() {
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + API + "/live";
    const ws = new WebSocket(url);
    state.ws = ws;
    setConn("connecting…", "");
    ws.onopen = () => ws.send(JSON.stringify({ token: state.token }));
    ws.onmessage = (e) => {
      const msg = JSON.parse(e.data);
      if (msg.type === "hello") {
        state.email = msg.email; state.retry = 0;
        $("who").textContent = msg.email;
        document.querySelectorAll(".me").forEach((el) => { el.textContent = msg.email; });
        setConn("live", "live"); banner("");
      } else if (msg.type === "snapshot") {
        state.cars.clear();
        msg.cars.forEach((c) => { state.cars.set(c.vin, c); state.pending.set(c.vin, {}); });
        state.listDirty = true;
        fitToCars();
      } else if (msg.type === "cars") {
        state.stats.batches += 1;
        for (const u of msg.cars) {
          const p = state.pending.get(u.vin);
          if (p) Object.assign(p, u); else state.pending.set(u.vin, u);
        }
      } else if (msg.type === "error") {
        banner(msg.detail, true);
      }
    };
    ws.onclose = (e) => {
      if (state.ws !== ws) return;
      state.ws = null;
      if (e.code === 4401) { signOut("Your session has expired: please sign in again."); return; }
      setConn("reconnecting…", "down");
      const delay = Math.min(30000, 500 * 2 ** state.retry++);
      if (state.retry > 2) banner("Lost the live connection to chelian; retrying in " + Math.round(delay / 1000) + " s.");
      setTimeout(() => { if (state.token) connectLive(); }, delay);
    };
  }

  function setConn(text, cls) {
    const el = $("conn"); el.textContent = text; el.className = "conn " + cls;
  }

  function fitToCars() {
    const points = [...state.cars.values()].filter((c) => c.lat != null).map((c) => [c.lat, c.lon]);
    if (!state.fitted && points.length) {
      map.fitBounds(L.latLngBounds(points).pad(0.2), { maxZoom: 16 });
      state.fitted = true;
    }
  }

  /* The one place updates reach the screen: once per animation frame. */
  let frameCount = 0, lagSum = 0, lagN = 0, lastTick = performance.now();
  function frame(now) {
    if (state.pending.size) {
      const wall = Date.now();
      for (const [vin, u] of state.pending) {
        let car = state.cars.get(vin);
        if (!car) { car = { vin }; state.cars.set(vin, car); state.listDirty = true; }
        Object.assign(car, u);
        if (u.ts_ms) { lagSum += wall - u.ts_ms; lagN += 1; }
        state.stats.updates += 1;
        drawCar(car);
        if (state.carPage && state.carPage.vin === vin) carPageLive(car);
      }
      state.pending.clear();
      if (!state.fitted) fitToCars();
    }
    frameCount += 1; state.stats.frames += 1;
    if (now - lastTick >= 1000) {
      state.stats.fps = Math.round((frameCount * 1000) / (now - lastTick));
      state.stats.lagMs = lagN ? Math.round(lagSum / lagN) : null;
      frameCount = 0; lagSum = 0; lagN = 0; lastTick = now;
      renderStats();
      renderFleet();
      if (state.carPage) renderAges();
    }
    requestAnimationFrame(frame);
  }

  function renderStats() {
    const s = state.stats;
    $("stats").textContent = `${state.cars.size} cars · ${s.fps} fps` + (s.lagMs != null ? ` · lag ${s.lagMs} ms` : "");
  }

  // --- fleet list -------------------------------------------------------------------------

  /* Which fleet a car is in and, if it is not yours, whose it is: what an operator needs to
     tell the cars of many owners apart. Empty for an owner's own cars outside any fleet. */
  function via(car) {
    return [car.fleet && "fleet " + car.fleet, car.owner && "owner " + car.owner].filter(Boolean).join(" · ");
  }

  function renderFleet() {
    const cars = [...state.cars.values()];
    $("fleet-count").textContent = cars.length ? `(${cars.length})` : "";
    $("fleet-title").textContent = cars.some((c) => c.owner) ? "Your cars and fleets" : "Your cars";
    $("empty").hidden = cars.length > 0;
    const list = $("fleet");
    if (state.listDirty || list.children.length !== Math.min(cars.length, 300)) {
      state.listDirty = false;
      list.replaceChildren(...cars.slice(0, 300).map((car) => {
        const li = document.createElement("li");
        li.dataset.vin = car.vin;
        li.innerHTML = `<i class="dot"></i><span class="name"><span class="title"></span><small class="via muted"></small></span><span class="speed"></span>`;
        li.querySelector(".title").textContent = (car.name || "") + " · " + car.vin;
        li.querySelector(".via").textContent = via(car);
        li.onclick = () => { location.hash = "#/car/" + car.vin; };
        return li;
      }));
    }
    for (const li of list.children) {        // cheap in-place refresh, once a second
      const car = state.cars.get(li.dataset.vin);
      if (!car) continue;
      li.querySelector(".dot").className = "dot " + status(car);
      li.querySelector(".speed").textContent = car.lat == null ? "no position yet" : fmtSpeed(car.speed);
    }
  }

  // --- car page ---------------------------------------------------------------------------

  const RANGES = { "15 min": 15 * 60e3, "1 hour": 3600e3, "6 hours": 6 * 3600e3, "24 hours": 86400e3, "7 days": 7 * 86400e3 };

  async function openCar(vin) {
    $("fleet-view").hidden = true;
    const view = $("car-view");
    view.hidden = false;
    state.carPage = { vin, signal: "Vehicle.Speed", range: "1 hour", lastState: 0, commandsAvailable: true };
    view.innerHTML = `<button class="link" id="back">← All cars</button>
      <h2 id="car-title">${esc(vin)}</h2>
      <p><span id="car-status" class="chip">…</span> <span id="car-age" class="muted"></span></p>
      <h3>Commands</h3>
      <div class="cmds">
        <button data-cmd="lock">Lock</button><button data-cmd="unlock" class="secondary">Unlock</button>
        <button data-cmd="locate" class="secondary">Locate</button><button data-cmd="honk_flash" class="secondary">Honk &amp; flash</button>
      </div>
      <div id="cmd-progress" class="cmd-progress" role="status"></div>
      <h3>History</h3>
      <div class="chart-controls"><select id="chart-signal" aria-label="signal"></select>
        <select id="chart-range" aria-label="time range">${Object.keys(RANGES).map((r) => `<option${r === "1 hour" ? " selected" : ""}>${r}</option>`).join("")}</select></div>
      <div id="chart"></div>
      <h3>Latest state</h3><div id="car-state" class="muted">loading…</div>
      <h3>Recent events</h3><div id="car-events" class="muted">loading…</div>
      <h3>Recent commands</h3><div id="car-commands" class="muted">loading…</div>`;
    $("back").onclick = () => { location.hash = "#/"; };
    view.querySelectorAll("[data-cmd]").forEach((b) => { b.onclick = () => sendCommand(vin, b.dataset.cmd); });
    $("chart-range").onchange = (e) => { state.carPage.range = e.target.value; loadChart(); };
    $("chart-signal").onchange = (e) => { state.carPage.signal = e.target.value; loadChart(); };
    try {
      const v = await api("/vehicles/" + encodeURIComponent(vin));
      $("car-title").textContent = `${v.year} ${v.make} ${v.model}`;
      $("car-age").textContent = v.vin;
    } catch (err) {
      view.innerHTML = `<button class="link" onclick="location.hash='#/'">← All cars</button>
        <p class="error">${err.status === 404 ? "This car is not in your account." : esc(err.message)}</p>`;
      state.carPage = null;
      return;
    }
    const car = state.cars.get(vin);
    if (car) { carPageLive(car); if (car.lat != null) map.panTo([car.lat, car.lon]); }
    await loadState();
    loadChart(); loadEvents(); loadCommands();
  }

  function closeCar() {
    state.carPage = null;
    $("car-view").hidden = true; $("car-view").innerHTML = "";
    $("fleet-view").hidden = false;
    state.listDirty = true; renderFleet();
  }

  function carPageLive(car) {
    const chip = $("car-status");
    if (!chip) return;
    const s = status(car);
    chip.className = "chip " + s;
    chip.textContent = s === "alert" ? "alert: " + car.alert.type.replace(/_/g, " ") : s;
    if (Date.now() - state.carPage.lastState > 2000) loadState();   // at most every 2 s
  }

  async function loadState() {
    const page = state.carPage;
    if (!page) return;
    page.lastState = Date.now();
    try {
      const st = await api(`/vehicles/${page.vin}/state`);
      if (state.carPage !== page) return;
      page.signals = st.signals;
      page.loadedAt = Date.now();
      const paths = Object.keys(st.signals);
      const box = $("car-state");
      if (!paths.length) { box.textContent = "This car has not reported anything yet."; return; }
      box.className = "";
      box.innerHTML = `<table><thead><tr><th>signal</th><th>value</th><th>age</th></tr></thead><tbody>${paths.map((p) =>
        `<tr data-path="${esc(p)}"><td class="path">${esc(p.replace(/^Vehicle\./, ""))}</td><td class="num">${esc(fmtValue(st.signals[p]))}</td><td class="num age" data-path="${esc(p)}"></td></tr>`).join("")}</tbody></table>`;
      renderAges();
      const select = $("chart-signal");
      const numeric = paths.filter((p) => typeof st.signals[p].value === "number" || typeof st.signals[p].value === "boolean");
      if (select.options.length !== numeric.length) {
        select.innerHTML = numeric.map((p) => `<option value="${esc(p)}"${p === page.signal ? " selected" : ""}>${esc(p.replace(/^Vehicle\./, ""))}</option>`).join("");
        if (!numeric.includes(page.signal) && numeric.length) { page.signal = numeric[0]; loadChart(); }
      }
    } catch (err) {
      $("car-state").textContent = "Could not load the state: " + err.message;
    }
  }

  function renderAges() {
    const page = state.carPage;
    if (!page || !page.signals) return;
    const extra = (Date.now() - page.loadedAt) / 1000;
    document.querySelectorAll("#car-state .age").forEach((td) => {
      td.textContent = fmtAge(page.signals[td.dataset.path].age_s + extra);
    });
  }

  async function loadChart() {
    const page = state.carPage;
    if (!page) return;
    const span = RANGES[page.range], end = Date.now(), start = end - span;
    const every = Math.max(1, Math.round(span / 1000 / 200)) + "s";   // ~200 buckets, computed by the server
    const box = $("chart");
    try {
      const h = await api(`/vehicles/${page.vin}/signals/${encodeURIComponent(page.signal)}/history?start=${start}&end=${end}&every=${every}`);
      if (state.carPage !== page) return;
      box.innerHTML = chartSvg(h.buckets, start, end, h.unit);
    } catch (err) {
      box.innerHTML = `<p class="error">${esc(err.message)}</p>`;
    }
  }

  /* An inline SVG: avg as a line, min..max as a band. Small and dependency-free. */
  function chartSvg(buckets, start, end, unit) {
    if (!buckets.length) return `<p class="muted">No data in this time range.</p>`;
    const W = 360, H = 160, L = 40, B = 18;
    const lo = Math.min(...buckets.map((b) => b.min)), hi = Math.max(...buckets.map((b) => b.max));
    const span = hi - lo || 1;
    const x = (t) => L + ((t - start) / (end - start)) * (W - L - 4);
    const y = (v) => 6 + (1 - (v - lo) / span) * (H - B - 10);
    const pts = buckets.map((b) => [x(Date.parse(b.ts)), b]);
    const line = pts.map(([px, b]) => `${px.toFixed(1)},${y(b.avg).toFixed(1)}`).join(" ");
    const band = pts.map(([px, b]) => `${px.toFixed(1)},${y(b.max).toFixed(1)}`)
      .concat(pts.slice().reverse().map(([px, b]) => `${px.toFixed(1)},${y(b.min).toFixed(1)}`)).join(" ");
    const t = (ms) => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    return `<svg class="chart" viewBox="0 0 ${W} ${H}" preserveAspectRatio="none" role="img" aria-label="history chart">
      <polygon class="band" points="${band}"/><polyline class="line" points="${line}"/>
      ${pts.length < 20 ? pts.map(([px, b]) => `<circle class="pt" cx="${px.toFixed(1)}" cy="${y(b.avg).toFixed(1)}" r="2"/>`).join("") : ""}
      <text x="2" y="12">${fmtNum(hi)}</text><text x="2" y="${H - B}">${fmtNum(lo)}</text>
      <text x="${L}" y="${H - 4}">${t(start)}</text><text x="${W - 2}" y="${H - 4}" text-anchor="end">${t(end)}</text>
      <text x="2" y="${H / 2}">${esc(unit || "")}</text></svg>`;
  }

  async function loadEvents() {
    const page = state.carPage;
    try {
      const ev = await api(`/vehicles/${page.vin}/events?limit=20`);
      if (state.carPage !== page) return;
      const box = $("car-events");
      if (!ev.data.length) { box.textContent = "No events in the last seven days."; return; }
      box.className = "";
      box.innerHTML = `<table><tbody>${ev.data.map((e) => `<tr><td>${esc(e.type.replace(/_/g, " "))}</td><td class="num">${esc(fmtTime(e.ts))}</td></tr>`).join("")}</tbody></table>`;
    } catch (err) {
      $("car-events").textContent = "Could not load events: " + err.message;
    }
  }

  async function loadCommands() {
    const page = state.carPage;
    const box = $("car-commands");
    try {
      const cmds = await api(`/vehicles/${page.vin}/commands?limit=10`);
      if (state.carPage !== page) return;
      if (!cmds.data.length) { box.textContent = "No commands sent to this car yet."; return; }
      box.className = "";
      box.innerHTML = `<table><tbody>${cmds.data.map((c) => `<tr><td>${esc(c.type)}</td><td><span class="status ${esc(c.status)}">${esc(c.status)}</span>${c.reason_text ? " · " + esc(c.reason_text) : ""}</td><td class="num">${esc(fmtTime(c.created_at))}</td></tr>`).join("")}</tbody></table>`;
    } catch (err) {
      if (err.status === 404) { page.commandsAvailable = false; box.textContent = "This server has no commands API."; }
      else box.textContent = "Could not load commands: " + err.message;
    }
  }

  async function sendCommand(vin, type) {
    const out = $("cmd-progress");
    const buttons = document.querySelectorAll("[data-cmd]");
    buttons.forEach((b) => { b.disabled = true; });
    const label = type.replace("_", " & ");
    out.innerHTML = `${esc(label)}: <span class="status">sending…</span>`;
    out.dataset.status = "sending";
    try {
      let cmd = await api(`/vehicles/${vin}/commands`, {
        method: "POST", headers: { "Content-Type": "application/json", "Idempotency-Key": idempotencyKey() },
        body: JSON.stringify({ type, args: {} }),
      });
      showCommand(out, label, cmd);
      loadCommands();
      while (!FINAL.has(cmd.status) && state.carPage && state.carPage.vin === vin) {
        cmd = await api(`/vehicles/${vin}/commands/${cmd.id}?wait_s=20`);   // long-poll one command
        showCommand(out, label, cmd);
      }
      loadCommands();
      if (cmd.status === "succeeded") loadState();
    } catch (err) {
      out.dataset.status = "error";
      out.innerHTML = err.status === 404 || err.status === 405
        ? `<span class="error">Commands are not available on this server (the commands API is missing or the car is unknown).</span>`
        : `<span class="error">${esc(label)} failed: ${esc(err.message)}</span>`;
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  }

  function showCommand(out, label, cmd) {
    const hint = { queued: "waiting for the car to come online…", sent: "sent, waiting for the car to confirm…" }[cmd.status] || "";
    out.innerHTML = `${esc(label)}: <span class="status ${esc(cmd.status)}">${esc(cmd.status)}</span> ${esc(cmd.reason_text || hint)}`;
    out.dataset.status = cmd.status;
  }

  function idempotencyKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();   // secure contexts only
    const b = new Uint8Array(16); crypto.getRandomValues(b);
    return [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  }

  // --- formatting -------------------------------------------------------------------------

  function esc(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }
  function fmtNum(v) { return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(1) : v.toPrecision(2); }
  function fmtSpeed(v) { return v == null ? "–" : Math.round(v) + " km/h"; }
  function fmtValue(s) {
    const v = s.value;
    if (v == null) return "–";
    const text = typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(Math.abs(v) < 1 ? 4 : 2))
      : Array.isArray(v) ? v.join(", ") || "none" : String(v);
    return s.unit ? text + " " + s.unit : text;
  }
  function fmtAge(s) {
    if (s < 60) return Math.max(0, Math.round(s)) + " s";
    if (s < 3600) return Math.round(s / 60) + " min";
    if (s < 86400) return Math.round(s / 3600) + " h";
    return Math.round(s / 86400) + " d";
  }
  function fmtTime(iso) { return new Date(iso).toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" }); }

  // --- routing and start ------------------------------------------------------------------

  function route() {
    if (!state.token) return;
    const m = location.hash.match(/^#\/car\/([A-Za-z0-9]+)$/);
    if (m) openCar(m[1].toUpperCase()); else closeCar();
  }

  let started = false;
  function start() {
    $("login").hidden = true;
    $("console").hidden = false;
    initMap();
    map.invalidateSize();
    connectLive();
    route();
    if (!started) { started = true; requestAnimationFrame(frame); }
  }

  $("login-form").addEventListener("submit", signIn);
  $("logout").addEventListener("click", () => signOut());
  window.addEventListener("hashchange", route);
  if (state.token) start(); else $("login").hidden = false;
})();
