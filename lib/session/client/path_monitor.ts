/**
 * Probing and liveness of the client's paths: how often each is probed (faster while the tunnel is
 * busy, sooner when it has gone quiet), what a PROBE carries, what its reply teaches, and when a
 * silent path is marked down or merely suspect.
 */

import type { Logger } from "../../base/log.ts";
import type { ClientPath, PathState, PathStatsView } from "../../path/path_stats.ts";
import {
  decodeProbeEcho,
  decodeProbeReplyCount,
  encodeProbeBody,
  type PathAdvice,
} from "../../wire/messages.ts";
import { probeIntervalMs, RateMeter, silenceLimitMs } from "../scheduler.ts";

/** How the monitor paces itself (a part of the client's timing). */
export interface PathMonitorTiming {
  readonly probeIntervalMs: number;
  readonly quietProbeIntervalMs: number;
  readonly pathDownAfterMs: number;
  readonly minPathDownAfterMs: number;
}

/** Watches the paths: probing pace, silence, up and down. */
export class PathMonitor {
  /** How often each path is probed now: faster while the tunnel is busy. */
  #probeIntervalMs: number;
  /** When probing last sped up: silence before it was judged at the slower pace. */
  #silenceCountsFromMs = -Infinity;
  readonly #dataRate = new RateMeter();

  constructor(
    timing: PathMonitorTiming,
    readonly logger: Logger,
    /** Called whenever a path changes state (the paths that may carry data change with it). */
    readonly onStateChange: () => void,
  ) {
    this.#probeIntervalMs = timing.probeIntervalMs;
  }

  /** Counts a data datagram, either way: a busy tunnel probes more often. */
  countData(nowMs: number): void {
    this.#dataRate.count(nowMs);
  }

  /**
   * Sets the probing pace for the traffic of late. Silence is judged against the probing in force
   * while it lasted: after a speed-up, from now.
   */
  updateProbeInterval(nowMs: number, timing: PathMonitorTiming): void {
    const intervalMs = probeIntervalMs(this.#dataRate.perSecond(nowMs), timing.probeIntervalMs);
    // (Only a real speed-up: the rate wobbles, and each wobble must not restart every silence.)
    if (intervalMs < 0.75 * this.#probeIntervalMs) this.#silenceCountsFromMs = nowMs;
    this.#probeIntervalMs = intervalMs;
  }

  /**
   * Works out how long `path` may be silent (from its loss and round trip, with the mode's
   * `falseDownProbability`) and marks it down when it has been silent longer.
   */
  checkSilence(
    path: ClientPath,
    nowMs: number,
    timing: PathMonitorTiming,
    falseDownProbability: number,
  ): void {
    path.silenceLimitMs = silenceLimitMs({
      probeIntervalMs: this.#probeIntervalMs,
      roundTripLossRatio: path.roundTripLossEstimate(nowMs),
      smoothedRttMs: path.smoothedRttMs,
      rttVarianceMs: path.rttVarianceMs,
      floorMs: timing.minPathDownAfterMs,
      ceilingMs: timing.pathDownAfterMs,
      falseDownProbability,
    });
    // The same sum as in nextDeadlineMs, so rounding cannot leave a deadline that never fires.
    if (path.state === "up" && nowMs >= this.silenceEndsMs(path)) {
      this.#setState(path, "down", nowMs);
    }
  }

  /** When the next PROBE is due on `path`: sooner once it has been quiet for a probe interval. */
  nextProbeMs(path: ClientPath, timing: PathMonitorTiming): number {
    const intervalMs = this.#probeIntervalMs;
    const quiet = path.lastProbeSentMs - path.lastHeardMs > intervalMs;
    return path.lastProbeSentMs +
      (quiet ? Math.min(intervalMs, timing.quietProbeIntervalMs) : intervalMs);
  }

  /** Notes a PROBE going out on `path` now and returns its body, carrying `advice`. */
  probeBody(path: ClientPath, nowMs: number, advice: (path: ClientPath) => PathAdvice): Uint8Array {
    path.lastProbeSentMs = nowMs;
    path.probesSent++;
    const body = encodeProbeBody({
      pathIndex: path.index,
      probeId: path.nextProbeId++,
      sentAtMs: nowMs,
      advice: advice(path),
    });
    path.noteProbeSent(path.nextProbeId - 1, nowMs);
    return body;
  }

  /** Takes a PROBE_REPLY's body in; false when it is not a reply to one of our probes there. */
  receiveProbeReply(path: ClientPath, body: Uint8Array, nowMs: number): boolean {
    const probe = decodeProbeEcho(body);
    if (!probe || probe.pathIndex !== path.index || probe.sentAtMs > nowMs) return false;
    path.recordProbeReply(probe.probeId, nowMs - probe.sentAtMs, decodeProbeReplyCount(body));
    return true;
  }

  /** Something from the server arrived on `path`: it is up. */
  heard(path: ClientPath, datagramBytes: number, nowMs: number): void {
    path.received.datagrams++;
    path.received.bytes += datagramBytes;
    path.lastHeardMs = nowMs;
    if (path.state !== "up") this.#setState(path, "up", nowMs);
  }

  /**
   * True when `path` has been quiet for more than two probe intervals and a round trip: a hint, not
   * a verdict (balance and fec modes skip such a path while others are trusted).
   */
  suspect(path: PathStatsView, nowMs: number): boolean {
    const roundTripMs = (path.smoothedRttMs ?? 0) + 4 * path.rttVarianceMs;
    return nowMs - Math.max(path.lastHeardMs, this.#silenceCountsFromMs) >
      2 * this.#probeIntervalMs + roundTripMs;
  }

  /** When `path`, silent since it was last heard, is to be marked down. */
  silenceEndsMs(path: ClientPath): number {
    return Math.max(path.lastHeardMs, this.#silenceCountsFromMs) + path.silenceLimitMs;
  }

  #setState(path: ClientPath, state: PathState, nowMs: number): void {
    const previous = path.state;
    path.state = state;
    this.onStateChange();
    if (state === "down") {
      path.lastDownMs = nowMs;
      this.logger.warning("path down", {
        path: path.label,
        silentMs: Math.round(nowMs - path.lastHeardMs),
      });
    } else if (previous === "down") {
      this.logger.info("path up again", { path: path.label });
    } else {
      this.logger.info("path up", { path: path.label });
    }
  }
}
