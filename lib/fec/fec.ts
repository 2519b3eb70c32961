/**
 * Forward error correction for the `fec` mode: datagrams are gathered into groups of k data shards,
 * and m Reed–Solomon parity shards follow each group, so the receiver rebuilds up to m lost datagrams
 * of a group without a retransmission. Sans-I/O: the time is passed in, and a group that waits too
 * long for its k datagrams is closed by {@link FecEncoder.flush} at {@link FecEncoder.nextDeadlineMs}.
 *
 * A shard body travels inside a sealed tunnel message of type FEC, whose header (not part of this
 * module) carries the flow id of a data shard and 0 for a parity shard. Body layout, big-endian:
 *
 * | offset | size | field                                                                  |
 * | ------ | ---- | ---------------------------------------------------------------------- |
 * | 0      | 4    | group id: per direction, from 0, +1 per group, wraps at 2^32            |
 * | 4      | 1    | shard index: 0 … k−1 data, k … k+m−1 parity                             |
 * | 5      | 1    | k: data shards in the group (fewer than configured if closed early)    |
 * | 6      | 1    | m: parity shards in the group                                          |
 * | 7      | 1    | reserved, 0                                                            |
 * | 8      | …    | data shard: the payload as is; parity shard: parity over padded data   |
 *
 * For the parity, data shard i is padded to [u16 payload length][u16 flow id][payload][zeros up to
 * L], with L = max over the group's data shards of (4 + payload length); a parity body is 8 + L bytes.
 *
 * Data shards go out before the group's fate is known, so they carry the group's size as configured
 * when it opened; parity shards carry the size it was closed with. The decoder takes k and m of the
 * parity as the truth and requires the data shards to fit in them.
 *
 * Trust: bodies arrive authenticated, so the decoder's checks are against malformed structure (bugs,
 * version skew), not forgery. It never throws and never lets an inconsistent shard into a group, but
 * a well-formed shard put in the wrong group or at the wrong index would be delivered (if data) or
 * would make recovery produce wrong bytes, which the length and zero-padding checks catch only in part.
 */

import { MAX_TOTAL_SHARDS, ReedSolomon } from "./reed_solomon.ts";

/** Bytes of the FEC header in front of every shard body. */
export const FEC_HEADER_BYTES = 8;

/** How long a group may wait for its k data shards before flush closes it early. */
const DEFAULT_MAX_GROUP_DELAY_MS = 20;
/** How many groups the decoder keeps, counted back from the highest group id seen. */
const DEFAULT_GROUP_WINDOW = 256;
/** The u16 payload length and u16 flow id in front of a padded data shard. */
const PADDED_PREFIX_BYTES = 4;
/** The largest payload the u16 length of the padded form can describe. */
const MAX_PAYLOAD_BYTES = 0xffff;
const MAX_FLOW_ID = 0xffff;
/** Codes (one per k, m pair) kept for reuse; each holds its own decode-matrix cache. */
const CODE_CACHE_ENTRIES = 32;
/** The k values chooseFecParameters considers. */
const CANDIDATE_DATA_SHARDS = [4, 6, 8, 10, 12, 16, 20];
/** What chooseFecParameters returns when no candidate meets the target. */
const FALLBACK_PARAMETERS: FecParameters = { dataShards: 10, parityShards: 10 };
/** Below this loss ratio, a group without parity is a candidate too. */
const NEGLIGIBLE_LOSS_RATIO = 1e-6;

/** One shard to send: the flow id for the message header (0 for parity) and the body. */
export interface FecShard {
  readonly flowId: number;
  readonly body: Uint8Array;
}

/** The size of a group: k data shards and m parity shards. */
export interface FecParameters {
  readonly dataShards: number;
  readonly parityShards: number;
}

/** A payload for the application: received as is, or rebuilt from parity (`recovered`). */
export type FecDelivery = {
  readonly flowId: number;
  readonly payload: Uint8Array;
  readonly recovered: boolean;
};

const codes = new Map<number, ReedSolomon>();

/** The shared code for (k, m); codes are cached because building one inverts a k × k matrix. */
function codeFor(dataShards: number, parityShards: number): ReedSolomon {
  const key = dataShards * 256 + parityShards;
  let code = codes.get(key);
  if (code === undefined) {
    code = new ReedSolomon(dataShards, parityShards);
    if (codes.size >= CODE_CACHE_ENTRIES) codes.delete(codes.keys().next().value as number);
  } else {
    codes.delete(key); // re-inserted below: least recently used first
  }
  codes.set(key, code);
  return code;
}

function validateParameters(parameters: FecParameters): void {
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

function writeHeader(
  body: Uint8Array,
  groupId: number,
  index: number,
  dataShards: number,
  parityShards: number,
): void {
  body[0] = groupId >>> 24;
  body[1] = groupId >>> 16;
  body[2] = groupId >>> 8;
  body[3] = groupId;
  body[4] = index;
  body[5] = dataShards;
  body[6] = parityShards;
  body[7] = 0;
}

/** Writes [u16 length][u16 flow id][payload][zeros] into `padded` (its length is L). */
function writePadded(padded: Uint8Array, flowId: number, payload: Uint8Array): void {
  padded[0] = payload.length >>> 8;
  padded[1] = payload.length;
  padded[2] = flowId >>> 8;
  padded[3] = flowId;
  padded.set(payload, PADDED_PREFIX_BYTES);
  padded.fill(0, PADDED_PREFIX_BYTES + payload.length);
}

/** Scratch arrays of at least `bytes` bytes, `count` of them, grown on demand; returns views. */
function scratchViews(pool: Uint8Array[], count: number, bytes: number): Uint8Array[] {
  const views: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    if (pool[i] === undefined || pool[i].length < bytes) pool[i] = new Uint8Array(bytes);
    views.push(pool[i].subarray(0, bytes));
  }
  return views;
}

/** The group the encoder is filling. */
interface OpenGroup {
  readonly groupId: number;
  readonly dataShards: number;
  readonly parityShards: number;
  readonly startedAtMs: number;
  /** Views into the data bodies already sent (which hold the only copy). */
  readonly payloads: Uint8Array[];
  readonly flowIds: number[];
}

/**
 * Cuts the outgoing datagrams of one direction into FEC groups.
 *
 * @example
 * ```ts
 * import { FecEncoder } from "./fec.ts";
 * const encoder = new FecEncoder({ dataShards: 2, parityShards: 1 });
 * encoder.add(7, Uint8Array.of(1, 2, 3), 0).length; // 1: the data shard, sent at once
 * encoder.add(7, Uint8Array.of(4), 1).length; // 2: the data shard and the group's parity
 * ```
 */
export class FecEncoder {
  /** Groups closed, data shards and parity shards produced. */
  readonly counters = { groups: 0, dataShards: 0, parityShards: 0 };
  readonly #maxGroupDelayMs: number;
  #parameters: FecParameters;
  #nextGroupId = 0;
  #open: OpenGroup | undefined;
  readonly #paddedScratch: Uint8Array[] = [];

  /** Throws RangeError on impossible parameters or a negative delay. */
  constructor(parameters: FecParameters, options: { maxGroupDelayMs?: number } = {}) {
    validateParameters(parameters);
    const maxGroupDelayMs = options.maxGroupDelayMs ?? DEFAULT_MAX_GROUP_DELAY_MS;
    if (!(maxGroupDelayMs >= 0) || !Number.isFinite(maxGroupDelayMs)) {
      throw new RangeError(`fec: maxGroupDelayMs must be ≥ 0, got ${maxGroupDelayMs}`);
    }
    this.#parameters = { ...parameters };
    this.#maxGroupDelayMs = maxGroupDelayMs;
  }

  /** Changes k and m; the group being filled keeps its size, the next group takes the new one. */
  setParameters(parameters: FecParameters): void {
    validateParameters(parameters);
    this.#parameters = { ...parameters };
  }

  /**
   * Returns the data shard for this payload at once (no added latency) followed by the parity shards
   * when the group fills. The payload is copied (the caller may reuse its buffer). Throws RangeError
   * when the flow id is not a u16 or the payload is longer than 65535 bytes.
   */
  add(flowId: number, payload: Uint8Array, nowMs: number): FecShard[] {
    if (!Number.isInteger(flowId) || flowId < 0 || flowId > MAX_FLOW_ID) {
      throw new RangeError(`fec: flow id must be 0 to ${MAX_FLOW_ID}, got ${flowId}`);
    }
    if (payload.length > MAX_PAYLOAD_BYTES) {
      throw new RangeError(`fec: payload of ${payload.length} bytes exceeds ${MAX_PAYLOAD_BYTES}`);
    }
    const group = this.#open ?? this.#openGroup(nowMs);
    const body = new Uint8Array(FEC_HEADER_BYTES + payload.length);
    writeHeader(body, group.groupId, group.payloads.length, group.dataShards, group.parityShards);
    body.set(payload, FEC_HEADER_BYTES);
    group.payloads.push(body.subarray(FEC_HEADER_BYTES));
    group.flowIds.push(flowId);
    this.counters.dataShards++;
    const shards: FecShard[] = [{ flowId, body }];
    if (group.payloads.length === group.dataShards) {
      shards.push(...this.#close(group, group.parityShards));
    }
    return shards;
  }

  /**
   * Closes a group older than maxGroupDelayMs early: parity for the k' data shards it has, with
   * m' = max(1, ceil(m·k'/k)) (none when m = 0). Returns those parity shards, or [].
   */
  flush(nowMs: number): FecShard[] {
    const group = this.#open;
    if (group === undefined || nowMs - group.startedAtMs < this.#maxGroupDelayMs) return [];
    const sent = group.payloads.length;
    const parityShards = group.parityShards === 0
      ? 0
      : Math.max(1, Math.ceil((group.parityShards * sent) / group.dataShards));
    return this.#close(group, parityShards);
  }

  /** When {@link flush} has work: the open group's deadline, or undefined when no group is open. */
  nextDeadlineMs(): number | undefined {
    return this.#open === undefined ? undefined : this.#open.startedAtMs + this.#maxGroupDelayMs;
  }

  #openGroup(nowMs: number): OpenGroup {
    this.#open = {
      groupId: this.#nextGroupId,
      dataShards: this.#parameters.dataShards,
      parityShards: this.#parameters.parityShards,
      startedAtMs: nowMs,
      payloads: [],
      flowIds: [],
    };
    return this.#open;
  }

  /** Ends the group and returns its `parityShards` parity shards over the data shards it has. */
  #close(group: OpenGroup, parityShards: number): FecShard[] {
    this.#open = undefined;
    this.#nextGroupId = (group.groupId + 1) >>> 0;
    this.counters.groups++;
    if (parityShards === 0) return [];
    const dataShards = group.payloads.length;
    let paddedBytes = 0;
    for (const payload of group.payloads) {
      paddedBytes = Math.max(paddedBytes, PADDED_PREFIX_BYTES + payload.length);
    }
    const padded = scratchViews(this.#paddedScratch, dataShards, paddedBytes);
    for (let i = 0; i < dataShards; i++) {
      writePadded(padded[i], group.flowIds[i], group.payloads[i]);
    }
    const bodies: Uint8Array[] = [];
    for (let j = 0; j < parityShards; j++) {
      const body = new Uint8Array(FEC_HEADER_BYTES + paddedBytes);
      writeHeader(body, group.groupId, dataShards + j, dataShards, parityShards);
      bodies.push(body);
    }
    codeFor(dataShards, parityShards).encode(
      padded,
      bodies.map((body) => body.subarray(FEC_HEADER_BYTES)),
    );
    this.counters.parityShards += parityShards;
    return bodies.map((body) => ({ flowId: 0, body }));
  }
}

/** What the decoder holds of a group that is not complete yet. */
interface GroupState {
  /** k and m from data shard headers: the size configured when the group opened (0: none seen). */
  configuredDataShards: number;
  configuredParityShards: number;
  /** k and m from parity headers: the size the group was closed with (0: no parity seen). */
  dataShards: number;
  parityShards: number;
  /** L: the length of the padded data shards, from the parity body length. */
  paddedBytes: number;
  /** Copies of the data payloads delivered so far (received or recovered), by index. */
  readonly payloads: (Uint8Array | undefined)[];
  readonly flowIds: number[];
  deliveredCount: number;
  /** Copies of the parity shards (without header), by index − k. */
  readonly parity: (Uint8Array | undefined)[];
  parityCount: number;
  /** Recovery gave an impossible shard; the group takes no more parity. */
  recoveryFailed: boolean;
}

/** A group whose data shards were all delivered; its copies are freed, its id remembered. */
const COMPLETE = "complete";

/** Whether a group configured as (k, m) may have been closed as (closedK, closedM). */
function closedSizeFits(k: number, m: number, closedK: number, closedM: number): boolean {
  return closedK === k ? closedM === m : closedK < k && closedM >= 1 && closedM <= m;
}

/**
 * Rebuilds the datagrams of one direction from FEC shards, delivering data shards as they arrive and
 * the lost ones as soon as enough parity is in.
 *
 * @example
 * ```ts
 * import { FecDecoder, FecEncoder } from "./fec.ts";
 * const encoder = new FecEncoder({ dataShards: 2, parityShards: 1 });
 * const [first] = encoder.add(7, Uint8Array.of(1, 2, 3), 0);
 * const [, parity] = encoder.add(7, Uint8Array.of(4), 1); // the second data shard is lost
 * const decoder = new FecDecoder();
 * decoder.receive(first.flowId, first.body, 2); // delivers [1, 2, 3]
 * decoder.receive(parity.flowId, parity.body, 3); // delivers [4], recovered
 * ```
 */
export class FecDecoder {
  /**
   * Payloads rebuilt from parity; shards dropped as malformed; shards of groups behind the window;
   * groups evicted with data still missing.
   */
  readonly counters = { recovered: 0, malformed: 0, late: 0, unrecoverableGroups: 0 };
  readonly #groupWindow: number;
  readonly #groups = new Map<number, GroupState | typeof COMPLETE>();
  #highestGroupId: number | undefined;
  readonly #paddedScratch: Uint8Array[] = [];

  /** `groupWindow`: how many group ids back from the highest seen are kept (default 256). */
  constructor(options: { groupWindow?: number } = {}) {
    const groupWindow = options.groupWindow ?? DEFAULT_GROUP_WINDOW;
    if (!Number.isInteger(groupWindow) || groupWindow < 1 || groupWindow >= 2 ** 31) {
      throw new RangeError(
        `fec: groupWindow must be an integer from 1 to 2^31 − 1, got ${groupWindow}`,
      );
    }
    this.#groupWindow = groupWindow;
  }

  /**
   * Takes a shard body (flowId from the message header). Returns what to deliver now: the data shard
   * itself if not delivered before (its payload is a view into `body`), then every data shard that
   * parity recovers (new arrays). Never throws on hostile input: malformed bodies are counted in
   * counters.malformed and ignored.
   */
  receive(flowId: number, body: Uint8Array, nowMs: number): FecDelivery[] {
    void nowMs; // groups age by group id, not by time
    if (body.length < FEC_HEADER_BYTES) return this.#malformed();
    const groupId = ((body[0] << 24) | (body[1] << 16) | (body[2] << 8) | body[3]) >>> 0;
    const index = body[4];
    const dataShards = body[5];
    const parityShards = body[6];
    if (body[7] !== 0 || dataShards === 0 || dataShards + parityShards > MAX_TOTAL_SHARDS) {
      return this.#malformed();
    }
    if (index >= dataShards + parityShards) return this.#malformed();
    const isParity = index >= dataShards;
    const paddedBytes = body.length - FEC_HEADER_BYTES;
    if (isParity && paddedBytes < PADDED_PREFIX_BYTES) return this.#malformed();

    const group = this.#groupFor(groupId);
    if (group === undefined) {
      this.counters.late++;
      return [];
    }
    if (group === COMPLETE) return [];
    return isParity
      ? this.#receiveParity(groupId, group, body, index, dataShards, parityShards)
      : this.#receiveData(groupId, group, flowId, body, index, dataShards, parityShards);
  }

  #malformed(): FecDelivery[] {
    this.counters.malformed++;
    return [];
  }

  /** The group's entry (created if new), or undefined when the group is behind the window. */
  #groupFor(groupId: number): GroupState | typeof COMPLETE | undefined {
    if (this.#highestGroupId === undefined) {
      this.#highestGroupId = groupId;
    } else {
      // Serial-number arithmetic (RFC 1982): the signed 32-bit difference tells ahead from behind.
      const ahead = (groupId - this.#highestGroupId) | 0;
      if (ahead > 0) {
        this.#highestGroupId = groupId;
        this.#evictOldGroups();
      } else if (-ahead >= this.#groupWindow) {
        return undefined;
      }
    }
    let group = this.#groups.get(groupId);
    if (group === undefined) {
      group = {
        configuredDataShards: 0,
        configuredParityShards: 0,
        dataShards: 0,
        parityShards: 0,
        paddedBytes: 0,
        payloads: [],
        flowIds: [],
        deliveredCount: 0,
        parity: [],
        parityCount: 0,
        recoveryFailed: false,
      };
      this.#groups.set(groupId, group);
    }
    return group;
  }

  #evictOldGroups(): void {
    const highest = this.#highestGroupId as number;
    for (const [groupId, group] of this.#groups) {
      // A negative age means the id fell more than 2^31 behind: far outside the window as well.
      const age = (highest - groupId) | 0;
      if (age >= 0 && age < this.#groupWindow) continue;
      if (group !== COMPLETE) this.counters.unrecoverableGroups++;
      this.#groups.delete(groupId);
    }
  }

  #receiveData(
    groupId: number,
    group: GroupState,
    flowId: number,
    body: Uint8Array,
    index: number,
    dataShards: number,
    parityShards: number,
  ): FecDelivery[] {
    const payload = body.subarray(FEC_HEADER_BYTES);
    if (
      group.configuredDataShards !== 0 &&
      (dataShards !== group.configuredDataShards || parityShards !== group.configuredParityShards)
    ) {
      return this.#malformed();
    }
    if (
      group.dataShards !== 0 &&
      (!closedSizeFits(dataShards, parityShards, group.dataShards, group.parityShards) ||
        index >= group.dataShards || PADDED_PREFIX_BYTES + payload.length > group.paddedBytes)
    ) {
      return this.#malformed();
    }
    if (group.payloads[index] !== undefined) return []; // delivered before
    group.configuredDataShards = dataShards;
    group.configuredParityShards = parityShards;
    group.payloads[index] = payload.slice(); // the caller's buffer may be reused after this call
    group.flowIds[index] = flowId;
    group.deliveredCount++;
    const deliveries: FecDelivery[] = [{ flowId, payload, recovered: false }];
    this.#settle(groupId, group, deliveries);
    return deliveries;
  }

  #receiveParity(
    groupId: number,
    group: GroupState,
    body: Uint8Array,
    index: number,
    dataShards: number,
    parityShards: number,
  ): FecDelivery[] {
    const paddedBytes = body.length - FEC_HEADER_BYTES;
    if (group.dataShards !== 0) {
      if (
        dataShards !== group.dataShards || parityShards !== group.parityShards ||
        paddedBytes !== group.paddedBytes
      ) {
        return this.#malformed();
      }
    } else {
      if (
        group.configuredDataShards !== 0 &&
        !closedSizeFits(
          group.configuredDataShards,
          group.configuredParityShards,
          dataShards,
          parityShards,
        )
      ) {
        return this.#malformed();
      }
      // The data shards already delivered must be among the k and fit in L.
      for (let i = 0; i < group.payloads.length; i++) {
        const payload = group.payloads[i];
        if (
          payload !== undefined &&
          (i >= dataShards || PADDED_PREFIX_BYTES + payload.length > paddedBytes)
        ) {
          return this.#malformed();
        }
      }
    }
    if (group.recoveryFailed) return [];
    const slot = index - dataShards;
    if (group.parity[slot] !== undefined) return []; // a duplicate
    group.dataShards = dataShards;
    group.parityShards = parityShards;
    group.paddedBytes = paddedBytes;
    group.parity[slot] = body.slice(FEC_HEADER_BYTES);
    group.parityCount++;
    const deliveries: FecDelivery[] = [];
    this.#settle(groupId, group, deliveries);
    return deliveries;
  }

  /** Recovers what parity allows, then marks the group complete once every data shard is out. */
  #settle(groupId: number, group: GroupState, deliveries: FecDelivery[]): void {
    const dataShards = group.dataShards !== 0 ? group.dataShards : group.configuredDataShards;
    if (
      group.dataShards !== 0 && !group.recoveryFailed && group.deliveredCount < dataShards &&
      group.deliveredCount + group.parityCount >= dataShards
    ) {
      this.#recover(group, deliveries);
    }
    if (group.deliveredCount === dataShards) this.#groups.set(groupId, COMPLETE);
  }

  #recover(group: GroupState, deliveries: FecDelivery[]): void {
    const { dataShards, parityShards, paddedBytes } = group;
    const shards: (Uint8Array | undefined)[] = new Array(dataShards + parityShards);
    const scratch = scratchViews(this.#paddedScratch, dataShards, paddedBytes);
    for (let i = 0; i < dataShards; i++) {
      const payload = group.payloads[i];
      if (payload === undefined) continue;
      writePadded(scratch[i], group.flowIds[i], payload);
      shards[i] = scratch[i];
    }
    for (let j = 0; j < parityShards; j++) shards[dataShards + j] = group.parity[j];
    if (!codeFor(dataShards, parityShards).reconstructData(shards)) return;

    // Check every rebuilt shard before delivering any: an impossible one means the group holds a
    // shard that does not belong, and then none of the rebuilt ones can be trusted.
    const recovered: { index: number; flowId: number; payload: Uint8Array }[] = [];
    for (let i = 0; i < dataShards; i++) {
      if (group.payloads[i] !== undefined) continue;
      const padded = shards[i] as Uint8Array;
      const payloadBytes = (padded[0] << 8) | padded[1];
      const end = PADDED_PREFIX_BYTES + payloadBytes;
      let valid = end <= paddedBytes;
      for (let position = end; valid && position < paddedBytes; position++) {
        valid = padded[position] === 0;
      }
      if (!valid) {
        group.recoveryFailed = true;
        group.parity.length = 0;
        this.counters.malformed++;
        return;
      }
      const flowId = (padded[2] << 8) | padded[3];
      recovered.push({ index: i, flowId, payload: padded.subarray(PADDED_PREFIX_BYTES, end) });
    }
    for (const { index, flowId, payload } of recovered) {
      group.payloads[index] = payload;
      group.flowIds[index] = flowId;
      group.deliveredCount++;
      this.counters.recovered++;
      deliveries.push({ flowId, payload, recovered: true });
    }
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
 * import { residualLossRatio } from "./fec.ts";
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
 * import { chooseFecParameters } from "./fec.ts";
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
