/**
 * The system's CSPRNG (`crypto.getRandomValues`) behind the seeded generator's interface, so the
 * engines take their randomness (session ids) as an option: this in production, `seededRandom`
 * in tests.
 */

import type { Random } from "../base/rng.ts";

const UINT32_RANGE = 0x1_0000_0000;

/** One 32-bit word at a time from `crypto.getRandomValues`. */
function nextUint32(word: Uint32Array): number {
  crypto.getRandomValues(word);
  return word[0];
}

/**
 * Uniform numbers from the operating system's CSPRNG. `below(2 ** 32)` is one whole random word.
 *
 * @example
 * ```ts
 * import { secureRandom } from "./secure_random.ts";
 * const die = 1 + secureRandom.below(6);
 * ```
 */
export const secureRandom: Random = (() => {
  const word = new Uint32Array(1);
  return {
    next: () => nextUint32(word) / UINT32_RANGE,
    below: (bound: number) => Math.floor((nextUint32(word) / UINT32_RANGE) * bound),
  };
})();
