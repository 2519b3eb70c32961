/**
 * SIGHUP under traffic: mpclient re-reads its file and gains a bridge, then loses one, without
 * dropping the session or a datagram.
 */
import assert from "node:assert/strict";
import { runTrafficStream, runUdpEcho, type StreamReport } from "../../tools/traffic.ts";
import { delay, denoScript, type ProcessHandle, waitForListening } from "./harness.ts";

const LOCALHOST = "127.0.0.1";
/** The stream's rate: each phase of the test lasts a number of echoes, not of milliseconds. */
const RATE_PPS = 300;
/** How long the stream may wait, once it stops sending, for its last echoes (it ends when all are in). */
const DRAIN_TIMEOUT_MS = 15_000;
/** How long one phase may take to see its echoes. */
const PHASE_TIMEOUT_MS = 20_000;

Deno.test("SIGHUP adds and removes a bridge under traffic with zero loss and one session", async () => {
  const directory = await Deno.makeTempDir({ prefix: "mptunnel-reload-" });
  const config = `${directory}/mpclient.conf`;
  const echo = runUdpEcho({ listen: { hostname: LOCALHOST, port: 0 } });
  const processes: ProcessHandle[] = [];
  const start = (script: string, args: string[]) => {
    const process = denoScript(script, args);
    processes.push(process);
    return process;
  };
  const stopSending = new AbortController();
  let stream: Promise<StreamReport> | undefined;
  try {
    const server = start("server.ts", [`${LOCALHOST}:0`, LOCALHOST, String(echo.address.port)]);
    const serverPort = (await waitForListening(server)).port;
    const bridges = [0, 1, 2].map(() => start("bridge.ts", ["0", LOCALHOST, String(serverPort)]));
    const [bridgeA, bridgeB, bridgeC] = await Promise.all(
      bridges.map(async (bridge) => (await waitForListening(bridge)).port),
    );
    await Deno.writeTextFile(
      config,
      `${LOCALHOST} ${bridgeA} name a\n${LOCALHOST} ${bridgeB} name b\n`,
    );
    const client = start("client.ts", ["0", config]);
    const clientPort = (await waitForListening(client)).port;
    await client.waitForLine(/session established/, 15_000);

    // The phases are counted in echoes received, so a slow machine stretches them rather than
    // cutting them short; the stream sends until the last phase is over.
    let echoed = 0;
    stream = runTrafficStream({
      target: { hostname: LOCALHOST, port: clientPort },
      sizeBytes: 400,
      ratePps: RATE_PPS,
      signal: stopSending.signal,
      drainMs: DRAIN_TIMEOUT_MS,
      onProgress: (progress) => echoed = progress.received,
      progressIntervalMs: 20,
    });
    const trafficFor = async (seconds: number) => {
      const target = echoed + seconds * RATE_PPS;
      const deadline = performance.now() + PHASE_TIMEOUT_MS;
      while (echoed < target) {
        if (performance.now() > deadline) {
          throw new Error(`only ${echoed} of ${target} echoes within ${PHASE_TIMEOUT_MS} ms`);
        }
        await delay(20);
      }
    };
    await trafficFor(2);
    // Add bridge c.
    await Deno.writeTextFile(
      config,
      `${LOCALHOST} ${bridgeA} name a\n${LOCALHOST} ${bridgeB} name b\n${LOCALHOST} ${bridgeC} name c\n`,
    );
    client.kill("SIGHUP");
    await client.waitForLine(/configuration reloaded pathsAdded=1 pathsRemoved=0/, 5000);
    await client.waitForLine(/path up path=c/, 5000);
    await trafficFor(1.5);
    // Remove bridge a, then stop it altogether: the tunnel must not need it any more.
    await Deno.writeTextFile(
      config,
      `${LOCALHOST} ${bridgeB} name b\n${LOCALHOST} ${bridgeC} name c\n`,
    );
    client.kill("SIGHUP");
    await client.waitForLine(/configuration reloaded pathsAdded=0 pathsRemoved=1/, 5000);
    bridges[0].kill("SIGTERM");
    await bridges[0].exited;
    // A broken file on reload is reported and changes nothing.
    await Deno.writeTextFile(config, `${LOCALHOST} not-a-port\n`);
    client.kill("SIGHUP");
    await client.waitForLine(/reload failed; carrying on with the previous configuration/, 5000);
    await Deno.writeTextFile(
      config,
      `${LOCALHOST} ${bridgeB} name b\n${LOCALHOST} ${bridgeC} name c\n`,
    );
    await trafficFor(3.5);
    stopSending.abort();
    // Done once every echo is in (or the drain timeout passed): the counts are final.
    const report = await stream;

    server.kill("SIGTERM");
    await server.exited;
    const serverStats = /stopped on SIGTERM stats="([^"]*)"/.exec(server.output())?.[1] ?? "";
    console.log(
      `reload under traffic: ${report.received}/${report.sent} echoed, ${report.duplicates} duplicates, ` +
        `longest silence ${report.longestSilenceMs.toFixed(0)} ms at ${
          report.longestSilenceAtMs?.toFixed(0)
        } ms; server: ${serverStats}`,
    );
    assert.equal(report.duplicates, 0);
    assert.equal(report.received, report.sent, "no datagram lost across two reloads");
    assert.match(serverStats, /opened=1 /, "one session throughout");
    assert.ok(report.longestSilenceMs < 1000, `silence ${report.longestSilenceMs} ms`);
  } finally {
    stopSending.abort();
    await stream?.catch(() => undefined);
    for (const process of processes.reverse()) await process[Symbol.asyncDispose]();
    await echo.stop();
    await Deno.remove(directory, { recursive: true });
  }
});

Deno.test("SIGHUP on mpserver applies a new log level and reports what needs a restart", async () => {
  const directory = await Deno.makeTempDir({ prefix: "mptunnel-reload-" });
  const config = `${directory}/mpserver.conf`;
  await Deno.writeTextFile(config, `listen ${LOCALHOST}:0\ntarget echo ${LOCALHOST} 7\n`);
  const server = denoScript("server.ts", ["--config", config]);
  try {
    const port = (await waitForListening(server)).port;
    // Any other port: the reload only reports that listen changed, it binds nothing.
    const otherPort = port === 65_535 ? port - 1 : port + 1;
    await Deno.writeTextFile(
      config,
      `listen ${LOCALHOST}:${otherPort}\ntarget echo ${LOCALHOST} 7\nlog-level debug\n`,
    );
    server.kill("SIGHUP");
    await server.waitForLine(/listen changed; it takes effect after a restart/, 5000);
    await server.waitForLine(/configuration reloaded/, 5000);
    await Deno.writeTextFile(config, `listen ${LOCALHOST}:${port}\nbogus line\n`);
    server.kill("SIGHUP");
    await server.waitForLine(/reload failed; carrying on with the previous configuration/, 5000);
    server.kill("SIGTERM");
    assert.equal(await server.exited, 0);
  } finally {
    await server[Symbol.asyncDispose]();
    await Deno.remove(directory, { recursive: true });
  }
});
