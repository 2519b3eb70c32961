import assert from "node:assert/strict";
import type { Random } from "../../lib/base/rng.ts";
import { formatSessionId, randomSessionId } from "../../lib/wire/session_id.ts";

/** A source that hands out the given 32-bit words in turn. */
function words(...values: number[]): Random {
  return {
    next: () => values.shift()! / 2 ** 32,
    below: (bound) => Math.floor((values.shift()! / 2 ** 32) * bound),
  };
}

Deno.test("session id: one whole 32-bit word from the random source", () => {
  assert.equal(randomSessionId(words(0xdeadbeef)), 0xdeadbeef);
});

Deno.test("session id: zero is never used; the next word is taken instead", () => {
  assert.equal(randomSessionId(words(0, 0, 7)), 7);
});

Deno.test("session id: shown as 8 hex digits", () => {
  assert.equal(formatSessionId(0xabc), "00000abc");
});
