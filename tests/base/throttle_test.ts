/**
 * The clock-free rate limits: a token bucket for work and a throttle for repeated log lines, both
 * driven by the time the caller passes in.
 */
import assert from "node:assert/strict";
import { LogThrottle, TokenBucket } from "../../lib/base/throttle.ts";

/** How many of `attempts` takes at `nowMs` succeed. */
function takes(bucket: TokenBucket, nowMs: number, attempts: number): number {
  let taken = 0;
  for (let attempt = 0; attempt < attempts; attempt++) if (bucket.take(nowMs)) taken++;
  return taken;
}

// ---------------------------------------------------------------------------------------------------
// TokenBucket

Deno.test("a token bucket starts full: a burst of takes succeeds at once, then it is empty", () => {
  const bucket = new TokenBucket(10, 5);
  assert.equal(takes(bucket, 1000, 8), 5);
  assert.equal(bucket.take(1000), false);
});

Deno.test("a token bucket refills at its rate", () => {
  const bucket = new TokenBucket(10, 5); // one token per 100 ms
  takes(bucket, 0, 5);
  assert.equal(bucket.take(99), false);
  assert.equal(bucket.take(100), true);
  assert.equal(bucket.take(100), false);
  assert.equal(takes(bucket, 400, 10), 3);
});

Deno.test("a token bucket saves up no more than its burst however long it is idle", () => {
  const bucket = new TokenBucket(10, 5);
  takes(bucket, 0, 5);
  assert.equal(takes(bucket, 3_600_000, 100), 5);
});

Deno.test("a token bucket keeps fractions of a token between takes", () => {
  const bucket = new TokenBucket(200, 1); // one token per 5 ms
  assert.equal(bucket.take(0), true);
  assert.equal(bucket.take(2.5), false);
  assert.equal(bucket.take(5), true);
});

Deno.test("a token bucket lets through its rate over a long run", () => {
  const bucket = new TokenBucket(200, 400);
  let taken = 0;
  for (let nowMs = 0; nowMs < 10_000; nowMs++) taken += takes(bucket, nowMs, 3);
  // The burst, then 200 a second for 10 s (the last millisecond's refill comes too late).
  assert.equal(taken, 400 + 200 * 10 - 1);
});

Deno.test("a token bucket counts from its first take, whatever the clock reads", () => {
  const bucket = new TokenBucket(1, 1);
  assert.equal(bucket.take(1e9), true);
  assert.equal(bucket.take(1e9 + 999), false);
  assert.equal(bucket.take(1e9 + 1000), true);
});

Deno.test("a token bucket adds nothing when the clock goes backwards", () => {
  const bucket = new TokenBucket(10, 1);
  assert.equal(bucket.take(5000), true);
  assert.equal(bucket.take(1000), false);
});

// ---------------------------------------------------------------------------------------------------
// LogThrottle

Deno.test("a log throttle lets the first line of a key through with nothing held back", () => {
  const throttle = new LogThrottle(10_000);
  assert.equal(throttle.allow("send-error", 0), 0);
});

Deno.test("a log throttle holds back lines of the same key within the interval", () => {
  const throttle = new LogThrottle(10_000);
  throttle.allow("send-error", 0);
  assert.equal(throttle.allow("send-error", 1), undefined);
  assert.equal(throttle.allow("send-error", 9_999), undefined);
});

Deno.test("a log throttle lets a line through after the interval, saying how many it held back", () => {
  const throttle = new LogThrottle(10_000);
  throttle.allow("send-error", 0);
  for (let line = 1; line <= 7; line++) throttle.allow("send-error", line * 1000);
  assert.equal(throttle.allow("send-error", 10_000), 7);
});

Deno.test("a log throttle starts counting again after each line it lets through", () => {
  const throttle = new LogThrottle(1000);
  throttle.allow("notice", 0);
  throttle.allow("notice", 500);
  throttle.allow("notice", 600);
  assert.equal(throttle.allow("notice", 1000), 2);
  throttle.allow("notice", 1500);
  assert.equal(throttle.allow("notice", 2000), 1);
  assert.equal(throttle.allow("notice", 3000), 0);
});

Deno.test("a log throttle measures the interval from the last line it let through", () => {
  const throttle = new LogThrottle(1000);
  throttle.allow("k", 0);
  throttle.allow("k", 900); // held back: does not restart the interval
  assert.equal(throttle.allow("k", 1000), 1);
});

Deno.test("a log throttle keeps keys apart", () => {
  const throttle = new LogThrottle(10_000);
  assert.equal(throttle.allow("send-error 0 refused", 0), 0);
  assert.equal(throttle.allow("send-error 1 refused", 1), 0);
  assert.equal(throttle.allow("send-error 0 refused", 2), undefined);
  assert.equal(throttle.allow("send-error 1 refused", 3), undefined);
});
