/**
 * Adaptive mode at the client: each datagram on the fewest best paths whose combined loss meets the
 * target, and the same rule, with the loss measured the other way, for what the server sends us.
 */

import type { PathStatsView } from "../../../path/path_stats.ts";
import { CAUTIOUS_FALSE_DOWN_PROBABILITY } from "../../scheduler.ts";
import type { ClientScheduler } from "./client_scheduler.ts";
import { downstreamLossRatio, fewestGoodEnough, upstreamLossRatio } from "./loss_estimates.ts";

/** The path set toward the server is recomputed this often (and when a path changes). */
const ADAPTIVE_REFRESH_MS = 100;

/** The fewest good-enough paths, by measured loss. */
export class AdaptiveScheduler<Path extends PathStatsView> implements ClientScheduler<Path> {
  readonly mode = "adaptive";
  readonly sendsFecShards = false;
  /** A path wrongly marked down takes a copy away: wait for more evidence. */
  readonly falseDownProbability = CAUTIOUS_FALSE_DOWN_PROBABILITY;
  #paths: Path[] = [];
  #computedMs = -Infinity;

  constructor(readonly targetLossRatio: number) {}

  choose(candidates: readonly Path[], nowMs: number): readonly Path[] {
    if (nowMs - this.#computedMs < ADAPTIVE_REFRESH_MS) return this.#paths;
    this.#computedMs = nowMs;
    this.#paths = fewestGoodEnough(
      candidates,
      (path) => upstreamLossRatio(path, nowMs),
      this.targetLossRatio,
    );
    return this.#paths;
  }

  carriesDataFromServer(path: Path, candidates: readonly Path[], nowMs: number): boolean {
    return candidates.includes(path) &&
      fewestGoodEnough(
        candidates,
        (known) => downstreamLossRatio(known, nowMs),
        this.targetLossRatio,
      ).includes(path);
  }

  pathsChanged(): void {
    this.#computedMs = -Infinity;
  }

  forgetPath(): void {}
}
