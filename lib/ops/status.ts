/**
 * Status snapshots: what a running mpclient or mpserver reports at `GET /status`, as plain JSON-ready
 * objects. They are the one source of truth for every view of the state — the JSON endpoint, the
 * Prometheus exposition (`lib/ops/metrics.ts`), the terminal table (`lib/ops/status_view.ts`) and the web
 * dashboard — so those views cannot disagree.
 *
 * Building a snapshot is a pure function of the driver's state and a time; nothing here does I/O.
 * Counts are totals since the program started; times are rounded to the microsecond (RTT, jitter)
 * or the millisecond (ages), ratios to six digits.
 */

import { formatHostPort } from "../base/address.ts";
import { VERSION } from "../base/usage_error.ts";
import type { ClientCore } from "../session/client_core.ts";
import { formatSessionId } from "../wire/session_id.ts";
import type { SchedulingMode } from "../session/scheduler.ts";
import type { PathState } from "../path/path_stats.ts";
import type { ServerCore } from "../session/server_core.ts";
import { DROP_REASONS, type DropReason } from "../base/counters.ts";

/** The server lists at most this many sessions (the most recently active); the rest are counted. */
export const MAX_LISTED_SESSIONS = 1000;

/** A count of datagrams and their bytes. */
export interface TrafficStatus {
  readonly datagrams: number;
  readonly bytes: number;
}

/** Drop counts by reason, every reason present (zeros included). */
export type DropsStatus = Readonly<Record<DropReason, number>>;

/** One client path as `/status` reports it. */
export interface ClientPathStatus {
  /** The path's position in the configuration (stable while the program runs). */
  readonly index: number;
  /** The path's `name`, or HOST:PORT. */
  readonly name: string;
  /** Where the path sends (the bridge or the server), resolved. */
  readonly remote: string;
  /** The local address of the path's socket; "" while the path waits for an address to bind. */
  readonly local: string;
  /** The local interface the path leaves through (`dev`, `uplinks auto`); null when not bound to one. */
  readonly interface: string | null;
  readonly state: PathState;
  readonly backup: boolean;
  /** False while an operator has taken the path out of service (it is probed, carries no data). */
  readonly inService: boolean;
  /** Smoothed round-trip time; null until the first probe reply. */
  readonly rttMs: number | null;
  /** Round-trip variation (RFC 6298); null until the first probe reply. */
  readonly rttVarianceMs: number | null;
  /** Variation of consecutive round trips (RFC 3550); null until two replies. */
  readonly jitterMs: number | null;
  /** Share of datagrams lost on the way to the server (0..1); null until measured. */
  readonly lossToServer: number | null;
  /** Share lost on the way back from the server (0..1); null until measured. */
  readonly lossFromServer: number | null;
  /** Share of recent probes that got no reply (0..1); null until a probe is old enough to judge. */
  readonly roundTripLoss: number | null;
  /** What went out on the path: data, probes and handshakes, redundant copies included. */
  readonly sent: TrafficStatus;
  /** What authentic arrived on the path. */
  readonly received: TrafficStatus;
  /** Failed sends by kind; only kinds that happened. */
  readonly sendErrors: Readonly<Record<string, number>>;
  readonly probesSent: number;
  readonly probeReplies: number;
  /** How long ago anything authentic arrived on the path; null if never. */
  readonly lastHeardAgoMs: number | null;
}

/** What mpclient reports at `GET /status`. */
export interface ClientStatus {
  readonly program: "mpclient";
  readonly version: string;
  readonly uptimeSeconds: number;
  readonly mode: SchedulingMode;
  /** True when a shared secret seals every datagram. */
  readonly encrypted: boolean;
  /** Where applications send, HOST:PORT. */
  readonly listen: string;
  readonly session: {
    /** The session id, 8 hex digits. */
    readonly id: string;
    readonly state: "connecting" | "established";
    /** Handshakes completed (the first one and every rekey or re-establishment). */
    readonly handshakes: number;
  };
  readonly traffic: {
    /** Datagrams the applications sent into the tunnel (payload bytes). */
    readonly fromApp: TrafficStatus;
    /** Datagrams the tunnel delivered to the applications (payload bytes). */
    readonly toApp: TrafficStatus;
    /** Redundant copies dropped (expected in redundant mode). */
    readonly duplicates: number;
    /** Datagrams from the server rebuilt from FEC parity (fec mode). */
    readonly fecRecovered: number;
  };
  readonly drops: DropsStatus;
  /** Application flows tracked. */
  readonly flows: number;
  readonly paths: readonly ClientPathStatus[];
}

/** One address a server session was heard from: a path, as the server sees it. */
export interface ServerSessionPathStatus {
  readonly address: string;
  /** The client's index for this path (null until its first PROBE). */
  readonly pathIndex: number | null;
  /** The client wants data on it (modes other than redundant). */
  readonly carryData: boolean;
  readonly lastHeardAgoMs: number;
  /** Datagrams received from this address, redundant copies included. */
  readonly received: number;
}

/** One client session as mpserver's `/status` reports it. */
export interface ServerSessionStatus {
  /** The session id, 8 hex digits. */
  readonly id: string;
  /** True once a sealed datagram proved the client holds the keys. */
  readonly confirmed: boolean;
  /** The key-phase byte of the keys in use; null before the first handshake completes. */
  readonly keyPhase: number | null;
  readonly ageSeconds: number;
  readonly idleSeconds: number;
  /** Target sockets open for the session. */
  readonly flows: number;
  /** Sealed datagrams from the client, first copies only (data and probes; wire bytes). */
  readonly fromClient: TrafficStatus;
  /** Datagrams sent to the client, every copy (wire bytes). */
  readonly toClient: TrafficStatus;
  readonly duplicates: number;
  /** How replies are spread, as the client advised. */
  readonly mode: string;
  /** Datagrams from the client rebuilt from FEC parity. */
  readonly fecRecovered: number;
  readonly paths: readonly ServerSessionPathStatus[];
}

/** What mpserver reports at `GET /status`. */
export interface ServerStatus {
  readonly program: "mpserver";
  readonly version: string;
  readonly uptimeSeconds: number;
  readonly encrypted: boolean;
  /** Where clients send, HOST:PORT each. */
  readonly listen: readonly string[];
  /** Where the flows go, HOST:PORT. */
  readonly target: string;
  readonly traffic: {
    /** Every datagram that reached the listening sockets (wire bytes). */
    readonly received: TrafficStatus;
    /** Every datagram sent to clients (wire bytes). */
    readonly sent: TrafficStatus;
    readonly toTarget: number;
    readonly fromTarget: number;
    readonly duplicates: number;
  };
  readonly drops: DropsStatus;
  /** Failures and refusals around the target sockets, which are not datagram drops. */
  readonly errors: {
    /** Sends to the target that failed. */
    readonly targetSend: number;
    /** Sends to client addresses that failed. */
    readonly clientSend: number;
    /** Datagrams on a target socket from anything but the target. */
    readonly foreignOnTargetSocket: number;
    /** Flows refused because their session had too many target sockets. */
    readonly flowLimit: number;
    /** Classic flows' datagrams dropped: no default target. */
    readonly noDefaultTarget: number;
    /** Declared flows refused (not allowed, unknown name, unresolvable, limit). */
    readonly flowsRefused: number;
  };
  readonly sessionsOpened: number;
  readonly sessionsClosed: number;
  /** Open target sockets. */
  readonly targetSockets: number;
  /** Sessions known now (all of them, even when the list is truncated). */
  readonly sessionCount: number;
  /** The most recently active sessions first, at most {@link MAX_LISTED_SESSIONS}. */
  readonly sessions: readonly ServerSessionStatus[];
  /** True when `sessions` lists fewer than `sessionCount`. */
  readonly sessionsTruncated: boolean;
}

/** Either program's status. */
export type ProgramStatus = ClientStatus | ServerStatus;

/** An address as sockets report it. */
interface AddressLike {
  readonly hostname: string;
  readonly port: number;
}

/** What {@link clientStatus} reads; a `ClientDriver` is one. */
export interface ClientStatusSource {
  readonly core: Pick<
    ClientCore,
    "sessionId" | "state" | "authenticated" | "mode" | "counters" | "paths"
  >;
  readonly startedAtMs: number;
  readonly listenAddress: AddressLike;
  readonly flowCount: number;
  /**
   * Local and remote address of each path, in the order of `core.paths` (`local` undefined while a
   * path waits for an address; `interfaceName` for paths bound to an interface).
   */
  pathAddresses(): readonly {
    readonly local: AddressLike | undefined;
    readonly remote: AddressLike;
    readonly interfaceName?: string;
  }[];
}

/** What {@link serverStatus} reads; a `ServerDriver` is one. */
export interface ServerStatusSource {
  readonly core: Pick<ServerCore, "sessions" | "counters">;
  readonly startedAtMs: number;
  readonly listeners: readonly { readonly localAddress: AddressLike }[];
  /** The default target (classic flows), if any. */
  readonly target: AddressLike | undefined;
  readonly targetCounters: {
    readonly toTarget: number;
    readonly fromTarget: number;
    readonly foreign: number;
    readonly sendErrors: number;
    readonly clientSendErrors: number;
    readonly flowLimit: number;
    readonly noTarget?: number;
    readonly flowsRefused?: number;
  };
  readonly flowCount: number;
  flowsOf(sessionId: number): number;
}

/** Facts about the server that its driver does not hold. */
export interface ServerStatusContext {
  /** True when the server was started with a shared secret. */
  readonly encrypted: boolean;
}

/**
 * The client's status at `nowMs` (`performance.now()` time).
 *
 * @example
 * ```ts ignore
 * const status = clientStatus(driver, performance.now());
 * console.log(status.paths.map((path) => `${path.name} ${path.state}`).join(", "));
 * ```
 */
export function clientStatus(source: ClientStatusSource, nowMs: number): ClientStatus {
  const core = source.core;
  const counters = core.counters;
  const addresses = source.pathAddresses();
  return {
    program: "mpclient",
    version: VERSION,
    uptimeSeconds: roundTo(Math.max(0, nowMs - source.startedAtMs) / 1000, 3),
    mode: core.mode,
    encrypted: core.authenticated,
    listen: formatHostPort(source.listenAddress),
    session: {
      id: formatSessionId(core.sessionId),
      state: core.state,
      handshakes: counters.handshakesCompleted,
    },
    traffic: {
      fromApp: traffic(counters.fromApp),
      toApp: traffic(counters.toApp),
      duplicates: counters.duplicates,
      fecRecovered: counters.fecRecovered,
    },
    drops: drops(counters.drops),
    flows: source.flowCount,
    paths: core.paths.map((path, position) => {
      const address = addresses[position];
      const hasRtt = path.smoothedRttMs !== undefined;
      return {
        index: path.index,
        name: path.label,
        remote: address ? formatHostPort(address.remote) : "",
        local: address?.local ? formatHostPort(address.local) : "",
        interface: address?.interfaceName ?? null,
        state: path.state,
        backup: path.backup,
        inService: path.inService,
        rttMs: hasRtt ? roundTo(path.smoothedRttMs!, 3) : null,
        rttVarianceMs: hasRtt ? roundTo(path.rttVarianceMs, 3) : null,
        jitterMs: path.probeRepliesReceived >= 2 ? roundTo(path.jitterMs, 3) : null,
        lossToServer: ratio(path.lossToServerRatio),
        lossFromServer: ratio(path.lossFromServerRatio(nowMs)),
        roundTripLoss: ratio(path.roundTripLossRatio(nowMs)),
        sent: traffic(path.sent),
        received: traffic(path.received),
        sendErrors: Object.fromEntries(
          Object.entries(path.sendErrors).filter(([, count]) => count > 0),
        ),
        probesSent: path.probesSent,
        probeReplies: path.probeRepliesReceived,
        lastHeardAgoMs: ageMs(path.lastHeardMs, nowMs),
      };
    }),
  };
}

/**
 * The server's status at `nowMs` (`performance.now()` time). Sessions are listed most recently
 * active first, at most {@link MAX_LISTED_SESSIONS} of them.
 *
 * @example
 * ```ts ignore
 * const status = serverStatus(driver, performance.now(), { encrypted: secret !== undefined });
 * console.log(`${status.sessionCount} sessions`);
 * ```
 */
export function serverStatus(
  source: ServerStatusSource,
  nowMs: number,
  context: ServerStatusContext,
): ServerStatus {
  const core = source.core;
  const counters = core.counters;
  const target = source.targetCounters;
  const sessions = [...core.sessions.values()];
  const truncated = sessions.length > MAX_LISTED_SESSIONS;
  sessions.sort((a, b) => b.lastActiveMs - a.lastActiveMs || a.createdMs - b.createdMs);
  return {
    program: "mpserver",
    version: VERSION,
    uptimeSeconds: roundTo(Math.max(0, nowMs - source.startedAtMs) / 1000, 3),
    encrypted: context.encrypted,
    listen: source.listeners.map((listener) => formatHostPort(listener.localAddress)),
    target: source.target === undefined ? "none" : formatHostPort(source.target),
    traffic: {
      received: traffic(counters.received),
      sent: traffic(counters.sent),
      toTarget: target.toTarget,
      fromTarget: target.fromTarget,
      duplicates: counters.duplicates,
    },
    drops: drops(counters.drops),
    errors: {
      targetSend: target.sendErrors,
      clientSend: target.clientSendErrors,
      foreignOnTargetSocket: target.foreign,
      flowLimit: target.flowLimit,
      noDefaultTarget: target.noTarget ?? 0,
      flowsRefused: target.flowsRefused ?? 0,
    },
    sessionsOpened: counters.sessionsOpened,
    sessionsClosed: counters.sessionsClosed,
    targetSockets: source.flowCount,
    sessionCount: core.sessions.size,
    sessions: sessions.slice(0, MAX_LISTED_SESSIONS).map((session) => ({
      id: formatSessionId(session.id),
      confirmed: session.confirmed,
      keyPhase: session.current?.phase ?? null,
      ageSeconds: roundTo(Math.max(0, nowMs - session.createdMs) / 1000, 3),
      idleSeconds: roundTo(Math.max(0, nowMs - session.lastActiveMs) / 1000, 3),
      flows: source.flowsOf(session.id),
      fromClient: traffic(session.fromClient),
      toClient: traffic(session.toClient),
      duplicates: session.duplicates,
      mode: session.mode,
      fecRecovered: session.fecRecovered,
      paths: session.addresses.map((known) => ({
        address: formatHostPort(known.address),
        pathIndex: known.pathIndex ?? null,
        carryData: known.carryData,
        lastHeardAgoMs: ageMs(known.lastHeardMs, nowMs) ?? 0,
        received: known.received,
      })),
    })),
    sessionsTruncated: truncated,
  };
}

function traffic(counters: TrafficStatus): TrafficStatus {
  return { datagrams: counters.datagrams, bytes: counters.bytes };
}

function drops(counters: Readonly<Record<DropReason, number>>): DropsStatus {
  return Object.fromEntries(
    DROP_REASONS.map((reason) => [reason, counters[reason] ?? 0]),
  ) as Record<
    DropReason,
    number
  >;
}

function ratio(value: number | undefined): number | null {
  return value === undefined || !Number.isFinite(value) ? null : roundTo(value, 6);
}

function ageMs(thenMs: number, nowMs: number): number | null {
  return Number.isFinite(thenMs) ? Math.max(0, Math.round(nowMs - thenMs)) : null;
}

function roundTo(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}
