/**
 * What the dashboard page reads and shows: the parts of `/status` it uses (`lib/ops/status.ts`'s
 * `ClientStatus` and `ServerStatus`, with lists it tolerates missing, from an older or newer
 * program), one poll's sample, and everything one paint of the page takes.
 */

/** A count of datagrams and their bytes. */
export interface TrafficView {
  readonly datagrams: number;
  readonly bytes: number;
}

/** One client path as the dashboard reads it. */
export interface ClientPathView {
  readonly index: number;
  readonly name: string;
  readonly remote: string;
  readonly local: string;
  readonly state: string;
  readonly backup: boolean;
  readonly rttMs: number | null;
  readonly jitterMs: number | null;
  /** 0..1 */
  readonly lossToServer: number | null;
  /** 0..1 */
  readonly lossFromServer: number | null;
  readonly sent: TrafficView;
  readonly received: TrafficView;
  readonly sendErrors?: Readonly<Record<string, number>>;
  readonly probesSent?: number;
  readonly probeReplies?: number;
  readonly lastHeardAgoMs: number | null;
}

/** mpclient's `/status` as the dashboard reads it. */
export interface ClientStatusView {
  readonly program: "mpclient";
  readonly version: string;
  readonly uptimeSeconds: number;
  readonly mode: string;
  readonly encrypted: boolean;
  readonly listen: string;
  readonly session: { readonly id: string; readonly state: string; readonly handshakes: number };
  readonly traffic: {
    readonly fromApp: TrafficView;
    readonly toApp: TrafficView;
    readonly duplicates: number;
  };
  readonly drops: Readonly<Record<string, number>>;
  readonly flows: number;
  readonly paths: readonly ClientPathView[];
}

/** One address a server session was heard from. */
export interface ServerSessionPathView {
  readonly address: string;
  readonly lastHeardAgoMs: number | null;
  /** Datagrams received from the address. */
  readonly received: number;
}

/** One server session as the dashboard reads it. */
export interface ServerSessionView {
  readonly id: string;
  readonly confirmed: boolean;
  readonly keyPhase: number | null;
  readonly ageSeconds: number;
  readonly idleSeconds: number;
  readonly flows: number;
  readonly fromClient: TrafficView;
  readonly toClient: TrafficView;
  readonly duplicates: number;
  readonly paths: readonly ServerSessionPathView[];
}

/** mpserver's `/status` as the dashboard reads it. */
export interface ServerStatusView {
  readonly program: "mpserver";
  readonly version: string;
  readonly uptimeSeconds: number;
  readonly encrypted: boolean;
  readonly listen: readonly string[];
  readonly target: string;
  readonly traffic: {
    readonly received: TrafficView;
    readonly sent: TrafficView;
    /** Datagrams. */
    readonly toTarget: number;
    /** Datagrams. */
    readonly fromTarget: number;
    readonly duplicates: number;
  };
  readonly drops: Readonly<Record<string, number>>;
  readonly errors?: Readonly<Record<string, number>>;
  readonly sessionsOpened?: number;
  readonly sessionsClosed?: number;
  readonly sessionCount: number;
  readonly sessionsTruncated?: boolean;
  readonly sessions: readonly ServerSessionView[];
}

/** Either program's `/status`. */
export type StatusView = ClientStatusView | ServerStatusView;

/** One poll of `/status`: what came back, or null when the fetch failed. */
export interface Sample {
  /** When the answer arrived (the page's `Date.now()`). */
  readonly atMs: number;
  readonly status: StatusView | null;
}

/** Everything the page shows, as of `nowMs`. */
export interface DashboardView {
  /** The last samples, oldest first, at most `capacity`. */
  readonly history: readonly Sample[];
  /** How many samples a chart spans. */
  readonly capacity: number;
  /** How often the page polls. */
  readonly refreshIntervalMs: number;
  readonly nowMs: number;
  /** Why the last poll failed; null when it succeeded. */
  readonly error: string | null;
  /** The server's session table shows at most this many (the most recently active). */
  readonly maxListedSessions: number;
}
