/**
 * The control endpoints of real mpclient and mpserver processes, after a known traffic pattern:
 *
 * ```
 * this process ──► mpclient ─┬─ path "alpha" ─┬─► mpserver ──► UDP echo (this process)
 *  (1000 × 300 B)            └─ path "beta"  ─┘
 * ```
 *
 * `/status` and `/metrics` of both must count exactly that traffic, per path, and agree with each
 * other; `mpclient status` and `mpserver status` print it as a table or JSON. The programs run with
 * the permissions their tasks in deno.json give them, which must be enough for the endpoint.
 */

import assert from "node:assert/strict";
import { formatHostPort, type HostPort } from "../../lib/base/address.ts";
import type { ClientStatus, ServerStatus } from "../../lib/ops/status.ts";
import { bindUdp, classifySendError } from "../../lib/io/udp.ts";
import type { DatagramTransport, UdpAddress } from "../../lib/io/transport.ts";
import {
  type ProcessHandle,
  spawnCommand,
  STARTUP_TIMEOUT_MS,
  waitForListening,
  withTimeout,
} from "./harness.ts";

const LOOPBACK = "127.0.0.1";
const DATAGRAM_COUNT = 1000;
const DATAGRAM_BYTES = 300;
const REPLY_TIMEOUT_MS = 5_000;
const SETTLE_TIMEOUT_MS = 5_000;
const RUN_TIMEOUT_MS = 20_000;
/** The permissions of `deno task client` and `deno task server`. */
const TASK_PERMISSIONS = ["--allow-net", "--allow-read", "--allow-env=MPTUNNEL_SECRET"];
const CONTROL_LINE = /control endpoint listening address=127\.0\.0\.1:(\d+)/;

/** Starts client.ts or server.ts as its deno.json task does. */
function program(script: "client.ts" | "server.ts", args: readonly string[]): ProcessHandle {
  return spawnCommand(Deno.execPath(), ["run", ...TASK_PERMISSIONS, script, ...args], {
    name: script === "client.ts" ? "mpclient" : "mpserver",
    env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
  });
}

/** Runs a `status` command to its end. */
async function runStatus(
  script: "client.ts" | "server.ts",
  args: readonly string[],
): Promise<{ code: number; output: string }> {
  await using process = program(script, ["status", ...args]);
  const code = await withTimeout(process.exited, RUN_TIMEOUT_MS, `${script} status`);
  return { code, output: process.output() };
}

async function get(address: HostPort, path: string): Promise<{ status: number; body: string }> {
  const response = await fetch(`http://${formatHostPort(address)}${path}`);
  return { status: response.status, body: await response.text() };
}

async function getJson<T>(address: HostPort, path: string): Promise<T> {
  const { status, body } = await get(address, path);
  assert.equal(status, 200, `${path}: ${body}`);
  return JSON.parse(body) as T;
}

/** Every sample of an exposition, keyed `name{labels as written}`. */
async function getMetrics(address: HostPort): Promise<Map<string, number>> {
  const { status, body } = await get(address, "/metrics");
  assert.equal(status, 200);
  const samples = new Map<string, number>();
  for (const line of body.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})?) (\S+)$/.exec(line);
    assert.ok(match, `a sample line: ${line}`);
    samples.set(match[1], Number(match[2]));
  }
  return samples;
}

/** Polls `check` until it returns true, or fails with `what`. */
async function eventually(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = performance.now() + SETTLE_TIMEOUT_MS;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`${what} within ${SETTLE_TIMEOUT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Echoes every datagram back to its sender until the socket closes. */
async function echo(socket: DatagramTransport): Promise<void> {
  const buffer = new Uint8Array(65536);
  for (;;) {
    let received: [Uint8Array, UdpAddress];
    try {
      received = await socket.receive(buffer);
    } catch {
      return; // closed
    }
    try {
      await socket.send(received[0], received[1]);
    } catch (error) {
      if (classifySendError(error) === undefined) throw error;
    }
  }
}

/** Sends `count` datagrams of `bytes` one at a time, each after the previous one's echo came back. */
async function exchange(app: DatagramTransport, to: HostPort, count: number, bytes: number) {
  const destination = { transport: "udp" as const, hostname: to.hostname, port: to.port };
  const buffer = new Uint8Array(65536);
  const payload = new Uint8Array(bytes);
  const view = new DataView(payload.buffer);
  for (let seq = 0; seq < count; seq++) {
    view.setUint32(0, seq);
    await app.send(payload, destination);
    const reply = app.receive(buffer);
    const [echoed] = await withTimeout(reply, REPLY_TIMEOUT_MS, `the echo of datagram ${seq}`)
      .catch((error) => {
        reply.catch(() => {}); // it rejects when the socket closes
        throw error;
      });
    assert.equal(echoed.length, bytes);
    assert.equal(new DataView(echoed.buffer, echoed.byteOffset).getUint32(0), seq);
  }
}

Deno.test("after 1000 datagrams, /status and /metrics of both ends count them, per path", async () => {
  await using stack = new AsyncDisposableStack();
  const target = bindUdp({ hostname: LOOPBACK, port: 0 });
  const echoing = echo(target);
  stack.defer(async () => {
    target.close();
    await echoing;
  });

  const server = stack.use(program("server.ts", [
    `${LOOPBACK}:0`,
    LOOPBACK,
    String(target.localAddress.port),
    "--control",
    `${LOOPBACK}:0`,
  ]));
  const serverControl = {
    hostname: LOOPBACK,
    port: Number((await server.waitForLine(CONTROL_LINE, STARTUP_TIMEOUT_MS))[1]),
  };
  const serverPort = (await waitForListening(server)).port;

  const directory = await Deno.makeTempDir({ prefix: "mptunnel-control-" });
  stack.defer(() => Deno.remove(directory, { recursive: true }));
  const configFile = `${directory}/mpclient.conf`;
  await Deno.writeTextFile(
    configFile,
    `${LOOPBACK} ${serverPort} name alpha\n${LOOPBACK} ${serverPort} name beta\n`,
  );
  const client = stack.use(program("client.ts", [
    `${LOOPBACK}:0`,
    configFile,
    "--control",
    `${LOOPBACK}:0`,
  ]));
  const clientControl = {
    hostname: LOOPBACK,
    port: Number((await client.waitForLine(CONTROL_LINE, STARTUP_TIMEOUT_MS))[1]),
  };
  const clientPort = (await waitForListening(client)).port;
  await eventually("both paths up", async () => {
    const status = await getJson<ClientStatus>(clientControl, "/status");
    return status.paths.length === 2 && status.paths.every((path) => path.state === "up");
  });

  const app = stack.adopt(bindUdp({ hostname: LOOPBACK, port: 0 }), (socket) => socket.close());
  await exchange(
    app,
    { hostname: LOOPBACK, port: clientPort },
    DATAGRAM_COUNT,
    DATAGRAM_BYTES,
  );
  // The second copy of the last reply may still be on its way.
  await eventually("every redundant reply counted", async () => {
    const status = await getJson<ClientStatus>(clientControl, "/status");
    return status.traffic.duplicates >= DATAGRAM_COUNT;
  });

  // --- mpclient: /metrics before and after /status bracket it (probes keep counting meanwhile)
  const clientBefore = await getMetrics(clientControl);
  const clientStatus = await getJson<ClientStatus>(clientControl, "/status");
  const clientAfter = await getMetrics(clientControl);
  const appBytes = DATAGRAM_COUNT * DATAGRAM_BYTES;
  assert.equal(clientStatus.program, "mpclient");
  assert.equal(clientStatus.session.state, "established");
  assert.deepEqual(clientStatus.traffic.fromApp, { datagrams: DATAGRAM_COUNT, bytes: appBytes });
  assert.deepEqual(clientStatus.traffic.toApp, { datagrams: DATAGRAM_COUNT, bytes: appBytes });
  assert.equal(clientStatus.flows, 1);
  assert.ok(Object.values(clientStatus.drops).every((count) => count === 0), "no drops");
  assert.deepEqual(clientStatus.paths.map((path) => [path.name, path.state]), [
    ["alpha", "up"],
    ["beta", "up"],
  ]);
  for (const path of clientStatus.paths) {
    // Redundant: every datagram on both paths, and every reply back on both.
    assert.ok(path.sent.datagrams >= DATAGRAM_COUNT, `${path.name} sent ${path.sent.datagrams}`);
    assert.ok(path.received.datagrams >= DATAGRAM_COUNT, `${path.name} received`);
    assert.ok(path.sent.bytes > appBytes, `${path.name} sent bytes include the tunnel's header`);
    assert.equal(path.remote, `${LOOPBACK}:${serverPort}`);
    assert.ok(path.rttMs !== null && path.rttMs >= 0 && path.rttMs < 1000, `rtt ${path.rttMs}`);
  }
  for (const direction of ["from_app", "to_app"]) {
    const name = `mptunnel_app_datagrams_total{direction="${direction}"}`;
    assert.equal(clientBefore.get(name), DATAGRAM_COUNT, name);
    assert.equal(clientAfter.get(name), DATAGRAM_COUNT, name);
    const bytes = `mptunnel_app_bytes_total{direction="${direction}"}`;
    assert.equal(clientAfter.get(bytes), appBytes, bytes);
  }
  const bracketed = (before: Map<string, number>, after: Map<string, number>) =>
  (
    name: string,
    value: number,
  ) => {
    const low = before.get(name);
    const high = after.get(name);
    assert.ok(low !== undefined && high !== undefined, `${name} is exposed`);
    assert.ok(low <= value && value <= high, `${name}: ${low} ≤ ${value} ≤ ${high}`);
  };
  const clientBetween = bracketed(clientBefore, clientAfter);
  clientBetween("mptunnel_duplicates_total", clientStatus.traffic.duplicates);
  for (const path of clientStatus.paths) {
    const labels = (direction: string) => `{path="${path.name}",direction="${direction}"}`;
    clientBetween(`mptunnel_path_datagrams_total${labels("sent")}`, path.sent.datagrams);
    clientBetween(`mptunnel_path_datagrams_total${labels("received")}`, path.received.datagrams);
    clientBetween(`mptunnel_path_bytes_total${labels("sent")}`, path.sent.bytes);
    clientBetween(`mptunnel_path_bytes_total${labels("received")}`, path.received.bytes);
    assert.equal(clientAfter.get(`mptunnel_path_up{path="${path.name}"}`), 1);
  }
  assert.equal(clientAfter.get('mptunnel_drops_total{reason="replay"}'), 0);

  // --- mpserver
  const serverBefore = await getMetrics(serverControl);
  const serverStatus = await getJson<ServerStatus>(serverControl, "/status");
  const serverAfter = await getMetrics(serverControl);
  assert.equal(serverStatus.program, "mpserver");
  assert.equal(serverStatus.traffic.toTarget, DATAGRAM_COUNT);
  assert.equal(serverStatus.traffic.fromTarget, DATAGRAM_COUNT);
  assert.equal(serverStatus.sessionCount, 1);
  assert.equal(serverStatus.sessionsOpened, 1);
  assert.equal(serverStatus.targetSockets, 1);
  const [session] = serverStatus.sessions;
  assert.equal(session.id, clientStatus.session.id);
  assert.equal(session.confirmed, true);
  assert.equal(session.flows, 1);
  assert.ok(session.fromClient.datagrams >= DATAGRAM_COUNT);
  assert.ok(session.toClient.datagrams >= 2 * DATAGRAM_COUNT, "each reply on both paths");
  assert.equal(session.paths.length, 2);
  const localPorts = clientStatus.paths.map((path) => Number(path.local.split(":").at(-1)));
  for (const path of session.paths) {
    assert.ok(path.received >= DATAGRAM_COUNT, `${path.address} received ${path.received}`);
    assert.ok(localPorts.includes(Number(path.address.split(":").at(-1))), path.address);
  }
  for (
    const [direction, count] of [["to_target", DATAGRAM_COUNT], ["from_target", DATAGRAM_COUNT]]
  ) {
    const name = `mptunnel_target_datagrams_total{direction="${direction}"}`;
    assert.equal(serverBefore.get(name), count, name);
    assert.equal(serverAfter.get(name), count, name);
  }
  assert.equal(serverAfter.get("mptunnel_sessions"), 1);
  assert.equal(serverAfter.get("mptunnel_sessions_opened_total"), 1);
  assert.equal(serverAfter.get("mptunnel_target_sockets"), 1);
  const serverBetween = bracketed(serverBefore, serverAfter);
  serverBetween(
    'mptunnel_server_datagrams_total{direction="received"}',
    serverStatus.traffic.received.datagrams,
  );
  serverBetween(
    'mptunnel_server_datagrams_total{direction="sent"}',
    serverStatus.traffic.sent.datagrams,
  );
  serverBetween("mptunnel_duplicates_total", serverStatus.traffic.duplicates);
  assert.ok(serverStatus.traffic.received.datagrams >= 2 * DATAGRAM_COUNT, "both copies arrived");

  // --- routes
  assert.equal((await get(clientControl, "/nope")).status, 404);
  assert.equal((await get(serverControl, "/nope")).status, 404);
  const page = await get(clientControl, "/");
  assert.equal(page.status, 200);
  assert.match(page.body, /^<!doctype html>/i);

  // --- `status` commands
  const table = await runStatus("client.ts", ["--control", formatHostPort(clientControl)]);
  assert.equal(table.code, 0, table.output);
  assert.match(table.output, /^PATH +STATE +REMOTE/m);
  assert.match(table.output, /^alpha +up +127\.0\.0\.1:\d+ /m);
  assert.match(table.output, /^beta +up +127\.0\.0\.1:\d+ /m);
  assert.match(table.output, new RegExp(`from app ${DATAGRAM_COUNT} \\(300 kB\\)`));

  const json = await runStatus("client.ts", ["--control", String(clientControl.port), "--json"]);
  assert.equal(json.code, 0, json.output);
  const parsed = JSON.parse(json.output) as ClientStatus;
  assert.equal(parsed.session.id, clientStatus.session.id);
  assert.deepEqual(parsed.paths.map((path) => path.name), ["alpha", "beta"]);

  const serverTable = await runStatus("server.ts", ["--control", formatHostPort(serverControl)]);
  assert.equal(serverTable.code, 0, serverTable.output);
  assert.match(serverTable.output, new RegExp(`^${session.id} +confirmed `, "m"));
  assert.match(serverTable.output, new RegExp(`to target ${DATAGRAM_COUNT} `));

  // The address can come from the configuration file's control line.
  const withControl = `${directory}/with-control.conf`;
  await Deno.writeTextFile(
    withControl,
    `control ${formatHostPort(clientControl)}\n${LOOPBACK} ${serverPort}\n`,
  );
  const fromFile = await runStatus("client.ts", [withControl, "--json"]);
  assert.equal(fromFile.code, 0, fromFile.output);
  assert.equal((JSON.parse(fromFile.output) as ClientStatus).session.id, clientStatus.session.id);

  // --watch refreshes until interrupted, then exits cleanly.
  await using watcher = program("client.ts", [
    "status",
    "--control",
    formatHostPort(clientControl),
    "--watch",
    "--interval",
    "200ms",
  ]);
  await watcher.waitForLine(/^PATH +STATE/, STARTUP_TIMEOUT_MS);
  await watcher.waitForLine(/^PATH +STATE/, STARTUP_TIMEOUT_MS);
  watcher.kill("SIGINT");
  assert.equal(await withTimeout(watcher.exited, RUN_TIMEOUT_MS, "status --watch"), 0);
});

/** A TCP port on loopback where nothing listened a moment ago (bound to port 0, read, closed). */
function closedTcpPort(): number {
  const listener = Deno.listen({ hostname: LOOPBACK, port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** True when something accepts TCP connections on `port` of loopback now. */
async function somethingListens(port: number): Promise<boolean> {
  try {
    (await Deno.connect({ hostname: LOOPBACK, port })).close();
    return true;
  } catch {
    return false;
  }
}

Deno.test("status against a port where nothing listens: one line, exit code 1", async () => {
  // Another process may start listening on the freed port before the status command connects: then
  // the answer is about that process, and the test tries again on another port.
  for (let attempt = 1;; attempt++) {
    const port = closedTcpPort();
    const outcome = await runStatus("client.ts", ["--control", `${LOOPBACK}:${port}`]);
    const server = await runStatus("server.ts", ["--control", String(port)]);
    if (attempt < 3 && await somethingListens(port)) continue;
    assert.equal(outcome.code, 1, outcome.output);
    assert.equal(
      outcome.output.trim(),
      `mpclient: no control endpoint at ${LOOPBACK}:${port}: is mpclient running with --control?`,
    );
    assert.equal(server.code, 1, server.output);
    assert.match(
      server.output,
      /^mpserver: no control endpoint at .*is mpserver running with --control\?$/,
    );
    return;
  }
});

Deno.test("status without an address is a usage error (exit 2)", async () => {
  const outcome = await runStatus("server.ts", []);
  assert.equal(outcome.code, 2, outcome.output);
  assert.match(outcome.output, /^mpserver: status needs the control address/);
});
