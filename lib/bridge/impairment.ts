/**
 * Network impairments for the bridge: random loss, delay with jitter, a rate limit with a bounded queue
 * and blackout windows. Sans-I/O and seeded: given when a datagram arrived and how big it is, it says
 * whether to drop it or when to forward it; the driver owns the timers.
 *
 * The order of the checks is blackout → loss → rate queue → delay and jitter. The rate limit models one
 * link that serialises datagrams (UDP payload bytes) one after another: a datagram waits until the link is
 * free, and when that wait would exceed `queueLimitMs` it is dropped (tail drop). Delay and jitter are
 * added after serialisation; jitter is uniform in ±`jitterMs`, so datagrams can overtake one another, but
 * none is forwarded before it arrived.
 *
 * Blackout syntax (`--blackout`, may repeat; times count from the bridge's start):
 * | spelling | meaning |
 * |---|---|
 * | `5s+3s` | from 5 s for 3 s, once |
 * | `5s+3s every 10s` | from 5 s for 3 s, then again every 10 s (15–18 s, 25–28 s, …) |
 * | `every 10s for 2s` | for 2 s every 10 s, the first at 10 s (same as `10s+2s every 10s`) |
 */

import type { Parsed } from "../base/address.ts";
import type { Random } from "../base/rng.ts";
import { parseDuration } from "../base/units.ts";

/** How long a datagram may wait for the rate-limited link before it is tail-dropped, by default. */
export const DEFAULT_QUEUE_LIMIT_MS = 100;

/** A period during which every datagram is dropped, counted from the impairment's start. */
export interface BlackoutWindow {
  /** When the (first) blackout begins. */
  readonly startMs: number;
  /** How long each blackout lasts. */
  readonly durationMs: number;
  /** When set, the blackout repeats this long after each start. Must exceed `durationMs`. */
  readonly periodMs?: number;
}

/** What to do to the datagrams of one direction. Every field is optional; none means a clean link. */
export interface ImpairmentOptions {
  /** Independent random loss, 0–100. */
  readonly lossPercent?: number;
  /** Fixed one-way delay. */
  readonly delayMs?: number;
  /** Uniform variation around the delay: each datagram gets delay ± up to this much. */
  readonly jitterMs?: number;
  /** Link rate; undefined means unlimited. */
  readonly rateBitsPerSecond?: number;
  /** The longest wait for the rate-limited link before a datagram is dropped (default 100 ms). */
  readonly queueLimitMs?: number;
  /** Periods in which everything is dropped. */
  readonly blackouts?: readonly BlackoutWindow[];
}

/** Why the impairment dropped a datagram. */
export type ImpairmentDropReason = "loss" | "blackout" | "queue-full";

/** The fate of one datagram. */
export type ImpairmentDecision =
  | { readonly action: "drop"; readonly reason: ImpairmentDropReason }
  | { readonly action: "forward"; readonly atMs: number };

/** One direction's impairment state. */
export interface Impairment {
  /** True when no option is set: every datagram is forwarded at once. */
  readonly isTransparent: boolean;
  /** Decides the fate of a datagram of `sizeBytes` that arrived at `nowMs` (calls in time order). */
  decide(nowMs: number, sizeBytes: number): ImpairmentDecision;
}

const DROP_LOSS: ImpairmentDecision = { action: "drop", reason: "loss" };
const DROP_BLACKOUT: ImpairmentDecision = { action: "drop", reason: "blackout" };
const DROP_QUEUE_FULL: ImpairmentDecision = { action: "drop", reason: "queue-full" };

/**
 * Says what is wrong with a set of options, or undefined when they are usable.
 * {@link createImpairment} throws on the same mistakes; callers that take user input check first.
 */
export function checkImpairmentOptions(options: ImpairmentOptions): string | undefined {
  const { lossPercent, delayMs, jitterMs, rateBitsPerSecond, queueLimitMs } = options;
  if (lossPercent !== undefined && !(lossPercent >= 0 && lossPercent <= 100)) {
    return `loss must be a percentage from 0 to 100, got ${lossPercent}`;
  }
  if (delayMs !== undefined && !(delayMs >= 0 && Number.isFinite(delayMs))) {
    return `delay must not be negative, got ${delayMs} ms`;
  }
  if (jitterMs !== undefined && !(jitterMs >= 0 && Number.isFinite(jitterMs))) {
    return `jitter must not be negative, got ${jitterMs} ms`;
  }
  if (
    rateBitsPerSecond !== undefined &&
    !(rateBitsPerSecond > 0 && Number.isFinite(rateBitsPerSecond))
  ) {
    return `rate must be positive, got ${rateBitsPerSecond} bit/s`;
  }
  if (queueLimitMs !== undefined && !(queueLimitMs >= 0 && Number.isFinite(queueLimitMs))) {
    return `queue limit must not be negative, got ${queueLimitMs} ms`;
  }
  for (const window of options.blackouts ?? []) {
    const problem = checkBlackoutWindow(window);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

function checkBlackoutWindow(window: BlackoutWindow): string | undefined {
  if (!(window.startMs >= 0 && Number.isFinite(window.startMs))) {
    return `a blackout cannot start before the bridge does (${window.startMs} ms)`;
  }
  if (!(window.durationMs > 0 && Number.isFinite(window.durationMs))) {
    return `a blackout must last longer than 0 ms, got ${window.durationMs} ms`;
  }
  if (window.periodMs !== undefined && !(window.periodMs > window.durationMs)) {
    return `a repeating blackout must be shorter than its period ` +
      `(every ${window.periodMs} ms for ${window.durationMs} ms never ends)`;
  }
  return undefined;
}

/**
 * Creates one direction's impairment. `random` decides loss and jitter, so a seeded generator makes the
 * whole run repeatable; `startMs` is the time blackouts count from.
 *
 * @example
 * ```ts
 * import { createImpairment } from "./impairment.ts";
 * import { seededRandom } from "../base/rng.ts";
 * const impairment = createImpairment({ lossPercent: 5, delayMs: 20 }, seededRandom(42));
 * const decision = impairment.decide(1000, 1200);
 * if (decision.action === "forward") console.log("send at", decision.atMs); // 1020
 * ```
 */
export function createImpairment(
  options: ImpairmentOptions,
  random: Random,
  startMs = 0,
): Impairment {
  const problem = checkImpairmentOptions(options);
  if (problem !== undefined) throw new RangeError(problem);
  const lossPercent = options.lossPercent ?? 0;
  const delayMs = options.delayMs ?? 0;
  const jitterMs = options.jitterMs ?? 0;
  const rateBitsPerSecond = options.rateBitsPerSecond;
  const queueLimitMs = options.queueLimitMs ?? DEFAULT_QUEUE_LIMIT_MS;
  const blackouts = [...(options.blackouts ?? [])];
  const isTransparent = lossPercent === 0 && delayMs === 0 && jitterMs === 0 &&
    rateBitsPerSecond === undefined && blackouts.length === 0;
  const msPerByte = rateBitsPerSecond === undefined ? 0 : 8000 / rateBitsPerSecond;
  let linkFreeAtMs = -Infinity;

  const inBlackout = (nowMs: number): boolean => {
    const sinceStartMs = nowMs - startMs;
    for (const window of blackouts) {
      const intoWindowMs = sinceStartMs - window.startMs;
      if (intoWindowMs < 0) continue;
      const phaseMs = window.periodMs === undefined ? intoWindowMs : intoWindowMs % window.periodMs;
      if (phaseMs < window.durationMs) return true;
    }
    return false;
  };

  return {
    isTransparent,
    decide(nowMs: number, sizeBytes: number): ImpairmentDecision {
      if (isTransparent) return { action: "forward", atMs: nowMs };
      if (blackouts.length > 0 && inBlackout(nowMs)) return DROP_BLACKOUT;
      if (lossPercent > 0 && random.next() * 100 < lossPercent) return DROP_LOSS;
      let departureMs = nowMs;
      if (rateBitsPerSecond !== undefined) {
        const transmitStartMs = Math.max(nowMs, linkFreeAtMs);
        if (transmitStartMs - nowMs > queueLimitMs) return DROP_QUEUE_FULL;
        linkFreeAtMs = transmitStartMs + sizeBytes * msPerByte;
        departureMs = linkFreeAtMs;
      }
      let atMs = departureMs + delayMs;
      if (jitterMs > 0) atMs = Math.max(departureMs, atMs + (random.next() * 2 - 1) * jitterMs);
      return { action: "forward", atMs };
    },
  };
}

/**
 * Parses one blackout (see the module comment for the syntax).
 *
 * @example
 * ```ts
 * import { parseBlackout } from "./impairment.ts";
 * const parsed = parseBlackout("5s+3s every 10s");
 * if (parsed.ok) console.log(parsed.value); // { startMs: 5000, durationMs: 3000, periodMs: 10000 }
 * ```
 */
export function parseBlackout(text: string): Parsed<BlackoutWindow> {
  const words = text.trim().split(/\s+/);
  const expected = `expected a blackout like "5s+3s", "5s+3s every 10s" or "every 10s for 2s", ` +
    `got "${text}"`;
  let window: BlackoutWindow;
  if (words.length === 4 && words[0] === "every" && words[2] === "for") {
    const period = parseDuration(words[1]);
    if (!period.ok) return period;
    const duration = parseDuration(words[3]);
    if (!duration.ok) return duration;
    window = { startMs: period.value, durationMs: duration.value, periodMs: period.value };
  } else if ((words.length === 1 || (words.length === 3 && words[1] === "every"))) {
    const parts = words[0].split("+");
    if (parts.length !== 2) return { ok: false, error: expected };
    const start = parseDuration(parts[0]);
    if (!start.ok) return start;
    const duration = parseDuration(parts[1]);
    if (!duration.ok) return duration;
    window = { startMs: start.value, durationMs: duration.value };
    if (words.length === 3) {
      const period = parseDuration(words[2]);
      if (!period.ok) return period;
      window = { ...window, periodMs: period.value };
    }
  } else {
    return { ok: false, error: expected };
  }
  const problem = checkBlackoutWindow(window);
  return problem === undefined ? { ok: true, value: window } : { ok: false, error: problem };
}

/** Formats a blackout the way {@link parseBlackout} reads it. */
export function formatBlackout(window: BlackoutWindow, formatMs: (ms: number) => string): string {
  const once = `${formatMs(window.startMs)}+${formatMs(window.durationMs)}`;
  return window.periodMs === undefined ? once : `${once} every ${formatMs(window.periodMs)}`;
}
