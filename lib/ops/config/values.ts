/**
 * The parsers of the kinds of value a keyword or a path option takes (names, addresses, durations
 * in range, FEC shapes…), shared by the file and the flags so both give the same messages.
 */

import {
  type HostPort,
  type Parsed,
  parseHost,
  parseHostPort,
  parsePort,
} from "../../base/address.ts";
import type { LogLevel } from "../../base/log.ts";
import { parseDuration, parsePercent } from "../../base/units.ts";
import type { SchedulingMode } from "../../session/scheduler.ts";
import type { FecSetting, ForwardTarget, LogFormat } from "./settings.ts";

/** Data and parity shards each; so a group holds at most 128 shards in all. */
const MAX_FEC_SHARDS = 64;
/** Names of targets and paths: a letter, then letters, digits, `_`, `.` or `-`. */
const NAME_PATTERN = /^[A-Za-z][A-Za-z0-9_.-]*$/;
const NAME_RULE = `a letter, then letters, digits, "_", "." or "-"`;

/** A parse failure with its message. */
export function refuse<T>(error: string): Parsed<T> {
  return { ok: false, error };
}

/** A parsed value. */
export function accept<T>(value: T): Parsed<T> {
  return { ok: true, value };
}

/** A parser for one word that must be one of a few spellings. */
export function oneOf<T extends string>(choices: readonly T[]): (word: string) => Parsed<T> {
  const listed = choices.length === 2
    ? choices.join(" or ")
    : `${choices.slice(0, -1).join(", ")} or ${choices[choices.length - 1]}`;
  return (word) =>
    (choices as readonly string[]).includes(word)
      ? accept(word as T)
      : refuse(`expected ${listed}, got "${word}"`);
}

/** A scheduling mode word. */
export const parseMode = oneOf<SchedulingMode>(["redundant", "adaptive", "balance", "fec"]);
/** A log level word. */
export const parseLogLevel = oneOf<LogLevel>(["debug", "info", "warning", "error"]);
/** A log format word. */
export const parseLogFormat = oneOf<LogFormat>(["text", "json"]);

/** A target or path name (see NAME_RULE); `what` says which, for the message. */
export function parseName(word: string, what: string): Parsed<string> {
  return NAME_PATTERN.test(word)
    ? accept(word)
    : refuse(`expected a ${what} (${NAME_RULE}), got "${word}"`);
}

/** A listening address: `HOST:PORT`, or a bare PORT on `defaultHost`; port 0 is "any free port". */
export function parseListenAddress(word: string, defaultHost: string): Parsed<HostPort> {
  return parseHostPort(word, defaultHost, true);
}

/** A host and a port as two words, as on path lines and `target` lines. */
export function parseHostAndPort(hostWord: string, portWord: string | undefined): Parsed<HostPort> {
  const host = parseHost(hostWord);
  if (!host.ok) return host;
  if (portWord === undefined) return refuse(`expected a port number after the host "${hostWord}"`);
  if (!/^\d+$/.test(portWord)) {
    return refuse(`expected a port number after the host, got "${portWord}"`);
  }
  const port = parsePort(portWord);
  return port.ok ? accept({ hostname: host.value, port: port.value }) : port;
}

/** A `target-loss` percentage, above 0 and below 100. */
export function parseTargetLoss(word: string): Parsed<number> {
  const percent = parsePercent(word);
  if (!percent.ok) return percent;
  if (percent.value <= 0 || percent.value >= 100) {
    return refuse(`target-loss must be above 0 and below 100 (percent), got "${word}"`);
  }
  return percent;
}

const MIN_REKEY_INTERVAL_MS = 1000;
const MAX_REKEY_INTERVAL_MS = 3_600_000;

/** A `rekey-interval` duration, 1 s to 1 h. */
export function parseRekeyInterval(word: string): Parsed<number> {
  const duration = parseDuration(word);
  if (!duration.ok) return duration;
  if (duration.value < MIN_REKEY_INTERVAL_MS || duration.value > MAX_REKEY_INTERVAL_MS) {
    return refuse(`rekey-interval must be from 1s to 1h, got "${word}"`);
  }
  return duration;
}

const MAX_REORDER_TIMEOUT_MS = 1000;

/** A `reorder-timeout` duration, 0 (off) to 1 s. */
export function parseReorderTimeout(word: string): Parsed<number> {
  if (word === "0") return accept(0);
  const duration = parseDuration(word);
  if (!duration.ok) return duration;
  if (duration.value > MAX_REORDER_TIMEOUT_MS) {
    return refuse(`reorder-timeout must be from 0 (off) to 1s, got "${word}"`);
  }
  return duration;
}

const MIN_PATH_DOWN_AFTER_MS = 300;
const MAX_PATH_DOWN_AFTER_MS = 60_000;

/** A `path-down-after` duration, 300 ms to 60 s. */
export function parsePathDownAfter(word: string): Parsed<number> {
  const duration = parseDuration(word);
  if (!duration.ok) return duration;
  if (duration.value < MIN_PATH_DOWN_AFTER_MS || duration.value > MAX_PATH_DOWN_AFTER_MS) {
    return refuse(`path-down-after must be from 300ms to 60s, got "${word}"`);
  }
  return duration;
}

/** An `fec` setting: `K:M` shards (1 to 64 each) or `auto`. */
export function parseFec(word: string): Parsed<FecSetting> {
  if (word === "auto") return accept("auto");
  const match = /^(\d+):(\d+)$/.exec(word);
  if (match === null) {
    return refuse(`expected K:M (data and parity shards, such as 8:2) or auto, got "${word}"`);
  }
  const [dataShards, parityShards] = [Number(match[1]), Number(match[2])];
  for (const [count, what] of [[dataShards, "data"], [parityShards, "parity"]] as const) {
    if (count < 1 || count > MAX_FEC_SHARDS) {
      return refuse(
        `the ${what} shard count must be 1 to ${MAX_FEC_SHARDS}, got ${count} in "${word}"`,
      );
    }
  }
  return accept({ dataShards, parityShards });
}

/** A `forward` target: a target name, or `HOST:PORT` (anything with a colon or bracket). */
export function parseForwardTarget(word: string): Parsed<ForwardTarget> {
  if (word.includes(":") || word.startsWith("[")) {
    const address = parseHostPort(word);
    return address.ok ? accept({ kind: "address", address: address.value }) : address;
  }
  if (NAME_PATTERN.test(word)) return accept({ kind: "named", name: word });
  return refuse(`expected a target name or HOST:PORT, got "${word}"`);
}
