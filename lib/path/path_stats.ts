/**
 * A client path: one way from mpclient to mpserver (through a bridge, or straight), with what is known
 * of its health. The core updates it; the driver owns the socket behind it.
 */

import { createTrafficCounters, type TrafficCounters } from "../base/counters.ts";
import type { SendErrorKind } from "./send_error.ts";

/** What is known of a path: not heard yet, carrying traffic, or silent for too long. */
export type PathState = "probing" | "up" | "down";

/** Smoothing constants of RFC 6298's round-trip estimator. */
const RTT_GAIN = 1 / 8;
const RTT_VARIANCE_GAIN = 1 / 4;
/** RFC 3550's jitter gain. */
const JITTER_GAIN = 1 / 16;
/** Probes remembered for the round-trip loss estimate (12.8 s of a busy tunnel's probing). */
const PROBE_HISTORY = 256;
/** A probe counts as lost once it is this old without a reply. */
const PROBE_ANSWER_WAIT_MS = 1000;
/** Probes older than this no longer count in the loss estimate. */
const PROBE_HISTORY_SPAN_MS = 30_000;
/** Loss toward the server is judged over at least this many datagrams. */
const LOSS_SAMPLE_DATAGRAMS = 50;
/** Weight of a new sample in the smoothed loss toward the server. */
const LOSS_GAIN = 1 / 4;

/**
 * What a scheduler may read of a path: who it is, what state it is in and what has been measured
 * on it, with nothing it could change. {@link ClientPath} is one.
 */
export interface PathStatsView {
  /** Position in the client's path list; carried in probes. */
  readonly index: number;
  /** How the path is named in logs. */
  readonly label: string;
  /** A backup path carries data only while no other path is up. */
  readonly backup: boolean;
  /** Share of datagrams in balance mode, relative to the other paths. */
  readonly weight: number;
  readonly state: PathState;
  /** False while an operator has taken the path out of service. */
  readonly inService: boolean;
  /** When anything authentic last arrived on this path (−Infinity: never). */
  readonly lastHeardMs: number;
  /** When the path was last marked down (−Infinity: never). */
  readonly lastDownMs: number;
  /** Smoothed round-trip time (RFC 6298), undefined until the first probe reply. */
  readonly smoothedRttMs: number | undefined;
  /** Round-trip variation (RFC 6298). */
  readonly rttVarianceMs: number;
  /** The most recent round-trip sample. */
  readonly latestRttMs: number | undefined;
  /** Variation of consecutive round-trip samples. */
  readonly jitterMs: number;
  /** Smoothed share of datagrams lost toward the server, undefined until measured. */
  readonly lossToServerRatio: number | undefined;
  /** Datagrams and bytes sent on this path. */
  readonly sent: Readonly<TrafficCounters>;
  /** Datagrams and bytes received on this path. */
  readonly received: Readonly<TrafficCounters>;
  /** Share of recent probes that got no reply. */
  roundTripLossRatio(nowMs: number): number | undefined;
  /** The round-trip loss for decisions, smoothed while there are few probes. */
  roundTripLossEstimate(nowMs: number): number | undefined;
  /** Loss from the server on this path. */
  lossFromServerRatio(nowMs: number): number | undefined;
}

/** Health and counters of one client path. */
export class ClientPath implements PathStatsView {
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
  /** RFC 3550-style variation of consecutive round-trip samples. */
  jitterMs = 0;
  /** Sealed datagrams sent on this path (what the server's receive count is compared with). */
  sealedSent = 0;
  /** Smoothed share of datagrams lost toward the server, undefined until measured. */
  lossToServerRatio: number | undefined;
  /** Silence after which this path is marked down; the core recomputes it from the probing rate and loss. */
  silenceLimitMs = 2000;
  /** False while an operator has taken the path out of service: it carries no data. */
  inService = true;
  /** When the path was last marked down (−Infinity: never). */
  lastDownMs = -Infinity;
  readonly #probeSentMs = new Float64Array(PROBE_HISTORY).fill(-Infinity);
  readonly #probeAnswered = new Uint8Array(PROBE_HISTORY);
  readonly #probeSealedSent = new Float64Array(PROBE_HISTORY);
  /** 1 for probes sent while the path was believed up: only those measure its random loss. */
  readonly #probeWhileUp = new Uint8Array(PROBE_HISTORY);
  #lossBaseline: { sealedSent: number; serverReceived: number } | undefined;

  constructor(
    /** Position in the client's path list; carried in probes. */
    readonly index: number,
    /** How the path is named in logs (its name, or HOST:PORT). */
    readonly label: string,
    /** A backup path carries data only while no other path is up. */
    readonly backup: boolean = false,
    /** Share of datagrams in balance mode, relative to the other paths. */
    readonly weight: number = 1,
  ) {}

  /** Notes a PROBE about to be sent with `probeId`, for the loss estimates. */
  noteProbeSent(probeId: number, nowMs: number): void {
    const slot = probeId % PROBE_HISTORY;
    this.#probeSentMs[slot] = nowMs;
    this.#probeAnswered[slot] = 0;
    this.#probeSealedSent[slot] = this.sealedSent;
    this.#probeWhileUp[slot] = this.state === "up" ? 1 : 0;
  }

  /**
   * Takes in a PROBE_REPLY: the round trip, and the server's count of datagrams received from this
   * path, which against what was sent before the probe gives the loss toward the server.
   */
  recordProbeReply(probeId: number, rttMs: number, serverReceived: number | undefined): void {
    const slot = probeId % PROBE_HISTORY;
    if (this.#probeAnswered[slot] === 1 || this.#probeSentMs[slot] === -Infinity) return;
    this.#probeAnswered[slot] = 1;
    this.probeRepliesReceived++;
    this.recordRtt(rttMs);
    if (serverReceived === undefined) return;
    // The server counted every datagram up to and including this probe.
    const sealedSent = this.#probeSealedSent[slot] + 1;
    const baseline = this.#lossBaseline;
    if (!baseline || serverReceived < baseline.serverReceived || sealedSent < baseline.sealedSent) {
      this.#lossBaseline = { sealedSent, serverReceived };
      return;
    }
    const sent = sealedSent - baseline.sealedSent;
    if (sent < LOSS_SAMPLE_DATAGRAMS) return;
    const received = (serverReceived - baseline.serverReceived) >>> 0;
    const sample = Math.min(1, Math.max(0, 1 - received / sent));
    this.lossToServerRatio = this.lossToServerRatio === undefined
      ? sample
      : (1 - LOSS_GAIN) * this.lossToServerRatio + LOSS_GAIN * sample;
    this.#lossBaseline = { sealedSent, serverReceived };
  }

  /** Share of recent probes (1 to 30 s old) that got no reply: the round-trip loss. */
  roundTripLossRatio(nowMs: number): number | undefined {
    let probes = 0;
    let answered = 0;
    for (let slot = 0; slot < PROBE_HISTORY; slot++) {
      const ageMs = nowMs - this.#probeSentMs[slot];
      if (ageMs < PROBE_ANSWER_WAIT_MS || ageMs > PROBE_HISTORY_SPAN_MS) continue;
      probes++;
      answered += this.#probeAnswered[slot];
    }
    return probes === 0 ? undefined : 1 - answered / probes;
  }

  /**
   * The round-trip loss for decisions: like {@link roundTripLossRatio} but smoothed toward 50 % while
   * there are few probes ((lost + 1) / (probes + 2)), so two lucky probes do not make a path look
   * perfect; and only over probes sent while the path was up, so an outage does not make it look
   * lossy afterwards. Undefined before any probe is old enough to judge.
   */
  roundTripLossEstimate(nowMs: number): number | undefined {
    let probes = 0;
    let answered = 0;
    for (let slot = 0; slot < PROBE_HISTORY; slot++) {
      const ageMs = nowMs - this.#probeSentMs[slot];
      if (ageMs < PROBE_ANSWER_WAIT_MS || ageMs > PROBE_HISTORY_SPAN_MS) continue;
      if (this.#probeWhileUp[slot] === 0) continue; // an outage is not loss
      probes++;
      answered += this.#probeAnswered[slot];
    }
    return probes === 0 ? undefined : (probes - answered + 1) / (probes + 2);
  }

  /** Loss from the server on this path, from the round-trip loss and the loss toward the server. */
  lossFromServerRatio(nowMs: number): number | undefined {
    const roundTrip = this.roundTripLossRatio(nowMs);
    if (roundTrip === undefined || this.lossToServerRatio === undefined) return undefined;
    if (this.lossToServerRatio >= 1) return undefined;
    return Math.min(1, Math.max(0, 1 - (1 - roundTrip) / (1 - this.lossToServerRatio)));
  }

  /** Records a round-trip sample from a probe reply. */
  recordRtt(sampleMs: number): void {
    if (this.latestRttMs !== undefined) {
      this.jitterMs += (Math.abs(sampleMs - this.latestRttMs) - this.jitterMs) * JITTER_GAIN;
    }
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
