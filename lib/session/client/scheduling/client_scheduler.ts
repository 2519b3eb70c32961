/**
 * The client's scheduling modes: each is a {@link PathScheduler} over the paths' statistics that
 * also says what the server is to do on each path (the PROBE's advice) and how sure the client must
 * be before it calls a silent path down. `createClientScheduler` (`scheduler_factory.ts`) makes one
 * from a mode's name.
 */

import type { PathStatsView } from "../../../path/path_stats.ts";
import type { PathScheduler } from "../../path_scheduler.ts";

/** What the client's schedulers need to know beyond the paths themselves. */
export interface ClientSchedulerOptions {
  /** Adaptive mode aims for residual loss below this. */
  readonly targetLossRatio: number;
  /**
   * True when `path` has been quiet for a couple of probe intervals: a hint, not a verdict (the
   * probing knows the pace; see `client/path_monitor.ts`).
   */
  readonly suspect: (path: PathStatsView, nowMs: number) => boolean;
}

/** A client scheduling mode. */
export interface ClientScheduler<Path extends PathStatsView> extends PathScheduler<Path> {
  /**
   * How unlikely a live path must be to stay silent as long as it may before it is marked down
   * (see `silenceLimitMs` in `scheduler.ts`).
   */
  readonly falseDownProbability: number;
  /** Whether the server is asked to send its data to us on `path`, one of `candidates` or not. */
  carriesDataFromServer(path: Path, candidates: readonly Path[], nowMs: number): boolean;
}
