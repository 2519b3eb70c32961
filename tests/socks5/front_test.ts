/**
 * The SOCKS5 front end over real loopback sockets, with a fake tunnel in place of the client core:
 * the TCP handshake, one declared flow per destination of an association, replies wrapped with the
 * flow's destination as their source, foreign and malformed datagrams dropped and counted, limits,
 * and the association torn down with its control connection.
 */
import assert from "node:assert/strict";
import { recordingLogger } from "../../lib/base/log.ts";
import { decodeSocks5Address, type Socks5Address } from "../../lib/socks5/address.ts";
import type { Socks5Credentials } from "../../lib/socks5/session.ts";
import { decodeUdpDatagram, encodeUdpRequestHeader } from "../../lib/socks5/udp_header.ts";
import {
  SOCKS5_PASSWORD_ENV_VAR,
  SOCKS5_USER_ENV_VAR,
  socks5CredentialsFrom,
  Socks5Front,
  type Socks5Tunnel,
  type TunnelFlowHandlers,
} from "../../lib/socks5/front.ts";
import { bindUdp } from "../../lib/io/udp.ts";
import type { DatagramTransport, UdpAddress } from "../../lib/io/transport.ts";
import { DECLARED_FLOW_BASE, type FlowTarget } from "../../lib/wire/messages.ts";

const LOOPBACK = "127.0.0.1";
const WAIT_MS = 3000;
const text = new TextEncoder();
const untext = new TextDecoder();

/** A tunnel that records what the front end asks of it. */
class FakeTunnel implements Socks5Tunnel {
  readonly opened: { id: number; target: FlowTarget; handlers: TunnelFlowHandlers }[] = [];
  readonly sent: { flowId: number; payload: string }[] = [];
  readonly closed: number[] = [];
  #nextId = DECLARED_FLOW_BASE;
  /** How many flow ids are left before openFlow says none is free. */
  freeIds = Infinity;

  channel() {
    return {
      openFlow: (target: FlowTarget, handlers: TunnelFlowHandlers) => {
        if (this.freeIds <= 0) return undefined;
        this.freeIds--;
        const id = this.#nextId++;
        this.opened.push({ id, target, handlers });
        return id;
      },
      send: (flowId: number, payload: Uint8Array) => {
        this.sent.push({ flowId, payload: untext.decode(payload) });
        return Promise.resolve();
      },
    };
  }

  closeFlow(flowId: number): void {
    this.closed.push(flowId);
  }
}

/** Polls until `condition` holds, or fails saying `what`. */
async function waitFor(condition: () => boolean, what: string): Promise<void> {
  const deadline = performance.now() + WAIT_MS;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Reads exactly `byteCount` bytes from the connection. */
async function readExactly(connection: Deno.Conn, byteCount: number): Promise<Uint8Array> {
  const out = new Uint8Array(byteCount);
  let offset = 0;
  while (offset < byteCount) {
    const read = await connection.read(out.subarray(offset));
    if (read === null) throw new Error(`connection closed after ${offset} of ${byteCount} bytes`);
    offset += read;
  }
  return out;
}

/** Reads until the peer closes; returns everything read. */
async function readToEnd(connection: Deno.Conn): Promise<Uint8Array> {
  const chunks: number[] = [];
  const buffer = new Uint8Array(256);
  while (true) {
    let read: number | null;
    try {
      read = await connection.read(buffer);
    } catch (error) {
      if (error instanceof Deno.errors.ConnectionReset) break;
      throw error;
    }
    if (read === null) break;
    chunks.push(...buffer.subarray(0, read));
  }
  return Uint8Array.from(chunks);
}

/** A SOCKS5 client's control connection after a successful UDP ASSOCIATE. */
interface Associated {
  readonly control: Deno.TcpConn;
  readonly relay: UdpAddress;
}

/** Greets (no authentication, or with `credentials`), asks for UDP ASSOCIATE, reads the relay. */
async function associate(
  front: Socks5Front,
  options: { credentials?: Socks5Credentials; hint?: Socks5Address } = {},
): Promise<Associated> {
  const control = await Deno.connect({
    hostname: front.address.hostname,
    port: front.address.port,
  });
  try {
    if (options.credentials) {
      await control.write(Uint8Array.of(5, 1, 2));
      assert.deepEqual([...await readExactly(control, 2)], [5, 2]);
      const user = text.encode(options.credentials.username);
      const password = text.encode(options.credentials.password);
      await control.write(
        Uint8Array.of(1, user.length, ...user, password.length, ...password),
      );
      assert.deepEqual([...await readExactly(control, 2)], [1, 0]);
    } else {
      await control.write(Uint8Array.of(5, 1, 0));
      assert.deepEqual([...await readExactly(control, 2)], [5, 0]);
    }
    const hint = encodeUdpRequestHeader(
      options.hint ?? { kind: "ipv4", host: "0.0.0.0", port: 0 },
    ).subarray(3);
    await control.write(Uint8Array.of(5, 3, 0, ...hint));
    const head = await readExactly(control, 4);
    assert.deepEqual([...head.subarray(0, 3)], [5, 0, 0], "UDP ASSOCIATE succeeded");
    const rest = await readExactly(control, head[3] === 4 ? 18 : 6);
    const decoded = decodeSocks5Address(Uint8Array.of(head[3], ...rest));
    assert.ok(decoded.ok);
    return {
      control,
      relay: { transport: "udp", hostname: decoded.address.host, port: decoded.address.port },
    };
  } catch (error) {
    control.close();
    throw error;
  }
}

/** A datagram for the relay: the UDP request header for `destination`, then `payload`. */
function wrapped(destination: Socks5Address, payload: string): Uint8Array {
  const header = encodeUdpRequestHeader(destination);
  const body = text.encode(payload);
  const datagram = new Uint8Array(header.length + body.length);
  datagram.set(header);
  datagram.set(body, header.length);
  return datagram;
}

/** Everything one test opens, closed in reverse order at the end. */
class Scene {
  readonly tunnel = new FakeTunnel();
  readonly logger = recordingLogger();
  readonly #closers: (() => void | Promise<void>)[] = [];

  start(options: {
    listen?: string;
    credentials?: Socks5Credentials;
    maxFlowsPerAssociation?: number;
    maxAssociations?: number;
    handshakeTimeoutMs?: number;
  } = {}): Socks5Front {
    const front = Socks5Front.start({
      listen: { hostname: options.listen ?? LOOPBACK, port: 0 },
      tunnel: this.tunnel,
      logger: this.logger,
      credentials: options.credentials,
      maxFlowsPerAssociation: options.maxFlowsPerAssociation,
      maxAssociations: options.maxAssociations,
      handshakeTimeoutMs: options.handshakeTimeoutMs,
    });
    this.#closers.push(() => front.stop());
    return front;
  }

  udp(hostname = LOOPBACK): DatagramTransport {
    const socket = bindUdp({ hostname, port: 0 });
    this.#closers.push(() => socket.close());
    return socket;
  }

  own(control: Deno.TcpConn): Deno.TcpConn {
    this.#closers.push(() => {
      try {
        control.close();
      } catch (error) {
        if (!(error instanceof Deno.errors.BadResource)) throw error;
      }
    });
    return control;
  }

  /** A started front end with one association made, and a client socket to use its relay. */
  async associated(): Promise<{
    front: Socks5Front;
    control: Deno.TcpConn;
    relay: UdpAddress;
    client: DatagramTransport;
  }> {
    const front = this.start();
    const { control, relay } = await associate(front);
    this.own(control);
    return { front, control, relay, client: this.udp() };
  }

  async close(): Promise<void> {
    for (const close of this.#closers.reverse()) await close();
  }
}

/** A test with a {@link Scene} that is closed afterwards, whatever happens. */
function sceneTest(name: string, body: (scene: Scene) => Promise<void>): void {
  Deno.test(name, async () => {
    const scene = new Scene();
    try {
      await body(scene);
    } finally {
      await scene.close();
    }
  });
}

/** Receives one datagram within {@link WAIT_MS}, or fails. */
async function receiveOne(socket: DatagramTransport): Promise<[Uint8Array, UdpAddress]> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      socket.receive(new Uint8Array(2048)),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("no datagram arrived")), WAIT_MS);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

sceneTest("UDP ASSOCIATE answers with a relay on the listener's address", async (scene) => {
  const front = scene.start();
  const { control, relay } = await associate(front);
  scene.own(control);
  assert.equal(relay.hostname, LOOPBACK);
  assert.notEqual(relay.port, 0);
  assert.notEqual(relay.port, front.address.port);
  await waitFor(() => front.associationCount === 1, "the association");
});

sceneTest(
  "datagrams to two destinations become two declared flows; a repeat reuses its flow",
  async (scene) => {
    const { front, relay, client } = await scene.associated();
    const dns: Socks5Address = { kind: "ipv4", host: "10.0.0.53", port: 53 };
    const game: Socks5Address = { kind: "domain", host: "game.example", port: 27015 };
    await client.send(wrapped(dns, "query 1"), relay);
    await client.send(wrapped(game, "move"), relay);
    await client.send(wrapped(dns, "query 2"), relay);
    await waitFor(() => scene.tunnel.sent.length === 3, "three datagrams in the tunnel");

    const [first, second] = scene.tunnel.opened;
    assert.equal(scene.tunnel.opened.length, 2);
    assert.deepEqual(first.target, { kind: "address", host: "10.0.0.53", port: 53 });
    assert.deepEqual(second.target, { kind: "address", host: "game.example", port: 27015 });
    assert.deepEqual(scene.tunnel.sent, [
      { flowId: first.id, payload: "query 1" },
      { flowId: second.id, payload: "move" },
      { flowId: first.id, payload: "query 2" },
    ]);
    assert.equal(front.flowCount, 2);
    assert.equal(front.counters.toTunnel, 3);
  },
);

sceneTest(
  "a reply goes back to the client wrapped with its flow's destination as the source",
  async (scene) => {
    const { front, relay, client } = await scene.associated();
    const echo: Socks5Address = { kind: "ipv6", host: "2001:db8::7", port: 7 };
    const named: Socks5Address = { kind: "domain", host: "echo.example", port: 7 };
    await client.send(wrapped(echo, "ping"), relay);
    await client.send(wrapped(named, "ping by name"), relay);
    await waitFor(() => scene.tunnel.opened.length === 2, "two flows");

    await scene.tunnel.opened[0].handlers.deliver(text.encode("pong"));
    const [reply, from] = await receiveOne(client);
    assert.equal(from.port, relay.port, "replies come from the relay");
    const decoded = decodeUdpDatagram(reply);
    assert.ok(decoded.ok);
    assert.deepEqual(decoded.destination, echo);
    assert.equal(untext.decode(decoded.payload), "pong");

    await scene.tunnel.opened[1].handlers.deliver(text.encode("pong by name"));
    const [namedReply] = await receiveOne(client);
    const namedDecoded = decodeUdpDatagram(namedReply);
    assert.ok(namedDecoded.ok);
    assert.deepEqual(namedDecoded.destination, named);
    assert.equal(untext.decode(namedDecoded.payload), "pong by name");
    assert.equal(front.counters.toClients, 2);
  },
);

sceneTest(
  "datagrams from another host, or another port once the first arrived, are dropped",
  async (scene) => {
    const front = scene.start();
    const { control, relay } = await associate(front);
    scene.own(control);
    const destination: Socks5Address = { kind: "ipv4", host: "192.0.2.1", port: 9 };
    const otherHost = scene.udp("127.0.0.2");
    const client = scene.udp();
    const otherPort = scene.udp();
    await otherHost.send(wrapped(destination, "from 127.0.0.2"), relay);
    await waitFor(() => front.counters.drops["foreign-source"] === 1, "the first foreign drop");
    await client.send(wrapped(destination, "from the client"), relay);
    await waitFor(() => scene.tunnel.sent.length === 1, "the client's datagram");
    await otherPort.send(wrapped(destination, "from another port"), relay);
    await otherHost.send(wrapped(destination, "from 127.0.0.2 again"), relay);
    await waitFor(() => front.counters.drops["foreign-source"] === 3, "two more foreign drops");
    await client.send(wrapped(destination, "the client again"), relay);
    await waitFor(() => scene.tunnel.sent.length === 2, "the client's second datagram");
    assert.deepEqual(scene.tunnel.sent.map((sent) => sent.payload), [
      "from the client",
      "the client again",
    ]);
  },
);

sceneTest("a port announced in UDP ASSOCIATE is the only one accepted", async (scene) => {
  const front = scene.start();
  const client = scene.udp();
  const stranger = scene.udp();
  const { control, relay } = await associate(front, {
    hint: { kind: "ipv4", host: "0.0.0.0", port: client.localAddress.port },
  });
  scene.own(control);
  const destination: Socks5Address = { kind: "ipv4", host: "192.0.2.1", port: 9 };
  await stranger.send(wrapped(destination, "first, but from the wrong port"), relay);
  await waitFor(() => front.counters.drops["foreign-source"] === 1, "the stranger dropped");
  await client.send(wrapped(destination, "announced"), relay);
  await waitFor(() => scene.tunnel.sent.length === 1, "the announced port's datagram");
  assert.equal(scene.tunnel.sent[0].payload, "announced");
});

sceneTest(
  "fragments, malformed datagrams and untunnelable destinations are dropped and counted",
  async (scene) => {
    const { front, relay, client } = await scene.associated();
    const fragment = wrapped({ kind: "ipv4", host: "192.0.2.1", port: 9 }, "part");
    fragment[2] = 1;
    await client.send(fragment, relay);
    await client.send(Uint8Array.of(0, 0), relay); // truncated
    await client.send(Uint8Array.of(0, 0, 0, 9, 1, 2, 3, 4, 0, 9), relay); // address type 9
    await client.send(wrapped({ kind: "ipv4", host: "192.0.2.1", port: 0 }, "port 0"), relay);
    await client.send(wrapped({ kind: "domain", host: "a".repeat(254), port: 53 }, "long"), relay);
    const drops = front.counters.drops;
    await waitFor(
      () =>
        drops.fragmented + drops.truncated + drops["bad-address-type"] +
            drops["bad-destination"] === 5,
      "five drops",
    );
    assert.deepEqual(
      [drops.fragmented, drops.truncated, drops["bad-address-type"], drops["bad-destination"]],
      [1, 1, 1, 2],
    );
    assert.equal(scene.tunnel.opened.length, 0);
    assert.equal(scene.tunnel.sent.length, 0);
  },
);

sceneTest(
  "closing the control connection closes the relay and the association's flows",
  async (scene) => {
    const front = scene.start();
    const { control, relay } = await associate(front);
    const client = scene.udp();
    await client.send(wrapped({ kind: "ipv4", host: "192.0.2.1", port: 9 }, "one"), relay);
    await client.send(wrapped({ kind: "ipv4", host: "192.0.2.2", port: 9 }, "two"), relay);
    await waitFor(() => scene.tunnel.sent.length === 2, "two datagrams");
    control.close();
    await waitFor(() => front.associationCount === 0, "the association to end");
    assert.deepEqual(
      [...scene.tunnel.closed].sort(),
      scene.tunnel.opened.map((flow) => flow.id).sort(),
    );
    assert.equal(front.flowCount, 0);
    // The relay is closed: a datagram to its port goes nowhere.
    await client.send(wrapped({ kind: "ipv4", host: "192.0.2.3", port: 9 }, "late"), relay);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(scene.tunnel.sent.length, 2);
    assert.equal(scene.tunnel.opened.length, 2);
    // A reply for a flow of the ended association is not sent anywhere.
    await scene.tunnel.opened[0].handlers.deliver(text.encode("too late"));
    assert.equal(front.counters.toClients, 0);
  },
);

sceneTest(
  "an association declares at most its flow limit, and a full tunnel declares none",
  async (scene) => {
    const front = scene.start({ maxFlowsPerAssociation: 2 });
    const { control, relay } = await associate(front);
    scene.own(control);
    const client = scene.udp();
    for (const port of [1, 2, 3]) {
      await client.send(wrapped({ kind: "ipv4", host: "192.0.2.1", port }, `to ${port}`), relay);
    }
    await waitFor(() => front.counters.drops["flow-limit"] === 1, "the flow-limit drop");
    assert.equal(scene.tunnel.opened.length, 2);

    const second = await associate(front);
    scene.own(second.control);
    const other = scene.udp();
    scene.tunnel.freeIds = 0;
    await other.send(wrapped({ kind: "ipv4", host: "192.0.2.1", port: 1 }, "no id"), second.relay);
    await waitFor(() => front.counters.drops["no-flow-id"] === 1, "the no-flow-id drop");
  },
);

sceneTest(
  "with credentials, a client must log in; a wrong password is refused and closed",
  async (scene) => {
    const credentials = { username: "alice", password: "correct horse" };
    const front = scene.start({ credentials });
    const { control } = await associate(front, { credentials });
    scene.own(control);
    await waitFor(() => front.associationCount === 1, "the association");

    const intruder = scene.own(
      await Deno.connect({ hostname: LOOPBACK, port: front.address.port }),
    );
    await intruder.write(Uint8Array.of(5, 1, 0)); // offers no authentication only
    assert.deepEqual([...await readToEnd(intruder)], [5, 0xff]);

    const guesser = scene.own(
      await Deno.connect({ hostname: LOOPBACK, port: front.address.port }),
    );
    await guesser.write(Uint8Array.of(5, 1, 2));
    await guesser.write(Uint8Array.of(1, 5, ...text.encode("alice"), 5, ...text.encode("guess")));
    assert.deepEqual([...await readToEnd(guesser)], [5, 2, 1, 1]);
    await waitFor(() => front.counters.handshakeFailures === 2, "two handshake failures");
    assert.equal(front.associationCount, 1);
  },
);

sceneTest("a control connection that does not associate in time is closed", async (scene) => {
  const front = scene.start({ handshakeTimeoutMs: 100 });
  const idle = scene.own(await Deno.connect({ hostname: LOOPBACK, port: front.address.port }));
  await idle.write(Uint8Array.of(5, 1, 0));
  assert.deepEqual([...await readToEnd(idle)], [5, 0]);
  assert.equal(front.counters.handshakeFailures, 1);
});

sceneTest("control connections beyond the limit are closed at once", async (scene) => {
  const front = scene.start({ maxAssociations: 1 });
  const { control } = await associate(front);
  scene.own(control);
  const extra = scene.own(await Deno.connect({ hostname: LOOPBACK, port: front.address.port }));
  await extra.write(Uint8Array.of(5, 1, 0)).catch(() => 0);
  assert.deepEqual([...await readToEnd(extra)], []);
  assert.equal(front.counters.connectionsOverLimit, 1);
});

sceneTest("over IPv6 the relay is on ::1 and replies carry IPv4 sources as IPv4", async (scene) => {
  const front = scene.start({ listen: "::1" });
  const { control, relay } = await associate(front);
  scene.own(control);
  assert.equal(relay.hostname, "::1");
  const client = scene.udp("::1");
  const destination: Socks5Address = { kind: "ipv4", host: "192.0.2.1", port: 9 };
  await client.send(wrapped(destination, "over v6"), relay);
  await waitFor(() => scene.tunnel.sent.length === 1, "the datagram");
  await scene.tunnel.opened[0].handlers.deliver(text.encode("back over v6"));
  const [reply] = await receiveOne(client);
  const decoded = decodeUdpDatagram(reply);
  assert.ok(decoded.ok);
  assert.deepEqual(decoded.destination, destination);
});

sceneTest("stop() ends every association and closes its flows", async (scene) => {
  const { front, control, relay, client } = await scene.associated();
  await client.send(wrapped({ kind: "ipv4", host: "192.0.2.1", port: 9 }, "one"), relay);
  await waitFor(() => scene.tunnel.opened.length === 1, "the flow");
  await front.stop();
  assert.equal(front.associationCount, 0);
  assert.deepEqual(scene.tunnel.closed, [scene.tunnel.opened[0].id]);
  assert.deepEqual([...await readToEnd(control)], []);
});

Deno.test("SOCKS5 credentials come from both environment variables or neither", () => {
  const from = (values: Record<string, string>) => socks5CredentialsFrom((name) => values[name]);
  assert.deepEqual(from({}), { ok: true, value: undefined });
  assert.deepEqual(
    from({ [SOCKS5_USER_ENV_VAR]: "alice", [SOCKS5_PASSWORD_ENV_VAR]: "secret" }),
    { ok: true, value: { username: "alice", password: "secret" } },
  );
  const onlyUser = from({ [SOCKS5_USER_ENV_VAR]: "alice" });
  assert.ok(!onlyUser.ok && onlyUser.error.includes(SOCKS5_PASSWORD_ENV_VAR));
  const empty = from({ [SOCKS5_USER_ENV_VAR]: "", [SOCKS5_PASSWORD_ENV_VAR]: "secret" });
  assert.ok(!empty.ok && empty.error.includes(SOCKS5_USER_ENV_VAR));
  const long = from({ [SOCKS5_USER_ENV_VAR]: "alice", [SOCKS5_PASSWORD_ENV_VAR]: "x".repeat(256) });
  assert.ok(!long.ok && long.error.includes("255"));
});
