// The atoll dashboard: renders /api/state and follows /events (server-sent events).
// Everything shown comes from the server as text and is set with textContent, never as
// HTML: failure reasons and log lines carry what guests wrote.
"use strict";

const MAX_LOG_LINES = 500;

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function ms(v) { return v === null || v === undefined ? "–" : v.toFixed(v < 1 ? 3 : 1) + " ms"; }
function pcts(w) { return w && w.requests > 0 ? [w.p50_ms, w.p90_ms, w.p99_ms].map(ms).join(" / ") : "–"; }
function when(at) { return new Date(at).toLocaleTimeString(); }

function grantsList(g) {
  const ul = el("ul", null, "grants");
  const add = (label, items) => { if (items && items.length) ul.appendChild(el("li", label + ": " + items.join(", "))); };
  add("outbound", g.allowed_outbound_hosts);
  add("key-value", g.key_value_stores);
  add("files", g.files);
  add("config", g.variables);
  add("env", g.environment);
  if (!ul.children.length) ul.appendChild(el("li", "nothing beyond its own memory"));
  return ul;
}

function renderState(s) {
  document.getElementById("uptime").textContent = "up " + s.uptime_s + " s";
  const body = document.querySelector("#components tbody");
  body.replaceChildren();
  let n = 0;
  for (const app of s.apps) {
    for (const c of app.components) {
      n++;
      const t = c.totals || { requests: 0, errors: 0, live: 0, failures: {}, refusals: {} };
      const tr = el("tr");
      tr.dataset.app = app.name;
      tr.dataset.component = c.name;
      tr.appendChild(el("td", app.name + " / " + c.name));
      tr.appendChild(el("td", c.routes.concat(c.cron.map((x) => "cron " + x)).join(", ")));
      const req = el("td", t.requests, "num requests"); tr.appendChild(req);
      tr.appendChild(el("td", t.errors, "num errors" + (t.errors ? " err" : "")));
      const w1 = c.windows["1m"], w5 = c.windows["5m"];
      tr.appendChild(el("td", w1 ? w1.rate.toFixed(1) : "–", "num"));
      tr.appendChild(el("td", pcts(w1), "num"));
      tr.appendChild(el("td", pcts(w5), "num"));
      tr.appendChild(el("td", t.live, "num"));
      const f = t.failures || {};
      const hits = [["timeout", f.timeout], ["memory", f.memory_limit], ["stack", f.stack_overflow], ["node memory", f.node_memory],
        ["trap", f.trap], ["capacity", f.capacity], ["other", f.other], ["cancelled", t.cancelled]]
        .filter(([, v]) => v > 0).map(([k, v]) => k + " " + v).join(", ");
      tr.appendChild(el("td", hits || "–", hits ? "err" : ""));
      const d = Object.entries(t.denials || {}).filter(([, v]) => v > 0).map(([k, v]) => "denied " + k + " " + v).join(", ");
      const r = t.refusals || {};
      const refused = Object.entries(r).filter(([, v]) => v > 0).map(([k, v]) => k + " " + v).join(", ");
      tr.appendChild(el("td", [refused, d].filter(Boolean).join("; ") || "–", "refused"));
      const g = el("td");
      g.appendChild(el("div", "memory " + Math.round(c.limits.memory_bytes / 1048576) + " MiB, timeout " + c.limits.timeout_ms + " ms, " + c.limits.max_concurrency + " at once", "muted"));
      g.appendChild(grantsList(c.grants));
      tr.appendChild(g);
      body.appendChild(tr);
    }
  }
  document.getElementById("no-apps").hidden = n > 0;

  const fbody = document.querySelector("#failures tbody");
  fbody.replaceChildren();
  for (const f of s.recent_failures) {
    const tr = el("tr");
    tr.appendChild(el("td", when(f.at_ms)));
    tr.appendChild(el("td", f.app + " / " + f.component));
    const k = el("td"); k.appendChild(el("span", f.kind, "kind")); tr.appendChild(k);
    tr.appendChild(el("td", f.reason, "reason"));
    fbody.appendChild(tr);
  }
  document.getElementById("no-failures").hidden = s.recent_failures.length > 0;
  document.getElementById("failures-total").textContent = s.failures_total ? "(" + s.failures_total + " since start)" : "";
}

let lastSeq = -1;
function appendLog(line) {
  if (line.seq <= lastSeq) return;
  lastSeq = line.seq;
  const log = document.getElementById("log");
  const stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  const row = el("div");
  row.appendChild(el("span", when(line.at_ms) + " "));
  row.appendChild(el("span", line.level.padEnd(5) + " ", "lvl-" + line.level));
  const who = [line.app, line.component].filter(Boolean).join("/");
  if (who) row.appendChild(el("span", who + ": "));
  row.appendChild(el("span", line.message));
  log.appendChild(row);
  while (log.children.length > MAX_LOG_LINES) log.removeChild(log.firstChild);
  if (stick) log.scrollTop = log.scrollHeight;
}

function connect() {
  const status = document.getElementById("status");
  const events = new EventSource("/events");
  events.addEventListener("open", () => {
    status.textContent = "live";
    status.className = "status live";
    // A new connection (perhaps to a restarted server, numbering from 0) replays the kept lines.
    lastSeq = -1;
    document.getElementById("log").replaceChildren();
  });
  events.addEventListener("error", () => { status.textContent = "reconnecting…"; status.className = "status"; });
  events.addEventListener("state", (e) => renderState(JSON.parse(e.data)));
  events.addEventListener("log", (e) => appendLog(JSON.parse(e.data)));
  events.addEventListener("lagged", (e) => appendLog({ seq: lastSeq + 0.5, at_ms: Date.now(), level: "WARN", message: "(" + e.data + " log lines skipped: the page fell behind)" }));
}

fetch("/api/state").then((r) => r.json()).then(renderState).catch(() => {});
connect();
