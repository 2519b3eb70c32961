/**
 * What the configuration files and flags can say, as values: the client's and the server's settings,
 * their parts (paths, forwards, FEC) and the empty settings flags apply over when there is no file.
 */

import type { HostPort } from "../../base/address.ts";
import type { LogLevel } from "../../base/log.ts";
import type { AllowRule } from "../../session/allow_rule.ts";
import type { SchedulingMode } from "../../session/scheduler.ts";

/** How log lines are written. */
export type LogFormat = "text" | "json";

/** Forward error correction: a fixed group of data and parity shards, or chosen from the loss. */
export type FecSetting =
  | { readonly dataShards: number; readonly parityShards: number }
  | "auto";

/** One path line of the client file: a bridge, or the server itself. */
export interface PathSpec {
  /** Host name or IP literal, without brackets. */
  readonly host: string;
  readonly port: number;
  readonly name?: string;
  /** Share of traffic in `balance` mode, 1..1000; 1 when not given. */
  readonly weight: number;
  /** Used only while no other path is up. */
  readonly backup: boolean;
  /** Local IP address to send from. */
  readonly fromAddress?: string;
  /** Local interface to send through. */
  readonly device?: string;
  readonly rateBitsPerSecond?: number;
  /** The line of the file, or 0 when it came from the command line. */
  readonly line: number;
}

/** Where a `forward` listener's traffic goes: a target the server names, or an explicit address. */
export type ForwardTarget =
  | { readonly kind: "named"; readonly name: string }
  | { readonly kind: "address"; readonly address: HostPort };

/** An extra local listener of the client, tied to one target. */
export interface ForwardSpec {
  readonly listen: HostPort;
  readonly target: ForwardTarget;
  /** The line of the file, or 0 when it came from the command line. */
  readonly line: number;
}

/** Everything `mpclient.conf` and the client's flags can say. Absent means "not given". */
export interface ClientConfig {
  readonly paths: readonly PathSpec[];
  /** `uplinks auto HOST PORT`: one path to this address per usable local interface. */
  readonly uplinksAuto?: HostPort;
  readonly excludeInterfaces: readonly string[];
  readonly listen?: HostPort;
  readonly forwards: readonly ForwardSpec[];
  readonly socks5?: HostPort;
  readonly mode?: SchedulingMode;
  /** The loss the scheduler aims below, in percent (0 < x < 100). */
  readonly targetLossPercent?: number;
  readonly fec?: FecSetting;
  readonly secretFile?: string;
  /** With a secret, how often fresh session keys are agreed (default 2 minutes). */
  readonly rekeyIntervalMs?: number;
  /** Reorder buffer timeout, both directions; 0 or absent: off. */
  readonly reorderTimeoutMs?: number;
  /** The longest a silent path stays up. */
  readonly pathDownAfterMs?: number;
  readonly control?: HostPort;
  readonly logLevel?: LogLevel;
  readonly logFormat?: LogFormat;
}

/** Everything `mpserver.conf` and the server's flags can say. Absent means "not given". */
export interface ServerConfig {
  readonly listen: readonly HostPort[];
  /** Named targets, by name. */
  readonly targets: ReadonlyMap<string, HostPort>;
  /** The target classic clients' traffic goes to; always a key of `targets`. */
  readonly defaultTarget?: string;
  readonly allow: readonly AllowRule[];
  readonly secretFile?: string;
  readonly control?: HostPort;
  readonly logLevel?: LogLevel;
  readonly logFormat?: LogFormat;
}

/** A client configuration with nothing given, to apply flags over when there is no file. */
export const EMPTY_CLIENT_CONFIG: ClientConfig = Object.freeze({
  paths: Object.freeze([]),
  excludeInterfaces: Object.freeze([]),
  forwards: Object.freeze([]),
});

/** A server configuration with nothing given, to apply flags over when there is no file. */
export const EMPTY_SERVER_CONFIG: ServerConfig = Object.freeze({
  listen: Object.freeze([]),
  targets: new Map<string, HostPort>(),
  allow: Object.freeze([]),
});

/** `T` with its fields writable: the settings while a parser is still filling them in. */
export type Mutable<T> = { -readonly [K in keyof T]: T[K] };
