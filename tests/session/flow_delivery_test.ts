import assert from "node:assert/strict";
import { FecEncoder } from "../../lib/fec/encoder.ts";
import { FlowDelivery } from "../../lib/session/flow_delivery.ts";

/** A delivery whose sink records `flowId:first byte` in order. */
function recording(options: ConstructorParameters<typeof FlowDelivery<string>>[1]) {
  const delivered: string[] = [];
  const contexts: string[] = [];
  const delivery = new FlowDelivery<string>((flowId, payload, _nowMs, context) => {
    delivered.push(`${flowId}:${payload[0]}`);
    contexts.push(context);
  }, options);
  return { delivery, delivered, contexts };
}

const byte = (value: number) => new Uint8Array([value]);

Deno.test("flow delivery: without a reorder timeout each datagram goes out as it comes", () => {
  const { delivery, delivered } = recording({ reorderTimeoutMs: 0 });
  assert.equal(delivery.receiveData(1, 5, byte(5), 0, "a"), false);
  assert.equal(delivery.receiveData(1, 3, byte(3), 1, "a"), false);
  assert.deepEqual(delivered, ["1:5", "1:3"]);
  assert.equal(delivery.nextDeadlineMs(), undefined);
});

Deno.test("flow delivery: a datagram ahead of a gap waits for it, with the caller's context", () => {
  const { delivery, delivered, contexts } = recording({ reorderTimeoutMs: 50 });
  assert.equal(delivery.receiveData(1, 0, byte(0), 0, "first"), false);
  assert.equal(delivery.receiveData(1, 2, byte(2), 10, "second"), true);
  assert.equal(delivery.nextDeadlineMs(), 60);
  assert.equal(delivery.receiveData(1, 1, byte(1), 20, "third"), false);
  assert.deepEqual(delivered, ["1:0", "1:1", "1:2"]);
  assert.deepEqual(contexts, ["first", "third", "third"]);
});

Deno.test("flow delivery: a gap is given up at the timeout, flow by flow", () => {
  const { delivery, delivered } = recording({ reorderTimeoutMs: 50 });
  delivery.receiveData(1, 0, byte(10), 0, "");
  delivery.receiveData(1, 2, byte(12), 0, "");
  delivery.receiveData(2, 0, byte(20), 0, "");
  assert.equal(delivery.flush(49, ""), true);
  assert.deepEqual(delivered, ["1:10", "2:20"]);
  assert.equal(delivery.flush(50, ""), false);
  assert.deepEqual(delivered, ["1:10", "2:20", "1:12"]);
});

Deno.test("flow delivery: flows beyond the buffer limit are delivered unordered", () => {
  const { delivery, delivered } = recording({ reorderTimeoutMs: 50, maxReorderBuffers: 1 });
  delivery.receiveData(1, 1, byte(11), 0, ""); // flow 1 has the only buffer
  delivery.receiveData(2, 1, byte(21), 0, "");
  delivery.receiveData(2, 0, byte(20), 0, "");
  assert.deepEqual(delivered, ["1:11", "2:21", "2:20"]);
});

Deno.test("flow delivery: reset and forgetFlow drop what is held", () => {
  const { delivery, delivered } = recording({ reorderTimeoutMs: 50 });
  delivery.receiveData(1, 0, byte(0), 0, "");
  delivery.receiveData(1, 2, byte(2), 0, "");
  delivery.forgetFlow(1);
  assert.equal(delivery.nextDeadlineMs(), undefined);
  delivery.receiveData(2, 0, byte(0), 0, "");
  delivery.receiveData(2, 2, byte(2), 0, "");
  delivery.reset();
  assert.equal(delivery.flush(1000, ""), false);
  assert.deepEqual(delivered, ["1:0", "2:0"]);
});

Deno.test("flow delivery: a datagram rebuilt from parity is counted before it is delivered", () => {
  const events: string[] = [];
  const delivery = new FlowDelivery<undefined>(
    (flowId, payload) => events.push(`deliver ${flowId}:${payload[0]}`),
    { reorderTimeoutMs: 50, onFecRecovered: () => events.push("recovered") },
  );
  const encoder = new FecEncoder({ dataShards: 2, parityShards: 1 });
  const shards = [...encoder.add(7, byte(1), 0), ...encoder.add(7, byte(2), 0)];
  assert.equal(shards.length, 3); // two data shards, then the parity
  delivery.receiveFec(shards[0].flowId, shards[0].body, 0, undefined);
  delivery.receiveFec(shards[2].flowId, shards[2].body, 0, undefined); // the second one is lost
  assert.deepEqual(events, ["deliver 7:1", "recovered", "deliver 7:2"]);
});
