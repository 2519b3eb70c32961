/**
 * The web dashboard the control endpoint serves at `GET /`: one self-contained HTML page (inline
 * CSS and script, nothing fetched from elsewhere — its Content-Security-Policy forbids it) that
 * polls `GET /status` every second, keeps the last two minutes of answers in memory and draws, for
 * mpclient, live charts of each path's round trip, loss and throughput, the path table and the
 * drops; for mpserver, the traffic charts, the session list and the drops. When `/status` stops
 * answering it says "disconnected", keeps the last answer on screen and keeps retrying.
 *
 * What the page computes and draws is `lib/ops/dashboard/` (listed in `lib/ops/dashboard_logic.ts`),
 * tested in Deno; this module inlines that code's source into the page together with the few lines
 * that poll and paint.
 */

import * as dashboardLogic from "./dashboard_logic.ts";

/** How often the page polls `/status`. */
export const DASHBOARD_REFRESH_INTERVAL_MS = 1000;
/** How many answers the page keeps, and each chart spans (two minutes at one a second). */
export const DASHBOARD_HISTORY_SAMPLES = 121;
/** The server's session table lists at most this many sessions, the most recently active. */
export const DASHBOARD_MAX_LISTED_SESSIONS = 50;
/** A poll that has not answered after this long counts as failed. */
const FETCH_TIMEOUT_MS = 2500;

/**
 * The JavaScript of every function `lib/ops/dashboard_logic.ts` exports, as declarations. Deno has
 * already compiled the TypeScript away, so `toString()` gives code a browser runs.
 */
export const DASHBOARD_LOGIC_SOURCE: string = Object.entries(dashboardLogic)
  .map(([name, exported]) => {
    const source = typeof exported === "function" ? exported.toString() : "";
    if (!source.startsWith(`function ${name}(`)) {
      throw new Error(`dashboard_logic.ts: ${name} must be a plain function declaration`);
    }
    return source;
  })
  .join("\n\n");

/** The poll-and-paint loop: the page's only code that touches the DOM, the network or the clock. */
const PAGE_SCRIPT = `
const REFRESH_INTERVAL_MS = ${DASHBOARD_REFRESH_INTERVAL_MS};
const HISTORY_SAMPLES = ${DASHBOARD_HISTORY_SAMPLES};
const FETCH_TIMEOUT_MS = ${FETCH_TIMEOUT_MS};
const MAX_LISTED_SESSIONS = ${DASHBOARD_MAX_LISTED_SESSIONS};
const history = [];
let lastError = null;
let refreshes = 0;

function describeFailure(error) {
  if (error && error.name === "TimeoutError") return "no answer within " + formatMs(FETCH_TIMEOUT_MS);
  if (error instanceof TypeError) return "connection failed";
  if (error instanceof SyntaxError) return "the answer is not JSON";
  return String(error && error.message ? error.message : error);
}

function paint() {
  const view = {
    history,
    capacity: HISTORY_SAMPLES,
    refreshIntervalMs: REFRESH_INTERVAL_MS,
    nowMs: Date.now(),
    error: lastError,
    maxListedSessions: MAX_LISTED_SESSIONS,
  };
  const root = document.getElementById("dashboard");
  try {
    root.innerHTML = renderDashboard(view);
    document.title = dashboardTitle(view);
  } catch (error) {
    console.error(error);
    root.innerHTML = '<div class="banner" role="alert"><b>Cannot show this status</b> — ' +
      escapeHtml(error) + "</div>";
  }
  refreshes += 1;
  document.body.dataset.refreshes = String(refreshes);
  document.body.dataset.connected = String(lastError === null);
}

async function poll() {
  const startedAtMs = Date.now();
  try {
    const response = await fetch("status", {
      cache: "no-store",
      headers: { accept: "application/json" },
      signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
    });
    if (!response.ok) throw new Error("HTTP " + response.status + " " + response.statusText);
    const status = await response.json();
    history.push({ atMs: Date.now(), status: trimForHistory(status, MAX_LISTED_SESSIONS) });
    lastError = null;
  } catch (error) {
    history.push({ atMs: Date.now(), status: null });
    lastError = describeFailure(error);
  }
  while (history.length > HISTORY_SAMPLES) history.shift();
  paint();
  setTimeout(poll, Math.max(0, REFRESH_INTERVAL_MS - (Date.now() - startedAtMs)));
}

paint();
poll();
`;

const STYLE = `
:root {
  color-scheme: light dark;
  --bg: #f3f5f8; --card: #ffffff; --text: #18212c; --muted: #5c6875; --line: #dce2e9;
  --grid: #edf0f4; --head: #f7f9fb;
  --good: #17803a; --good-bg: #daf3e1; --bad: #c0262d; --bad-bg: #fde3e2;
  --warn: #935f00; --warn-bg: #fff0c4; --grey: #525c67; --grey-bg: #e7eaee;
  --c0: #1f6feb; --c1: #8a4fdb; --c2: #e0620a;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0f1419; --card: #171d25; --text: #e4eaf0; --muted: #93a0ad; --line: #2c3540;
    --grid: #222a33; --head: #1c232c;
    --good: #4cc26b; --good-bg: #133d22; --bad: #ff7b72; --bad-bg: #4a1d1d;
    --warn: #e3b341; --warn-bg: #3d2f0a; --grey: #a9b4bf; --grey-bg: #2a323c;
    --c0: #58a6ff; --c1: #bc8cff; --c2: #ff9a4d;
  }
}
* { box-sizing: border-box; }
body {
  margin: 0; background: var(--bg); color: var(--text);
  font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans", sans-serif;
  font-variant-numeric: tabular-nums;
}
#dashboard { max-width: 1240px; margin: 0 auto; padding: 16px 20px 32px; }
header { margin-bottom: 14px; }
.title-row { display: flex; align-items: center; gap: 12px; flex-wrap: wrap; }
h1 { font-size: 24px; margin: 0; letter-spacing: -0.01em; }
h1 small { font-size: 15px; font-weight: 500; color: var(--muted); }
h2 { font-size: 15px; margin: 0 0 10px; text-transform: uppercase; letter-spacing: 0.06em;
  color: var(--muted); }
h3 { font-size: 16px; margin: 0 0 8px; display: flex; align-items: center; gap: 8px;
  flex-wrap: wrap; }
h3 .sub { margin-left: auto; }
.facts { display: flex; gap: 8px; flex-wrap: wrap; margin-top: 8px; }
.chip { display: inline-block; padding: 3px 10px; border-radius: 999px; background: var(--card);
  border: 1px solid var(--line); font-size: 13px; white-space: nowrap; }
.chip.good { color: var(--good); background: var(--good-bg); border-color: transparent;
  font-weight: 600; }
.chip.bad { color: var(--bad); background: var(--bad-bg); border-color: transparent;
  font-weight: 600; }
.chip.warn { color: var(--warn); background: var(--warn-bg); border-color: transparent;
  font-weight: 600; }
.updated { color: var(--muted); font-size: 13px; }
.banner { background: var(--bad-bg); color: var(--bad); border-radius: 8px; padding: 10px 14px;
  margin-bottom: 14px; font-size: 15px; }
main.stale { opacity: 0.55; filter: grayscale(0.6); }
.waiting { color: var(--muted); font-size: 16px; padding: 40px 0; text-align: center; }
.tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(190px, 1fr)); gap: 12px;
  margin-bottom: 14px; }
.tile, .card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; }
.tile { padding: 10px 14px; border-top: 4px solid var(--line); }
.tile.good { border-top-color: var(--good); }
.tile.warn { border-top-color: var(--warn); }
.tile.bad { border-top-color: var(--bad); }
.tile-label { color: var(--muted); font-size: 13px; }
.tile-value { font-size: 22px; font-weight: 650; margin: 2px 0; white-space: nowrap; }
.tile-detail { color: var(--muted); font-size: 12px; }
.card { padding: 12px 16px; margin-bottom: 14px; }
.path-cards { display: grid; gap: 14px; margin-bottom: 14px; }
.path-cards .card, .overview-row .card { margin-bottom: 0; }
.overview-row { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 14px;
  margin-bottom: 14px; }
@media (max-width: 900px) { .overview-row { grid-template-columns: minmax(0, 1fr); } }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr));
  gap: 14px 22px; }
/* Charts side by side line up their plots even when one caption wraps. */
.chart { margin: 0; min-width: 0; display: flex; flex-direction: column; }
.chart figcaption { flex: 1; display: flex; gap: 4px 10px; align-items: baseline;
  align-content: flex-start; flex-wrap: wrap; font-size: 13px; margin-bottom: 4px; }
.chart-title { font-weight: 650; }
.legend-item { color: var(--muted); white-space: nowrap; font-size: 12px; }
.legend-item b { color: var(--text); font-weight: 600; }
.key { display: inline-block; width: 10px; height: 3px; border-radius: 2px; margin-right: 5px;
  vertical-align: middle; }
.k0 { background: var(--c0); } .k1 { background: var(--c1); } .k2 { background: var(--c2); }
.plot { display: flex; height: 64px; }
.y-axis { width: 76px; flex: none; display: flex; flex-direction: column;
  justify-content: space-between; text-align: right; padding-right: 6px; font-size: 11px;
  color: var(--muted); line-height: 1; }
.area { position: relative; flex: 1; min-width: 0; }
.area svg { display: block; width: 100%; height: 100%; overflow: visible; }
.chart-empty { position: absolute; inset: 0; display: flex; align-items: center;
  justify-content: center; color: var(--muted); font-size: 12px; }
.grid { stroke: var(--grid); stroke-width: 1; vector-effect: non-scaling-stroke; }
.axis { stroke: var(--line); stroke-width: 1; vector-effect: non-scaling-stroke; }
.series { fill: none; stroke-width: 2; stroke-linejoin: round; stroke-linecap: round;
  vector-effect: non-scaling-stroke; }
.s0 { stroke: var(--c0); } .s1 { stroke: var(--c1); } .s2 { stroke: var(--c2); }
.x-axis { display: flex; justify-content: space-between; margin-left: 76px; font-size: 11px;
  color: var(--muted); }
table { width: 100%; border-collapse: collapse; }
th { text-align: left; font-size: 12px; font-weight: 600; color: var(--muted);
  background: var(--head); padding: 6px 8px; border-bottom: 1px solid var(--line);
  white-space: nowrap; }
td { padding: 7px 8px; border-bottom: 1px solid var(--grid); vertical-align: top; }
tr:last-child td { border-bottom: none; }
caption { text-align: left; font-weight: 650; padding-bottom: 6px; }
.num { text-align: right; white-space: nowrap; }
.sub { color: var(--muted); font-size: 12px; font-weight: 400; }
.mono, code { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono",
  monospace; font-size: 12.5px; }
.muted { color: var(--muted); }
td.warn, span.warn { color: var(--warn); font-weight: 600; }
td.bad, span.bad { color: var(--bad); font-weight: 600; }
.badge { display: inline-block; min-width: 54px; text-align: center; padding: 2px 9px;
  border-radius: 999px; font-size: 12px; font-weight: 700; text-transform: uppercase;
  letter-spacing: 0.04em; }
.badge-up { color: var(--good); background: var(--good-bg); }
.badge-down { color: var(--bad); background: var(--bad-bg); }
.badge-degraded { color: var(--warn); background: var(--warn-bg); }
.badge-probing { color: var(--grey); background: var(--grey-bg); }
.tag { font-size: 11px; padding: 1px 6px; border-radius: 4px; border: 1px solid var(--line);
  color: var(--muted); font-weight: 500; }
.sparkline { width: 120px; height: 24px; overflow: visible; }
.session-path { white-space: nowrap; }
.drops-grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(380px, 1fr));
  gap: 14px 28px; }
.note { color: var(--warn); margin: 0 0 8px; }
`;

/**
 * The dashboard page, served as `text/html` at `GET /` next to `GET /status`. It asks for
 * `status` relative to its own address, so it also works behind a proxy under a sub-path.
 *
 * @example
 * ```ts ignore
 * if (url.pathname === "/") {
 *   return new Response(DASHBOARD_HTML, {
 *     headers: { "content-type": "text/html; charset=utf-8" },
 *   });
 * }
 * ```
 */
export const DASHBOARD_HTML: string = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; connect-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'">
<title>mptunnel</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>
<div id="dashboard"></div>
<script>
"use strict";
${DASHBOARD_LOGIC_SOURCE}
${PAGE_SCRIPT}</script>
</body>
</html>
`;
