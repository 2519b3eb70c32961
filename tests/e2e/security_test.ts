/**
 * The tunnel under attack, with real processes: a session with a shared secret carries a stream
 * while an attacker replays recorded datagrams, bit-flips them, forges datagrams for the live session
 * and floods handshakes, at mpserver and at a bridge. The target must receive every legitimate
 * datagram once and nothing else, the stream must not stall, and the server's memory must stay flat.
 */
import assert from "node:assert/strict";
import { opensslAeadUnavailable } from "../../lib/crypto/aead_openssl.ts";
import { generateSecret } from "../../lib/crypto/secret.ts";
import { runTrafficSink, runTrafficStream } from "../../tools/traffic.ts";
import { bindUdp } from "../../lib/io/udp.ts";
import type { UdpAddress } from "../../lib/io/transport.ts";
import { batchedUdpUnavailable } from "../../lib/io/udp_batch.ts";
import { denoScript, type ProcessHandle, waitForListening } from "./harness.ts";

const LOCALHOST = "127.0.0.1";

/** A relay standing in for one path that records what the client sends through it. */
function recordingRelay(serverPort: number) {
  const clientSide = bindUdp({ hostname: LOCALHOST, port: 0 });
  const serverSide = bindUdp({ hostname: LOCALHOST, port: 0 });
  const server: UdpAddress = { transport: "udp", hostname: LOCALHOST, port: serverPort };
  const recorded: Uint8Array[] = [];
  let client: UdpAddress | undefined;
  const upstream = (async () => {
    const buffer = new Uint8Array(65536);
    try {
      for (;;) {
        const [datagram, from] = await clientSide.receive(buffer);
        client = from;
        if (recorded.length < 3000) recorded.push(datagram.slice());
        await serverSide.send(datagram, server);
      }
    } catch { /* closed */ }
  })();
  const downstream = (async () => {
    const buffer = new Uint8Array(65536);
    try {
      for (;;) {
        const [datagram] = await serverSide.receive(buffer);
        if (client) await clientSide.send(datagram, client);
      }
    } catch { /* closed */ }
  })();
  return {
    port: clientSide.localAddress.port,
    recorded,
    async stop() {
      clientSide.close();
      serverSide.close();
      await Promise.all([upstream, downstream]);
    },
  };
}

function residentKilobytes(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
}

async function stopProcess(process: ProcessHandle): Promise<string> {
  process.kill("SIGTERM");
  await process.exited;
  return process.output();
}

Deno.test("forged, replayed and flooded datagrams reach nothing; the session goes on through rekeys", async () => {
  const directory = await Deno.makeTempDir({ prefix: "mptunnel-security-" });
  const secretFile = `${directory}/secret`;
  await Deno.writeTextFile(secretFile, generateSecret() + "\n");
  const sink = runTrafficSink({ listen: { hostname: LOCALHOST, port: 0 } });
  const processes: ProcessHandle[] = [];
  let relay: ReturnType<typeof recordingRelay> | undefined;
  try {
    const server = denoScript("server.ts", [
      `${LOCALHOST}:0`,
      LOCALHOST,
      String(sink.address.port),
      "--secret-file",
      secretFile,
    ]);
    processes.push(server);
    const { line: startLine, port: serverPort } = await waitForListening(server);
    // The start line says which fast paths run; here (Linux, --allow-all) both should.
    const cipher = opensslAeadUnavailable() === undefined ? "openssl" : "node";
    assert.match(startLine, new RegExp(` cipher=chacha20-poly1305/${cipher}\\b`));
    const io = batchedUdpUnavailable() === undefined ? "batched" : "deno";
    assert.match(startLine, new RegExp(` io=${io}\\b`));
    const bridge = denoScript("bridge.ts", ["0", LOCALHOST, String(serverPort)]);
    processes.push(bridge);
    const bridgePort = (await waitForListening(bridge)).port;
    relay = recordingRelay(serverPort);
    const config = `${directory}/mpclient.conf`;
    await Deno.writeTextFile(config, `${LOCALHOST} ${bridgePort}\n${LOCALHOST} ${relay.port}\n`);
    const client = denoScript("client.ts", [
      "0",
      config,
      "--secret-file",
      secretFile,
      "--rekey-interval",
      "2s",
      "--log-level",
      "debug",
    ]);
    processes.push(client);
    const clientPort = (await waitForListening(client)).port;
    await client.waitForLine(/session established/, 15_000);

    const stream = runTrafficStream({
      target: { hostname: LOCALHOST, port: clientPort },
      sizeBytes: 500,
      ratePps: 400,
      durationMs: 12_000,
      drainMs: 0,
    });
    // Let the relay record a few seconds of the live session (data, probes, handshakes), then attack.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const memoryBeforeKilobytes = residentKilobytes(server.pid);
    const recordingFile = `${directory}/recording.txt`;
    await Deno.writeTextFile(
      recordingFile,
      relay.recorded.map((datagram) => btoa(String.fromCharCode(...datagram))).join("\n"),
    );
    const attacker = denoScript("tests/e2e/fixtures/attacker.ts", [
      recordingFile,
      String(serverPort),
      String(bridgePort),
      "25000",
      "7",
    ]);
    processes.push(attacker);
    assert.equal(await attacker.exited, 0, attacker.output());
    const memoryAfterKilobytes = residentKilobytes(server.pid);
    const sent = await stream;
    await sink.waitForReceived(sent.sent, 2000);
    const report = sink.report();

    const serverOutput = await stopProcess(server);
    const clientOutput = await stopProcess(client);
    const rekeys = (clientOutput.match(/new session keys/g) ?? []).length;
    const stats = /stopped on SIGTERM stats="([^"]*)"/.exec(serverOutput)?.[1] ?? "";
    console.log(`server: ${stats}`);
    if (report.streams[0]?.received !== sent.sent) {
      // On a shortfall, the programs' own account of it (without the per-flow and refusal lines).
      const quiet = (output: string, noise: string) =>
        output.split("\n").filter((line) => !line.includes(noise)).join("\n");
      console.log(quiet(clientOutput, "new application flow"));
      console.log(quiet(serverOutput, "refused a handshake"));
    }
    console.log(
      `target: ${report.streams[0]?.received} of ${sent.sent} legitimate datagrams, ` +
        `(mpclient took in ${/from-app=(\d+)/.exec(clientOutput)?.[1]}), ${
          report.streams[0]?.duplicates
        } duplicates, ${report.foreign} foreign, ` +
        `longest silence ${report.streams[0]?.longestSilenceMs.toFixed(0)} ms, ${rekeys} rekeys; ` +
        `server memory ${memoryBeforeKilobytes} → ${memoryAfterKilobytes} KiB`,
    );
    assert.equal(report.streams.length, 1, "only the legitimate stream reached the target");
    assert.equal(report.foreign, 0, "nothing but the stream reached the target");
    const received = report.streams[0];
    assert.equal(received.duplicates, 0);
    assert.equal(received.corrupted, 0);
    // Over clean paths every datagram mpclient took in must reach the target. (Those the machine's
    // load kept from mpclient's socket in the first place are not the tunnel's to deliver.)
    const fromApp = Number(/from-app=(\d+)/.exec(clientOutput)?.[1]);
    assert.ok(fromApp >= sent.sent * 0.9, `mpclient took in only ${fromApp} of ${sent.sent}`);
    assert.equal(received.received, fromApp, "every legitimate datagram arrived (clean paths)");
    assert.ok(
      received.longestSilenceMs < 1000,
      `the stream stalled ${received.longestSilenceMs} ms`,
    );
    assert.ok(
      memoryAfterKilobytes - memoryBeforeKilobytes < 30_000,
      `server memory grew by ${memoryAfterKilobytes - memoryBeforeKilobytes} KiB`,
    );
    // Every hostile datagram is either dropped under a reason or, for a replay of a recent one,
    // counted as a duplicate: nearly all of the 25 000 must show up as drops.
    const dropped = [...(stats.split("drops:")[1] ?? "").matchAll(/=(\d+)/g)]
      .reduce((sum, match) => sum + Number(match[1]), 0);
    assert.ok(dropped > 20_000, `the server counted ${dropped} drops: ${stats}`);
    assert.ok(
      rekeys >= 4,
      `keys were renewed ${rekeys} times under traffic; expected one every 2 s`,
    );
  } finally {
    for (const process of processes.reverse()) await process[Symbol.asyncDispose]();
    await relay?.stop();
    await sink.stop();
    await Deno.remove(directory, { recursive: true });
  }
});
