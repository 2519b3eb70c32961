/**
 * Status snapshots against a known traffic pattern (tests/status_fixtures.ts): the counts the JSON
 * reports are the traffic that was sent, per path and per session; what is not measured yet is null.
 */
import { clientSeams, serverSeams } from "../session/engine_seams.ts";
import assert from "node:assert/strict";
import { ClientCore } from "../../lib/session/client_core.ts";
import { silentLogger } from "../../lib/base/log.ts";
import { ServerCore, ServerSession } from "../../lib/session/server_core.ts";
import {
  clientStatus,
  type ClientStatusSource,
  MAX_LISTED_SESSIONS,
  serverStatus,
  type ServerStatusSource,
} from "../../lib/ops/status.ts";
import { DROP_REASONS } from "../../lib/base/counters.ts";
import {
  CLEAN_DELAY_MS,
  DATAGRAM_BYTES,
  DATAGRAM_COUNT,
  LOSSY_DELAY_MS,
  LOSSY_FORWARD_LOSS_PERCENT,
  runKnownTraffic,
  SEED,
} from "./status_fixtures.ts";

Deno.test(`client status counts the known traffic, per path (seed ${SEED})`, () => {
  const fixture = runKnownTraffic();
  const status = clientStatus(fixture.client, fixture.nowMs);
  const core = fixture.scenario.client.core;

  assert.equal(status.program, "mpclient");
  assert.equal(status.mode, "redundant");
  assert.equal(status.encrypted, true);
  assert.equal(status.listen, "127.0.0.1:4000");
  assert.equal(status.uptimeSeconds, Math.round(fixture.nowMs) / 1000);
  assert.match(status.session.id, /^[0-9a-f]{8}$/);
  assert.equal(status.session.state, "established");
  assert.equal(status.session.handshakes, 1);
  assert.deepEqual(status.traffic.fromApp, {
    datagrams: DATAGRAM_COUNT,
    bytes: DATAGRAM_COUNT * DATAGRAM_BYTES,
  });
  assert.deepEqual(status.traffic.toApp, {
    datagrams: DATAGRAM_COUNT,
    bytes: DATAGRAM_COUNT * DATAGRAM_BYTES,
  });
  // Every reply came over both paths (the reverse links lose nothing): one copy each is redundant.
  assert.ok(status.traffic.duplicates >= DATAGRAM_COUNT, `${status.traffic.duplicates}`);
  assert.deepEqual(Object.keys(status.drops), DROP_REASONS);
  assert.ok(Object.values(status.drops).every((count) => count === 0));
  assert.equal(status.flows, 1);

  assert.deepEqual(status.paths.map((path) => [path.index, path.name, path.state]), [
    [0, "path0", "up"],
    [1, "path1", "up"],
  ]);
  for (const [index, path] of status.paths.entries()) {
    const state = core.paths[index];
    assert.equal(path.remote, "127.0.0.1:2000");
    assert.equal(path.local, `0.0.0.0:${40_000 + index}`);
    assert.equal(path.backup, false);
    // Redundant mode: every datagram on every path, plus the probes and the handshake.
    assert.equal(path.sent.datagrams, DATAGRAM_COUNT + state.probesSent + 1);
    assert.deepEqual(path.sent, state.sent);
    assert.deepEqual(path.received, state.received);
    assert.equal(path.probesSent, state.probesSent);
    assert.equal(path.probeReplies, state.probeRepliesReceived);
    assert.deepEqual(path.sendErrors, {});
    // Probes share the lossy path's forward loss; nothing is lost on the way back.
    if (index === 0) assert.equal(path.roundTripLoss, 0);
    else assert.ok(path.roundTripLoss! > 0 && path.roundTripLoss! < 0.3, `${path.roundTripLoss}`);
    assert.ok(path.lossFromServer! < 0.05, `loss from server ${path.lossFromServer}`);
    assert.ok(path.lastHeardAgoMs !== null && path.lastHeardAgoMs < 600);
  }
  const [clean, lossy] = status.paths;
  assert.equal(clean.rttMs, 2 * CLEAN_DELAY_MS);
  assert.equal(lossy.rttMs, 2 * LOSSY_DELAY_MS);
  assert.equal(clean.jitterMs, 0);
  assert.equal(clean.lossToServer, 0);
  assert.ok(
    Math.abs(lossy.lossToServer! - LOSSY_FORWARD_LOSS_PERCENT / 100) < 0.06,
    `loss to server ${lossy.lossToServer}`,
  );
  // JSON round trip: nothing in the snapshot is lost in serialisation.
  assert.deepEqual(JSON.parse(JSON.stringify(status)), status);
});

Deno.test(`server status counts the known traffic, per session and path (seed ${SEED})`, () => {
  const fixture = runKnownTraffic();
  const status = serverStatus(fixture.server, fixture.nowMs, { encrypted: true });
  const core = fixture.scenario.server.core;

  assert.equal(status.program, "mpserver");
  assert.equal(status.encrypted, true);
  assert.deepEqual(status.listen, ["0.0.0.0:2000"]);
  assert.equal(status.target, "127.0.0.1:1194");
  assert.equal(status.traffic.toTarget, DATAGRAM_COUNT);
  assert.equal(status.traffic.fromTarget, DATAGRAM_COUNT);
  assert.deepEqual(status.traffic.received, core.counters.received);
  assert.deepEqual(status.traffic.sent, core.counters.sent);
  assert.equal(status.traffic.duplicates, core.counters.duplicates);
  assert.deepEqual(Object.keys(status.drops), DROP_REASONS);
  assert.equal(status.sessionsOpened, 1);
  assert.equal(status.sessionsClosed, 0);
  assert.equal(status.sessionCount, 1);
  assert.equal(status.sessionsTruncated, false);
  assert.equal(status.targetSockets, 1);

  const [session] = status.sessions;
  assert.equal(session.id, fixture.scenario.client.core.sessionId.toString(16).padStart(8, "0"));
  assert.equal(session.confirmed, true);
  assert.equal(session.keyPhase, 0);
  assert.equal(session.flows, 1);
  // First copies only: every datagram once, plus the probes of both paths.
  const probes = fixture.scenario.client.core.paths.reduce((sum, path) => sum + path.probesSent, 0);
  assert.ok(
    session.fromClient.datagrams >= DATAGRAM_COUNT &&
      session.fromClient.datagrams <= DATAGRAM_COUNT + probes,
    `from client ${session.fromClient.datagrams}`,
  );
  // Each echo went back on both paths.
  assert.ok(session.toClient.datagrams >= 2 * DATAGRAM_COUNT, `${session.toClient.datagrams}`);
  assert.equal(session.paths.length, 2);
  const [clean, lossy] = session.paths;
  assert.equal(clean.address, "path0:40000");
  assert.equal(lossy.address, "path1:40001");
  // What the server received on each path: all of the clean one's, about 80 % of the lossy one's.
  const sent = fixture.scenario.client.core.paths.map((path) => path.sent.datagrams);
  assert.equal(clean.received, sent[0] - 1); // the INIT is not a session datagram
  const lossyShare = lossy.received / sent[1];
  assert.ok(Math.abs(lossyShare - 0.8) < 0.05, `lossy path delivered ${lossyShare}`);
  assert.deepEqual(JSON.parse(JSON.stringify(status)), status);
});

Deno.test("a client that has heard nothing reports nulls, not zeros", () => {
  const core = new ClientCore({
    ...clientSeams,
    pathLabels: ["a", "b"],
    backupPaths: [false, true],
    logger: silentLogger,
  });
  core.recordSendError(1, "refused", 10);
  const source: ClientStatusSource = {
    core,
    startedAtMs: 1000,
    listenAddress: { hostname: "::1", port: 4000 },
    flowCount: 0,
    pathAddresses: () =>
      core.paths.map(() => ({
        local: { hostname: "::", port: 5000 },
        remote: { hostname: "2001:db8::7", port: 2000 },
      })),
  };
  const status = clientStatus(source, 3500);
  assert.equal(status.uptimeSeconds, 2.5);
  assert.equal(status.encrypted, false);
  assert.equal(status.listen, "[::1]:4000");
  assert.equal(status.session.state, "connecting");
  assert.equal(status.session.handshakes, 0);
  const [a, b] = status.paths;
  assert.equal(a.state, "probing");
  assert.equal(a.remote, "[2001:db8::7]:2000");
  assert.equal(a.local, "[::]:5000");
  assert.equal(b.backup, true);
  for (const path of status.paths) {
    assert.equal(path.rttMs, null);
    assert.equal(path.rttVarianceMs, null);
    assert.equal(path.jitterMs, null);
    assert.equal(path.lossToServer, null);
    assert.equal(path.lossFromServer, null);
    assert.equal(path.roundTripLoss, null);
    assert.equal(path.lastHeardAgoMs, null);
  }
  assert.deepEqual(a.sendErrors, {});
  assert.deepEqual(b.sendErrors, { refused: 1 });
});

Deno.test("the server lists the most recently active sessions and says the list is cut", () => {
  const core = new ServerCore({ ...serverSeams, logger: silentLogger });
  const sessions = new Map<number, ServerSession>();
  const total = MAX_LISTED_SESSIONS + 5;
  for (let id = 1; id <= total; id++) {
    const session = new ServerSession(id, 0);
    session.lastActiveMs = id; // session `total` is the most recently active
    sessions.set(id, session);
  }
  const source: ServerStatusSource = {
    core: { sessions, counters: core.counters },
    startedAtMs: 0,
    listeners: [],
    target: { hostname: "127.0.0.1", port: 53 },
    targetCounters: {
      toTarget: 0,
      fromTarget: 0,
      foreign: 0,
      sendErrors: 0,
      clientSendErrors: 0,
      flowLimit: 0,
    },
    flowCount: 0,
    flowsOf: () => 0,
  };
  const status = serverStatus(source, 10_000, { encrypted: false });
  assert.equal(status.sessionCount, total);
  assert.equal(status.sessions.length, MAX_LISTED_SESSIONS);
  assert.equal(status.sessionsTruncated, true);
  assert.equal(status.sessions[0].id, total.toString(16).padStart(8, "0"));
  assert.equal(status.sessions.at(-1)!.id, (6).toString(16).padStart(8, "0"));
  assert.equal(status.sessions[0].confirmed, false);
  assert.equal(status.sessions[0].keyPhase, null);
  assert.equal(status.sessions[0].ageSeconds, 10);
});
