/**
 * An FEC group as both ends of the `fec` mode see it: datagrams are gathered into groups of k data
 * shards, and m Reed–Solomon parity shards follow each group, so the receiver rebuilds up to m lost
 * datagrams of a group without a retransmission. The encoder (`encoder.ts`) cuts groups, the decoder
 * (`decoder.ts`) rebuilds them, and `parameters.ts` chooses k and m for a loss ratio; this module
 * holds what they share: the shard body layout, the padded form the parity covers, and the codes.
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
 */

import { ReedSolomon } from "./reed_solomon.ts";

/** Bytes of the FEC header in front of every shard body. */
export const FEC_HEADER_BYTES = 8;
/** The u16 payload length and u16 flow id in front of a padded data shard. */
export const PADDED_PREFIX_BYTES = 4;
/** The largest payload the u16 length of the padded form can describe. */
export const MAX_PAYLOAD_BYTES = 0xffff;
/** The largest flow id a data shard carries (a u16 in the message header and the padded form). */
export const MAX_FLOW_ID = 0xffff;
/** Codes (one per k, m pair) kept for reuse; each holds its own decode-matrix cache. */
const CODE_CACHE_ENTRIES = 32;

/** One shard to send: the flow id for the message header (0 for parity) and the body. */
export interface FecShard {
  readonly flowId: number;
  readonly body: Uint8Array;
}

/** A payload for the application: received as is, or rebuilt from parity (`recovered`). */
export type FecDelivery = {
  readonly flowId: number;
  readonly payload: Uint8Array;
  readonly recovered: boolean;
};

const codes = new Map<number, ReedSolomon>();

/** The shared code for (k, m); codes are cached because building one inverts a k × k matrix. */
export function codeFor(dataShards: number, parityShards: number): ReedSolomon {
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

/** Writes the 8-byte FEC header at the start of `body`. */
export function writeHeader(
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
export function writePadded(padded: Uint8Array, flowId: number, payload: Uint8Array): void {
  padded[0] = payload.length >>> 8;
  padded[1] = payload.length;
  padded[2] = flowId >>> 8;
  padded[3] = flowId;
  padded.set(payload, PADDED_PREFIX_BYTES);
  padded.fill(0, PADDED_PREFIX_BYTES + payload.length);
}

/** Scratch arrays of at least `bytes` bytes, `count` of them, grown on demand; returns views. */
export function scratchViews(pool: Uint8Array[], count: number, bytes: number): Uint8Array[] {
  const views: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    if (pool[i] === undefined || pool[i].length < bytes) pool[i] = new Uint8Array(bytes);
    views.push(pool[i].subarray(0, bytes));
  }
  return views;
}
