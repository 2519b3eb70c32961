/** Redundant mode at the client: every datagram on every path that may carry data. */

import type { PathStatsView } from "../../../path/path_stats.ts";
import { CAUTIOUS_FALSE_DOWN_PROBABILITY } from "../../scheduler.ts";
import type { ClientScheduler } from "./client_scheduler.ts";

/** Every candidate carries every datagram, both ways. */
export class RedundantScheduler<Path extends PathStatsView> implements ClientScheduler<Path> {
  readonly mode = "redundant";
  readonly sendsFecShards = false;
  /** A path wrongly marked down takes a copy away: wait for more evidence. */
  readonly falseDownProbability = CAUTIOUS_FALSE_DOWN_PROBABILITY;

  choose(candidates: readonly Path[]): readonly Path[] {
    return candidates;
  }

  carriesDataFromServer(path: Path, candidates: readonly Path[]): boolean {
    return candidates.includes(path);
  }

  pathsChanged(): void {}

  forgetPath(): void {}
}
