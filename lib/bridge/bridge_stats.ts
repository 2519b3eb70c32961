/**
 * What the bridge counts, per direction: datagrams and bytes in and out, and every drop by reason.
 */

import type { SendErrorKind } from "../path/send_error.ts";

/** The two directions through the bridge: toward the server and back toward a client. */
export type Direction = "upstream" | "downstream";

/** Why the bridge dropped a datagram. */
export type BridgeDropReason =
  /** The impairment's random loss. */
  | "loss"
  /** Inside a blackout window. */
  | "blackout"
  /** The rate-limited link's queue was full. */
  | "queue-full"
  /** A new client while `maxMappings` mappings were open. */
  | "mapping-limit"
  /** No upstream socket could be opened for a new client. */
  | "no-socket"
  /** A datagram on an upstream socket from an address other than the server. */
  | "not-from-server"
  /** The mapping closed (idle or stopping) while the datagram waited. */
  | "mapping-closed"
  /** The send failed; see `sendErrors` for why. */
  | "send-error";

/** All bridge drop reasons, in display order. */
export const BRIDGE_DROP_REASONS: readonly BridgeDropReason[] = [
  "loss",
  "blackout",
  "queue-full",
  "mapping-limit",
  "no-socket",
  "not-from-server",
  "mapping-closed",
  "send-error",
];

/** Counters for one direction. `datagramsIn` = `datagramsOut` + drops + those still queued. */
export interface DirectionStats {
  datagramsIn: number;
  bytesIn: number;
  datagramsOut: number;
  bytesOut: number;
  dropped: Record<BridgeDropReason, number>;
  sendErrors: Partial<Record<SendErrorKind, number>>;
  receiveErrors: number;
}

/** A snapshot of the bridge's counters. */
export interface BridgeStats {
  upstream: DirectionStats;
  downstream: DirectionStats;
  mappingsOpened: number;
  mappingsExpired: number;
  mappingsActive: number;
  datagramsQueued: number;
}

/** Zeroed counters for one direction. */
export function createDirectionStats(): DirectionStats {
  const dropped = Object.fromEntries(BRIDGE_DROP_REASONS.map((reason) => [reason, 0]));
  return {
    datagramsIn: 0,
    bytesIn: 0,
    datagramsOut: 0,
    bytesOut: 0,
    dropped: dropped as Record<BridgeDropReason, number>,
    sendErrors: {},
    receiveErrors: 0,
  };
}
