/**
 * Bonding two uplinks, end to end, in network namespaces the test makes and deletes
 * (`tests/e2e/netns.ts`): mpclient on a client host with uplinks a and b, each path bound to one
 * (`SERVICE PORT dev upa`, `SERVICE PORT dev upb`), mpserver on the server host in front of a UDP
 * echo, and a steady stream (500 B every 2 ms, redundant mode) from inside the client host.
 *
 * ```text
 *  client host                                   server host
 *  stream ─► mpclient ─┬─ upa ─── uplink a ───┬─► mpserver ─► udp echo
 *                      └─ upb ─── uplink b ───┘
 * ```
 *
 * Measured, phase by phase: one uplink silently blackholed (nftables drop), then the other; an
 * uplink readdressed under traffic; an uplink's link set down (its failed sends counted); and, with
 * `uplinks auto`, a new interface used within 2 s. The figures are printed. Ignored, with the reason
 * printed, where namespaces cannot be made (not Linux, not root, no `ip` or `nft`), except in CI,
 * where they fail.
 */
import assert from "node:assert/strict";
import { createUplinkNetwork, type UplinkNetwork, uplinkNetworkIgnoreReason } from "./netns.ts";
import { generateSecret } from "../../lib/crypto/secret.ts";
import type { ClientStatus } from "../../lib/ops/status.ts";

const ignore = (await uplinkNetworkIgnoreReason("e2e/uplinks_test")) !== undefined;

const REPOSITORY_ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname);
const SERVER_PORT = 2000;
const ECHO_PORT = 7000;
const CLIENT_PORT = 4000;
const CONTROL_PORT = 9100;
const AUTO_CLIENT_PORT = 4001;
const AUTO_CONTROL_PORT = 9101;
const DATAGRAM_BYTES = 500;
/** How long a restored uplink's path may take to be probed back up. */
const PATH_UP_AGAIN_TIMEOUT_MS = 10_000;
const INTERVAL_MS = 2;

/** Runs `deno eval` code (stream, status), with the repository's modules importable by URL. */
function denoEval(code: string): string[] {
  return [Deno.execPath(), "eval", "--no-config", "--unstable-net", code];
}

/**
 * Streams to mpclient until SIGTERM; prints `go` when it starts and the report as one JSON line
 * (`report {...}`) at the end.
 */
const STREAM_CODE = `
import { runTrafficStream } from "${new URL("tools/traffic.ts", `file://${REPOSITORY_ROOT}`)}";
const stop = new AbortController();
Deno.addSignalListener("SIGTERM", () => stop.abort());
console.log("go");
const report = await runTrafficStream({
  target: { hostname: "127.0.0.1", port: ${CLIENT_PORT} },
  sizeBytes: ${DATAGRAM_BYTES},
  intervalMs: ${INTERVAL_MS},
  signal: stop.signal,
  drainMs: 500,
});
console.log("report " + JSON.stringify(report));
Deno.exit(0);
`;

/** What a phase measured. */
interface PhaseFigures {
  readonly sent: number;
  readonly lossRatio: number;
  readonly longestSilenceMs: number;
}

/**
 * Runs a stream in the client host; `during` runs once it has started, and the stream goes on for
 * `afterMs` once `during` is done (so a slow step lengthens the phase rather than shortening what
 * is measured after it). Prints the figures under `name`.
 */
async function streamPhase(
  network: UplinkNetwork,
  name: string,
  during: () => Promise<void>,
  afterMs: number,
): Promise<PhaseFigures> {
  const stream = network.start("client", denoEval(STREAM_CODE), { name: "stream" });
  await stream.waitForLine(/^go$/);
  try {
    await during();
    await sleep(afterMs);
  } finally {
    stream.kill("SIGTERM");
  }
  const [, json] = await stream.waitForLine(/^report (.*)$/, 10_000);
  const report = JSON.parse(json) as PhaseFigures;
  console.log(
    `  ${name}: sent ${report.sent}, loss ${(report.lossRatio * 100).toFixed(2)} %, ` +
      `longest silence ${Math.round(report.longestSilenceMs)} ms`,
  );
  return report;
}

/** `mpclient status --json` from inside the client host. */
async function clientStatus(network: UplinkNetwork, controlPort: number): Promise<ClientStatus> {
  const result = await network.run("client", [
    Deno.execPath(),
    "run",
    "--allow-all",
    `${REPOSITORY_ROOT}client.ts`,
    "status",
    "--control",
    `127.0.0.1:${controlPort}`,
    "--json",
  ]);
  return JSON.parse(result.stdout) as ClientStatus;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Starts the echo and mpserver in the server host; resolves once both listen. */
async function startServerSide(network: UplinkNetwork, secret: string): Promise<void> {
  const echo = network.start("server", [
    Deno.execPath(),
    "run",
    "--allow-net",
    `${REPOSITORY_ROOT}tools/udp_echo.ts`,
    `127.0.0.1:${ECHO_PORT}`,
  ], { name: "udp_echo" });
  const server = network.start("server", [
    Deno.execPath(),
    "run",
    "--allow-all",
    `${REPOSITORY_ROOT}server.ts`,
    `${network.serviceAddress}:${SERVER_PORT}`,
    "127.0.0.1",
    String(ECHO_PORT),
  ], { name: "mpserver", env: { MPTUNNEL_SECRET: secret } });
  await Promise.all([echo.waitForLine(/listening on/), server.waitForLine(/started/)]);
}

Deno.test({
  name: "two uplinks bound with dev: blackhole, readdress and link-down under a steady stream",
  ignore,
  async fn() {
    await using network = await createUplinkNetwork();
    const secret = generateSecret();
    await startServerSide(network, secret);
    const service = network.serviceAddress;
    const config = await Deno.makeTempFile({ prefix: "mpclient-uplinks-", suffix: ".conf" });
    try {
      await Deno.writeTextFile(
        config,
        `${service} ${SERVER_PORT} dev upa name a\n${service} ${SERVER_PORT} dev upb name b\n` +
          `mode redundant\ncontrol 127.0.0.1:${CONTROL_PORT}\n`,
      );
      const client = network.start("client", [
        Deno.execPath(),
        "run",
        "--allow-all",
        `${REPOSITORY_ROOT}client.ts`,
        `127.0.0.1:${CLIENT_PORT}`,
        config,
      ], { name: "mpclient", env: { MPTUNNEL_SECRET: secret } });
      await client.waitForLine(/started/);
      const before = await clientStatus(network, CONTROL_PORT);
      assert.deepEqual(before.paths.map((path) => path.interface), ["upa", "upb"]);
      assert.equal(before.paths[0].local.split(":")[0], network.uplinks.a.clientAddress);
      assert.equal(before.paths[1].local.split(":")[0], network.uplinks.b.clientAddress);

      console.log("two uplinks, redundant mode, 500 B every 2 ms:");
      await streamPhase(network, "warm-up", () => Promise.resolve(), 1000);

      const blackholeA = await streamPhase(network, "uplink a blackholed", async () => {
        await sleep(1000);
        await network.blackhole("a");
      }, 3000);
      assert.ok(blackholeA.lossRatio <= 0.02, `loss ${blackholeA.lossRatio}`);
      assert.ok(blackholeA.longestSilenceMs <= 1000, `silence ${blackholeA.longestSilenceMs}`);

      const blackholeB = await streamPhase(
        network,
        "uplink a restored, then b blackholed",
        async () => {
          await network.restore("a");
          // Path a must be probed back up before b goes, or nothing carries the stream.
          await client.waitForLine(/path up again path=a\b/, PATH_UP_AGAIN_TIMEOUT_MS);
          await network.blackhole("b");
        },
        3000,
      );
      assert.ok(blackholeB.lossRatio <= 0.02, `loss ${blackholeB.lossRatio}`);
      assert.ok(blackholeB.longestSilenceMs <= 1000, `silence ${blackholeB.longestSilenceMs}`);

      const newAddress = network.uplinks.a.clientAddress.replace(/\.\d+$/, ".50");
      const readdressed = await streamPhase(
        network,
        "uplink a readdressed (b blackholed)",
        async () => {
          await sleep(1000);
          await network.readdress("a", newAddress);
        },
        5000,
      );
      assert.ok(
        readdressed.longestSilenceMs <= 3000,
        `silence ${readdressed.longestSilenceMs}`,
      );
      const afterReaddress = await clientStatus(network, CONTROL_PORT);
      assert.equal(afterReaddress.paths[0].local.split(":")[0], newAddress);
      assert.equal(afterReaddress.paths[0].state, "up");

      await network.restore("b");
      await streamPhase(network, "uplink b link down", async () => {
        await sleep(1000);
        await network.setLink("b", "down");
      }, 2000);
      const afterLinkDown = await clientStatus(network, CONTROL_PORT);
      const errorsOnB = Object.values(afterLinkDown.paths[1].sendErrors).reduce((a, b) => a + b, 0);
      console.log(
        `  send errors on b after link down: ${JSON.stringify(afterLinkDown.paths[1].sendErrors)}`,
      );
      assert.ok(errorsOnB > 0, "failed sends on b are counted");
      assert.equal(afterLinkDown.paths[0].state, "up");
      await network.setLink("b", "up");
      client.kill("SIGTERM");
      assert.equal(await client.exited, 0, client.output());
      assert.match(client.output(), /path re-opened on its interface's new address/);
    } finally {
      await Deno.remove(config);
    }
  },
});

Deno.test({
  name: "uplinks auto: a path per uplink, and a new interface used within 2 s",
  ignore,
  async fn() {
    await using network = await createUplinkNetwork();
    const secret = generateSecret();
    await startServerSide(network, secret);
    const client = network.start("client", [
      Deno.execPath(),
      "run",
      "--allow-all",
      `${REPOSITORY_ROOT}client.ts`,
      "--uplinks",
      "auto",
      `${network.serviceAddress}:${SERVER_PORT}`,
      "--control",
      `127.0.0.1:${AUTO_CONTROL_PORT}`,
      "--listen",
      `127.0.0.1:${AUTO_CLIENT_PORT}`,
    ], { name: "mpclient (uplinks auto)", env: { MPTUNNEL_SECRET: secret } });
    await client.waitForLine(/started/);
    const status = await clientStatus(network, AUTO_CONTROL_PORT);
    assert.deepEqual(status.paths.map((path) => path.name), ["upa", "upb"]);

    await network.addUplink("c");
    const addedAt = performance.now();
    // Timed by mpclient's own "path up" line, read as it is printed: polling the status would add
    // the start-up time of each `mpclient status` process to the figure.
    let usedAfterMs: number | undefined;
    try {
      await client.waitForLine(/path up path=upc\b/, 5000);
      usedAfterMs = performance.now() - addedAt;
    } catch {
      // never up within 5 s: reported and failed below
    }
    const pathC = (await clientStatus(network, AUTO_CONTROL_PORT)).paths.find((path) =>
      path.name === "upc"
    );
    console.log(
      `  uplinks auto: new interface upc up after ${
        usedAfterMs === undefined ? "(never)" : `${Math.round(usedAfterMs)} ms`
      } (mpclient's "path up" line)`,
    );
    assert.equal(pathC?.state, "up");
    assert.equal(pathC.interface, "upc");
    assert.equal(pathC.local.split(":")[0], network.uplinks.c!.clientAddress);
    assert.ok(usedAfterMs !== undefined && usedAfterMs <= 2000, `upc up after ${usedAfterMs}`);
    client.kill("SIGTERM");
    assert.equal(await client.exited, 0, client.output());
  },
});
