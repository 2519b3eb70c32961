/**
 * What starts mpclient's driver and what it reports: the paths, the front ends (classic listener,
 * `forward` lines, SOCKS5), the scheduling, and the status shapes of the front ends.
 */

import { formatHostPort, type HostPort } from "../base/address.ts";
import type { FecParameters } from "../fec/parameters.ts";
import type { SchedulingMode } from "../session/scheduler.ts";
import type { ClientTiming, FlowTarget } from "../session/client_core.ts";
import type { SecretKeys } from "../crypto/handshake.ts";
import type { Logger } from "../base/log.ts";
import type { BindTransport } from "../io/transport.ts";
import type { Socks5Credentials } from "../socks5/session.ts";

/** A path as the driver needs it: where to send. */
export interface ClientPathTarget {
  readonly host: string;
  readonly port: number;
  /** How logs name it; HOST:PORT when omitted. */
  readonly label?: string;
  /** The local address to send from (bind); the wildcard of the destination's family when omitted. */
  readonly fromAddress?: string;
  /** The local interface to send through: its current address of the destination's family. */
  readonly device?: string;
  /** Carries data only while no other path is up. */
  readonly backup?: boolean;
  /** Share of datagrams in balance mode (default 1). */
  readonly weight?: number;
}

/** How the client spreads datagrams over its paths (see `lib/session/scheduler.ts`). */
export interface ClientScheduling {
  readonly mode: SchedulingMode;
  readonly targetLossRatio?: number;
  readonly fec?: FecParameters | "auto";
  readonly reorderTimeoutMs?: number;
}

/** A `forward` line: another local listener whose flows go to one target. */
export interface ClientForward {
  readonly listen: HostPort;
  readonly target: FlowTarget;
}

/** The SOCKS5 front end's settings (see `lib/socks5/front.ts`). */
export interface ClientSocks5 {
  /** The TCP address of the control listener. */
  readonly listen: HostPort;
  /** When set, clients must authenticate with these (RFC 1929). */
  readonly credentials?: Socks5Credentials;
  readonly maxAssociations?: number;
  readonly maxFlowsPerAssociation?: number;
}

/** What starts a client. */
export interface ClientDriverOptions {
  /** Where applications send for the server's default target (the classic listener), if any. */
  readonly listen?: HostPort;
  /** More listeners, each to a target of its own. */
  readonly forwards?: readonly ClientForward[];
  /** A SOCKS5 front end. */
  readonly socks5?: ClientSocks5;
  readonly paths: readonly ClientPathTarget[];
  readonly secret?: SecretKeys;
  readonly logger: Logger;
  /** Opens the UDP sockets: `bindUdp` in the programs, a `MemoryNetwork`'s `bind` in tests. */
  readonly bind: BindTransport;
  readonly timing?: Partial<ClientTiming>;
  /** Redundant mode when omitted. */
  readonly scheduling?: ClientScheduling;
  /** A flow whose application has been silent this long is forgotten. */
  readonly flowIdleTimeoutMs?: number;
  /** A path down this long has its host name resolved again, then every this often. */
  readonly reresolveAfterMs?: number;
  /** A path down this long is re-opened on a fresh source port, then every this often. */
  readonly reopenAfterMs?: number;
  /** `uplinks auto HOST PORT`: a path to this address per usable interface, named after it. */
  readonly uplinksAuto?: {
    readonly host: string;
    readonly port: number;
    /** Interfaces left out (`exclude` lines). */
    readonly excluded?: readonly string[];
  };
  /** How the interfaces are read, for `dev` paths and `uplinks auto` (tests inject a list). */
  readonly interfaces?: {
    /** Default `Deno.networkInterfaces`. */
    readonly read?: () => Deno.NetworkInterfaceInfo[];
    /** Default 1000 ms. */
    readonly intervalMs?: number;
  };
}

/** What `ClientDriver.setPathInService` found. */
export type PathServiceResult = "ok" | "no-such-path" | "unsupported";

/** What a forward listener reports (for status output). */
export interface ForwardStatus {
  /** Where its applications send, HOST:PORT. */
  readonly listen: string;
  /** The target: a name, or HOST:PORT. */
  readonly target: string;
  readonly flows: number;
}

/** What the SOCKS5 front end reports (for status output). */
export interface Socks5Status {
  /** The TCP control listener, HOST:PORT. */
  readonly listen: string;
  readonly associations: number;
  readonly flows: number;
  readonly connections: number;
  readonly handshakeFailures: number;
  readonly toTunnel: number;
  readonly toClients: number;
  /** Datagrams to a relay dropped, by reason (only reasons that happened). */
  readonly drops: Readonly<Record<string, number>>;
}

/** How logs and status write a flow target. */
export function formatFlowTarget(target: FlowTarget): string {
  return target.kind === "named"
    ? target.name
    : formatHostPort({ hostname: target.host, port: target.port });
}
