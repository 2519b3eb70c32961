/**
 * Adaptive mode's view of each path's loss, one way or the other, and its choice of the fewest
 * paths that meet the loss target.
 */

import type { PathStatsView } from "../../../path/path_stats.ts";
import { adaptivePathCount, UNKNOWN_LOSS_RATIO } from "../../scheduler.ts";

/** A path that went down counts as unreliable in adaptive mode for this long. */
const FLAP_MEMORY_MS = 30_000;

/** The best estimate of a path's loss toward the server, for adaptive mode. */
export function upstreamLossRatio(path: PathStatsView, nowMs: number): number {
  const measured = path.lossToServerRatio ?? path.roundTripLossEstimate(nowMs) ??
    UNKNOWN_LOSS_RATIO;
  return distrustFlapping(path, measured, nowMs);
}

/** The best estimate of a path's loss from the server, for adaptive mode. */
export function downstreamLossRatio(path: PathStatsView, nowMs: number): number {
  const measured = path.lossFromServerRatio(nowMs) ?? path.roundTripLossEstimate(nowMs) ??
    UNKNOWN_LOSS_RATIO;
  return distrustFlapping(path, measured, nowMs);
}

/**
 * A path that went down lately may go again, and a datagram sent only there would be lost until it
 * is noticed: for a while it counts as no better than an unknown one, so adaptive mode leans on
 * steadier paths and uses this one only alongside them.
 */
function distrustFlapping(path: PathStatsView, lossRatio: number, nowMs: number): number {
  return nowMs - path.lastDownMs < FLAP_MEMORY_MS
    ? Math.max(lossRatio, UNKNOWN_LOSS_RATIO)
    : lossRatio;
}

/** Adaptive mode: the fewest paths, lowest loss (then round trip) first, that meet the target. */
export function fewestGoodEnough<Path extends PathStatsView>(
  candidates: readonly Path[],
  lossOf: (path: Path) => number,
  targetLossRatio: number,
): Path[] {
  const ranked = candidates.map((path) => ({ path, loss: lossOf(path) }));
  ranked.sort((a, b) =>
    a.loss - b.loss || (a.path.smoothedRttMs ?? Infinity) - (b.path.smoothedRttMs ?? Infinity)
  );
  const count = adaptivePathCount(ranked.map((entry) => entry.loss), targetLossRatio);
  return ranked.slice(0, count).map((entry) => entry.path);
}
