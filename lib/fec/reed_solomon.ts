/**
 * A systematic Reed–Solomon erasure code over GF(2^8): k data shards and m parity shards of equal
 * length, any k of which give back the data. It is the code the `fec` mode puts under each group.
 *
 * The field is GF(2^8) with the polynomial x^8 + x^4 + x^3 + x^2 + 1 (0x11D) and generator 2. The
 * encoding matrix is built as Backblaze's JavaReedSolomon and klauspost/reedsolomon (Go) build theirs
 * by default: the (k + m) × k Vandermonde matrix (row r, column c holds r^c) times the inverse of its
 * top k × k square, so the top becomes the identity (data shards go out as they are) and any k rows
 * stay invertible. The same inputs therefore give the same parity bytes as those libraries.
 *
 * Speed: products come from a 64 KiB table built once when the module loads, the inner loops run over
 * `Uint8Array`s without allocating, and the inverted matrix of each erasure pattern is cached.
 */

/** The most shards (data plus parity) one code can have, so that k + m fits in one byte. */
export const MAX_TOTAL_SHARDS = 255;

/** The field polynomial x^8 + x^4 + x^3 + x^2 + 1. */
const FIELD_POLYNOMIAL = 0x11d;
/** Decode matrices kept per code, one per erasure pattern seen lately. */
const DECODE_MATRIX_CACHE_ENTRIES = 64;

/** EXP[i] = 2^i; doubled in length so that EXP[LOG[a] + LOG[b]] needs no modulo. */
const EXP = new Uint8Array(2 * 255);
/** LOG[a] = i such that 2^i = a, for a ≠ 0. */
const LOG = new Uint8Array(256);
{
  let value = 1;
  for (let power = 0; power < 255; power++) {
    EXP[power] = value;
    EXP[power + 255] = value;
    LOG[value] = power;
    value <<= 1;
    if (value & 0x100) value ^= FIELD_POLYNOMIAL;
  }
}

/** MULTIPLY[(a << 8) | b] = a · b in the field. */
const MULTIPLY = new Uint8Array(256 * 256);
for (let a = 1; a < 256; a++) {
  for (let b = 1; b < 256; b++) MULTIPLY[(a << 8) | b] = EXP[LOG[a] + LOG[b]];
}

function multiply(a: number, b: number): number {
  return MULTIPLY[(a << 8) | b];
}

function inverse(a: number): number {
  return EXP[255 - LOG[a]];
}

/** a^n, with 0^0 = 1 as the Vandermonde matrix needs. */
function power(a: number, n: number): number {
  if (n === 0) return 1;
  if (a === 0) return 0;
  return EXP[(LOG[a] * n) % 255];
}

/**
 * Inverts a size × size matrix (row-major) by Gauss–Jordan elimination. Any k rows of the encoding
 * matrix are invertible, so a singular matrix here is a bug and throws.
 */
function invertMatrix(matrix: Uint8Array, size: number): Uint8Array {
  const width = 2 * size;
  const work = new Uint8Array(size * width);
  for (let row = 0; row < size; row++) {
    work.set(matrix.subarray(row * size, (row + 1) * size), row * width);
    work[row * width + size + row] = 1;
  }
  for (let column = 0; column < size; column++) {
    let pivotRow = column;
    while (pivotRow < size && work[pivotRow * width + column] === 0) pivotRow++;
    if (pivotRow === size) throw new Error("reed_solomon: singular matrix");
    if (pivotRow !== column) {
      const saved = work.slice(column * width, (column + 1) * width);
      work.copyWithin(column * width, pivotRow * width, (pivotRow + 1) * width);
      work.set(saved, pivotRow * width);
    }
    const pivotStart = column * width;
    const scaleOffset = inverse(work[pivotStart + column]) << 8;
    for (let i = 0; i < width; i++) {
      work[pivotStart + i] = MULTIPLY[scaleOffset | work[pivotStart + i]];
    }
    for (let row = 0; row < size; row++) {
      const factor = work[row * width + column];
      if (row === column || factor === 0) continue;
      const rowStart = row * width;
      const factorOffset = factor << 8;
      for (let i = 0; i < width; i++) {
        work[rowStart + i] ^= MULTIPLY[factorOffset | work[pivotStart + i]];
      }
    }
  }
  const result = new Uint8Array(size * size);
  for (let row = 0; row < size; row++) {
    result.set(work.subarray(row * width + size, (row + 1) * width), row * size);
  }
  return result;
}

/** output = coefficient · input, or output ^= coefficient · input when `accumulate`. */
function multiplyShard(
  coefficient: number,
  input: Uint8Array,
  output: Uint8Array,
  accumulate: boolean,
): void {
  const length = output.length;
  if (coefficient === 0) {
    if (!accumulate) output.fill(0);
  } else if (coefficient === 1) {
    if (accumulate) { for (let i = 0; i < length; i++) output[i] ^= input[i]; }
    else output.set(input);
  } else {
    const offset = coefficient << 8;
    if (accumulate) { for (let i = 0; i < length; i++) output[i] ^= MULTIPLY[offset | input[i]]; }
    else for (let i = 0; i < length; i++) output[i] = MULTIPLY[offset | input[i]];
  }
}

/**
 * A Reed–Solomon code with a fixed number of data and parity shards.
 *
 * @example
 * ```ts
 * import { ReedSolomon } from "./reed_solomon.ts";
 * const code = new ReedSolomon(2, 1);
 * const data = [Uint8Array.of(1, 2), Uint8Array.of(3, 4)];
 * const parity = [new Uint8Array(2)];
 * code.encode(data, parity);
 * const shards: (Uint8Array | undefined)[] = [undefined, data[1], parity[0]];
 * code.reconstructData(shards); // true; shards[0] is now [1, 2]
 * ```
 */
export class ReedSolomon {
  /** How many data shards a group has (k). */
  readonly dataShards: number;
  /** How many parity shards a group has (m). */
  readonly parityShards: number;
  /** The parity rows of the encoding matrix: m × k, row-major. */
  readonly #parityRows: Uint8Array;
  /** Inverted submatrices by the list of shard indices they decode from, oldest use first. */
  readonly #decodeMatrices = new Map<string, Uint8Array>();

  /** Throws RangeError unless 1 ≤ dataShards, 0 ≤ parityShards and their sum ≤ {@link MAX_TOTAL_SHARDS}. */
  constructor(dataShards: number, parityShards: number) {
    if (!Number.isInteger(dataShards) || dataShards < 1) {
      throw new RangeError(`reed_solomon: data shards must be an integer ≥ 1, got ${dataShards}`);
    }
    if (!Number.isInteger(parityShards) || parityShards < 0) {
      throw new RangeError(
        `reed_solomon: parity shards must be an integer ≥ 0, got ${parityShards}`,
      );
    }
    if (dataShards + parityShards > MAX_TOTAL_SHARDS) {
      throw new RangeError(
        `reed_solomon: at most ${MAX_TOTAL_SHARDS} shards in all, got ${dataShards} + ${parityShards}`,
      );
    }
    this.dataShards = dataShards;
    this.parityShards = parityShards;
    this.#parityRows = buildParityRows(dataShards, parityShards);
  }

  /**
   * Computes parity shards from data shards; every shard has the same length; parity arrays are
   * written in place. Throws RangeError on a wrong shard count or length (a caller's bug).
   */
  encode(data: readonly Uint8Array[], parity: readonly Uint8Array[]): void {
    const k = this.dataShards;
    if (data.length !== k || parity.length !== this.parityShards) {
      throw new RangeError(
        `reed_solomon: expected ${k} data and ${this.parityShards} parity shards, ` +
          `got ${data.length} and ${parity.length}`,
      );
    }
    const shardBytes = data[0].length;
    for (const shards of [data, parity]) {
      for (const shard of shards) {
        if (shard.length !== shardBytes) {
          throw new RangeError(
            `reed_solomon: shards differ in length (${shard.length} ≠ ${shardBytes})`,
          );
        }
      }
    }
    for (let row = 0; row < parity.length; row++) {
      for (let column = 0; column < k; column++) {
        multiplyShard(this.#parityRows[row * k + column], data[column], parity[row], column > 0);
      }
    }
  }

  /**
   * `shards`: length k + m, undefined where missing, present ones all of the same length. Fills in
   * the missing data shards (new arrays put into `shards`); returns false and changes nothing when
   * fewer than k are present. Parity shards are not rebuilt.
   */
  reconstructData(shards: (Uint8Array | undefined)[]): boolean {
    const k = this.dataShards;
    if (shards.length !== k + this.parityShards) {
      throw new RangeError(
        `reed_solomon: expected ${k + this.parityShards} shards, got ${shards.length}`,
      );
    }
    let shardBytes = -1;
    let presentCount = 0;
    let dataMissing = false;
    for (let index = 0; index < shards.length; index++) {
      const shard = shards[index];
      if (shard === undefined) {
        if (index < k) dataMissing = true;
        continue;
      }
      if (shardBytes === -1) shardBytes = shard.length;
      else if (shard.length !== shardBytes) {
        throw new RangeError(
          `reed_solomon: shards differ in length (${shard.length} ≠ ${shardBytes})`,
        );
      }
      presentCount++;
    }
    if (presentCount < k) return false;
    if (!dataMissing) return true;

    // Decode from the first k present shards: data rows are identity rows, so the more data shards
    // among them, the sparser the matrix to invert.
    const sourceIndices: number[] = [];
    for (let index = 0; sourceIndices.length < k; index++) {
      if (shards[index] !== undefined) sourceIndices.push(index);
    }
    const decodeMatrix = this.#decodeMatrixFor(sourceIndices);
    const sources = sourceIndices.map((index) => shards[index] as Uint8Array);
    for (let index = 0; index < k; index++) {
      if (shards[index] !== undefined) continue;
      const output = new Uint8Array(shardBytes);
      for (let column = 0; column < k; column++) {
        multiplyShard(decodeMatrix[index * k + column], sources[column], output, column > 0);
      }
      shards[index] = output;
    }
    return true;
  }

  /** The inverse of the encoding matrix's rows `sourceIndices`, from the cache when it is there. */
  #decodeMatrixFor(sourceIndices: readonly number[]): Uint8Array {
    const key = String.fromCharCode(...sourceIndices);
    const cached = this.#decodeMatrices.get(key);
    if (cached !== undefined) {
      // Re-insert so the Map's order stays least recently used first.
      this.#decodeMatrices.delete(key);
      this.#decodeMatrices.set(key, cached);
      return cached;
    }
    const k = this.dataShards;
    const rows = new Uint8Array(k * k);
    sourceIndices.forEach((shardIndex, row) => {
      if (shardIndex < k) rows[row * k + shardIndex] = 1;
      else {rows.set(
          this.#parityRows.subarray((shardIndex - k) * k, (shardIndex - k + 1) * k),
          row * k,
        );}
    });
    const inverted = invertMatrix(rows, k);
    if (this.#decodeMatrices.size >= DECODE_MATRIX_CACHE_ENTRIES) {
      this.#decodeMatrices.delete(this.#decodeMatrices.keys().next().value as string);
    }
    this.#decodeMatrices.set(key, inverted);
    return inverted;
  }
}

/** Rows k … k+m−1 of Vandermonde × (top k × k of Vandermonde)⁻¹, row-major m × k. */
function buildParityRows(dataShards: number, parityShards: number): Uint8Array {
  const k = dataShards;
  const top = new Uint8Array(k * k);
  for (let row = 0; row < k; row++) {
    for (let column = 0; column < k; column++) top[row * k + column] = power(row, column);
  }
  const topInverse = invertMatrix(top, k);
  const parityRows = new Uint8Array(parityShards * k);
  for (let parityRow = 0; parityRow < parityShards; parityRow++) {
    const point = k + parityRow;
    for (let column = 0; column < k; column++) {
      let sum = 0;
      for (let i = 0; i < k; i++) sum ^= multiply(power(point, i), topInverse[i * k + column]);
      parityRows[parityRow * k + column] = sum;
    }
  }
  return parityRows;
}
