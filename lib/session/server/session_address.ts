/** A path of a client session as the server sees it: an address and what the client advised for it. */

import type { UdpEndpoint } from "../../base/address.ts";

/** One address a session was heard from: a path, as the server sees it. */
export interface SessionAddress {
  readonly address: UdpEndpoint;
  /** A number of its own, for the round robin (addresses come and go). */
  readonly id: number;
  lastHeardMs: number;
  /** Smoothed time between authentic datagrams from this address. */
  arrivalGapMs: number;
  /** Datagrams of the session received from this address, redundant copies included (reported back in probe replies). */
  received: number;
  /** The client's index for this path, from its PROBEs (undefined until one arrives). */
  pathIndex: number | undefined;
  /** The client's advice: send data here (in modes other than redundant). */
  carryData: boolean;
  /** The client's advice: this path's share in balance mode. */
  weight: number;
  /** The key phase and sequence number of the latest PROBE from here (which of two is newer). */
  lastProbeKeyPhase: number;
  lastProbeSequence: number;
}
