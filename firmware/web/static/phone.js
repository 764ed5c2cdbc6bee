// The rider's phone page: one session, live, recovering by itself after sleep or a dropped network.
"use strict";

(() => {
  const { el, initial, watts, energy, duration, durationRange, pct, money, api, live } = pev;
  const boot = initial("initial");
  const token = boot.session.public_token;
  const storeKey = "pev-owner-" + token;
  let owner = boot.owner_token || null;
  try {
    if (owner) localStorage.setItem(storeKey, owner); else owner = localStorage.getItem(storeKey);
  } catch (e) { /* private mode: keep it for this page only */ }
  let session = boot.session;
  let port = boot.session.port_view;
  let receipt = boot.receipt;
  let declined = boot.declined || null;

  const $ = (id) => document.getElementById(id);

  function statusWords() {
    const state = port ? port.state : null;
    if (session.live) {
      if (state === "payment") return "Waiting for payment";
      if (state === "waiting") return "Waiting for power – you will start as soon as some frees up";
      if (state === "starting") return "Starting";
      if (state === "stopping") return "Stopping";
      if (state === "charging") {
        if (session.finishing) return "Finishing – the battery is nearly full";
        return "Charging";
      }
      if (state === "fault") return "Stopped: fault";
      return port ? port.state_text : "Charging";
    }
    const reason = session.end_reason;
    if (reason === "full" || reason === "target") return "Complete – " + (session.end_text || "your battery is charged");
    if (reason === "fault") return "Stopped because of a fault";
    if (reason === "interrupted") return "Stopped: the station restarted";
    if (reason === "unknown") return "The station restarted and has no record of this session";
    return "Stopped – " + (session.end_text || "the session has ended");
  }

  function drawCurve(points) {
    const svg = $("curve");
    while (svg.firstChild) svg.firstChild.remove();
    if (!points || points.length < 2) return;
    const t0 = points[0][0], t1 = points[points.length - 1][0];
    const span = Math.max(1, t1 - t0);
    const maxW = Math.max(1, ...points.map((p) => p[1]));
    const ns = "http://www.w3.org/2000/svg";
    const line = (cls, y) => {
      const path = document.createElementNS(ns, "polyline");
      path.setAttribute("class", cls);
      path.setAttribute("points", points.filter((p) => y(p) !== null)
        .map((p) => ((p[0] - t0) / span * 300).toFixed(1) + "," + (100 - y(p)).toFixed(1)).join(" "));
      svg.append(path);
    };
    line("power", (p) => 95 * p[1] / maxW);
    line("soc", (p) => (p[2] >= 0 ? 0.95 * p[2] : null));
  }

  function render() {
    const vehicle = port && port.vehicle;
    const soc = vehicle && vehicle.soc_pct !== undefined ? vehicle.soc_pct : session.soc_end;
    $("status").textContent = statusWords();
    const faultText = (port && port.fault && port.fault.text) || (session.end_reason === "fault" ? session.end_text : null);
    $("fault").hidden = !faultText;
    $("fault").textContent = faultText ? "Fault: " + faultText : "";
    $("warning").hidden = !(port && port.warning && !faultText);
    $("warning").textContent = port && port.warning ? port.warning : "";
    const socValue = soc === null || soc === undefined ? 0 : Math.max(0, Math.min(100, soc));
    $("soc-fill").style.width = socValue + "%";
    $("soc-label").textContent = soc === null || soc === undefined ? "State of charge unknown" : pct(soc) + " charged";
    $("soc-bar").setAttribute("aria-valuenow", Math.round(socValue));
    const charging = session.live && port && port.state === "charging";
    $("power").textContent = charging ? watts(port.measured.watts) : "0 W";
    $("energy").textContent = energy(session.energy_wh);
    $("elapsed").textContent = duration(session.elapsed_s);
    const known = session.live && session.eta_s !== null && session.eta_s !== undefined;
    $("eta").textContent = session.live ? (known ? durationRange(session.eta_range_s, session.eta_s) : "–") : "Done";
    $("eta-reason").hidden = !(known && session.eta_reason);
    $("eta-reason").textContent = known && session.eta_reason ? session.eta_reason : "";
    drawCurve(session.curve);
    $("stop").hidden = !(owner && session.live);
    renderAlerts();
    renderPayment();
    renderReceipt();
    if (!session.live) alertEnd();
  }

  // "Notify me when done": browsers allow notifications only on a secure (https or loopback)
  // origin, and Android's Chrome only through a service worker. Where they are not allowed the
  // page says so and offers what works while it stays open: a sound and a vibration.
  const notifyPossible = window.isSecureContext && "Notification" in window;
  let notified = false; // permission granted: a notification when the charge ends
  let worker = null;
  let alarm = null; // the AudioContext, made on a tap (browsers keep sound locked until one)
  let ended = false;
  let endedText = "";

  function renderAlerts() {
    const denied = notifyPossible && Notification.permission === "denied";
    $("notify").hidden = !(session.live && notifyPossible && !denied && !notified);
    $("alert-here").hidden = !(session.live && !notified && !alarm && !(notifyPossible && !denied));
    let help = "";
    if (endedText) {
      help = endedText;
    } else if (session.live && notified) {
      help = "You will get a notification when the charge ends.";
    } else if (session.live && alarm) {
      help = "When the charge ends this page plays a sound and vibrates; keep it open.";
    } else if (session.live) {
      if (!window.isSecureContext) {
        help = "Notifications need the station's secure (https) address; this page is plain http. " +
          "Keep this page open instead and turn on the sound and vibration when done.";
      } else if (!("Notification" in window)) {
        help = "This browser has no notifications. Keep this page open and turn on the sound and vibration when done.";
      } else if (denied) {
        help = "Notifications are blocked for this page in your browser's settings. " +
          "Keep this page open and turn on the sound and vibration when done instead.";
      }
    }
    $("notify-help").textContent = help;
    $("notify-help").hidden = !help;
  }

  function beep(context, at) {
    const tone = context.createOscillator();
    const gain = context.createGain();
    tone.frequency.value = 880;
    gain.gain.setValueAtTime(0.3, at);
    gain.gain.exponentialRampToValueAtTime(0.001, at + 0.35);
    tone.connect(gain).connect(context.destination);
    tone.start(at);
    tone.stop(at + 0.4);
  }

  async function alertEnd() {
    if (ended || !(notified || alarm)) return;
    ended = true;
    const title = "Charging " + (session.end_reason === "full" ? "complete" : "stopped");
    if (notified && Notification.permission === "granted") {
      const options = { body: statusWords(), data: { url: location.href.split("?")[0] } };
      try {
        if (worker && worker.showNotification) await worker.showNotification(title, options);
        else new Notification(title, options);
      } catch (e) { /* the sound below still tells */ }
    }
    if (alarm) {
      try { for (let i = 0; i < 3; i++) beep(alarm, alarm.currentTime + i * 0.5); } catch (e) { /* no sound */ }
      if (navigator.vibrate) navigator.vibrate([300, 150, 300, 150, 300]);
      $("alert-here").dataset.alerted = "1";
    }
    endedText = title + ".";
    renderAlerts();
  }

  function renderPayment() {
    const pay = boot.payment;
    const waiting = session.live && port && port.state === "payment";
    $("payment").hidden = !(pay && waiting);
    if (!pay) return;
    $("payment-terms").textContent = money(pay.price_per_kwh, pay.currency) + " per kWh plus a " +
      money(pay.session_fee, pay.currency) + " session fee. We hold " + money(pay.preauth_amount, pay.currency) +
      " on your card and charge only what you use.";
    $("pay-form").hidden = !owner;
    $("pay-how").hidden = !owner;
    $("pay-not-owner").hidden = !!owner;
    if (declined && waiting && owner) {
      $("pay-error").textContent = declined + " You can try again with another card.";
      $("pay-error").hidden = false;
    }
  }

  function renderReceipt() {
    const table = $("receipt-table");
    $("receipt").hidden = !receipt;
    if (!receipt) return;
    while (table.firstChild) table.firstChild.remove();
    const row = (k, v) => table.append(el("tr", {}, el("th", { scope: "row", text: k }), el("td", { text: v })));
    row("Card", "•••• " + receipt.card_last4);
    row("Held", money(receipt.authorised, receipt.currency));
    if (receipt.status === "authorised") {
      row("Status", "Authorised – you pay for the energy when the session ends");
    } else {
      row("Energy", receipt.energy_kwh.toFixed(3) + " kWh × " + money(receipt.price_per_kwh, receipt.currency));
      row("Energy cost", money(receipt.energy_cost, receipt.currency));
      row("Session fee", money(receipt.session_fee, receipt.currency));
      row("Total charged", money(receipt.total, receipt.currency));
      row("Status", receipt.status === "captured" ? "Paid" : "Payment failed – the operator will contact you");
    }
    row("Reference", receipt.reference);
  }

  function showStoreError(error) {
    $("store-error").hidden = !error;
    $("store-error").textContent = error ? "The station cannot write its records right now (" + error + "). Your charge goes on." : "";
  }

  // The stream was closed by the station: is there still a live session to follow?
  async function stillLive() {
    const result = await api("GET", "/api/sessions/" + encodeURIComponent(token));
    if (result.status === 404) {
      session = Object.assign({}, session, { live: false, end_reason: "unknown", eta_s: null });
      port = null;
    } else if (result.ok) {
      if (result.data.port_view) port = result.data.port_view; else if (!result.data.live) port = null;
      session = Object.assign({}, session, result.data);
    } else {
      return true; // cannot tell yet: keep trying
    }
    render();
    if (!session.live) { $("offline").hidden = true; $("link-status").textContent = "Ended"; }
    return session.live;
  }

  async function refresh() {
    const result = await api("GET", "/api/sessions/" + encodeURIComponent(token));
    if (result.ok) {
      const data = result.data;
      if (data.port_view) port = data.port_view;
      session = Object.assign({}, session, data);
      if (!session.live && boot.payment && owner) {
        const r = await api("GET", "/api/sessions/" + encodeURIComponent(token) + "/receipt", undefined, { "X-Owner-Token": owner || "" });
        if (r.ok) receipt = r.data;
      }
      render();
    }
  }

  function onPort(view) {
    port = view;
    if (view.session && view.session.public_token === token) {
      session = Object.assign({}, session, view.session);
      if (!view.session.live) refresh();
    } else if (session.live && view.session === null) {
      refresh();
    }
    render();
  }

  $("stop").addEventListener("click", async () => {
    $("action-error").hidden = true;
    const result = await api("POST", "/api/sessions/" + encodeURIComponent(token) + "/stop", {}, { "X-Owner-Token": owner });
    if (!result.ok) {
      $("action-error").textContent = result.data && result.data.error ? result.data.error.message : "The station refused.";
      $("action-error").hidden = false;
    }
  });

  $("notify").addEventListener("click", async () => {
    const permission = await Notification.requestPermission();
    if (permission === "granted") {
      notified = true;
      if ("serviceWorker" in navigator) {
        try { worker = await navigator.serviceWorker.register("/sw.js"); } catch (e) { worker = null; }
      }
    }
    render();
  });

  $("alert-here").addEventListener("click", () => {
    const Context = window.AudioContext || window.webkitAudioContext;
    try { alarm = Context ? new Context() : {}; if (alarm.resume) alarm.resume(); } catch (e) { alarm = {}; }
    render();
  });

  // Payment is a hosted checkout: the station answers with the provider's page, which takes the
  // card and sends the rider back here; the receipt then comes from the station.
  $("pay-button").addEventListener("click", async () => {
    $("pay-error").hidden = true;
    $("pay-button").disabled = true;
    const result = await api("POST", "/api/sessions/" + encodeURIComponent(token) + "/checkout",
      {}, { "X-Owner-Token": owner || "" });
    $("pay-button").disabled = false;
    if (!result.ok || !result.data.checkout_url) {
      $("pay-error").textContent = result.data && result.data.error ? result.data.error.message : "The payment could not be opened.";
      $("pay-error").hidden = false;
      return;
    }
    window.location.assign(result.data.checkout_url);
  });

  $("viewer-url").value = boot.viewer_url;
  $("viewer-note").textContent = owner
    ? "Send this read-only link to someone who wants to watch; it cannot stop the charge."
    : "This is a read-only link: it shows the charge but cannot stop it.";

  // Back from the provider's page (the return address carries no owner token): ask the station
  // how the payment stands.
  async function paymentStatus() {
    const r = await api("GET", "/api/sessions/" + encodeURIComponent(token) + "/payment", undefined, { "X-Owner-Token": owner });
    if (!r.ok) return;
    receipt = r.data.receipt || receipt;
    declined = r.data.declined;
    render();
  }

  render();
  if (boot.payment && owner && session.live) paymentStatus();
  setInterval(() => { if (session.live) { session.elapsed_s += 1; $("elapsed").textContent = duration(session.elapsed_s); } }, 1000);
  showStoreError(boot.store_error);
  const stream = live("/api/sessions/" + encodeURIComponent(token) + "/events", {
    snapshot: (snap) => {
      showStoreError(snap.store_error);
      if (snap.boot && boot.boot && snap.boot !== boot.boot) { stillLive(); return; }
      if (snap.ports.length) onPort(snap.ports[0]);
    },
    station: (summary) => showStoreError(summary.store_error),
    port: onPort,
  }, (ok) => {
    if (!session.live && !ok) return;
    $("offline").hidden = ok;
    $("link-status").textContent = ok ? "Live" : "Offline";
    if (ok) refresh();
  }, stillLive);
  if (!session.live) stream.stop();
})();
