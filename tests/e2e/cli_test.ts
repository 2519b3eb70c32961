/**
 * The command lines of mpclient, mpserver and mpbridge, run as real processes: help, version, and
 * every kind of user mistake ending in one clear line and exit code 2, before any socket is opened.
 */

import assert from "node:assert/strict";
import { bindUdp } from "../../lib/io/udp.ts";
import type { DatagramTransport } from "../../lib/io/transport.ts";
import { denoScript, freeUdpPort, withTimeout } from "./harness.ts";

const LOOPBACK = "127.0.0.1";
const EXIT_USAGE = 2;
const RUN_TIMEOUT_MS = 20_000;

type Script = "client.ts" | "server.ts" | "bridge.ts";

const PROGRAMS: readonly { readonly script: Script; readonly name: string }[] = [
  { script: "client.ts", name: "mpclient" },
  { script: "server.ts", name: "mpserver" },
  { script: "bridge.ts", name: "mpbridge" },
];

interface Outcome {
  readonly code: number;
  /** stdout and stderr together, in the order read. */
  readonly output: string;
}

/** Runs a program to its end (killing it if it does not end within 20 s). */
async function run(
  script: Script,
  args: readonly string[],
  env: Readonly<Record<string, string>> = {},
): Promise<Outcome> {
  await using process = denoScript(script, args, { env });
  const code = await withTimeout(process.exited, RUN_TIMEOUT_MS, `${script} ${args.join(" ")}`);
  return { code, output: process.output() };
}

/**
 * Checks a user mistake's outcome: exit 2, no stack trace, and a first line `program: message`
 * matching `message` (followed at most by one "Try --help" line).
 */
function assertUsageError(outcome: Outcome, program: string, message: RegExp): void {
  const describe = `exit ${outcome.code}, output:\n${outcome.output}`;
  assert.equal(outcome.code, EXIT_USAGE, describe);
  assert.doesNotMatch(outcome.output, /Uncaught|^\s+at /m, describe);
  const lines = outcome.output.trim().split("\n");
  assert.ok(lines.length <= 2, `more than a message and a hint: ${describe}`);
  assert.ok(lines[0].startsWith(`${program}: `), describe);
  assert.match(lines[0], message);
}

/** A temporary file holding `text`, removed when disposed. */
async function tempFile(
  text: string,
  suffix = ".conf",
): Promise<AsyncDisposable & { path: string }> {
  const path = await Deno.makeTempFile({ prefix: "mptunnel-cli-", suffix });
  await Deno.writeTextFile(path, text);
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path) };
}

/** Holds a UDP port on loopback, so that a program binding it would fail. */
function holdPort(): DatagramTransport & Disposable {
  const socket = bindUdp({ hostname: LOOPBACK, port: 0 });
  return { ...socket, [Symbol.dispose]: () => socket.close() };
}

Deno.test("--help exits 0 and prints the usage", async () => {
  const outcomes = await Promise.all(PROGRAMS.map(({ script }) => run(script, ["--help"])));
  PROGRAMS.forEach(({ name }, index) => {
    const { code, output } = outcomes[index];
    assert.equal(code, 0, `${name}: ${output}`);
    assert.match(output, /Usage:/, name);
    assert.match(output, new RegExp(name), name);
  });
});

Deno.test("--version prints 0.1.0", async () => {
  const outcomes = await Promise.all(PROGRAMS.map(({ script }) => run(script, ["--version"])));
  PROGRAMS.forEach(({ name }, index) => {
    assert.equal(outcomes[index].code, 0, name);
    assert.equal(outcomes[index].output.trim(), `${name} 0.1.0`);
  });
});

Deno.test("an unknown flag is a usage error", async () => {
  await using config = await tempFile(`${LOOPBACK} 4001\n`);
  const [client, server, bridge] = await Promise.all([
    run("client.ts", ["--no-such-flag", "4000", config.path]),
    run("server.ts", ["--no-such-flag", "4000", LOOPBACK, "9"]),
    run("bridge.ts", ["--no-such-flag", "4001", LOOPBACK, "4000"]),
  ]);
  assertUsageError(client, "mpclient", /unknown option .*no-such-flag/i);
  assertUsageError(server, "mpserver", /unknown option .*no-such-flag/i);
  assertUsageError(bridge, "mpbridge", /unknown option .*no-such-flag/i);
});

Deno.test("a wrong number of arguments is a usage error", async () => {
  await using config = await tempFile(`${LOOPBACK} 4001\n`);
  const [client, clientNone, server, bridge] = await Promise.all([
    run("client.ts", ["4000", config.path, "extra"]),
    run("client.ts", []),
    run("server.ts", ["4000", LOOPBACK]),
    run("bridge.ts", ["4001"]),
  ]);
  assertUsageError(client, "mpclient", /unexpected argument "extra"/);
  assertUsageError(clientNone, "mpclient", /no paths/);
  assertUsageError(server, "mpserver", /expected \[HOST:\]PORT TARGET_HOST TARGET_PORT/);
  assertUsageError(bridge, "mpbridge", /expected .*LISTEN_PORT SERVER_HOST SERVER_PORT/);
});

Deno.test("a port out of range is a usage error", async () => {
  await using config = await tempFile(`${LOOPBACK} 4001\n`);
  const [client, server, serverTarget, bridge] = await Promise.all([
    run("client.ts", ["99999", config.path]),
    run("server.ts", ["70000", LOOPBACK, "9"]),
    run("server.ts", ["4000", LOOPBACK, "port"]),
    run("bridge.ts", [`${LOOPBACK}:65536`, LOOPBACK, "4000"]),
  ]);
  assertUsageError(client, "mpclient", /99999/);
  assertUsageError(server, "mpserver", /70000/);
  assertUsageError(serverTarget, "mpserver", /port/);
  assertUsageError(bridge, "mpbridge", /65536/);
});

Deno.test("a bad line in a configuration file is reported as file:line", async () => {
  await using clientConfig = await tempFile(`# paths\n${LOOPBACK} 4001\n${LOOPBACK} notaport\n`);
  await using serverConfig = await tempFile(`listen ${LOOPBACK}:4000\nno-such-keyword 1\n`);
  const [client, server] = await Promise.all([
    run("client.ts", ["4000", clientConfig.path]),
    run("server.ts", ["--config", serverConfig.path]),
  ]);
  assertUsageError(client, "mpclient", new RegExp(`${clientConfig.path}:3\\b`));
  assertUsageError(server, "mpserver", new RegExp(`${serverConfig.path}:2\\b`));
});

Deno.test("a missing configuration file is a usage error naming it", async () => {
  const missing = `/nonexistent-${crypto.randomUUID()}/mpclient.conf`;
  const [client, server] = await Promise.all([
    run("client.ts", ["4000", missing]),
    run("server.ts", ["--config", missing]),
  ]);
  assertUsageError(client, "mpclient", new RegExp(missing));
  assertUsageError(server, "mpserver", new RegExp(missing));
});

Deno.test("a weak secret in MPTUNNEL_SECRET is refused", async () => {
  await using config = await tempFile(`${LOOPBACK} 4001\n`);
  const env = { MPTUNNEL_SECRET: "abc" };
  const [client, server] = await Promise.all([
    // Port 0: the secret is refused before any socket is opened, so no port need be free.
    run("client.ts", ["0", config.path], env),
    run("server.ts", [`${LOOPBACK}:0`, LOOPBACK, "9"], env),
  ]);
  assertUsageError(client, "mpclient", /MPTUNNEL_SECRET/);
  assertUsageError(server, "mpserver", /MPTUNNEL_SECRET/);
  // The secret itself never appears in the message.
  assert.doesNotMatch(client.output + server.output, /\babc\b/);
});

Deno.test("mpserver keygen prints a fresh 43-character base64url secret", async () => {
  const [first, second] = await Promise.all([
    run("server.ts", ["keygen"]),
    run("server.ts", ["keygen"]),
  ]);
  for (const outcome of [first, second]) {
    assert.equal(outcome.code, 0, outcome.output);
    assert.match(outcome.output.trim(), /^[A-Za-z0-9_-]{43}$/);
  }
  assert.notEqual(first.output, second.output);
});

Deno.test("a configuration mistake ends the program before it opens a socket", async () => {
  // Each program's listen port is held here: had it bound first, it would fail on the port, not on
  // the mistake.
  using clientPort = holdPort();
  using serverPort = holdPort();
  await using badConfig = await tempFile(`${LOOPBACK} 4001\n${LOOPBACK}\n`);
  await using goodConfig = await tempFile(`${LOOPBACK} 4001\n`);
  const weak = { MPTUNNEL_SECRET: "abc" };
  const [badLine, clientSecret, serverSecret] = await Promise.all([
    run("client.ts", [`${LOOPBACK}:${clientPort.localAddress.port}`, badConfig.path]),
    run("client.ts", [`${LOOPBACK}:${clientPort.localAddress.port}`, goodConfig.path], weak),
    run("server.ts", [`${LOOPBACK}:${serverPort.localAddress.port}`, LOOPBACK, "9"], weak),
  ]);
  assertUsageError(badLine, "mpclient", new RegExp(`${badConfig.path}:2\\b`));
  assertUsageError(clientSecret, "mpclient", /MPTUNNEL_SECRET/);
  assertUsageError(serverSecret, "mpserver", /MPTUNNEL_SECRET/);

  // And once it has exited, the port it was told to use is free.
  const port = freeUdpPort();
  assertUsageError(
    await run("client.ts", [`${LOOPBACK}:${port}`, badConfig.path]),
    "mpclient",
    /:2\b/,
  );
  bindUdp({ hostname: LOOPBACK, port }).close();
});

Deno.test("a listen port in use is one clear line, not a stack trace", async () => {
  using held = holdPort();
  const busy = `${LOOPBACK}:${held.localAddress.port}`;
  await using config = await tempFile(`${LOOPBACK} 4001\n`);
  const outcomes = await Promise.all([
    run("client.ts", [busy, config.path]),
    run("server.ts", [busy, LOOPBACK, "9"]),
    run("bridge.ts", [busy, LOOPBACK, "4000"]),
  ]);
  PROGRAMS.forEach(({ name }, index) => {
    const { code, output } = outcomes[index];
    const describe = `${name}: exit ${code}, output:\n${output}`;
    assert.notEqual(code, 0, describe);
    assert.doesNotMatch(output, /Uncaught|^\s+at /m, describe);
    assert.match(output, /in use/i, describe);
  });
});
