/**
 * A small seeded pseudo-random generator (xoshiro128**), for the network simulator, the bridge's
 * impairments and tests: the same seed gives the same run, so a failure can be replayed.
 * Not for keys or session ids: those come from `crypto.getRandomValues`.
 */

/** A seeded source of uniform numbers. */
export interface Random {
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [0, bound). */
  below(bound: number): number;
}

/** Creates a generator from a 32-bit seed. */
export function seededRandom(seed: number): Random {
  // SplitMix32 spreads the seed over the four state words so that nearby seeds differ.
  let mix = seed >>> 0;
  const splitMix = () => {
    mix = (mix + 0x9e3779b9) >>> 0;
    let z = mix;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = splitMix(), b = splitMix(), c = splitMix(), d = splitMix();
  const nextUint32 = () => {
    const result = Math.imul(rotateLeft(Math.imul(b, 5), 7), 9) >>> 0;
    const t = b << 9;
    c ^= a;
    d ^= b;
    b ^= c;
    a ^= d;
    c ^= t;
    d = rotateLeft(d, 11);
    return result;
  };
  return {
    next: () => nextUint32() / 4294967296,
    below: (bound: number) => Math.floor((nextUint32() / 4294967296) * bound),
  };
}

function rotateLeft(value: number, bits: number): number {
  return (value << bits) | (value >>> (32 - bits));
}
