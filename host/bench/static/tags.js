// The bench's tag readers: hold a tag (its UID) to one port's simulated PN532 for a moment.
"use strict";

(() => {
  const { el, api } = pev;
  const $ = (id) => document.getElementById(id);

  async function setUp() {
    const result = await api("GET", "/api/sim/rfid");
    if (!result.ok || !result.data.ports.length) return;
    for (const id of result.data.ports) $("tag-port").append(el("option", { value: id }, "Port " + id));
    $("tag-card").hidden = false;
  }

  $("tag-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const port = $("tag-port").value;
    const result = await api("POST", "/api/sim/ports/" + port + "/tag", { uid: $("tag-uid").value.trim() });
    $("tag-state").textContent = result.ok
      ? "Tag " + result.data.uid + " held to port " + result.data.port + "'s reader for " + result.data.held_s + " s."
      : (result.data && result.data.error ? result.data.error.message : "The bench refused.");
  });

  setUp();
})();
