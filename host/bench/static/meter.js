// The bench's simulated site meter: its reading, a fixed house load, and a drop-out switch.
"use strict";

(() => {
  const { api, watts } = pev;
  const $ = (id) => document.getElementById(id);
  let meter = null;

  function render(m) {
    meter = m;
    $("meter-card").hidden = false;
    $("meter-state").textContent = m.answering
      ? "Answering on " + m.address + ": site import " + watts(m.power_w) +
        (m.house_w === null ? " (house load from the day's profile)" : " (house load fixed at " + watts(m.house_w) + ")")
      : "Not answering: the station should fall back to its safe budget.";
    $("meter-toggle").textContent = m.answering ? "Make the meter drop out" : "Bring the meter back";
  }

  async function refresh() {
    const result = await api("GET", "/api/sim/meter");
    if (result.ok) render(result.data);
  }

  $("meter-toggle").addEventListener("click", async () => {
    const result = await api("PUT", "/api/sim/meter", { answering: !(meter && meter.answering) });
    if (result.ok) render(result.data);
  });
  $("house-set").addEventListener("click", async () => {
    const raw = $("house").value.trim();
    const result = await api("PUT", "/api/sim/meter", { house_w: raw === "" ? null : Number(raw) });
    if (result.ok) render(result.data);
  });

  refresh();
  setInterval(refresh, 2000);
})();
