import assert from "node:assert/strict";
import { BATCH_DATAGRAMS, batchedUdpUnavailable, bindBatchedUdp } from "../../lib/io/udp_batch.ts";
import {
  bindDenoUdp,
  bindUdp,
  classifySendError,
  resetUdpIo,
  UDP_IO_ENV_VAR,
  udpIo,
} from "../../lib/io/udp.ts";
import {
  type DatagramTransport,
  MAX_UDP_PAYLOAD_BYTES,
  type UdpAddress,
} from "../../lib/io/transport.ts";

const UDP_MODULE_URL = new URL("../../lib/io/udp.ts", import.meta.url).href;

const unavailable = batchedUdpUnavailable();
const ignore = unavailable !== undefined;
if (ignore) console.warn(`batched UDP tests skipped: ${unavailable}`);

function ipv6Loopback(): boolean {
  try {
    Deno.listenDatagram({ transport: "udp", hostname: "::1", port: 0 }).close();
    return true;
  } catch {
    return false;
  }
}

/** Binds `count` batched sockets on `hostname`, runs `body`, and closes them whatever happens. */
async function withSockets(
  hostname: string,
  count: number,
  body: (...sockets: DatagramTransport[]) => Promise<void>,
): Promise<void> {
  const sockets: DatagramTransport[] = [];
  try {
    for (let index = 0; index < count; index++) sockets.push(bindBatchedUdp({ hostname, port: 0 }));
    await body(...sockets);
  } finally {
    for (const socket of sockets) socket.close();
  }
}

/** The next datagram, or a failure (not a hang) when none comes within `timeoutMs`. */
async function receiveWithin(
  socket: DatagramTransport,
  buffer: Uint8Array,
  timeoutMs = 2000,
): Promise<[Uint8Array, UdpAddress]> {
  const receiving = socket.receive(buffer);
  receiving.catch(() => {}); // rejected at close when the timeout won
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`nothing received within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([receiving, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function hostPort(address: UdpAddress): string {
  return `${address.hostname} ${address.port}`;
}

function bytes(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

for (const hostname of ["127.0.0.1", "::1"]) {
  Deno.test({
    name: `carries a datagram both ways over ${hostname}, with the sender's address`,
    ignore: ignore || (hostname === "::1" && !ipv6Loopback()),
    fn: () =>
      withSockets(hostname, 2, async (a, b) => {
        assert.equal(a.localAddress.hostname, hostname);
        assert.notEqual(a.localAddress.port, 0);
        const buffer = new Uint8Array(2048);
        assert.equal(await a.send(bytes("ping"), b.localAddress), 4);
        const [datagram, from] = await b.receive(buffer);
        assert.equal(new TextDecoder().decode(datagram), "ping");
        assert.equal(datagram.buffer, buffer.buffer); // a view of the caller's buffer
        assert.deepEqual(hostPort(from), hostPort(a.localAddress));
        await b.send(bytes("pong"), from);
        const [reply, replyFrom] = await a.receive(buffer);
        assert.equal(new TextDecoder().decode(reply), "pong");
        assert.deepEqual(hostPort(replyFrom), hostPort(b.localAddress));
      }),
  });
}

Deno.test({
  name: "delivers a burst of 1000 datagrams intact and in order, one address object per peer",
  ignore,
  fn: () =>
    withSockets("127.0.0.1", 2, async (sender, receiver) => {
      const count = 1000;
      const sizeBytes = 1200;
      const payloads = new Uint8Array(count * sizeBytes);
      for (let index = 0; index < count; index++) {
        const view = new DataView(payloads.buffer, index * sizeBytes, sizeBytes);
        view.setUint32(0, index);
        for (let at = 4; at < sizeBytes; at++) view.setUint8(at, (index * 7 + at) & 0xff);
      }
      const sends: Promise<number>[] = [];
      for (let index = 0; index < count; index++) {
        sends.push(
          sender.send(
            payloads.subarray(index * sizeBytes, (index + 1) * sizeBytes),
            receiver.localAddress,
          ),
        );
      }
      assert.deepEqual(new Set(await Promise.all(sends)), new Set([sizeBytes]));
      const buffer = new Uint8Array(65536);
      const senders = new Set<UdpAddress>();
      for (let index = 0; index < count; index++) {
        const [datagram, from] = await receiver.receive(buffer);
        senders.add(from);
        assert.equal(datagram.length, sizeBytes, `datagram ${index}`);
        assert.deepEqual(datagram, payloads.subarray(index * sizeBytes, (index + 1) * sizeBytes));
      }
      // One cached address object per peer; the receives that yield through Deno's socket (one
      // every few batches, so the event loop turns) bring their own.
      assert.ok(senders.size <= 1 + Math.ceil(count / 256), `${senders.size} address objects`);
    }),
});

Deno.test({
  name: "datagrams of every size, up to UDP's largest, arrive whole anywhere in a burst",
  ignore,
  fn: () =>
    withSockets("127.0.0.1", 2, async (sender, receiver) => {
      // 40 queued at once: the receive vector fills and grows (8 → 16 → 32 → 64 slots) while
      // long datagrams sit behind short ones, in both the old and the new vector.
      const sizes = [100, 30_000, 1200, MAX_UDP_PAYLOAD_BYTES, 0, 9000, 1, 8193];
      const sent: Uint8Array[] = [];
      for (let index = 0; index < 40; index++) {
        const datagram = new Uint8Array(sizes[index % sizes.length]);
        for (let at = 0; at < datagram.length; at++) datagram[at] = (index * 7 + at) & 0xff;
        sent.push(datagram);
      }
      await Promise.all(sent.map((datagram) => sender.send(datagram, receiver.localAddress)));
      const buffer = new Uint8Array(MAX_UDP_PAYLOAD_BYTES);
      for (let index = 0; index < sent.length; index++) {
        const [datagram, from] = await receiveWithin(receiver, buffer);
        assert.equal(datagram.length, sent[index].length, `datagram ${index}: length`);
        assert.deepEqual(datagram, sent[index], `datagram ${index}: bytes`);
        assert.equal(from.port, sender.localAddress.port);
      }
      assert.equal((receiver as unknown as { truncatedDatagrams: number }).truncatedDatagrams, 0);
      // And the socket goes on batching: another burst arrives whole as well.
      await Promise.all(
        sent.slice(0, 10).map((datagram) => sender.send(datagram, receiver.localAddress)),
      );
      for (let index = 0; index < 10; index++) {
        assert.deepEqual((await receiveWithin(receiver, buffer))[0], sent[index]);
      }
    }),
});

Deno.test({
  name: "a caller's buffer shorter than a datagram gets its start, as with Deno's receive",
  ignore,
  fn: () =>
    withSockets("127.0.0.1", 2, async (sender, receiver) => {
      const long = new Uint8Array(5000).map((_, at) => at & 0xff);
      await Promise.all([
        sender.send(long, receiver.localAddress),
        sender.send(long, receiver.localAddress),
      ]);
      const small = new Uint8Array(1000);
      // The first of the batch lands in the caller's buffer, the second comes from a slot.
      assert.deepEqual((await receiver.receive(small))[0], long.subarray(0, 1000));
      assert.deepEqual((await receiver.receive(small))[0], long.subarray(0, 1000));
    }),
});

Deno.test({
  name: "binding port 0 reports the port the kernel chose",
  ignore,
  fn: () =>
    withSockets("0.0.0.0", 1, async (socket) => {
      assert.equal(socket.localAddress.hostname, "0.0.0.0");
      assert.ok(socket.localAddress.port > 0);
      // The port is really taken: Deno cannot bind it again.
      assert.throws(
        () =>
          Deno.listenDatagram({
            transport: "udp",
            hostname: "0.0.0.0",
            port: socket.localAddress.port,
          }),
        Deno.errors.AddrInUse,
      );
      await Promise.resolve();
    }),
});

Deno.test({
  name: "binding a port in use throws Deno's AddrInUse",
  ignore,
  fn: () =>
    withSockets("127.0.0.1", 1, async (socket) => {
      assert.throws(
        () => bindBatchedUdp({ hostname: "127.0.0.1", port: socket.localAddress.port }),
        Deno.errors.AddrInUse,
      );
      await Promise.resolve();
    }),
});

Deno.test({
  name: "close makes a pending receive reject at once, as Deno's does (Interrupted)",
  ignore,
  fn: async () => {
    const socket = bindBatchedUdp({ hostname: "127.0.0.1", port: 0 });
    const other = bindBatchedUdp({ hostname: "127.0.0.1", port: 0 });
    try {
      const pending = socket.receive(new Uint8Array(2048));
      const otherPending = other.receive(new Uint8Array(2048));
      await new Promise((resolve) => setTimeout(resolve, 20));
      socket.close();
      await assert.rejects(pending, Deno.errors.Interrupted);
      other.close();
      await assert.rejects(otherPending, Deno.errors.Interrupted);
      await assert.rejects(socket.receive(new Uint8Array(10)), Deno.errors.BadResource);
      await assert.rejects(
        socket.send(new Uint8Array(10), other.localAddress),
        Deno.errors.BadResource,
      );
    } finally {
      socket.close();
      other.close();
    }
  },
});

/** What a send does, as the path counters see it: "ok" or the kind of error. */
async function sendOutcome(socket: DatagramTransport, datagram: Uint8Array, to: UdpAddress) {
  try {
    await socket.send(datagram, to);
    return "ok";
  } catch (error) {
    return classifySendError(error) ?? `unclassified: ${error}`;
  }
}

Deno.test({
  name: "send errors are classified as Deno's are",
  ignore,
  fn: async () => {
    const deno = bindDenoUdp({ hostname: "127.0.0.1", port: 0 });
    const batched = bindBatchedUdp({ hostname: "127.0.0.1", port: 0 });
    // A closed port: the one just freed.
    const gone = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    const closedPort: UdpAddress = {
      transport: "udp",
      hostname: "127.0.0.1",
      port: (gone.addr as Deno.NetAddr).port,
    };
    gone.close();
    try {
      const cases: [string, Uint8Array, UdpAddress][] = [
        ["closed port", new Uint8Array(10), closedPort],
        ["closed port, again", new Uint8Array(10), closedPort],
        ["too large", new Uint8Array(65_600), closedPort],
        ["IPv6 destination", new Uint8Array(10), { transport: "udp", hostname: "::1", port: 9 }],
        ["broadcast", new Uint8Array(10), {
          transport: "udp",
          hostname: "255.255.255.255",
          port: 9,
        }],
      ];
      for (const [what, datagram, to] of cases) {
        const expected = await sendOutcome(deno, datagram, to);
        assert.equal(await sendOutcome(batched, datagram, to), expected, what);
      }
      assert.equal(await sendOutcome(batched, new Uint8Array(65_600), closedPort), "too-large");
    } finally {
      deno.close();
      batched.close();
    }
  },
});

Deno.test({
  name: "bindUdp uses Deno's socket when MPTUNNEL_IO=deno, and the batched one when asked",
  ignore,
  fn: () => {
    const before = Deno.env.get(UDP_IO_ENV_VAR);
    try {
      for (const io of ["deno", "batched"] as const) {
        Deno.env.set(UDP_IO_ENV_VAR, io);
        resetUdpIo();
        assert.equal(udpIo(), io);
        const socket = bindUdp({ hostname: "127.0.0.1", port: 0 });
        socket.close();
        assert.equal(socket.constructor.name === "BatchedUdpSocket", io === "batched");
      }
    } finally {
      if (before === undefined) Deno.env.delete(UDP_IO_ENV_VAR);
      else Deno.env.set(UDP_IO_ENV_VAR, before);
      resetUdpIo();
    }
  },
});

Deno.test("bindUdp falls back to Deno's socket without --allow-ffi", async () => {
  const script = `
    import { bindUdp, udpIo } from "${UDP_MODULE_URL}";
    const a = bindUdp({ hostname: "127.0.0.1", port: 0 });
    const b = bindUdp({ hostname: "127.0.0.1", port: 0 });
    await a.send(new Uint8Array([1, 2, 3]), b.localAddress);
    const [datagram] = await b.receive(new Uint8Array(100));
    console.log(udpIo(), datagram.length);
    a.close();
    b.close();
  `;
  const scriptPath = await Deno.makeTempFile({ prefix: "udp-batch-fallback-", suffix: ".ts" });
  let output: Deno.CommandOutput;
  try {
    await Deno.writeTextFile(scriptPath, script);
    output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--unstable-net",
        "--no-check",
        "--allow-net",
        "--allow-read",
        `--allow-env=${UDP_IO_ENV_VAR}`,
        scriptPath,
      ],
      env: { [UDP_IO_ENV_VAR]: "batched", NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
  } finally {
    await Deno.remove(scriptPath);
  }
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, stderr);
  assert.equal(new TextDecoder().decode(output.stdout).trim(), "deno 3");
  assert.match(stderr, /MPTUNNEL_IO=batched: unavailable \(no --allow-ffi\)/);
});

Deno.test({
  name: `sends beyond ${BATCH_DATAGRAMS} queued at once all go out`,
  ignore,
  fn: () =>
    withSockets("127.0.0.1", 2, async (sender, receiver) => {
      const count = BATCH_DATAGRAMS * 3 + 5;
      const datagrams = Array.from({ length: count }, (_, index) => new Uint8Array([index & 0xff]));
      await Promise.all(datagrams.map((datagram) => sender.send(datagram, receiver.localAddress)));
      const buffer = new Uint8Array(100);
      for (let index = 0; index < count; index++) {
        const [datagram] = await receiver.receive(buffer);
        assert.equal(datagram[0], index & 0xff);
      }
    }),
});
