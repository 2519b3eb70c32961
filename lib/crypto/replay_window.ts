/**
 * The sliding window that keeps the first copy of each sequence number and drops the rest: it removes
 * the duplicates that redundant paths create and, under a key, rejects replayed datagrams.
 *
 * It remembers the highest sequence number seen and a bitmap of the {@link REPLAY_WINDOW_SIZE}
 * numbers below it. A number above the highest is new; one inside the window is new unless its bit is
 * set; one below the window is refused (too old to tell apart from a replay). The window is wide
 * enough for tens of thousands of datagrams in flight across paths of different delay.
 */

/** How many sequence numbers below the highest one the window remembers. */
export const REPLAY_WINDOW_SIZE = 65536;

const WORD_BITS = 32;
const WORD_COUNT = REPLAY_WINDOW_SIZE / WORD_BITS;

/** What the window says of a sequence number. */
export type WindowVerdict = "new" | "duplicate" | "too-old";

/** Duplicate and replay detection for one sequence-number space. */
export class ReplayWindow {
  /** Bit i of word w is sequence number (w * 32 + i) modulo the window size. */
  #bits = new Uint32Array(WORD_COUNT);
  #highest = -1;

  /** The highest sequence number accepted so far (−1 before the first). */
  get highest(): number {
    return this.#highest;
  }

  /** Tells whether `sequence` would be accepted, without recording it. */
  check(sequence: number): WindowVerdict {
    if (sequence > this.#highest) return "new";
    if (this.#highest - sequence >= REPLAY_WINDOW_SIZE) return "too-old";
    const bit = sequence % REPLAY_WINDOW_SIZE;
    return (this.#bits[bit >>> 5] & (1 << (bit & 31))) !== 0 ? "duplicate" : "new";
  }

  /**
   * Records `sequence` as seen. Call only after {@link check} said "new" and the datagram
   * authenticated, so a forged datagram cannot move the window.
   */
  mark(sequence: number): void {
    if (sequence > this.#highest) this.#advanceTo(sequence);
    const bit = sequence % REPLAY_WINDOW_SIZE;
    this.#bits[bit >>> 5] |= 1 << (bit & 31);
  }

  /** Checks and records in one step; returns the verdict before recording. */
  accept(sequence: number): WindowVerdict {
    const verdict = this.check(sequence);
    if (verdict === "new") this.mark(sequence);
    return verdict;
  }

  /** Clears the bits of the numbers the window slides over, then moves the top to `sequence`. */
  #advanceTo(sequence: number): void {
    if (sequence - this.#highest >= REPLAY_WINDOW_SIZE) {
      this.#bits.fill(0);
    } else {
      // Numbers highest+1 … sequence take over the positions of numbers that leave the window:
      // clear them bit by bit up to a word boundary, then word by word, then the last bits.
      let next = this.#highest + 1;
      while (next <= sequence && next % WORD_BITS !== 0) this.#clearBit(next++);
      while (sequence - next >= WORD_BITS - 1) {
        this.#bits[(next % REPLAY_WINDOW_SIZE) >>> 5] = 0;
        next += WORD_BITS;
      }
      while (next <= sequence) this.#clearBit(next++);
    }
    this.#highest = sequence;
  }

  #clearBit(sequence: number): void {
    const bit = sequence % REPLAY_WINDOW_SIZE;
    this.#bits[bit >>> 5] &= ~(1 << (bit & 31));
  }
}
