/**
 * The arithmetic of scheduling shared by both ends and every mode, as plain functions of
 * measurements: how many paths adaptive mode needs, how long a silent path may stay up, how often to
 * probe, and the weighted round robin. No clock: callers pass what they measured. The modes
 * themselves are objects behind `PathScheduler` (`path_scheduler.ts`):
 *
 * - `redundant`: every live path (the caller's backup rule decides which are live).
 * - `adaptive`: the fewest best paths whose combined loss (the product of their loss ratios, losses
 *   being independent) meets the target; all of them when none does.
 * - `balance`: one path per datagram, by smooth weighted round robin (nginx's), so shares follow the
 *   weights closely and evenly over short spans.
 * - `fec`: one shard per path in turn (round robin); the FEC group layer (`lib/fec/`) decides the
 *   shards.
 */

import type { AdviceMode } from "../wire/messages.ts";

/** How datagrams are spread over the paths (`--mode`). */
export type SchedulingMode = AdviceMode;

/** Loss assumed for a path nothing has been measured on yet: pessimistic, so a new path adds paths. */
export const UNKNOWN_LOSS_RATIO = 0.5;

/**
 * Probe no more often than this on a busy tunnel: 20 probes of ~60 bytes a second, 0.1 % of a path
 * carrying 1000 datagrams of 1000 bytes a second.
 */
export const BUSY_PROBE_INTERVAL_MS = 50;

/** One probe per this many data datagrams at most, so probes stay a small share of a busy tunnel. */
const DATAGRAMS_PER_PROBE = 50;

/**
 * How unlikely a live path must be to stay silent for the whole limit {@link silenceLimitMs} gives,
 * where a wrong verdict takes a copy away (redundant and adaptive modes): wait for more evidence.
 */
export const CAUTIOUS_FALSE_DOWN_PROBABILITY = 1e-3;
/**
 * ... and where a path wrongly marked down costs nothing but a moment's shift of its share to the
 * others (balance, fec): speed matters more than certainty.
 */
export const QUICK_FALSE_DOWN_PROBABILITY = 0.05;

/** Probe loss is taken to be at least this, so a clean path's limit still spans a few probes. */
const MIN_ASSUMED_PROBE_LOSS = 0.05;
/** Probe loss assumed before any is measured: a lossy path must not look dead at first. */
const UNMEASURED_PROBE_LOSS = 0.3;

/**
 * How long a path may be silent before it is marked down: long enough that a live path with this
 * round-trip loss is rarely that silent (see {@link CAUTIOUS_FALSE_DOWN_PROBABILITY}), plus a round trip.
 */
export function silenceLimitMs(options: {
  readonly probeIntervalMs: number;
  /** Share of probes that get no answer (undefined: not measured yet). */
  readonly roundTripLossRatio: number | undefined;
  readonly smoothedRttMs: number | undefined;
  readonly rttVarianceMs: number;
  readonly floorMs: number;
  readonly ceilingMs: number;
  /** See {@link CAUTIOUS_FALSE_DOWN_PROBABILITY} (the default) and {@link QUICK_FALSE_DOWN_PROBABILITY}. */
  readonly falseDownProbability?: number;
}): number {
  const loss = Math.min(
    0.9,
    Math.max(MIN_ASSUMED_PROBE_LOSS, options.roundTripLossRatio ?? UNMEASURED_PROBE_LOSS),
  );
  const probesMissed = Math.ceil(
    Math.log(options.falseDownProbability ?? CAUTIOUS_FALSE_DOWN_PROBABILITY) / Math.log(loss),
  );
  const roundTripMs = (options.smoothedRttMs ?? 0) + 4 * options.rttVarianceMs;
  const limitMs = probesMissed * options.probeIntervalMs + roundTripMs;
  return Math.min(options.ceilingMs, Math.max(options.floorMs, limitMs));
}

/**
 * How often to probe each path: every `idleIntervalMs` on a quiet tunnel, up to every
 * {@link BUSY_PROBE_INTERVAL_MS} as traffic grows (one probe per 100 data datagrams at most), so a
 * busy tunnel notices a dead path in well under a second and an idle one costs almost nothing.
 */
export function probeIntervalMs(dataDatagramsPerSecond: number, idleIntervalMs: number): number {
  if (dataDatagramsPerSecond <= 0) return idleIntervalMs;
  const intervalMs = (1000 * DATAGRAMS_PER_PROBE) / dataDatagramsPerSecond;
  return Math.max(BUSY_PROBE_INTERVAL_MS, Math.min(idleIntervalMs, intervalMs));
}

/**
 * Adaptive mode: how many of the paths, best first (`sortedLossRatios` ascending), a datagram needs
 * so that the chance all copies are lost is at most `targetLossRatio`. All of them when even all
 * together miss the target; at least one.
 */
export function adaptivePathCount(
  sortedLossRatios: readonly number[],
  targetLossRatio: number,
): number {
  let combinedLoss = 1;
  for (let count = 1; count <= sortedLossRatios.length; count++) {
    combinedLoss *= sortedLossRatios[count - 1];
    if (combinedLoss <= targetLossRatio) return count;
  }
  return Math.max(1, sortedLossRatios.length);
}

/**
 * Smooth weighted round robin over candidates identified by small integer keys (path indices): each
 * pick adds every candidate's weight to its credit, picks the largest credit and takes the total
 * back from it. With weights 5:1:1 the picks go a a b a c a a, not a a a a a b c.
 */
export class WeightedRoundRobin {
  readonly #credit = new Map<number, number>();

  /**
   * Picks one of the first `count` candidates (`keys[i]` with `weights[i]` > 0) and returns its
   * position in the arrays, or −1 when `count` is 0.
   */
  pick(keys: readonly number[], weights: readonly number[], count: number): number {
    let best = -1;
    let bestCredit = -Infinity;
    let total = 0;
    for (let i = 0; i < count; i++) {
      const credit = (this.#credit.get(keys[i]) ?? 0) + weights[i];
      this.#credit.set(keys[i], credit);
      total += weights[i];
      if (credit > bestCredit) {
        bestCredit = credit;
        best = i;
      }
    }
    if (best >= 0) this.#credit.set(keys[best], bestCredit - total);
    return best;
  }

  /** Forgets a candidate's credit (its path went away). */
  forget(key: number): void {
    this.#credit.delete(key);
  }
}

/** Counts events per second over a sliding pair of one-second buckets. */
export class RateMeter {
  #bucketStartMs = -Infinity;
  #current = 0;
  #previous = 0;

  /** Counts one event at `nowMs`. */
  count(nowMs: number): void {
    this.#roll(nowMs);
    this.#current++;
  }

  /** Events per second recently (the last full second, or the current one if busier). */
  perSecond(nowMs: number): number {
    this.#roll(nowMs);
    const elapsedMs = Math.max(1, nowMs - this.#bucketStartMs);
    return Math.max(this.#previous, (this.#current * 1000) / Math.max(elapsedMs, 250));
  }

  #roll(nowMs: number): void {
    if (nowMs - this.#bucketStartMs < 1000) return;
    this.#previous = nowMs - this.#bucketStartMs < 2000 ? this.#current : 0;
    this.#current = 0;
    this.#bucketStartMs = nowMs;
  }
}
