import assert from "node:assert/strict";
import { ReorderBuffer } from "../../lib/session/reorder.ts";

function collector() {
  const delivered: number[] = [];
  return { delivered, deliver: (payload: Uint8Array) => delivered.push(payload[0]) };
}

const datagram = (value: number) => new Uint8Array([value]);

Deno.test("in order: delivered at once, nothing held", () => {
  const buffer = new ReorderBuffer(50);
  const { delivered, deliver } = collector();
  for (let seq = 0; seq < 5; seq++) buffer.push(seq, datagram(seq), seq, deliver);
  assert.deepEqual(delivered, [0, 1, 2, 3, 4]);
  assert.equal(buffer.size, 0);
  assert.equal(buffer.nextDeadlineMs(), undefined);
});

Deno.test("a datagram that overtakes waits for the gap to fill", () => {
  const buffer = new ReorderBuffer(50);
  const { delivered, deliver } = collector();
  buffer.push(0, datagram(0), 0, deliver);
  buffer.push(2, datagram(2), 1, deliver);
  buffer.push(3, datagram(3), 2, deliver);
  assert.deepEqual(delivered, [0]);
  assert.equal(buffer.nextDeadlineMs(), 51);
  buffer.push(1, datagram(1), 3, deliver);
  assert.deepEqual(delivered, [0, 1, 2, 3]);
  assert.equal(buffer.counters.held, 2);
  assert.equal(buffer.size, 0);
});

Deno.test("a lost datagram stalls its flow for the timeout at most, then comes late", () => {
  const buffer = new ReorderBuffer(50);
  const { delivered, deliver } = collector();
  buffer.push(0, datagram(0), 0, deliver);
  buffer.push(2, datagram(2), 10, deliver);
  buffer.push(4, datagram(4), 20, deliver);
  buffer.flush(59, deliver);
  assert.deepEqual(delivered, [0]);
  buffer.flush(60, deliver); // the gap before 2 is given up; 4 still waits for 3
  assert.deepEqual(delivered, [0, 2]);
  assert.equal(buffer.nextDeadlineMs(), 70);
  buffer.flush(70, deliver);
  assert.deepEqual(delivered, [0, 2, 4]);
  buffer.push(1, datagram(1), 80, deliver); // behind the delivery point: late, not lost
  assert.deepEqual(delivered, [0, 2, 4, 1]);
  assert.equal(buffer.counters.late, 1);
  assert.equal(buffer.counters.gapsSkipped, 2);
});

Deno.test("capacity bounds what waits; sequence numbers wrap at 16 bits", () => {
  const buffer = new ReorderBuffer(1000, 4);
  const { delivered, deliver } = collector();
  buffer.push(65534, datagram(1), 0, deliver);
  for (let i = 0; i < 5; i++) buffer.push((65536 + i) % 65536, datagram(10 + i), 1, deliver);
  // 65535 never came: the fifth held datagram forced the gap open.
  assert.deepEqual(delivered, [1, 10, 11, 12, 13, 14]);
  buffer.push(5, datagram(15), 2, deliver);
  assert.deepEqual(delivered.at(-1), 15);
});

Deno.test("held payloads are copies: the caller may reuse its buffer", () => {
  const buffer = new ReorderBuffer(50);
  const { delivered, deliver } = collector();
  const reused = new Uint8Array(1);
  buffer.push(0, datagram(0), 0, deliver);
  reused[0] = 7;
  buffer.push(2, reused, 0, deliver);
  reused[0] = 99;
  buffer.push(1, datagram(1), 0, deliver);
  assert.deepEqual(delivered, [0, 1, 7]);
});
