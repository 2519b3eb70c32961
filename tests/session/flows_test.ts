/**
 * Declared flows end to end through both cores (in memory): a client names a flow's target, the
 * server's driver (faked here, with the policy of `lib/session/target_policy.ts`) opens or refuses it, held
 * datagrams follow the answer, a refused flow delivers nothing, and a server restart re-declares.
 */
import { clientSeams, serverSeams } from "./engine_seams.ts";
import assert from "node:assert/strict";
import { seededRandom } from "../../lib/base/rng.ts";
import { ClientCore, type ClientOutbox } from "../../lib/session/client_core.ts";
import type { AllowRule } from "../../lib/session/allow_rule.ts";
import { parseServerConfig } from "../../lib/ops/config.ts";
import { silentLogger } from "../../lib/base/log.ts";
import { ServerCore, type ServerOutbox } from "../../lib/session/server_core.ts";
import {
  addressAllowed,
  chooseTarget,
  type TargetPolicy,
} from "../../lib/session/target_policy.ts";
import type { UdpAddress } from "../../lib/io/transport.ts";
import {
  DECLARED_FLOW_BASE,
  decodeFlowOpenBody,
  decodeFlowReplyBody,
  encodeFlowOpenBody,
  encodeFlowReplyBody,
  type FlowRefusal,
  type FlowTarget,
  MessageType,
} from "../../lib/wire/messages.ts";

const config = parseServerConfig(
  "target dns 127.0.0.1 53\nallow 10.0.0.0/8 53\nallow ::1 5000-5001\n",
  "mpserver.conf",
);
const POLICY: TargetPolicy = { targets: config.targets, allow: config.allow as AllowRule[] };

/** The policy as the real driver applies it, with "resolution" of literals only. */
function decide(target: FlowTarget): "open" | FlowRefusal {
  const choice = chooseTarget(POLICY, target);
  if (!choice.ok) return choice.refusal;
  if (choice.named) return "open";
  if (!/^[0-9.]+$|:/.test(choice.host)) return "unresolvable";
  return addressAllowed(POLICY, choice.host, choice.port) ? "open" : "denied";
}

function wire(options: { answerLater?: boolean } = {}) {
  /** While true, every FLOW_OPEN the client sends is lost on the way. */
  let losingFlowOpens = false;
  let server = new ServerCore({ ...serverSeams, logger: silentLogger });
  const client = new ClientCore({
    ...clientSeams,
    pathLabels: ["p0", "p1"],
    logger: silentLogger,
    random: seededRandom(7),
  });
  const toTarget: { flowId: number; text: string }[] = [];
  const toApp: { flowId: number; text: string }[] = [];
  const refused: { flowId: number; reason: FlowRefusal }[] = [];
  const queue: { toServer: boolean; pathIndex: number; datagram: Uint8Array }[] = [];
  const opened: { sessionId: number; flowId: number; target: FlowTarget }[] = [];
  const addresses: UdpAddress[] = [0, 1].map((index) => ({
    transport: "udp",
    hostname: "127.0.0.1",
    port: 4000 + index,
  }));
  const clientOutbox: ClientOutbox = {
    scratch: new Uint8Array(65536),
    sendOnPath: (pathIndex, datagram) => {
      if (losingFlowOpens && datagram[1] === MessageType.flowOpen) return;
      queue.push({ toServer: true, pathIndex, datagram: datagram.slice() });
    },
    deliverToApp: (flowId, payload) =>
      toApp.push({ flowId, text: new TextDecoder().decode(payload) }),
    flowRefused: (flowId, reason) => refused.push({ flowId, reason }),
  };
  const serverOutbox: ServerOutbox = {
    scratch: new Uint8Array(65536),
    sendTo: (address, datagram) =>
      queue.push({
        toServer: false,
        pathIndex: addresses.findIndex((known) => known.port === address.port),
        datagram: datagram.slice(),
      }),
    deliverToTarget: (_sessionId, flowId, payload) =>
      toTarget.push({ flowId, text: new TextDecoder().decode(payload) }),
    openTarget: (sessionId, flowId, target) => {
      opened.push({ sessionId, flowId, target });
      if (!options.answerLater) {
        server.flowOpened(sessionId, flowId, decide(target), now, serverOutbox);
      }
    },
  };
  let now = 0;
  const state = {
    client,
    get server() {
      return server;
    },
    toTarget,
    toApp,
    refused,
    opened,
    serverOutbox,
    get now() {
      return now;
    },
    run(untilMs: number, stepMs = 10) {
      for (; now <= untilMs; now += stepMs) {
        if ((client.nextDeadlineMs() ?? Infinity) <= now) client.onTimer(now, clientOutbox);
        if ((server.nextDeadlineMs() ?? Infinity) <= now) server.onTimer(now, serverOutbox);
        while (queue.length > 0) {
          const { toServer, pathIndex, datagram } = queue.shift()!;
          if (toServer) server.receive(addresses[pathIndex], datagram, now, serverOutbox);
          else client.receiveFromPath(pathIndex, datagram, now, clientOutbox);
        }
      }
    },
    open(flowId: number, target: FlowTarget) {
      client.openFlow(flowId, target, now, clientOutbox);
    },
    send(flowId: number, text: string) {
      client.sendFromApp(flowId, new TextEncoder().encode(text), now, clientOutbox);
    },
    reply(flowId: number, text: string) {
      server.sendFromTarget(
        client.sessionId,
        flowId,
        new TextEncoder().encode(text),
        now,
        serverOutbox,
      );
    },
    loseFlowOpens(losing: boolean) {
      losingFlowOpens = losing;
    },
    restartServer() {
      server = new ServerCore({ ...serverSeams, logger: silentLogger });
    },
  };
  return state;
}

Deno.test("FLOW_OPEN and FLOW_REPLY bodies round-trip; hostile bodies decode as undefined", () => {
  for (
    const target of [
      { kind: "named", name: "dns" },
      { kind: "address", host: "10.0.0.53", port: 53 },
      { kind: "address", host: "2001:db8::7", port: 5353 },
      { kind: "address", host: "example.com", port: 443 },
    ] as FlowTarget[]
  ) {
    assert.deepEqual(decodeFlowOpenBody(encodeFlowOpenBody(target)), target);
  }
  for (const status of ["open", "denied", "unknown-target", "unresolvable", "limit"] as const) {
    assert.equal(decodeFlowReplyBody(encodeFlowReplyBody(status)), status);
  }
  const named = encodeFlowOpenBody({ kind: "named", name: "dns" });
  assert.equal(decodeFlowOpenBody(named.subarray(0, 6)), undefined, "truncated");
  assert.equal(decodeFlowOpenBody(new Uint8Array([1, 0, 0, 1, 0x0a])), undefined, "control char");
  assert.equal(decodeFlowOpenBody(new Uint8Array([2, 0, 0, 1, 0x41])), undefined, "port 0");
  assert.equal(decodeFlowOpenBody(new Uint8Array([1, 0, 53, 1, 0x41])), undefined, "named, port");
  assert.equal(decodeFlowOpenBody(new Uint8Array([3, 0, 53, 1, 0x41])), undefined, "kind");
  assert.equal(decodeFlowOpenBody(new Uint8Array([2, 0, 53, 2, 0xc3, 0x28])), undefined, "utf-8");
  assert.equal(decodeFlowReplyBody(new Uint8Array([99, 0, 0, 0])), undefined);
  assert.throws(() => encodeFlowOpenBody({ kind: "named", name: "" }), RangeError);
  for (let i = 0; i < 2000; i++) {
    const random = crypto.getRandomValues(new Uint8Array(1 + (i % 40)));
    decodeFlowOpenBody(random); // never throws
    decodeFlowReplyBody(random);
  }
});

Deno.test("policy: names always, addresses by allow rule after resolution, default deny", () => {
  assert.equal(decide({ kind: "named", name: "dns" }), "open");
  assert.equal(decide({ kind: "named", name: "vpn" }), "unknown-target");
  assert.equal(decide({ kind: "address", host: "10.1.2.3", port: 53 }), "open");
  assert.equal(decide({ kind: "address", host: "10.1.2.3", port: 54 }), "denied");
  assert.equal(decide({ kind: "address", host: "192.168.1.1", port: 53 }), "denied");
  assert.equal(decide({ kind: "address", host: "::1", port: 5001 }), "open");
  assert.equal(decide({ kind: "address", host: "::2", port: 5001 }), "denied");
  const closed = chooseTarget({ targets: new Map(), allow: [] }, {
    kind: "address",
    host: "10.0.0.1",
    port: 53,
  });
  assert.deepEqual(closed, { ok: false, refusal: "denied" });
});

Deno.test("a declared flow reaches its target with its first datagram, and replies come back", () => {
  const tunnel = wire();
  tunnel.run(100);
  const flowId = DECLARED_FLOW_BASE + 1;
  tunnel.open(flowId, { kind: "named", name: "dns" });
  tunnel.send(flowId, "query");
  tunnel.run(200);
  assert.deepEqual(tunnel.toTarget, [{ flowId, text: "query" }]);
  assert.equal(tunnel.client.flowState(flowId), "open");
  assert.equal(tunnel.opened.length, 1, "one declaration, however many copies");
  tunnel.reply(flowId, "answer");
  tunnel.run(300);
  assert.deepEqual(tunnel.toApp, [{ flowId, text: "answer" }]);
});

Deno.test("datagrams that overtake their FLOW_OPEN wait; a slow answer releases them in order", () => {
  const tunnel = wire({ answerLater: true });
  tunnel.run(100);
  const flowId = DECLARED_FLOW_BASE + 2;
  tunnel.open(flowId, { kind: "address", host: "10.0.0.53", port: 53 });
  for (const text of ["a", "b", "c"]) tunnel.send(flowId, text);
  tunnel.run(500);
  assert.equal(tunnel.toTarget.length, 0);
  const { sessionId } = tunnel.opened[0];
  tunnel.server.flowOpened(sessionId, flowId, "open", tunnel.now, tunnel.serverOutbox);
  tunnel.run(600);
  assert.deepEqual(tunnel.toTarget.map((entry) => entry.text), ["a", "b", "c"]);
  assert.equal(tunnel.client.flowState(flowId), "open");
});

Deno.test("a refused flow reaches nothing; the client is told once and drops what follows", () => {
  const tunnel = wire();
  tunnel.run(100);
  const flowId = DECLARED_FLOW_BASE + 3;
  tunnel.open(flowId, { kind: "address", host: "192.168.1.1", port: 22 });
  tunnel.send(flowId, "knock");
  tunnel.run(300);
  tunnel.send(flowId, "knock again");
  tunnel.run(400);
  assert.deepEqual(tunnel.toTarget, []);
  assert.deepEqual(tunnel.refused, [{ flowId, reason: "denied" }]);
  assert.equal(tunnel.client.flowState(flowId), "denied");
  assert.equal(tunnel.client.counters.drops["target-refused"], 1);
  assert.ok(tunnel.server.counters.drops["target-refused"] >= 1);
});

Deno.test("a declared flow's datagram never falls back to the default target", () => {
  const tunnel = wire({ answerLater: true });
  tunnel.run(100);
  // The FLOW_OPEN never arrives (a forged or lost one): the datagram waits 1 s, then is dropped.
  const flowId = DECLARED_FLOW_BASE + 4;
  tunnel.open(flowId, { kind: "named", name: "dns" });
  tunnel.send(flowId, "x");
  tunnel.run(2000);
  assert.equal(tunnel.toTarget.length, 0);
  assert.ok(tunnel.server.counters.drops["flow-unknown"] >= 1);
  // Classic flows are untouched.
  tunnel.send(7, "classic");
  tunnel.run(2100);
  assert.deepEqual(tunnel.toTarget, [{ flowId: 7, text: "classic" }]);
});

Deno.test("after a server restart the client declares its flows again", () => {
  const tunnel = wire();
  tunnel.run(100);
  const flowId = DECLARED_FLOW_BASE + 5;
  tunnel.open(flowId, { kind: "named", name: "dns" });
  tunnel.run(200);
  tunnel.restartServer();
  // The first datagram meets a server that does not know the session: it answers RESET.
  tunnel.send(flowId, "lost in the restart");
  tunnel.run(1500);
  tunnel.send(flowId, "after restart");
  tunnel.run(3000);
  assert.equal(tunnel.opened.length, 2);
  assert.ok(
    tunnel.toTarget.some((entry) => entry.text === "after restart"),
    `held, then delivered: ${JSON.stringify(tunnel.toTarget)} server drops ${
      JSON.stringify(tunnel.server.counters.drops)
    } client ${JSON.stringify(tunnel.client.counters)}`,
  );
  assert.equal(tunnel.client.flowState(flowId), "open");
});

Deno.test("a reused flow id waits for its new declaration's answer: nothing reaches the old target", () => {
  const tunnel = wire({ answerLater: true });
  tunnel.run(100);
  const flowId = DECLARED_FLOW_BASE + 6;
  tunnel.open(flowId, { kind: "named", name: "dns" });
  tunnel.run(200);
  const first = tunnel.opened[0];
  tunnel.server.flowOpened(first.sessionId, flowId, "open", tunnel.now, tunnel.serverOutbox);
  tunnel.send(flowId, "for dns");
  tunnel.run(300);
  assert.deepEqual(tunnel.toTarget, [{ flowId, text: "for dns" }]);
  // The application goes; much later the id is given to another one, for another target, and
  // every copy of its first FLOW_OPEN is lost: the server still has the id open toward dns.
  tunnel.client.closeFlow(flowId);
  tunnel.loseFlowOpens(true);
  tunnel.open(flowId, { kind: "address", host: "10.0.0.53", port: 53 });
  tunnel.send(flowId, "for 10.0.0.53");
  // A late reply of the old target must not reach the new application.
  tunnel.reply(flowId, "old answer");
  tunnel.run(450);
  assert.equal(tunnel.toTarget.length, 1, "held at the client until the new declaration is open");
  assert.equal(tunnel.toApp.length, 0, "the old target's reply is not the new flow's");
  tunnel.loseFlowOpens(false);
  tunnel.run(600); // the FLOW_OPEN is sent again every 200 ms
  assert.equal(tunnel.toTarget.length, 1, "still held: the new declaration is not answered yet");
  const second = tunnel.opened[1];
  assert.deepEqual(second.target, { kind: "address", host: "10.0.0.53", port: 53 });
  tunnel.server.flowOpened(second.sessionId, flowId, "open", tunnel.now, tunnel.serverOutbox);
  tunnel.run(700);
  assert.deepEqual(tunnel.toTarget.map((entry) => entry.text), ["for dns", "for 10.0.0.53"]);
  assert.equal(tunnel.client.flowState(flowId), "open");
});
