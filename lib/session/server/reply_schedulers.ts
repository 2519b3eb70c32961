/**
 * How the server spreads a session's replies over the addresses it was heard from, one object per
 * mode behind {@link PathScheduler}. The client decides (each PROBE advises whether its path should
 * carry data and its weight); the server follows:
 *
 * - `redundant`: every recent address the client did not ask to spare; the freshest when all are quiet.
 * - `adaptive`: every address advised to carry data and not silent; as redundant when there is none.
 * - `balance`: one usable address per datagram, by weighted round robin; as redundant when none.
 * - `fec`: one usable address per shard in turn; as redundant when none.
 */

import type { PathScheduler } from "../path_scheduler.ts";
import type { SchedulingMode, WeightedRoundRobin } from "../scheduler.ts";
import type { SessionAddress } from "./session_address.ts";

/** In modes other than redundant, an address is used while it is silent for less than this... */
export const MIN_ADDRESS_SILENCE_MS = 300;
/** ... or four of its usual gaps between datagrams, plus this. */
const ADDRESS_SILENCE_MARGIN_MS = 100;

/** What a session's reply schedulers share. */
export interface ReplySchedulerContext {
  /** Replies go to addresses heard from within this time. */
  readonly addressTimeoutMs: number;
  /** The session's round-robin credits (they outlive a change of mode). */
  readonly roundRobin: WeightedRoundRobin;
}

/** Redundant: every recent address, except those the client asked to spare. */
class EveryRecentAddress implements PathScheduler<SessionAddress> {
  readonly mode = "redundant";
  readonly sendsFecShards = false;
  readonly #chosen: SessionAddress[] = [];

  constructor(readonly context: ReplySchedulerContext) {}

  choose(candidates: readonly SessionAddress[], nowMs: number): readonly SessionAddress[] {
    const chosen = this.#chosen;
    chosen.length = 0;
    const timeoutMs = this.context.addressTimeoutMs;
    let freshest: SessionAddress | undefined;
    for (const known of candidates) {
      if (!freshest || known.lastHeardMs > freshest.lastHeardMs) freshest = known;
      // A backup path while others are up, or a path out of service, is spared.
      if (nowMs - known.lastHeardMs > timeoutMs || !known.carryData) continue;
      chosen.push(known);
    }
    // When every path has gone quiet, the freshest address is still the best guess.
    if (chosen.length === 0 && freshest) chosen.push(freshest);
    return chosen;
  }

  pathsChanged(): void {}

  forgetPath(id: number): void {
    this.context.roundRobin.forget(id);
  }
}

/** True when an address may carry data in modes other than redundant: advised and not silent. */
function usable(known: SessionAddress, nowMs: number, addressTimeoutMs: number): boolean {
  if (!known.carryData) return false;
  const limitMs = Math.min(
    addressTimeoutMs,
    Math.max(MIN_ADDRESS_SILENCE_MS, 4 * known.arrivalGapMs + ADDRESS_SILENCE_MARGIN_MS),
  );
  return nowMs - known.lastHeardMs <= limitMs;
}

/** Adaptive: every address the client wants data on; all recent ones when none is. */
class EveryAdvisedAddress implements PathScheduler<SessionAddress> {
  readonly mode = "adaptive";
  readonly sendsFecShards = false;
  readonly #chosen: SessionAddress[] = [];
  readonly #fallback: EveryRecentAddress;

  constructor(readonly context: ReplySchedulerContext) {
    this.#fallback = new EveryRecentAddress(context);
  }

  choose(candidates: readonly SessionAddress[], nowMs: number): readonly SessionAddress[] {
    const chosen = this.#chosen;
    chosen.length = 0;
    for (const known of candidates) {
      if (usable(known, nowMs, this.context.addressTimeoutMs)) chosen.push(known);
    }
    return chosen.length > 0 ? chosen : this.#fallback.choose(candidates, nowMs);
  }

  pathsChanged(): void {}

  forgetPath(id: number): void {
    this.context.roundRobin.forget(id);
  }
}

/** Balance and FEC: one usable address, by (weighted, in balance) round robin. */
class OneAddressInTurn implements PathScheduler<SessionAddress> {
  readonly sendsFecShards: boolean;
  readonly #keys: number[] = [];
  readonly #weights: number[] = [];
  readonly #usable: SessionAddress[] = [];
  readonly #chosen: SessionAddress[] = [];
  readonly #fallback: EveryRecentAddress;

  constructor(
    readonly mode: "balance" | "fec",
    readonly context: ReplySchedulerContext,
  ) {
    this.sendsFecShards = mode === "fec";
    this.#fallback = new EveryRecentAddress(context);
  }

  choose(candidates: readonly SessionAddress[], nowMs: number): readonly SessionAddress[] {
    const weighted = !this.sendsFecShards;
    let count = 0;
    for (const known of candidates) {
      if (!usable(known, nowMs, this.context.addressTimeoutMs)) continue;
      this.#keys[count] = known.id;
      this.#weights[count] = weighted ? known.weight : 1;
      this.#usable[count] = known;
      count++;
    }
    const chosen = this.context.roundRobin.pick(this.#keys, this.#weights, count);
    if (chosen < 0) return this.#fallback.choose(candidates, nowMs);
    this.#chosen.length = 0;
    this.#chosen.push(this.#usable[chosen]);
    return this.#chosen;
  }

  pathsChanged(): void {}

  forgetPath(id: number): void {
    this.context.roundRobin.forget(id);
  }
}

const REPLY_SCHEDULERS: {
  readonly [Mode in SchedulingMode]: (
    context: ReplySchedulerContext,
  ) => PathScheduler<SessionAddress>;
} = {
  redundant: (context) => new EveryRecentAddress(context),
  adaptive: (context) => new EveryAdvisedAddress(context),
  balance: (context) => new OneAddressInTurn("balance", context),
  fec: (context) => new OneAddressInTurn("fec", context),
};

/**
 * The server's scheduler of a session's replies in `mode`.
 *
 * @example
 * ```ts
 * import { createReplyScheduler } from "./reply_schedulers.ts";
 * import { WeightedRoundRobin } from "../scheduler.ts";
 * const scheduler = createReplyScheduler("balance", {
 *   addressTimeoutMs: 3000,
 *   roundRobin: new WeightedRoundRobin(),
 * });
 * scheduler.choose([], 0); // no address: nothing
 * ```
 */
export function createReplyScheduler(
  mode: SchedulingMode,
  context: ReplySchedulerContext,
): PathScheduler<SessionAddress> {
  return REPLY_SCHEDULERS[mode](context);
}
