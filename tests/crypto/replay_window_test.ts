import assert from "node:assert/strict";
import { REPLAY_WINDOW_SIZE, ReplayWindow } from "../../lib/crypto/replay_window.ts";
import { seededRandom } from "../../lib/base/rng.ts";

Deno.test("accepts each sequence number once and refuses its duplicates", () => {
  const window = new ReplayWindow();
  assert.equal(window.accept(0), "new");
  assert.equal(window.accept(0), "duplicate");
  assert.equal(window.accept(5), "new");
  assert.equal(window.accept(3), "new");
  assert.equal(window.accept(3), "duplicate");
  assert.equal(window.accept(5), "duplicate");
  assert.equal(window.highest, 5);
});

Deno.test("check does not record the number", () => {
  const window = new ReplayWindow();
  assert.equal(window.check(7), "new");
  assert.equal(window.check(7), "new");
  window.mark(7);
  assert.equal(window.check(7), "duplicate");
});

Deno.test("refuses numbers that fell behind the window", () => {
  const window = new ReplayWindow();
  window.accept(10);
  window.accept(10 + REPLAY_WINDOW_SIZE);
  assert.equal(window.check(10), "too-old");
  assert.equal(window.check(11), "new");
  assert.equal(window.accept(10 + REPLAY_WINDOW_SIZE - 1), "new");
});

Deno.test("a jump far ahead forgets everything behind the window", () => {
  const window = new ReplayWindow();
  for (let sequence = 0; sequence < 100; sequence++) window.accept(sequence);
  window.accept(5 * REPLAY_WINDOW_SIZE);
  assert.equal(window.check(99), "too-old");
  assert.equal(window.check(5 * REPLAY_WINDOW_SIZE - 1), "new");
  assert.equal(window.check(5 * REPLAY_WINDOW_SIZE), "duplicate");
});

Deno.test("slides over bitmap wrap-around without losing or inventing bits", () => {
  const window = new ReplayWindow();
  const seen = new Set<number>();
  const random = seededRandom(42);
  let top = 0;
  for (let step = 0; step < 200_000; step++) {
    // Mostly forward with jumps of every size (including near the window size), some reordering.
    const roll = random.next();
    const sequence = roll < 0.7
      ? top + 1 + random.below(40)
      : roll < 0.75
      ? top + REPLAY_WINDOW_SIZE - random.below(100)
      : Math.max(0, top - random.below(REPLAY_WINDOW_SIZE + 200));
    const expected = top - sequence >= REPLAY_WINDOW_SIZE && sequence < top
      ? "too-old"
      : seen.has(sequence)
      ? "duplicate"
      : "new";
    const verdict = window.accept(sequence);
    assert.equal(verdict, expected, `step ${step} sequence ${sequence} top ${top} (seed 42)`);
    if (verdict === "new") {
      seen.add(sequence);
      top = Math.max(top, sequence);
    }
  }
});

Deno.test("works at the largest safe sequence numbers", () => {
  const window = new ReplayWindow();
  const top = 2 ** 53 - 1;
  assert.equal(window.accept(top - 40), "new");
  assert.equal(window.accept(top), "new");
  assert.equal(window.accept(top - 40), "duplicate");
  assert.equal(window.accept(top - 39), "new");
});
