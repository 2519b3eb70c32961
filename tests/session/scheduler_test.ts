import assert from "node:assert/strict";
import {
  adaptivePathCount,
  BUSY_PROBE_INTERVAL_MS,
  probeIntervalMs,
  RateMeter,
  silenceLimitMs,
  WeightedRoundRobin,
} from "../../lib/session/scheduler.ts";
import { createClientScheduler } from "../../lib/session/client/scheduling/scheduler_factory.ts";
import type { SchedulingMode } from "../../lib/session/scheduler.ts";

/** What the client's scheduler for `mode` asks of a silent path before calling it down. */
function falseDownProbability(mode: SchedulingMode): number {
  return createClientScheduler(mode, { targetLossRatio: 0.001, suspect: () => false })
    .falseDownProbability;
}

Deno.test("adaptive: clean paths need one, three 20 % paths need all three for 0.1 %", () => {
  assert.equal(adaptivePathCount([0, 0, 0], 0.001), 1);
  assert.equal(adaptivePathCount([0.2, 0.2, 0.2], 0.001), 3);
  // 0.02 × 0.03 = 0.0006 ≤ 0.001: two are enough.
  assert.equal(adaptivePathCount([0.02, 0.03, 0.5], 0.001), 2);
  assert.equal(adaptivePathCount([0.2, 0.2], 0.05), 2);
  assert.equal(adaptivePathCount([0.04, 0.2], 0.05), 1);
  assert.equal(adaptivePathCount([], 0.001), 1);
});

Deno.test("weighted round robin follows the weights, evenly (5:1:1 as nginx spreads it)", () => {
  const roundRobin = new WeightedRoundRobin();
  const keys = [10, 20, 30];
  const weights = [5, 1, 1];
  const picks = Array.from({ length: 7 }, () => keys[roundRobin.pick(keys, weights, 3)]);
  assert.deepEqual(picks, [10, 10, 20, 10, 30, 10, 10]);
  const counts = new Map<number, number>();
  for (let i = 0; i < 7000; i++) {
    const key = keys[roundRobin.pick(keys, weights, 3)];
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  assert.deepEqual([counts.get(10), counts.get(20), counts.get(30)], [5000, 1000, 1000]);
});

Deno.test("weighted round robin: only the first `count` candidates, −1 for none", () => {
  const roundRobin = new WeightedRoundRobin();
  assert.equal(roundRobin.pick([1, 2], [1, 1], 0), -1);
  for (let i = 0; i < 10; i++) assert.equal(roundRobin.pick([1, 2], [1, 1], 1), 0);
  roundRobin.forget(1);
  const seen = new Set<number>();
  for (let i = 0; i < 4; i++) seen.add(roundRobin.pick([1, 2], [1, 1], 2));
  assert.deepEqual([...seen].sort(), [0, 1]);
});

Deno.test("probe interval: idle rate on a quiet tunnel, down to 50 ms when busy", () => {
  assert.equal(probeIntervalMs(0, 500), 500);
  assert.equal(probeIntervalMs(100, 500), 500);
  assert.equal(probeIntervalMs(500, 500), 100);
  assert.equal(probeIntervalMs(1000, 500), BUSY_PROBE_INTERVAL_MS);
  assert.equal(BUSY_PROBE_INTERVAL_MS, 50);
  assert.equal(probeIntervalMs(100_000, 500), BUSY_PROBE_INTERVAL_MS);
});

Deno.test("silence limit: a few probes on a clean busy path, more on a lossy one, capped", () => {
  const base = { smoothedRttMs: 2, rttVarianceMs: 1, floorMs: 250, ceilingMs: 2000 };
  const clean = silenceLimitMs({ ...base, probeIntervalMs: 100, roundTripLossRatio: 0 });
  assert.ok(clean >= 250 && clean < 400, `clean busy path: ${clean} ms`);
  const lossy = silenceLimitMs({ ...base, probeIntervalMs: 100, roundTripLossRatio: 0.36 });
  assert.ok(lossy > clean && lossy < 1000, `36 % round-trip loss: ${lossy} ms`);
  const eager = silenceLimitMs({
    ...base,
    probeIntervalMs: 50,
    roundTripLossRatio: 0.36,
    falseDownProbability: falseDownProbability("balance"),
  });
  assert.ok(eager <= 250, `balance mode, 36 % round-trip loss, busy: ${eager} ms`);
  assert.equal(falseDownProbability("redundant"), 1e-3);
  const idle = silenceLimitMs({ ...base, probeIntervalMs: 500, roundTripLossRatio: 0.36 });
  assert.equal(idle, 2000);
  // Before anything is measured a path is assumed lossy, so it is not taken for dead too soon.
  const unknown = silenceLimitMs({ ...base, probeIntervalMs: 100, roundTripLossRatio: undefined });
  assert.ok(unknown > clean, `unmeasured: ${unknown} ms`);
});

Deno.test("rate meter: events per second over the last second", () => {
  const meter = new RateMeter();
  assert.equal(meter.perSecond(0), 0);
  for (let t = 0; t < 1000; t += 2) meter.count(t);
  const rate = meter.perSecond(1000);
  assert.ok(rate >= 450 && rate <= 550, `${rate}/s`);
  assert.equal(meter.perSecond(5000), 0);
});
