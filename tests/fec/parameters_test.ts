/** Choosing the FEC group size: residual loss of a size, and the cheapest size meeting a target. */
import assert from "node:assert/strict";
import { chooseFecParameters, residualLossRatio } from "../../lib/fec/parameters.ts";

Deno.test("residual loss of 1+1 at loss 0.5 is 0.25, and of 2+1 at 0.1 is 0.019", () => {
  assert.equal(residualLossRatio({ dataShards: 1, parityShards: 1 }, 0.5), 0.25);
  // Lost and at least one of the other two lost: 0.1 · (1 − 0.9²).
  assert.ok(Math.abs(residualLossRatio({ dataShards: 2, parityShards: 1 }, 0.1) - 0.019) < 1e-12);
  assert.equal(residualLossRatio({ dataShards: 4, parityShards: 0 }, 0.3), 0.3);
  assert.equal(residualLossRatio({ dataShards: 8, parityShards: 2 }, 0), 0);
});

Deno.test("at 20% loss and target 0.001 the choice is 20+14 (overhead 1.7)", () => {
  const choice = chooseFecParameters(0.2, 0.001);
  assert.deepEqual(choice, { dataShards: 20, parityShards: 14 });
  assert.ok(residualLossRatio(choice, 0.2) <= 0.001);
  assert.ok((choice.dataShards + choice.parityShards) / choice.dataShards < 2);
});

Deno.test("the choice is the cheapest candidate that meets the target", () => {
  for (const lossRatio of [0.01, 0.05, 0.1, 0.2]) {
    const choice = chooseFecParameters(lossRatio, 0.001);
    const overhead = (choice.dataShards + choice.parityShards) / choice.dataShards;
    for (const dataShards of [4, 6, 8, 10, 12, 16, 20]) {
      for (let parityShards = 1; parityShards <= dataShards; parityShards++) {
        const candidateOverhead = (dataShards + parityShards) / dataShards;
        if (residualLossRatio({ dataShards, parityShards }, lossRatio) > 0.001) continue;
        assert.ok(candidateOverhead >= overhead, `${lossRatio}: ${dataShards}+${parityShards}`);
      }
    }
  }
});

Deno.test("without loss the choice has no parity; at 60% loss it falls back to 10+10", () => {
  assert.deepEqual(chooseFecParameters(0, 0.001), { dataShards: 4, parityShards: 0 });
  assert.deepEqual(chooseFecParameters(0.6, 0.001), { dataShards: 10, parityShards: 10 });
  assert.throws(() => chooseFecParameters(Number.NaN, 0.001), RangeError);
  assert.throws(() => chooseFecParameters(0.1, 2), RangeError);
});
