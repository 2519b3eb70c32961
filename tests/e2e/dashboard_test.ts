/**
 * The web dashboard in a real browser: Debian's headless Chromium, driven by playwright-core,
 * opens `DASHBOARD_HTML` from a small test server whose fake `/status` changes at every request
 * (counters growing, paths up, down and probing, RTTs, drops), so these tests need nothing but the
 * page itself.
 *
 * The mpclient step runs the page on Playwright's fake clock and steps it one poll at a time, so two
 * minutes of history take a few seconds and the screenshot is the same at every run. Set
 * `UPDATE_SCREENSHOTS=1` to write that screenshot to `docs/dashboard.png` (the README shows it).
 */

import assert from "node:assert/strict";
import { type Browser, chromium, type Page } from "playwright-core";
import { DASHBOARD_HISTORY_SAMPLES, DASHBOARD_HTML } from "../../lib/ops/dashboard.ts";
import { requireTools, toolsMissing, withTimeout } from "./harness.ts";

const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--headless",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
];
const VIEWPORT = { width: 1280, height: 800 };
/** The fake clock starts here, so the page reads the same time at every run. */
const FAKE_CLOCK_START = new Date("2025-01-01T12:00:00Z");
const SCREENSHOT_IN_DOCS = new URL("../../docs/dashboard.png", import.meta.url);
const MAX_DOCS_SCREENSHOT_BYTES = 200_000;
const PAGE_TIMEOUT_MS = 15_000;

/** A fake `/status`: the next answer for the n-th request (0-based). */
type StatusSource = (request: number) => unknown;

/** What a test gets: the page, the server's address and the requests the page made. */
interface DashboardSession {
  readonly page: Page;
  readonly origin: string;
  readonly requestedUrls: string[];
  readonly pageErrors: string[];
  /** How many answers `/status` gave so far. */
  statusRequests(): number;
  /** While true, `/status` answers 503. */
  setFailing(failing: boolean): void;
}

/**
 * Serves the dashboard and `status` on 127.0.0.1, opens it in a fresh browser context (optionally
 * on a fake clock), runs `body`, then closes the context and the server.
 */
async function withDashboard(
  browser: Browser,
  status: StatusSource,
  options: { readonly fakeClock: boolean },
  body: (session: DashboardSession) => Promise<void>,
): Promise<void> {
  let requests = 0;
  let failing = false;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/") {
      return new Response(DASHBOARD_HTML, {
        headers: { "content-type": "text/html; charset=utf-8" },
      });
    }
    if (path === "/status") {
      if (failing) return new Response("unavailable", { status: 503 });
      return Response.json(status(requests++), { headers: { "cache-control": "no-store" } });
    }
    return new Response("not found", { status: 404 });
  });
  const context = await browser.newContext({
    viewport: VIEWPORT,
    deviceScaleFactor: 1,
    colorScheme: "light",
  });
  try {
    const origin = `http://127.0.0.1:${server.addr.port}`;
    const page = await context.newPage();
    page.setDefaultTimeout(PAGE_TIMEOUT_MS);
    const requestedUrls: string[] = [];
    const pageErrors: string[] = [];
    page.on("request", (request) => requestedUrls.push(request.url()));
    page.on("pageerror", (error) => pageErrors.push(String(error)));
    page.on("console", (message) => {
      // The failed polls of the disconnection test log nothing, but the browser reports a 503.
      if (message.type() === "error" && !/status of 503/.test(message.text())) {
        pageErrors.push(message.text());
      }
    });
    if (options.fakeClock) {
      // Installed, the fake clock still runs with the real one; paused, it moves only when told.
      await page.clock.install({ time: FAKE_CLOCK_START });
      await page.clock.pauseAt(FAKE_CLOCK_START.getTime() + 1000);
    }
    await page.goto(`${origin}/`);
    await body({
      page,
      origin,
      requestedUrls,
      pageErrors,
      statusRequests: () => requests,
      setFailing: (value) => {
        failing = value;
      },
    });
  } finally {
    await context.close();
    await server.shutdown();
  }
}

/** How many times the page has painted (it counts them in `data-refreshes`). */
async function refreshes(page: Page): Promise<number> {
  return Number(await page.evaluate("document.body.dataset.refreshes ?? 0"));
}

/**
 * Waits, on the real clock, until `expression` is true in the page. (Playwright's `waitForFunction`
 * evaluates a string with `eval`, which the page's Content-Security-Policy rightly forbids.)
 */
async function waitForPage(page: Page, expression: string): Promise<void> {
  const deadline = Date.now() + PAGE_TIMEOUT_MS;
  while (!(await page.evaluate(expression))) {
    if (Date.now() > deadline) {
      throw new Error(`the page did not reach ${expression} within ${PAGE_TIMEOUT_MS} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * Waits until the page has painted at least `count` times: one round trip to the browser, which
 * answers when the page's paint counter (`data-refreshes`) gets there. The observer does not use
 * timers, so it works on the fake clock too.
 */
async function waitForRefreshes(page: Page, count: number): Promise<void> {
  const reached = page.evaluate(`new Promise((resolve) => {
    const reached = () => Number(document.body.dataset.refreshes ?? 0) >= ${count};
    if (reached()) return resolve(true);
    const observer = new MutationObserver(() => {
      if (!reached()) return;
      observer.disconnect();
      resolve(true);
    });
    observer.observe(document.body, { attributes: true, attributeFilter: ["data-refreshes"] });
  })`);
  await withTimeout(reached, PAGE_TIMEOUT_MS, `the page's paint number ${count}`);
}

/** On the fake clock: lets `polls` more polls happen, one second each, waiting for each answer. */
async function advancePolls(page: Page, polls: number): Promise<void> {
  let painted = await refreshes(page);
  for (let poll = 0; poll < polls; poll++) {
    await page.clock.runFor(1000);
    painted += 1;
    await waitForRefreshes(page, painted);
  }
}

/** A deterministic wobble in [-1, 1]. */
function wave(tick: number, period: number, phase = 0): number {
  return Math.sin((2 * Math.PI * tick) / period + phase);
}

/** Seeded noise in [0, 1) (mulberry32), so the fake traffic looks real and is the same each run. */
function seededNoise(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let mixed = Math.imul(state ^ (state >>> 15), 1 | state);
    mixed = (mixed + Math.imul(mixed ^ (mixed >>> 7), 61 | mixed)) ^ mixed;
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 4294967296;
  };
}

/** A fake mpclient `/status`: two paths up, one down, a backup probing, drops growing. */
function fakeClientStatus(): StatusSource {
  const fromApp = { datagrams: 0, bytes: 0 };
  const toApp = { datagrams: 0, bytes: 0 };
  const paths = [
    { name: "bridge-a", remote: "192.0.2.10:4001", local: "0.0.0.0:40001", backup: false },
    { name: "bridge-b", remote: "198.51.100.20:4001", local: "0.0.0.0:40002", backup: false },
    { name: "direct", remote: "203.0.113.7:2000", local: "0.0.0.0:40003", backup: false },
    { name: "lte", remote: "203.0.113.7:2000", local: "10.64.0.2:40004", backup: true },
  ].map((path, index) => ({
    ...path,
    index,
    sent: { datagrams: 0, bytes: 0 },
    received: { datagrams: 0, bytes: 0 },
    probesSent: 0,
    probeReplies: 0,
  }));
  let duplicates = 0;
  const drops = { "bad-tag": 0, replay: 0, "unknown-session": 0, malformed: 0 };
  const noise = seededNoise(7);
  const smoothed = { rttA: 23, rttB: 62, lossB: 0.035, lossFromB: 0.06 };
  return (tick) => {
    const upstream = Math.round(170 + 50 * wave(tick, 47) + 40 * noise());
    const downstream = Math.round(380 + 160 * wave(tick, 53, 1) + 90 * noise());
    // Smoothed like the real estimators: each sample moves an eighth of the way.
    smoothed.rttA += (21 + 5 * noise() + (noise() < 0.06 ? 25 : 0) - smoothed.rttA) / 8 * 3;
    smoothed.rttB += (58 + 10 * wave(tick, 61, 2) + 16 * noise() - smoothed.rttB) / 8 * 3;
    smoothed.lossB += (0.02 + 0.05 * noise() + 0.02 * wave(tick, 71) - smoothed.lossB) / 8;
    smoothed.lossFromB += (0.03 + 0.08 * noise() + 0.02 * wave(tick, 43, 1) - smoothed.lossFromB) /
      8;
    fromApp.datagrams += upstream;
    fromApp.bytes += upstream * 160;
    toApp.datagrams += downstream;
    toApp.bytes += downstream * 1150;
    for (const path of paths) {
      path.probesSent += 2;
      if (path.name === "lte") continue; // a backup carries no data while others are up
      path.sent.datagrams += upstream + 2;
      path.sent.bytes += upstream * 200 + 2 * 64;
      if (path.name === "bridge-a" || path.name === "bridge-b") {
        const lossFromServer = path.name === "bridge-a" ? 0.01 : 0.06;
        const arriving = Math.round(downstream * (1 - lossFromServer));
        path.received.datagrams += arriving + 2;
        path.received.bytes += arriving * 1190 + 2 * 64;
        path.probeReplies += 2;
      }
    }
    duplicates += Math.round(downstream * 0.9);
    if (tick % 3 === 0) drops["bad-tag"] += 1;
    if (tick % 10 === 0) drops.replay += 2;
    return {
      program: "mpclient",
      version: "0.1.0",
      uptimeSeconds: 3725 + tick,
      mode: "redundant",
      encrypted: true,
      listen: "127.0.0.1:4000",
      session: { id: "5f3a9c21", state: "established", handshakes: 31 },
      traffic: { fromApp: { ...fromApp }, toApp: { ...toApp }, duplicates },
      drops: { ...drops },
      flows: 3,
      paths: paths.map((path) => {
        const measured = path.name === "bridge-a" || path.name === "bridge-b";
        const rttMs = path.name === "bridge-a" ? smoothed.rttA : smoothed.rttB;
        return {
          index: path.index,
          name: path.name,
          remote: path.remote,
          local: path.local,
          state: measured ? "up" : path.name === "direct" ? "down" : "probing",
          backup: path.backup,
          rttMs: measured ? Math.round(rttMs * 1000) / 1000 : null,
          rttVarianceMs: measured ? 2.5 : null,
          jitterMs: measured ? (path.name === "bridge-a" ? 1.8 : 6.3) : null,
          lossToServer: measured ? (path.name === "bridge-a" ? 0.004 : smoothed.lossB) : null,
          lossFromServer: measured ? (path.name === "bridge-a" ? 0.01 : smoothed.lossFromB) : null,
          roundTripLoss: measured ? 0.01 : path.name === "direct" ? 1 : null,
          sent: { ...path.sent },
          received: { ...path.received },
          sendErrors: path.name === "direct" ? { EHOSTUNREACH: tick * 2 } : {},
          probesSent: path.probesSent,
          probeReplies: path.probeReplies,
          lastHeardAgoMs: measured ? 120 + (tick % 5) * 40 : null,
        };
      }),
    };
  };
}

/** A fake mpserver `/status`: three sessions, one still handshaking, drops growing. */
function fakeServerStatus(): StatusSource {
  return (tick) => {
    const session = (
      id: string,
      confirmed: boolean,
      packetsPerTick: number,
      addresses: readonly string[],
    ) => ({
      id,
      confirmed,
      keyPhase: confirmed ? 3 : null,
      ageSeconds: 600 + tick,
      idleSeconds: confirmed ? 0.2 : 4,
      flows: confirmed ? 2 : 0,
      fromClient: { datagrams: packetsPerTick * tick, bytes: packetsPerTick * tick * 900 },
      toClient: { datagrams: packetsPerTick * 2 * tick, bytes: packetsPerTick * 2 * tick * 1200 },
      duplicates: packetsPerTick * tick,
      paths: addresses.map((address, index) => ({
        address,
        lastHeardAgoMs: 100 + index * 50,
        received: packetsPerTick * tick,
      })),
    });
    return {
      program: "mpserver",
      version: "0.1.0",
      uptimeSeconds: 86_400 * 2 + tick,
      encrypted: false,
      listen: ["0.0.0.0:2000"],
      target: "127.0.0.1:1194",
      traffic: {
        received: { datagrams: 500 * tick, bytes: 500 * tick * 900 },
        sent: { datagrams: 900 * tick, bytes: 900 * tick * 1200 },
        toTarget: 250 * tick,
        fromTarget: 450 * tick,
        duplicates: 250 * tick,
      },
      drops: { "bad-mac": 0, "handshake-rate-limited": 7 * tick, replay: 0 },
      errors: { targetSend: 0, clientSend: 0, foreignOnTargetSocket: tick, flowLimit: 0 },
      sessionsOpened: 5,
      sessionsClosed: 2,
      targetSockets: 4,
      sessionCount: 3,
      sessions: [
        session("0a1b2c3d", true, 150, ["192.0.2.10:51000", "198.51.100.20:51001"]),
        session("99ff0011", true, 80, ["203.0.113.50:40000"]),
        session("c0ffee42", false, 0, []),
      ],
      sessionsTruncated: false,
    };
  };
}

/** The width, height and how varied the pixels of a PNG are (RGB or RGBA, 8-bit, as Chromium). */
async function inspectPng(bytes: Uint8Array): Promise<{
  width: number;
  height: number;
  distinctColours: number;
  commonestColourShare: number;
}> {
  const signature = [137, 80, 78, 71, 13, 10, 26, 10];
  assert.deepEqual([...bytes.subarray(0, 8)], signature, "not a PNG: wrong signature");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let width = 0;
  let height = 0;
  let bitDepth = 0;
  let colourType = 0;
  let interlace = 0;
  const compressed: Uint8Array[] = [];
  for (let offset = 8; offset + 8 <= bytes.length;) {
    const length = view.getUint32(offset);
    const type = new TextDecoder().decode(bytes.subarray(offset + 4, offset + 8));
    const data = bytes.subarray(offset + 8, offset + 8 + length);
    if (type === "IHDR") {
      width = view.getUint32(offset + 8);
      height = view.getUint32(offset + 12);
      bitDepth = data[8];
      colourType = data[9];
      interlace = data[12];
    } else if (type === "IDAT") {
      compressed.push(data);
    } else if (type === "IEND") {
      break;
    }
    offset += 12 + length;
  }
  assert.ok(width > 0 && height > 0, "the PNG has no IHDR");
  assert.equal(bitDepth, 8, "expected 8 bits per channel");
  assert.equal(interlace, 0, "expected no interlacing");
  const channels = colourType === 6 ? 4 : colourType === 2 ? 3 : 0;
  assert.ok(channels > 0, `expected an RGB or RGBA PNG, got colour type ${colourType}`);
  const inflated = new Uint8Array(
    await new Response(
      new Blob(compressed as BlobPart[]).stream().pipeThrough(new DecompressionStream("deflate")),
    ).arrayBuffer(),
  );
  const stride = width * channels;
  assert.equal(inflated.length, height * (stride + 1), "the image data has the wrong length");

  // Undo the per-line filters (PNG specification, section 9).
  const pixels = new Uint8Array(height * stride);
  for (let row = 0; row < height; row++) {
    const filter = inflated[row * (stride + 1)];
    const line = inflated.subarray(row * (stride + 1) + 1, (row + 1) * (stride + 1));
    const out = pixels.subarray(row * stride, (row + 1) * stride);
    const above = row > 0 ? pixels.subarray((row - 1) * stride, row * stride) : null;
    for (let index = 0; index < stride; index++) {
      const left = index >= channels ? out[index - channels] : 0;
      const up = above ? above[index] : 0;
      const upLeft = above && index >= channels ? above[index - channels] : 0;
      let predictor: number;
      switch (filter) {
        case 0:
          predictor = 0;
          break;
        case 1:
          predictor = left;
          break;
        case 2:
          predictor = up;
          break;
        case 3:
          predictor = (left + up) >> 1;
          break;
        case 4: {
          const estimate = left + up - upLeft;
          const toLeft = Math.abs(estimate - left);
          const toUp = Math.abs(estimate - up);
          const toUpLeft = Math.abs(estimate - upLeft);
          predictor = toLeft <= toUp && toLeft <= toUpLeft ? left : toUp <= toUpLeft ? up : upLeft;
          break;
        }
        default:
          throw new Error(`unknown PNG filter ${filter} on line ${row}`);
      }
      out[index] = (line[index] + predictor) & 0xff;
    }
  }
  const counts = new Map<number, number>();
  for (let index = 0; index < pixels.length; index += channels) {
    const colour = (pixels[index] << 16) | (pixels[index + 1] << 8) | pixels[index + 2];
    counts.set(colour, (counts.get(colour) ?? 0) + 1);
  }
  return {
    width,
    height,
    distinctColours: counts.size,
    commonestColourShare: Math.max(...counts.values()) / (width * height),
  };
}

/** A fake mpclient over two minutes of polls: paths, badges, charts, drops, the screenshot. */
async function showsClientStatus(browser: Browser): Promise<void> {
  await withDashboard(browser, fakeClientStatus(), { fakeClock: true }, async (session) => {
    const { page } = session;
    await waitForRefreshes(page, 2); // the first paint, then the first answer
    // Two minutes of polls (and at least three refreshes), one second of fake time each.
    await advancePolls(page, DASHBOARD_HISTORY_SAMPLES - 1);
    assert.ok(session.statusRequests() >= DASHBOARD_HISTORY_SAMPLES);

    assert.equal(await page.title(), "mpclient · 2/4 paths up");
    const header = await page.locator("header").innerText();
    assert.match(header, /mpclient\s+0\.1\.0/);
    assert.match(header, /live/);
    assert.match(header, /session 5f3a9c21 · established · 31 handshakes/);
    assert.match(header, /encrypted/);
    assert.match(header, /up 1 h 04 min/);

    // The path table: names, and a badge of the right colour class for each state.
    const rows = page.locator("table.paths tbody tr");
    assert.deepEqual(await rows.locator(".path-name").allInnerTexts(), [
      "bridge-a",
      "bridge-b",
      "direct",
      "lte",
    ]);
    assert.deepEqual(
      await rows.locator(".badge").evaluateAll((badges) =>
        badges.map((badge) => `${badge.textContent} ${badge.className}`)
      ),
      [
        "up badge badge-up",
        "up badge badge-up",
        "down badge badge-down",
        "probing badge badge-probing",
      ],
    );
    const bridgeA = await rows.nth(0).innerText();
    assert.match(bridgeA, /\d+\.\d ms/, "bridge-a shows its RTT in ms");
    assert.match(bridgeA, /0\.4 %/, "bridge-a shows its loss to the server");
    assert.match(bridgeA, /\d+(\.\d+)? kbit\/s/, "bridge-a shows its throughput");
    assert.match(await rows.nth(2).innerText(), /EHOSTUNREACH 240/);
    assert.match(await rows.nth(3).innerText(), /backup/);

    // Drops: the non-zero reasons, with their totals; a zero reason is not listed.
    const drops = await page.locator("table.drops").first().innerText();
    assert.match(drops, /bad-tag/);
    assert.match(drops, /41 pkt/);
    assert.match(drops, /replay/);
    assert.doesNotMatch(drops, /unknown-session|malformed/);

    // Each path has its three charts; bridge-a's RTT line has a point for every poll.
    const card = page.locator('.path-card[data-path="bridge-a"]');
    assert.deepEqual(await card.locator(".chart-title").allInnerTexts(), [
      "Round trip",
      "Loss",
      "Throughput",
    ]);
    const rttPath = await card.locator(".chart").first().locator("path.series").getAttribute(
      "d",
    );
    assert.equal(
      (rttPath ?? "").match(/[ML]/g)?.length,
      DASHBOARD_HISTORY_SAMPLES,
      `the RTT line: ${rttPath}`,
    );
    const throughputLines = await card.locator(".chart").nth(2).locator("path.series")
      .evaluateAll((paths) => paths.map((path) => path.getAttribute("d") ?? ""));
    assert.ok(throughputLines.every((d) => (d.match(/L/g)?.length ?? 0) >= 3));
    const downCard = page.locator('.path-card[data-path="direct"]');
    assert.match(await downCard.locator(".chart").first().innerText(), /no probe replies/);

    // Self-contained: the page asked for nothing but itself and its status.
    assert.deepEqual(
      [...new Set(session.requestedUrls)],
      [`${session.origin}/`, `${session.origin}/status`],
    );
    assert.deepEqual(session.pageErrors, []);

    const directory = await Deno.makeTempDir({ prefix: "mptunnel-dashboard-" });
    try {
      const file = `${directory}/dashboard.png`;
      await page.screenshot({ path: file, fullPage: true });
      const png = await Deno.readFile(file);
      assert.ok(png.length > 20_000, `the screenshot is only ${png.length} bytes`);
      const image = await inspectPng(png);
      assert.equal(image.width, VIEWPORT.width);
      assert.ok(image.height >= VIEWPORT.height, `the page is ${image.height} px high`);
      assert.ok(image.distinctColours >= 50, `only ${image.distinctColours} colours`);
      assert.ok(image.commonestColourShare < 0.9, "the screenshot is mostly one colour");
      if (Deno.env.get("UPDATE_SCREENSHOTS") === "1") {
        // The README's copy stops below the second path's charts: the two remaining cards hold
        // mostly empty charts (their paths are down or probing), and the file stays small.
        const lastShown = await page.locator('.path-card[data-path="bridge-b"]').boundingBox();
        assert.ok(lastShown !== null, "bridge-b's card is not on the page");
        const docsPng = await page.screenshot({
          fullPage: true,
          clip: {
            x: 0,
            y: 0,
            width: VIEWPORT.width,
            height: Math.ceil(lastShown.y + lastShown.height + 14),
          },
        });
        assert.ok(docsPng.length < MAX_DOCS_SCREENSHOT_BYTES, `${docsPng.length} bytes is too big`);
        await Deno.writeFile(SCREENSHOT_IN_DOCS, docsPng);
        console.log(`wrote ${SCREENSHOT_IN_DOCS.pathname} (${docsPng.length} bytes)`);
      }
    } finally {
      await Deno.remove(directory, { recursive: true });
    }
  });
}

/** A fake mpserver: sessions, traffic charts, drops and errors. */
async function showsServerStatus(browser: Browser): Promise<void> {
  await withDashboard(browser, fakeServerStatus(), { fakeClock: true }, async (session) => {
    const { page } = session;
    await waitForRefreshes(page, 2);
    await advancePolls(page, 5);

    assert.equal(await page.title(), "mpserver · 3 sessions");
    const header = await page.locator("header").innerText();
    assert.match(header, /mpserver\s+0\.1\.0/);
    assert.match(header, /NOT encrypted/);
    assert.match(header, /listening 0\.0\.0\.0:2000/);
    assert.match(header, /target 127\.0\.0\.1:1194/);
    assert.match(header, /up 2 d 00 h/);

    const rows = page.locator("table.sessions tbody tr");
    assert.equal(await rows.count(), 3);
    const first = await rows.nth(0).innerText();
    assert.match(first, /0a1b2c3d/);
    assert.match(first, /confirmed/i);
    assert.match(first, /192\.0\.2\.10:51000/);
    assert.match(first, /150 pkt\/s/, "the path's received rate");
    assert.match(first, /2 flows/);
    assert.match(await rows.nth(2).innerText(), /handshaking/i);
    const sparkline = await rows.nth(0).locator(".sparkline path").getAttribute("d");
    assert.ok((sparkline?.match(/L/g)?.length ?? 0) >= 3, `the sparkline: ${sparkline}`);

    const tiles = await page.locator(".tiles").innerText();
    assert.match(tiles, /To target\s+250 pkt\/s/);
    assert.match(tiles, /From clients\s+3\.60 Mbit\/s/);

    const drops = await page.locator(".drops-grid").innerText();
    assert.match(drops, /handshake-rate-limited/);
    assert.match(drops, /7\.0 pkt\/s/);
    assert.match(drops, /foreignOnTargetSocket/);
    assert.doesNotMatch(drops, /bad-mac|targetSend/);

    const clientLines = await page.locator(".chart").first().locator("path.series")
      .evaluateAll((paths) => paths.map((path) => path.getAttribute("d") ?? ""));
    assert.equal(clientLines.length, 2);
    assert.ok(clientLines.every((d) => (d.match(/L/g)?.length ?? 0) >= 3));
    assert.deepEqual(session.pageErrors, []);
  });
}

/** `/status` failing for a while, on the real clock. */
async function showsDisconnection(browser: Browser): Promise<void> {
  await withDashboard(browser, fakeClientStatus(), { fakeClock: false }, async (session) => {
    const { page } = session;
    await waitForRefreshes(page, 3);
    assert.equal(await page.evaluate("document.body.dataset.connected"), "true");

    session.setFailing(true);
    await page.waitForSelector(".banner");
    assert.match(await page.locator(".banner").innerText(), /Disconnected.*HTTP 503/);
    assert.match(await page.locator("header").innerText(), /disconnected/);
    assert.match(await page.title(), /^disconnected · mpclient/);
    // The last answer stays on screen, dimmed.
    assert.equal(await page.locator("main.stale .path-row").count(), 4);
    const failedPolls = await refreshes(page);
    await waitForRefreshes(page, failedPolls + 2);

    session.setFailing(false);
    await waitForPage(page, "document.body.dataset.connected === 'true'");
    assert.equal(await page.locator(".banner").count(), 0);
    assert.match(await page.locator("header").innerText(), /live/);
    assert.deepEqual(session.pageErrors, []);
  });
}

// One browser for the three steps: starting Chromium takes seconds, a fresh context per step does
// not, and keeps the steps apart.
Deno.test({
  name: "the web dashboard in headless Chromium",
  ignore: toolsMissing(["chromium"]) !== undefined,
}, async (t) => {
  requireTools(["chromium"]);
  const browser = await withTimeout(
    chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS }),
    PAGE_TIMEOUT_MS,
    "launching chromium",
  );
  try {
    await t.step(
      "the dashboard shows mpclient's paths with state badges, live charts and drops",
      () => showsClientStatus(browser),
    );
    await t.step(
      "the dashboard shows mpserver's sessions, traffic charts, drops and errors",
      () => showsServerStatus(browser),
    );
    await t.step(
      "the dashboard says disconnected while /status fails, keeps retrying and recovers",
      () => showsDisconnection(browser),
    );
  } finally {
    await browser.close();
  }
});
