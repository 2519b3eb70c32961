/**
 * SIGHUP under traffic: mpclient re-reads its file and gains a bridge, then loses one, without
 * dropping the session or a datagram.
 */
import assert from "node:assert/strict";
import { runTrafficStream, runUdpEcho } from "../../tools/traffic.ts";
import { denoScript, freeUdpPorts, type ProcessHandle } from "./harness.ts";

const LOCALHOST = "127.0.0.1";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("SIGHUP adds and removes a bridge under traffic with zero loss and one session", async () => {
  const directory = await Deno.makeTempDir({ prefix: "mptunnel-reload-" });
  const config = `${directory}/mpclient.conf`;
  const echo = runUdpEcho({ listen: { hostname: LOCALHOST, port: 0 } });
  const [serverPort, bridgeA, bridgeB, bridgeC, clientPort] = freeUdpPorts(5);
  const processes: ProcessHandle[] = [];
  const start = (script: string, args: string[]) => {
    const process = denoScript(script, args);
    processes.push(process);
    return process;
  };
  try {
    const server = start("server.ts", [
      `${LOCALHOST}:${serverPort}`,
      LOCALHOST,
      String(echo.address.port),
    ]);
    const bridges = [bridgeA, bridgeB, bridgeC].map((port) =>
      start("bridge.ts", [String(port), LOCALHOST, String(serverPort)])
    );
    await server.waitForLine(/mpserver .* started/, 15_000);
    await Deno.writeTextFile(
      config,
      `${LOCALHOST} ${bridgeA} name a\n${LOCALHOST} ${bridgeB} name b\n`,
    );
    const client = start("client.ts", [String(clientPort), config]);
    await client.waitForLine(/session established/, 15_000);

    const stream = runTrafficStream({
      target: { hostname: LOCALHOST, port: clientPort },
      sizeBytes: 400,
      ratePps: 300,
      durationMs: 9000,
      drainMs: 2000,
    });
    await sleep(2000);
    // Add bridge c.
    await Deno.writeTextFile(
      config,
      `${LOCALHOST} ${bridgeA} name a\n${LOCALHOST} ${bridgeB} name b\n${LOCALHOST} ${bridgeC} name c\n`,
    );
    client.kill("SIGHUP");
    await client.waitForLine(/configuration reloaded pathsAdded=1 pathsRemoved=0/, 5000);
    await client.waitForLine(/path up path=c/, 5000);
    await sleep(1500);
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
    for (const process of processes.reverse()) await process[Symbol.asyncDispose]();
    await echo.stop();
    await Deno.remove(directory, { recursive: true });
  }
});

Deno.test("SIGHUP on mpserver applies a new log level and reports what needs a restart", async () => {
  const directory = await Deno.makeTempDir({ prefix: "mptunnel-reload-" });
  const config = `${directory}/mpserver.conf`;
  const [port, otherPort] = freeUdpPorts(2);
  await Deno.writeTextFile(config, `listen ${LOCALHOST}:${port}\ntarget echo ${LOCALHOST} 7\n`);
  const server = denoScript("server.ts", ["--config", config]);
  try {
    await server.waitForLine(/mpserver .* started/, 15_000);
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
