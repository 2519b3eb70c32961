/**
 * The receiving side of the `fec` mode: rebuilds the datagrams of one direction from FEC shards
 * (layout in `group.ts`), delivering data shards as they arrive and the lost ones as soon as enough
 * parity is in. Groups age by group id, not by time: the decoder keeps a window of recent groups.
 *
 * Trust: bodies arrive authenticated, so the decoder's checks are against malformed structure (bugs,
 * version skew), not forgery. It never throws and never lets an inconsistent shard into a group, but
 * a well-formed shard put in the wrong group or at the wrong index would be delivered (if data) or
 * would make recovery produce wrong bytes, which the length and zero-padding checks catch only in part.
 */

import { MAX_TOTAL_SHARDS } from "./reed_solomon.ts";
import {
  codeFor,
  FEC_HEADER_BYTES,
  type FecDelivery,
  PADDED_PREFIX_BYTES,
  scratchViews,
  writePadded,
} from "./group.ts";

/** How many groups the decoder keeps, counted back from the highest group id seen. */
const DEFAULT_GROUP_WINDOW = 256;

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
 * import { FecDecoder } from "./decoder.ts";
 * import { FecEncoder } from "./encoder.ts";
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
