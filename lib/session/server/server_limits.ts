/** The server's limits and timeouts, with defaults for a server with up to thousands of clients. */

/** Limits and timeouts of the server. */
export interface ServerLimits {
  /** A session with no authentic datagram for this long is forgotten. */
  readonly sessionIdleTimeoutMs: number;
  /** A session whose handshake was never followed by a sealed datagram is forgotten after this. */
  readonly unconfirmedSessionTimeoutMs: number;
  /** Replies go to addresses heard from within this time. */
  readonly addressTimeoutMs: number;
  /** Sessions at most. */
  readonly maxSessions: number;
  /** Addresses remembered per session (paths, and their NAT rebindings). */
  readonly maxAddressesPerSession: number;
  /** Handshakes (key agreements) per second, and the burst allowed. */
  readonly handshakesPerSecond: number;
  readonly handshakeBurst: number;
  /** RESETs and NOTICEs per second. */
  readonly resetsPerSecond: number;
  /** Datagrams under the previous keys are accepted this long after new keys are in use. */
  readonly previousKeysGraceMs: number;
}

/** Defaults for a server with up to thousands of clients. */
export const DEFAULT_SERVER_LIMITS: ServerLimits = {
  sessionIdleTimeoutMs: 60_000,
  unconfirmedSessionTimeoutMs: 10_000,
  addressTimeoutMs: 3_000,
  maxSessions: 10_000,
  maxAddressesPerSession: 16,
  handshakesPerSecond: 200,
  handshakeBurst: 400,
  resetsPerSecond: 200,
  previousKeysGraceMs: 10_000,
};
