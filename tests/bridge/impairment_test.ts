import assert from "node:assert/strict";
import {
  type BlackoutWindow,
  checkImpairmentOptions,
  createImpairment,
  formatBlackout,
  type ImpairmentDecision,
  type ImpairmentOptions,
  parseBlackout,
} from "../../lib/bridge/impairment.ts";
import { seededRandom } from "../../lib/base/rng.ts";

const SEED = 20240611;

function decideMany(
  options: ImpairmentOptions,
  seed: number,
  count: number,
  spacingMs = 1,
  sizeBytes = 1000,
): ImpairmentDecision[] {
  const impairment = createImpairment(options, seededRandom(seed));
  return Array.from(
    { length: count },
    (_, index) => impairment.decide(index * spacingMs, sizeBytes),
  );
}

Deno.test("the same seed gives the same decisions", () => {
  const options = { lossPercent: 30, delayMs: 20, jitterMs: 15, rateBitsPerSecond: 5e6 };
  const first = decideMany(options, SEED, 2000, 0.5);
  const second = decideMany(options, SEED, 2000, 0.5);
  assert.deepEqual(first, second);
  const other = decideMany(options, SEED + 1, 2000, 0.5);
  assert.notDeepEqual(first, other, `seeds ${SEED} and ${SEED + 1} gave identical runs`);
});

Deno.test("a clean link forwards every datagram at once", () => {
  const impairment = createImpairment({}, seededRandom(SEED));
  assert.equal(impairment.isTransparent, true);
  assert.deepEqual(impairment.decide(123.5, 1400), { action: "forward", atMs: 123.5 });
});

Deno.test("20 % loss drops 20 % ± 0.7 % of 100 000 datagrams", () => {
  const decisions = decideMany({ lossPercent: 20 }, SEED, 100_000);
  const dropped = decisions.filter((decision) => decision.action === "drop");
  assert.ok(dropped.every((decision) => decision.action === "drop" && decision.reason === "loss"));
  const lossRatio = dropped.length / decisions.length;
  assert.ok(Math.abs(lossRatio - 0.2) <= 0.007, `loss ratio ${lossRatio} with seed ${SEED}`);
});

Deno.test("loss of 0 and 100 percent drop nothing and everything", () => {
  assert.ok(decideMany({ lossPercent: 0 }, SEED, 1000).every((d) => d.action === "forward"));
  assert.ok(decideMany({ lossPercent: 100 }, SEED, 1000).every((d) => d.action === "drop"));
});

Deno.test("a fixed delay forwards each datagram exactly that much later", () => {
  const impairment = createImpairment({ delayMs: 50 }, seededRandom(SEED));
  assert.deepEqual(impairment.decide(1000, 100), { action: "forward", atMs: 1050 });
  assert.deepEqual(impairment.decide(1000.25, 100), { action: "forward", atMs: 1050.25 });
});

Deno.test("jitter stays within delay ± jitter, spreads evenly and reorders datagrams", () => {
  const impairment = createImpairment({ delayMs: 40, jitterMs: 10 }, seededRandom(SEED));
  const extraDelaysMs: number[] = [];
  let reordered = 0;
  let previousAtMs = -Infinity;
  for (let index = 0; index < 10_000; index++) {
    const nowMs = index * 2;
    const decision = impairment.decide(nowMs, 500);
    assert.equal(decision.action, "forward");
    if (decision.action !== "forward") continue;
    extraDelaysMs.push(decision.atMs - nowMs);
    if (decision.atMs < previousAtMs) reordered++;
    previousAtMs = decision.atMs;
  }
  assert.ok(Math.min(...extraDelaysMs) >= 30 && Math.max(...extraDelaysMs) <= 50);
  const meanMs = extraDelaysMs.reduce((sum, value) => sum + value, 0) / extraDelaysMs.length;
  assert.ok(Math.abs(meanMs - 40) < 0.3, `mean delay ${meanMs} with seed ${SEED}`);
  assert.ok(extraDelaysMs.filter((ms) => ms < 35).length > 2000, "jitter should reach the low end");
  assert.ok(reordered > 0, `expected some reordering with seed ${SEED}`);
});

Deno.test("jitter larger than the delay never forwards before arrival", () => {
  const decisions = decideMany({ delayMs: 5, jitterMs: 20 }, SEED, 5000, 1);
  decisions.forEach((decision, index) => {
    assert.ok(decision.action === "forward" && decision.atMs >= index);
  });
});

Deno.test("a rate limit spaces datagrams by their serialisation time", () => {
  // 8 Mbit/s: 1000 bytes take 1 ms on the link.
  const impairment = createImpairment({ rateBitsPerSecond: 8e6 }, seededRandom(SEED));
  const departuresMs = Array.from({ length: 10 }, () => impairment.decide(0, 1000)).map((d) =>
    d.action === "forward" ? d.atMs : NaN
  );
  assert.deepEqual(departuresMs, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  // Once the link has drained, a datagram waits only for its own serialisation.
  assert.deepEqual(impairment.decide(100, 500), { action: "forward", atMs: 100.5 });
});

Deno.test("a rate limit tail-drops what would wait longer than the queue limit", () => {
  // 8 Mbit/s, 1000-byte datagrams: 1 ms each; a 100 ms queue holds 101 (the first starts at once).
  const impairment = createImpairment({ rateBitsPerSecond: 8e6 }, seededRandom(SEED));
  const decisions = Array.from({ length: 150 }, () => impairment.decide(0, 1000));
  const forwarded = decisions.filter((decision) => decision.action === "forward");
  assert.equal(forwarded.length, 101);
  assert.ok(decisions.slice(101).every((d) => d.action === "drop" && d.reason === "queue-full"));
  // The queue drains at the link rate: 10 ms later ten more fit.
  const later = Array.from({ length: 15 }, () => impairment.decide(10, 1000));
  assert.equal(later.filter((decision) => decision.action === "forward").length, 10);
});

Deno.test("a custom queue limit bounds the wait", () => {
  const impairment = createImpairment(
    { rateBitsPerSecond: 8e6, queueLimitMs: 5 },
    seededRandom(SEED),
  );
  const decisions = Array.from({ length: 10 }, () => impairment.decide(0, 1000));
  assert.equal(decisions.filter((decision) => decision.action === "forward").length, 6);
});

Deno.test("the rate holds on average under a steady overload", () => {
  // Offer 2 Mbit/s to a 1 Mbit/s link for 10 s: about half gets through, at the link rate.
  const impairment = createImpairment({ rateBitsPerSecond: 1e6 }, seededRandom(SEED));
  let forwardedBytes = 0;
  let lastAtMs = 0;
  for (let nowMs = 0; nowMs < 10_000; nowMs += 5) {
    const decision = impairment.decide(nowMs, 1250);
    if (decision.action === "forward") {
      forwardedBytes += 1250;
      lastAtMs = decision.atMs;
    }
  }
  const rateBitsPerSecond = forwardedBytes * 8 / (lastAtMs / 1000);
  assert.ok(Math.abs(rateBitsPerSecond - 1e6) < 1e4, `measured ${rateBitsPerSecond} bit/s`);
});

Deno.test("delay is added after serialisation", () => {
  const impairment = createImpairment(
    { rateBitsPerSecond: 8e6, delayMs: 30 },
    seededRandom(SEED),
  );
  assert.deepEqual(impairment.decide(0, 1000), { action: "forward", atMs: 31 });
  assert.deepEqual(impairment.decide(0, 1000), { action: "forward", atMs: 32 });
});

Deno.test("a one-off blackout drops everything inside its window only", () => {
  const impairment = createImpairment(
    { blackouts: [{ startMs: 5000, durationMs: 3000 }] },
    seededRandom(SEED),
    10_000,
  );
  const fate = (sinceStartMs: number) => impairment.decide(10_000 + sinceStartMs, 100).action;
  assert.equal(fate(0), "forward");
  assert.equal(fate(4999), "forward");
  assert.deepEqual(impairment.decide(15_000, 100), { action: "drop", reason: "blackout" });
  assert.equal(fate(7999), "drop");
  assert.equal(fate(8000), "forward");
  assert.equal(fate(20_000), "forward");
});

Deno.test("a repeating blackout drops in every period", () => {
  const impairment = createImpairment(
    { blackouts: [{ startMs: 10_000, durationMs: 2000, periodMs: 10_000 }] },
    seededRandom(SEED),
  );
  const dropped = [];
  for (let nowMs = 0; nowMs < 40_000; nowMs += 500) {
    if (impairment.decide(nowMs, 100).action === "drop") dropped.push(nowMs);
  }
  assert.deepEqual(dropped, [
    10_000,
    10_500,
    11_000,
    11_500,
    20_000,
    20_500,
    21_000,
    21_500,
    30_000,
    30_500,
    31_000,
    31_500,
  ]);
});

Deno.test("datagrams in a blackout do not occupy the rate-limited link", () => {
  const impairment = createImpairment(
    { rateBitsPerSecond: 8e6, blackouts: [{ startMs: 0, durationMs: 10 }] },
    seededRandom(SEED),
  );
  for (let index = 0; index < 50; index++) impairment.decide(5, 1000);
  assert.deepEqual(impairment.decide(10, 1000), { action: "forward", atMs: 11 });
});

Deno.test("parses the blackout spellings", () => {
  const cases: [string, BlackoutWindow][] = [
    ["5s+3s", { startMs: 5000, durationMs: 3000 }],
    ["1m+500ms", { startMs: 60_000, durationMs: 500 }],
    ["0.5s+1.5s", { startMs: 500, durationMs: 1500 }],
    ["5s+3s every 10s", { startMs: 5000, durationMs: 3000, periodMs: 10_000 }],
    ["every 10s for 2s", { startMs: 10_000, durationMs: 2000, periodMs: 10_000 }],
    ["  every 1m   for 5s ", { startMs: 60_000, durationMs: 5000, periodMs: 60_000 }],
  ];
  for (const [text, expected] of cases) {
    assert.deepEqual(parseBlackout(text), { ok: true, value: expected }, text);
  }
});

Deno.test("refuses malformed blackouts with a reason", () => {
  const cases: [string, RegExp][] = [
    ["5s", /expected a blackout like/],
    ["5+3", /needs a unit/],
    ["5s+0s", /longer than 0 ms/],
    ["every 2s for 2s", /never ends/],
    ["5s+3s every", /expected a blackout like/],
    ["every 10s 2s", /expected a blackout like/],
    ["5s+3s+1s", /expected a blackout like/],
  ];
  for (const [text, pattern] of cases) {
    const parsed = parseBlackout(text);
    assert.equal(parsed.ok, false, text);
    if (!parsed.ok) assert.match(parsed.error, pattern, text);
  }
});

Deno.test("formats a blackout the way it parses", () => {
  for (const text of ["5000ms+3000ms", "5000ms+3000ms every 10000ms", "1500ms+250ms"]) {
    const parsed = parseBlackout(text);
    assert.ok(parsed.ok);
    if (parsed.ok) assert.equal(formatBlackout(parsed.value, (ms) => `${ms}ms`), text);
  }
});

Deno.test("refuses options out of range", () => {
  assert.match(checkImpairmentOptions({ lossPercent: 101 }) ?? "", /0 to 100/);
  assert.match(checkImpairmentOptions({ lossPercent: NaN }) ?? "", /0 to 100/);
  assert.match(checkImpairmentOptions({ delayMs: -1 }) ?? "", /negative/);
  assert.match(checkImpairmentOptions({ rateBitsPerSecond: 0 }) ?? "", /positive/);
  assert.equal(checkImpairmentOptions({ lossPercent: 5, delayMs: 10, jitterMs: 2 }), undefined);
  assert.throws(() => createImpairment({ jitterMs: -3 }, seededRandom(SEED)), RangeError);
});
