/**
 * Tests of the simulator itself, with trivial endpoints: a client that sends every application
 * datagram on every path, and a server that records what arrives (first copies count).
 *
 * Statistical assertions use fixed seeds, so they are deterministic; the tolerances say how far an
 * honest generator could stray, so that a different seed would pass too. For a share p estimated from
 * n independent trials the standard deviation is sqrt(p(1-p)/n); 4 standard deviations leave about
 * one chance in 16 000 of a false failure per assertion.
 */

import assert from "node:assert/strict";
import {
  APP_HEADER_BYTES,
  constantStream,
  DeliveryRecorder,
  type LinkCounters,
  makeAppPayload,
  Network,
  type ObservedDatagram,
  type PathOptions,
  readAppPayload,
  type SimClientEndpoint,
  type SimServerEndpoint,
} from "./network.ts";

/** Sends each application payload on every path; records what comes back. */
class BroadcastClient implements SimClientEndpoint {
  readonly recorder = new DeliveryRecorder(2);
  readonly arrivals: { pathIndex: number; datagram: Uint8Array; nowMs: number }[] = [];
  constructor(private readonly network: Network, readonly name = "broadcast") {}
  send(payload: Uint8Array): void {
    for (const path of this.network.paths) this.network.clientSend(path.index, payload);
  }
  receiveFromPath(pathIndex: number, datagram: Uint8Array, nowMs: number): void {
    this.arrivals.push({ pathIndex, datagram, nowMs });
    this.recorder.record(datagram, nowMs);
  }
  onTimer(): void {}
  nextDeadlineMs(): number | undefined {
    return undefined;
  }
}

/** Records what arrives, keeping the first copy of each sequence number. */
class RecordingServer implements SimServerEndpoint {
  readonly recorder = new DeliveryRecorder(1);
  readonly arrivals: { address: string; datagram: Uint8Array; nowMs: number }[] = [];
  readonly seqsInArrivalOrder: number[] = [];
  constructor(readonly name = "recorder") {}
  receiveFrom(address: string, datagram: Uint8Array, nowMs: number): void {
    this.arrivals.push({ address, datagram, nowMs });
    this.seqsInArrivalOrder.push(readAppPayload(datagram)?.seq ?? -1);
    this.recorder.record(datagram, nowMs);
  }
  onTimer(): void {}
  nextDeadlineMs(): number | undefined {
    return undefined;
  }
}

interface Scenario {
  readonly network: Network;
  readonly client: BroadcastClient;
  readonly server: RecordingServer;
}

function scenario(seed: number, paths: readonly PathOptions[]): Scenario {
  const network = new Network({ seed, paths });
  const client = new BroadcastClient(network);
  const server = new RecordingServer();
  network.attachClient(client);
  network.attachServer(server);
  return { network, client, server };
}

/** Streams `count` payloads from client to server and runs until all have landed. */
function streamToServer(
  { network, client }: Scenario,
  count: number,
  intervalMs = 0.1,
  sizeBytes = 64,
) {
  const stream = constantStream({
    network,
    startMs: 0,
    intervalMs,
    count,
    sizeBytes,
    send: (_seq, payload) => client.send(payload),
  });
  network.runUntil(stream.lastSendMs + 10_000);
  return stream;
}

/** `|observed - expected| <= 4 sd` for a share of n independent trials; the message names the seed. */
function assertShareNear(
  observed: number,
  expected: number,
  trials: number,
  seed: number,
  varianceFactor = 1,
): void {
  const fourSd = 4 * Math.sqrt(varianceFactor * expected * (1 - expected) / trials);
  assert.ok(
    Math.abs(observed - expected) <= fourSd,
    `seed ${seed}: share ${observed} is not within ${fourSd.toFixed(5)} (4 sd) of ${expected}`,
  );
}

function snapshot(network: Network): LinkCounters[] {
  return network.paths.flatMap((path) => [
    structuredClone(path.forward.counters),
    structuredClone(path.reverse.counters),
  ]);
}

Deno.test("three paths at 20 % loss leave about 0.8 % of datagrams undelivered", () => {
  const seed = 20;
  const count = 100_000;
  const sim = scenario(seed, [0, 1, 2].map(() => ({ both: { lossPercent: 20, delayMs: 20 } })));
  streamToServer(sim, count);
  // Independent losses: all three copies are lost with p = 0.2^3 = 0.008; sd over 100 000 datagrams
  // is sqrt(0.008 * 0.992 / 1e5) ≈ 0.00028, so 4 sd ≈ 0.0011.
  assertShareNear(sim.server.recorder.lossRatio(count), 0.008, count, seed);
  assert.equal(sim.server.recorder.duplicates + sim.server.recorder.unique, 3 * count - lost(sim));
  for (const path of sim.network.paths) {
    // Each link alone: p = 0.2, 4 sd ≈ 0.005.
    assertShareNear(path.forward.counters.dropped.loss / count, 0.2, count, seed);
  }
});

function lost({ network }: Scenario): number {
  return network.paths.reduce((sum, path) => sum + path.forward.counters.dropped.loss, 0);
}

Deno.test("one path at 20 % loss loses about 20 % of datagrams", () => {
  const seed = 21;
  const count = 100_000;
  const sim = scenario(seed, [{ both: { lossPercent: 20 } }]);
  streamToServer(sim, count);
  // sd = sqrt(0.2 * 0.8 / 1e5) ≈ 0.00126, so 4 sd ≈ 0.005.
  assertShareNear(sim.server.recorder.lossRatio(count), 0.2, count, seed);
  const counters = sim.network.paths[0].forward.counters;
  assert.equal(counters.offered, count);
  assert.equal(counters.delivered + counters.dropped.loss, count);
});

Deno.test("the same seed gives identical runs and another seed a different one", () => {
  const run = (seed: number) => {
    const sim = scenario(seed, [
      { both: { lossPercent: 10, delayMs: 15, jitterMs: 5, duplicatePercent: 2 } },
      {
        both: { delayMs: 40, reorderPercent: 3, rateBitsPerSecond: 5_000_000 },
        forward: { burst: { enterBadPercent: 2, leaveBadPercent: 30, lossInBadPercent: 80 } },
      },
    ]);
    streamToServer(sim, 5_000, 0.2, 200);
    return {
      counters: snapshot(sim.network),
      arrivals: sim.server.arrivals.map(({ address, nowMs }) => `${address}@${nowMs}`),
    };
  };
  assert.deepEqual(run(5), run(5));
  assert.notDeepEqual(run(5).counters, run(6).counters);
  assert.notDeepEqual(run(5).arrivals, run(6).arrivals);
});

Deno.test("adding a path leaves the other paths' random draws unchanged", () => {
  const seed = 9;
  const path: PathOptions = { both: { lossPercent: 30, jitterMs: 8, duplicatePercent: 5 } };
  const one = scenario(seed, [path]);
  const two = scenario(seed, [path, path]);
  streamToServer(one, 5_000);
  streamToServer(two, 5_000);
  assert.deepEqual(snapshot(two.network).slice(0, 2), snapshot(one.network), `seed ${seed}`);
  const onPath0 = (sim: Scenario) =>
    sim.server.arrivals.filter((arrival) => arrival.address === "path0:40000")
      .map((arrival) => arrival.nowMs);
  assert.deepEqual(onPath0(two), onPath0(one));
});

Deno.test("an outage drops exactly the datagrams sent inside its window", () => {
  const sim = scenario(1, [{ forward: { delayMs: 5, outages: [{ fromMs: 1000, toMs: 2000 }] } }]);
  streamToServer(sim, 3000, 1);
  const counters = sim.network.paths[0].forward.counters;
  assert.equal(counters.dropped.outage, 1000);
  assert.equal(counters.delivered, 2000);
  for (let seq = 0; seq < 3000; seq++) {
    const inside = seq >= 1000 && seq < 2000;
    assert.equal(sim.server.recorder.firstArrivalMs(seq) === undefined, inside, `seq ${seq}`);
  }
  assert.equal(sim.server.recorder.longestGapMs(0, 2999 + 5), 1001);
});

Deno.test("a link set down at run time drops until it is set up again", () => {
  const sim = scenario(1, [{ both: { delayMs: 5 } }, { both: { delayMs: 5 } }]);
  sim.network.schedule(500, () => sim.network.paths[1].set({ down: true }));
  sim.network.schedule(700, () => sim.network.paths[1].set({ down: false }));
  streamToServer(sim, 1000, 1);
  assert.equal(sim.network.paths[1].forward.counters.dropped.down, 200);
  assert.equal(sim.network.paths[0].forward.counters.delivered, 1000);
});

Deno.test("delay and jitter keep every one-way latency within [delay, delay + jitter) in order", () => {
  const seed = 30;
  const sim = scenario(seed, [{ forward: { delayMs: 30, jitterMs: 10 } }]);
  const stream = streamToServer(sim, 10_000, 1);
  const latencies = sim.server.arrivals.map(({ datagram, nowMs }) =>
    nowMs - stream.sentAtMs(readAppPayload(datagram)!.seq)
  );
  assert.equal(latencies.length, 10_000);
  assert.ok(latencies.every((ms) => ms >= 30 && ms < 40), `seed ${seed}`);
  // The draws must cover the interval, not sit at one end.
  assert.ok(Math.min(...latencies) < 30.5 && Math.max(...latencies) > 39.5, `seed ${seed}`);
  // Jitter alone keeps the link FIFO.
  assert.deepEqual(sim.server.seqsInArrivalOrder, [...Array(10_000).keys()]);
  const summary = sim.server.recorder.latency(stream.sentAtMs);
  assert.ok(summary.p50Ms > 33 && summary.p50Ms < 37, `seed ${seed}: p50 ${summary.p50Ms}`);
});

Deno.test("reordering holds back about the configured share so later datagrams overtake them", () => {
  const seed = 31;
  const count = 20_000;
  const sim = scenario(seed, [{ forward: { delayMs: 20, reorderPercent: 5, reorderDelayMs: 10 } }]);
  streamToServer(sim, count, 1);
  let overtaken = 0;
  let highestSeq = -1;
  for (const seq of sim.server.seqsInArrivalOrder) {
    if (seq < highestSeq) overtaken++;
    highestSeq = Math.max(highestSeq, seq);
  }
  // Each held-back datagram (10 ms behind, sends 1 ms apart) arrives after a later one, so the
  // overtaken share estimates reorderPercent: sd = sqrt(0.05 * 0.95 / 2e4) ≈ 0.0015.
  assertShareNear(overtaken / count, 0.05, count, seed);
  assert.equal(sim.server.recorder.unique, count);
});

Deno.test("duplication makes about the configured share of extra, separate copies", () => {
  const seed = 32;
  const count = 100_000;
  const sim = scenario(seed, [{ forward: { duplicatePercent: 10, delayMs: 3 } }]);
  streamToServer(sim, count);
  const counters = sim.network.paths[0].forward.counters;
  // sd = sqrt(0.1 * 0.9 / 1e5) ≈ 0.00095.
  assertShareNear(counters.duplicated / count, 0.1, count, seed);
  assert.equal(sim.server.recorder.duplicates, counters.duplicated);
  assert.equal(counters.delivered, count + counters.duplicated);
  const seqs = sim.server.seqsInArrivalOrder;
  const copy = seqs.findIndex((seq, index) => index > 0 && seq === seqs[index - 1]);
  const [first, second] = [sim.server.arrivals[copy - 1], sim.server.arrivals[copy]];
  assert.deepEqual(first.datagram, second.datagram);
  assert.notEqual(first.datagram, second.datagram);
  assert.notEqual(first.datagram.buffer, second.datagram.buffer);
});

Deno.test("a rate limit serialises datagrams and tail-drops beyond the queue limit", () => {
  // 1250 bytes at 1 Mbit/s take 10 ms on the wire.
  const sim = scenario(1, [{
    forward: { rateBitsPerSecond: 1_000_000, queueLimitBytes: 5000, delayMs: 5 },
  }]);
  sim.network.schedule(0, () => {
    for (let seq = 0; seq < 10; seq++) sim.client.send(makeAppPayload(1, seq, 1250));
  });
  sim.network.runUntil(1000);
  const counters = sim.network.paths[0].forward.counters;
  // The queue holds 4 × 1250 bytes, the one being serialised included.
  assert.equal(counters.dropped.queueFull, 6);
  assert.deepEqual(sim.server.arrivals.map((arrival) => arrival.nowMs), [15, 25, 35, 45]);

  // Offered at twice the rate for one second: about the rate gets through, plus the queue.
  const stream = constantStream({
    network: sim.network,
    startMs: 1000,
    intervalMs: 5,
    count: 200,
    sizeBytes: 1250,
    streamId: 1,
    send: (_seq, payload) => sim.client.send(payload),
  });
  sim.network.runUntil(stream.lastSendMs + 1000);
  assert.ok(
    counters.delivered - 4 >= 100 && counters.delivered - 4 <= 105,
    `${counters.delivered}`,
  );
  assert.equal(counters.delivered + counters.dropped.queueFull, 210);
});

Deno.test("Gilbert–Elliott loss comes in bursts at the stationary rate", () => {
  const seed = 33;
  const count = 100_000;
  const sim = scenario(seed, [{
    forward: { burst: { enterBadPercent: 5, leaveBadPercent: 45, lossInBadPercent: 100 } },
  }]);
  streamToServer(sim, count);
  // The chain is bad a share 5 / (5 + 45) = 0.1 of the time. Successive datagrams are correlated
  // (eigenvalue λ = 1 - 0.05 - 0.45 = 0.5), which inflates the variance of the share by
  // (1 + λ) / (1 - λ) = 3: 4 sd = 4 * sqrt(3 * 0.09 / 1e5) ≈ 0.0066.
  const lostCount = count - sim.server.recorder.unique;
  assertShareNear(lostCount / count, 0.1, count, seed, 3);
  assert.equal(sim.network.paths[0].forward.counters.dropped.burstLoss, lostCount);
  // Bursts last 1 / 0.45 ≈ 2.2 datagrams on average (about 4500 bursts; geometric, sd of the mean
  // ≈ sqrt(0.55) / 0.45 / sqrt(4500) ≈ 0.025, so ±0.1 is 4 sd).
  let bursts = 0;
  for (let seq = 0; seq < count; seq++) {
    const missing = sim.server.recorder.firstArrivalMs(seq) === undefined;
    const previousMissing = seq > 0 && sim.server.recorder.firstArrivalMs(seq - 1) === undefined;
    if (missing && !previousMissing) bursts++;
  }
  const meanBurst = lostCount / bursts;
  assert.ok(Math.abs(meanBurst - 1 / 0.45) < 0.1, `seed ${seed}: mean burst ${meanBurst}`);
});

/** A server whose timer wants the deadlines in `pending`, earliest first; arrivals can add some. */
class TimerServer implements SimServerEndpoint {
  readonly calls: number[] = [];
  constructor(readonly pending: number[], readonly name = "timers") {}
  receiveFrom(_address: string, datagram: Uint8Array): void {
    this.pending.push(datagram[0]);
    this.pending.sort((a, b) => a - b);
  }
  onTimer(nowMs: number): void {
    assert.ok(this.pending[0] <= nowMs, `called at ${nowMs}, before ${this.pending[0]}`);
    this.calls.push(nowMs);
    this.pending.shift();
  }
  nextDeadlineMs(): number | undefined {
    return this.pending[0];
  }
}

Deno.test("timers fire at their deadlines in order, never early, including ones added later", () => {
  const network = new Network({ seed: 1, paths: [{ forward: { delayMs: 2 } }] });
  const server = new TimerServer([5, 12.5, 12.5, 40]);
  network.attachServer(server);
  // Arrives at 22 and asks for a timer at 25, earlier than the pending 40.
  network.schedule(20, () => network.clientSend(0, new Uint8Array([25])));
  network.runUntil(30);
  assert.deepEqual(server.calls, [5, 12.5, 12.5, 25]);
  network.runUntil(100);
  assert.deepEqual(server.calls, [5, 12.5, 12.5, 25, 40]);
  assert.equal(network.counters.serverTimerCalls, 5);
});

Deno.test("a deadline already in the past fires at the current time, late but not early", () => {
  const network = new Network({ seed: 1 });
  const server = new TimerServer([]);
  network.attachServer(server);
  network.runUntil(50);
  server.pending.push(10); // changed behind the network's back, between runs
  network.runUntil(60);
  assert.deepEqual(server.calls, [50]);
});

Deno.test("an endpoint whose deadline never moves past now is stopped with an error naming it", () => {
  const network = new Network({ seed: 1 });
  let calls = 0;
  network.attachClient({
    name: "stuck",
    receiveFromPath() {},
    onTimer: () => void calls++,
    nextDeadlineMs: () => 5,
  });
  assert.throws(() => network.runUntil(10), /timer busy loop: client endpoint "stuck".*at 5 ms/);
  assert.equal(calls, 10_000);
  assert.equal(network.nowMs, 5);
});

Deno.test("datagrams in flight reach the replacement endpoint, and the old one hears nothing", () => {
  const sim = scenario(1, [{ both: { delayMs: 100 } }]);
  const oldTimers = new TimerServer([30, 200]);
  sim.network.replaceServer(oldTimers);
  sim.network.schedule(0, () => {
    for (let seq = 0; seq < 10; seq++) sim.client.send(makeAppPayload(1, seq, 16));
  });
  const restarted = new RecordingServer("restarted");
  sim.network.schedule(50, () => sim.network.replaceServer(restarted));
  sim.network.runUntil(300);
  assert.deepEqual(oldTimers.calls, [30]);
  assert.deepEqual(oldTimers.pending, [200]);
  assert.equal(restarted.recorder.unique, 10);
  assert.throws(() => sim.network.attachServer(new RecordingServer()), /already attached/);
});

Deno.test("a down endpoint loses arriving datagrams and gets no timer calls until it is up", () => {
  const network = new Network({ seed: 1, paths: [{ both: { delayMs: 10 } }] });
  const server = new TimerServer([20, 60]);
  network.attachServer(server);
  network.schedule(0, () => network.setServerDown(true));
  network.schedule(5, () => network.clientSend(0, new Uint8Array([70])));
  network.schedule(50, () => network.setServerDown(false));
  network.schedule(55, () => network.clientSend(0, new Uint8Array([80])));
  network.runUntil(100);
  const counters = network.paths[0].forward.counters;
  assert.equal(counters.dropped.receiverDown, 1);
  assert.equal(counters.delivered, 1);
  // The deadline at 20 passed while down, so it fires as soon as the server is back.
  assert.deepEqual(server.calls, [50, 60, 80]);
});

Deno.test("a NAT rebinding changes the server-side address and strands the old one", () => {
  const sim = scenario(1, [{ both: { delayMs: 10 } }, { both: { delayMs: 10 } }]);
  const path0 = sim.network.paths[0];
  assert.equal(path0.clientAddress, "path0:40000");
  assert.equal(sim.network.paths[1].clientAddress, "path1:40001");
  sim.network.schedule(0, () => sim.network.clientSend(0, makeAppPayload(1, 0, 8)));
  sim.network.schedule(5, () => path0.rebind()); // while seq 0 is in flight
  sim.network.schedule(6, () => sim.network.clientSend(0, makeAppPayload(1, 1, 8)));
  sim.network.runUntil(20);
  assert.deepEqual(sim.server.arrivals.map((arrival) => arrival.address), [
    "path0:40000",
    "path0:40002",
  ]);

  sim.network.serverSend("path0:40000", makeAppPayload(2, 0, 8));
  sim.network.serverSend("path0:40002", makeAppPayload(2, 1, 8));
  sim.network.runUntil(40);
  assert.equal(sim.network.counters.unroutableServerSends, 1);
  assert.deepEqual(sim.client.arrivals.map((arrival) => arrival.pathIndex), [0]);
  assert.equal(sim.client.recorder.firstArrivalMs(1), 30);
  assert.throws(() => path0.rebind("path1:40001"), /already path 1's/);
});

Deno.test("a sent datagram is copied, so the sender may reuse its buffer at once", () => {
  const sim = scenario(1, [{ both: { delayMs: 1 } }]);
  const buffer = new Uint8Array(4);
  sim.network.schedule(0, () => {
    for (let value = 1; value <= 3; value++) {
      buffer.fill(value);
      sim.network.clientSend(0, buffer);
    }
    buffer.fill(9);
  });
  sim.network.runUntil(10);
  assert.deepEqual(sim.server.arrivals.map((arrival) => arrival.datagram[0]), [1, 2, 3]);
});

Deno.test("an observer sees every send and an injected copy reaches the endpoint", () => {
  const sim = scenario(1, [{ both: { delayMs: 5 } }, { both: { delayMs: 5, lossPercent: 100 } }]);
  const observed: ObservedDatagram[] = [];
  sim.network.observe((datagram) => observed.push(datagram));
  sim.network.schedule(1, () => sim.client.send(makeAppPayload(1, 7, 8)));
  sim.network.runUntil(10);
  assert.deepEqual(observed.map((o) => [o.direction, o.pathIndex, o.clientAddress, o.nowMs]), [
    ["toServer", 0, "path0:40000", 1],
    ["toServer", 1, "path1:40001", 1],
  ]);
  // Replay what was sent on path 0 as if it came from path 1.
  sim.network.injectToServer(sim.network.paths[1].clientAddress, observed[0].datagram, 12);
  sim.network.runUntil(20);
  assert.deepEqual(sim.server.arrivals.map((a) => [a.address, a.nowMs]), [
    ["path0:40000", 6],
    ["path1:40001", 12],
  ]);
  assert.equal(sim.server.recorder.duplicates, 1);
});

Deno.test("events at the same time run in the order they were scheduled", () => {
  const network = new Network({ seed: 1 });
  const order: string[] = [];
  for (const label of ["a", "b", "c", "d"]) network.schedule(7, () => order.push(label));
  network.schedule(3, (nowMs) => {
    order.push(`early@${nowMs}`);
    network.schedule(7, () => order.push("e"));
  });
  network.runUntil(7);
  assert.deepEqual(order, ["early@3", "a", "b", "c", "d", "e"]);
  assert.throws(() => network.schedule(6, () => {}), /clock is already at 7 ms/);
  network.schedule(8, () => network.runUntil(9));
  assert.throws(() => network.runUntil(10), /inside an event/);
});

Deno.test("bad link settings are refused with the link's name", () => {
  const network = new Network({ seed: 1 });
  const path = network.addPath();
  assert.throws(() => path.forward.set({ lossPercent: 120 }), /path0 forward: lossPercent/);
  assert.throws(
    () => path.reverse.set({ rateBitsPerSecond: 0 }),
    /path0 reverse: rateBitsPerSecond/,
  );
  assert.throws(() => network.clientSend(3, new Uint8Array(1)), /no path 3/);
});

Deno.test("the recorder reports gaps, latency percentiles and stray payloads", () => {
  const recorder = new DeliveryRecorder(1);
  for (const [seq, atMs] of [[0, 10], [1, 11], [3, 40], [1, 41], [2, 42], [4, 50]]) {
    recorder.record(makeAppPayload(1, seq, 32), atMs);
  }
  recorder.record(makeAppPayload(2, 5, 32), 51);
  const corrupted = makeAppPayload(1, 6, 32);
  corrupted[APP_HEADER_BYTES + 3] ^= 1;
  recorder.record(corrupted, 52);
  recorder.record(new Uint8Array(3), 53);
  assert.equal(recorder.unique, 5);
  assert.equal(recorder.duplicates, 1);
  assert.equal(recorder.foreign, 1);
  assert.equal(recorder.malformed, 2);
  assert.equal(recorder.lossRatio(10), 0.5);
  assert.equal(recorder.longestGapMs(0, 60), 29);
  assert.equal(recorder.longestGapMs(12, 100), 50);
  const latency = recorder.latency((seq) => seq * 10); // latencies 10, 1, 22, 10, 10
  assert.deepEqual(latency, { count: 5, p50Ms: 10, p99Ms: 22, maxMs: 22 });
});
