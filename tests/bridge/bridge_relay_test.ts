/**
 * The bridge's relay on the in-memory network: mappings, impairments, expiry, re-resolution.
 */
import assert from "node:assert/strict";
import { lookup } from "node:dns/promises";
import type { HostPort } from "../../lib/base/address.ts";
import { type Bridge, type BridgeOptions, startBridge } from "../../lib/bridge/bridge_relay.ts";
import { createImpairment } from "../../lib/bridge/impairment.ts";
import { recordingLogger } from "../../lib/base/log.ts";
import { seededRandom } from "../../lib/base/rng.ts";
import { MemoryNetwork } from "../../lib/io/memory_transport.ts";
import type { DatagramTransport, UdpAddress } from "../../lib/io/transport.ts";

const LOOPBACK: HostPort = { hostname: "127.0.0.1", port: 0 };
const WAIT_LIMIT_MS = 3000;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Receives on a socket in the background, keeping every datagram; optionally echoes them back. */
class Collector {
  readonly received: { text: string; from: UdpAddress }[] = [];
  readonly socket: DatagramTransport;
  readonly #loop: Promise<void>;

  constructor(socket: DatagramTransport, echo = false) {
    this.socket = socket;
    this.#loop = this.#run(echo);
  }

  get address(): UdpAddress {
    return this.socket.localAddress;
  }

  async #run(echo: boolean): Promise<void> {
    const buffer = new Uint8Array(65536);
    for (;;) {
      let datagram: Uint8Array;
      let from: UdpAddress;
      try {
        [datagram, from] = await this.socket.receive(buffer);
      } catch {
        return;
      }
      this.received.push({ text: decoder.decode(datagram), from });
      if (echo) await this.socket.send(datagram, from);
    }
  }

  send(text: string, to: UdpAddress): Promise<number> {
    return this.socket.send(encoder.encode(text), to);
  }

  async close(): Promise<void> {
    this.socket.close();
    await this.#loop;
  }
}

/** Polls until `condition` holds, failing after a few seconds with `what`. */
async function waitUntil(what: string, condition: () => boolean): Promise<void> {
  const deadline = performance.now() + WAIT_LIMIT_MS;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Runs `body` with an echo server, a bridge to it and the given clients, closing all afterwards. */
async function withBridge(
  options: Partial<BridgeOptions> & {
    clientCount?: number;
    host?: HostPort;
    network?: MemoryNetwork;
  },
  body: (bridge: Bridge, server: Collector, clients: Collector[]) => Promise<void>,
): Promise<void> {
  const host = options.host ?? LOOPBACK;
  const network = options.network ?? new MemoryNetwork();
  const server = new Collector(network.bind(host), true);
  const clients: Collector[] = [];
  let bridge: Bridge | undefined;
  try {
    bridge = await startBridge({
      listen: host,
      server: { hostname: host.hostname, port: server.address.port },
      seed: 1,
      bind: network.bind,
      ...options,
    });
    for (let index = 0; index < (options.clientCount ?? 1); index++) {
      clients.push(new Collector(network.bind(host)));
    }
    await body(bridge, server, clients);
  } finally {
    await bridge?.stop();
    for (const client of clients) await client.close();
    await server.close();
  }
}

Deno.test("two clients each get their own replies through their own upstream port", async () => {
  await withBridge({ clientCount: 2 }, async (bridge, server, [alice, bob]) => {
    await alice.send("from alice", bridge.listenAddress);
    await bob.send("from bob", bridge.listenAddress);
    await waitUntil("both replies", () => alice.received.length + bob.received.length === 2);
    assert.deepEqual(alice.received.map((datagram) => datagram.text), ["from alice"]);
    assert.deepEqual(bob.received.map((datagram) => datagram.text), ["from bob"]);
    assert.equal(alice.received[0].from.port, bridge.listenAddress.port);
    const upstreamPorts = new Set(server.received.map((datagram) => datagram.from.port));
    assert.equal(upstreamPorts.size, 2);
    assert.ok(!upstreamPorts.has(bridge.listenAddress.port));

    await alice.send("again", bridge.listenAddress);
    await waitUntil("the second reply", () => alice.received.length === 2);
    const portsAfter = new Set(server.received.map((datagram) => datagram.from.port));
    assert.deepEqual(portsAfter, upstreamPorts, "a known client reuses its mapping");
    const stats = bridge.stats();
    assert.equal(stats.mappingsOpened, 2);
    assert.equal(stats.mappingsActive, 2);
    assert.equal(stats.upstream.datagramsIn, 3);
    assert.equal(stats.upstream.datagramsOut, 3);
    assert.equal(stats.upstream.bytesOut, "from alice".length + "from bob".length + 5);
    assert.equal(stats.downstream.datagramsOut, 3);
  });
});

Deno.test("an idle mapping expires and its socket closes", async () => {
  await withBridge({ idleTimeoutMs: 200 }, async (bridge, server, [client]) => {
    await client.send("one", bridge.listenAddress);
    await waitUntil("the reply", () => client.received.length === 1);
    assert.equal(bridge.stats().mappingsActive, 1);
    await waitUntil("expiry", () => bridge.stats().mappingsExpired === 1);
    assert.equal(bridge.stats().mappingsActive, 0);

    await client.send("two", bridge.listenAddress);
    await waitUntil("the reply through a new mapping", () => client.received.length === 2);
    const [first, second] = server.received.map((datagram) => datagram.from.port);
    assert.notEqual(first, second, "the expired mapping's port is not reused by the bridge");
    assert.equal(bridge.stats().mappingsOpened, 2);
  });
});

Deno.test("loss drops the share the seed predicts in each direction", async () => {
  const seed = 7;
  const lossPercent = 30;
  const count = 400;
  const predictLosses = (directionSeed: number, datagrams: number) => {
    const impairment = createImpairment({ lossPercent }, seededRandom(directionSeed));
    let losses = 0;
    for (let index = 0; index < datagrams; index++) {
      if (impairment.decide(index, 10).action === "drop") losses++;
    }
    return losses;
  };
  await withBridge({ seed, impairment: { lossPercent } }, async (bridge, server, [client]) => {
    // Batches keep the sockets' receive queues from overflowing, so every loss is the bridge's.
    for (let sent = 0; sent < count; sent += 50) {
      for (let index = sent; index < sent + 50; index++) {
        await client.send(`datagram ${index}`, bridge.listenAddress);
      }
      await waitUntil("the bridge to read the batch", () => {
        return bridge.stats().upstream.datagramsIn === sent + 50;
      });
    }
    const upstreamLosses = predictLosses(seed, count);
    await waitUntil("the server to get the survivors", () => {
      return server.received.length === count - upstreamLosses;
    });
    const downstreamLosses = predictLosses(seed + 1, count - upstreamLosses);
    await waitUntil("the client to get the echoes", () => {
      return client.received.length === count - upstreamLosses - downstreamLosses;
    });
    const stats = bridge.stats();
    assert.equal(stats.upstream.dropped.loss, upstreamLosses, `seed ${seed}`);
    assert.equal(stats.downstream.dropped.loss, downstreamLosses, `seed ${seed}`);
    assert.ok(Math.abs(upstreamLosses / count - 0.3) < 0.08, `${upstreamLosses} of ${count} lost`);
  });
});

Deno.test("a datagram to an upstream socket from another address is dropped", async () => {
  const network = new MemoryNetwork();
  const stranger = new Collector(network.bind(LOOPBACK));
  try {
    await withBridge({ network }, async (bridge, server, [client]) => {
      await client.send("hello", bridge.listenAddress);
      await waitUntil("the reply", () => client.received.length === 1);
      const upstreamPort = server.received[0].from.port;
      await stranger.send("spoofed", { ...LOOPBACK, transport: "udp", port: upstreamPort });
      await waitUntil("the drop", () => bridge.stats().downstream.dropped["not-from-server"] === 1);
      await client.send("after", bridge.listenAddress);
      await waitUntil("the next reply", () => client.received.length === 2);
      assert.deepEqual(client.received.map((datagram) => datagram.text), ["hello", "after"]);
      assert.equal(bridge.stats().downstream.datagramsIn, 3);
      assert.equal(bridge.stats().downstream.datagramsOut, 2);
    });
  } finally {
    await stranger.close();
  }
});

Deno.test("clients beyond the mapping cap are dropped and counted", async () => {
  const logger = recordingLogger();
  await withBridge(
    { clientCount: 2, maxMappings: 1, logger },
    async (bridge, _, [first, second]) => {
      await first.send("first", bridge.listenAddress);
      await waitUntil("the first reply", () => first.received.length === 1);
      await second.send("second", bridge.listenAddress);
      await second.send("second again", bridge.listenAddress);
      await waitUntil("the drops", () => bridge.stats().upstream.dropped["mapping-limit"] === 2);
      assert.equal(second.received.length, 0);
      assert.equal(bridge.stats().mappingsActive, 1);
      assert.equal(logger.records.filter((record) => record.level === "warning").length, 1);
    },
  );
});

Deno.test("delay holds datagrams back in both directions and keeps their order", async () => {
  await withBridge({ impairment: { delayMs: 50 } }, async (bridge, _, [client]) => {
    const sentAtMs = performance.now();
    for (let index = 0; index < 20; index++) await client.send(`${index}`, bridge.listenAddress);
    assert.equal(client.received.length, 0);
    await waitUntil("the replies", () => client.received.length === 20);
    assert.ok(performance.now() - sentAtMs >= 95, "two 50 ms delays");
    const expected = Array.from({ length: 20 }, (_, index) => `${index}`);
    assert.deepEqual(client.received.map((datagram) => datagram.text), expected);
  });
});

Deno.test("a rate limit tail-drops a burst beyond its queue", async () => {
  // 80 kbit/s: a 100-byte datagram takes 10 ms, so a 100 ms queue holds 11 of a burst of 30.
  const impairment = { rateBitsPerSecond: 80_000 };
  await withBridge({ impairment }, async (bridge, server, [client]) => {
    const payload = "x".repeat(100);
    for (let index = 0; index < 30; index++) await client.send(payload, bridge.listenAddress);
    await waitUntil("the burst", () => bridge.stats().upstream.datagramsIn === 30);
    const dropped = bridge.stats().upstream.dropped["queue-full"];
    assert.ok(dropped >= 10 && dropped <= 19, `dropped ${dropped} of the burst`);
    await waitUntil("the survivors", () => server.received.length === 30 - dropped);
    await waitUntil("their echoes", () => client.received.length === 30 - dropped);
    assert.equal(bridge.stats().downstream.dropped["queue-full"], 0);
  });
});

Deno.test("stopping twice is harmless and discards queued datagrams", async () => {
  await withBridge({ impairment: { delayMs: 1000 } }, async (bridge, server, [client]) => {
    await client.send("never delivered", bridge.listenAddress);
    await waitUntil("queueing", () => bridge.stats().datagramsQueued === 1);
    await Promise.all([bridge.stop(), bridge.stop()]);
    await bridge.finished;
    assert.equal(bridge.stats().datagramsQueued, 0);
    assert.equal(server.received.length, 0);
  });
});

Deno.test("stopping in the middle of traffic ends every loop", async () => {
  await withBridge({ clientCount: 3, impairment: { jitterMs: 3 } }, async (bridge, _, clients) => {
    for (let index = 0; index < 100; index++) {
      for (const client of clients) await client.send(`${index}`, bridge.listenAddress);
      if (index === 60) void bridge.stop();
    }
    await bridge.finished;
    assert.ok(bridge.stats().upstream.datagramsIn <= 300);
    assert.equal(bridge.stats().mappingsActive, 0);
  });
});

Deno.test("a server given as localhost is resolved at start", async () => {
  const { address } = await lookup("localhost");
  const network = new MemoryNetwork();
  const server = new Collector(network.bind({ hostname: address, port: 0 }), true);
  const client = new Collector(network.bind({ hostname: address, port: 0 }));
  const bridge = await startBridge({
    listen: { hostname: address, port: 0 },
    server: { hostname: "localhost", port: server.address.port },
    seed: 1,
    bind: network.bind,
  });
  try {
    assert.equal(bridge.serverAddress.hostname, address);
    await client.send("ping", bridge.listenAddress);
    await waitUntil("the reply", () => client.received.length === 1);
  } finally {
    await bridge.stop();
    await client.close();
    await server.close();
  }
});

Deno.test("an unresolvable server name stops the start with a clear error", async () => {
  await assert.rejects(
    startBridge({
      listen: LOOPBACK,
      server: { hostname: "nowhere.invalid", port: 9 },
      seed: 1,
      bind: new MemoryNetwork().bind,
      resolveHost: () => Promise.reject(new Error("no such host")),
    }),
    { name: "BridgeStartError", message: /cannot resolve server host "nowhere.invalid"/ },
  );
});

const SECOND_LOOPBACK = "127.0.0.2";

Deno.test({
  name: "a silent server's name is looked up again and the new address used",
  fn: async () => {
    const network = new MemoryNetwork();
    const oldServer = new Collector(network.bind(LOOPBACK)); // Receives but never answers.
    const port = oldServer.address.port;
    let newServer: Collector | undefined;
    let client: Collector | undefined;
    let bridge: Bridge | undefined;
    let answer = "127.0.0.1";
    const logger = recordingLogger();
    try {
      newServer = new Collector(network.bind({ hostname: SECOND_LOOPBACK, port }), true);
      client = new Collector(network.bind(LOOPBACK));
      bridge = await startBridge({
        listen: LOOPBACK,
        server: { hostname: "server.test", port },
        seed: 1,
        idleTimeoutMs: 400,
        reresolveAfterMs: 100,
        bind: network.bind,
        resolveHost: () => Promise.resolve(answer),
        logger,
      });
      answer = SECOND_LOOPBACK;
      const deadline = performance.now() + WAIT_LIMIT_MS;
      while (client.received.length === 0) {
        assert.ok(
          performance.now() < deadline,
          "timed out waiting for a reply from the new address",
        );
        await client.send("anyone?", bridge.listenAddress);
        await sleep(20);
      }
      assert.equal(bridge.serverAddress.hostname, SECOND_LOOPBACK);
      assert.ok(oldServer.received.length > 0);
      assert.ok(logger.records.some((record) => record.message === "Server address changed."));
    } finally {
      await bridge?.stop();
      await client?.close();
      await newServer?.close();
      await oldServer.close();
    }
  },
});

Deno.test({
  name: "relays over IPv6 on ::1",
  fn: async () => {
    const host = { hostname: "::1", port: 0 };
    await withBridge({ host, clientCount: 2 }, async (bridge, server, [alice, bob]) => {
      assert.equal(bridge.listenAddress.hostname, "::1");
      await alice.send("v6 alice", bridge.listenAddress);
      await bob.send("v6 bob", bridge.listenAddress);
      await waitUntil("both replies", () => alice.received.length + bob.received.length === 2);
      assert.deepEqual(alice.received.map((datagram) => datagram.text), ["v6 alice"]);
      assert.deepEqual(bob.received.map((datagram) => datagram.text), ["v6 bob"]);
      assert.ok(server.received.every((datagram) => datagram.from.hostname === "::1"));
      assert.equal(new Set(server.received.map((datagram) => datagram.from.port)).size, 2);
    });
  },
});
