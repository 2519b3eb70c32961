import assert from "node:assert/strict";
import {
  DASHBOARD_HISTORY_SAMPLES,
  DASHBOARD_HTML,
  DASHBOARD_LOGIC_SOURCE,
  DASHBOARD_MAX_LISTED_SESSIONS,
  DASHBOARD_REFRESH_INTERVAL_MS,
} from "../../lib/ops/dashboard.ts";
import {
  chartPath,
  type ClientPathView,
  type ClientStatusView,
  dashboardTitle,
  type DashboardView,
  escapeHtml,
  formatAgo,
  formatBitRate,
  formatBytes,
  formatCount,
  formatDuration,
  formatMs,
  formatPacketRate,
  formatPercent,
  niceCeiling,
  ratePerSecond,
  renderDashboard,
  type Sample,
  type ServerStatusView,
  type StatusView,
  trimForHistory,
} from "../../lib/ops/dashboard_logic.ts";
import {
  type ClientStatus,
  clientStatus,
  type ServerStatus,
  serverStatus,
} from "../../lib/ops/status.ts";
import { runKnownTraffic } from "./status_fixtures.ts";
import * as dashboardLogic from "../../lib/ops/dashboard_logic.ts";

// What the programs report must be what the page reads (a compile-time check).
const _clientShape: (status: ClientStatus) => ClientStatusView = (status) => status;
const _serverShape: (status: ServerStatus) => ServerStatusView = (status) => status;

function path(
  overrides: Partial<ClientPathView> & { index: number; name: string },
): ClientPathView {
  return {
    remote: "192.0.2.1:4001",
    local: "0.0.0.0:40000",
    state: "up",
    backup: false,
    rttMs: 20,
    jitterMs: 1,
    lossToServer: 0,
    lossFromServer: 0,
    sent: { datagrams: 0, bytes: 0 },
    received: { datagrams: 0, bytes: 0 },
    sendErrors: {},
    probesSent: 0,
    probeReplies: 0,
    lastHeardAgoMs: 100,
    ...overrides,
  };
}

/** A client status after `second` seconds of 100 datagrams (of 1000 bytes) a second each way. */
function clientAt(second: number, paths?: readonly ClientPathView[]): ClientStatusView {
  const traffic = { datagrams: 100 * second, bytes: 100_000 * second };
  return {
    program: "mpclient",
    version: "0.1.0",
    uptimeSeconds: second,
    mode: "redundant",
    encrypted: true,
    listen: "127.0.0.1:4000",
    session: { id: "0000abcd", state: "established", handshakes: 1 },
    traffic: { fromApp: traffic, toApp: traffic, duplicates: 50 * second },
    drops: { "bad-tag": 3 * second, replay: 0 },
    flows: 1,
    paths: paths ?? [
      path({ index: 0, name: "alpha", sent: traffic, received: traffic, rttMs: 20 + second }),
      path({
        index: 1,
        name: "beta",
        state: "down",
        rttMs: null,
        jitterMs: null,
        lossToServer: null,
        lossFromServer: null,
        lastHeardAgoMs: null,
      }),
    ],
  };
}

function viewOf(samples: readonly Sample[], error: string | null = null): DashboardView {
  return {
    history: samples,
    capacity: DASHBOARD_HISTORY_SAMPLES,
    refreshIntervalMs: DASHBOARD_REFRESH_INTERVAL_MS,
    nowMs: samples.length > 0 ? samples[samples.length - 1].atMs : 0,
    error,
    maxListedSessions: DASHBOARD_MAX_LISTED_SESSIONS,
  };
}

function samplesOf(statuses: readonly (StatusView | null)[]): Sample[] {
  return statuses.map((status, index) => ({ atMs: 1_000_000 + index * 1000, status }));
}

Deno.test("ratePerSecond divides the counter's growth by the time between readings", () => {
  assert.equal(ratePerSecond(1000, 1500, 500), 1000);
  assert.equal(ratePerSecond(0, 0, 1000), 0);
});

Deno.test("ratePerSecond has no rate for a counter that went back, no time, or a missing reading", () => {
  assert.equal(ratePerSecond(1500, 10, 1000), null); // the program restarted
  assert.equal(ratePerSecond(10, 20, 0), null);
  assert.equal(ratePerSecond(undefined, 20, 1000), null);
  assert.equal(ratePerSecond(10, null, 1000), null);
});

Deno.test("niceCeiling rounds an axis top up to 1, 2 or 5 times a power of ten", () => {
  assert.equal(niceCeiling(37, 10), 50);
  assert.equal(niceCeiling(101, 10), 200);
  assert.equal(niceCeiling(0.03, 0.01), 0.05);
  assert.equal(niceCeiling(0, 10), 10);
  assert.equal(niceCeiling(Number.NaN, 5), 5);
  assert.equal(niceCeiling(3, 10), 10);
});

Deno.test("chartPath right-aligns the values and scales them to the box", () => {
  assert.equal(chartPath([0, 5, 10], 3, 100, 10, 10), "M0 10L50 5L100 0");
  // Two values in a chart of five slots sit in the last two.
  assert.equal(chartPath([0, 10], 5, 100, 10, 10), "M75 10L100 0");
});

Deno.test("chartPath breaks the line at a missing value and draws a lone value as a dot", () => {
  assert.equal(chartPath([1, 1, null, 2, null], 5, 40, 10, 2), "M0 5L10 5M30 0h0.01");
});

Deno.test("chartPath clips values above the top and below zero to the box", () => {
  assert.equal(chartPath([50, -3], 2, 10, 10, 10), "M0 0L10 10");
});

Deno.test("chartPath keeps only the newest values that fit", () => {
  assert.equal(chartPath([9, 9, 0, 10], 2, 10, 10, 10), "M0 10L10 0");
});

Deno.test("numbers carry their units", () => {
  assert.equal(formatBitRate(0), "0 bit/s");
  assert.equal(formatBitRate(100), "800 bit/s");
  assert.equal(formatBitRate(125), "1.00 kbit/s");
  assert.equal(formatBitRate(660_000), "5.28 Mbit/s");
  assert.equal(formatBytes(61_700_000), "61.7 MB");
  assert.equal(formatPacketRate(0.5), "0.5 pkt/s");
  assert.equal(formatPacketRate(1234), "1,234 pkt/s");
  assert.equal(formatMs(1.234), "1.23 ms");
  assert.equal(formatMs(23.45), "23.4 ms");
  assert.equal(formatMs(234.5), "235 ms");
  assert.equal(formatMs(1500), "1.50 s");
  assert.equal(formatPercent(0), "0 %");
  assert.equal(formatPercent(0.0004), "< 0.1 %");
  assert.equal(formatPercent(0.025), "2.5 %");
  assert.equal(formatPercent(0.4), "40 %");
  assert.equal(formatDuration(42), "42 s");
  assert.equal(formatDuration(245), "4 min 05 s");
  assert.equal(formatDuration(3725), "1 h 02 min");
  assert.equal(formatDuration(2 * 86400 + 3 * 3600), "2 d 03 h");
  assert.equal(formatAgo(300), "0.3 s ago");
  assert.equal(formatAgo(12_000), "12 s ago");
  assert.equal(formatAgo(null), "never");
  assert.equal(formatCount(12345), "12,345");
});

Deno.test("a value not measured yet shows as a dash, not as zero", () => {
  for (const format of [formatBitRate, formatPacketRate, formatMs, formatPercent, formatCount]) {
    assert.equal(format(null), "—");
  }
});

Deno.test("escapeHtml escapes markup and quotes", () => {
  assert.equal(
    escapeHtml(`<a href="x">'&'</a>`),
    "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;",
  );
});

Deno.test("the client view shows each path with its state badge, rates and the non-zero drops", () => {
  const html = renderDashboard(viewOf(samplesOf([clientAt(1), clientAt(2), clientAt(3)])));
  assert.match(html, /<b class="path-name">alpha<\/b>/);
  assert.match(html, /<span class="badge badge-up">up<\/span>/);
  assert.match(html, /<span class="badge badge-down">down<\/span>/);
  // 100 datagrams of 1000 bytes a second: 800 kbit/s.
  assert.match(html, /From applications<\/div><div class="tile-value">800 kbit\/s</);
  assert.match(html, /<code>bad-tag<\/code>/);
  assert.match(html, /9 pkt<\/td><td class="num">3\.0 pkt\/s/);
  assert.doesNotMatch(html, /<code>replay<\/code>/);
  assert.match(html, /no probe replies/); // beta's RTT chart
  assert.match(html, /session 0000abcd · established · 1 handshake</);
});

Deno.test("a path named like markup is shown as text", () => {
  const hostile = "<img src=x onerror=alert(1)>";
  const html = renderDashboard(
    viewOf(samplesOf([clientAt(1, [path({ index: 0, name: hostile })])])),
  );
  assert.ok(!html.includes(hostile));
  assert.match(html, /&lt;img src=x onerror=alert\(1\)&gt;/);
});

Deno.test("the charts follow the history: one point per answered poll, a gap per failed one", () => {
  const html = renderDashboard(
    viewOf(samplesOf([clientAt(1), clientAt(2), null, clientAt(4), clientAt(5)])),
  );
  const rttLine = html.match(/aria-label="Round trip">.*?<path class="series s0" d="([^"]*)"/);
  assert.ok(rttLine !== null);
  // alpha's RTT: two points, a gap, two points.
  assert.equal(rttLine[1].match(/M/g)?.length, 2);
  assert.equal(rttLine[1].match(/L/g)?.length, 2);
});

Deno.test("a failed poll shows disconnected and keeps the last answer on screen, dimmed", () => {
  const view = viewOf(samplesOf([clientAt(1), clientAt(2), null]), "connection failed");
  const html = renderDashboard(view);
  assert.match(html, /<b>Disconnected<\/b> — \/status did not answer \(connection failed\)/);
  assert.match(html, /retrying every 1 s/);
  assert.match(html, /<main class="stale">/);
  assert.match(html, /<b class="path-name">alpha<\/b>/);
  assert.equal(dashboardTitle(view), "disconnected · mpclient · 1/2 paths up");
});

Deno.test("before the first answer the page says it is waiting", () => {
  assert.match(renderDashboard(viewOf([])), /Waiting for the first answer from \/status/);
  assert.match(
    renderDashboard(viewOf(samplesOf([null]), "connection failed")),
    /Disconnected.*No data yet/s,
  );
});

Deno.test("a status without lists (another version) still renders", () => {
  const bare = { ...clientAt(1), paths: undefined } as unknown as StatusView;
  const html = renderDashboard(viewOf(samplesOf([bare])));
  assert.match(html, /no paths/);
});

Deno.test("the server view lists sessions, paths, drops and errors from real snapshots", () => {
  const fixture = runKnownTraffic();
  const earlier = serverStatus(fixture.server, fixture.nowMs - 1000, { encrypted: true });
  const later = serverStatus(fixture.server, fixture.nowMs, { encrypted: true });
  const html = renderDashboard(viewOf(samplesOf([earlier, later])));
  assert.match(html, /mpserver <small>/);
  assert.equal(later.sessions.length, 1);
  assert.ok(html.includes(`<b>${later.sessions[0].id}</b>`));
  assert.match(html, /badge-up">confirmed/);
  for (const known of later.sessions[0].paths) assert.ok(html.includes(known.address));
  assert.match(html, /Drops and errors/);
  assert.match(html, /encrypted/);
});

Deno.test("the client view renders a real snapshot's paths and numbers", () => {
  const fixture = runKnownTraffic();
  const status = clientStatus(fixture.client, fixture.nowMs);
  const html = renderDashboard(viewOf(samplesOf([status, status])));
  for (const known of status.paths) {
    assert.ok(html.includes(`<b class="path-name">${escapeHtml(known.name)}</b>`), known.name);
  }
  assert.ok(html.includes(formatMs(status.paths[0].rttMs)));
  assert.ok(html.includes(formatPercent(status.paths[1].lossToServer)));
});

Deno.test("the server list shows at most the configured number of sessions and says so", () => {
  const session = (index: number) => ({
    id: index.toString(16).padStart(8, "0"),
    confirmed: true,
    keyPhase: 1,
    ageSeconds: 10,
    idleSeconds: 0,
    flows: 1,
    fromClient: { datagrams: 1, bytes: 100 },
    toClient: { datagrams: 1, bytes: 100 },
    duplicates: 0,
    paths: [],
  });
  const status: ServerStatusView = {
    program: "mpserver",
    version: "0.1.0",
    uptimeSeconds: 5,
    encrypted: false,
    listen: ["0.0.0.0:2000"],
    target: "127.0.0.1:1194",
    traffic: {
      received: { datagrams: 0, bytes: 0 },
      sent: { datagrams: 0, bytes: 0 },
      toTarget: 0,
      fromTarget: 0,
      duplicates: 0,
    },
    drops: {},
    sessionCount: 1200,
    sessionsTruncated: true,
    sessions: Array.from({ length: 1000 }, (_, index) => session(index)),
  };
  const kept = trimForHistory(status, DASHBOARD_MAX_LISTED_SESSIONS);
  assert.equal((kept as ServerStatusView).sessions.length, DASHBOARD_MAX_LISTED_SESSIONS);
  const html = renderDashboard(viewOf(samplesOf([kept])));
  assert.equal(html.match(/class="session-row"/g)?.length, DASHBOARD_MAX_LISTED_SESSIONS);
  assert.match(html, /Showing the 50 most recently active of 1,200 sessions/);
  const client = clientAt(1);
  assert.equal(trimForHistory(client, 1), client, "a client status is kept as it is");
});

Deno.test("the page's inlined logic runs outside this module and renders the same page", () => {
  const view = viewOf(samplesOf([clientAt(1), null, clientAt(3)]), null);
  // A Function's body sees only globals: any reference to module scope would throw here.
  const renderInPage = new Function(
    "view",
    `${DASHBOARD_LOGIC_SOURCE}\nreturn renderDashboard(view);`,
  );
  assert.equal(renderInPage(view), renderDashboard(view));
});

Deno.test("every function of lib/ops/dashboard/ is listed in dashboard_logic.ts, so the page has it", async () => {
  const folder = new URL("../../lib/ops/dashboard/", import.meta.url);
  const listed = new Set(Object.keys(dashboardLogic));
  const missing: string[] = [];
  for await (const entry of Deno.readDir(folder)) {
    if (!entry.isFile || !entry.name.endsWith(".ts")) continue;
    const module = await import(new URL(entry.name, folder).href);
    for (const [name, value] of Object.entries(module)) {
      if (typeof value === "function" && !listed.has(name)) missing.push(`${entry.name}: ${name}`);
    }
  }
  assert.deepEqual(missing, []);
  assert.ok(listed.size > 30, `only ${listed.size} functions listed`);
});

Deno.test("the page is self-contained: one inline script, no outside address, a strict policy", () => {
  const scripts = [...DASHBOARD_HTML.matchAll(/<script>([\s\S]*?)<\/script>/g)];
  assert.equal(scripts.length, 1);
  assert.equal(DASHBOARD_HTML.match(/<\/script/g)?.length, 1);
  // The script parses (it is not run: it needs a DOM).
  new Function(scripts[0][1]);
  assert.doesNotMatch(DASHBOARD_HTML, /https?:\/\//);
  assert.doesNotMatch(DASHBOARD_HTML, /<script src|<link rel="stylesheet"|@import|url\(/);
  assert.match(
    DASHBOARD_HTML,
    /Content-Security-Policy" content="default-src 'none'; connect-src 'self'/,
  );
  assert.match(DASHBOARD_HTML, /fetch\("status"/);
});
