/**
 * The client's scheduling modes: each is a {@link PathScheduler} over the paths' statistics that
 * also says what the server is to do on each path (the PROBE's advice) and how sure the client must
 * be before it calls a silent path down. {@link createClientScheduler} makes one from a mode's name.
 */

import type { PathStatsView } from "../../../path/path_stats.ts";
import type { PathScheduler } from "../../path_scheduler.ts";
import type { SchedulingMode } from "../../scheduler.ts";
import { AdaptiveScheduler } from "./adaptive_scheduler.ts";
import { BalanceScheduler } from "./balance_scheduler.ts";
import { FecScheduler } from "./fec_scheduler.ts";
import { RedundantScheduler } from "./redundant_scheduler.ts";

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

const SCHEDULERS: {
  readonly [Mode in SchedulingMode]: <Path extends PathStatsView>(
    options: ClientSchedulerOptions,
  ) => ClientScheduler<Path>;
} = {
  redundant: () => new RedundantScheduler(),
  adaptive: (options) => new AdaptiveScheduler(options.targetLossRatio),
  balance: (options) => new BalanceScheduler(options.suspect),
  fec: (options) => new FecScheduler(options.suspect),
};

/**
 * The client's scheduler for `mode`.
 *
 * @example
 * ```ts
 * import { createClientScheduler } from "./client_scheduler.ts";
 * import { ClientPath } from "../../../path/path_stats.ts";
 * const scheduler = createClientScheduler<ClientPath>("redundant", {
 *   targetLossRatio: 0.001,
 *   suspect: () => false,
 * });
 * const paths = [new ClientPath(0, "a"), new ClientPath(1, "b")];
 * scheduler.choose(paths, 0); // both: redundant mode sends on every candidate
 * ```
 */
export function createClientScheduler<Path extends PathStatsView>(
  mode: SchedulingMode,
  options: ClientSchedulerOptions,
): ClientScheduler<Path> {
  return SCHEDULERS[mode]<Path>(options);
}
