/**
 * FecEncoder and FecDecoder end to end: delivery with and without loss, reordering and duplicates,
 * early flushes, group-id wrap-around and the decoder's window, and hostile bodies.
 */
import assert from "node:assert/strict";
import { FecDecoder } from "../../lib/fec/decoder.ts";
import { FecEncoder } from "../../lib/fec/encoder.ts";
import { FEC_HEADER_BYTES, type FecDelivery, type FecShard } from "../../lib/fec/group.ts";
import type { FecParameters } from "../../lib/fec/parameters.ts";
import { type Random, seededRandom } from "../../lib/base/rng.ts";

/** A shard as sent, with what its header says. */
interface SentShard extends FecShard {
  readonly groupId: number;
  readonly index: number;
  readonly isParity: boolean;
}

function describe(shard: FecShard): SentShard {
  const view = new DataView(shard.body.buffer, shard.body.byteOffset, shard.body.byteLength);
  const index = shard.body[4];
  return { ...shard, groupId: view.getUint32(0), index, isParity: index >= shard.body[5] };
}

function randomPayload(random: Random, maxBytes = 1400): Uint8Array {
  // Empty payloads and full-size ones come up often enough to matter.
  const roll = random.next();
  const bytes = roll < 0.1 ? 0 : roll < 0.2 ? maxBytes : random.below(maxBytes + 1);
  const payload = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) payload[i] = random.below(256);
  return payload;
}

function keyOf(flowId: number, payload: Uint8Array): string {
  return `${flowId}:${Array.from(payload, (byte) => byte.toString(16).padStart(2, "0")).join("")}`;
}

/** Counts of each (flow id, payload). */
function multiset(items: readonly { flowId: number; payload: Uint8Array }[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const { flowId, payload } of items) {
    const key = keyOf(flowId, payload);
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

/** Asserts every delivery is a sent (flow id, payload), no more often than it was sent. */
function assertSubset(
  delivered: readonly FecDelivery[],
  sent: Map<string, number>,
  note: string,
): void {
  const remaining = new Map(sent);
  for (const { flowId, payload } of delivered) {
    const key = keyOf(flowId, payload);
    const left = remaining.get(key) ?? 0;
    assert.ok(left > 0, `${note}: delivered a payload that was not sent (or too often): ${key}`);
    remaining.set(key, left - 1);
  }
}

/** Sends `count` random payloads through a new encoder; the last group is flushed. */
function encodeStream(
  random: Random,
  parameters: FecParameters,
  count: number,
): { sent: { flowId: number; payload: Uint8Array }[]; shards: SentShard[] } {
  const encoder = new FecEncoder(parameters);
  const sent: { flowId: number; payload: Uint8Array }[] = [];
  const shards: SentShard[] = [];
  for (let i = 0; i < count; i++) {
    const flowId = 1 + random.below(5);
    const payload = randomPayload(random);
    sent.push({ flowId, payload });
    shards.push(...encoder.add(flowId, payload, i).map(describe));
  }
  shards.push(...encoder.flush(Number.MAX_SAFE_INTEGER).map(describe));
  return { sent, shards };
}

/** Shards in groups, by group id, in send order. */
function byGroup(shards: readonly SentShard[]): SentShard[][] {
  const groups = new Map<number, SentShard[]>();
  for (const shard of shards) {
    if (!groups.has(shard.groupId)) groups.set(shard.groupId, []);
    groups.get(shard.groupId)!.push(shard);
  }
  return [...groups.values()];
}

function shuffle<T>(random: Random, items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = random.below(i + 1);
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

/** Each group loses `lossCount(group)` shards picked at random; returns what arrives, in order. */
function withLoss(
  random: Random,
  shards: readonly SentShard[],
  lossCount: (group: SentShard[]) => number,
): SentShard[] {
  const arriving: SentShard[] = [];
  for (const group of byGroup(shards)) {
    const lost = new Set(shuffle(random, [...group]).slice(0, lossCount(group)));
    arriving.push(...group.filter((shard) => !lost.has(shard)));
  }
  return arriving;
}

/** A loss count for withLoss: up to the group's own parity count (a flushed group has fewer). */
function upToParity(random: Random): (group: SentShard[]) => number {
  return (group) => random.below(group.filter((shard) => shard.isParity).length + 1);
}

function receiveAll(decoder: FecDecoder, shards: readonly FecShard[]): FecDelivery[] {
  return shards.flatMap((shard, i) => decoder.receive(shard.flowId, shard.body, i));
}

Deno.test("without loss every payload is delivered once, in order, none recovered", () => {
  const random = seededRandom(1);
  const { sent, shards } = encodeStream(random, { dataShards: 8, parityShards: 2 }, 203);
  const decoder = new FecDecoder();
  const delivered = receiveAll(decoder, shards);
  assert.deepEqual(
    delivered.map(({ flowId, payload }) => keyOf(flowId, payload)),
    sent.map(({ flowId, payload }) => keyOf(flowId, payload)),
  );
  assert.ok(delivered.every((delivery) => !delivery.recovered));
  assert.deepEqual(decoder.counters, {
    recovered: 0,
    malformed: 0,
    late: 0,
    unrecoverableGroups: 0,
  });
});

Deno.test("the encoder sends each data shard at once and the parity when the group fills", () => {
  const encoder = new FecEncoder({ dataShards: 3, parityShards: 2 });
  const payloads = [Uint8Array.of(1, 2), new Uint8Array(0), Uint8Array.of(3, 4, 5, 6, 7)];
  const first = encoder.add(9, payloads[0], 0);
  assert.equal(first.length, 1);
  assert.equal(first[0].flowId, 9);
  assert.deepEqual([...first[0].body], [0, 0, 0, 0, 0, 3, 2, 0, 1, 2]);
  payloads[0][0] = 99; // the encoder kept a copy
  assert.equal(encoder.add(9, payloads[1], 1).length, 1);
  const last = encoder.add(10, payloads[2], 2);
  assert.equal(last.length, 3);
  // L = 4 + 5; parity bodies are 8 + L bytes, flow id 0, indices 3 and 4.
  for (const [j, parity] of last.slice(1).entries()) {
    assert.equal(parity.flowId, 0);
    assert.equal(parity.body.length, FEC_HEADER_BYTES + 9);
    assert.deepEqual([...parity.body.subarray(0, 8)], [0, 0, 0, 0, 3 + j, 3, 2, 0]);
  }
  const next = encoder.add(9, Uint8Array.of(1), 3);
  assert.deepEqual([...next[0].body.subarray(0, 8)], [0, 0, 0, 1, 0, 3, 2, 0]);
  assert.deepEqual(encoder.counters, { groups: 1, dataShards: 4, parityShards: 2 });
});

for (const parameters of [[4, 2], [8, 2], [10, 4], [1, 1], [20, 14]]) {
  const [dataShards, parityShards] = parameters;
  Deno.test(`${dataShards}+${parityShards}: any ${parityShards} lost per group are recovered, each once`, () => {
    const seed = 100 + dataShards * 7 + parityShards;
    const random = seededRandom(seed);
    const { sent, shards } = encodeStream(
      random,
      { dataShards, parityShards },
      20 * dataShards + 3,
    );
    const arriving = withLoss(random, shards, upToParity(random));
    const decoder = new FecDecoder();
    const delivered = receiveAll(decoder, arriving);
    assert.deepEqual(multiset(delivered), multiset(sent), `seed ${seed}`);
    const lostData = shards.filter((shard) => !shard.isParity && !arriving.includes(shard)).length;
    assert.equal(delivered.filter((delivery) => delivery.recovered).length, lostData);
    assert.equal(decoder.counters.recovered, lostData);
    assert.equal(decoder.counters.malformed, 0);
  });
}

Deno.test("with more than m lost in a group, only what arrived is delivered", () => {
  const seed = 5;
  const random = seededRandom(seed);
  const { shards } = encodeStream(random, { dataShards: 6, parityShards: 2 }, 120);
  const arriving = withLoss(random, shards, (group) => 3 + random.below(group.length - 3));
  const decoder = new FecDecoder({ groupWindow: 4 });
  const delivered = receiveAll(decoder, arriving);
  const arrivedData = arriving
    .filter((shard) => !shard.isParity)
    .map((shard) => ({ flowId: shard.flowId, payload: shard.body.subarray(FEC_HEADER_BYTES) }));
  assert.deepEqual(multiset(delivered), multiset(arrivedData), `seed ${seed}`);
  assert.equal(decoder.counters.recovered, 0);
  // Every group lost data (3+ of 8 shards, at most 2 of them parity); all but the last 4 were evicted.
  assert.equal(decoder.counters.unrecoverableGroups, byGroup(shards).length - 4);
});

Deno.test("reordered and duplicated shards are delivered once", () => {
  const seed = 17;
  const random = seededRandom(seed);
  const { sent, shards } = encodeStream(random, { dataShards: 5, parityShards: 3 }, 150);
  const arriving = withLoss(random, shards, upToParity(random));
  // Duplicates: the same body again, or an equal copy; then shuffle within runs of 20 shards.
  const withDuplicates: FecShard[] = [];
  for (const shard of arriving) {
    withDuplicates.push(shard);
    if (random.next() < 0.3) withDuplicates.push(shard);
    if (random.next() < 0.2) {
      withDuplicates.push({ flowId: shard.flowId, body: shard.body.slice() });
    }
  }
  const reordered: FecShard[] = [];
  for (let start = 0; start < withDuplicates.length; start += 20) {
    reordered.push(...shuffle(random, withDuplicates.slice(start, start + 20)));
  }
  const decoder = new FecDecoder();
  const delivered = receiveAll(decoder, reordered);
  assert.deepEqual(multiset(delivered), multiset(sent), `seed ${seed}`);
  assert.equal(decoder.counters.malformed, 0);
});

Deno.test("a data shard sent again after its group completed is not delivered again", () => {
  const encoder = new FecEncoder({ dataShards: 2, parityShards: 1 });
  const shards = [
    ...encoder.add(1, Uint8Array.of(1), 0),
    ...encoder.add(1, Uint8Array.of(2), 0),
  ];
  const decoder = new FecDecoder();
  assert.equal(receiveAll(decoder, shards).length, 2);
  assert.deepEqual(receiveAll(decoder, shards), []);
});

Deno.test("an early flush sends m' = ceil(m·k'/k) parity that recovers a loss", () => {
  const encoder = new FecEncoder({ dataShards: 8, parityShards: 4 }, { maxGroupDelayMs: 20 });
  assert.equal(encoder.nextDeadlineMs(), undefined);
  const payloads = [Uint8Array.of(1, 1), Uint8Array.of(2), Uint8Array.of(3, 3, 3)];
  const data = payloads.map((payload, i) => encoder.add(40 + i, payload, 100 + i)[0]);
  assert.equal(encoder.nextDeadlineMs(), 120);
  assert.deepEqual(encoder.flush(119), []);
  const parity = encoder.flush(120);
  assert.equal(parity.length, 2); // max(1, ceil(4 · 3 / 8))
  for (const [j, shard] of parity.entries()) {
    assert.deepEqual([...shard.body.subarray(0, 8)], [0, 0, 0, 0, 3 + j, 3, 2, 0]);
    assert.equal(shard.body.length, FEC_HEADER_BYTES + 4 + 3);
  }
  assert.equal(encoder.nextDeadlineMs(), undefined);
  assert.deepEqual(encoder.flush(1000), []);
  assert.deepEqual(encoder.counters, { groups: 1, dataShards: 3, parityShards: 2 });

  // Data shards say 8+4 (the size when the group opened); the parity says 3+2. Lose two data shards.
  const decoder = new FecDecoder();
  const delivered = [
    ...decoder.receive(data[1].flowId, data[1].body, 0),
    ...decoder.receive(parity[1].flowId, parity[1].body, 0),
    ...decoder.receive(parity[0].flowId, parity[0].body, 0),
  ];
  assert.deepEqual(delivered, [
    { flowId: 41, payload: payloads[1], recovered: false },
    { flowId: 40, payload: payloads[0], recovered: true },
    { flowId: 42, payload: payloads[2], recovered: true },
  ]);
  // The group is complete: a late copy of a data shard is not delivered again.
  assert.deepEqual(decoder.receive(data[0].flowId, data[0].body, 0), []);
  assert.equal(decoder.counters.malformed, 0);
});

Deno.test("a single datagram flushed alone gets one parity shard", () => {
  const encoder = new FecEncoder({ dataShards: 10, parityShards: 2 }, { maxGroupDelayMs: 5 });
  const [data] = encoder.add(3, Uint8Array.of(7, 7), 0);
  const parity = encoder.flush(5);
  assert.equal(parity.length, 1);
  const decoder = new FecDecoder();
  assert.deepEqual(decoder.receive(0, parity[0].body, 6), [
    { flowId: 3, payload: Uint8Array.of(7, 7), recovered: true },
  ]);
  assert.deepEqual(decoder.receive(data.flowId, data.body, 7), []);
});

Deno.test("new parameters take effect at the next group", () => {
  const encoder = new FecEncoder({ dataShards: 2, parityShards: 1 });
  encoder.add(1, Uint8Array.of(1), 0);
  encoder.setParameters({ dataShards: 3, parityShards: 2 });
  const closing = encoder.add(1, Uint8Array.of(2), 0);
  assert.equal(closing.length, 2); // still 2+1
  const next = encoder.add(1, Uint8Array.of(3), 0);
  assert.deepEqual([...next[0].body.subarray(4, 8)], [0, 3, 2, 0]);
});

Deno.test("without parity a group is still closed by flush, sending nothing", () => {
  const encoder = new FecEncoder({ dataShards: 4, parityShards: 0 });
  encoder.add(1, Uint8Array.of(1), 0);
  assert.deepEqual(encoder.flush(20), []);
  assert.equal(encoder.nextDeadlineMs(), undefined);
  const [next] = encoder.add(1, Uint8Array.of(2), 21);
  assert.equal(next.body[3], 1); // group 1
});

Deno.test("the encoder refuses impossible parameters, flow ids and payloads", () => {
  assert.throws(() => new FecEncoder({ dataShards: 0, parityShards: 1 }), RangeError);
  assert.throws(() => new FecEncoder({ dataShards: 200, parityShards: 56 }), RangeError);
  assert.throws(() => new FecEncoder({ dataShards: 4, parityShards: -1 }), RangeError);
  const encoder = new FecEncoder({ dataShards: 4, parityShards: 1 });
  assert.throws(() => encoder.setParameters({ dataShards: 4.5, parityShards: 1 }), RangeError);
  assert.throws(() => encoder.add(65536, new Uint8Array(1), 0), RangeError);
  assert.throws(() => encoder.add(-1, new Uint8Array(1), 0), RangeError);
  assert.throws(() => encoder.add(1, new Uint8Array(65536), 0), RangeError);
  assert.equal(encoder.add(1, new Uint8Array(65535), 0).length, 1);
  assert.throws(() => new FecDecoder({ groupWindow: 0 }), RangeError);
});

Deno.test("group ids wrap around at 2^32", () => {
  const seed = 23;
  const random = seededRandom(seed);
  const { sent, shards } = encodeStream(random, { dataShards: 4, parityShards: 2 }, 40);
  // The group id is not covered by the parity, so the bodies can be renumbered from 2^32 − 3.
  const renumbered = shards.map((shard) => {
    const body = shard.body.slice();
    new DataView(body.buffer).setUint32(0, (2 ** 32 - 3 + shard.groupId) % 2 ** 32);
    return { ...shard, body };
  });
  const arriving = withLoss(random, renumbered, upToParity(random));
  const decoder = new FecDecoder({ groupWindow: 4 });
  const delivered = receiveAll(decoder, arriving);
  assert.deepEqual(multiset(delivered), multiset(sent), `seed ${seed}`);
  assert.equal(decoder.counters.late, 0);
  // Group 2^32 − 3 is now far behind group 6: a copy of one of its data shards is late, not new.
  const oldData = renumbered.find((shard) => shard.groupId === 0 && !shard.isParity)!;
  assert.deepEqual(decoder.receive(oldData.flowId, oldData.body, 0), []);
  assert.equal(decoder.counters.late, 1);
});

Deno.test("groups behind the window are evicted: their shards are late, their losses counted", () => {
  const encoder = new FecEncoder({ dataShards: 2, parityShards: 1 });
  const groups = Array.from({ length: 5 }, (_, g) => [
    ...encoder.add(1, Uint8Array.of(g, 1), 0),
    ...encoder.add(1, Uint8Array.of(g, 2), 0),
  ]);
  const decoder = new FecDecoder({ groupWindow: 2 });
  // Group 0 gets only its first data shard, so it stays incomplete.
  assert.equal(decoder.receive(1, groups[0][0].body, 0).length, 1);
  assert.equal(receiveAll(decoder, groups[1]).length, 2);
  assert.equal(decoder.counters.unrecoverableGroups, 0);
  assert.equal(receiveAll(decoder, groups[2]).length, 2); // group 0 leaves the window
  assert.equal(decoder.counters.unrecoverableGroups, 1);
  assert.deepEqual(receiveAll(decoder, groups[0].slice(1)), []); // its data shard and parity
  assert.equal(decoder.counters.late, 2);
  assert.equal(receiveAll(decoder, groups[4]).length, 2); // groups 1 and 2 leave, complete
  assert.equal(decoder.counters.unrecoverableGroups, 1);
  assert.equal(receiveAll(decoder, groups[3]).length, 2); // still inside the window
});

/** A well-formed body for a hand-made group. */
function body(
  groupId: number,
  index: number,
  dataShards: number,
  parityShards: number,
  content: number[],
): Uint8Array {
  const bytes = new Uint8Array(FEC_HEADER_BYTES + content.length);
  new DataView(bytes.buffer).setUint32(0, groupId);
  bytes.set([index, dataShards, parityShards, 0], 4);
  bytes.set(content, FEC_HEADER_BYTES);
  return bytes;
}

Deno.test("malformed bodies are counted and ignored", () => {
  const cases: [string, Uint8Array][] = [
    ["empty", new Uint8Array(0)],
    ["shorter than the header", Uint8Array.of(0, 0, 0, 0, 0, 1, 1)],
    ["index ≥ k + m", body(0, 5, 3, 2, [1])],
    ["k = 0", body(0, 0, 0, 2, [1])],
    ["k + m > 255", body(0, 0, 200, 56, [1])],
    ["reserved byte set", Uint8Array.of(0, 0, 0, 0, 0, 1, 1, 1, 9)],
    ["parity shorter than the length and flow id", body(0, 1, 1, 1, [0, 0, 0])],
  ];
  for (const [name, hostile] of cases) {
    const decoder = new FecDecoder();
    assert.deepEqual(decoder.receive(1, hostile, 0), [], name);
    assert.equal(decoder.counters.malformed, 1, name);
  }
});

Deno.test("shards that contradict their group are counted and ignored", () => {
  const decoder = new FecDecoder();
  assert.equal(decoder.receive(1, body(7, 0, 4, 2, [1, 2]), 0).length, 1);
  assert.deepEqual(decoder.receive(1, body(7, 1, 5, 2, [3]), 0), [], "other k in a data shard");
  assert.deepEqual(decoder.receive(1, body(7, 1, 4, 1, [3]), 0), [], "other m in a data shard");
  assert.deepEqual(decoder.receive(0, body(7, 5, 5, 1, [0, 0, 0, 0, 0, 0]), 0), [], "parity k > k");
  assert.deepEqual(decoder.receive(0, body(7, 4, 4, 1, [0, 0, 0, 0, 0, 0]), 0), [], "same k, m ≠");
  assert.deepEqual(decoder.receive(0, body(7, 2, 2, 3, [0, 0, 0, 0, 0, 0]), 0), [], "m' > m");
  assert.deepEqual(decoder.receive(0, body(7, 4, 4, 2, [0, 0, 0, 0, 0]), 0), [], "L < 4 + 2");
  assert.equal(decoder.counters.malformed, 6);
  // A consistent parity (early close to k' = 3, m' = 1) is taken; then parity of another length
  // and data shards that do not fit in it are refused.
  assert.deepEqual(decoder.receive(0, body(7, 3, 3, 1, [0, 0, 0, 0, 0, 0]), 0), []);
  assert.deepEqual(decoder.receive(0, body(7, 3, 3, 1, [0, 0, 0, 0, 0, 0, 0]), 0), [], "L ≠");
  assert.deepEqual(decoder.receive(1, body(7, 3, 4, 2, [5]), 0), [], "index ≥ k'");
  assert.deepEqual(decoder.receive(1, body(7, 1, 4, 2, [5, 5, 5]), 0), [], "4 + length > L");
  assert.equal(decoder.counters.malformed, 9);
});

Deno.test("a recovered shard with an impossible length or padding is not delivered", () => {
  // With k = 1 the parity is the padded data shard itself, so it can be written by hand.
  const tooLong = new FecDecoder();
  assert.deepEqual(tooLong.receive(0, body(3, 1, 1, 1, [0, 3, 0, 1, 9, 9]), 0), []);
  assert.deepEqual(tooLong.counters, {
    recovered: 0,
    malformed: 1,
    late: 0,
    unrecoverableGroups: 0,
  });
  const dirtyPadding = new FecDecoder();
  assert.deepEqual(dirtyPadding.receive(0, body(3, 1, 1, 1, [0, 1, 0, 1, 9, 4]), 0), []);
  assert.equal(dirtyPadding.counters.malformed, 1);
  const valid = new FecDecoder();
  assert.deepEqual(valid.receive(0, body(3, 1, 1, 1, [0, 1, 0, 2, 9, 0]), 0), [
    { flowId: 2, payload: Uint8Array.of(9), recovered: true },
  ]);
});

Deno.test("random bodies never throw and never make recovery deliver anything unsent", () => {
  const seed = 29;
  const random = seededRandom(seed);
  const { sent, shards } = encodeStream(random, { dataShards: 6, parityShards: 3 }, 300);
  const arriving = withLoss(random, shards, upToParity(random));
  const decoder = new FecDecoder();
  const delivered: FecDelivery[] = [];
  for (const shard of arriving) {
    delivered.push(...decoder.receive(shard.flowId, shard.body, 0));
    for (let extra = random.below(4); extra > 0; extra--) {
      const hostile = new Uint8Array(random.below(1500));
      for (let i = 0; i < hostile.length; i++) hostile[i] = random.below(256);
      // One in four gets a zero reserved byte, so that more of them get past the first checks.
      if (hostile.length >= FEC_HEADER_BYTES && random.next() < 0.25) hostile[7] = 0;
      const flowId = random.below(65536);
      for (const delivery of decoder.receive(flowId, hostile, 0)) {
        // A body that parses as a data shard is delivered as it is: the decoder cannot tell it
        // from data (the tunnel's seal is what keeps such bodies out). Anything else is not allowed.
        assert.equal(delivery.recovered, false, `seed ${seed}`);
        assert.equal(delivery.flowId, flowId);
        assert.deepEqual(delivery.payload, hostile.subarray(FEC_HEADER_BYTES));
      }
    }
  }
  assertSubset(delivered, multiset(sent), `seed ${seed}`);
  assert.ok(decoder.counters.malformed > 0);
});

Deno.test("truncated bodies never throw and never deliver anything unsent", () => {
  const seed = 31;
  const random = seededRandom(seed);
  const { sent, shards } = encodeStream(random, { dataShards: 6, parityShards: 3 }, 300);
  const arriving = withLoss(random, shards, upToParity(random));
  const cut = (shard: SentShard): FecShard => ({
    flowId: shard.flowId,
    body: shard.body.slice(0, random.below(shard.body.length)),
  });
  // A cut parity body may come before or after the real one. A cut data body comes only after its
  // original: a data body carries no length, so a cut one in its place would pass for data.
  const sequence: FecShard[] = [];
  for (const shard of arriving) {
    const roll = random.next();
    if (roll < 0.2 && shard.isParity) sequence.push(cut(shard), shard);
    else if (roll < 0.4) sequence.push(shard, cut(shard));
    else sequence.push(shard);
  }
  const decoder = new FecDecoder();
  const delivered = receiveAll(decoder, sequence);
  assertSubset(delivered, multiset(sent), `seed ${seed}`);
  assert.ok(decoder.counters.malformed > 0);
  assert.ok(decoder.counters.recovered > 0);
});

Deno.test("bit flips in k, m or the reserved byte never disturb the real shards", () => {
  const seed = 37;
  const random = seededRandom(seed);
  const { sent, shards } = encodeStream(random, { dataShards: 8, parityShards: 3 }, 400);
  const arriving = withLoss(random, shards, upToParity(random));
  const decoder = new FecDecoder();
  const delivered: FecDelivery[] = [];
  for (const shard of arriving) {
    delivered.push(...decoder.receive(shard.flowId, shard.body, 0));
    const flipped = shard.body.slice();
    flipped[5 + random.below(3)] ^= 1 << random.below(8);
    delivered.push(...decoder.receive(shard.flowId, flipped, 0));
  }
  assert.deepEqual(multiset(delivered), multiset(sent), `seed ${seed}`);
  assert.ok(decoder.counters.malformed > 0);
});

Deno.test("bit flips in the header of shards of complete groups deliver nothing", () => {
  const seed = 41;
  const random = seededRandom(seed);
  const { sent, shards } = encodeStream(random, { dataShards: 8, parityShards: 3 }, 400);
  const groupCount = byGroup(shards).length;
  const arriving = withLoss(random, shards, upToParity(random));
  const decoder = new FecDecoder();
  assert.deepEqual(multiset(receiveAll(decoder, arriving)), multiset(sent), `seed ${seed}`);
  // Flip one bit of index, k, m or the reserved byte, or a low group id bit that still names one of
  // the stream's groups (all complete by now). A flip that names a group the decoder has never seen
  // gives a well-formed shard it cannot tell from a real one: keeping those out is the seal's job.
  for (const shard of shuffle(random, [...shards])) {
    const flipped = shard.body.slice();
    for (;;) {
      const bit = random.below(FEC_HEADER_BYTES * 8);
      const isGroupIdBit = bit < 32;
      if (isGroupIdBit && (shard.groupId ^ (1 << (31 - bit))) >>> 0 >= groupCount) continue;
      flipped[bit >>> 3] ^= 0x80 >>> (bit & 7);
      break;
    }
    assert.deepEqual(decoder.receive(shard.flowId, flipped, 0), [], `seed ${seed}`);
  }
});
