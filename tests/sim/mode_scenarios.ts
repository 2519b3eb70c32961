/**
 * The scheduling modes against the path conditions users meet, in the seeded simulator: the source of
 * the mode table in README (`deno task modes`) and of the assertions in `tests/sim/modes_test.ts`.
 *
 * Each scenario runs the standard scene of TARGETS.md: three paths, a steady stream of 1000-byte
 * datagrams every millisecond from the application toward the target, and measures what reached the
 * target: residual loss, bytes put on the paths per byte delivered, one-way latency, the longest
 * silence, and how often a datagram overtook its predecessor.
 */

import type { ClientTiming } from "../../lib/session/client_core.ts";
import type { FecParameters } from "../../lib/fec/parameters.ts";
import type { SchedulingMode } from "../../lib/session/scheduler.ts";
import type { PathOptions } from "./network.ts";
import { TunnelScenario } from "./tunnel_harness.ts";

/** A path condition of the table. */
export interface ModeCondition {
  readonly name: string;
  /** One line on what it models. */
  readonly summary: string;
  /** The three paths, given the stream's start and end. */
  readonly paths: (startMs: number, endMs: number) => PathOptions[];
}

/** Every path's one-way delay unless a condition says otherwise, with a little jitter. */
const BASE_DELAY_MS = 5;
const BASE_JITTER_MS = 1;
/** When the stream starts: after the handshake and the first probes. */
const STREAM_START_MS = 1000;

const lossy = (lossPercent: number, delayMs = BASE_DELAY_MS): PathOptions => ({
  both: { lossPercent, delayMs, jitterMs: BASE_JITTER_MS },
});

/** The conditions of the table, in its order. */
export const MODE_CONDITIONS: readonly ModeCondition[] = [
  {
    name: "clean",
    summary: "three clean paths",
    paths: () => [lossy(0), lossy(0), lossy(0)],
  },
  {
    name: "3 × 20 % loss",
    summary: "each path loses 20 % each way (the standard scene)",
    paths: () => [lossy(20), lossy(20), lossy(20)],
  },
  {
    name: "one bad path",
    summary: "1 %, 1 % and 40 % loss each way",
    paths: () => [lossy(1), lossy(1), lossy(40)],
  },
  {
    name: "one dead path",
    summary: "the third path never delivers anything",
    paths: () => [lossy(0), lossy(0), { both: { down: true } }],
  },
  {
    name: "asymmetric RTT",
    summary: "one-way delays 5, 20 and 60 ms, no loss",
    paths: () => [lossy(0, 5), lossy(0, 20), lossy(0, 60)],
  },
  {
    name: "one path cut 3 s",
    summary: "clean paths; the first is cut both ways for 3 s mid-stream",
    paths: (startMs) => [
      {
        both: {
          delayMs: BASE_DELAY_MS,
          jitterMs: BASE_JITTER_MS,
          outages: [{ fromMs: startMs + 3000, toMs: startMs + 6000 }],
        },
      },
      lossy(0),
      lossy(0),
    ],
  },
  {
    name: "3 × 20 %, one cut 3 s",
    summary: "the standard scene, and the first path cut both ways for 3 of 8 s",
    paths: (startMs) => [
      {
        both: {
          lossPercent: 20,
          delayMs: BASE_DELAY_MS,
          jitterMs: BASE_JITTER_MS,
          outages: [{ fromMs: startMs + 3000, toMs: startMs + 6000 }],
        },
      },
      lossy(20),
      lossy(20),
    ],
  },
  {
    name: "one path flapping",
    summary: "clean paths; the first goes away for 1 s in every 2.5 s",
    paths: (startMs, endMs) => {
      const outages = [];
      for (let fromMs = startMs + 1000; fromMs < endMs; fromMs += 2500) {
        outages.push({ fromMs, toMs: fromMs + 1000 });
      }
      return [
        { both: { delayMs: BASE_DELAY_MS, jitterMs: BASE_JITTER_MS, outages } },
        lossy(0),
        lossy(0),
      ];
    },
  },
];

/** What one scenario measured at the target. */
export interface ModeResult {
  readonly mode: SchedulingMode;
  readonly condition: string;
  readonly sent: number;
  /** Share of the stream that never reached the target. */
  readonly lossRatio: number;
  /** Bytes the client put on the paths (every copy, probes and handshakes included) per payload byte delivered. */
  readonly wireBytesPerAppByte: number;
  readonly latencyP50Ms: number;
  readonly latencyP99Ms: number;
  /** The longest time the target received nothing while the stream ran. */
  readonly longestSilenceMs: number;
  /** Share of deliveries that arrived before the datagram sent just before them. */
  readonly reorderedRatio: number;
  readonly duplicates: number;
}

/** How to run one scenario. */
export interface ModeScenarioOptions {
  readonly mode: SchedulingMode;
  readonly condition: ModeCondition;
  readonly seed: number;
  /** Stream length in datagrams (one per ms); 8000 by default. */
  readonly count?: number;
  readonly targetLossRatio?: number;
  readonly fec?: FecParameters | "auto";
  readonly reorderTimeoutMs?: number;
  readonly secret?: string;
  readonly clientTiming?: Partial<ClientTiming>;
}

/** Runs one mode under one condition and measures it. */
export function runModeScenario(options: ModeScenarioOptions): ModeResult {
  const count = options.count ?? 8000;
  const startMs = STREAM_START_MS;
  const endMs = startMs + count;
  const scenario = new TunnelScenario({
    seed: options.seed,
    paths: options.condition.paths(startMs, endMs),
    secret: options.secret,
    clientTiming: options.clientTiming,
    scheduling: {
      mode: options.mode,
      targetLossRatio: options.targetLossRatio,
      fec: options.fec,
      reorderTimeoutMs: options.reorderTimeoutMs,
    },
  });
  const sizeBytes = 1000;
  const stream = scenario.startStream({ startMs, count, intervalMs: 1, sizeBytes });
  scenario.network.runUntil(stream.lastSendMs + 1500);
  const recorder = scenario.target.recorder;
  let wireBytes = 0;
  for (const path of scenario.network.paths) wireBytes += path.forward.counters.offeredBytes;
  const latency = recorder.latency((seq) => startMs + seq);
  let reordered = 0;
  for (let seq = 1; seq < count; seq++) {
    const arrivalMs = recorder.firstArrivalMs(seq);
    const previousMs = recorder.firstArrivalMs(seq - 1);
    if (arrivalMs !== undefined && previousMs !== undefined && arrivalMs < previousMs) reordered++;
  }
  return {
    mode: options.mode,
    condition: options.condition.name,
    sent: count,
    lossRatio: recorder.lossRatio(count),
    wireBytesPerAppByte: wireBytes / Math.max(1, recorder.unique * sizeBytes),
    latencyP50Ms: latency.p50Ms,
    latencyP99Ms: latency.p99Ms,
    longestSilenceMs: recorder.longestGapMs(startMs, stream.lastSendMs),
    reorderedRatio: reordered / Math.max(1, recorder.unique),
    duplicates: recorder.duplicates,
  };
}

/** The modes of the table, in its order. */
export const TABLE_MODES: readonly SchedulingMode[] = ["redundant", "adaptive", "balance", "fec"];
