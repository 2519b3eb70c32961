/**
 * Balance mode at the client: one path per datagram, in turn by weight, less to a path that loses
 * more; the server is asked to do the same with the paths that are up.
 */

import type { PathStatsView } from "../../../path/path_stats.ts";
import { QUICK_FALSE_DOWN_PROBABILITY } from "../../scheduler.ts";
import type { ClientScheduler } from "./client_scheduler.ts";
import { OnePathPicker } from "./one_path_picker.ts";

/** A path's share in balance mode: its weight, less as it loses more (loss is a sign of overload). */
export function balanceWeight(path: PathStatsView): number {
  return path.weight * Math.max(0.05, 1 - 2 * (path.lossToServerRatio ?? 0));
}

/** Weighted round robin over the live paths. */
export class BalanceScheduler<Path extends PathStatsView> implements ClientScheduler<Path> {
  readonly mode = "balance";
  readonly sendsFecShards = false;
  /** A path wrongly marked down costs only a moment's shift of its share: decide fast. */
  readonly falseDownProbability = QUICK_FALSE_DOWN_PROBABILITY;
  readonly #picker: OnePathPicker<Path>;

  constructor(suspect: (path: PathStatsView, nowMs: number) => boolean) {
    this.#picker = new OnePathPicker<Path>(suspect, balanceWeight);
  }

  choose(candidates: readonly Path[], nowMs: number): readonly Path[] {
    return this.#picker.pick(candidates, nowMs);
  }

  carriesDataFromServer(path: Path, candidates: readonly Path[]): boolean {
    return candidates.includes(path) &&
      (path.state === "up" || !candidates.some((known) => known.state === "up"));
  }

  pathsChanged(): void {}

  forgetPath(pathIndex: number): void {
    this.#picker.forget(pathIndex);
  }
}
