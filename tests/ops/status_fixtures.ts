/**
 * A known traffic pattern for the status, metrics and status-view tests: the protocol cores in the
 * seeded simulator, two paths (one clean, one losing 20 % toward the server), an echoing target, and
 * exactly {@link DATAGRAM_COUNT} datagrams of {@link DATAGRAM_BYTES} bytes. The cores are wrapped in
 * stand-ins for the drivers (the status functions read only what a driver exposes), so the tests
 * need no sockets.
 */

import type { ClientStatusSource, ServerStatusSource } from "../../lib/ops/status.ts";
import { TunnelScenario } from "../sim/tunnel_harness.ts";

export const DATAGRAM_COUNT = 1000;
export const DATAGRAM_BYTES = 200;
/** One-way delay of the clean path and of the lossy path (ms). */
export const CLEAN_DELAY_MS = 10;
export const LOSSY_DELAY_MS = 20;
/** Loss toward the server on the lossy path. */
export const LOSSY_FORWARD_LOSS_PERCENT = 20;
export const SEED = 1301;

/** The scenario after the traffic, with driver stand-ins and the time to take snapshots at. */
export interface StatusFixture {
  readonly scenario: TunnelScenario;
  readonly client: ClientStatusSource;
  readonly server: ServerStatusSource;
  readonly nowMs: number;
}

/** Runs the known traffic pattern and returns driver stand-ins over its cores. */
export function runKnownTraffic(): StatusFixture {
  const scenario = new TunnelScenario({
    seed: SEED,
    secret: "status fixture secret 0123456789",
    echo: true,
    paths: [
      { both: { delayMs: CLEAN_DELAY_MS } },
      {
        forward: { delayMs: LOSSY_DELAY_MS, lossPercent: LOSSY_FORWARD_LOSS_PERCENT },
        reverse: { delayMs: LOSSY_DELAY_MS },
      },
    ],
  });
  const stream = scenario.startStream({
    startMs: 200,
    count: DATAGRAM_COUNT,
    intervalMs: 2,
    sizeBytes: DATAGRAM_BYTES,
  });
  // Long enough after the last datagram for every reply, and for probes to be judged lost or not.
  scenario.network.runUntil(stream.lastSendMs + 1500);
  const core = scenario.client.core;
  const serverCore = scenario.server.core;
  const client: ClientStatusSource = {
    core,
    startedAtMs: 0,
    listenAddress: { hostname: "127.0.0.1", port: 4000 },
    flowCount: 1,
    pathAddresses: () =>
      core.paths.map((path) => ({
        local: { hostname: "0.0.0.0", port: 40_000 + path.index },
        remote: { hostname: "127.0.0.1", port: 2000 },
      })),
  };
  const server: ServerStatusSource = {
    core: serverCore,
    startedAtMs: 0,
    listeners: [{ localAddress: { hostname: "0.0.0.0", port: 2000 } }],
    target: { hostname: "127.0.0.1", port: 1194 },
    targetCounters: {
      toTarget: scenario.target.recorder.unique,
      fromTarget: scenario.target.echoesSent,
      foreign: 0,
      sendErrors: 0,
      clientSendErrors: 0,
      flowLimit: 0,
    },
    flowCount: 1,
    flowsOf: () => 1,
  };
  return { scenario, client, server, nowMs: scenario.network.nowMs };
}
