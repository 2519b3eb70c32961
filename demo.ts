/**
 * `deno task demo`: the tunnel against a lossy network, on this machine, in one command.
 *
 * Starts on loopback an echo target, mpserver, three bridges that each drop a share of what crosses
 * them (both directions), and mpclient; sends a steady stream through the tunnel with a progress
 * display, and ends with a table: what each path lost on its own, what got through the tunnel, the
 * latency, and what the redundancy cost in bytes on the wire. Everything runs in this process, built
 * from the same library the programs use.
 */

import { runMain } from "./lib/cli/run_main.ts";
import { bindUdp } from "./lib/io/udp.ts";
import { UsageError, VERSION } from "./lib/base/usage_error.ts";
import { startBridge } from "./lib/bridge/bridge_relay.ts";
import type { Bridge } from "./lib/bridge/bridge_relay.ts";
import { ClientDriver } from "./lib/driver/client_driver.ts";
import { deriveSecretKeys } from "./lib/crypto/handshake.ts";
import { silentLogger } from "./lib/base/log.ts";
import { parseArguments } from "./lib/cli/program.ts";
import { generateSecret } from "./lib/crypto/secret.ts";
import { ServerDriver } from "./lib/driver/server_driver.ts";
import { runTrafficStream, runUdpEcho, type StreamReport } from "./tools/traffic.ts";
import { parseDuration, parsePercent } from "./lib/base/units.ts";

const HELP = `mptunnel demo ${VERSION} — the tunnel against a lossy network, on loopback

Usage: deno task demo [--loss PERCENT] [--paths N] [--duration DURATION] [--rate PPS] [--size BYTES]
                      [--plain] [--seed N]

  --loss PERCENT       loss of each bridge, each direction (default 20)
  --paths N            number of bridges (default 3)
  --duration DURATION  how long to send (default 10s)
  --rate PPS           datagrams per second (default 500)
  --size BYTES         datagram size (default 1000)
  --plain              run without a shared secret (default: a fresh secret, encrypted)
  --seed N             seeds the bridges' loss (default 1)
`;

const LOCALHOST = "127.0.0.1";

interface DemoSettings {
  lossPercent: number;
  pathCount: number;
  durationMs: number;
  ratePps: number;
  sizeBytes: number;
  encrypted: boolean;
  seed: number;
}

function readSettings(args: string[]): DemoSettings | "help" {
  const { values } = parseArguments({
    args,
    options: {
      loss: { type: "string" },
      paths: { type: "string" },
      duration: { type: "string" },
      rate: { type: "string" },
      size: { type: "string" },
      plain: { type: "boolean" },
      seed: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return "help";
  const integer = (
    flag: string,
    text: string | undefined,
    fallback: number,
    min: number,
    max: number,
  ) => {
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new UsageError(
        `--${flag}: expected a whole number from ${min} to ${max}, got "${text}"`,
      );
    }
    return value;
  };
  const loss = values.loss === undefined ? undefined : parsePercent(values.loss);
  if (loss && !loss.ok) throw new UsageError(`--loss: ${loss.error}`);
  const duration = values.duration === undefined ? undefined : parseDuration(values.duration);
  if (duration && !duration.ok) throw new UsageError(`--duration: ${duration.error}`);
  return {
    lossPercent: loss?.value ?? 20,
    pathCount: integer("paths", values.paths, 3, 1, 16),
    durationMs: duration?.value ?? 10_000,
    ratePps: integer("rate", values.rate, 500, 1, 20_000),
    sizeBytes: integer("size", values.size, 1000, 24, 65_000),
    encrypted: !values.plain,
    seed: integer("seed", values.seed, 1, 0, 2 ** 31),
  };
}

/** Runs the demo and prints the table. */
export async function main(args: string[]): Promise<void> {
  const settings = readSettings(args);
  if (settings === "help") {
    console.log(HELP);
    return;
  }
  const { lossPercent, pathCount, durationMs, ratePps, sizeBytes, encrypted, seed } = settings;
  console.log(
    `mptunnel demo: ${pathCount} paths, each losing ${lossPercent} % in each direction; ` +
      `${ratePps} datagrams/s of ${sizeBytes} bytes for ${durationMs / 1000} s; ` +
      `${encrypted ? "encrypted with a fresh secret" : "no secret (plaintext)"}.`,
  );
  const theory = 1 - (1 - (lossPercent / 100) ** pathCount) ** 2;
  console.log(
    `Theory: each path alone loses ${percent(1 - (1 - lossPercent / 100) ** 2)} of round trips; ` +
      `the tunnel should lose about ${percent(theory)}.\n`,
  );

  const secret = encrypted ? deriveSecretKeys(generateSecret()) : undefined;
  const echo = runUdpEcho({ listen: { hostname: LOCALHOST, port: 0 } });
  const bridges: Bridge[] = [];
  let server: ServerDriver | undefined;
  let client: ClientDriver | undefined;
  try {
    server = await ServerDriver.start({
      listen: [{ hostname: LOCALHOST, port: 0 }],
      target: { hostname: LOCALHOST, port: echo.address.port },
      secret,
      logger: silentLogger,
      bind: bindUdp,
    });
    for (let index = 0; index < pathCount; index++) {
      bridges.push(
        await startBridge({
          listen: { hostname: LOCALHOST, port: 0 },
          server: { hostname: LOCALHOST, port: server.listeners[0].localAddress.port },
          impairment: { lossPercent },
          seed: seed * 1000 + index * 2,
          bind: bindUdp,
        }),
      );
    }
    client = await ClientDriver.start({
      listen: { hostname: LOCALHOST, port: 0 },
      paths: bridges.map((bridge, index) => ({
        host: LOCALHOST,
        port: bridge.listenAddress.port,
        label: `bridge${index + 1}`,
      })),
      secret,
      logger: silentLogger,
      bind: bindUdp,
    });
    const report = await runTrafficStream({
      target: { hostname: LOCALHOST, port: client.listenAddress.port },
      sizeBytes,
      ratePps,
      durationMs,
      drainMs: 1000,
      onProgress: (progress) => showProgress(progress, durationMs),
      progressIntervalMs: 250,
    });
    clearProgress();
    printTable(report, bridges, echo.counters.datagrams, client);
  } finally {
    await client?.stop();
    for (const bridge of bridges) await bridge.stop();
    await server?.stop();
    await echo.stop();
  }
}

const isTerminal = Deno.stdout.isTerminal();
let lastProgressLine = 0;

function showProgress(progress: StreamReport, durationMs: number): void {
  const done = Math.min(1, progress.elapsedMs / durationMs);
  const bar = "#".repeat(Math.round(done * 30)).padEnd(30, ".");
  const line = `[${bar}] ${(progress.elapsedMs / 1000).toFixed(1)} s  sent ${progress.sent}  ` +
    `back ${progress.received}  duplicates ${progress.duplicates}  rtt p50 ${
      progress.rttP50Ms?.toFixed(2) ?? "-"
    } ms`;
  if (isTerminal) {
    Deno.stdout.writeSync(new TextEncoder().encode(`\r${line}\x1b[K`));
  } else if (progress.elapsedMs - lastProgressLine >= 2000) {
    lastProgressLine = progress.elapsedMs;
    console.log(line);
  }
}

function clearProgress(): void {
  if (isTerminal) Deno.stdout.writeSync(new TextEncoder().encode("\r\x1b[K"));
}

function printTable(
  report: StreamReport,
  bridges: Bridge[],
  reachedTarget: number,
  client: ClientDriver,
): void {
  const rows: string[][] = [["", "to server", "back to app", "round trip", "duplicates"]];
  let wireBytesForward = 0;
  const pathRoundTripLoss: number[] = [];
  bridges.forEach((bridge, index) => {
    const stats = bridge.stats();
    wireBytesForward += stats.upstream.bytesIn;
    const forward = stats.upstream.dropped.loss / Math.max(1, stats.upstream.datagramsIn);
    const back = stats.downstream.dropped.loss / Math.max(1, stats.downstream.datagramsIn);
    pathRoundTripLoss.push(1 - (1 - forward) * (1 - back));
    rows.push([
      `path ${index + 1} alone`,
      percent(forward),
      percent(back),
      percent(1 - (1 - forward) * (1 - back)),
      "-",
    ]);
  });
  const forwardLoss = 1 - reachedTarget / Math.max(1, report.sent);
  const backLoss = 1 - report.received / Math.max(1, reachedTarget);
  rows.push([
    `tunnel (${bridges.length} paths)`,
    percent(forwardLoss),
    percent(backLoss),
    percent(report.lossRatio),
    String(report.duplicates),
  ]);
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
  for (const row of rows) {
    console.log(
      row.map((cell, column) =>
        column === 0 ? cell.padEnd(widths[0]) : cell.padStart(widths[column])
      ).join("   "),
    );
  }
  const appBytes = report.sent * report.sizeBytes;
  console.log(
    `\nDatagrams: ${report.sent} sent, ${reachedTarget} reached the target, ${report.received} replies came back.`,
  );
  console.log(
    `Latency through the tunnel (round trip): p50 ${fixed(report.rttP50Ms)} ms, p99 ${
      fixed(report.rttP99Ms)
    } ms; ` +
      `longest silence ${report.longestSilenceMs.toFixed(0)} ms.`,
  );
  console.log(
    `Cost: ${
      (wireBytesForward / Math.max(1, appBytes)).toFixed(2)
    } bytes entered the bridges per application byte ` +
      `(${bridges.length} copies plus ${
        client.core.authenticated ? "header, tag and probes" : "header and probes"
      }).`,
  );
  const bestPathLoss = Math.min(...pathRoundTripLoss);
  console.log(
    report.lossRatio < bestPathLoss
      ? `The tunnel lost ${
        (bestPathLoss / Math.max(report.lossRatio, 1e-9)).toFixed(0)
      }× fewer round trips than the best path alone.`
      : "The tunnel did not beat the best path this time: try a longer --duration.",
  );
}

function percent(ratio: number): string {
  return `${(ratio * 100).toFixed(2)} %`;
}

function fixed(value: number | undefined): string {
  return value === undefined ? "-" : value.toFixed(2);
}

if (import.meta.main) await runMain("demo", () => main(Deno.args));
