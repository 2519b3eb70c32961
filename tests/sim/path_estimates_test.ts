/**
 * What the client learns of each path from its probes, measured in the simulator against known
 * link settings: round-trip time, jitter, and the loss in each direction.
 */
import assert from "node:assert/strict";
import { TunnelScenario } from "./tunnel_harness.ts";

Deno.test("each path's loss toward and from the server is estimated from probes (seed 1201)", () => {
  const scenario = new TunnelScenario({
    seed: 1201,
    paths: [
      { forward: { lossPercent: 10, delayMs: 20 }, reverse: { lossPercent: 30, delayMs: 20 } },
      { both: { lossPercent: 0, delayMs: 40, jitterMs: 8 } },
    ],
  });
  const stream = scenario.startStream({ startMs: 100, count: 30_000, intervalMs: 1 });
  scenario.network.runUntil(stream.lastSendMs + 500);
  const now = scenario.network.nowMs;
  const [lossy, clean] = scenario.client.core.paths;
  // Toward the server the estimate rests on thousands of datagrams per probe interval: tight.
  assert.ok(
    Math.abs(lossy.lossToServerRatio! - 0.10) < 0.03,
    `to server ${lossy.lossToServerRatio}`,
  );
  // From the server it rests on the ≈ 60 probes of the last 30 s (probe round trips): looser.
  const fromServer = lossy.lossFromServerRatio(now)!;
  assert.ok(Math.abs(fromServer - 0.30) < 0.15, `from server ${fromServer}`);
  assert.ok(clean.lossToServerRatio! < 0.01, `clean to server ${clean.lossToServerRatio}`);
  assert.equal(clean.roundTripLossRatio(now), 0);
  // Round trips: 2 × 40 ms plus jitter up to 8 ms each way; jitter shows on that path only.
  assert.ok(clean.smoothedRttMs! > 80 && clean.smoothedRttMs! < 96, `rtt ${clean.smoothedRttMs}`);
  assert.ok(clean.jitterMs > 1 && clean.jitterMs < 8, `jitter ${clean.jitterMs}`);
  assert.ok(lossy.jitterMs < 0.5, `jitter without jitter ${lossy.jitterMs}`);
});
