/**
 * The one interface every scheduling mode implements, at both ends: given the paths that may carry
 * data now (read-only views of what is measured on them), which of them the next datagram goes on.
 * Each mode is an object of its own (the client's in `client/scheduling/`, the server's in
 * `server/reply_schedulers.ts`), made by a small factory from the mode's name, so a new way of
 * choosing (by capacity, round trip, queueing delay) is one more object, not one more `switch`.
 */

import type { SchedulingMode } from "./scheduler.ts";

/**
 * Chooses the paths of each datagram. `Path` is the sender's read-only view of a path: the client's
 * path statistics (`PathStatsView`), the server's addresses of a session.
 *
 * @example
 * ```ts
 * import type { PathScheduler } from "./path_scheduler.ts";
 * import type { PathStatsView } from "../path/path_stats.ts";
 * // Every candidate, as redundant mode does.
 * const everyPath: PathScheduler<PathStatsView> = {
 *   mode: "redundant",
 *   sendsFecShards: false,
 *   choose: (candidates) => candidates,
 *   pathsChanged: () => {},
 *   forgetPath: () => {},
 * };
 * ```
 */
export interface PathScheduler<Path> {
  /** The mode this object implements. */
  readonly mode: SchedulingMode;
  /**
   * True when the mode codes datagrams into FEC groups: {@link choose} then places one shard at a
   * time, and a whole datagram (before the groups are shaped) goes where redundant mode would.
   */
  readonly sendsFecShards: boolean;
  /**
   * The paths the next datagram (in fec mode: the next shard) goes on, chosen among `candidates`,
   * the paths that may carry data now. Empty: it is not sent. The array may be reused by the next
   * call, so use it before choosing again.
   */
  choose(candidates: readonly Path[], nowMs: number): readonly Path[];
  /** The paths or their states changed: forget whatever was worked out from them. */
  pathsChanged(): void;
  /** A path went away for good: forget what is kept about it (`key` is its index or id). */
  forgetPath(key: number): void;
}
