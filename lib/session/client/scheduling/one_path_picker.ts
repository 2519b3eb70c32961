/**
 * One path per datagram or shard, by weighted round robin over the candidates that look alive: what
 * balance and fec modes share.
 */

import type { PathStatsView } from "../../../path/path_stats.ts";
import { WeightedRoundRobin } from "../../scheduler.ts";

/** Picks one path at a time, in turn by weight. */
export class OnePathPicker<Path extends PathStatsView> {
  readonly #roundRobin = new WeightedRoundRobin();
  readonly #keys: number[] = [];
  readonly #weights: number[] = [];
  readonly #candidates: Path[] = [];
  readonly #chosen: Path[] = [];

  constructor(
    readonly suspect: (path: PathStatsView, nowMs: number) => boolean,
    readonly weightOf: (path: Path) => number,
  ) {}

  /**
   * One of the candidates (none when there are none): only those heard from once any is. The array
   * is reused by the next call.
   */
  pick(candidates: readonly Path[], nowMs: number): readonly Path[] {
    // A path quiet for a couple of probe intervals is suspect: in these modes a datagram or shard
    // sent there may be lost outright, while the others take it at no cost, so it is skipped until
    // it is heard again — long before the evidence would mark it down.
    let anyUp = false;
    let anyTrusted = false;
    for (const path of candidates) {
      anyUp ||= path.state === "up";
      anyTrusted ||= path.state === "up" && !this.suspect(path, nowMs);
    }
    let count = 0;
    for (const path of candidates) {
      if (anyUp && path.state !== "up") continue;
      if (anyTrusted && this.suspect(path, nowMs)) continue;
      this.#keys[count] = path.index;
      this.#weights[count] = this.weightOf(path);
      this.#candidates[count] = path;
      count++;
    }
    const chosen = this.#roundRobin.pick(this.#keys, this.#weights, count);
    this.#chosen.length = 0;
    if (chosen >= 0) this.#chosen.push(this.#candidates[chosen]);
    return this.#chosen;
  }

  /** Forgets a removed path's credit. */
  forget(pathIndex: number): void {
    this.#roundRobin.forget(pathIndex);
  }
}
