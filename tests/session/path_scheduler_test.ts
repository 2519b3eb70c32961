/** Each mode's scheduler object, at the client (over path statistics) and the server (over addresses). */
import assert from "node:assert/strict";
import { ClientPath } from "../../lib/path/path_stats.ts";
import { createClientScheduler } from "../../lib/session/client/scheduling/scheduler_factory.ts";
import { createReplyScheduler } from "../../lib/session/server/reply_schedulers.ts";
import type { SessionAddress } from "../../lib/session/server/session_address.ts";
import { type SchedulingMode, WeightedRoundRobin } from "../../lib/session/scheduler.ts";

const NOW_MS = 10_000;

/** Up and heard just now, with `lossToServerRatio` measured. */
function upPath(index: number, weight = 1, lossToServerRatio?: number): ClientPath {
  const path = new ClientPath(index, `p${index}`, false, weight);
  path.state = "up";
  path.lastHeardMs = NOW_MS;
  path.lossToServerRatio = lossToServerRatio;
  return path;
}

function clientScheduler(mode: SchedulingMode, suspect = (_path: unknown) => false) {
  return createClientScheduler<ClientPath>(mode, { targetLossRatio: 0.001, suspect });
}

/** The indices each of `rounds` choices picks. */
function picks(
  choose: () => readonly { readonly index?: number; readonly id?: number }[],
  rounds: number,
) {
  return Array.from({ length: rounds }, () => choose().map((path) => path.index ?? path.id));
}

Deno.test("client schedulers: each mode's object says its mode and whether it sends shards", () => {
  for (const mode of ["redundant", "adaptive", "balance", "fec"] as const) {
    const scheduler = clientScheduler(mode);
    assert.equal(scheduler.mode, mode);
    assert.equal(scheduler.sendsFecShards, mode === "fec");
  }
});

Deno.test("client redundant: every candidate carries every datagram", () => {
  const paths = [upPath(0), upPath(1), upPath(2)];
  assert.deepEqual(clientScheduler("redundant").choose(paths, NOW_MS), paths);
});

Deno.test("client adaptive: the fewest lowest-loss paths that meet the target", () => {
  const paths = [upPath(0, 1, 0.05), upPath(1, 1, 0.01), upPath(2, 1, 0.03)];
  // 0.01 × 0.03 = 0.0003 ≤ 0.001: the two best.
  const chosen = clientScheduler("adaptive").choose(paths, NOW_MS);
  assert.deepEqual(chosen.map((path) => path.index), [1, 2]);
});

Deno.test("client balance: one path per datagram, in turn by weight", () => {
  const scheduler = clientScheduler("balance");
  const paths = [upPath(0, 2), upPath(1, 1)];
  assert.deepEqual(picks(() => scheduler.choose(paths, NOW_MS), 6), [[0], [1], [0], [0], [1], [0]]);
});

Deno.test("client fec: one shard per path in turn, skipping a suspect path while others are trusted", () => {
  const paths = [upPath(0), upPath(1), upPath(2)];
  const scheduler = clientScheduler("fec", (path) => path === paths[1]);
  assert.deepEqual(picks(() => scheduler.choose(paths, NOW_MS), 4), [[0], [2], [0], [2]]);
});

Deno.test("client balance: the server is asked to send on up paths only, while any is up", () => {
  const scheduler = clientScheduler("balance");
  const up = upPath(0);
  const probing = new ClientPath(1, "p1");
  assert.equal(scheduler.carriesDataFromServer(up, [up, probing], NOW_MS), true);
  assert.equal(scheduler.carriesDataFromServer(probing, [up, probing], NOW_MS), false);
});

function address(id: number, lastHeardMs: number, advice: Partial<SessionAddress> = {}) {
  return {
    address: { transport: "udp", hostname: "127.0.0.1", port: 5000 + id },
    id,
    lastHeardMs,
    arrivalGapMs: 20,
    received: 0,
    pathIndex: id,
    carryData: true,
    weight: 1,
    lastProbeKeyPhase: -1,
    lastProbeSequence: -1,
    ...advice,
  } satisfies SessionAddress;
}

function replyScheduler(mode: SchedulingMode) {
  return createReplyScheduler(mode, {
    addressTimeoutMs: 3000,
    roundRobin: new WeightedRoundRobin(),
  });
}

Deno.test("server redundant: every recent address not spared; the freshest when all are quiet", () => {
  const scheduler = replyScheduler("redundant");
  const addresses = [
    address(0, NOW_MS),
    address(1, NOW_MS, { carryData: false }),
    address(2, NOW_MS - 5000),
  ];
  assert.deepEqual(scheduler.choose(addresses, NOW_MS).map((known) => known.id), [0]);
  const quiet = [address(0, NOW_MS - 6000), address(1, NOW_MS - 5000)];
  assert.deepEqual(scheduler.choose(quiet, NOW_MS).map((known) => known.id), [1]);
});

Deno.test("server adaptive: the advised addresses; every recent one when none is", () => {
  const scheduler = replyScheduler("adaptive");
  const addresses = [address(0, NOW_MS), address(1, NOW_MS, { carryData: false })];
  assert.deepEqual(scheduler.choose(addresses, NOW_MS).map((known) => known.id), [0]);
  // Silent for 400 ms, over four gaps of 20 ms plus 100 ms and the 300 ms floor: not usable.
  const silent = [address(0, NOW_MS - 400), address(1, NOW_MS - 400)];
  assert.deepEqual(scheduler.choose(silent, NOW_MS).map((known) => known.id), [0, 1]);
});

Deno.test("server balance and fec: one address in turn, weighted in balance only", () => {
  const addresses = [address(0, NOW_MS, { weight: 2 }), address(1, NOW_MS)];
  const balance = replyScheduler("balance");
  assert.deepEqual(picks(() => balance.choose(addresses, NOW_MS), 3), [[0], [1], [0]]);
  const fec = replyScheduler("fec");
  assert.equal(fec.sendsFecShards, true);
  assert.deepEqual(picks(() => fec.choose(addresses, NOW_MS), 4), [[0], [1], [0], [1]]);
});
