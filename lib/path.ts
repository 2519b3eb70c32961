/**
 * A client path: one way from mpclient to mpserver (through a bridge, or straight), with what is known
 * of its health. The core updates it; the driver owns the socket behind it.
 */

import { createTrafficCounters, type TrafficCounters } from "./stats.ts";
import type { SendErrorKind } from "./udp.ts";

/** What is known of a path: not heard yet, carrying traffic, or silent for too long. */
export type PathState = "probing" | "up" | "down";

/** Smoothing constants of RFC 6298's round-trip estimator. */
const RTT_GAIN = 1 / 8;
const RTT_VARIANCE_GAIN = 1 / 4;

/** Health and counters of one client path. */
export class ClientPath {
  state: PathState = "probing";
  /** When anything authentic last arrived on this path (−Infinity: never). */
  lastHeardMs = -Infinity;
  /** When the last PROBE went out on this path. */
  lastProbeSentMs = -Infinity;
  /** The id the next PROBE carries. */
  nextProbeId = 1;
  /** Smoothed round-trip time (RFC 6298), undefined until the first probe reply. */
  smoothedRttMs: number | undefined;
  /** Round-trip variation (RFC 6298). */
  rttVarianceMs = 0;
  /** The most recent round-trip sample. */
  latestRttMs: number | undefined;
  readonly sent: TrafficCounters = createTrafficCounters();
  readonly received: TrafficCounters = createTrafficCounters();
  readonly sendErrors: Record<SendErrorKind, number> = {
    "refused": 0,
    "unreachable": 0,
    "not-permitted": 0,
    "no-address": 0,
    "too-large": 0,
    "no-buffer": 0,
    "other": 0,
  };
  probesSent = 0;
  probeRepliesReceived = 0;

  constructor(
    /** Position in the client's path list; carried in probes. */
    readonly index: number,
    /** How the path is named in logs (its name, or HOST:PORT). */
    readonly label: string,
    /** A backup path carries data only while no other path is up. */
    readonly backup: boolean = false,
  ) {}

  /** Records a round-trip sample from a probe reply. */
  recordRtt(sampleMs: number): void {
    this.latestRttMs = sampleMs;
    if (this.smoothedRttMs === undefined) {
      this.smoothedRttMs = sampleMs;
      this.rttVarianceMs = sampleMs / 2;
      return;
    }
    this.rttVarianceMs = (1 - RTT_VARIANCE_GAIN) * this.rttVarianceMs +
      RTT_VARIANCE_GAIN * Math.abs(this.smoothedRttMs - sampleMs);
    this.smoothedRttMs = (1 - RTT_GAIN) * this.smoothedRttMs + RTT_GAIN * sampleMs;
  }

  /** Total send errors of every kind. */
  get totalSendErrors(): number {
    return Object.values(this.sendErrors).reduce((sum, count) => sum + count, 0);
  }
}
