// Shared helpers for the station's pages. Text goes in with textContent only: nothing a vehicle
// or a request sent is ever parsed as markup.
"use strict";

const pev = (() => {
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function initial(id) {
    return JSON.parse(document.getElementById(id).textContent);
  }

  function watts(w) {
    if (w === null || w === undefined) return "–";
    return w >= 1000 ? (w / 1000).toFixed(2) + " kW" : Math.round(w) + " W";
  }
  function energy(wh) {
    if (wh === null || wh === undefined) return "–";
    return wh >= 1000 ? (wh / 1000).toFixed(2) + " kWh" : wh.toFixed(wh < 10 ? 2 : 1) + " Wh";
  }
  function duration(s) {
    if (s === null || s === undefined || !isFinite(s)) return "–";
    s = Math.max(0, Math.round(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    if (h > 0) return h + " h " + String(m).padStart(2, "0") + " min";
    if (m > 0) return m + " min";
    return s + " s";
  }
  function durationRange(range, s) {
    // "1 h 40 - 2 h 05 min" when the range is wide enough to matter, else the one figure
    if (!Array.isArray(range) || range.length !== 2) return duration(s);
    const lo = Math.round(range[0] / 300) * 300, hi = Math.round(range[1] / 300) * 300;
    if (hi - lo < 600 || hi <= lo) return duration(s);
    const a = duration(lo), b = duration(hi);
    const same = (a.includes(" h ") === b.includes(" h "));
    return (same ? a.replace(/ min$/, "") : a) + " – " + b;
  }
  function pct(p) {
    return p === null || p === undefined ? "–" : Math.round(p) + " %";
  }
  function money(amount, currency) {
    try {
      return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(amount);
    } catch (e) {
      return amount.toFixed(2) + " " + currency;
    }
  }

  async function api(method, url, body, headers) {
    const options = { method, headers: Object.assign({ "Accept": "application/json" }, headers || {}) };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, options);
    } catch (e) {
      return { ok: false, status: 0, data: { error: { message: "The station cannot be reached. Check the connection." } } };
    }
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    return { ok: response.ok, status: response.status, data };
  }

  // A live event stream that comes back by itself after the network drops or the phone sleeps.
  // When the station closes it (a restart, a session it no longer knows, a full house), `closed`
  // is asked first: it resolves to false when there is nothing left to follow.
  function live(url, handlers, onStatus, closed) {
    let source = null, retry = 1000, timer = null, stopped = false;
    function open() {
      if (stopped) return;
      clearTimeout(timer);
      if (source) source.close();
      source = new EventSource(url);
      source.onopen = () => { retry = 1000; onStatus && onStatus(true); };
      source.onerror = async () => {
        onStatus && onStatus(false);
        if (source.readyState !== EventSource.CLOSED) return;
        const again = closed ? await closed() : true;
        if (!again) { stop(); return; }
        timer = setTimeout(open, retry);
        retry = Math.min(retry * 2, 15000);
      };
      for (const [kind, handler] of Object.entries(handlers)) {
        source.addEventListener(kind, (event) => handler(JSON.parse(event.data)));
      }
    }
    function stop() {
      stopped = true;
      clearTimeout(timer);
      if (source) source.close();
    }
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && (!source || source.readyState !== EventSource.OPEN)) open();
    });
    window.addEventListener("online", open);
    open();
    return { reopen: open, stop };
  }

  return { el, initial, watts, energy, duration, durationRange, pct, money, api, live };
})();
