/**
 * The release binaries (`deno task compile`, tools/compile.ts): mpbridge compiled for this machine
 * with the release's own arguments, then run as a standalone program.
 *
 * `deno compile` downloads the Deno runtime for the target the first time; where there is no network
 * to do so, the tests that need the binary are reported as ignored (with the reason printed), never
 * as passed. Any other compile failure (a type error, a bad flag) fails them.
 */

import assert from "node:assert/strict";
import { VERSION } from "../../lib/base/usage_error.ts";
import { runUdpEcho } from "../../tools/traffic.ts";
import { bindUdp } from "../../lib/io/udp.ts";
import type { UdpAddress } from "../../lib/io/transport.ts";
import {
  binaryName,
  type BuildOutcome,
  compileArguments,
  compileProgram,
  explainCompileFailure,
  hostTarget,
  RELEASE_PROGRAMS,
  RELEASE_TARGETS,
  writeChecksums,
} from "../../tools/compile.ts";
import { spawnCommand, withTimeout } from "./harness.ts";

const DATAGRAM_TIMEOUT_MS = 5_000;
const EXIT_TIMEOUT_MS = 5_000;
const decoder = new TextDecoder();
const bridgeProgram = RELEASE_PROGRAMS.find((program) => program.name === "mpbridge")!;

/** Compiles mpbridge once, when the module loads, so that `ignore` can be decided up front. */
async function probeCompile(): Promise<{ outcome?: BuildOutcome; skipReason?: string }> {
  const target = hostTarget();
  if (target === undefined) {
    return { skipReason: `${Deno.build.target} is not a release target: skipped` };
  }
  const directory = await Deno.makeTempDir({ prefix: "mptunnel-compile-" });
  const outcome = await compileProgram(bridgeProgram, target, directory);
  if (outcome.ok) {
    globalThis.addEventListener("unload", () => Deno.removeSync(directory, { recursive: true }));
    return { outcome };
  }
  await Deno.remove(directory, { recursive: true });
  if (outcome.runtimeUnavailable) {
    return {
      outcome,
      skipReason:
        `deno compile cannot download its runtime here (no network): skipped\n  ${outcome.reason}`,
    };
  }
  return { outcome };
}

const probe = await probeCompile();
if (probe.skipReason !== undefined) console.log(`compile_test: ${probe.skipReason}`);
const ignore = probe.skipReason !== undefined;

/** The compiled binary's path; fails the test, quoting deno compile, when the build failed. */
function compiledBridge(): string {
  const outcome = probe.outcome!;
  assert.ok(outcome.ok, `deno compile failed: ${!outcome.ok && outcome.output}`);
  return outcome.path;
}

Deno.test({
  name: "mpbridge compiles for this machine into a standalone binary",
  ignore,
  fn() {
    const path = compiledBridge();
    assert.ok(path.endsWith(binaryName(bridgeProgram, hostTarget()!)), path);
    const info = Deno.statSync(path);
    assert.ok(info.isFile && info.size > 1_000_000, `${path}: ${info.size} bytes`);
  },
});

Deno.test({
  name: "the compiled mpbridge prints its own version and help, not Deno's",
  ignore,
  async fn() {
    const path = compiledBridge();
    const version = await new Deno.Command(path, { args: ["--version"], stdin: "null" }).output();
    assert.equal(version.code, 0, decoder.decode(version.stderr));
    assert.equal(decoder.decode(version.stdout).trim(), `mpbridge ${VERSION}`);
    const help = await new Deno.Command(path, { args: ["--help"], stdin: "null" }).output();
    assert.equal(help.code, 0, decoder.decode(help.stderr));
    assert.match(
      decoder.decode(help.stdout),
      /^Usage: mpbridge \[HOST:\]LISTEN_PORT SERVER_HOST SERVER_PORT/,
    );
  },
});

Deno.test({
  name:
    "the compiled mpbridge relays a datagram to a UDP echo and back, and stops on SIGTERM with its stats",
  ignore,
  async fn() {
    const path = compiledBridge();
    const echo = runUdpEcho({ listen: { hostname: "127.0.0.1", port: 0 } });
    const client = bindUdp({ hostname: "127.0.0.1", port: 0 });
    // Port 0: the bridge picks a free port and says which in its start line, so nothing can race for it.
    const bridge = spawnCommand(path, ["127.0.0.1:0", "127.0.0.1", String(echo.address.port)], {
      name: "compiled mpbridge",
    });
    try {
      const [, listenPort] = await bridge.waitForLine(/Relaying 127\.0\.0\.1:(\d+) to /);
      const bridgeAddress: UdpAddress = {
        transport: "udp",
        hostname: "127.0.0.1",
        port: Number(listenPort),
      };
      await client.send(new TextEncoder().encode("through the binary"), bridgeAddress);
      const [reply, from] = await withTimeout(
        client.receive(new Uint8Array(2048)),
        DATAGRAM_TIMEOUT_MS,
        `the echo of a datagram sent through the compiled mpbridge:\n${bridge.output()}`,
      );
      assert.equal(decoder.decode(reply), "through the binary");
      assert.equal(from.port, Number(listenPort));

      bridge.kill("SIGTERM");
      const code = await withTimeout(bridge.exited, EXIT_TIMEOUT_MS, "the compiled mpbridge");
      assert.equal(code, 0, bridge.output());
      assert.match(
        bridge.output(),
        /stopped on SIGTERM stats="upstream in=1 \(18 B\) out=1 .*downstream in=1 \(18 B\) out=1/,
      );
    } finally {
      bridge.kill("SIGKILL");
      await bridge.exited;
      client.close();
      await echo.stop();
    }
  },
});

// What tools/compile.ts decides without compiling anything: these run everywhere.

const NO_NETWORK_OUTPUT = `Check bridge.ts
Compile bridge.ts to dist/mpbridge-0.1.0-x86_64-unknown-linux-gnu
Download https://dl.deno.land/release/v2.9.6/denort-x86_64-unknown-linux-gnu.zip
error: Writing deno compile executable to temporary file 'dist/mpbridge.tmp-904130815fe01d1b'

Caused by:
    0: Setting up base binary.
    1: error sending request for url (https://dl.deno.land/release/v2.9.6/denort-x86_64-unknown-linux-gnu.zip): client error (Connect): dns error: failed to lookup address information: Name or service not known
    2: client error (Connect)
    3: dns error
    4: failed to lookup address information: Name or service not known

Stack backtrace:
   0: <unknown>
`;

Deno.test("a runtime that cannot be downloaded is reported as no network, naming the target", () => {
  const explained = explainCompileFailure("x86_64-unknown-linux-gnu", NO_NETWORK_OUTPUT);
  assert.equal(explained.runtimeUnavailable, true);
  assert.equal(
    explained.reason,
    "cannot download the Deno runtime for x86_64-unknown-linux-gnu: no network " +
      "(https://dl.deno.land/release/v2.9.6/denort-x86_64-unknown-linux-gnu.zip: " +
      "failed to lookup address information: Name or service not known)",
  );
});

Deno.test("a type error is a compile failure of its own, not a missing runtime", () => {
  // The download line comes before the error even when the download worked.
  const output = `Check bridge.ts
Download https://dl.deno.land/release/v2.9.6/denort-x86_64-unknown-linux-gnu.zip
error: TS2322 [ERROR]: Type 'string' is not assignable to type 'number'.
  const port: number = "4001";
        ~~~~
    at file:///work/main/bridge.ts:12:9
`;
  const explained = explainCompileFailure("x86_64-unknown-linux-gnu", output);
  assert.equal(explained.runtimeUnavailable, false);
  assert.equal(
    explained.reason,
    "error: TS2322 [ERROR]: Type 'string' is not assignable to type 'number'.",
  );
});

Deno.test("each program is compiled with its task's permissions, type checked, for the target", () => {
  const [client, server, bridge] = ["mpclient", "mpserver", "mpbridge"].map((name) =>
    RELEASE_PROGRAMS.find((program) => program.name === name)!
  );
  const windows = compileArguments(bridge, "x86_64-pc-windows-msvc", "out/mpbridge.exe");
  assert.deepEqual(windows.slice(0, 11), [
    "compile",
    "--target",
    "x86_64-pc-windows-msvc",
    "--output",
    "out/mpbridge.exe",
    "--no-prompt",
    "--exclude-unused-npm",
    "--allow-net",
    "--allow-env=MPTUNNEL_IO",
    "--allow-ffi",
    "--config",
  ]);
  assert.ok(windows.at(-1)!.endsWith("/bridge.ts"));
  assert.ok(!windows.includes("--no-check"));
  for (const program of [client, server]) {
    const args = compileArguments(program, "aarch64-apple-darwin", "out/x");
    const env = program.name === "mpclient"
      ? "--allow-env=MPTUNNEL_SECRET,MPTUNNEL_SOCKS5_USER,MPTUNNEL_SOCKS5_PASSWORD,MPTUNNEL_IO,MPTUNNEL_CRYPTO"
      : "--allow-env=MPTUNNEL_SECRET,MPTUNNEL_IO,MPTUNNEL_CRYPTO";
    for (const flag of ["--allow-net", "--allow-read", env]) {
      assert.ok(args.includes(flag), `${program.name}: ${flag}`);
    }
    assert.ok(!args.some((arg) => /^--allow-(all|run|write)/.test(arg)), program.name);
    // FFI: the batched socket layer (libc recvmmsg/sendmmsg); nothing else is loaded.
    assert.ok(args.includes("--allow-ffi"), program.name);
    // Reading the interface list (mpclient's `dev` and `uplinks auto`) is the only system access.
    const sys = args.filter((arg) => arg.startsWith("--allow-sys"));
    assert.deepEqual(sys, program.name === "mpclient" ? ["--allow-sys=networkInterfaces"] : []);
  }
  assert.equal(
    binaryName(server, "x86_64-pc-windows-msvc"),
    `mpserver-${VERSION}-x86_64-pc-windows-msvc.exe`,
  );
  assert.equal(
    binaryName(client, "aarch64-unknown-linux-gnu"),
    `mpclient-${VERSION}-aarch64-unknown-linux-gnu`,
  );
  assert.equal(RELEASE_TARGETS.length * RELEASE_PROGRAMS.length, 15);
});

Deno.test("SHA256SUMS lists the release binaries present, in sha256sum's format", async () => {
  const directory = await Deno.makeTempDir({ prefix: "mptunnel-sums-" });
  try {
    const [client, , bridge] = RELEASE_PROGRAMS;
    const bridgeName = binaryName(bridge, "x86_64-pc-windows-msvc");
    const clientName = binaryName(client, "x86_64-apple-darwin");
    await Deno.writeTextFile(`${directory}/${bridgeName}`, "abc");
    await Deno.writeTextFile(`${directory}/${clientName}`, "");
    await Deno.writeTextFile(`${directory}/notes.txt`, "not a release binary");
    assert.deepEqual(await writeChecksums(directory), [bridgeName, clientName]);
    assert.equal(
      await Deno.readTextFile(`${directory}/SHA256SUMS`),
      `ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  ${bridgeName}\n` +
        `e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  ${clientName}\n`,
    );
  } finally {
    await Deno.remove(directory, { recursive: true });
  }
});
