/**
 * FEC mode's group shapes at the client: fixed by configuration, or chosen from the loss measured on
 * the paths, for our groups toward the server and (as advice in each PROBE) the server's toward us.
 */

import type { PathStatsView } from "../../path/path_stats.ts";
import { chooseFecParameters, type FecParameters } from "../../fec/parameters.ts";
import { FecEncoder } from "../../fec/encoder.ts";

/** Automatic FEC parameters are recomputed this often. */
const FEC_REFRESH_MS = 250;

/** Loss assumed for FEC's automatic choice before anything is measured: cautious, as the first
 * groups go out before any measurement. */
const FEC_INITIAL_LOSS_RATIO = 0.25;

/**
 * The loss FEC's automatic choice plans for: the measured mean plus a margin for the estimate's own
 * error (a group shaped for exactly the measured loss loses ten times the target at a little more).
 */
function fecPlanningLossRatio(measuredLossRatio: number): number {
  return Math.min(0.5, measuredLossRatio * 1.1 + 0.01);
}

/** The mean loss over paths, those not measured yet counted at a moderate guess. */
function meanLossRatio(
  paths: readonly PathStatsView[],
  lossOf: (path: PathStatsView) => number | undefined,
): number {
  if (paths.length === 0) return FEC_INITIAL_LOSS_RATIO;
  let total = 0;
  for (const path of paths) total += lossOf(path) ?? FEC_INITIAL_LOSS_RATIO;
  return total / paths.length;
}

/** The client's FEC encoder and the shape it asks of the server's. */
export class FecTuning {
  /** What the server is asked to use for its FEC groups toward us (0 data shards: not set). */
  downstream: FecParameters = { dataShards: 0, parityShards: 0 };
  #encoder: FecEncoder | undefined;
  #computedMs = -Infinity;

  constructor(
    /** A fixed group shape, or "auto" to follow the measured loss. */
    readonly setting: FecParameters | "auto",
    /** Automatic shapes aim for residual loss below this. */
    readonly targetLossRatio: number,
  ) {}

  /** The encoder of our groups toward the server, once {@link refresh} made it. */
  get encoder(): FecEncoder | undefined {
    return this.#encoder;
  }

  /** Chooses the groups' shape in each direction (fixed, or from the loss on `candidates`). */
  refresh(candidates: readonly PathStatsView[], nowMs: number): FecEncoder {
    if (this.#encoder && nowMs - this.#computedMs < FEC_REFRESH_MS) return this.#encoder;
    this.#computedMs = nowMs;
    const setting = this.setting;
    const upstream = setting === "auto"
      ? chooseFecParameters(
        fecPlanningLossRatio(meanLossRatio(
          candidates,
          (path) => path.lossToServerRatio ?? path.roundTripLossEstimate(nowMs),
        )),
        this.targetLossRatio,
      )
      : setting;
    this.downstream = setting === "auto"
      ? chooseFecParameters(
        fecPlanningLossRatio(meanLossRatio(candidates, (path) =>
          path.lossFromServerRatio(nowMs) ?? path.roundTripLossEstimate(nowMs))),
        this.targetLossRatio,
      )
      : setting;
    if (!this.#encoder) {
      this.#encoder = new FecEncoder(upstream);
    } else {
      this.#encoder.setParameters(upstream);
    }
    return this.#encoder;
  }

  /** Forgets the encoder: the server started a new session, whose groups start from zero. */
  reset(): void {
    this.#encoder = undefined;
    this.#computedMs = -Infinity;
  }
}
