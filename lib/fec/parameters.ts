/**
 * The size of an FEC group (k data shards, m parity shards) and how to choose it: the residual loss
 * a size leaves at a given loss ratio, each shard lost independently, and the cheapest size that
 * meets a target.
 */

import { MAX_TOTAL_SHARDS } from "./reed_solomon.ts";

/** The k values chooseFecParameters considers. */
const CANDIDATE_DATA_SHARDS = [4, 6, 8, 10, 12, 16, 20];
/** What chooseFecParameters returns when no candidate meets the target. */
const FALLBACK_PARAMETERS: FecParameters = { dataShards: 10, parityShards: 10 };
/** Below this loss ratio, a group without parity is a candidate too. */
const NEGLIGIBLE_LOSS_RATIO = 1e-6;

/** The size of a group: k data shards and m parity shards. */
export interface FecParameters {
  readonly dataShards: number;
  readonly parityShards: number;
}

/** Throws a RangeError unless 1 ≤ k, 0 ≤ m and k + m ≤ {@link MAX_TOTAL_SHARDS}. */
export function validateParameters(parameters: FecParameters): void {
  const { dataShards, parityShards } = parameters;
  if (
    !Number.isInteger(dataShards) || !Number.isInteger(parityShards) || dataShards < 1 ||
    parityShards < 0 || dataShards + parityShards > MAX_TOTAL_SHARDS
  ) {
    throw new RangeError(
      `fec: need 1 ≤ k, 0 ≤ m, k + m ≤ ${MAX_TOTAL_SHARDS}; got k=${dataShards} m=${parityShards}`,
    );
  }
}

/** C(n, j) · p^j · (1 − p)^(n − j). */
function binomialProbability(n: number, j: number, p: number): number {
  let coefficient = 1;
  for (let i = 1; i <= j; i++) coefficient = (coefficient * (n - j + i)) / i;
  return coefficient * p ** j * (1 - p) ** (n - j);
}

function validateRatio(name: string, ratio: number): void {
  if (!(ratio >= 0 && ratio <= 1)) {
    throw new RangeError(`fec: ${name} must be in [0, 1], got ${ratio}`);
  }
}

/**
 * The expected residual data loss ratio of (k, m) at `lossRatio`, each shard lost independently: a
 * data shard stays lost when it is lost and at least m of the other k + m − 1 shards are lost too.
 *
 * @example
 * ```ts
 * import { residualLossRatio } from "./parameters.ts";
 * residualLossRatio({ dataShards: 1, parityShards: 1 }, 0.5); // 0.25
 * ```
 */
export function residualLossRatio(p: FecParameters, lossRatio: number): number {
  validateParameters(p);
  validateRatio("lossRatio", lossRatio);
  const { dataShards, parityShards } = p;
  if (parityShards === 0) return lossRatio;
  const others = dataShards + parityShards - 1;
  let tail = 0;
  for (let lost = parityShards; lost <= others; lost++) {
    tail += binomialProbability(others, lost, lossRatio);
  }
  return lossRatio * Math.min(1, tail);
}

/**
 * The cheapest (k, m) whose expected residual data loss at `lossRatio` is at most
 * `targetLossRatio`: k from 4, 6, 8, 10, 12, 16, 20 and m from 1 to k (m = 0 too when the loss is
 * negligible), least overhead (k + m)/k first, then the smaller k. When none meets the target,
 * {k: 10, m: 10}.
 *
 * @example
 * ```ts
 * import { chooseFecParameters } from "./parameters.ts";
 * chooseFecParameters(0.05, 0.001); // { dataShards: 16, parityShards: 4 }
 * ```
 */
export function chooseFecParameters(lossRatio: number, targetLossRatio: number): FecParameters {
  validateRatio("lossRatio", lossRatio);
  validateRatio("targetLossRatio", targetLossRatio);
  let best: FecParameters | undefined;
  for (const dataShards of CANDIDATE_DATA_SHARDS) {
    for (
      let parityShards = lossRatio < NEGLIGIBLE_LOSS_RATIO ? 0 : 1;
      parityShards <= dataShards;
      parityShards++
    ) {
      const candidate = { dataShards, parityShards };
      if (residualLossRatio(candidate, lossRatio) > targetLossRatio) continue;
      // More parity only costs more for this k, so the first m that meets the target is this k's best.
      if (
        best === undefined ||
        (dataShards + parityShards) * best.dataShards <
          (best.dataShards + best.parityShards) * dataShards
      ) {
        best = candidate;
      }
      break;
    }
  }
  return best ?? { ...FALLBACK_PARAMETERS };
}
