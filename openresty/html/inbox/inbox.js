// The inbox page: the receiver's events as they arrive, from the admin listener's own endpoints
// (/tail, /dump-webhooks, /stats, /ack-webhooks). Event content is only ever set as text, never
// as HTML; the page's policy allows no inline script. With a token configured, it is asked for
// once and kept in this tab (sessionStorage); the tail is read with fetch() and a stream, since
// EventSource cannot send an Authorization header.
"use strict";

(function () {
  const PAGE = 100; // events on the first load, and per "older"
  const MAX_ROWS = 2000; // rows kept in the page; older ones are paged in again on demand
  const NOTIFIABLE = new Set(["ERROR", "FAILED", "CANCELLED", "SUCCEEDED", "FULFILLED", "FAILED_PERMANENTLY"]);
  const STATUSES = ["PENDING", "RUNNING", "SUCCEEDED", "FAILED", "ERROR", "CANCELLED", "CANCELLING",
    "PLACED", "BEING_FULFILLED", "FULFILLED", "FAILED_PERMANENTLY", "DOWNLOAD_FAILED"];
  const $ = (id) => document.getElementById(id);
  // Events learnt from UP42's API (up42wh up42 reconcile): their scheme says so; no key of UP42's.
  const LEARNT = "up42-api";

  const events = new Map(); // key (text) -> meta line
  let order = []; // keys, newest first
  let newest = null; // the last key the tail gave, or the newest loaded
  let oldest = null; // where "older" goes on from
  let selected = null;
  let consumers = [];
  let positions = {}; // consumer -> the last key it acknowledged (/stats), for the rows' marks
  let positionNames = []; // its names, sorted once per change rather than once per row
  const samples = []; // [time, {reason: count}] from /stats, for the chart

  function token() {
    return sessionStorage.getItem("up42wh-admin-token");
  }

  function headers(extra) {
    const h = Object.assign({}, extra || {});
    const t = token();
    if (t) h.Authorization = "Bearer " + t;
    return h;
  }

  function setState(text, cls) {
    const s = $("state");
    s.textContent = text;
    s.className = "state " + (cls || "");
  }

  // A request to the admin listener; a 403 asks for the token.
  async function call(path, options) {
    const r = await fetch(path, Object.assign({ cache: "no-store", credentials: "omit" }, options || {},
      { headers: headers((options || {}).headers) }));
    if (r.status === 403) {
      $("token-form").hidden = false;
      setState("needs the admin token", "bad");
      throw new Error("forbidden");
    }
    return r;
  }

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  // `received` is unix seconds.
  function time(seconds) {
    if (!seconds) return "";
    return new Date(seconds * 1000).toLocaleString();
  }

  // The row's words, for the text search: the event as stored plus its envelope.
  function haystack(m) {
    return (JSON.stringify(m.event) + " " + [m.key, m.sender, m.scheme, m.delivery_id].join(" ")).toLowerCase();
  }

  function matches(m) {
    const ev = $("f-event").value, st = $("f-status").value.trim().toUpperCase();
    const live = $("f-live").value, sender = $("f-sender").value.trim().toLowerCase();
    const text = $("f-text").value.trim().toLowerCase();
    if (ev && m.event_type !== ev) return false;
    if (st && (m.status || "").toUpperCase() !== st) return false;
    if (live && String(m.live) !== live) return false;
    if (sender && !(m.sender || "").toLowerCase().includes(sender)) return false;
    if (text && !haystack(m).includes(text)) return false;
    return true;
  }

  // Whether key `a` is at or before key `b`: whole numbers (the journal's store) or Redis entry
  // ids ("ms-seq"); "0" is before everything.
  function atOrBefore(a, b) {
    const p = (x) => String(x).split("-").map((n) => BigInt(n || 0));
    const [ams, aseq = 0n] = p(a), [bms, bseq = 0n] = p(b);
    return ams < bms || (ams === bms && aseq <= bseq);
  }

  // The consumers that have acknowledged key `k`: acknowledging removes nothing from the page.
  function ackedBy(k) {
    return positionNames.filter((n) => atOrBefore(k, positions[n])).join(", ");
  }

  function row(m) {
    const tr = document.createElement("tr");
    tr.dataset.key = String(m.key);
    tr.tabIndex = -1;
    tr.append(el("td", m.key), el("td", time(m.received)), el("td", m.event_type || ""),
      el("td", m.status || "", NOTIFIABLE.has(m.status) ? "notifiable" : ""),
      el("td", m.live === true ? "live" : m.live === false ? "test" : ""),
      el("td", m.sender || ""), el("td", m.scheme ? m.scheme + (m.key_index !== undefined && m.sender !== LEARNT ? " #" + m.key_index : "") : ""),
      el("td", ackedBy(m.key), "acked"));
    tr.addEventListener("click", () => select(String(m.key)));
    return tr;
  }

  // The table from `order`, filtered; the selection kept.
  function render() {
    const body = $("events").tBodies[0];
    const rows = [];
    for (const k of order) {
      const m = events.get(k);
      if (m && matches(m)) rows.push(row(m));
    }
    body.replaceChildren(...rows);
    $("empty").hidden = order.length > 0;
    mark();
  }

  function mark() {
    for (const tr of $("events").tBodies[0].rows) {
      tr.classList.toggle("selected", tr.dataset.key === selected);
    }
  }

  function add(m, atTop) {
    const k = String(m.key);
    if (events.has(k)) return;
    events.set(k, m);
    if (atTop) order.unshift(k); else order.push(k);
    if (order.length > MAX_ROWS) {
      for (const gone of order.splice(MAX_ROWS)) events.delete(gone);
      oldest = order[order.length - 1];
    }
    const ev = m.event_type;
    if (ev && ![...$("f-event").options].some((o) => o.value === ev)) {
      $("f-event").append(new Option(ev, ev));
    }
  }

  function select(k) {
    selected = k;
    mark();
    const m = events.get(k);
    const d = document.querySelector(".detail");
    if (!m) {
      d.hidden = true;
      return;
    }
    d.hidden = false;
    $("d-title").textContent = (m.event_type || "event") + " " + (m.status || "") + " (key " + m.key + ")";
    const dl = $("d-envelope");
    const pairs = [["key", m.key], ["arrived", time(m.received)], ["sender", m.sender], ["verified by", m.scheme],
      ["key index", m.key_index], ["delivery id", m.delivery_id], ["id from", m.delivery_id_from],
      ["live", m.live === undefined ? "" : m.live ? "live" : "test"]];
    dl.replaceChildren(...pairs.flatMap(([n, v]) => [el("dt", n), el("dd", v === undefined ? "" : v)]));
    $("d-json").replaceChildren(tree(m.event, null));
    const tr = [...$("events").tBodies[0].rows].find((r) => r.dataset.key === k);
    if (tr) tr.scrollIntoView({ block: "nearest" });
  }

  // The event as a tree that folds: objects and arrays are <details>, values text.
  function tree(v, name) {
    const label = name === null ? "" : name + ": ";
    if (v !== null && typeof v === "object") {
      const d = document.createElement("details");
      d.open = true;
      const entries = Array.isArray(v) ? v.map((x, i) => [String(i), x]) : Object.entries(v);
      d.append(el("summary", label + (Array.isArray(v) ? "[" + v.length + "]" : "{" + entries.length + "}")));
      for (const [k, x] of entries) d.append(tree(x, Array.isArray(v) ? k : JSON.stringify(k)));
      return d;
    }
    return el("div", label + JSON.stringify(v), "leaf");
  }

  async function copy(text) {
    try {
      await navigator.clipboard.writeText(text);
      setState("copied", "good");
    } catch (e) {
      window.prompt("Copy:", text);
    }
  }

  function shellQuote(s) {
    return "'" + String(s).replace(/'/g, "'\\''") + "'";
  }

  // The newest page, then the tail after it.
  async function load() {
    const r = await call("/dump-webhooks?meta=true&before=9007199254740991&limit=" + PAGE);
    if (!r.ok) throw new Error("dump: " + r.status);
    const lines = (await r.text()).split("\n").filter((l) => l);
    const last = JSON.parse(lines.pop() || "{}");
    for (const l of lines) add(JSON.parse(l), false);
    newest = order.length ? order[0] : null;
    oldest = last.next !== undefined && lines.length === PAGE ? String(last.next) : null;
    $("older").hidden = oldest === null;
    render();
  }

  async function older() {
    if (oldest === null) return;
    const r = await call("/dump-webhooks?meta=true&before=" + encodeURIComponent(oldest) + "&limit=" + PAGE);
    const lines = (await r.text()).split("\n").filter((l) => l);
    const last = JSON.parse(lines.pop() || "{}");
    for (const l of lines) add(JSON.parse(l), false);
    oldest = lines.length === PAGE && last.next !== undefined ? String(last.next) : null;
    $("older").hidden = oldest === null;
    render();
  }

  // The tail as a stream of Server-Sent Events, read with fetch(); reconnects after the last key
  // it saw, waiting longer after each failure (up to 10 s).
  async function tail() {
    let pause = 500;
    for (;;) {
      try {
        const since = newest === null ? "0" : newest;
        const r = await call("/tail?meta=true&since=" + encodeURIComponent(since));
        if (!r.ok || !r.body) throw new Error("tail: " + r.status);
        setState("live", "good");
        pause = 500;
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          // The receiver sends up to 256 events at once: the table is drawn once for them all.
          let cut, arrived = false;
          while ((cut = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, cut);
            buf = buf.slice(cut + 2);
            let kind = "message", data = "";
            for (const line of block.split("\n")) {
              if (line.startsWith("event: ")) kind = line.slice(7);
              else if (line.startsWith("data: ")) data += line.slice(6);
            }
            if (kind === "webhook" && data) {
              const m = JSON.parse(data);
              add(m, true);
              newest = String(m.key);
              arrived = true;
            }
          }
          if (arrived) {
            render();
            statsSoon();
          }
        }
        throw new Error("the tail ended");
      } catch (e) {
        if (e.message === "forbidden") return;
        setState("reconnecting…", "bad");
        await new Promise((ok) => setTimeout(ok, pause));
        pause = Math.min(pause * 2, 10000);
      }
    }
  }

  function drawChart() {
    const svg = $("chart");
    const ns = "http://www.w3.org/2000/svg";
    const perMinute = [];
    for (let i = 1; i < samples.length; i++) {
      const [t0, a] = samples[i - 1], [t1, b] = samples[i];
      let n = 0;
      for (const k of Object.keys(b)) n += b[k] - (a[k] || 0);
      perMinute.push((n * 60000) / Math.max(t1 - t0, 1));
    }
    const max = Math.max(1, ...perMinute);
    const bars = perMinute.slice(-40).map((v, i) => {
      const h = (v / max) * 56;
      const r = document.createElementNS(ns, "rect");
      r.setAttribute("x", String(i * 5));
      r.setAttribute("y", String(58 - h));
      r.setAttribute("width", "4");
      r.setAttribute("height", String(h));
      return r;
    });
    svg.replaceChildren(...bars);
  }

  async function stats() {
    const r = await call("/stats");
    if (!r.ok) return;
    const s = await r.json();
    const c = s.counters || {};
    const refused = {};
    for (const k of Object.keys(c)) if (k.startsWith("rejected_")) refused[k.slice(9)] = c[k];
    samples.push([Date.now(), refused]);
    if (samples.length > 61) samples.shift();
    drawChart();
    const first = samples[0][1];
    $("refusals").replaceChildren(...Object.keys(refused).filter((k) => refused[k] > (first[k] || 0))
      .flatMap((k) => [el("dt", k), el("dd", refused[k] - (first[k] || 0))]));
    const b = s.backlog || {};
    const dicts = s.dicts || {};
    const j = b.journal;
    const pairs = [["stored", c.stored || 0], ["held", b.events], ["oldest key", b.oldest_key],
      ["newest key", b.newest_key],
      ["journal", j ? (j.bytes / 1048576).toFixed(1) + " MiB in " + j.segments + " segments" : undefined]];
    for (const name of Object.keys(dicts)) {
      const d = dicts[name];
      if (d && d.capacity) pairs.push([name + " free", Math.round((100 * d.free) / d.capacity) + " %"]);
    }
    $("backlog").replaceChildren(...pairs.filter(([, v]) => v !== undefined && v !== null)
      .flatMap(([n, v]) => [el("dt", n), el("dd", v)]));
    const cs = s.consumers || {};
    consumers = Object.keys(cs).sort(); // /stats gives them in no particular order
    const was = JSON.stringify(positions);
    positions = s.positions || {};
    if (JSON.stringify(positions) !== was) {
      positionNames = Object.keys(positions).sort();
      render();
    }
    const sel = $("consumer");
    const want = consumers.length ? consumers : [""];
    if (JSON.stringify([...sel.options].map((o) => o.value)) !== JSON.stringify(want)) {
      const keep = sessionStorage.getItem("up42wh-consumer");
      sel.replaceChildren(...want.map((n) => new Option(n || "default (no consumers declared)", n)));
      if (keep && want.includes(keep)) sel.value = keep;
    }
    $("consumers").tBodies[0].replaceChildren(...(consumers.length ? [] : [(() => {
      const tr = document.createElement("tr");
      tr.append(el("td", "none declared (UP42_WEBHOOK_CONSUMERS)", "hint"));
      return tr;
    })()]), ...consumers.map((n) => {
      const tr = document.createElement("tr");
      tr.append(el("td", n), el("td", "at " + cs[n].position), el("td", cs[n].lag + " behind", cs[n].lag ? "notifiable" : ""));
      return tr;
    }));
  }

  // The stats again soon after events arrive, at most every 2 s.
  let statsTimer = null;
  function statsSoon() {
    if (statsTimer) return;
    statsTimer = setTimeout(() => {
      statsTimer = null;
      stats().catch(() => {});
    }, 2000);
  }

  // The forwarder's status, where nginx passes /forward/status to it (README "Look at events");
  // asked again only while it answers.
  let forwarding = true;
  async function forward() {
    if (!forwarding) return;
    try {
      const r = await call("/forward/status");
      if (!r.ok || !(r.headers.get("Content-Type") || "").includes("json")) {
        forwarding = false;
        return;
      }
      const s = await r.json();
      const routes = s.routes || {};
      $("forward").hidden = false;
      $("routes").tBodies[0].replaceChildren(...Object.keys(routes).map((n) => {
        const x = routes[n];
        const tr = document.createElement("tr");
        tr.append(el("td", n), el("td", x.delivered + " delivered"), el("td", (x.retries_pending || 0) + " retrying"),
          el("td", x.dead_lettered + " dead"), el("td", x.circuit || "", x.circuit === "open" ? "notifiable" : ""));
        return tr;
      }));
    } catch (e) {
      /* no forwarder behind this listener */
    }
  }

  async function acknowledge() {
    if (selected === null) return;
    const who = $("consumer").value;
    if (!window.confirm("Acknowledge every event up to key " + selected + (who ? " as " + who : "") + "?")) return;
    const q = "upto=" + encodeURIComponent(selected) + (who ? "&consumer=" + encodeURIComponent(who) : "");
    const r = await call("/ack-webhooks?" + q, { method: "POST" });
    const answer = await r.json().catch(() => ({}));
    if (!r.ok) {
      setState("not acknowledged: " + (answer.msg || r.status), "bad");
      return;
    }
    setState("acknowledged up to " + answer.upto + " as " + answer.consumer, "good");
    await stats(); // the rows' marks move; the events stay until retention removes them
  }

  function move(step) {
    const rows = [...$("events").tBodies[0].rows];
    if (!rows.length) return;
    let i = rows.findIndex((r) => r.dataset.key === selected);
    i = i < 0 ? 0 : Math.min(rows.length - 1, Math.max(0, i + step));
    select(rows[i].dataset.key);
  }

  function wire() {
    for (const s of STATUSES) $("statuses").append(new Option(s, s));
    for (const id of ["f-event", "f-status", "f-live", "f-sender", "f-text"]) $(id).addEventListener("input", render);
    $("older").addEventListener("click", older);
    $("ack").addEventListener("click", acknowledge);
    $("consumer").addEventListener("change", () => sessionStorage.setItem("up42wh-consumer", $("consumer").value));
    $("copy-json").addEventListener("click", () => selected && copy(JSON.stringify(events.get(selected).event)));
    $("copy-curl").addEventListener("click", () => {
      if (!selected) return;
      const url = $("replay-url").value.trim() || "http://localhost:3000/webhooks";
      copy("curl -X POST " + shellQuote(url) + " -H 'Content-Type: application/json' --data-binary " +
        shellQuote(JSON.stringify(events.get(selected).event)));
    });
    $("token-form").addEventListener("submit", (e) => {
      e.preventDefault();
      sessionStorage.setItem("up42wh-admin-token", $("token").value);
      $("token").value = "";
      $("token-form").hidden = true;
      start();
    });
    document.addEventListener("keydown", (e) => {
      const typing = e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement;
      if (e.key === "Escape") {
        if (typing) e.target.blur(); else select(null);
        return;
      }
      if (typing) return;
      if (e.key === "j") move(1);
      else if (e.key === "k") move(-1);
      else if (e.key === "/") {
        e.preventDefault();
        $("f-text").focus();
      } else if (e.key === "Enter" && selected) select(selected);
    });
  }

  let started = false;
  async function start() {
    try {
      await load();
      await stats();
    } catch (e) {
      if (e.message !== "forbidden") setState("cannot read the receiver: " + e.message, "bad");
      return;
    }
    if (started) return;
    started = true;
    tail();
    forward();
    setInterval(() => stats().catch(() => {}), 10000);
    setInterval(() => forward(), 10000);
  }

  wire();
  start();
})();
