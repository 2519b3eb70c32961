import assert from "node:assert/strict";
import { MAX_TOTAL_SHARDS, ReedSolomon } from "../../lib/fec/reed_solomon.ts";
import { type Random, seededRandom } from "../../lib/base/rng.ts";

function randomShards(random: Random, count: number, shardBytes: number): Uint8Array[] {
  return Array.from({ length: count }, () => {
    const shard = new Uint8Array(shardBytes);
    for (let i = 0; i < shardBytes; i++) shard[i] = random.below(256);
    return shard;
  });
}

/** Encodes random data and returns every shard, data first. */
function encodedShards(code: ReedSolomon, random: Random, shardBytes: number): Uint8Array[] {
  const data = randomShards(random, code.dataShards, shardBytes);
  const parity = Array.from({ length: code.parityShards }, () => new Uint8Array(shardBytes));
  code.encode(data, parity);
  return [...data, ...parity];
}

/** Drops the shards at `missing`, reconstructs, and checks the data shards came back exactly. */
function assertRecovers(
  code: ReedSolomon,
  shards: Uint8Array[],
  missing: readonly number[],
  note: string,
) {
  const damaged: (Uint8Array | undefined)[] = [...shards];
  for (const index of missing) damaged[index] = undefined;
  assert.equal(code.reconstructData(damaged), true, note);
  for (let index = 0; index < code.dataShards; index++) {
    assert.deepEqual(damaged[index], shards[index], `${note}: data shard ${index}`);
  }
  for (let index = code.dataShards; index < shards.length; index++) {
    if (missing.includes(index)) {
      assert.equal(damaged[index], undefined, `${note}: parity ${index}`);
    }
  }
}

/** Picks `count` distinct indices below `bound`. */
function randomSubset(random: Random, bound: number, count: number): number[] {
  const indices = Array.from({ length: bound }, (_, i) => i);
  for (let i = 0; i < count; i++) {
    const j = i + random.below(bound - i);
    [indices[i], indices[j]] = [indices[j], indices[i]];
  }
  return indices.slice(0, count);
}

Deno.test("parity matches the published 5+5 vector of JavaReedSolomon and klauspost/reedsolomon", () => {
  // From Backblaze/JavaReedSolomon, src/test/java/com/backblaze/erasure/ReedSolomonTest.java
  // (testOneEncode), repeated in klauspost/reedsolomon, reedsolomon_test.go (TestOneEncode).
  const code = new ReedSolomon(5, 5);
  const data = [[0, 1], [4, 5], [2, 3], [6, 7], [8, 9]].map((bytes) => Uint8Array.from(bytes));
  const parity = Array.from({ length: 5 }, () => new Uint8Array(2));
  code.encode(data, parity);
  assert.deepEqual(parity.map((shard) => [...shard]), [[12, 13], [10, 11], [14, 15], [90, 91], [
    94,
    95,
  ]]);
});

Deno.test("parity of two data shards uses the coefficients [1 ^ r, r] and the field's products", () => {
  // For k = 2 the Vandermonde rows are [1, r] and the top square [[1, 0], [1, 1]] is its own
  // inverse, so parity row r is [1 ^ r, r]: parity j of (a, 0) is (1 ^ (j + 2)) · a. The products
  // are Backblaze/JavaReedSolomon's GaloisTest.testWithPythonAnswers: 3·4 = 12, 7·7 = 21,
  // 23·45 = 41 (row r = 6 gives 7, row r = 44 gives 45).
  const code = new ReedSolomon(2, 43);
  const parityOf = (a: number, b: number) => {
    const parity = Array.from({ length: 43 }, () => new Uint8Array(1));
    code.encode([Uint8Array.of(a), Uint8Array.of(b)], parity);
    return parity.map((shard) => shard[0]);
  };
  assert.equal(parityOf(4, 0)[0], 12);
  assert.equal(parityOf(7, 0)[4], 21);
  assert.equal(parityOf(23, 0)[42], 41);
  // Column 1 holds r itself: parity j of (0, 1) is j + 2.
  assert.deepEqual(parityOf(0, 1), Array.from({ length: 43 }, (_, j) => j + 2));
  // 2^8 reduces by the polynomial 0x11D: 2 · 0x80 = 0x1D (row r = 2 has column 1 = 2).
  assert.equal(parityOf(0, 0x80)[0], 0x1d);
});

Deno.test("a single data shard is copied into every parity shard", () => {
  const code = new ReedSolomon(1, 3);
  const parity = Array.from({ length: 3 }, () => new Uint8Array(4));
  code.encode([Uint8Array.of(9, 8, 7, 6)], parity);
  for (const shard of parity) assert.deepEqual(shard, Uint8Array.of(9, 8, 7, 6));
});

Deno.test("4+2 recovers the data from every pattern of up to two lost shards", () => {
  const code = new ReedSolomon(4, 2);
  const shards = encodedShards(code, seededRandom(1), 64);
  let patterns = 0;
  for (let first = 0; first < 6; first++) {
    assertRecovers(code, shards, [first], `lost ${first}`);
    patterns++;
    for (let second = first + 1; second < 6; second++) {
      assertRecovers(code, shards, [first, second], `lost ${first}, ${second}`);
      patterns++;
    }
  }
  assert.equal(patterns, 6 + 15);
  assertRecovers(code, shards, [], "nothing lost");
});

for (const [k, m, trials] of [[10, 8, 40], [16, 12, 30], [1, 1, 4], [200, 55, 4]]) {
  Deno.test(`${k}+${m} recovers the data from random patterns of up to ${m} lost shards`, () => {
    const seed = 1000 + k;
    const random = seededRandom(seed);
    const code = new ReedSolomon(k, m);
    const shards = encodedShards(code, random, 48);
    for (let trial = 0; trial < trials; trial++) {
      const lost = randomSubset(random, k + m, trial === 0 ? m : 1 + random.below(m));
      assertRecovers(code, shards, lost, `seed ${seed} trial ${trial} lost ${lost.join(",")}`);
    }
  });
}

Deno.test("recovers shards of 1 and 1500 bytes", () => {
  const random = seededRandom(7);
  for (const shardBytes of [1, 1500]) {
    const code = new ReedSolomon(6, 3);
    const shards = encodedShards(code, random, shardBytes);
    assertRecovers(code, shards, [0, 2, 5], `${shardBytes} bytes`);
    assertRecovers(code, shards, [1, 6, 8], `${shardBytes} bytes, parity lost too`);
  }
});

Deno.test("a cached erasure pattern decodes new data correctly", () => {
  const random = seededRandom(11);
  const code = new ReedSolomon(8, 4);
  for (let round = 0; round < 3; round++) {
    const shards = encodedShards(code, random, 32);
    assertRecovers(code, shards, [1, 3, 9], `round ${round}`);
  }
});

Deno.test("with fewer than k shards it returns false and changes nothing", () => {
  const code = new ReedSolomon(4, 2);
  const shards = encodedShards(code, seededRandom(3), 16);
  const damaged: (Uint8Array | undefined)[] = [...shards];
  damaged[0] = undefined;
  damaged[2] = undefined;
  damaged[5] = undefined;
  const before = [...damaged];
  assert.equal(code.reconstructData(damaged), false);
  assert.deepEqual(damaged, before);
  for (let index = 0; index < damaged.length; index++) assert.equal(damaged[index], before[index]);
});

Deno.test("with no parity, nothing missing is fine and anything missing is not", () => {
  const code = new ReedSolomon(3, 0);
  const data = [Uint8Array.of(1), Uint8Array.of(2), Uint8Array.of(3)];
  code.encode(data, []);
  assert.equal(code.reconstructData([...data]), true);
  assert.equal(code.reconstructData([data[0], undefined, data[2]]), false);
});

Deno.test("rejects impossible shard counts with RangeError", () => {
  assert.throws(() => new ReedSolomon(0, 2), RangeError);
  assert.throws(() => new ReedSolomon(4, -1), RangeError);
  assert.throws(() => new ReedSolomon(200, 56), RangeError);
  assert.throws(() => new ReedSolomon(1.5, 1), RangeError);
  assert.equal(new ReedSolomon(MAX_TOTAL_SHARDS - 1, 1).dataShards, 254);
  assert.equal(new ReedSolomon(1, MAX_TOTAL_SHARDS - 1).parityShards, 254);
});

Deno.test("rejects shards of the wrong count or length with RangeError", () => {
  const code = new ReedSolomon(2, 1);
  assert.throws(() => code.encode([new Uint8Array(2)], [new Uint8Array(2)]), RangeError);
  assert.throws(
    () => code.encode([new Uint8Array(2), new Uint8Array(3)], [new Uint8Array(2)]),
    RangeError,
  );
  assert.throws(() => code.reconstructData([new Uint8Array(2), undefined]), RangeError);
  assert.throws(
    () => code.reconstructData([new Uint8Array(2), undefined, new Uint8Array(3)]),
    RangeError,
  );
});
