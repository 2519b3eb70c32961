/**
 * The protocol cores end to end in the network simulator: residual loss over lossy paths, no
 * duplicates, restarts of either end, a dead path, NAT rebinding, replayed and forged datagrams, and
 * reproducibility. The harness is `tunnel_harness.ts`.
 *
 * Statistical assertions use fixed seeds, so they are deterministic; each tolerance is 4 standard
 * deviations of the quantity under independent losses (for a share p of n trials, sd =
 * sqrt(p(1-p)/n)), so another seed passes too except about once in 16 000 assertions. Every test
 * names its seed, and failures repeat it in the message.
 *
 * Unless a test says otherwise the paths are 10, 20 and 30 ms one way with 2 ms of jitter, the
 * application sends one 1000-byte datagram per millisecond from t = 1 s (the session is up by then),
 * and the target echoes each datagram back.
 */

import assert from "node:assert/strict";
import { opensslAeadUnavailable, opensslLiveContexts } from "../../lib/crypto/aead_openssl.ts";
import { DEFAULT_CLIENT_TIMING } from "../../lib/session/client_core.ts";
import { aeadImplementation } from "../../lib/crypto/aead_factory.ts";
import { BUSY_PROBE_INTERVAL_MS } from "../../lib/session/scheduler.ts";
import { type Random, seededRandom } from "../../lib/base/rng.ts";
import { encodeReset, MessageType } from "../../lib/wire/messages.ts";
import type { ObservedDatagram, PathOptions } from "./network.ts";
import { TunnelScenario } from "./tunnel_harness.ts";

const SECRET = "correct horse battery staple 42";
const STREAM_START_MS = 1000;

/** A test whose name and failure messages carry its seed. */
function simTest(name: string, seed: number, body: (seed: number) => void): void {
  Deno.test(`${name} (seed ${seed})`, () => {
    try {
      body(seed);
    } catch (error) {
      if (error instanceof Error) error.message = `seed ${seed}: ${error.message}`;
      throw error;
    }
  });
}

/** Asserts `|observed - expected| <= 4 sd` for a share of `trials` independent trials. */
function assertShareNear(observed: number, expected: number, trials: number, what: string): void {
  const fourSd = 4 * Math.sqrt(expected * (1 - expected) / trials);
  assert.ok(
    Math.abs(observed - expected) <= fourSd,
    `${what}: ${observed.toFixed(5)} is not within ${fourSd.toFixed(5)} (4 sd, n = ${trials}) ` +
      `of ${expected}`,
  );
}

/** `count` paths of 10, 20, 30 … ms one way, 2 ms jitter, plus `extra` impairments on each. */
function paths(count: number, extra: PathOptions["both"] = {}): PathOptions[] {
  return Array.from(
    { length: count },
    (_, index) => ({ both: { delayMs: 10 + 10 * index, jitterMs: 2, ...extra } }),
  );
}

/** Sequence numbers `0 .. count-1` the recorder never got. */
function missing(recorder: { firstArrivalMs(seq: number): number | undefined }, count: number) {
  const lost: number[] = [];
  for (let seq = 0; seq < count; seq++) {
    if (recorder.firstArrivalMs(seq) === undefined) lost.push(seq);
  }
  return lost;
}

/** Asserts that neither the target nor the application saw a duplicate or a foreign payload. */
function assertCleanDeliveries(scenario: TunnelScenario): void {
  const sides = [["target", scenario.target.recorder], ["app", scenario.app.recorder]] as const;
  for (const [side, recorder] of sides) {
    assert.equal(recorder.duplicates, 0, `${side}: duplicates`);
    assert.equal(recorder.malformed, 0, `${side}: corrupted payloads`);
    assert.equal(recorder.foreign, 0, `${side}: payloads of another stream`);
  }
  assert.equal(scenario.target.otherFlows, 0, "target: deliveries on another flow");
  assert.equal(scenario.app.otherFlows, 0, "app: deliveries on another flow");
}

// ---------------------------------------------------------------------------------------------------
// 1–3. Residual loss and duplicates

/** Runs a stream over `scenario` and returns forward and reply loss. */
function runStream(scenario: TunnelScenario, count: number) {
  const stream = scenario.startStream({ startMs: STREAM_START_MS, count });
  scenario.network.runUntil(stream.lastSendMs + 1000);
  const echoes = scenario.target.echoesSent;
  return {
    forwardLoss: scenario.target.recorder.lossRatio(count),
    replyLoss: 1 - scenario.app.recorder.unique / echoes,
    echoes,
  };
}

for (
  const { secret, count, seed } of [
    { secret: undefined, count: 100_000, seed: 101 },
    // The AEAD costs ~50 µs of wall time per datagram here (a seal and an open each way), so the
    // sealed run is shorter; its tolerance widens accordingly.
    { secret: SECRET, count: 30_000, seed: 102 },
  ]
) {
  simTest(
    `redundant over 3 × 20 % loss: ${secret ? "sealed" : "plaintext"} forward and reply ` +
      `residual loss ≈ 0.8 %, no duplicates`,
    seed,
    () => {
      const scenario = new TunnelScenario({
        seed,
        secret,
        echo: true,
        paths: paths(3, { lossPercent: 20 }),
      });
      const { forwardLoss, replyLoss, echoes } = runStream(scenario, count);
      // A datagram is lost when all three independent copies are: p = 0.2^3 = 0.008 per
      // direction. Replies are counted against what the target echoed (each echo is a fresh trial).
      assertShareNear(forwardLoss, 0.008, count, "forward loss");
      assertShareNear(replyLoss, 0.008, echoes, "reply loss");
      assertCleanDeliveries(scenario);
      // Exact, not statistical: every datagram of which one copy crossed was delivered once.
      assert.equal(scenario.target.recorder.unique, scenario.server.wireArrivals.distinct);
      assert.equal(scenario.app.recorder.unique, scenario.client.wireArrivals.distinct);
      assert.equal(scenario.client.core.counters.handshakesCompleted, 1);
    },
  );
}

simTest(
  "redundant over 3 × 20 % loss, one-way traffic: forward loss within the 1.6 % target",
  103,
  (seed) => {
    const count = 50_000;
    const scenario = new TunnelScenario({ seed, paths: paths(3, { lossPercent: 20 }) });
    const { forwardLoss } = runStream(scenario, count);
    // Theory is 0.8 % as above, but with no reply traffic only probes keep a path "up": four probe
    // round trips in a row fail with p = 0.36^4 ≈ 1.7 %, the path is marked down for about a probe
    // interval and the datagrams of that time ride two paths (4 % loss). Measured 0.82–1.05 % over
    // seeds 1–3 and 100 000 datagrams (0.77–0.84 % with pathDownAfterMs = ∞), hence the target's
    // bound, not theory's.
    assert.ok(forwardLoss <= 0.016, `forward loss ${forwardLoss}`);
    assertCleanDeliveries(scenario);
    assert.equal(scenario.target.recorder.unique, scenario.server.wireArrivals.distinct);
  },
);

simTest("a single path at 20 % loss leaves ≈ 20 % residual loss each way", 201, (seed) => {
  const count = 20_000;
  const scenario = new TunnelScenario({ seed, echo: true, paths: paths(1, { lossPercent: 20 }) });
  const { forwardLoss, replyLoss, echoes } = runStream(scenario, count);
  // p = 0.2; 4 sd over 20 000 datagrams ≈ 0.011.
  assertShareNear(forwardLoss, 0.2, count, "forward loss");
  assertShareNear(replyLoss, 0.2, echoes, "reply loss");
  assertCleanDeliveries(scenario);
  assert.equal(scenario.target.recorder.unique, scenario.server.wireArrivals.distinct);
  assert.equal(scenario.app.recorder.unique, scenario.client.wireArrivals.distinct);
});

simTest(
  "reordering, duplication and jitter on every path: no duplicates, no loss beyond the paths'",
  301,
  (seed) => {
    const count = 20_000;
    const scenario = new TunnelScenario({
      seed,
      echo: true,
      paths: paths(3, { lossPercent: 10, jitterMs: 20, reorderPercent: 10, duplicatePercent: 10 }),
    });
    const { forwardLoss, replyLoss, echoes } = runStream(scenario, count);
    const network = scenario.network;
    const duplicated = network.paths.reduce(
      (sum, path) => sum + path.forward.counters.duplicated + path.reverse.counters.duplicated,
      0,
    );
    assert.ok(duplicated > 10_000, `the links made ${duplicated} extra copies`);
    assertCleanDeliveries(scenario);
    // The exact check: whatever crossed at least once was delivered, once.
    assert.equal(scenario.target.recorder.unique, scenario.server.wireArrivals.distinct);
    assert.equal(scenario.app.recorder.unique, scenario.client.wireArrivals.distinct);
    // p = 0.1^3 = 0.001; 4 sd over 20 000 ≈ 0.0009.
    assertShareNear(forwardLoss, 0.001, count, "forward loss");
    assertShareNear(replyLoss, 0.001, echoes, "reply loss");
  },
);

// ---------------------------------------------------------------------------------------------------
// 4–5. Restarts

for (const { secret, seed } of [{ secret: undefined, seed: 401 }, { secret: SECRET, seed: 402 }]) {
  simTest(
    `${secret ? "sealed" : "plaintext"}: a server restarted mid-stream without state leaves ` +
      `gaps under 1 s at the target and the application`,
    seed,
    () => {
      const count = 8000;
      const restartMs = 4000;
      const scenario = new TunnelScenario({
        seed,
        secret,
        echo: true,
        paths: paths(3, { lossPercent: 20 }),
      });
      const stream = scenario.startStream({ startMs: STREAM_START_MS, count });
      scenario.network.schedule(restartMs, () => scenario.restartServer());
      scenario.network.runUntil(stream.lastSendMs + 1000);
      const target = scenario.target.recorder;
      const app = scenario.app.recorder;
      // A RESET comes back within one round trip; the handshake takes one more (a retry every
      // 250 ms if all three INITs or RESPONSEs are lost, p = (1 - 0.8²)³ ≈ 0.05 a round).
      assert.ok(target.longestGapMs(restartMs - 500, restartMs + 2000) < 1000);
      assert.ok(app.longestGapMs(restartMs - 500, restartMs + 2000) < 1000);
      // The stream carries on at its usual pace (at 1 ms per datagram and 0.8 % loss, a 50 ms
      // silence has p ≈ 0.008^50).
      assert.ok(target.longestGapMs(restartMs + 1000, stream.lastSendMs) < 50);
      assert.ok(app.longestGapMs(restartMs + 1000, stream.lastSendMs) < 50);
      assertCleanDeliveries(scenario);
      const server = scenario.server.core;
      assert.equal(server.sessions.size, 1);
      assert.equal(server.sessions.get(scenario.client.core.sessionId)?.confirmed, true);
    },
  );
}

simTest(
  "a client restarted mid-stream reaches the target within 1 s; its old session expires",
  501,
  (seed) => {
    const count = 12_000;
    const restartMs = 4000;
    const idleTimeoutMs = 5000;
    const scenario = new TunnelScenario({
      seed,
      echo: true,
      paths: paths(3, { lossPercent: 20 }),
      serverLimits: { sessionIdleTimeoutMs: idleTimeoutMs },
    });
    const network = scenario.network;
    const stream = scenario.startStream({ startMs: STREAM_START_MS, count });
    const oldSessionId = scenario.client.core.sessionId;
    let newSessionId = 0;
    network.schedule(restartMs, () => newSessionId = scenario.restartClient().core.sessionId);
    network.runUntil(restartMs + 1000);
    assert.notEqual(newSessionId, oldSessionId);
    const server = scenario.server.core;
    assert.equal(server.sessions.size, 2, "both sessions, one second after the restart");
    const oldLastActiveMs = server.sessions.get(oldSessionId)!.lastActiveMs;
    assert.ok(oldLastActiveMs < restartMs + 100, `old session active at ${oldLastActiveMs}`);
    network.runUntil(stream.lastSendMs + 1000);

    const newSession = scenario.target.bySession.get(newSessionId)!;
    assert.ok(newSession.firstMs - restartMs < 1000, `first datagram at ${newSession.firstMs}`);
    const target = scenario.target.recorder;
    const app = scenario.app.recorder;
    assert.ok(target.longestGapMs(restartMs - 500, restartMs + 2000) < 1000);
    assert.ok(app.longestGapMs(restartMs - 500, restartMs + 2000) < 1000);
    assertCleanDeliveries(scenario);
    // The server sweeps once a second, so the idle session goes between timeout and timeout + 1 s.
    assert.equal(server.sessions.size, 1);
    assert.equal(server.sessions.has(newSessionId), true);
    const closed = scenario.closedSessions.filter((item) => item.sessionId === oldSessionId);
    assert.equal(closed.length, 1);
    const idleMs = closed[0].atMs - oldLastActiveMs;
    assert.ok(idleMs >= idleTimeoutMs && idleMs <= idleTimeoutMs + 1000, `closed after ${idleMs}`);
  },
);

// ---------------------------------------------------------------------------------------------------
// 6–7. A dead path, a rebound path

simTest(
  "redundant, one of three clean paths dead for 3 s: no loss; marked down, then up again",
  601,
  (seed) => {
    const count = 10_000;
    const outage = { fromMs: 5000, toMs: 8000 };
    const pathOptions = paths(3);
    pathOptions[1] = { both: { ...pathOptions[1].both, outages: [outage] } };
    const scenario = new TunnelScenario({ seed, echo: true, paths: pathOptions });
    runStream(scenario, count);
    assert.equal(scenario.target.recorder.unique, count, "forward: nothing lost");
    assert.equal(scenario.app.recorder.unique, count, "replies: nothing lost");
    assertCleanDeliveries(scenario);

    const transitions = scenario.logRecords.filter((record) =>
      record.properties.path === "path1" && /^path (down|up)/.test(record.message)
    );
    const down = transitions.filter((record) => record.message === "path down");
    const upAgain = transitions.filter((record) => record.message === "path up again");
    assert.equal(down.length, 1, transitions.map((record) => record.message).join(", "));
    assert.equal(upAgain.length, 1);
    // A busy tunnel probes every 50 ms and a clean path is down after a few missed probes: well
    // under a second (never sooner than minPathDownAfterMs).
    const downAfterMs = down[0].atMs - outage.fromMs;
    assert.ok(
      downAfterMs >= DEFAULT_CLIENT_TIMING.minPathDownAfterMs && downAfterMs <= 600,
      `down ${downAfterMs} ms into the outage`,
    );
    // Probes keep going on a down path: the first after the outage brings it back in one round trip.
    const upAfterMs = upAgain[0].atMs - outage.toMs;
    assert.ok(
      upAfterMs > 0 && upAfterMs <= BUSY_PROBE_INTERVAL_MS + 2 * 22,
      `up ${upAfterMs} ms after the outage`,
    );
    assert.equal(scenario.client.core.paths[1].state, "up");
  },
);

simTest(
  "a NAT rebinding mid-stream: the server replies to the new address at once",
  701,
  (seed) => {
    const count = 10_000;
    const rebindMs = 4000.5;
    // One path, so the replies have nowhere else to go.
    const scenario = new TunnelScenario({ seed, echo: true, paths: paths(1) });
    const network = scenario.network;
    let newAddress = "";
    let unroutableWhenOldForgotten = -1;
    network.schedule(rebindMs, () => newAddress = network.path(0).rebind());
    // The client probes a busy path every 50 ms; its first PROBE from the new address moves the path.
    network.schedule(rebindMs + 200, () => {
      unroutableWhenOldForgotten = network.counters.unroutableServerSends;
    });
    runStream(scenario, count);

    assert.equal(scenario.target.recorder.unique, count, "forward: nothing lost");
    // Lost: only the echoes the server sent to the old address before it first heard the new one,
    // i.e. those of datagrams sent within one 10 ms path delay (+2 ms jitter) before the rebinding.
    const lost = missing(scenario.app.recorder, count);
    const rebindSeq = rebindMs - STREAM_START_MS;
    assert.ok(lost.length >= 1 && lost.length <= 13, `${lost.length} replies lost`);
    assert.ok(lost.every((seq) => seq < rebindSeq && seq > rebindSeq - 13), `lost ${lost}`);
    assert.ok(scenario.app.recorder.longestGapMs(rebindMs - 500, rebindMs + 500) < 25);
    const session = scenario.server.core.sessions.get(scenario.client.core.sessionId)!;
    assert.deepEqual(
      session.addresses.map((known) => `${known.address.hostname}:${known.address.port}`),
      [newAddress],
    );
    assert.equal(scenario.logsContaining("a path of the session moved").length, 1);
    // The old address gets copies until the path's first PROBE from the new one, then none.
    assert.equal(network.counters.unroutableServerSends, unroutableWhenOldForgotten);
    assert.equal(scenario.client.core.paths[0].state, "up");
    assert.equal(scenario.client.core.counters.handshakesCompleted, 1);
  },
);

simTest(
  "a late PROBE from a path's old address does not move the path back",
  702,
  (seed) => {
    const scenario = new TunnelScenario({ seed, echo: true, paths: paths(1) });
    const network = scenario.network;
    const oldAddress = network.clientAddressOf(0);
    // A PROBE from the old address that is lost on the way (the link is down for a moment) but
    // captured, to arrive after the path has moved.
    let late: Uint8Array | undefined;
    network.observe((observed) => {
      if (
        late === undefined && observed.direction === "toServer" && observed.nowMs >= 3000 &&
        observed.datagram[1] === MessageType.probe
      ) late = observed.datagram;
    });
    network.schedule(2999, () => network.path(0).forward.set({ down: true }));
    network.schedule(3400, () => network.path(0).forward.set({ down: false }));
    let newAddress = "";
    network.schedule(3500, () => newAddress = network.path(0).rebind());
    network.schedule(4500, () => network.injectToServer(oldAddress, late!));
    runStream(scenario, 5000);
    assert.ok(late, "a probe was captured");
    const session = scenario.server.core.sessions.get(scenario.client.core.sessionId)!;
    assert.deepEqual(
      session.addresses.filter((known) => known.pathIndex === 0).map((known) =>
        `${known.address.hostname}:${known.address.port}`
      ),
      [newAddress],
    );
    assert.equal(scenario.logsContaining("a path of the session moved").length, 1);
  },
);

// ---------------------------------------------------------------------------------------------------
// 8. Security

/** Every datagram either end sends in `[fromMs, toMs)`, as the observer copies it. */
function capture(scenario: TunnelScenario, fromMs: number, toMs: number): ObservedDatagram[] {
  const captured: ObservedDatagram[] = [];
  scenario.network.observe((observed) => {
    if (observed.nowMs >= fromMs && observed.nowMs < toMs) captured.push(observed);
  });
  return captured;
}

simTest(
  "sealed: a capture replayed on every path and at both ends is delivered once, no more",
  801,
  (seed) => {
    const count = 5000;
    const scenario = new TunnelScenario({ seed, secret: SECRET, echo: true, paths: paths(3) });
    const network = scenario.network;
    const captured = capture(scenario, 0, 3000);
    const stream = scenario.startStream({ startMs: STREAM_START_MS, count });
    network.runUntil(4000);
    const serverDuplicatesBefore = scenario.server.core.counters.duplicates;
    let replayed = 0;
    for (const [index, observed] of captured.entries()) {
      const atMs = 4000 + (index % 500);
      for (const path of network.paths) {
        if (observed.direction === "toServer") {
          network.injectToServer(path.clientAddress, observed.datagram, atMs);
        } else {
          network.injectToClient(path.index, observed.datagram, atMs);
        }
        replayed++;
      }
    }
    network.runUntil(stream.lastSendMs + 1000);
    assert.ok(replayed > 30_000, `replayed ${replayed}`);
    assert.equal(scenario.target.recorder.unique, count);
    assert.equal(scenario.app.recorder.unique, count);
    assertCleanDeliveries(scenario);
    // Every replayed sealed datagram is inside the window and dropped as a copy, before decryption.
    const toServer = captured.filter((item) => item.direction === "toServer").length;
    assert.ok(scenario.server.core.counters.duplicates - serverDuplicatesBefore >= 3 * toServer);
    // Replayed INITs are answered with the same RESPONSE: no new keys, no new handshake.
    assert.equal(scenario.client.core.counters.handshakesCompleted, 1);
    assert.ok(scenario.target.recorder.longestGapMs(3500, 5000) < 25);
  },
);

simTest(
  "sealed: datagrams replayed after the window has moved past them are dropped as replays",
  802,
  (seed) => {
    // The window remembers 65 536 sequence numbers; 66 000 datagrams later the first 200 are out.
    // Small and fast (0.1 ms apart, one path, no echo) to keep the AEAD's wall time down.
    const count = 66_000;
    const scenario = new TunnelScenario({ seed, secret: SECRET, paths: paths(1) });
    const network = scenario.network;
    const captured = capture(scenario, STREAM_START_MS, STREAM_START_MS + 20);
    const stream = scenario.startStream({
      startMs: STREAM_START_MS,
      count,
      intervalMs: 0.1,
      sizeBytes: 100,
    });
    network.runUntil(stream.lastSendMs + 100);
    const sealed = captured.filter((item) =>
      item.direction === "toServer" && item.datagram[1] === MessageType.data
    );
    assert.ok(sealed.length >= 199, `captured ${sealed.length}`);
    for (const observed of sealed) {
      network.injectToServer(observed.clientAddress, observed.datagram);
    }
    network.runFor(100);
    assert.equal(scenario.server.core.counters.drops.replay, sealed.length);
    assert.equal(scenario.target.recorder.unique, count);
    assertCleanDeliveries(scenario);
  },
);

/** Random bytes; half of them made to look like version-1 messages of a real type. */
function randomDatagram(random: Random): Uint8Array {
  const datagram = new Uint8Array(random.below(1200));
  const view = new DataView(datagram.buffer);
  for (let index = 0; index + 4 <= datagram.length; index += 4) {
    view.setUint32(index, random.below(2 ** 32));
  }
  for (let index = datagram.length & ~3; index < datagram.length; index++) {
    datagram[index] = random.below(256);
  }
  if (datagram.length >= 2 && random.next() < 0.5) {
    const types = Object.values(MessageType);
    datagram[0] = 1;
    datagram[1] = types[random.below(types.length)];
  }
  return datagram;
}

/** A copy of `datagram` with one to three bits flipped. */
function bitFlipped(datagram: Uint8Array, random: Random): Uint8Array {
  const copy = datagram.slice();
  const flips = 1 + random.below(3);
  for (let flip = 0; flip < flips; flip++) {
    const bit = random.below(copy.length * 8);
    copy[bit >> 3] ^= 1 << (bit & 7);
  }
  return copy;
}

/**
 * Streams 5000 datagrams over three clean sealed paths while 20 000 random and bit-flipped datagrams
 * are injected at each end (ten a millisecond for two seconds). The server's come from addresses
 * that are nobody's, except a share `spoofedShare` that claims a client path's address.
 */
function forgeryRun(seed: number, spoofedShare: number): TunnelScenario {
  const count = 5000;
  const scenario = new TunnelScenario({ seed, secret: SECRET, echo: true, paths: paths(3) });
  const network = scenario.network;
  const captured = capture(scenario, 0, 2000);
  const stream = scenario.startStream({ startMs: STREAM_START_MS, count });
  network.runUntil(2000);
  const random = seededRandom(seed);
  const toServer = captured.filter((item) => item.direction === "toServer");
  const toClient = captured.filter((item) => item.direction === "toClient");
  for (let index = 0; index < 20_000; index++) {
    const atMs = 2000 + index / 10;
    const pathIndex = random.below(3);
    const from = random.next() < spoofedShare
      ? network.path(pathIndex).clientAddress
      : `attacker:${1 + random.below(60_000)}`;
    network.injectToServer(
      from,
      index % 2 === 0
        ? randomDatagram(random)
        : bitFlipped(toServer[random.below(toServer.length)].datagram, random),
      atMs,
    );
    network.injectToClient(
      pathIndex,
      index % 2 === 0
        ? randomDatagram(random)
        : bitFlipped(toClient[random.below(toClient.length)].datagram, random),
      atMs,
    );
  }
  network.runUntil(stream.lastSendMs + 1000);
  assertCleanDeliveries(scenario);
  assert.equal(scenario.target.recorder.unique, count, "target: every datagram");
  assert.equal(scenario.app.recorder.unique, count, "app: every reply");
  assert.ok(scenario.target.recorder.longestGapMs(1500, 4500) < 25);
  assert.ok(scenario.app.recorder.longestGapMs(1500, 4500) < 25);
  return scenario;
}

simTest(
  "sealed: 20 000 random and bit-flipped datagrams at each end deliver nothing and stall nothing",
  803,
  (seed) => {
    const scenario = forgeryRun(seed, 0);
    for (
      const [side, drops] of [
        ["server", scenario.server.core.counters.drops],
        ["client", scenario.client.core.counters.drops],
      ] as const
    ) {
      // Most bit-flipped copies fall in the window and go as duplicates, before any decryption;
      // the rest fail authentication or name a session or key phase that does not exist.
      for (const reason of ["bad-tag", "malformed", "bad-version", "unknown-session"] as const) {
        assert.ok(drops[reason] > 50, `${side} drops ${reason}: ${drops[reason]}`);
      }
    }
    assert.ok(scenario.server.core.counters.drops["bad-mac"] > 0, "forged INITs");
    assert.equal(scenario.client.core.counters.handshakesCompleted, 1);
  },
);

simTest(
  "sealed: a datagram recorded in one session is refused by another, and by none after expiry",
  804,
  (seed) => {
    const count = 6500;
    const restartMs = 3000;
    const scenario = new TunnelScenario({
      seed,
      secret: SECRET,
      echo: true,
      paths: paths(3),
      serverLimits: { sessionIdleTimeoutMs: 2000 },
    });
    const network = scenario.network;
    const captured = capture(scenario, 2000, restartMs);
    const stream = scenario.startStream({ startMs: STREAM_START_MS, count });
    const oldSessionId = scenario.client.core.sessionId;
    network.schedule(restartMs, () => scenario.restartClient());
    network.runUntil(3500);
    const newSessionId = scenario.client.core.sessionId;
    // Both sessions start at key phase 0, and the new one's sequence numbers are still below the
    // captured ones, so each rewritten datagram reaches authentication and fails it.
    const sealed = (direction: ObservedDatagram["direction"]) =>
      captured.filter((item) =>
        item.direction === direction && item.datagram[1] <= MessageType.probeReply
      );
    const retarget = (datagram: Uint8Array, sessionId: number) => {
      const copy = datagram.slice();
      new DataView(copy.buffer).setUint32(4, sessionId);
      return copy;
    };
    const server = scenario.server.core;
    const client = scenario.client.core;
    const serverBadTagBefore = server.counters.drops["bad-tag"];
    const clientBadTagBefore = client.counters.drops["bad-tag"];
    for (const observed of sealed("toServer")) {
      network.injectToServer(
        network.path(observed.pathIndex).clientAddress,
        retarget(observed.datagram, newSessionId),
      );
    }
    for (const observed of sealed("toClient")) {
      network.injectToClient(observed.pathIndex, retarget(observed.datagram, newSessionId));
    }
    network.runUntil(3600);
    assert.equal(server.counters.drops["bad-tag"] - serverBadTagBefore, sealed("toServer").length);
    assert.equal(client.counters.drops["bad-tag"] - clientBadTagBefore, sealed("toClient").length);

    // Once the old session has expired, its own datagrams name a session nobody knows.
    network.runUntil(7000);
    assert.equal(server.sessions.has(oldSessionId), false);
    const unknownBefore = server.counters.drops["unknown-session"];
    for (const observed of sealed("toServer")) {
      network.injectToServer(network.path(observed.pathIndex).clientAddress, observed.datagram);
    }
    network.runUntil(stream.lastSendMs + 1000);
    assert.equal(
      server.counters.drops["unknown-session"] - unknownBefore,
      sealed("toServer").length,
    );

    assertCleanDeliveries(scenario);
    // Clean paths: the only datagrams lost are those in flight when the old client went away.
    const lost = missing(scenario.target.recorder, count);
    const restartSeq = restartMs - STREAM_START_MS;
    assert.ok(
      lost.every((seq) => seq >= restartSeq - 50 && seq < restartSeq + 100),
      `lost ${lost}`,
    );
    assert.ok(scenario.target.recorder.longestGapMs(restartMs + 500, stream.lastSendMs) < 25);
  },
);

// ---------------------------------------------------------------------------------------------------
// 9. Reproducibility

/** Everything a run's outcome could differ in, as plain data. */
function fingerprint(seed: number) {
  const scenario = new TunnelScenario({
    seed,
    echo: true,
    paths: paths(3, { lossPercent: 10, reorderPercent: 5, duplicatePercent: 5 }),
  });
  runStream(scenario, 5000);
  let arrivalSumMs = 0;
  for (let seq = 0; seq < 5000; seq++) {
    arrivalSumMs += scenario.target.recorder.firstArrivalMs(seq) ?? 0;
  }
  return {
    target: scenario.target.recorder.unique,
    app: scenario.app.recorder.unique,
    arrivalSumMs,
    sessionId: scenario.client.core.sessionId,
    serverCounters: structuredClone(scenario.server.core.counters),
    clientCounters: structuredClone(scenario.client.core.counters),
    links: scenario.network.paths.map((path) => [
      structuredClone(path.forward.counters),
      structuredClone(path.reverse.counters),
    ]),
  };
}

simTest("the same seed gives the same run, another seed another", 901, (seed) => {
  const first = fingerprint(seed);
  assert.deepEqual(fingerprint(seed), first);
  assert.notDeepEqual(fingerprint(seed + 1), first);
});

// Regression tests for three bugs the simulator found (each fixed in lib/):
// 1. The client started a handshake on any RESET naming its session, whatever its key phase, so
//    RESETs answering datagrams of a phase it had left (in flight across a restart, or replayed by
//    anyone who recorded them) forced needless handshakes. It now heeds only its current phase's.
// 2. The server kept one pending key phase (`next`): a second INIT before the client had used the
//    first one's keys overwrote them. A client only starts a handshake after finishing the previous
//    one, so the server now promotes `next` before storing the new phase.
// 3. The client took any redundant copy as a sign of life on its path; now only copies of recent
//    sequence numbers count, so replaying old datagrams cannot keep a dead path up.

/** Registers a regression test with its seed in the name. */
function regressionTest(name: string, seed: number, body: (seed: number) => void): void {
  Deno.test(`regression: ${name} (seed ${seed})`, () => body(seed));
}

regressionTest(
  "replayed datagrams of an expired key phase, from a client's address, start no handshake",
  811,
  (seed) => {
    const count = 6000;
    const scenario = new TunnelScenario({
      seed,
      secret: SECRET,
      echo: true,
      paths: paths(3),
      // Rekey often so that phases expire within the run.
      clientTiming: { rekeyIntervalMs: 2000, previousKeysGraceMs: 500 },
      serverLimits: { previousKeysGraceMs: 500 },
    });
    const network = scenario.network;
    const captured = capture(scenario, 1000, 1500);
    const stream = scenario.startStream({ startMs: STREAM_START_MS, count });
    network.runUntil(4000);
    const toServer = captured.filter((item) => item.direction === "toServer");
    assert.ok(toServer.length > 1000, `captured ${toServer.length}`);
    for (const [index, observed] of toServer.entries()) {
      for (const path of network.paths) {
        network.injectToServer(path.clientAddress, observed.datagram, 4000 + (index % 500));
      }
    }
    network.runUntil(stream.lastSendMs + 1000);
    // Today: 41 RESET-driven handshakes in half a second and ~45 datagrams lost each way.
    const forced = scenario.logsContaining("server does not know our session");
    assert.equal(forced.length, 0, `${forced.length} handshakes forced by RESETs`);
    assert.equal(scenario.target.recorder.unique, count);
    assert.equal(scenario.app.recorder.unique, count);
  },
);

regressionTest(
  "a RESET forged right behind each RESPONSE costs handshakes but loses nothing",
  812,
  (seed) => {
    const count = 4000;
    const scenario = new TunnelScenario({ seed, secret: SECRET, echo: true, paths: paths(3) });
    const network = scenario.network;
    const stream = scenario.startStream({ startMs: STREAM_START_MS, count });
    // An on-path attacker lets each RESPONSE through and sends a RESET after it (the session id and
    // key phase travel in clear), for one second: back-to-back handshakes.
    network.schedule(2000, () => {
      const client = scenario.client;
      const receive = client.receiveFromPath.bind(client);
      client.receiveFromPath = (pathIndex, datagram, nowMs) => {
        const before = client.core.counters.handshakesCompleted;
        receive(pathIndex, datagram, nowMs);
        if (client.core.counters.handshakesCompleted > before && nowMs < 3000) {
          receive(pathIndex, encodeReset(client.core.sessionId, datagram[3]), nowMs);
        }
      };
      receive(0, encodeReset(client.core.sessionId, 0), 2000);
    });
    network.runUntil(stream.lastSendMs + 1000);
    // Today: ~50 handshakes, 2982 datagrams dropped as unknown-session, a quarter of the stream lost.
    assert.equal(scenario.server.core.counters.drops["unknown-session"], 0);
    assert.equal(scenario.target.recorder.unique, count);
    assert.equal(scenario.app.recorder.unique, count);
  },
);

regressionTest("a server restart costs the client exactly one handshake", 401, (seed) => {
  const scenario = new TunnelScenario({ seed, echo: true, paths: paths(3, { lossPercent: 20 }) });
  const stream = scenario.startStream({ startMs: STREAM_START_MS, count: 8000 });
  scenario.network.schedule(4000, () => scenario.restartServer());
  scenario.network.runUntil(stream.lastSendMs + 1000);
  // Today: 9 (RESETs for datagrams in flight under the lost keys arrive after each new handshake).
  assert.equal(scenario.client.core.counters.handshakesCompleted, 2);
});

regressionTest(
  "bit-flipped datagrams spoofing a client's address deliver nothing and lose nothing",
  803,
  // Today: a flipped key-phase byte draws a RESET to the real client; back-to-back handshakes follow
  // and 21 datagrams are lost each way.
  (seed) => void forgeryRun(seed, 0.2),
);

regressionTest(
  "a dead path is marked down even while old datagrams are replayed on it",
  813,
  // The client counts a copy its window calls a duplicate as a sign of life (and a repeated
  // RESPONSE too) before anything is authenticated, so one replayed datagram every 400 ms keeps a
  // dead path "up" for as long as the replay lasts. Harmless in redundant mode beyond wasted sends;
  // a scheduler that picks paths would send into the dead one. Fix: refresh `lastHeardMs` only on
  // authentic datagrams (first copies, probe replies, a completed handshake), or authenticate a
  // sampled duplicate per path now and then.
  (seed) => {
    const outage = { fromMs: 5000, toMs: 9000 };
    const pathOptions = paths(3);
    pathOptions[1] = { both: { ...pathOptions[1].both, outages: [outage] } };
    const scenario = new TunnelScenario({ seed, secret: SECRET, echo: true, paths: pathOptions });
    const network = scenario.network;
    const captured = capture(scenario, 4000, 4100);
    const stream = scenario.startStream({ startMs: STREAM_START_MS, count: 8000 });
    network.runUntil(outage.fromMs);
    const old = captured.filter((item) =>
      item.direction === "toClient" && item.pathIndex === 1 && item.datagram[1] === MessageType.data
    );
    for (let atMs = outage.fromMs, index = 0; atMs < outage.toMs; atMs += 400, index++) {
      network.injectToClient(1, old[index].datagram, atMs);
    }
    network.runUntil(stream.lastSendMs + 500);
    // Today: never marked down.
    assert.equal(scenario.logsContaining("path down").length, 1);
  },
);

Deno.test({
  name: "retired key phases free their cipher contexts at once, and closed sessions theirs",
  // The count is of OpenSSL contexts: with the node:crypto fallback there is nothing to free.
  ignore: opensslAeadUnavailable() !== undefined || aeadImplementation() !== "openssl",
  fn() {
    const scenario = new TunnelScenario({
      seed: 901,
      secret: SECRET,
      echo: true,
      paths: paths(3),
      clientTiming: { rekeyIntervalMs: 1000, previousKeysGraceMs: 300 },
      serverLimits: { previousKeysGraceMs: 300 },
    });
    const network = scenario.network;
    const before = opensslLiveContexts();
    let peak = 0;
    for (let atMs = 500; atMs < 20_000; atMs += 50) {
      network.schedule(atMs, () => {
        peak = Math.max(peak, opensslLiveContexts() - before);
      });
    }
    const stream = scenario.startStream({ startMs: STREAM_START_MS, count: 8000 });
    network.runUntil(stream.lastSendMs + 1000);
    const handshakes = scenario.client.core.counters.handshakesCompleted;
    assert.ok(handshakes >= 8, `${handshakes} handshakes`);
    // Each end holds at most current, previous (and at the server a next) phase, one context per
    // key: nowhere near one pair per handshake, which is what waiting for the collector gave.
    assert.ok(peak <= 8, `peak ${peak} contexts over ${handshakes} handshakes`);
    assert.equal(scenario.target.recorder.unique, 8000);
    scenario.server.core.closeAll();
    assert.ok(opensslLiveContexts() - before <= 4, "the server's sessions freed theirs");
  },
});
