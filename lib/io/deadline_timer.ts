/**
 * One `setTimeout` kept armed for a core's next deadline: the drivers ask the core for its
 * `nextDeadlineMs()` after every event and arm this; an earlier deadline replaces a later one.
 */

/** A single timer for "call me back by this time" (times are `performance.now()` values). */
export class DeadlineTimer {
  #timer: ReturnType<typeof setTimeout> | undefined;
  #dueMs = Infinity;

  constructor(readonly fire: () => void) {}

  /** Makes sure the timer fires by `deadlineMs`; undefined means nothing is due. */
  arm(deadlineMs: number | undefined): void {
    const deadline = deadlineMs ?? Infinity;
    // Within a millisecond of the armed time is close enough: no need to re-arm.
    if (deadline >= this.#dueMs - 1) return;
    clearTimeout(this.#timer);
    this.#dueMs = deadline;
    if (deadline === Infinity) return;
    this.#timer = setTimeout(() => {
      this.#dueMs = Infinity;
      this.#timer = undefined;
      this.fire();
    }, Math.max(0, deadline - performance.now()));
  }

  /** Stops the timer for good (at shutdown). */
  cancel(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#dueMs = -Infinity; // nothing arms it again
  }
}
