// The device simulator: what each virtual vehicle feels inside, and buttons to break it.
"use strict";

(() => {
  const { el, initial, api, pct } = pev;
  const boot = initial("initial");
  const $ = (id) => document.getElementById(id);
  let faults = [];
  let ports = boot.ports;

  function showError(message) {
    $("error").textContent = message || "";
    $("error").hidden = !message;
  }
  function errorOf(result) {
    return result.data && result.data.error ? result.data.error.message : "The bench refused.";
  }

  for (const v of boot.catalog) {
    $("model").append(el("option", { value: v.id }, v.name + " – " + v.v_max + " V, " + v.capacity_wh + " Wh"));
  }
  function describeModel() {
    const v = boot.catalog.find((m) => m.id === $("model").value);
    if (!v) return;
    $("model-info").textContent = v.maker + " · " + v.chemistry + " " + v.cells + " · " + v.v_nom + " V nominal, " +
      v.v_max + " V full · up to " + v.i_max + " A · charges at " + v.temperature_window_c[0] + "–" + v.temperature_window_c[1] + " °C";
  }
  $("model").addEventListener("change", describeModel);
  describeModel();

  function renderPortChoice() {
    const current = $("port").value;
    const select = $("port");
    while (select.firstChild) select.firstChild.remove();
    for (const p of ports) {
      select.append(el("option", { value: p.id, disabled: p.vehicle !== null }, "Port " + p.id + (p.vehicle ? " (busy)" : "")));
    }
    const free = ports.find((p) => p.vehicle === null && String(p.id) === current) || ports.find((p) => p.vehicle === null);
    if (free) select.value = String(free.id);
    $("attach").disabled = !free;
  }

  async function act(method, url, body) {
    showError("");
    const result = await api(method, url, body);
    if (!result.ok) showError(errorOf(result));
    await poll();
    return result;
  }

  function bayCard(p) {
    const v = p.vehicle;
    const head = el("h3", {}, el("span", { text: "Port " + p.id }), el("span", { class: "muted", text: v ? v.bms_state : "empty" }));
    const body = [head];
    if (!v) {
      body.push(el("p", { class: "muted", text: "No vehicle. Serial line for an external vehicle or the console:" }),
        el("code", { text: p.pty || "–" }));
      return el("article", { class: "card", id: "bay-" + p.id }, ...body);
    }
    body.push(el("div", {}, el("b", { class: "vehicle-name", text: v.name })));
    body.push(el("div", { class: "bar", role: "progressbar", "aria-label": "Battery state of charge, port " + p.id,
      "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": Math.round(v.soc_pct) },
      el("span", { class: "fill", style: "width:" + v.soc_pct + "%" }), el("span", { class: "label", text: pct(v.soc_pct) })));
    const kv = el("dl", { class: "kv" });
    const add = (k, val) => kv.append(el("dt", { text: k }), el("dd", { text: val }));
    add("Pack", v.voltage_v.toFixed(2) + " V · " + v.current_a.toFixed(2) + " A");
    add("Grant", v.grant_a.toFixed(2) + " A" + (v.power_on ? " (power on)" : ""));
    add("Temperature", v.temperature_c.toFixed(1) + " °C");
    add("Cells", v.cell_min_v.toFixed(3) + "–" + v.cell_max_v.toFixed(3) + " V (" + v.cells_v.length + ")");
    add("BMS flags", v.bms_flags.length ? v.bms_flags.join(", ") : "none");
    add("Station says", v.station_text || v.station_state || "–");
    if (v.refused) add("Refused", v.refused);
    if (v.faults.length) add("Injected", v.faults.join(", "));
    add("Energy in", v.energy_in_wh.toFixed(2) + " Wh");
    body.push(kv);
    const select = el("select", { "aria-label": "Fault to inject on port " + p.id, id: "fault-" + p.id });
    for (const f of faults) select.append(el("option", { value: f.kind, title: f.description }, f.kind.replace(/_/g, " ")));
    body.push(el("div", { class: "actions" }, select,
      el("button", { type: "button", class: "danger", "data-action": "inject",
        onclick: () => act("POST", "/api/sim/ports/" + p.id + "/fault", { kind: select.value }) }, "Inject fault")));
    body.push(el("div", { class: "actions" },
      el("button", { type: "button", class: "secondary", "data-action": "vehicle-stop",
        onclick: () => act("POST", "/api/sim/ports/" + p.id + "/stop") }, "End from vehicle"),
      el("button", { type: "button", class: "secondary", "data-action": "unplug",
        onclick: () => act("POST", "/api/sim/ports/" + p.id + "/detach") }, "Unplug")));
    return el("article", { class: "card", id: "bay-" + p.id }, ...body);
  }

  function render() {
    renderPortChoice();
    const box = $("bays");
    for (const p of ports) {
      const card = bayCard(p);
      const old = document.getElementById("bay-" + p.id);
      // Keep an open fault menu's choice across refreshes.
      const chosen = old && old.querySelector("select") ? old.querySelector("select").value : null;
      if (old) old.replaceWith(card); else box.append(card);
      if (chosen && card.querySelector("select")) card.querySelector("select").value = chosen;
    }
  }

  async function poll() {
    const result = await api("GET", "/api/sim/ports");
    if (result.ok) { ports = result.data.ports; render(); }
  }

  $("attach-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { model: $("model").value, soc: Number($("soc").value), temperature_c: Number($("temp").value) };
    if ($("name").value.trim()) body.name = $("name").value.trim();
    await act("POST", "/api/sim/ports/" + $("port").value + "/attach", body);
  });
  $("speed").addEventListener("change", () => act("PUT", "/api/sim/speed", { speed: Number($("speed").value) }));

  (async () => {
    const catalog = await api("GET", "/api/sim/catalog");
    if (catalog.ok) faults = catalog.data.faults;
    const speed = await api("GET", "/api/sim/speed");
    if (speed.ok) {
      const value = String(speed.data.speed);
      if (![...$("speed").options].some((o) => o.value === value)) {
        $("speed").append(el("option", { value }, value + "×"));
      }
      $("speed").value = value;
    }
    render();
    setInterval(() => { if (document.visibilityState === "visible") poll(); }, 1000);
  })();
})();
