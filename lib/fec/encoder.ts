/**
 * The sending side of the `fec` mode: cuts the outgoing datagrams of one direction into FEC groups
 * (layout in `group.ts`). Sans-I/O: the time is passed in, and a group that waits too long for its
 * k datagrams is closed by {@link FecEncoder.flush} at {@link FecEncoder.nextDeadlineMs}.
 */

import {
  codeFor,
  FEC_HEADER_BYTES,
  type FecShard,
  MAX_FLOW_ID,
  MAX_PAYLOAD_BYTES,
  PADDED_PREFIX_BYTES,
  scratchViews,
  writeHeader,
  writePadded,
} from "./group.ts";
import { type FecParameters, validateParameters } from "./parameters.ts";

/** How long a group may wait for its k data shards before flush closes it early. */
const DEFAULT_MAX_GROUP_DELAY_MS = 20;

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
 * import { FecEncoder } from "./encoder.ts";
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
