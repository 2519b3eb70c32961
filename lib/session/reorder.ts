/**
 * A bounded reorder buffer for one flow, for applications that dislike reordering (balance mode
 * spreads a flow over paths of different delays). Datagrams carry a 16-bit flow sequence; one that
 * arrives ahead of a gap waits until the gap fills, or at most `timeoutMs`, or until `capacity` wait —
 * then the gap is given up and delivery goes on. Each flow has its own buffer, so a loss stalls only
 * its own flow, and never for longer than the timeout (MLVPN's single global buffer stalled all).
 * A datagram from behind the delivery point (the gap was given up) is delivered at once: late is
 * better than lost for the protocols we carry.
 */

/** Hands a datagram on; the payload may be a view that is valid only during the call. */
export type Deliver = (payload: Uint8Array) => void;

/** Datagrams held at most per flow. */
export const DEFAULT_REORDER_CAPACITY = 256;

const SEQUENCE_MODULO = 0x10000;
const HALF_SEQUENCE_SPACE = 0x8000;

interface Held {
  readonly payload: Uint8Array;
  readonly arrivedMs: number;
}

/** Counters of one buffer. */
export interface ReorderCounters {
  /** Datagrams that waited for an earlier one. */
  held: number;
  /** Gaps given up (timeout or capacity). */
  gapsSkipped: number;
  /** Datagrams that arrived after their gap was given up. */
  late: number;
}

/** The reorder buffer of one flow. */
export class ReorderBuffer {
  readonly counters: ReorderCounters = { held: 0, gapsSkipped: 0, late: 0 };
  readonly #held = new Map<number, Held>();
  #expected: number | undefined;
  #oldestArrivedMs = Infinity;

  constructor(readonly timeoutMs: number, readonly capacity = DEFAULT_REORDER_CAPACITY) {}

  /** Datagrams waiting now. */
  get size(): number {
    return this.#held.size;
  }

  /** Takes one datagram in; delivers it and whatever it unblocks, or holds a copy of it. */
  push(flowSequence: number, payload: Uint8Array, nowMs: number, deliver: Deliver): void {
    const expected = this.#expected ?? flowSequence;
    const ahead = (flowSequence - expected + SEQUENCE_MODULO) % SEQUENCE_MODULO;
    if (ahead >= HALF_SEQUENCE_SPACE) {
      this.counters.late++;
      deliver(payload);
      return;
    }
    if (ahead === 0) {
      deliver(payload);
      this.#expected = (flowSequence + 1) % SEQUENCE_MODULO;
      this.#drain(deliver);
      return;
    }
    if (this.#held.has(flowSequence)) return; // cannot happen behind a replay window; harmless
    this.#expected = expected;
    this.#held.set(flowSequence, { payload: payload.slice(), arrivedMs: nowMs });
    this.counters.held++;
    this.#oldestArrivedMs = Math.min(this.#oldestArrivedMs, nowMs);
    if (this.#held.size > this.capacity) this.#skipGap(deliver);
  }

  /** Gives up gaps whose followers waited `timeoutMs`. */
  flush(nowMs: number, deliver: Deliver): void {
    while (this.#held.size > 0 && nowMs - this.#oldestArrivedMs >= this.timeoutMs) {
      this.#skipGap(deliver);
    }
  }

  /** When {@link flush} has work, or undefined. */
  nextDeadlineMs(): number | undefined {
    return this.#held.size > 0 ? this.#oldestArrivedMs + this.timeoutMs : undefined;
  }

  /** Jumps the delivery point to the nearest held datagram and delivers from there. */
  #skipGap(deliver: Deliver): void {
    let nearest = HALF_SEQUENCE_SPACE;
    for (const sequence of this.#held.keys()) {
      nearest = Math.min(nearest, (sequence - this.#expected! + SEQUENCE_MODULO) % SEQUENCE_MODULO);
    }
    this.counters.gapsSkipped++;
    this.#expected = (this.#expected! + nearest) % SEQUENCE_MODULO;
    this.#drain(deliver);
  }

  #drain(deliver: Deliver): void {
    let next = this.#held.get(this.#expected!);
    while (next) {
      this.#held.delete(this.#expected!);
      deliver(next.payload);
      this.#expected = (this.#expected! + 1) % SEQUENCE_MODULO;
      next = this.#held.get(this.#expected!);
    }
    this.#oldestArrivedMs = Infinity;
    for (const held of this.#held.values()) {
      this.#oldestArrivedMs = Math.min(this.#oldestArrivedMs, held.arrivedMs);
    }
  }
}
