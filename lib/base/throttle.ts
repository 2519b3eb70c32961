/**
 * Rate limits that take the time as an argument, so the core stays free of the clock: a token bucket
 * for work (handshakes, resets) and a throttle for repeated log lines.
 */

/** A token bucket: `ratePerSecond` tokens a second, at most `burst` saved up. */
export class TokenBucket {
  #tokens: number;
  #lastRefillMs = -Infinity;

  constructor(readonly ratePerSecond: number, readonly burst: number) {
    this.#tokens = burst;
  }

  /** Takes one token if there is one. */
  take(nowMs: number): boolean {
    if (this.#lastRefillMs === -Infinity) this.#lastRefillMs = nowMs;
    const elapsedMs = Math.max(0, nowMs - this.#lastRefillMs);
    this.#tokens = Math.min(this.burst, this.#tokens + (elapsedMs * this.ratePerSecond) / 1000);
    this.#lastRefillMs = nowMs;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}

/** Lets a log line with a given key through at most once per interval, counting what it held back. */
export class LogThrottle {
  readonly #lastMs = new Map<string, number>();
  readonly #suppressed = new Map<string, number>();

  constructor(readonly intervalMs: number) {}

  /**
   * Returns undefined when the line must be held back, otherwise how many lines with this key were
   * held back since the last one that passed.
   */
  allow(key: string, nowMs: number): number | undefined {
    const last = this.#lastMs.get(key);
    if (last !== undefined && nowMs - last < this.intervalMs) {
      this.#suppressed.set(key, (this.#suppressed.get(key) ?? 0) + 1);
      return undefined;
    }
    if (this.#lastMs.size > 1024) this.#lastMs.clear();
    this.#lastMs.set(key, nowMs);
    const held = this.#suppressed.get(key) ?? 0;
    this.#suppressed.delete(key);
    return held;
  }
}
