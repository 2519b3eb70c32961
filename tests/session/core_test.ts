/**
 * The client and server cores wired together in memory, without the simulator: a handshake, data in
 * both directions, duplicates from redundant paths, restarts, secrets that differ.
 */
import { clientSeams, serverSeams } from "./engine_seams.ts";
import assert from "node:assert/strict";
import { seededRandom } from "../../lib/base/rng.ts";
import { ClientCore, type ClientOutbox } from "../../lib/session/client_core.ts";
import { deriveSecretKeys } from "../../lib/crypto/handshake.ts";
import { recordingLogger, silentLogger } from "../../lib/base/log.ts";
import { ServerCore, type ServerOutbox } from "../../lib/session/server_core.ts";
import type { UdpAddress } from "../../lib/io/transport.ts";
import { encodeReset } from "../../lib/wire/messages.ts";

const SECRET = "correct horse battery staple 42";

/** Two cores joined by N instant paths; what each side delivers is recorded. */
function wire(pathCount: number, options: { clientSecret?: string; serverSecret?: string } = {}) {
  const logger = recordingLogger();
  const server = new ServerCore({
    ...serverSeams,
    secret: options.serverSecret ? deriveSecretKeys(options.serverSecret) : undefined,
    logger,
  });
  const client = new ClientCore({
    ...clientSeams,
    pathLabels: Array.from({ length: pathCount }, (_, index) => `path${index}`),
    secret: options.clientSecret ? deriveSecretKeys(options.clientSecret) : undefined,
    logger,
    random: seededRandom(pathCount),
  });
  const toApp: { flowId: number; payload: Uint8Array }[] = [];
  const toTarget: { sessionId: number; flowId: number; payload: Uint8Array }[] = [];
  const queue: { toServer: boolean; pathIndex: number; datagram: Uint8Array }[] = [];
  const pathUp = Array.from({ length: pathCount }, () => true);
  const addresses: UdpAddress[] = Array.from(
    { length: pathCount },
    (_, index) => ({ transport: "udp", hostname: "127.0.0.1", port: 4000 + index }),
  );
  const clientOutbox: ClientOutbox = {
    scratch: new Uint8Array(65536),
    sendOnPath: (pathIndex, datagram) => {
      if (pathUp[pathIndex]) queue.push({ toServer: true, pathIndex, datagram: datagram.slice() });
    },
    deliverToApp: (flowId, payload) => toApp.push({ flowId, payload: payload.slice() }),
  };
  const serverOutbox: ServerOutbox = {
    scratch: new Uint8Array(65536),
    sendTo: (address, datagram) => {
      const pathIndex = addresses.findIndex((known) => known.port === address.port);
      if (pathUp[pathIndex]) queue.push({ toServer: false, pathIndex, datagram: datagram.slice() });
    },
    deliverToTarget: (sessionId, flowId, payload) =>
      toTarget.push({ sessionId, flowId, payload: payload.slice() }),
  };
  let now = 0;
  const state = {
    client,
    server,
    logger,
    toApp,
    toTarget,
    pathUp,
    get now() {
      return now;
    },
    /** Delivers everything in flight and runs due timers, advancing time by `stepMs` until `untilMs`. */
    run(untilMs: number, stepMs = 10) {
      for (; now <= untilMs; now += stepMs) {
        if ((state.client.nextDeadlineMs() ?? Infinity) <= now) {
          state.client.onTimer(now, clientOutbox);
        }
        if ((state.server.nextDeadlineMs() ?? Infinity) <= now) state.server.onTimer(now);
        while (queue.length > 0) {
          const { toServer, pathIndex, datagram } = queue.shift()!;
          if (toServer) state.server.receive(addresses[pathIndex], datagram, now, serverOutbox);
          else state.client.receiveFromPath(pathIndex, datagram, now, clientOutbox);
        }
      }
    },
    /** Hands a datagram to the client at once, before anything in flight is delivered. */
    injectToClient(pathIndex: number, datagram: Uint8Array) {
      state.client.receiveFromPath(pathIndex, datagram, now, clientOutbox);
    },
    send(flowId: number, text: string) {
      state.client.sendFromApp(flowId, new TextEncoder().encode(text), now, clientOutbox);
    },
    reply(sessionId: number, flowId: number, text: string) {
      return state.server.sendFromTarget(
        sessionId,
        flowId,
        new TextEncoder().encode(text),
        now,
        serverOutbox,
      );
    },
  };
  return state;
}

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

Deno.test("a datagram crosses three paths and reaches the target exactly once", () => {
  const tunnel = wire(3);
  tunnel.send(7, "hello");
  tunnel.run(100);
  assert.equal(tunnel.client.state, "established");
  assert.deepEqual(tunnel.toTarget.map((item) => [item.flowId, text(item.payload)]), [[
    7,
    "hello",
  ]]);
  assert.equal(tunnel.server.counters.duplicates >= 2, true);
});

Deno.test("a reply crosses back once and reaches the right flow", () => {
  const tunnel = wire(3);
  tunnel.send(3, "ping");
  tunnel.run(100);
  assert.equal(tunnel.reply(tunnel.toTarget[0].sessionId, 3, "pong"), true);
  tunnel.run(200);
  assert.deepEqual(tunnel.toApp.map((item) => [item.flowId, text(item.payload)]), [[3, "pong"]]);
});

Deno.test("with the same secret on both ends, traffic is sealed and delivered", () => {
  const tunnel = wire(2, { clientSecret: SECRET, serverSecret: SECRET });
  tunnel.send(1, "secret hello");
  tunnel.run(100);
  assert.deepEqual(tunnel.toTarget.map((item) => text(item.payload)), ["secret hello"]);
  assert.equal(tunnel.client.authenticated, true);
});

Deno.test("different secrets: nothing reaches the target and both sides say why", () => {
  const tunnel = wire(2, { clientSecret: SECRET, serverSecret: SECRET + " but different" });
  tunnel.send(1, "hello");
  tunnel.run(6000);
  assert.equal(tunnel.toTarget.length, 0);
  const messages = tunnel.logger.records.map((record) => record.message);
  assert.ok(messages.some((message) => message.includes("different secret")), messages.join("\n"));
  assert.ok(
    messages.some((message) => message.includes("hold different secrets")),
    messages.join("\n"),
  );
});

Deno.test("a client without a secret is refused by a server with one, with a clear notice", () => {
  const tunnel = wire(1, { serverSecret: SECRET });
  tunnel.send(1, "hello");
  tunnel.run(1000);
  assert.equal(tunnel.toTarget.length, 0);
  const errors = tunnel.logger.records.filter((record) => record.level === "error");
  assert.ok(errors.some((record) => record.message.includes("requires a shared secret")));
});

Deno.test("a restarted server is noticed and the session resumes within a second", () => {
  const tunnel = wire(3, { clientSecret: SECRET, serverSecret: SECRET });
  tunnel.send(1, "before");
  tunnel.run(500);
  tunnel.server = new ServerCore({
    ...serverSeams,
    secret: deriveSecretKeys(SECRET),
    logger: silentLogger,
  });
  const restartMs = tunnel.now;
  tunnel.send(1, "lost while the server was away");
  tunnel.run(restartMs + 50);
  tunnel.send(1, "after");
  tunnel.run(restartMs + 1000);
  const delivered = tunnel.toTarget.map((item) => text(item.payload));
  assert.equal(delivered.at(-1), "after");
  assert.equal(tunnel.server.sessions.size, 1);
});

Deno.test("a path that goes silent is marked down and carries no data until it returns", () => {
  const tunnel = wire(3);
  tunnel.send(1, "x");
  tunnel.run(1000);
  tunnel.pathUp[1] = false;
  tunnel.run(4000);
  assert.equal(tunnel.client.paths[1].state, "down");
  const sentBefore = tunnel.client.paths[1].sent.datagrams;
  tunnel.send(1, "y");
  assert.equal(tunnel.client.paths[1].sent.datagrams, sentBefore);
  tunnel.pathUp[1] = true;
  tunnel.run(5000);
  assert.equal(tunnel.client.paths[1].state, "up");
});

Deno.test("with a secret, keys are renewed in the background without losing a datagram", () => {
  const tunnel = wire(2, { clientSecret: SECRET, serverSecret: SECRET });
  let sent = 0;
  for (let step = 0; step < 300; step++) {
    tunnel.send(1, `datagram ${sent++}`);
    tunnel.run(tunnel.now + 1000, 50);
  }
  assert.ok(tunnel.client.counters.handshakesCompleted >= 3, "several rekeys in 300 s");
  assert.equal(tunnel.toTarget.length, sent);
  assert.equal(new Set(tunnel.toTarget.map((item) => text(item.payload))).size, sent);
});

Deno.test("a forged RESET does not stop the client's traffic, and duplicates nothing", () => {
  const tunnel = wire(2, { clientSecret: SECRET, serverSecret: SECRET });
  tunnel.send(1, "first");
  tunnel.run(100);
  // Anyone who saw the session id and key phase on the wire can forge this.
  tunnel.injectToClient(0, encodeReset(tunnel.client.sessionId, 0)); // its handshake is in flight
  const sentBefore = tunnel.client.paths[0].sent.datagrams;
  for (let index = 0; index < 10; index++) tunnel.send(1, `after ${index}`);
  assert.equal(tunnel.client.paths[0].sent.datagrams, sentBefore + 10, "sent at once, not queued");
  tunnel.run(1000);
  const delivered = tunnel.toTarget.map((item) => text(item.payload));
  assert.deepEqual(delivered, [
    "first",
    ...Array.from({ length: 10 }, (_, index) => `after ${index}`),
  ]);
  assert.equal(tunnel.client.counters.handshakesCompleted, 2, "the RESET cost one handshake");
});

Deno.test("without a secret, replies sent across a re-handshake are all delivered", () => {
  const tunnel = wire(1);
  tunnel.send(1, "hello");
  tunnel.run(100);
  const sessionId = tunnel.toTarget[0].sessionId;
  // The client hears nothing for a while (its path drops replies) and starts a new handshake…
  tunnel.pathUp[0] = false;
  tunnel.run(1700);
  tunnel.pathUp[0] = true;
  // …while the target keeps sending under the old keys before the new ones are confirmed.
  for (let index = 0; index < 9; index++) {
    tunnel.reply(sessionId, 1, `reply ${index}`);
    tunnel.run(tunnel.now + 20);
  }
  tunnel.send(1, "confirm new keys");
  tunnel.run(tunnel.now + 500);
  for (let index = 9; index < 12; index++) tunnel.reply(sessionId, 1, `reply ${index}`);
  tunnel.run(tunnel.now + 500);
  const replies = tunnel.toApp.map((item) => text(item.payload));
  assert.deepEqual(replies, Array.from({ length: 12 }, (_, index) => `reply ${index}`));
});
