import assert from "node:assert/strict";
import { lookup } from "node:dns/promises";
import { fileURLToPath } from "node:url";
import { VERSION } from "../../lib/base/usage_error.ts";
import { bindUdp } from "../../lib/io/udp.ts";
import type { UdpAddress } from "../../lib/io/transport.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const BRIDGE = fileURLToPath(new URL("../../bridge.ts", import.meta.url));
const TEST_LIMIT_MS = 15_000;
const decoder = new TextDecoder();

function bridgeCommand(args: string[]): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", BRIDGE, ...args],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

Deno.test("--help prints the usage and exits 0", async () => {
  const { code, stdout } = await bridgeCommand(["--help"]).output();
  assert.equal(code, 0);
  const usage = decoder.decode(stdout);
  assert.match(usage, /^Usage: mpbridge \[HOST:\]LISTEN_PORT SERVER_HOST SERVER_PORT/);
  for (const flag of ["--loss", "--delay", "--jitter", "--rate", "--blackout", "--seed"]) {
    assert.ok(usage.includes(flag), `usage mentions ${flag}`);
  }
});

Deno.test("--version prints the version", async () => {
  const { code, stdout } = await bridgeCommand(["--version"]).output();
  assert.equal(code, 0);
  assert.equal(decoder.decode(stdout).trim(), `mpbridge ${VERSION}`);
});

Deno.test("bad arguments exit 2 with one clear message", async () => {
  const cases: [string[], RegExp][] = [
    [["4001", "localhost"], /expected \[HOST:\]LISTEN_PORT SERVER_HOST SERVER_PORT, got 2/],
    [["4001", "localhost", "70000"], /SERVER_PORT: port 70000 is out of range/],
    [["4001", "localhost", "4000", "--delay", "50"], /--delay: "50" needs a unit/],
    [["4001", "localhost", "4000", "--loss", "150"], /--loss: .*0 to 100/],
    [["4001", "localhost", "4000", "--rate", "fast"], /--rate: /],
    [["4001", "localhost", "4000", "--blackout", "5s"], /--blackout: expected a blackout like/],
    [["4001", "localhost", "4000", "--frobnicate"], /unknown option "--frobnicate"/],
    [["4001", "localhost", "4000", "--log-format", "xml"], /--log-format: expected text or json/],
    [["::1:4001", "localhost", "4000"], /IPv6 addresses need brackets/],
  ];
  for (const [args, pattern] of cases) {
    const { code, stderr } = await bridgeCommand(args).output();
    const message = decoder.decode(stderr);
    assert.equal(code, 2, `${args.join(" ")}: ${message}`);
    assert.match(message, /^mpbridge: /);
    assert.match(message, pattern);
    assert.doesNotMatch(message, /\n\s+at /, "no stack trace");
  }
});

Deno.test("relays datagrams through the process and reports its counters on SIGTERM", async () => {
  const { address } = await lookup("localhost");
  const server = bindUdp({ hostname: address, port: 0 });
  const client = bindUdp({ hostname: address, port: 0 });
  const listenHost = address.includes(":") ? `[${address}]` : address;
  const child = bridgeCommand([
    `${listenHost}:0`,
    "localhost",
    String(server.localAddress.port),
    "--seed",
    "5",
    "--delay",
    "5ms",
  ]).spawn();
  // A stuck bridge must not hang the suite: the kill also ends any receive the test is waiting on.
  const killTimer = setTimeout(() => {
    child.kill("SIGKILL");
    client.close();
    server.close();
  }, TEST_LIMIT_MS);
  const stderrLines = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let stderr = "";
  let stdoutDrained: Promise<unknown> | undefined;
  try {
    stdoutDrained = child.stdout.cancel();
    let listenPort: number | undefined;
    while (listenPort === undefined) {
      const { value, done } = await stderrLines.read();
      assert.ok(!done, `the bridge ended before starting:\n${stderr}`);
      stderr += value;
      const port = /Relaying \S+:(\d+) to /.exec(stderr)?.[1];
      if (port !== undefined) listenPort = Number(port);
    }
    assert.match(stderr, /impairment="delay 5ms" seed=5\b/);
    const bridgeAddress: UdpAddress = { transport: "udp", hostname: address, port: listenPort };
    const buffer = new Uint8Array(2048);

    await client.send(new TextEncoder().encode("hello server"), bridgeAddress);
    const [request, upstream] = await server.receive(buffer);
    assert.equal(decoder.decode(request), "hello server");
    assert.notEqual(upstream.port, listenPort);
    await server.send(new TextEncoder().encode("hello client"), upstream);
    const [reply, replier] = await client.receive(buffer);
    assert.equal(decoder.decode(reply), "hello client");
    assert.equal(replier.port, listenPort);

    child.kill("SIGTERM");
    const status = await child.status;
    for (;;) {
      const { value, done } = await stderrLines.read();
      if (done) break;
      stderr += value;
    }
    assert.equal(status.code, 0, stderr);
    assert.match(
      stderr,
      /stopped on SIGTERM stats="upstream in=1 \(12 B\) out=1 .*downstream in=1 \(12 B\) out=1/,
    );
  } finally {
    clearTimeout(killTimer);
    try {
      child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    await child.status;
    await stderrLines.cancel();
    await stdoutDrained;
    client.close();
    server.close();
  }
});

Deno.test("--log-format json writes each line as one JSON object, the start and the final stats", async () => {
  const child = bridgeCommand([
    "127.0.0.1:0",
    "127.0.0.1",
    "9",
    "--log-format",
    "json",
    "--seed",
    "9",
  ])
    .spawn();
  const killTimer = setTimeout(() => child.kill("SIGKILL"), TEST_LIMIT_MS);
  const stderrChunks = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let stderr = "";
  let stdoutDrained: Promise<unknown> | undefined;
  try {
    stdoutDrained = child.stdout.cancel();
    while (!stderr.includes("\n")) {
      const { value, done } = await stderrChunks.read();
      assert.ok(!done, `the bridge ended before starting:\n${stderr}`);
      stderr += value;
    }
    child.kill("SIGTERM");
    for (;;) {
      const { value, done } = await stderrChunks.read();
      if (done) break;
      stderr += value;
    }
    assert.equal((await child.status).code, 0, stderr);
    const lines = stderr.trimEnd().split("\n").map((line) => JSON.parse(line));
    assert.equal(lines.length, 2, stderr);
    const [start, stop] = lines;
    assert.equal(start.level, "INFO");
    assert.equal(start.logger, "mptunnel.bridge");
    assert.match(start.message, /^Relaying 127\.0\.0\.1:\d+ to 127\.0\.0\.1:9$/);
    assert.deepEqual(start.properties, { version: VERSION, impairment: "no impairment", seed: 9 });
    assert.equal(stop.message, "stopped on SIGTERM");
    assert.match(stop.properties.stats, /^upstream in=0 \(0 B\) out=0 /);
  } finally {
    clearTimeout(killTimer);
    try {
      child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    await child.status;
    await stderrChunks.cancel();
    await stdoutDrained;
  }
});
