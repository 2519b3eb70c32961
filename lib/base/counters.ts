/**
 * Counters: what each end received, sent and dropped, with every drop under a named reason. They feed
 * the final stats line today and the status endpoint later.
 */

/** Every reason a datagram can be dropped instead of passed on. */
export type DropReason =
  /** Too short, or a field out of range. */
  | "malformed"
  /** A protocol version we do not speak. */
  | "bad-version"
  /** A message type we do not know. */
  | "unknown-type"
  /** The AEAD tag did not verify: forged, corrupted, or sealed under other keys. */
  | "bad-tag"
  /** A handshake MAC did not verify: the other end holds a different secret, or a forgery. */
  | "bad-mac"
  /** An unauthenticated message where a secret is required, or an authenticated one without. */
  | "auth-mismatch"
  /** Older than the replay window: a replay or a datagram delayed beyond any use. */
  | "replay"
  /** A session (or key phase) this end does not know. */
  | "unknown-session"
  /** A handshake older than one already accepted for the session. */
  | "stale-handshake"
  /** Handshakes beyond the rate the server accepts. */
  | "handshake-rate-limited"
  /** More sessions than the server accepts. */
  | "session-limit"
  /** An application datagram too large to tunnel. */
  | "oversize"
  /** Application datagrams queued while the handshake was pending, beyond the queue. */
  | "queue-full"
  /** A message that this end never expects (e.g. an INIT at the client). */
  | "unexpected"
  /** A datagram of a flow whose target the server refused (or, at the server, not allowed). */
  | "target-refused"
  /** At the server: a declared flow's datagram that waited for its FLOW_OPEN in vain. */
  | "flow-unknown";

/** All drop reasons, in display order. */
export const DROP_REASONS: readonly DropReason[] = [
  "malformed",
  "bad-version",
  "unknown-type",
  "bad-tag",
  "bad-mac",
  "auth-mismatch",
  "replay",
  "unknown-session",
  "stale-handshake",
  "handshake-rate-limited",
  "session-limit",
  "oversize",
  "queue-full",
  "unexpected",
  "target-refused",
  "flow-unknown",
];

/** Drop counts by reason. */
export type DropCounters = Record<DropReason, number>;

/** A fresh set of zeroed drop counters. */
export function createDropCounters(): DropCounters {
  return Object.fromEntries(DROP_REASONS.map((reason) => [reason, 0])) as DropCounters;
}

/** Datagram and byte counts for one direction of one thing (a path, a session, a socket). */
export interface TrafficCounters {
  datagrams: number;
  bytes: number;
}

/** Zeroed traffic counters. */
export function createTrafficCounters(): TrafficCounters {
  return { datagrams: 0, bytes: 0 };
}

/** Renders the non-zero drop counters as `reason=count` words (or `none`). */
export function formatDrops(drops: DropCounters): string {
  const words = DROP_REASONS.filter((reason) => drops[reason] > 0).map((reason) =>
    `${reason}=${drops[reason]}`
  );
  return words.length > 0 ? words.join(" ") : "none";
}
