/**
 * FEC mode at the client: datagrams are coded into groups (`lib/fec/fec.ts`, shaped by
 * `client/fec_tuning.ts`) and each shard goes on the next live path in turn, so one path's loss
 * costs each group at most its share of shards.
 */

import type { PathStatsView } from "../../../path/path_stats.ts";
import { QUICK_FALSE_DOWN_PROBABILITY } from "../../scheduler.ts";
import type { ClientScheduler } from "./client_scheduler.ts";
import { OnePathPicker } from "./one_path_picker.ts";

/** Round robin of shards over the live paths. */
export class FecScheduler<Path extends PathStatsView> implements ClientScheduler<Path> {
  readonly mode = "fec";
  readonly sendsFecShards = true;
  /** A path wrongly marked down costs only a moment's shift of its shards: decide fast. */
  readonly falseDownProbability = QUICK_FALSE_DOWN_PROBABILITY;
  readonly #picker: OnePathPicker<Path>;

  constructor(suspect: (path: PathStatsView, nowMs: number) => boolean) {
    this.#picker = new OnePathPicker<Path>(suspect, () => 1);
  }

  choose(candidates: readonly Path[], nowMs: number): readonly Path[] {
    return this.#picker.pick(candidates, nowMs);
  }

  carriesDataFromServer(path: Path, candidates: readonly Path[]): boolean {
    return candidates.includes(path);
  }

  pathsChanged(): void {}

  forgetPath(pathIndex: number): void {
    this.#picker.forget(pathIndex);
  }
}
