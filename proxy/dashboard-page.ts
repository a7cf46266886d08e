import { createHash } from "node:crypto";
import type { ServerResponse } from "node:http";

/**
 * The live dashboard at the admin's `GET /`: one self-contained page (inline CSS and script, no
 * build step, no CDN, system fonts) that fetches `dashboard.json` every second and renders it.
 * Every value goes into the DOM through textContent or setAttribute, never as markup, and the
 * Content-Security-Policy allows only this page's own script and style (by hash) and requests to
 * the admin API itself.
 */

// No backslashes, backticks or dollar-braces in STYLE and SCRIPT: they are template literals.
const STYLE = `
:root {
  --bg: #f6f7f9; --panel: #fff; --text: #1d232b; --muted: #68717d; --line: #e3e6ea;
  --ok: #1f8f4e; --ok-bg: #e3f5ea; --warn: #a86400; --warn-bg: #fdf0d9;
  --bad: #c4312b; --bad-bg: #fbe3e1; --accent: #2f6fdf; --spark: #2f6fdf;
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #14171b; --panel: #1c2026; --text: #e3e7ec; --muted: #8d96a1; --line: #2c323a;
    --ok: #4cc27c; --ok-bg: #173524; --warn: #e0a43c; --warn-bg: #3a2c12;
    --bad: #f0706a; --bad-bg: #40201e; --accent: #6f9ff5; --spark: #6f9ff5;
  }
}
* { box-sizing: border-box; }
body {
  margin: 0; background: var(--bg); color: var(--text);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
}
header {
  display: flex; flex-wrap: wrap; align-items: center; gap: 8px 18px;
  padding: 12px 24px; background: var(--panel); border-bottom: 1px solid var(--line);
}
header h1 { margin: 0; font-size: 18px; letter-spacing: .02em; }
header .meta { color: var(--muted); font-size: 13px; }
header .meta b { color: var(--text); font-weight: 600; }
#updated { margin-left: auto; }
main { padding: 18px 24px 32px; max-width: 1280px; }
.alert {
  margin: 0 0 14px; padding: 8px 12px; border-radius: 6px;
  background: var(--bad-bg); color: var(--bad); font-weight: 600;
}
.hidden { display: none; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px; }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .05em; }
.card .value { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .sub { color: var(--muted); font-size: 12px; overflow-wrap: anywhere; }
.card.config .value { font-family: var(--mono); font-size: 17px; padding-top: 4px; }
.card .sub.bad { color: var(--bad); }
h2 { font-size: 15px; margin: 24px 0 8px; }
h2 .count { color: var(--muted); font-weight: 400; }
table {
  width: 100%; border-collapse: collapse; background: var(--panel);
  border: 1px solid var(--line); border-radius: 8px; overflow: hidden;
}
th, td { padding: 6px 10px; text-align: left; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { font-size: 12px; color: var(--muted); font-weight: 600; text-transform: uppercase; letter-spacing: .04em; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:last-child td { border-bottom: 0; }
tr.service td { background: color-mix(in srgb, var(--bg) 55%, var(--panel)); font-weight: 600; }
tr.endpoint td:first-child { padding-left: 28px; font-family: var(--mono); font-size: 13px; font-weight: 400; }
td.mono { font-family: var(--mono); font-size: 13px; }
td.muted, span.muted { color: var(--muted); font-weight: 400; }
.pill { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px; font-weight: 600; }
.pill.ok { color: var(--ok); background: var(--ok-bg); }
.pill.warn { color: var(--warn); background: var(--warn-bg); }
.pill.bad { color: var(--bad); background: var(--bad-bg); }
.pill.none { color: var(--muted); background: var(--bg); }
.err-warn { color: var(--warn); }
.err-bad { color: var(--bad); font-weight: 600; }
.flag { font-family: var(--mono); font-size: 12px; margin-right: 8px; }
.flag b { color: var(--bad); }
svg.spark { vertical-align: middle; margin-right: 8px; }
svg.spark polyline { fill: none; stroke: var(--spark); stroke-width: 1.5; }
svg.spark polygon { fill: var(--spark); opacity: .15; stroke: none; }
footer { color: var(--muted); font-size: 12px; margin-top: 18px; }
footer a { color: var(--accent); }
`;

// Plain ES2020 that runs as is in any current browser.
const SCRIPT = `
"use strict";
(function () {
  var renders = 0;
  var failures = 0;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function cell(row, text, className) {
    var td = el("td", className, text);
    row.appendChild(td);
    return td;
  }
  function byId(id) { return document.getElementById(id); }
  function setText(id, text) { byId(id).textContent = String(text); }

  function rate(n) {
    if (n === 0) return "0/s";
    if (n < 10) return n.toFixed(2) + "/s";
    if (n < 1000) return n.toFixed(1) + "/s";
    return Math.round(n).toLocaleString("en-US") + "/s";
  }
  function percent(r) {
    if (r === 0) return "0%";
    var p = r * 100;
    return (p < 10 ? p.toFixed(1) : Math.round(p)) + "%";
  }
  function errorClass(r) { return r === 0 ? "num muted" : r >= 0.05 ? "num err-bad" : "num err-warn"; }
  function ms(n) {
    if (n === null || n === undefined) return "–";
    if (n < 1) return n.toFixed(2) + " ms";
    if (n < 100) return n.toFixed(1) + " ms";
    if (n < 1000) return Math.round(n) + " ms";
    return (n / 1000).toFixed(2) + " s";
  }
  function duration(seconds) {
    var s = Math.floor(seconds);
    var d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    if (d > 0) return d + "d " + h + "h";
    if (h > 0) return h + "h " + m + "m";
    if (m > 0) return m + "m " + (s % 60) + "s";
    return s + "s";
  }
  function clock(iso) {
    var date = new Date(iso);
    return isNaN(date.getTime()) ? "–" : date.toLocaleTimeString("en-GB");
  }
  function healthClass(status) {
    if (status === "HEALTHY") return "pill ok";
    if (status === "DEGRADED") return "pill warn";
    if (status === "UNHEALTHY") return "pill bad";
    return "pill none";
  }

  function flags(td, counts) {
    var names = Object.keys(counts).sort();
    if (names.length === 0) { td.textContent = "–"; td.className = "muted"; return; }
    names.forEach(function (name) {
      var span = el("span", "flag", name + " ");
      span.appendChild(el("b", null, counts[name]));
      td.appendChild(span);
    });
  }

  var SVG = "http://www.w3.org/2000/svg";
  function sparkline(values) {
    var width = 90, height = 22, max = 1;
    values.forEach(function (v) { if (v > max) max = v; });
    var step = width / Math.max(1, values.length - 1);
    var points = values.map(function (v, i) {
      return (i * step).toFixed(1) + "," + (height - 1 - (v / max) * (height - 3)).toFixed(1);
    });
    var svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "spark");
    svg.setAttribute("width", String(width));
    svg.setAttribute("height", String(height));
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    var area = document.createElementNS(SVG, "polygon");
    area.setAttribute("points", "0," + height + " " + points.join(" ") + " " + width + "," + height);
    var line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", points.join(" "));
    svg.appendChild(area);
    svg.appendChild(line);
    var title = document.createElementNS(SVG, "title");
    title.textContent = "requests per second, last minute (peak " + max + ")";
    svg.appendChild(title);
    return svg;
  }

  function trafficCells(row, minute, withSpark) {
    var rateCell = cell(row, null, "num rate");
    // Whole seconds only: the current one is still filling and would always read as a dip.
    if (withSpark && minute.perSecond) rateCell.appendChild(sparkline(minute.perSecond.slice(0, -1)));
    rateCell.appendChild(document.createTextNode(rate(minute.requestsPerSecond)));
    var err = cell(row, percent(minute.errorRate), errorClass(minute.errorRate) + " errors");
    if (minute.errors > 0) err.title = minute.errors + " of " + minute.requests + " in the window";
    cell(row, ms(minute.p50Ms), "num p50");
    cell(row, ms(minute.p99Ms), "num p99");
    flags(cell(row, null, "flags"), minute.responseFlags);
  }

  function renderListeners(listeners) {
    var body = byId("listeners");
    body.replaceChildren();
    listeners.forEach(function (l) {
      var row = el("tr");
      cell(row, l.name);
      cell(row, l.kind);
      cell(row, l.address + ":" + l.port, "mono");
      body.appendChild(row);
    });
    setText("listener-count", "(" + listeners.length + ")");
  }

  function renderServices(services) {
    var body = byId("services");
    body.replaceChildren();
    if (services.length === 0) {
      var empty = el("tr");
      cell(empty, "no services configured or discovered yet", "muted").colSpan = 8;
      body.appendChild(empty);
    }
    services.forEach(function (s) {
      var healthy = s.endpoints.filter(function (e) { return e.health.status === "HEALTHY"; }).length;
      var row = el("tr", "service");
      row.setAttribute("data-service", s.name);
      cell(row, s.name, "name");
      var pill = el("span", healthy === s.endpoints.length && healthy > 0 ? "pill ok" : healthy > 0 ? "pill warn" : "pill bad",
        s.endpoints.length === 0 ? "no endpoints" : healthy + "/" + s.endpoints.length + " healthy");
      cell(row, null, "health").appendChild(pill);
      trafficCells(row, s.lastMinute, true);
      cell(row, s.activeRequests + " active", "num muted");
      body.appendChild(row);
      s.endpoints.forEach(function (e) {
        var er = el("tr", "endpoint");
        er.setAttribute("data-endpoint", e.address);
        cell(er, e.address, "name");
        var hp = el("span", healthClass(e.health.status), e.health.status);
        var why = e.health.flags.map(function (f) {
          return f.source + ": " + f.reason + (f.until ? " until " + f.until.slice(11, 19) + " UTC" : "");
        }).join("; ");
        if (why !== "") hp.title = why;
        var hc = cell(er, null, "health");
        hc.appendChild(hp);
        // The reason and until-when in words, not only on hover: an ejection is what one looks for.
        if (why !== "") hc.appendChild(el("span", "muted why", " " + why));
        trafficCells(er, e.lastMinute, false);
        var c = e.connections;
        cell(er, c.open + " open, " + c.idle + " idle", "num muted");
        body.appendChild(er);
      });
    });
    setText("service-count", "(" + services.length + ")");
  }

  function render(d) {
    var state = byId("state");
    state.textContent = d.server.state;
    state.className = d.server.state === "LIVE" ? "pill ok" : d.server.state === "DRAINING" ? "pill warn" : "pill bad";
    setText("uptime", duration(d.server.uptimeSeconds));
    setText("node", d.server.node);
    setText("pid", d.server.pid);
    setText("updated", "updated " + clock(d.generatedAt));

    setText("total-rate", rate(d.total.requestsPerSecond));
    setText("total-requests", d.total.requests + " requests in " + Math.round(d.window.spanSeconds) + " s");
    var totalErrors = byId("total-errors");
    totalErrors.textContent = percent(d.total.errorRate);
    totalErrors.className = "value " + (d.total.errorRate === 0 ? "" : d.total.errorRate >= 0.05 ? "err-bad" : "err-warn");
    var totalFlags = Object.keys(d.total.responseFlags).sort().map(function (f) {
      return f + " " + d.total.responseFlags[f];
    });
    setText("total-error-count", d.total.errors + " errors" + (totalFlags.length ? " · " + totalFlags.join(", ") : ""));
    setText("total-p50", ms(d.total.p50Ms));
    setText("total-p99", ms(d.total.p99Ms));
    setText("connections", d.downstream.connections);
    setText("config-hash", d.config.hash);
    var r = d.config.reloads;
    setText("config-applied", "applied " + clock(d.config.appliedAt) + " · reloads " + r.ok + " ok, " + r.failed + " failed");
    var lastError = byId("config-error");
    lastError.textContent = r.lastError ? "last reload failed: " + r.lastError : "";
    lastError.className = r.lastError ? "sub bad" : "sub hidden";

    renderListeners(d.listeners);
    renderServices(d.services);
    document.title = "remora · " + d.server.state;
    renders++;
    document.body.setAttribute("data-renders", String(renders));
  }

  function tick() {
    fetch("dashboard.json", { cache: "no-store" })
      .then(function (res) {
        if (!res.ok) throw new Error("GET dashboard.json answered " + res.status);
        return res.json();
      })
      .then(function (d) {
        failures = 0;
        byId("alert").className = "alert hidden";
        render(d);
      })
      .catch(function (error) {
        failures++;
        var alert = byId("alert");
        alert.textContent = "The admin API is not answering (" + error.message + "); retrying every second.";
        alert.className = "alert";
      })
      .finally(function () { setTimeout(tick, 1000); });
  }
  tick();
})();
`;

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>remora</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>
<header>
  <h1>remora</h1>
  <span id="state" class="pill none">…</span>
  <span class="meta">up <b id="uptime">–</b></span>
  <span class="meta">Node <b id="node">–</b></span>
  <span class="meta">pid <b id="pid">–</b></span>
  <span class="meta" id="updated">loading…</span>
</header>
<main>
  <div id="alert" class="alert hidden"></div>
  <section class="cards">
    <div class="card"><div class="label">Requests</div><div class="value" id="total-rate">–</div><div class="sub" id="total-requests"></div></div>
    <div class="card"><div class="label">Errors</div><div class="value" id="total-errors">–</div><div class="sub" id="total-error-count"></div></div>
    <div class="card"><div class="label">Latency p50</div><div class="value" id="total-p50">–</div><div class="sub">last minute</div></div>
    <div class="card"><div class="label">Latency p99</div><div class="value" id="total-p99">–</div><div class="sub">last minute</div></div>
    <div class="card"><div class="label">Connections</div><div class="value" id="connections">–</div><div class="sub">downstream, open now</div></div>
    <div class="card config"><div class="label">Config</div><div class="value" id="config-hash">–</div><div class="sub" id="config-applied"></div><div class="sub hidden" id="config-error"></div></div>
  </section>
  <h2>Services <span class="count" id="service-count"></span></h2>
  <table>
    <thead><tr><th>Service / endpoint</th><th>Health</th><th class="num">Requests</th><th class="num">Errors</th><th class="num">p50</th><th class="num">p99</th><th>Response flags</th><th class="num">Load</th></tr></thead>
    <tbody id="services"></tbody>
  </table>
  <h2>Listeners <span class="count" id="listener-count"></span></h2>
  <table>
    <thead><tr><th>Name</th><th>Kind</th><th>Address</th></tr></thead>
    <tbody id="listeners"></tbody>
  </table>
  <footer>Rates, errors and latency cover the last minute and refresh every second, from
    <a href="dashboard.json">dashboard.json</a>. Errors are 5xx responses and exchanges with a
    response flag. See also <a href="clusters">/clusters</a> and <a href="config_dump">/config_dump</a>.</footer>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;

function sha256(text: string): string {
  return `'sha256-${createHash("sha256").update(text).digest("base64")}'`;
}

/** Only this page's own script and style, and requests to the admin API that served it. */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  `script-src ${sha256(SCRIPT)}`,
  `style-src ${sha256(STYLE)}`,
  "connect-src 'self'",
  "img-src data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const BODY = Buffer.from(PAGE);

export function sendDashboardPage(res: ServerResponse): void {
  res.writeHead(200, {
    "content-type": "text/html; charset=utf-8",
    "content-length": BODY.length,
    "content-security-policy": DASHBOARD_CSP,
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
  });
  res.end(BODY);
}
