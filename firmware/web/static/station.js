// The station's touchscreen: every port, the budget, start/stop, and the QR code after start.
"use strict";

(() => {
  const { el, initial, watts, pct, duration, durationRange, api, live } = pev;
  const boot = initial("initial");
  const controls = boot.controls;
  const ports = new Map();
  let summary = boot.station;

  const VEHICLE_NAMES = { ebike: "E-bike", scooter: "E-scooter", onewheel: "Onewheel",
    eskate: "E-skateboard", eunicycle: "E-unicycle", other: "Vehicle" };

  function showError(message) {
    const box = document.getElementById("action-error");
    box.textContent = message;
    box.hidden = !message;
  }

  async function act(url, portId, after) {
    showError("");
    const result = await api("POST", url);
    if (!result.ok) {
      const msg = result.data && result.data.error ? result.data.error.message : "The station refused.";
      showError("Port " + portId + ": " + msg);
      return;
    }
    if (after) after(result.data);
  }

  function showQr(portId, session) {
    const modal = document.getElementById("qr-modal");
    document.getElementById("qr-port").textContent = "Port " + portId;
    document.getElementById("qr-image").src = "/api/sessions/" + encodeURIComponent(session.public_token) + "/qr.svg?owner=1";
    const link = document.getElementById("qr-link");
    link.href = session.owner_url;
    modal.hidden = false;
    document.getElementById("qr-close").focus();
    clearTimeout(showQr.timer);
    showQr.timer = setTimeout(() => { modal.hidden = true; }, 120000);
  }
  document.getElementById("qr-close").addEventListener("click", () => {
    document.getElementById("qr-modal").hidden = true;
  });

  function portCard(p) {
    const v = p.vehicle;
    const s = p.session;
    const title = el("h3", {}, el("span", { text: "Port " + p.id }),
      el("span", { class: "state " + p.state, text: p.state_text }));
    const body = [title];
    if (v) {
      const kind = VEHICLE_NAMES[v.type] || "Vehicle";
      body.push(el("div", { class: "vehicle" }, el("b", { text: kind }),
        v.model ? el("span", { class: "muted", text: " · " + v.model }) : null));
    } else {
      body.push(el("div", { class: "muted", text: "Nothing plugged in" }));
    }
    if (v && v.soc_pct !== undefined && v.soc_pct !== null) {
      body.push(el("div", { class: "bar", role: "progressbar", "aria-label": "State of charge, port " + p.id,
        "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": Math.round(v.soc_pct) },
        el("span", { class: "fill", style: "width:" + Math.max(0, Math.min(100, v.soc_pct)) + "%" }),
        el("span", { class: "label", text: pct(v.soc_pct) })));
    }
    const kv = el("dl", { class: "kv" });
    const add = (k, val) => kv.append(el("dt", { text: k }), el("dd", { text: val }));
    if (p.state === "charging" || p.state === "starting" || p.state === "stopping") {
      add("Granted", watts(p.granted.watts) + " (" + p.granted.amps.toFixed(2) + " A)");
      add("Measured", watts(p.measured.watts) + " · " + p.measured.volts.toFixed(1) + " V");
      if (p.limit_detail) add("Limited by", p.limit_detail);
    }
    if (s) {
      add("Energy", pev.energy(s.energy_wh));
      if (s.live) add("Time left", s.eta_s === null ? "–" : durationRange(s.eta_range_s, s.eta_s));
      if (!s.live && s.end_text) add("Ended", s.end_text);
    }
    if (v && v.temperature_c !== undefined && v.temperature_c !== null) add("Battery", v.temperature_c.toFixed(0) + " °C");
    add("Current set by", p.regulated === "station" ? "the station's power stage" : "the vehicle");
    body.push(kv);
    if (p.fault) body.push(el("p", { class: "alert", role: "alert", text: p.fault.text }));
    if (p.warning && !p.fault) body.push(el("p", { class: "notice", text: p.warning }));
    if (controls) {
      const actions = el("div", { class: "actions" });
      if (p.state === "ready") {
        actions.append(el("button", { type: "button", "data-action": "start", "data-port": p.id,
          onclick: () => act("/api/ports/" + p.id + "/start", p.id, (data) => showQr(p.id, data)) }, "Start"));
      }
      if (s && s.live && ["payment", "waiting", "starting", "charging"].includes(p.state)) {
        actions.append(el("button", { type: "button", class: "secondary", "data-action": "qr",
          onclick: () => showQr(p.id, { public_token: s.public_token, owner_url: "/s/" + s.public_token }) },
          "Show QR"));
        actions.append(el("button", { type: "button", class: "danger", "data-action": "stop", "data-port": p.id,
          onclick: () => act("/api/ports/" + p.id + "/stop", p.id) }, "Stop"));
      }
      if (p.state === "fault") {
        actions.append(el("button", { type: "button", class: "secondary", "data-action": "reset",
          onclick: () => act("/api/ports/" + p.id + "/reset", p.id) }, "Reset fault"));
      }
      if (actions.children.length) body.push(actions);
    }
    return el("article", { class: "card port", id: "port-" + p.id, "data-state": p.state,
      "aria-label": "Port " + p.id }, ...body);
  }

  function renderPort(p) {
    ports.set(p.id, p);
    const card = portCard(p);
    const old = document.getElementById("port-" + p.id);
    if (old) old.replaceWith(card); else document.getElementById("ports").append(card);
  }

  function renderSummary(s) {
    summary = Object.assign(summary || {}, s);
    const budget = Math.max(1, s.budget_w);
    const used = Math.min(100, 100 * s.allocated_w / budget);
    const waiting = Math.min(100 - used, 100 * s.waiting_w / budget);
    document.getElementById("budget-used").style.width = used + "%";
    const w = document.getElementById("budget-waiting");
    w.style.left = used + "%"; w.style.width = waiting + "%";
    document.getElementById("budget-label").textContent = watts(s.allocated_w) + " of " + watts(s.budget_w);
    document.getElementById("budget-bar").setAttribute("aria-label",
      "Power budget: " + watts(s.allocated_w) + " granted of " + watts(s.budget_w));
    document.getElementById("budget-allocated").textContent = watts(s.allocated_w);
    document.getElementById("budget-wait").textContent = watts(s.waiting_w);
    document.getElementById("budget-available").textContent = watts(s.available_w);
    document.getElementById("budget-measured").textContent = watts(s.measured_w);
    const store = document.getElementById("store-error");
    store.hidden = s.store_ok !== false;
    store.textContent = s.store_error ? "Records cannot be written: " + s.store_error + " Charging stays safe." : "";
  }

  const SOURCE_NAMES = { static: "Configured budget", manual: "Set by the operator",
    meter: "Follows the site meter", ocpp: "Set by the central system", fallback: "Fallback budget" };

  // What sets the budget now; a stale meter is shown until readings return.
  function renderBudget(b) {
    const line = document.getElementById("budget-source");
    line.hidden = false;
    line.textContent = (SOURCE_NAMES[b.active] || b.active) + " · " + b.text +
      (b.site_w !== null && b.site_w !== undefined && !b.stale ? " · site " + watts(b.site_w) : "");
    const alert = document.getElementById("budget-fallback");
    alert.hidden = !b.stale;
    const missing = b.kind === "ocpp" ? "No limit from the central system" : "Site meter reading missing";
    alert.textContent = b.stale ? missing + ": the budget is held at " +
      watts(b.fallback_w) + " until readings return." : "";
  }

  const CSMS_WORDS = {
    online: "Central system: connected",
    connecting: "Central system: connecting…",
    pending: "Central system: waiting to be accepted",
    rejected: "Central system: this station was not accepted",
    unauthorized: "Central system: the password was refused",
    offline: "Central system: unreachable. Charging goes on; records are sent when it is back.",
  };

  function renderCsms(link) {
    const node = document.getElementById("csms-link");
    node.hidden = !link;
    if (!link) return;
    node.dataset.state = link.state;
    const waiting = link.queued ? " (" + link.queued + " messages waiting)" : "";
    node.textContent = (CSMS_WORDS[link.state] || "Central system: " + link.state) + waiting;
  }

  function renderAll(snapshot) {
    renderSummary(snapshot);
    renderCsms(snapshot.ocpp);
    if (snapshot.budget) renderBudget(snapshot.budget);
    for (const p of snapshot.ports) renderPort(p);
  }

  renderAll(boot.station);
  live("/api/events", {
    snapshot: renderAll,
    port: renderPort,
    station: renderSummary,
    ocpp: renderCsms,
    budget: renderBudget,
    tag: (t) => showError(t.refused ? t.text : ""),
  }, (ok) => {
    document.getElementById("offline").hidden = ok;
    document.getElementById("link-status").textContent = ok ? "Live" : "Offline";
  });
})();
