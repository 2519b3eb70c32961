/**
 * End-to-end proof of several targets (issue #5), with real processes on loopback:
 *
 * ```
 * dig ──► forward P1 (dns) ───┐                        ┌─► target dns:   dnsmasq
 * iperf ► forward P2 (iperf) ─┼─ mpclient ═3 mpbridges═ mpserver ─┼─► target iperf: iperf -s -u
 * python3-socks ► socks5 ─────┘   (--loss 10 each)      ├─► target echo:  an echo (allowed address)
 *                                                        └─╳ a sink on a port no rule allows
 * ```
 *
 * and the same over IPv6 on ::1: mpserver, bridges and mpclient on ::1, a forward on [::1] to an
 * echo on ::1. Each test prints what it measured. Tools that are not installed make their step
 * ignored here (with the reason printed) and fail in CI, which installs them.
 */

import assert from "node:assert/strict";
import { formatStreamReport, runTrafficStream, runUdpEcho } from "../../tools/traffic.ts";
import { bindUdp } from "../../lib/io/udp.ts";
import type { DatagramTransport } from "../../lib/io/transport.ts";
import {
  commandExists,
  denoScript,
  forwardPorts,
  PATHS_UP_TIMEOUT_MS,
  type ProcessHandle,
  requireTools,
  show,
  spawnCommand,
  spawnDnsmasq,
  startOnFreePort,
  toolsMissing,
  waitForCount,
  waitForListening,
  withTimeout,
} from "./harness.ts";

const LOOPBACK = "127.0.0.1";
/** Debian's Python, which python3-socks installs into (`python3` on PATH may be another build). */
const SYSTEM_PYTHON = "/usr/bin/python3";

/** True when Debian's python3 can import python3-socks's `socks` module. */
function pythonSocksInstalled(): boolean {
  if (!commandExists(SYSTEM_PYTHON)) return false;
  const result = new Deno.Command(SYSTEM_PYTHON, {
    args: ["-c", "import socks"],
    stdout: "null",
    stderr: "null",
  }).outputSync();
  return result.success;
}

/**
 * Whether a step needing `tools` is ignored: only outside CI, when one is missing (the reason is
 * printed). In CI the step runs and fails, naming what .ci/run must install.
 */
function missing(tools: readonly string[]): boolean {
  return toolsMissing(tools, {
    isMissing: (tool) => tool === "python3-socks" ? !pythonSocksInstalled() : !commandExists(tool),
  }) !== undefined;
}

/** A UDP socket that counts what arrives and answers nothing: what no flow may reach. */
function startSink(stack: AsyncDisposableStack, hostname: string): {
  readonly port: number;
  readonly received: () => number;
} {
  const socket: DatagramTransport = bindUdp({ hostname, port: 0 });
  let received = 0;
  const loop = (async () => {
    const buffer = new Uint8Array(65536);
    while (true) {
      try {
        await socket.receive(buffer);
      } catch {
        return; // closed
      }
      received++;
    }
  })();
  stack.defer(async () => {
    socket.close();
    await loop;
  });
  return { port: socket.localAddress.port, received: () => received };
}

/** An echo target in this process. */
function startEcho(stack: AsyncDisposableStack, hostname: string) {
  const echo = runUdpEcho({ listen: { hostname, port: 0 } });
  stack.defer(() => echo.stop());
  return echo;
}

/** Writes a temporary file, removed when the stack is disposed. */
async function tempFile(
  stack: AsyncDisposableStack,
  prefix: string,
  lines: readonly string[],
): Promise<string> {
  const path = await Deno.makeTempFile({ prefix, suffix: ".conf" });
  stack.defer(() => Deno.remove(path));
  await Deno.writeTextFile(path, lines.map((line) => `${line}\n`).join(""));
  return path;
}

/** `[::1]` for IPv6 literals where a port follows, the address itself otherwise. */
function bracketed(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

/**
 * Starts mpserver from `serverLines` (its `listen` line on port 0: it says which port it got),
 * `bridgeCount` mpbridges in front of it (each on a port of its own choosing, with `loss` percent
 * loss each way, seeded) and mpclient with the paths through them plus `clientLines`; resolves
 * once the session is established and every path is up, with mpclient's start line.
 */
async function startTunnel(stack: AsyncDisposableStack, options: {
  readonly host: string;
  readonly serverLines: readonly string[];
  readonly clientLines: readonly string[];
  readonly bridgeCount: number;
  readonly lossPercent?: number;
}): Promise<{ server: ProcessHandle; client: ProcessHandle; clientStartLine: string }> {
  const { host } = options;
  const serverFile = await tempFile(stack, "mpserver-", options.serverLines);
  const server = stack.use(denoScript("server.ts", ["--config", serverFile], { name: "mpserver" }));
  const serverPort = (await waitForListening(server)).port;
  const bridges = Array.from({ length: options.bridgeCount }, (_, index) =>
    stack.use(
      denoScript("bridge.ts", [
        `${bracketed(host)}:0`,
        host,
        String(serverPort),
        ...(options.lossPercent === undefined
          ? []
          : ["--loss", String(options.lossPercent), "--seed", String(11 + 2 * index)]),
      ], { name: `mpbridge ${index + 1}` }),
    ));
  const bridgePorts: number[] = [];
  for (const bridge of bridges) bridgePorts.push((await waitForListening(bridge)).port);
  const clientFile = await tempFile(stack, "mpclient-", [
    ...bridgePorts.map((port) => `${host} ${port}`),
    ...options.clientLines,
  ]);
  const client = stack.use(denoScript("client.ts", ["--config", clientFile], { name: "mpclient" }));
  const clientStartLine = (await waitForListening(client)).line;
  await waitForCount(client, /session established/g, 1, PATHS_UP_TIMEOUT_MS);
  await waitForCount(client, /path up/g, options.bridgeCount, PATHS_UP_TIMEOUT_MS);
  return { server, client, clientStartLine };
}

/**
 * The SOCKS5 client: python3-socks sends `count` datagrams through the front end to each
 * destination (one association, one flow per destination) and prints, per destination, how many
 * came back as JSON (`{"127.0.0.1:7": {"sent": 20, "echoed": 19, "sources": [...]}}`).
 */
const SOCKS_CLIENT = `
import json, socket, sys, time
import socks

proxy_port = int(sys.argv[1])
count = int(sys.argv[2])
destinations = [(host, int(port)) for host, port in (word.rsplit(":", 1) for word in sys.argv[3:])]
udp = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
udp.set_proxy(socks.SOCKS5, "127.0.0.1", proxy_port)
result = {f"{host}:{port}": {"sent": 0, "echoed": 0, "sources": []} for host, port in destinations}
for index in range(count):
    for host, port in destinations:
        udp.sendto(f"datagram {index} to {host}:{port}".encode(), (host, port))
        result[f"{host}:{port}"]["sent"] += 1
    time.sleep(0.02)
udp.settimeout(1.5)
while True:
    try:
        payload, source = udp.recvfrom(2048)
    except socket.timeout:
        break
    key = payload.decode().split(" to ")[1]
    result[key]["echoed"] += 1
    if f"{source[0]}:{source[1]}" not in result[key]["sources"]:
        result[key]["sources"].append(f"{source[0]}:{source[1]}")
udp.close()
print(json.dumps(result))
`;

Deno.test("one mpclient with two forwards and SOCKS5 reaches three targets through one mpserver over lossy bridges", async (t) => {
  await using stack = new AsyncDisposableStack();
  const echo = startEcho(stack, LOOPBACK);
  const sink = startSink(stack, LOOPBACK);

  const haveDns = commandExists("dnsmasq") && commandExists("dig");
  const haveIperf = commandExists("iperf");
  // Without the peer, its target points at a port where nothing answers (the step is ignored).
  let dnsPort = 9;
  let iperfPort = 9;
  if (haveDns) {
    const dnsmasq = await startOnFreePort(
      (port) => spawnDnsmasq(LOOPBACK, port, "example.test", "192.0.2.1"),
      /started, version/,
    );
    stack.use(dnsmasq.handle);
    dnsPort = dnsmasq.port;
  }
  let iperfServer: ProcessHandle | undefined;
  if (haveIperf) {
    const started = await startOnFreePort(
      (port) =>
        spawnCommand("iperf", ["-s", "-u", "-p", String(port), "-B", LOOPBACK], {
          name: "iperf -s",
        }),
      /Server listening on UDP port/,
    );
    iperfServer = stack.use(started.handle);
    iperfPort = started.port;
  }

  const { server, client, clientStartLine } = await startTunnel(stack, {
    host: LOOPBACK,
    serverLines: [
      `listen ${LOOPBACK}:0`,
      `target echo ${LOOPBACK} ${echo.address.port}`,
      `target dns ${LOOPBACK} ${dnsPort}`,
      `target iperf ${LOOPBACK} ${iperfPort}`,
      "default-target echo",
      `allow ${LOOPBACK} ${echo.address.port}`,
    ],
    clientLines: [
      `forward ${LOOPBACK}:0 dns`,
      `forward ${LOOPBACK}:0 iperf`,
      `socks5 ${LOOPBACK}:0`,
    ],
    bridgeCount: 3,
    lossPercent: 10,
  });
  const started = client.output().match(/mpclient \S+ started.* socks5=127\.0\.0\.1:(\d+)/);
  assert.ok(started, `mpclient did not say where SOCKS5 listens:\n${client.output()}`);
  const socksPort = Number(started[1]);
  const [dnsForwardPort, iperfForwardPort] = forwardPorts(clientStartLine);

  await t.step({
    name: "dig through the dns forward gets dnsmasq's answer",
    ignore: missing(["dnsmasq", "dig"]),
    fn: async () => {
      requireTools(["dnsmasq", "dig"]);
      const answers: string[] = [];
      for (const name of ["example.test", "www.example.test", "example.test"]) {
        await using dig = spawnCommand("dig", [
          `@${LOOPBACK}`,
          "-p",
          String(dnsForwardPort),
          name,
          "A",
          "+time=2",
          "+tries=3",
          "+short",
        ], { name: "dig" });
        assert.equal(await withTimeout(dig.exited, 20_000, "dig"), 0, dig.output());
        answers.push(dig.output().trim());
      }
      show("dig → forward dns → dnsmasq (3 mpbridges, 10 % loss each way)", answers);
      assert.deepEqual(answers, ["192.0.2.1", "192.0.2.1", "192.0.2.1"]);
    },
  });

  await t.step({
    name: "iperf 2 through the iperf forward: the server reports ≤ 2 % loss",
    ignore: missing(["iperf"]),
    fn: async () => {
      requireTools(["iperf"]);
      assert.ok(iperfServer !== undefined);
      await using iperfClient = spawnCommand("iperf", [
        "-c",
        LOOPBACK,
        "-u",
        "-p",
        String(iperfForwardPort),
        "-b",
        "2M",
        "-t",
        "3",
        "-l",
        "1200",
      ], { name: "iperf -c" });
      const code = await withTimeout(iperfClient.exited, 30_000, "iperf -c");
      // "[  1] 0.0000-3.0066 sec  1.88 MBytes  5.24 Mbits/sec   0.008 ms 0/1642 (0%)"
      const report = await iperfServer.waitForLine(
        /sec\s+\S+\s+\S+\s+([\d.]+) Mbits\/sec\s+\S+ ms\s+(\d+)\/\s*(\d+)/,
        5000,
      );
      const [, mbits, lost, total] = report;
      show("iperf 2 UDP → forward iperf, 2 Mbit/s for 3 s, 1200-byte datagrams", [
        `server: ${report.input?.trim()}`,
        `loss ${(100 * Number(lost) / Number(total)).toFixed(2)} % (${lost}/${total})`,
      ]);
      assert.equal(code, 0, iperfClient.output());
      assert.ok(Number(total) >= 400, `only ${total} datagrams`);
      assert.ok(Number(lost) / Number(total) <= 0.02, `lost ${lost}/${total}`);
      assert.ok(Number(mbits) >= 1.5, `${mbits} Mbit/s`);
    },
  });

  await t.step({
    name:
      "python3-socks reaches the allowed echo; a port no rule allows is refused and reached by nothing",
    ignore: missing(["python3-socks"]),
    fn: async () => {
      if (!pythonSocksInstalled()) {
        throw new Error(`${SYSTEM_PYTHON} cannot import socks: install python3-socks in .ci/run`);
      }
      const allowed = `${LOOPBACK}:${echo.address.port}`;
      const denied = `${LOOPBACK}:${sink.port}`;
      const count = 20;
      await using python = spawnCommand(SYSTEM_PYTHON, [
        "-c",
        SOCKS_CLIENT,
        String(socksPort),
        String(count),
        allowed,
        denied,
      ], { name: "python3-socks" });
      assert.equal(await withTimeout(python.exited, 20_000, "python3-socks"), 0, python.output());
      const result = JSON.parse(python.output().trim().split("\n").at(-1)!) as Record<
        string,
        { sent: number; echoed: number; sources: string[] }
      >;
      await client.waitForLine(
        new RegExp(`the server refused a flow.*${denied.replaceAll(".", "\\.")}.*reason=denied`),
        5000,
      );
      await server.waitForLine(/refused a client's flow.*reason=denied/, 5000);
      show("python3-socks UDP through the SOCKS5 front end (3 mpbridges, 10 % loss each way)", [
        `to ${allowed} (allowed): ${result[allowed].echoed}/${
          result[allowed].sent
        } echoed, replies from ${result[allowed].sources.join(", ")}`,
        `to ${denied} (no allow rule): ${result[denied].echoed}/${
          result[denied].sent
        } echoed; the sink received ${sink.received()}`,
        `mpclient: ${client.output().match(/the server refused a flow;.*/)?.[0]}`,
      ]);
      assert.ok(result[allowed].echoed >= count * 0.9, `${result[allowed].echoed}/${count} echoed`);
      assert.deepEqual(result[allowed].sources, [allowed], "replies name the echo as their source");
      assert.equal(result[denied].echoed, 0);
      assert.equal(sink.received(), 0, "the sink no rule allows received something");
    },
  });

  // The figures of the whole run, from mpclient's final stats line.
  client.kill("SIGTERM");
  await withTimeout(client.exited, 10_000, "mpclient exiting");
  show("mpclient at exit", [client.output().match(/stopped on SIGTERM.*/)?.[0] ?? client.output()]);
  assert.equal(sink.received(), 0);
});

Deno.test("over IPv6 on ::1: mpserver, mpbridges and mpclient, a forward to an echo target", async () => {
  await using stack = new AsyncDisposableStack();
  const echo = startEcho(stack, "::1");
  const { client, clientStartLine } = await startTunnel(stack, {
    host: "::1",
    serverLines: [
      `listen [::1]:0`,
      `allow ::1 ${echo.address.port}`,
    ],
    clientLines: [`forward [::1]:0 [::1]:${echo.address.port}`],
    bridgeCount: 2,
  });
  const [forwardPort] = forwardPorts(clientStartLine);
  const stream = await runTrafficStream({
    target: { hostname: "::1", port: forwardPort },
    count: 200,
    intervalMs: 5,
    drainMs: 1000,
  });
  show("IPv6: stream → forward [::1] → mpclient → 2 mpbridges on ::1 → mpserver [::1] → echo ::1", [
    ...formatStreamReport(stream),
    `mpclient: ${client.output().match(/mpclient \S+ started.*/)?.[0]}`,
  ]);
  assert.equal(echo.counters.senders, 1, "one socket of mpserver talks to the echo");
  assert.ok(stream.received >= 196, `${stream.received}/200 echoed`);
  assert.equal(stream.corrupted, 0);
});
