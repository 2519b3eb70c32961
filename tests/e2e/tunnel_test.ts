/**
 * End-to-end tests of the whole tunnel with real processes on loopback:
 *
 * ```
 * traffic stream ─► mpclient ─┬─► bridge ─┐
 * (this process)              ├─► bridge ─┼─► mpserver ─► target (a sink or an echo in this
 *                             └─► bridge ─┘               process, iperf, dnsmasq)
 * ```
 *
 * Each test prints the figures it measured, so they can be quoted. Everything listens on 127.0.0.1,
 * and every process is killed (and awaited) when its test ends, passed or failed.
 */

import assert from "node:assert/strict";
import { generateSecret } from "../../lib/crypto/secret.ts";
import {
  formatSinkReport,
  formatStreamReport,
  runTrafficSink,
  runTrafficStream,
  type SinkStreamReport,
  type StreamReport,
  type TrafficSink,
} from "../../tools/traffic.ts";
import { bindUdp, classifySendError } from "../../lib/io/udp.ts";
import type { DatagramTransport } from "../../lib/io/transport.ts";
import {
  delay,
  denoScript,
  PATHS_UP_TIMEOUT_MS,
  type ProcessHandle,
  requireTools,
  show,
  spawnCommand,
  spawnDnsmasq,
  startOnFreePort,
  STARTUP_TIMEOUT_MS,
  toolsMissing,
  waitForCount,
  waitForListening,
  withTimeout,
} from "./harness.ts";

const LOOPBACK = "127.0.0.1";
/** How long a stopped program may take to exit. */
const EXIT_TIMEOUT_MS = 10_000;
/** The largest application datagram the tunnel carries: 65 507 − 36 bytes of header and tag. */
const MAX_TUNNELLED_BYTES = 65_471;
/** Socat forgets an idle client after this long (its children exit). */
const SOCAT_IDLE_SECONDS = 20;

// ---------------------------------------------------------------------------------------------------
// The target: a sink that measures what arrives, and optionally echoes it back

/** A traffic sink standing in for the target service, which can also echo every datagram. */
interface Target {
  readonly port: number;
  readonly sink: TrafficSink;
  /** Every source address the target heard from, as `HOST:PORT`. */
  readonly sources: ReadonlySet<string>;
  /** How many datagrams of each size arrived (to tell a drop from a truncation). */
  readonly sizes: ReadonlyMap<number, number>;
  /** When each datagram arrived (`performance.now()`), in order. */
  readonly arrivalTimes: readonly number[];
}

/**
 * Starts a sink on loopback; with `echo`, each datagram is also sent back to its sender before the
 * sink counts it, so one run measures both the forward direction (at the target) and the round trip
 * (at the application).
 */
function startTarget(stack: AsyncDisposableStack, options: { readonly echo: boolean }): Target {
  const socket = bindUdp({ hostname: LOOPBACK, port: 0 });
  const sources = new Set<string>();
  const sizes = new Map<number, number>();
  const arrivalTimes: number[] = [];
  const tapped: DatagramTransport = {
    localAddress: socket.localAddress,
    send: (datagram, to) => socket.send(datagram, to),
    close: () => socket.close(),
    async receive(buffer) {
      const [datagram, from] = await socket.receive(buffer);
      arrivalTimes.push(performance.now());
      sources.add(`${from.hostname}:${from.port}`);
      sizes.set(datagram.length, (sizes.get(datagram.length) ?? 0) + 1);
      if (options.echo) {
        try {
          await socket.send(datagram, from);
        } catch (error) {
          if (classifySendError(error) === undefined) throw error;
        }
      }
      return [datagram, from];
    },
  };
  const sink = runTrafficSink({ listen: { hostname: LOOPBACK, port: 0 }, transport: tapped });
  stack.defer(async () => void await sink.stop());
  return { port: socket.localAddress.port, sink, sources, sizes, arrivalTimes };
}

// ---------------------------------------------------------------------------------------------------
// Processes

/** Hands a process to the stack, which kills (SIGTERM, then SIGKILL) and awaits it at the end. */
function own(stack: AsyncDisposableStack, handle: ProcessHandle): ProcessHandle {
  return stack.use(handle);
}

function startServer(
  stack: AsyncDisposableStack,
  port: number,
  targetPort: number,
  env: Record<string, string> = {},
): ProcessHandle {
  return own(
    stack,
    denoScript("server.ts", [`${LOOPBACK}:${port}`, LOOPBACK, String(targetPort)], {
      name: "mpserver",
      env,
    }),
  );
}

function startClient(
  stack: AsyncDisposableStack,
  port: number,
  configFile: string,
  name = "mpclient",
  env: Record<string, string> = {},
): ProcessHandle {
  return own(stack, denoScript("client.ts", [`${LOOPBACK}:${port}`, configFile], { name, env }));
}

/** The ids of the processes whose parent is `pid` (from /proc, as socat's children are unknown). */
function childProcessIds(pid: number): number[] {
  const children: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    let stat: string;
    try {
      stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
    } catch {
      continue; // it exited while we looked
    }
    // "pid (comm) state ppid …": the command may hold spaces and parentheses, so split after it.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(fields[1]) === pid) children.push(Number(entry.name));
  }
  return children;
}

/**
 * Starts `socat` as a plain UDP relay. Its `fork` option makes one child per client address, and
 * those children outlive a killed parent (until idle for -T seconds), so disposal kills them too.
 */
function startSocatBridge(
  stack: AsyncDisposableStack,
  port: number,
  serverPort: number,
): ProcessHandle {
  const handle = spawnCommand("socat", [
    "-d",
    "-d",
    "-T",
    String(SOCAT_IDLE_SECONDS),
    `udp4-listen:${port},bind=${LOOPBACK},reuseaddr,fork`,
    `udp4:${LOOPBACK}:${serverPort}`,
  ], { name: `socat ${port}` });
  stack.defer(async () => {
    // The children hold the parent's output pipes: kill them too, or the handle waits for them.
    const children = childProcessIds(handle.pid);
    handle.kill("SIGTERM");
    for (const child of children) killIfRunning(child);
    await handle[Symbol.asyncDispose]();
  });
  return handle;
}

/** Sends SIGTERM to `pid` unless it has exited already. */
function killIfRunning(pid: number): void {
  try {
    Deno.kill(pid, "SIGTERM");
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

/**
 * How many datagrams the kernel dropped because a socket's receive buffer was full, summed over the
 * UDP sockets each process holds (from /proc). A loss on clean paths with drops here means a process
 * was starved of CPU (the machine is shared), not that the tunnel misbehaved.
 */
function receiveBufferDrops(processes: readonly { name: string; pid: number }[]): string {
  const dropsByInode = new Map<string, number>();
  for (const table of ["/proc/net/udp", "/proc/net/udp6"]) {
    let text: string;
    try {
      text = Deno.readTextFileSync(table);
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length >= 13) dropsByInode.set(fields[9], Number(fields[12]));
    }
  }
  const socketDrops = (pid: number): number => {
    let drops = 0;
    try {
      for (const entry of Deno.readDirSync(`/proc/${pid}/fd`)) {
        try {
          const inode = Deno.readLinkSync(`/proc/${pid}/fd/${entry.name}`).match(
            /^socket:\[(\d+)\]$/,
          )
            ?.[1];
          if (inode !== undefined) drops += dropsByInode.get(inode) ?? 0;
        } catch {
          // the descriptor closed while we looked
        }
      }
    } catch {
      // the process has exited
    }
    return drops;
  };
  return processes.map(({ name, pid }) => `${name} ${socketDrops(pid)}`).join(", ");
}

/**
 * Waits until the client (whose start line was seen) has its session established and each of its
 * `pathCount` paths up.
 */
async function waitForClientReady(client: ProcessHandle, pathCount: number): Promise<void> {
  await waitForCount(client, /session established/g, 1, PATHS_UP_TIMEOUT_MS);
  await waitForCount(client, /path up/g, pathCount, PATHS_UP_TIMEOUT_MS);
}

// ---------------------------------------------------------------------------------------------------
// A whole tunnel

/** What kind of relays stand between mpclient and mpserver. */
type BridgeKind = "mpbridge" | "socat";

interface TunnelOptions {
  readonly targetPort: number;
  readonly bridgeKind?: BridgeKind;
  readonly bridgeCount?: number;
  /** Random loss in each direction of each mpbridge. */
  readonly lossPercent?: number;
  /** The first bridge's seed; the others get the next ones. */
  readonly seed?: number;
  readonly clientCount?: number;
  /** Give both ends a fresh shared secret (through MPTUNNEL_SECRET). */
  readonly secret?: boolean;
  /** Lines added to mpclient's file after the paths, e.g. `mode balance`. */
  readonly clientConfig?: readonly string[];
}

/** A running application → mpclient(s) → bridges → mpserver chain. */
interface Tunnel {
  readonly serverPort: number;
  readonly bridgePorts: readonly number[];
  readonly clientPorts: readonly number[];
  readonly configFile: string;
  server: ProcessHandle;
  readonly bridges: ProcessHandle[];
  readonly clients: ProcessHandle[];
  /** Starts bridge `index` again on its port (after it was killed). */
  restartBridge(index: number): ProcessHandle;
  /** Receive-buffer drops in each process of the tunnel and in this one (see {@link receiveBufferDrops}). */
  receiveBufferDrops(): string;
  /** Kills mpserver with SIGKILL and starts a new one on the same port at once. */
  killAndRestartServer(): Promise<void>;
  /** Kills mpclient `index` with SIGKILL and starts a new one on the same port at once. */
  killAndRestartClient(index: number): Promise<void>;
}

async function startTunnel(stack: AsyncDisposableStack, options: TunnelOptions): Promise<Tunnel> {
  const bridgeKind = options.bridgeKind ?? "mpbridge";
  const bridgeCount = options.bridgeCount ?? 3;
  const clientCount = options.clientCount ?? 1;

  // Every program binds port 0 and says in its start line which port it got; only a restart
  // binds a port again, the one its killed predecessor held.
  const env: Record<string, string> = options.secret ? { MPTUNNEL_SECRET: generateSecret() } : {};
  const server = startServer(stack, 0, options.targetPort, env);
  const serverPort = (await waitForListening(server)).port;
  const startBridge = (port: number, index: number) => {
    if (bridgeKind === "socat") return startSocatBridge(stack, port, serverPort);
    const impairment = options.lossPercent === undefined
      ? []
      : ["--loss", String(options.lossPercent), "--seed", String((options.seed ?? 1) + 2 * index)];
    return own(
      stack,
      denoScript(
        "bridge.ts",
        [`${LOOPBACK}:${port}`, LOOPBACK, String(serverPort), ...impairment],
        {
          name: `mpbridge ${index + 1}`,
        },
      ),
    );
  };
  const bridges: ProcessHandle[] = [];
  const bridgePorts: number[] = [];
  if (bridgeKind === "socat") {
    // socat must be given its port: with `fork` it listens again on that port after each client.
    for (let index = 0; index < bridgeCount; index++) {
      const started = await startOnFreePort(
        (port) => startSocatBridge(stack, port, serverPort),
        /listening on/,
      );
      bridges.push(started.handle);
      bridgePorts.push(started.port);
    }
  } else {
    bridges.push(...Array.from({ length: bridgeCount }, (_, index) => startBridge(0, index)));
    for (const bridge of bridges) bridgePorts.push((await waitForListening(bridge)).port);
  }

  const configFile = await Deno.makeTempFile({ prefix: "mpclient-", suffix: ".conf" });
  stack.defer(() => Deno.remove(configFile));
  await Deno.writeTextFile(
    configFile,
    bridgePorts.map((port) => `${LOOPBACK} ${port}\n`).join("") +
      (options.clientConfig ?? []).map((line) => `${line}\n`).join(""),
  );
  const clients = Array.from(
    { length: clientCount },
    (_, index) => startClient(stack, 0, configFile, `mpclient ${index + 1}`, env),
  );
  const clientPorts: number[] = [];
  for (const client of clients) clientPorts.push((await waitForListening(client)).port);
  for (const client of clients) await waitForClientReady(client, bridgeCount);

  const tunnel: Tunnel = {
    serverPort,
    bridgePorts,
    clientPorts,
    configFile,
    server,
    bridges,
    clients,
    receiveBufferDrops() {
      const bridgeProcesses = bridges.flatMap((bridge) => [
        bridge,
        ...childProcessIds(bridge.pid).map((pid) => ({ name: `${bridge.name} child`, pid })),
      ]);
      return receiveBufferDrops([
        ...tunnel.clients,
        ...bridgeProcesses,
        tunnel.server,
        { name: "this process (application and target)", pid: Deno.pid },
      ]);
    },
    restartBridge(index) {
      tunnel.bridges[index] = startBridge(bridgePorts[index], index);
      return tunnel.bridges[index];
    },
    async killAndRestartServer() {
      tunnel.server.kill("SIGKILL");
      await tunnel.server.exited;
      tunnel.server = startServer(stack, serverPort, options.targetPort, env);
    },
    async killAndRestartClient(index) {
      tunnel.clients[index].kill("SIGKILL");
      await tunnel.clients[index].exited;
      tunnel.clients[index] = startClient(
        stack,
        clientPorts[index],
        configFile,
        `mpclient ${index + 1}`,
        env,
      );
    },
  };
  return tunnel;
}

// ---------------------------------------------------------------------------------------------------
// Measuring

function streamTo(port: number) {
  return { hostname: LOOPBACK, port };
}

/** The sink's figures for one stream; fails when the stream never arrived. */
function arrivals(target: Target, stream: StreamReport): SinkStreamReport {
  const report = target.sink.stream(stream.streamId);
  assert.ok(report, `nothing of stream ${stream.streamId.toString(16)} reached the target`);
  return report;
}

function percent(part: number, whole: number): string {
  return `${(100 * part / whole).toFixed(2)} %`;
}

/** The stats line a program logs when it stops, or a failure quoting its output. */
async function stopAndReadStats(handle: ProcessHandle, signal: Deno.Signal): Promise<string> {
  handle.kill(signal);
  const code = await withTimeout(handle.exited, EXIT_TIMEOUT_MS, `${handle.name} exiting`);
  const match = handle.output().match(new RegExp(`stopped on ${signal}.*`));
  assert.ok(match, `${handle.name} printed no "stopped on ${signal}" line:\n${handle.output()}`);
  assert.equal(code, 0, `${handle.name} exit code:\n${handle.output()}`);
  return match[0];
}

/** A loss figure of one direction through one relay: datagrams that came in, and those dropped. */
interface AppliedLoss {
  readonly where: string;
  readonly arrived: number;
  readonly dropped: number;
}

/** The fewest datagrams through one relay in one direction for its loss ratio to be checked. */
const MIN_DATAGRAMS_FOR_LOSS_RATIO = 1000;
/** How far a relay's measured loss may be from the one asked for (about 4 σ at 1000 datagrams). */
const LOSS_TOLERANCE_POINTS = 5;

/** One line per relay and direction, to print. */
function describeLosses(losses: readonly AppliedLoss[]): string[] {
  return losses.map(({ where, arrived, dropped }) =>
    `${where}: dropped ${dropped} of ${arrived}${
      arrived === 0 ? "" : ` (${percent(dropped, arrived)})`
    }`
  );
}

/**
 * Checks that the impairment the test asked for really happened: each direction of each relay that
 * carried enough datagrams to tell dropped `lossPercent` ± 5 points of them. A test of the tunnel
 * under loss that ran without loss would prove nothing.
 */
function assertLossApplied(losses: readonly AppliedLoss[], lossPercent: number): void {
  const figures = describeLosses(losses).join("\n");
  const checked = losses.filter((loss) => loss.arrived >= MIN_DATAGRAMS_FOR_LOSS_RATIO);
  assert.ok(checked.length > 0, `no relay carried enough datagrams to check the loss:\n${figures}`);
  for (const { where, arrived, dropped } of checked) {
    assert.ok(
      Math.abs(100 * dropped / arrived - lossPercent) <= LOSS_TOLERANCE_POINTS,
      `${where} dropped ${percent(dropped, arrived)}, not about ${lossPercent} %:\n${figures}`,
    );
  }
}

/** The datagrams in and dropped by `--loss`, per direction, from an mpbridge's stats line. */
function bridgeLosses(name: string, statsLine: string): AppliedLoss[] {
  return [...statsLine.matchAll(/(upstream|downstream) in=(\d+) .*?dropped:([^;"]*)/g)].map((
    [, direction, arrived, drops],
  ) => ({
    where: `${name} ${direction}`,
    arrived: Number(arrived),
    dropped: Number(/\bloss=(\d+)/.exec(drops)?.[1] ?? 0),
  }));
}

/** Stops `bridges` (mpbridges, SIGTERM) and reads what their `--loss` dropped from their stats lines. */
async function stopBridgesAndReadLosses(bridges: readonly ProcessHandle[]): Promise<AppliedLoss[]> {
  const losses: AppliedLoss[] = [];
  for (const bridge of bridges) {
    losses.push(...bridgeLosses(bridge.name, await stopAndReadStats(bridge, "SIGTERM")));
  }
  return losses;
}

// ---------------------------------------------------------------------------------------------------
// The tests

/**
 * The standard scene's stream: 1000-byte datagrams every 2 ms (the gentler end of 1–2 ms, as the
 * machine is shared), 5000 of them, so the loss is measured to about ±0.15 %.
 */
const LOSSY_STREAM = { sizeBytes: 1000, intervalMs: 2, count: 5000 } as const;

Deno.test("3 mpbridges at 20 % loss each way: forward loss ≤ 1.6 %, no duplicates at the target", async () => {
  await using stack = new AsyncDisposableStack();
  const target = startTarget(stack, { echo: false });
  const tunnel = await startTunnel(stack, { targetPort: target.port, lossPercent: 20, seed: 101 });

  const stream = await runTrafficStream({
    target: streamTo(tunnel.clientPorts[0]),
    ...LOSSY_STREAM,
    drainMs: 0,
  });
  await target.sink.waitForReceived(stream.sent, 500, stream.streamId);
  const arrived = arrivals(target, stream);
  const lost = stream.sent - arrived.received;
  const receiveBufferDrops = tunnel.receiveBufferDrops();
  const applied = await stopBridgesAndReadLosses(tunnel.bridges);
  show("forward, 3 × 20 % loss (mpbridge, seeds 101/103/105)", [
    `sent ${stream.sent} × 1000 B in ${(stream.sendingMs / 1000).toFixed(2)} s`,
    `target received ${arrived.received}, lost ${lost} (${percent(lost, stream.sent)}), ` +
    `duplicates ${arrived.duplicates}, corrupted ${arrived.corrupted}, ` +
    `out of order ${arrived.outOfOrder}, longest silence ${arrived.longestSilenceMs.toFixed(0)} ms`,
    `receive-buffer drops: ${receiveBufferDrops}`,
    ...describeLosses(applied),
  ]);
  assertLossApplied(applied, 20);
  assert.ok(stream.sent >= 5000, `sent only ${stream.sent}`);
  assert.equal(arrived.duplicates, 0, "duplicates at the target");
  assert.equal(arrived.corrupted, 0, "corrupted at the target");
  assert.equal(target.sink.report().foreign, 0, "foreign datagrams at the target");
  assert.ok(lost / stream.sent <= 0.016, `forward loss ${percent(lost, stream.sent)} > 1.6 %`);
});

Deno.test("3 mpbridges at 20 % loss each way: round-trip loss ≤ 3.2 %, no duplicates either way", async () => {
  await using stack = new AsyncDisposableStack();
  const target = startTarget(stack, { echo: true });
  const tunnel = await startTunnel(stack, { targetPort: target.port, lossPercent: 20, seed: 201 });

  const stream = await runTrafficStream({
    target: streamTo(tunnel.clientPorts[0]),
    ...LOSSY_STREAM,
    drainMs: 1000,
  });
  const arrived = arrivals(target, stream);
  const forwardLost = stream.sent - arrived.received;
  const receiveBufferDrops = tunnel.receiveBufferDrops();
  const applied = await stopBridgesAndReadLosses(tunnel.bridges);
  show("round trip, 3 × 20 % loss (mpbridge, seeds 201/203/205), echo target", [
    ...formatStreamReport(stream),
    `target received ${arrived.received} (forward loss ${percent(forwardLost, stream.sent)}), ` +
    `duplicates ${arrived.duplicates}`,
    `receive-buffer drops: ${receiveBufferDrops}`,
    ...describeLosses(applied),
  ]);
  assertLossApplied(applied, 20);
  assert.ok(stream.sent >= 5000, `sent only ${stream.sent}`);
  assert.equal(stream.duplicates, 0, "duplicates back at the application");
  assert.equal(arrived.duplicates, 0, "duplicates at the target");
  assert.equal(stream.corrupted + stream.foreign, 0, "corrupted or foreign replies");
  assert.ok(stream.lossRatio <= 0.032, `round-trip loss ${percent(stream.lost, stream.sent)}`);
});

/**
 * Drops a random `percent` of what enters each bridge port and of what leaves it, with nftables on
 * loopback (the standard scene's impairment, for bridges that have none of their own, like socat).
 * Only these ports are touched; the table is deleted when the stack is disposed. Resolves with a
 * function that reads the rules' counters: what came in and what was dropped, each way.
 */
async function dropAtBridgePorts(
  stack: AsyncDisposableStack,
  ports: readonly number[],
  percent: number,
): Promise<() => Promise<AppliedLoss[]>> {
  const table = `mptunnel_test_${Deno.pid}`;
  const set = `{ ${ports.join(", ")} }`;
  // Toward a bridge (dport) and back from it (sport): each datagram crosses the input hook once.
  const rules = `table inet ${table} {
  chain input {
    type filter hook input priority 0; policy accept;
    udp dport ${set} counter comment "toward-in"
    udp dport ${set} numgen random mod 100 < ${percent} counter drop comment "toward-dropped"
    udp sport ${set} counter comment "back-in"
    udp sport ${set} numgen random mod 100 < ${percent} counter drop comment "back-dropped"
  }
}
`;
  const nft = (args: string[], input?: string) => {
    const child = new Deno.Command("nft", {
      args,
      stdin: input ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    })
      .spawn();
    if (input) {
      const writer = child.stdin.getWriter();
      void writer.write(new TextEncoder().encode(input)).then(() => writer.close());
    }
    return child.output();
  };
  const added = await nft(["-f", "-"], rules);
  assert.ok(added.success, `nft: ${new TextDecoder().decode(added.stderr)}`);
  stack.defer(async () => {
    await nft(["delete", "table", "inet", table]);
  });
  return async () => {
    const listed = await nft(["list", "table", "inet", table]);
    const text = new TextDecoder().decode(listed.stdout);
    assert.ok(listed.success, `nft list: ${new TextDecoder().decode(listed.stderr)}`);
    const counter = (comment: string) => {
      const packets = new RegExp(`counter packets (\\d+) .*comment "${comment}"`).exec(text)?.[1];
      assert.ok(packets !== undefined, `no counter "${comment}" in:\n${text}`);
      return Number(packets);
    };
    return [
      {
        where: "toward the bridges",
        arrived: counter("toward-in"),
        dropped: counter("toward-dropped"),
      },
      {
        where: "back from the bridges",
        arrived: counter("back-in"),
        dropped: counter("back-dropped"),
      },
    ];
  };
}

Deno.test({
  name: "3 socat bridges with nftables dropping 20 % each way: forward loss ≤ 1.6 %, no duplicates",
  ignore: toolsMissing(["socat", "nft"]) !== undefined,
}, async () => {
  requireTools(["socat", "nft"]);
  await using stack = new AsyncDisposableStack();
  const target = startTarget(stack, { echo: false });
  const tunnel = await startTunnel(stack, { targetPort: target.port, bridgeKind: "socat" });
  const readDrops = await dropAtBridgePorts(stack, tunnel.bridgePorts, 20);

  const stream = await runTrafficStream({
    target: streamTo(tunnel.clientPorts[0]),
    ...LOSSY_STREAM,
    drainMs: 0,
  });
  await target.sink.waitForReceived(stream.sent, 500, stream.streamId);
  const arrived = arrivals(target, stream);
  const lost = stream.sent - arrived.received;
  const applied = await readDrops();
  show("forward, 3 × 20 % loss (socat bridges, nftables numgen drop on their ports)", [
    `sent ${stream.sent} × 1000 B, target received ${arrived.received}, lost ${lost} ` +
    `(${percent(lost, stream.sent)}), duplicates ${arrived.duplicates}`,
    `receive-buffer drops: ${tunnel.receiveBufferDrops()}`,
    ...describeLosses(applied),
  ]);
  assertLossApplied(applied, 20);
  assert.ok(stream.sent >= 5000, `sent only ${stream.sent}`);
  assert.ok(lost / stream.sent <= 0.016, `forward loss ${percent(lost, stream.sent)}`);
  assert.ok(lost > 0, "the nftables rules dropped nothing: the loss was not applied");
  assert.equal(arrived.duplicates, 0, "duplicates at the target");
});

Deno.test({
  name: "socat works as a bridge: 3 socat relays without loss lose and duplicate nothing",
  ignore: toolsMissing(["socat"]) !== undefined,
}, async () => {
  requireTools(["socat"]);
  await using stack = new AsyncDisposableStack();
  const target = startTarget(stack, { echo: true });
  const tunnel = await startTunnel(stack, { targetPort: target.port, bridgeKind: "socat" });

  const stream = await runTrafficStream({
    target: streamTo(tunnel.clientPorts[0]),
    sizeBytes: 1000,
    intervalMs: 2,
    count: 1000,
    drainMs: 1000,
  });
  const arrived = arrivals(target, stream);
  show("round trip over 3 socat bridges, no loss", [
    ...formatStreamReport(stream),
    `target received ${arrived.received}, duplicates ${arrived.duplicates}`,
    `receive-buffer drops: ${tunnel.receiveBufferDrops()}`,
  ]);
  assert.equal(arrived.duplicates, 0, "duplicates at the target");
  assert.equal(stream.duplicates, 0, "duplicates at the application");
  // Nothing is lost on a quiet machine; a few datagrams may be when other test files run beside
  // this one (deno test --parallel) and starve mpserver for a while. A relay that misroutes
  // replies loses all of them.
  assert.ok(stream.lossRatio <= 0.005, `lost ${stream.lost} of ${stream.sent} round trips`);
  assert.ok(
    (stream.sent - arrived.received) / stream.sent <= 0.005,
    `lost ${stream.sent - arrived.received} of ${stream.sent} on the way to the target`,
  );
});

/** What {@link streamAcross} measured. */
interface DisruptedStream {
  readonly stream: StreamReport;
  /** When each reply reached the application (`performance.now()`), in order. */
  readonly replyTimes: readonly number[];
  /** The restart: from just before the kill to when the new process's start line was seen. */
  readonly restart: TimeWindow;
}

/** A span of `performance.now()` time. */
interface TimeWindow {
  readonly from: number;
  readonly to: number;
}

/**
 * Streams through `tunnel` (a datagram of 1000 B every 2 ms); after `disruptAtMs` calls
 * `disrupt`, which kills and restarts a process and resolves once the new one has printed its
 * start line; the stream goes on for `afterMs` from then. The time from the kill to that line is
 * the restart, left out of the silences (see {@link silenceOutsideMs}): how long a new process
 * takes to start is the machine's (seconds when other work shares it), not the tunnel's.
 */
async function streamAcross(
  tunnel: Tunnel,
  disruptAtMs: number,
  disrupt: () => Promise<void>,
  afterMs: number,
): Promise<DisruptedStream> {
  const socket = bindUdp({ hostname: LOOPBACK, port: 0 });
  const replyTimes: number[] = [];
  const tapped: DatagramTransport = {
    localAddress: socket.localAddress,
    send: (datagram, to) => socket.send(datagram, to),
    close: () => socket.close(),
    async receive(buffer) {
      const received = await socket.receive(buffer);
      replyTimes.push(performance.now());
      return received;
    },
  };
  const stopSending = new AbortController();
  const streaming = runTrafficStream({
    target: streamTo(tunnel.clientPorts[0]),
    sizeBytes: 1000,
    intervalMs: 2,
    signal: stopSending.signal,
    drainMs: 1000,
    transport: tapped,
  });
  let restart: TimeWindow = { from: 0, to: 0 };
  try {
    await delay(disruptAtMs);
    const from = performance.now();
    await disrupt();
    restart = { from, to: performance.now() };
    await delay(afterMs);
  } finally {
    stopSending.abort();
  }
  return { stream: await streaming, replyTimes, restart };
}

/**
 * The longest time without an arrival, leaving out of each silence the part of it inside
 * `excluded` (a restart, which begins with the silence the kill causes); Infinity when nothing
 * arrived after `excluded`.
 */
function silenceOutsideMs(arrivalTimes: readonly number[], excluded: TimeWindow): number {
  if ((arrivalTimes.at(-1) ?? 0) < excluded.to) return Infinity;
  let longest = 0;
  for (let index = 1; index < arrivalTimes.length; index++) {
    const [before, after] = [arrivalTimes[index - 1], arrivalTimes[index]];
    const overlap = Math.max(0, Math.min(after, excluded.to) - Math.max(before, excluded.from));
    longest = Math.max(longest, after - before - overlap);
  }
  return longest;
}

/** How long the tunnel may stay silent, the restart (kill to start line) left out. */
const RESUME_WITHIN_MS = 1500;
/** How long the stream goes on after the restarted process's start line. */
const STREAM_AFTER_RESTART_MS = 3000;

for (const secret of [false, true]) {
  const keys = secret ? ", with a secret" : "";
  Deno.test(`mpserver killed with SIGKILL and restarted mid-stream${keys}: traffic resumes within 1.5 s`, async () => {
    await using stack = new AsyncDisposableStack();
    const target = startTarget(stack, { echo: true });
    const tunnel = await startTunnel(stack, {
      targetPort: target.port,
      lossPercent: 20,
      seed: 301,
      secret,
    });

    let restartMs = 0;
    const { stream, replyTimes, restart } = await streamAcross(tunnel, 1500, async () => {
      const killedAt = performance.now();
      await tunnel.killAndRestartServer();
      await tunnel.server.waitForLine(/mpserver \S+ started/, STARTUP_TIMEOUT_MS);
      restartMs = performance.now() - killedAt;
    }, STREAM_AFTER_RESTART_MS);
    const arrived = arrivals(target, stream);
    const targetSilenceMs = silenceOutsideMs(target.arrivalTimes, restart);
    const replySilenceMs = silenceOutsideMs(replyTimes, restart);
    const receiveBufferDrops = tunnel.receiveBufferDrops();
    const applied = await stopBridgesAndReadLosses(tunnel.bridges);
    show(`mpserver SIGKILL + restart at 1.5 s of a stream, 3 s more after (3 × 20 % loss${keys})`, [
      `new mpserver printed "started" ${restartMs.toFixed(0)} ms after the kill`,
      `longest silence outside the restart: at the target ${targetSilenceMs.toFixed(0)} ms, ` +
      `of the replies ${replySilenceMs.toFixed(0)} ms`,
      `longest silence overall: at the target ${arrived.longestSilenceMs.toFixed(0)} ms, ` +
      `of the replies ${stream.longestSilenceMs.toFixed(0)} ms`,
      `target received ${arrived.received}/${stream.sent}, duplicates ${arrived.duplicates}; ` +
      `replies ${stream.received}, duplicates ${stream.duplicates}`,
      `receive-buffer drops: ${receiveBufferDrops}`,
      ...describeLosses(applied),
    ]);
    assertLossApplied(applied, 20);
    // The new mpserver resets the old session; the client handshakes again under the same id.
    const sessionId = tunnel.clients[0].output().match(/session established session=(\w+)/)?.[1];
    assert.match(tunnel.clients[0].output(), /server does not know our session/);
    assert.match(tunnel.server.output(), new RegExp(`session started session=${sessionId} `));
    // The sink cannot see a silence that never ends: check that the stream's last datagrams arrived.
    assert.ok(
      arrived.highestSequence >= stream.sent - 100,
      `last at the target: ${arrived.highestSequence}`,
    );
    assert.ok(targetSilenceMs <= RESUME_WITHIN_MS, `target silent ${targetSilenceMs} ms`);
    assert.ok(replySilenceMs <= RESUME_WITHIN_MS, `replies silent ${replySilenceMs} ms`);
    assert.equal(arrived.duplicates, 0, "duplicates at the target");
    assert.equal(stream.duplicates, 0, "duplicates at the application");
  });

  Deno.test(`mpclient killed with SIGKILL and restarted mid-stream${keys}: a new session resumes within 1.5 s`, async () => {
    await using stack = new AsyncDisposableStack();
    const target = startTarget(stack, { echo: true });
    const tunnel = await startTunnel(stack, {
      targetPort: target.port,
      lossPercent: 20,
      seed: 401,
      secret,
    });

    let restartMs = 0;
    const { stream, replyTimes, restart } = await streamAcross(tunnel, 1500, async () => {
      const killedAt = performance.now();
      await tunnel.killAndRestartClient(0);
      await tunnel.clients[0].waitForLine(/mpclient \S+ started/, STARTUP_TIMEOUT_MS);
      restartMs = performance.now() - killedAt;
    }, STREAM_AFTER_RESTART_MS);
    const arrived = arrivals(target, stream);
    const targetSilenceMs = silenceOutsideMs(target.arrivalTimes, restart);
    const replySilenceMs = silenceOutsideMs(replyTimes, restart);
    const receiveBufferDrops = tunnel.receiveBufferDrops();
    const applied = await stopBridgesAndReadLosses(tunnel.bridges);
    show(`mpclient SIGKILL + restart at 1.5 s of a stream, 3 s more after (3 × 20 % loss${keys})`, [
      `new mpclient printed "started" ${restartMs.toFixed(0)} ms after the kill`,
      `longest silence outside the restart: at the target ${targetSilenceMs.toFixed(0)} ms, ` +
      `of the replies ${replySilenceMs.toFixed(0)} ms`,
      `longest silence overall: at the target ${arrived.longestSilenceMs.toFixed(0)} ms, ` +
      `of the replies ${stream.longestSilenceMs.toFixed(0)} ms`,
      `target received ${arrived.received}/${stream.sent}, duplicates ${arrived.duplicates}; ` +
      `replies ${stream.received}, duplicates ${stream.duplicates}`,
      `receive-buffer drops: ${receiveBufferDrops}`,
      ...describeLosses(applied),
    ]);
    assertLossApplied(applied, 20);
    const sessions = tunnel.server.output().match(/session started session=(\w+)/g) ?? [];
    assert.equal(new Set(sessions).size, 2, `sessions at the server:\n${tunnel.server.output()}`);
    assert.equal(target.sources.size, 2, "one target socket per session");
    // The sink cannot see a silence that never ends: check that the stream's last datagrams arrived.
    assert.ok(
      arrived.highestSequence >= stream.sent - 100,
      `last at the target: ${arrived.highestSequence}`,
    );
    assert.ok(targetSilenceMs <= RESUME_WITHIN_MS, `target silent ${targetSilenceMs} ms`);
    assert.ok(replySilenceMs <= RESUME_WITHIN_MS, `replies silent ${replySilenceMs} ms`);
    assert.equal(arrived.duplicates, 0, "duplicates at the target");
    assert.equal(stream.duplicates, 0, "duplicates at the application");
  });
}

/**
 * One bridge killed with SIGKILL at 1.5 s of a stream and started again 2.5 s later, per scheduling
 * mode; the stream goes on for 2 s after the client sees the restarted bridge's path up again.
 * Redundant runs on clean bridges (only what was in flight on the killed one may be lost);
 * adaptive on 20 %-loss bridges (where it needs all three paths, so it loses what redundant loses);
 * balance on clean bridges (the killed bridge's share moves to the others once it is noticed).
 */
const BRIDGE_KILL_CASES = [
  { mode: "redundant", lossPercent: undefined, maxLossRatio: 0.002, maxSilenceMs: 100 },
  { mode: "adaptive", lossPercent: 20, maxLossRatio: 0.032, maxSilenceMs: 200 },
  { mode: "balance", lossPercent: undefined, maxLossRatio: 0.03, maxSilenceMs: 1000 },
] as const;
/** The stream's rate in the bridge-kill tests: a datagram every 2 ms. */
const BRIDGE_KILL_INTERVAL_MS = 2;
/** How long the killed bridge stays dead. */
const BRIDGE_DEAD_MS = 2500;
/** How long the stream runs on after the restarted bridge's path is up again. */
const AFTER_RETURN_MS = 2000;

for (const { mode, lossPercent, maxLossRatio, maxSilenceMs } of BRIDGE_KILL_CASES) {
  const scene = lossPercent === undefined ? "clean bridges" : `${lossPercent} % loss each way`;
  Deno.test(`${mode} mode, ${scene}: a bridge killed mid-stream costs ≤ ${maxLossRatio * 100} %, and is used again when it returns`, async () => {
    await using stack = new AsyncDisposableStack();
    const target = startTarget(stack, { echo: false });
    const tunnel = await startTunnel(stack, {
      targetPort: target.port,
      lossPercent,
      seed: 401,
      clientConfig: [`mode ${mode}`, "target-loss 0.1"],
    });
    const client = tunnel.clients[0];
    // The phases start from what is seen, not from the clock: a slow start of the stream or of
    // the restarted bridge (other work on the machine) lengthens them instead of shortening the
    // time the restarted bridge has to carry its share.
    const streamId = crypto.getRandomValues(new Uint32Array(1))[0];
    const stopSending = new AbortController();
    const streaming = runTrafficStream({
      target: streamTo(tunnel.clientPorts[0]),
      streamId,
      sizeBytes: 1000,
      intervalMs: BRIDGE_KILL_INTERVAL_MS,
      signal: stopSending.signal,
      drainMs: 0,
    });
    let restartedAt = 0;
    let upAgainAfterMs = 0;
    let restarted: ProcessHandle;
    try {
      // 1.5 s of the stream at the target (750 datagrams, less what may be lost).
      const atKill = Math.floor((1500 / BRIDGE_KILL_INTERVAL_MS) * (1 - maxLossRatio));
      assert.ok(
        await target.sink.waitForReceived(Math.floor(atKill), STARTUP_TIMEOUT_MS, streamId),
        "the stream did not reach the target",
      );
      tunnel.bridges[0].kill("SIGKILL");
      await tunnel.bridges[0].exited;
      await delay(BRIDGE_DEAD_MS);
      restartedAt = performance.now();
      restarted = tunnel.restartBridge(0);
      await restarted.waitForLine(/Relaying/, STARTUP_TIMEOUT_MS);
      await client.waitForLine(/path up again/, PATHS_UP_TIMEOUT_MS);
      upAgainAfterMs = performance.now() - restartedAt;
      await delay(AFTER_RETURN_MS);
    } finally {
      stopSending.abort();
    }
    const stream = await streaming;
    // Everything in flight arrives within a few ms; what has not after 2 s was lost.
    await target.sink.waitForReceived(stream.sent, 2000, stream.streamId);
    const arrived = arrivals(target, stream);
    const lost = stream.sent - arrived.received;
    const relayed = (await stopAndReadStats(restarted, "SIGTERM")).match(/upstream in=(\d+)/)?.[1];
    const clientLog = client.output();
    show(`${mode} mode, ${scene}: bridge 1 killed at 1.5 s, restarted 2.5 s later`, [
      `the restarted bridge's path was up again ${upAgainAfterMs.toFixed(0)} ms after its restart`,
      `target received ${arrived.received}/${stream.sent}, lost ${lost} (${
        percent(lost, stream.sent)
      }), ` +
      `duplicates ${arrived.duplicates}, longest silence ${arrived.longestSilenceMs.toFixed(0)} ms`,
      `the restarted bridge relayed ${relayed} datagrams toward mpserver`,
      ...clientLog.split("\n").filter((line) => /path (down|up)/.test(line)),
      `receive-buffer drops: ${tunnel.receiveBufferDrops()}`,
    ]);
    assert.equal(arrived.duplicates, 0, "duplicates at the target");
    assert.ok(lost / stream.sent <= maxLossRatio, `lost ${lost} of ${stream.sent}`);
    assert.ok(arrived.longestSilenceMs <= maxSilenceMs, `silent ${arrived.longestSilenceMs} ms`);
    assert.match(clientLog, /path down/, clientLog);
    assert.match(clientLog, /path up again/, clientLog);
    // Used again: in the 2 s after its path is up again, at 500 datagrams/s, the restarted bridge
    // carries a share of the stream.
    assert.ok(Number(relayed) >= 200, `the restarted bridge relayed ${relayed}`);
    if (lossPercent !== undefined) {
      const applied = await stopBridgesAndReadLosses(tunnel.bridges.slice(1));
      show(`${mode} mode: the loss the other bridges applied`, describeLosses(applied));
      assertLossApplied(applied, lossPercent);
    }
  });
}

Deno.test("two mpclients share the bridges and mpserver: each gets only its own replies", async () => {
  await using stack = new AsyncDisposableStack();
  const target = startTarget(stack, { echo: true });
  const tunnel = await startTunnel(stack, { targetPort: target.port, clientCount: 2 });

  const streams = await Promise.all(tunnel.clientPorts.map((port) =>
    runTrafficStream({
      target: streamTo(port),
      sizeBytes: 1000,
      intervalMs: 4,
      count: 500,
      drainMs: 1000,
    })
  ));
  const sessions = tunnel.server.output().match(/session started session=\w+/g) ?? [];
  show("two clients, one server, 3 clean mpbridges", [
    ...streams.flatMap(formatStreamReport),
    `target heard from ${[...target.sources].join(", ")}`,
    `server sessions: ${sessions.join(", ")}`,
    `receive-buffer drops: ${tunnel.receiveBufferDrops()}`,
  ]);
  assert.equal(new Set(sessions).size, 2, "sessions at the server");
  assert.equal(target.sources.size, 2, "distinct source ports at the target");
  for (const stream of streams) {
    assert.equal(stream.foreign, 0, "replies of the other client");
    assert.equal(stream.duplicates, 0, "duplicates");
    assert.equal(arrivals(target, stream).duplicates, 0, "duplicates at the target");
    // Clean paths: only an overloaded machine loses anything (three mpbridges, two mpclients,
    // mpserver and this process share two cores).
    assert.ok(stream.lossRatio <= 0.02, `lost ${stream.lost} of ${stream.sent}`);
  }
});

Deno.test({
  name: "iperf 2 in UDP mode through the tunnel: the server reports ≤ 2 % loss",
  ignore: toolsMissing(["iperf"]) !== undefined,
}, async () => {
  requireTools(["iperf"]);
  await using stack = new AsyncDisposableStack();
  const started = await startOnFreePort(
    (port) =>
      spawnCommand("iperf", ["-s", "-u", "-p", String(port), "-B", LOOPBACK], {
        name: "iperf -s",
      }),
    /Server listening on UDP port/,
  );
  const iperfServer = own(stack, started.handle);
  const targetPort = started.port;
  const tunnel = await startTunnel(stack, { targetPort });

  const iperfClient = own(
    stack,
    spawnCommand("iperf", [
      "-c",
      LOOPBACK,
      "-u",
      "-p",
      String(tunnel.clientPorts[0]),
      "-b",
      "5M",
      "-t",
      "3",
      "-l",
      "1200",
    ], { name: "iperf -c" }),
  );
  const clientCode = await withTimeout(iperfClient.exited, 30_000, "iperf -c");
  // "[  1] 0.0000-3.0066 sec  1.88 MBytes  5.24 Mbits/sec   0.008 ms 0/1642 (0%)"
  const report = await iperfServer.waitForLine(
    /sec\s+\S+\s+\S+\s+([\d.]+) Mbits\/sec\s+\S+ ms\s+(\d+)\/\s*(\d+)/,
    5000,
  );
  const [, mbits, lost, total] = report;
  show("iperf 2 UDP, 5 Mbit/s for 3 s, 1200-byte datagrams, 3 clean mpbridges", [
    `server: ${report.input?.trim()}`,
    `client exit code ${clientCode}; its server report: ${
      iperfClient.output().match(/Server Report:\n.*\n(.*)/)?.[1]?.trim() ?? "none"
    }`,
    `receive-buffer drops: ${tunnel.receiveBufferDrops()}`,
  ]);
  assert.equal(clientCode, 0, iperfClient.output());
  assert.ok(Number(total) >= 1000, `only ${total} datagrams`);
  assert.ok(Number(lost) / Number(total) <= 0.02, `lost ${lost}/${total}`);
  assert.ok(Number(mbits) >= 4, `${mbits} Mbit/s`);
});

Deno.test({
  name: "dnsmasq behind the tunnel answers dig's queries",
  ignore: toolsMissing(["dnsmasq", "dig"]) !== undefined,
}, async () => {
  requireTools(["dnsmasq", "dig"]);
  await using stack = new AsyncDisposableStack();
  const started = await startOnFreePort(
    (port) => spawnDnsmasq(LOOPBACK, port, "mptunnel.test", "192.0.2.53"),
    /started, version/,
  );
  own(stack, started.handle);
  const targetPort = started.port;
  const tunnel = await startTunnel(stack, { targetPort });

  const answers: string[] = [];
  for (const name of ["mptunnel.test", "www.mptunnel.test", "mptunnel.test"]) {
    await using dig = spawnCommand("dig", [
      `@${LOOPBACK}`,
      "-p",
      String(tunnel.clientPorts[0]),
      name,
      "A",
      "+time=2",
      "+tries=3",
      "+short",
    ], { name: "dig" });
    assert.equal(await withTimeout(dig.exited, 20_000, "dig"), 0, dig.output());
    answers.push(dig.output().trim());
  }
  show("dig through the tunnel to dnsmasq", answers.map((answer) => `answer: ${answer}`));
  assert.deepEqual(answers, ["192.0.2.53", "192.0.2.53", "192.0.2.53"]);
});

Deno.test("a 65 471-byte datagram passes intact; larger ones are dropped and counted as oversize", async () => {
  await using stack = new AsyncDisposableStack();
  const target = startTarget(stack, { echo: true });
  const tunnel = await startTunnel(stack, { targetPort: target.port, bridgeCount: 1 });

  const largest = await runTrafficStream({
    target: streamTo(tunnel.clientPorts[0]),
    sizeBytes: MAX_TUNNELLED_BYTES,
    intervalMs: 50,
    count: 3,
    drainMs: 2000,
  });
  const tooLarge: StreamReport[] = [];
  for (const sizeBytes of [MAX_TUNNELLED_BYTES + 1, 65_507]) {
    tooLarge.push(
      await runTrafficStream({
        target: streamTo(tunnel.clientPorts[0]),
        sizeBytes,
        count: 1,
        drainMs: 500,
      }),
    );
  }
  const stats = await stopAndReadStats(tunnel.clients[0], "SIGTERM");
  show("largest datagrams", [
    ...formatStreamReport(largest),
    ...formatSinkReport(target.sink.report()),
    `sizes at the target: ${[...target.sizes].map(([size, count]) => `${count} × ${size}`)}`,
    `client: ${stats}`,
  ]);
  assert.equal(arrivals(target, largest).received, 3, "65 471-byte datagrams at the target");
  assert.equal(largest.received, 3, "65 471-byte echoes at the application");
  assert.equal(largest.corrupted, 0);
  assert.deepEqual([...target.sizes], [[MAX_TUNNELLED_BYTES, 3]], "sizes at the target");
  for (const stream of tooLarge) {
    assert.equal(target.sink.stream(stream.streamId), undefined, `${stream.sizeBytes} B arrived`);
  }
  assert.match(stats, /\boversize=2\b/);
});

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.test(`${signal} stops mpclient, mpbridge and mpserver with exit code 0 and a final stats line`, async () => {
    await using stack = new AsyncDisposableStack();
    const target = startTarget(stack, { echo: true });
    const tunnel = await startTunnel(stack, { targetPort: target.port, bridgeCount: 1 });
    const stream = await runTrafficStream({
      target: streamTo(tunnel.clientPorts[0]),
      count: 100,
      intervalMs: 2,
    });
    assert.equal(stream.received, 100);

    const clientStats = await stopAndReadStats(tunnel.clients[0], signal);
    const [bridge] = tunnel.bridges;
    bridge.kill(signal);
    const bridgeCode = await withTimeout(bridge.exited, EXIT_TIMEOUT_MS, "mpbridge exiting");
    const bridgeStats = bridge.output().match(new RegExp(`stopped on ${signal} stats=.*`))?.[0];
    const serverStats = await stopAndReadStats(tunnel.server, signal);
    show(`${signal}`, [
      `mpclient: ${clientStats}`,
      `mpserver: ${serverStats}`,
      `mpbridge (exit ${bridgeCode}): ${bridgeStats}`,
    ]);
    assert.match(clientStats, /from-app=100 to-app=100 duplicates=/);
    assert.match(serverStats, /stats=/);
    assert.equal(bridgeCode, 0, bridge.output());
    assert.ok(bridgeStats, `mpbridge printed no final stats line:\n${bridge.output()}`);
  });
}
