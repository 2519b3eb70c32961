import assert from "node:assert/strict";
import type { HostPort } from "../../lib/base/address.ts";
import {
  decodeTrafficDatagram,
  encodeTrafficDatagram,
  formatSinkReport,
  formatStreamReport,
  hasTrafficPattern,
  runTrafficSink,
  runTrafficStream,
  runUdpEcho,
  type StreamReport,
  TRAFFIC_HEADER_BYTES,
} from "../../tools/traffic.ts";
import { MemoryNetwork } from "../../lib/io/memory_transport.ts";
import { bindUdp } from "../../lib/io/udp.ts";
import {
  type DatagramTransport,
  MAX_UDP_PAYLOAD_BYTES,
  type UdpAddress,
} from "../../lib/io/transport.ts";

const LOOPBACK: HostPort = { hostname: "127.0.0.1", port: 0 };
/** The tools measure on the in-memory network: no kernel buffer loses or reorders anything. */
const network = new MemoryNetwork();
/** A socket on the in-memory network's loopback. */
const bind = () => network.bind(LOOPBACK);

/** What the relay forwards for the client's `index`-th datagram (from 0): copies, in order. */
type ForwardPolicy = (datagram: Uint8Array, index: number) => Uint8Array[];

/** A relay in the middle: client → relay → target, with `forward` deciding what goes on. */
function startRelay(target: HostPort, forward: ForwardPolicy, open: () => DatagramTransport) {
  const front = open();
  const back = open();
  let client: UdpAddress | undefined;
  let index = 0;
  const pump = async (
    from: DatagramTransport,
    onDatagram: (datagram: Uint8Array, sender: UdpAddress) => Promise<void>,
  ) => {
    const buffer = new Uint8Array(MAX_UDP_PAYLOAD_BYTES);
    while (true) {
      let received: [Uint8Array, UdpAddress];
      try {
        received = await from.receive(buffer);
      } catch {
        return; // closed
      }
      await onDatagram(...received);
    }
  };
  const targetAddress = { transport: "udp" as const, ...target };
  const forwardLoop = pump(front, async (datagram, sender) => {
    client = sender;
    for (const copy of forward(datagram.slice(), index++)) await back.send(copy, targetAddress);
  });
  const replyLoop = pump(back, async (datagram) => {
    if (client !== undefined) await front.send(datagram.slice(), client);
  });
  return {
    address: { hostname: "127.0.0.1", port: front.localAddress.port },
    async close() {
      front.close();
      back.close();
      await Promise.all([forwardLoop, replyLoop]);
    },
  };
}

/** Runs a stream to an echo target through a relay with `forward`, and returns the report. */
async function streamThroughRelay(
  forward: ForwardPolicy,
  stream: { count: number; intervalMs: number; drainMs?: number },
  open: () => DatagramTransport = bind,
): Promise<StreamReport> {
  const echo = runUdpEcho({ listen: LOOPBACK, transport: open() });
  const relay = startRelay(echo.address, forward, open);
  try {
    return await runTrafficStream({
      transport: open(),
      target: relay.address,
      drainMs: 300,
      ...stream,
    });
  } finally {
    await relay.close();
    await echo.stop();
  }
}

Deno.test("a direct stream to the echo target loses nothing and sees no duplicates", async () => {
  const echo = runUdpEcho({ listen: LOOPBACK, transport: bind() });
  try {
    const report = await runTrafficStream({
      transport: bind(),
      target: echo.address,
      count: 200,
      intervalMs: 1,
      sizeBytes: 200,
      streamId: 7,
    });
    assert.equal(report.phase, "done");
    assert.equal(report.streamId, 7);
    assert.equal(report.sent, 200);
    assert.equal(report.received, 200);
    assert.equal(report.lost, 0);
    assert.equal(report.lossRatio, 0);
    assert.equal(report.duplicates, 0);
    assert.equal(report.corrupted, 0);
    assert.equal(report.foreign, 0);
    assert.equal(report.sendErrors, 0);
    assert.ok(report.rttP50Ms !== undefined && report.rttP50Ms > 0);
    assert.ok(report.rttP99Ms !== undefined && report.rttP99Ms >= report.rttP50Ms);
    assert.ok(report.rttMaxMs !== undefined && report.rttMaxMs >= report.rttP99Ms);
    assert.equal(echo.counters.datagrams, 200);
    assert.equal(echo.counters.bytes, 200 * 200);
    assert.equal(echo.counters.senders, 1);
  } finally {
    await echo.stop();
  }
});

Deno.test("a relay dropping every fifth datagram shows as exactly 20 % loss", async () => {
  const report = await streamThroughRelay(
    (datagram, index) => (index % 5 === 4 ? [] : [datagram]),
    { count: 100, intervalMs: 1 },
  );
  assert.equal(report.sent, 100);
  assert.equal(report.received, 80);
  assert.equal(report.lost, 20);
  assert.equal(report.lossRatio, 0.2);
  assert.equal(report.duplicates, 0);
});

Deno.test("a relay duplicating every datagram shows duplicates and no loss", async () => {
  const report = await streamThroughRelay(
    (datagram) => [datagram, datagram.slice()],
    { count: 100, intervalMs: 1 },
    // Real sockets: the stream stops draining once every datagram is back, and on the in-memory
    // network that happens a few microtasks before the last duplicate gets there.
    () => bindUdp(LOOPBACK),
  );
  assert.equal(report.received, 100);
  assert.equal(report.lost, 0);
  assert.equal(report.duplicates, 100);
  assert.equal(report.outOfOrder, 0);
});

Deno.test("a relay swapping datagrams in pairs shows them out of order", async () => {
  let held: Uint8Array | undefined;
  const report = await streamThroughRelay((datagram, index) => {
    if (index % 2 === 0) {
      held = datagram;
      return [];
    }
    const pair = [datagram, held!];
    held = undefined;
    return pair;
  }, { count: 100, intervalMs: 1 });
  assert.equal(report.received, 100);
  assert.equal(report.outOfOrder, 50);
  assert.equal(report.lost, 0);
});

Deno.test("damaged and foreign echoes are counted apart and never as received", async () => {
  const report = await streamThroughRelay((datagram, index) => {
    if (index % 10 !== 9) return [datagram];
    const damaged = datagram.slice();
    damaged[damaged.length - 1] ^= 0x01;
    return [damaged, new TextEncoder().encode("not a traffic datagram")];
  }, { count: 100, intervalMs: 1 });
  assert.equal(report.received, 90);
  assert.equal(report.corrupted, 10);
  assert.equal(report.foreign, 10);
  assert.equal(report.lost, 10);
});

Deno.test("measures the silence across a pause in the relay", async () => {
  const pauseMs = 300;
  let pauseEndsAt: number | undefined;
  const report = await streamThroughRelay((datagram, index) => {
    if (index === 50) pauseEndsAt = performance.now() + pauseMs;
    if (pauseEndsAt !== undefined && performance.now() < pauseEndsAt) return [];
    return [datagram];
  }, { count: 300, intervalMs: 2 });
  assert.ok(report.lost > 0);
  // Nothing crossed the relay for pauseMs, so the echoes stopped at least that long.
  assert.ok(report.longestSilenceMs >= pauseMs, `silence ${report.longestSilenceMs} ms`);
  assert.ok(report.longestSilenceMs < pauseMs + 200, `silence ${report.longestSilenceMs} ms`);
  // It began with the echo of datagram 49, about 49 intervals after the first send.
  assert.ok(report.longestSilenceAtMs !== undefined);
  assert.ok(report.longestSilenceAtMs >= 49 * 2 - 5, `at ${report.longestSilenceAtMs} ms`);
});

Deno.test("a silence lasting to the end of sending counts until the last send", async () => {
  const report = await streamThroughRelay(
    (datagram, index) => (index < 20 ? [datagram] : []),
    { count: 120, intervalMs: 2, drainMs: 100 },
  );
  assert.equal(report.received, 20);
  // From the echo of datagram 19 to the send of datagram 119: about 100 intervals.
  assert.ok(report.longestSilenceMs >= 100 * 2 - 10, `silence ${report.longestSilenceMs} ms`);
  assert.ok(report.longestSilenceMs <= report.sendingMs);
});

Deno.test("sub-millisecond intervals keep the average rate by sending in bursts", async () => {
  const echo = runUdpEcho({ listen: LOOPBACK, transport: bind() });
  try {
    const report = await runTrafficStream({
      transport: bind(),
      target: echo.address,
      ratePps: 5000,
      count: 500,
    });
    assert.equal(report.intervalMs, 0.2);
    assert.equal(report.sent, 500);
    assert.equal(report.received, 500);
    // Datagram i is never sent before i intervals have passed.
    assert.ok(report.sendingMs >= 499 * 0.2, `sent in ${report.sendingMs} ms`);
  } finally {
    await echo.stop();
  }
});

Deno.test("a duration stops the stream after that many intervals", async () => {
  const echo = runUdpEcho({ listen: LOOPBACK, transport: bind() });
  try {
    const report = await runTrafficStream({
      transport: bind(),
      target: echo.address,
      durationMs: 100,
      intervalMs: 5,
    });
    assert.equal(report.sent, 20);
    assert.equal(report.received, 20);
  } finally {
    await echo.stop();
  }
});

Deno.test("an abort signal stops an open-ended stream", async () => {
  const echo = runUdpEcho({ listen: LOOPBACK, transport: bind() });
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 100);
  try {
    const report = await runTrafficStream({
      transport: bind(),
      target: echo.address,
      intervalMs: 5,
      signal: controller.signal,
    });
    assert.ok(report.sent > 0 && report.sent < 100, `sent ${report.sent}`);
    assert.equal(report.received, report.sent);
  } finally {
    clearTimeout(timer);
    await echo.stop();
  }
});

Deno.test("the progress callback sees the running figures", async () => {
  const echo = runUdpEcho({ listen: LOOPBACK, transport: bind() });
  const progress: StreamReport[] = [];
  try {
    const report = await runTrafficStream({
      transport: bind(),
      target: echo.address,
      count: 60,
      intervalMs: 5,
      progressIntervalMs: 50,
      onProgress: (figures) => progress.push(figures),
    });
    assert.ok(progress.length >= 2, `${progress.length} progress calls`);
    assert.equal(progress[0].phase, "sending");
    for (let index = 1; index < progress.length; index++) {
      assert.ok(progress[index].sent >= progress[index - 1].sent);
    }
    assert.ok(progress.at(-1)!.sent <= report.sent);
  } finally {
    await echo.stop();
  }
});

Deno.test("the sink measures one direction alone and counts foreign datagrams", async () => {
  const sink = runTrafficSink({ listen: LOOPBACK, transport: bind() });
  const stranger = bind();
  try {
    await stranger.send(new Uint8Array([1, 2, 3]), sink.address);
    const sent = await runTrafficStream({
      transport: bind(),
      target: sink.address,
      count: 100,
      intervalMs: 1,
      drainMs: 0,
      streamId: 42,
    });
    assert.equal(sent.received, 0);
    assert.equal(await sink.waitForReceived(100, 2000, 42), true);
    const stream = sink.stream(42);
    assert.ok(stream !== undefined);
    assert.equal(stream.received, 100);
    assert.equal(stream.duplicates, 0);
    assert.equal(stream.missing, 0);
    assert.equal(stream.highestSequence, 99);
    assert.equal(sink.report().foreign, 1);
  } finally {
    stranger.close();
    await sink.stop();
  }
});

Deno.test("the sink counts duplicates, corruption and gaps below the highest number", async () => {
  const sink = runTrafficSink({ listen: LOOPBACK, transport: bind() });
  const sender = bind();
  try {
    const datagram = (sequence: number) => {
      const bytes = new Uint8Array(48);
      encodeTrafficDatagram(bytes, { streamId: 5, sequence, sentAtMs: performance.now() });
      return bytes;
    };
    const damaged = datagram(7);
    damaged[30] ^= 0xff;
    for (const bytes of [datagram(0), datagram(3), datagram(3), datagram(1), damaged]) {
      await sender.send(bytes, sink.address);
    }
    assert.equal(await sink.waitForReceived(3, 2000), true);
    const report = await sink.stop();
    assert.equal(report.streams.length, 1);
    const [stream] = report.streams;
    assert.equal(stream.streamId, 5);
    assert.equal(stream.received, 3);
    assert.equal(stream.duplicates, 1);
    assert.equal(stream.outOfOrder, 1);
    assert.equal(stream.missing, 1);
    // The damaged datagram may still be in flight when the sink stops; it is never received.
    assert.ok(stream.corrupted <= 1);
  } finally {
    sender.close();
    await sink.stop();
  }
});

Deno.test("waitForReceived gives false after its timeout", async () => {
  const sink = runTrafficSink({ listen: LOOPBACK, transport: bind() });
  try {
    assert.equal(await sink.waitForReceived(1, 20), false);
  } finally {
    await sink.stop();
  }
});

Deno.test("a traffic datagram round-trips and any damaged byte shows", () => {
  const bytes = new Uint8Array(100);
  const header = { streamId: 0xdeadbeef, sequence: 2 ** 40 + 17, sentAtMs: 1234.5 };
  encodeTrafficDatagram(bytes, header);
  assert.deepEqual(decodeTrafficDatagram(bytes), header);
  assert.equal(hasTrafficPattern(bytes), true);
  for (let index = 4; index < bytes.length; index++) {
    const damaged = bytes.slice();
    damaged[index] ^= 0x10;
    const decoded = decodeTrafficDatagram(damaged);
    assert.ok(
      decoded === undefined || !hasTrafficPattern(damaged),
      `damage at byte ${index} went unseen`,
    );
  }
});

Deno.test("decoding refuses short datagrams and wrong magic without throwing", () => {
  assert.equal(decodeTrafficDatagram(new Uint8Array(0)), undefined);
  assert.equal(decodeTrafficDatagram(new Uint8Array(TRAFFIC_HEADER_BYTES - 1)), undefined);
  assert.equal(decodeTrafficDatagram(new Uint8Array(TRAFFIC_HEADER_BYTES)), undefined);
  assert.throws(() =>
    encodeTrafficDatagram(new Uint8Array(10), {
      streamId: 1,
      sequence: 0,
      sentAtMs: 0,
    }), RangeError);
});

Deno.test("refuses sizes below the header and streams that would never stop", async () => {
  const target = { hostname: "127.0.0.1", port: 9 };
  await assert.rejects(runTrafficStream({ target, sizeBytes: 23, count: 1 }), RangeError);
  await assert.rejects(runTrafficStream({ target, intervalMs: 1 }), RangeError);
  await assert.rejects(
    runTrafficStream({ target, intervalMs: 1, ratePps: 10, count: 1 }),
    RangeError,
  );
});

Deno.test("the formatters render aligned lines", () => {
  const report: StreamReport = {
    streamId: 0xab,
    target: "127.0.0.1:5000",
    sizeBytes: 64,
    intervalMs: 1,
    phase: "done",
    elapsedMs: 1200,
    sendingMs: 999,
    sent: 1000,
    received: 990,
    duplicates: 2,
    corrupted: 0,
    outOfOrder: 1,
    foreign: 0,
    sendErrors: 0,
    lost: 10,
    lossRatio: 0.01,
    rttP50Ms: 0.25,
    rttP99Ms: 1.5,
    rttMaxMs: 3,
    longestSilenceMs: 12.5,
    longestSilenceAtMs: 500,
    currentSilenceMs: 0,
  };
  const lines = formatStreamReport(report);
  assert.deepEqual(lines, [
    "stream    000000ab → 127.0.0.1:5000",
    "sent      1000 × 64 bytes in 1.00 s (1000 pps)",
    "received  990 (2 duplicates, 0 corrupted, 1 out of order, 0 foreign)",
    "lost      10 (1.00 %)",
    "rtt       p50 0.250 ms, p99 1.50 ms, max 3.00 ms",
    "silence   longest 12.5 ms from 0.50 s",
  ]);
  const sinkLines = formatSinkReport({
    address: "127.0.0.1:6000",
    foreign: 1,
    streams: [{
      streamId: 1,
      received: 5,
      duplicates: 0,
      corrupted: 0,
      outOfOrder: 0,
      highestSequence: 5,
      missing: 1,
      longestSilenceMs: 3,
      longestSilenceAtMs: 1,
      sinceLastMs: 10,
    }],
  });
  assert.equal(sinkLines[0], "sink 127.0.0.1:6000: 1 streams, 1 foreign");
  assert.equal(sinkLines[2], "  received  5 (0 duplicates, 0 corrupted, 0 out of order)");
});
