import assert from "node:assert/strict";
import { MemoryNetwork } from "../../lib/io/memory_transport.ts";
import type { UdpAddress } from "../../lib/io/transport.ts";

const LOOPBACK = { hostname: "127.0.0.1", port: 0 };

function to(hostname: string, port: number): UdpAddress {
  return { transport: "udp", hostname, port };
}

Deno.test("bind with port 0 gives each socket a port of its own on its address", () => {
  const network = new MemoryNetwork();
  const sockets = [network.bind(LOOPBACK), network.bind(LOOPBACK), network.bind(LOOPBACK)];
  try {
    assert.deepEqual(sockets.map((socket) => socket.localAddress.hostname), [
      "127.0.0.1",
      "127.0.0.1",
      "127.0.0.1",
    ]);
    assert.equal(new Set(sockets.map((socket) => socket.localAddress.port)).size, 3);
    assert.ok(sockets.every((socket) => socket.localAddress.port > 0));
    assert.equal(network.boundCount, 3);
  } finally {
    for (const socket of sockets) socket.close();
  }
  assert.equal(network.boundCount, 0);
});

Deno.test("binding a taken address and port throws AddrInUse, also through the wildcard", () => {
  const network = new MemoryNetwork();
  const first = network.bind({ hostname: "127.0.0.1", port: 4000 });
  const wildcard = network.bind({ hostname: "0.0.0.0", port: 5000 });
  try {
    assert.throws(() => network.bind({ hostname: "127.0.0.1", port: 4000 }), Deno.errors.AddrInUse);
    assert.throws(() => network.bind({ hostname: "0.0.0.0", port: 4000 }), Deno.errors.AddrInUse);
    assert.throws(() => network.bind({ hostname: "127.0.0.1", port: 5000 }), Deno.errors.AddrInUse);
    const other = network.bind({ hostname: "127.0.0.2", port: 4000 });
    other.close();
  } finally {
    first.close();
    wildcard.close();
  }
  network.bind({ hostname: "127.0.0.1", port: 4000 }).close(); // free again once closed
});

Deno.test("send delivers a copy to the socket bound at the destination, with the sender's address", async () => {
  const network = new MemoryNetwork();
  const a = network.bind(LOOPBACK);
  const b = network.bind(LOOPBACK);
  try {
    const datagram = new Uint8Array([1, 2, 3, 4]);
    assert.equal(await a.send(datagram, b.localAddress), 4);
    datagram[0] = 99; // the datagram left at send time
    const buffer = new Uint8Array(64);
    const [received, from] = await b.receive(buffer);
    assert.deepEqual([...received], [1, 2, 3, 4]);
    assert.equal(received.buffer, buffer.buffer);
    assert.deepEqual(from, a.localAddress);
  } finally {
    a.close();
    b.close();
  }
});

Deno.test("a pending receive gets the next datagram; datagrams queue in order", async () => {
  const network = new MemoryNetwork();
  const a = network.bind(LOOPBACK);
  const b = network.bind(LOOPBACK);
  try {
    const pending = b.receive(new Uint8Array(16));
    await a.send(new Uint8Array([7]), b.localAddress);
    assert.deepEqual([...(await pending)[0]], [7]);
    for (const value of [1, 2, 3]) await a.send(new Uint8Array([value]), b.localAddress);
    const values: number[] = [];
    for (let index = 0; index < 3; index++) {
      values.push((await b.receive(new Uint8Array(16)))[0][0]);
    }
    assert.deepEqual(values, [1, 2, 3]);
  } finally {
    a.close();
    b.close();
  }
});

Deno.test("a datagram larger than the receive buffer is cut to fit", async () => {
  const network = new MemoryNetwork();
  const a = network.bind(LOOPBACK);
  const b = network.bind(LOOPBACK);
  try {
    await a.send(new Uint8Array(10).fill(5), b.localAddress);
    const [received] = await b.receive(new Uint8Array(4));
    assert.deepEqual([...received], [5, 5, 5, 5]);
  } finally {
    a.close();
    b.close();
  }
});

Deno.test("send to an address nobody is bound at is dropped silently and counted", async () => {
  const network = new MemoryNetwork();
  const a = network.bind(LOOPBACK);
  try {
    assert.equal(await a.send(new Uint8Array(3), to("127.0.0.1", 9)), 3);
    assert.equal(network.dropped, 1);
  } finally {
    a.close();
  }
});

Deno.test("a full queue drops new datagrams", async () => {
  const network = new MemoryNetwork({ queueDatagrams: 2 });
  const a = network.bind(LOOPBACK);
  const b = network.bind(LOOPBACK);
  try {
    for (const value of [1, 2, 3]) await a.send(new Uint8Array([value]), b.localAddress);
    assert.equal(network.dropped, 1);
    assert.equal((await b.receive(new Uint8Array(4)))[0][0], 1);
    assert.equal((await b.receive(new Uint8Array(4)))[0][0], 2);
  } finally {
    a.close();
    b.close();
  }
});

Deno.test("a wildcard socket receives for its port and sends from the destination's address", async () => {
  const network = new MemoryNetwork();
  const wildcard = network.bind({ hostname: "0.0.0.0", port: 0 });
  const peer = network.bind(LOOPBACK);
  const v6Wildcard = network.bind({ hostname: "::", port: 0 });
  const v6Peer = network.bind({ hostname: "::1", port: 0 });
  try {
    await wildcard.send(new Uint8Array([1]), peer.localAddress);
    const [, from] = await peer.receive(new Uint8Array(4));
    assert.deepEqual(from, to("127.0.0.1", wildcard.localAddress.port));
    await peer.send(new Uint8Array([2]), from);
    assert.deepEqual((await wildcard.receive(new Uint8Array(4)))[1], peer.localAddress);
    await v6Wildcard.send(new Uint8Array([3]), v6Peer.localAddress);
    const [, v6From] = await v6Peer.receive(new Uint8Array(4));
    assert.deepEqual(v6From, to("::1", v6Wildcard.localAddress.port));
  } finally {
    for (const socket of [wildcard, peer, v6Wildcard, v6Peer]) socket.close();
  }
});

Deno.test("close rejects a pending receive, and later receives and sends, with BadResource", async () => {
  const network = new MemoryNetwork();
  const a = network.bind(LOOPBACK);
  const b = network.bind(LOOPBACK);
  const pending = a.receive(new Uint8Array(4));
  a.close();
  a.close(); // twice is harmless
  await assert.rejects(pending, Deno.errors.BadResource);
  await assert.rejects(a.receive(new Uint8Array(4)), Deno.errors.BadResource);
  await assert.rejects(a.send(new Uint8Array(1), b.localAddress), Deno.errors.BadResource);
  await b.send(new Uint8Array(1), a.localAddress);
  assert.equal(network.dropped, 1, "nobody is bound at a closed socket's address");
  b.close();
});
