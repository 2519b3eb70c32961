/** Makes the client's scheduler for a mode, by its name: one object per mode. */

import type { PathStatsView } from "../../../path/path_stats.ts";
import type { SchedulingMode } from "../../scheduler.ts";
import { AdaptiveScheduler } from "./adaptive_scheduler.ts";
import { BalanceScheduler } from "./balance_scheduler.ts";
import type { ClientScheduler, ClientSchedulerOptions } from "./client_scheduler.ts";
import { FecScheduler } from "./fec_scheduler.ts";
import { RedundantScheduler } from "./redundant_scheduler.ts";

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
 * import { createClientScheduler } from "./scheduler_factory.ts";
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
