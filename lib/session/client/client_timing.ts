/** How the client paces its handshakes, probes and failure detection, and the defaults. */

/** How the client paces its handshakes, probes and failure detection. */
export interface ClientTiming {
  /** INIT is re-sent this often until a RESPONSE arrives. */
  readonly handshakeRetryMs: number;
  /** A PROBE goes out on each path this often (it doubles as the keepalive for bridges and NATs). */
  readonly probeIntervalMs: number;
  /** A path silent for longer than a probe interval is probed this often, to tell loss from death. */
  readonly quietProbeIntervalMs: number;
  /**
   * A path not heard from for this long is marked down, at most. On a busy tunnel probes go out up to
   * every 100 ms and a path is down after as few missed probes as its measured loss allows.
   */
  readonly pathDownAfterMs: number;
  /** ... but never sooner than this. */
  readonly minPathDownAfterMs: number;
  /** Nothing authentic from the server on any path for this long starts a new handshake. */
  readonly serverSilenceMs: number;
  /** With a secret, a new handshake (fresh keys) runs this often. */
  readonly rekeyIntervalMs: number;
  /** After a new handshake, datagrams under the previous keys are still accepted this long. */
  readonly previousKeysGraceMs: number;
}

/** Defaults: a restart is noticed within about a second, a dead path within two. */
export const DEFAULT_CLIENT_TIMING: ClientTiming = {
  handshakeRetryMs: 250,
  probeIntervalMs: 500,
  quietProbeIntervalMs: 150,
  pathDownAfterMs: 2000,
  minPathDownAfterMs: 150,
  serverSilenceMs: 1500,
  rekeyIntervalMs: 120_000,
  previousKeysGraceMs: 10_000,
};
