/**
 * The configuration language of `mpclient.conf` and `mpserver.conf` (see CONFIG.md), and the
 * command-line flags that mirror it: every keyword is also a flag of the same name, whose value is
 * the rest of the line (`mode fec` ≡ `--mode fec`, `forward 5353 dns` ≡ `--forward "5353 dns"`).
 *
 * Each keyword is one row of a table (its words, its summary for `--help`, its parser), so the file
 * and the flag share one parser and one set of messages. Parsing is pure and stops at the first
 * mistake with a {@link ConfigError} naming the file and line (or the flag) and what was expected.
 *
 * Grammar decisions CONFIG.md leaves open:
 * - A line whose first word is a keyword is a keyword line, even if a host has that name; write
 *   such a host with a trailing dot (`mode. 4001`). A first word one typo away from a keyword (`lsiten`)
 *   is refused as a misspelt keyword for the same reason, and the trailing dot is the way out.
 * - Words cannot hold spaces or `#`, so neither can paths given to `secret-file`.
 * - Listening addresses (`listen`, `forward`, `socks5`, `control`) accept a bare PORT: 127.0.0.1 on
 *   the client and for `control`, 0.0.0.0 for the server's `listen`. Port 0 means "any free port".
 * - A repeatable keyword given as a flag replaces the file's lines for that keyword; it does not add.
 * - IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) are IPv4 for `allow`: they match IPv4 rules and
 *   never IPv6 ones; an `allow` rule written in mapped form becomes the IPv4 rule it means.
 */

import {
  type HostPort,
  isIPv4Literal,
  isIPv6Literal,
  type Parsed,
  parseHost,
  parseHostPort,
  parsePort,
} from "../base/address.ts";
import { UsageError } from "../base/usage_error.ts";
import type { LogLevel } from "../base/log.ts";
import { parseDuration, parsePercent, parseRate } from "../base/units.ts";
import { formatIPBytes, type IPBytes, maskedBytes, parseIPBytes } from "../base/ip_network.ts";
import { type AllowRule, allowRuleMatches } from "../session/allow_rule.ts";
export { type AllowRule, allowRuleMatches };

/** Where the client's own listeners bind when only a port is given: this machine only. */
const CLIENT_DEFAULT_LISTEN_HOST = "127.0.0.1";
/** Where the server listens when only a port is given: all IPv4 interfaces, like classic mpserver. */
const SERVER_DEFAULT_LISTEN_HOST = "0.0.0.0";
/** Where the status endpoint binds when only a port is given, on either side. */
const CONTROL_DEFAULT_HOST = "127.0.0.1";
const MIN_PATH_WEIGHT = 1;
const MAX_PATH_WEIGHT = 1000;
/** Data and parity shards each; so a group holds at most 128 shards in all. */
const MAX_FEC_SHARDS = 64;
/** Names of targets and paths: a letter, then letters, digits, `_`, `.` or `-`. */
const NAME_PATTERN = /^[A-Za-z][A-Za-z0-9_.-]*$/;
const NAME_RULE = `a letter, then letters, digits, "_", "." or "-"`;
const BYTE_ORDER_MARK = "\uFEFF";

import type { SchedulingMode } from "../session/scheduler.ts";
export type { SchedulingMode };

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

/** A mistake in a configuration file or flag: `FILE:LINE: message` or `--flag: message`, exit 2. */
export class ConfigError extends UsageError {
  override name = "ConfigError";
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

// -------------------------------------------------------------------------------------------------
// Value parsers, one per kind of value, shared by the file and the flags.

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function refuse<T>(error: string): Parsed<T> {
  return { ok: false, error };
}

function accept<T>(value: T): Parsed<T> {
  return { ok: true, value };
}

/** A parser for one word that must be one of a few spellings. */
function oneOf<T extends string>(choices: readonly T[]): (word: string) => Parsed<T> {
  const listed = choices.length === 2
    ? choices.join(" or ")
    : `${choices.slice(0, -1).join(", ")} or ${choices[choices.length - 1]}`;
  return (word) =>
    (choices as readonly string[]).includes(word)
      ? accept(word as T)
      : refuse(`expected ${listed}, got "${word}"`);
}

const parseMode = oneOf<SchedulingMode>(["redundant", "adaptive", "balance", "fec"]);
const parseLogLevel = oneOf<LogLevel>(["debug", "info", "warning", "error"]);
const parseLogFormat = oneOf<LogFormat>(["text", "json"]);

function parseName(word: string, what: string): Parsed<string> {
  return NAME_PATTERN.test(word)
    ? accept(word)
    : refuse(`expected a ${what} (${NAME_RULE}), got "${word}"`);
}

/** A listening address: `HOST:PORT`, or a bare PORT on `defaultHost`; port 0 is "any free port". */
function parseListenAddress(word: string, defaultHost: string): Parsed<HostPort> {
  return parseHostPort(word, defaultHost, true);
}

/** A host and a port as two words, as on path lines and `target` lines. */
function parseHostAndPort(hostWord: string, portWord: string | undefined): Parsed<HostPort> {
  const host = parseHost(hostWord);
  if (!host.ok) return host;
  if (portWord === undefined) return refuse(`expected a port number after the host "${hostWord}"`);
  if (!/^\d+$/.test(portWord)) {
    return refuse(`expected a port number after the host, got "${portWord}"`);
  }
  const port = parsePort(portWord);
  return port.ok ? accept({ hostname: host.value, port: port.value }) : port;
}

function parseTargetLoss(word: string): Parsed<number> {
  const percent = parsePercent(word);
  if (!percent.ok) return percent;
  if (percent.value <= 0 || percent.value >= 100) {
    return refuse(`target-loss must be above 0 and below 100 (percent), got "${word}"`);
  }
  return percent;
}

const MIN_REKEY_INTERVAL_MS = 1000;
const MAX_REKEY_INTERVAL_MS = 3_600_000;

function parseRekeyInterval(word: string): Parsed<number> {
  const duration = parseDuration(word);
  if (!duration.ok) return duration;
  if (duration.value < MIN_REKEY_INTERVAL_MS || duration.value > MAX_REKEY_INTERVAL_MS) {
    return refuse(`rekey-interval must be from 1s to 1h, got "${word}"`);
  }
  return duration;
}

const MAX_REORDER_TIMEOUT_MS = 1000;

function parseReorderTimeout(word: string): Parsed<number> {
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

function parsePathDownAfter(word: string): Parsed<number> {
  const duration = parseDuration(word);
  if (!duration.ok) return duration;
  if (duration.value < MIN_PATH_DOWN_AFTER_MS || duration.value > MAX_PATH_DOWN_AFTER_MS) {
    return refuse(`path-down-after must be from 300ms to 60s, got "${word}"`);
  }
  return duration;
}

function parseFec(word: string): Parsed<FecSetting> {
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

function parseForwardTarget(word: string): Parsed<ForwardTarget> {
  if (word.includes(":") || word.startsWith("[")) {
    const address = parseHostPort(word);
    return address.ok ? accept({ kind: "address", address: address.value }) : address;
  }
  if (NAME_PATTERN.test(word)) return accept({ kind: "named", name: word });
  return refuse(`expected a target name or HOST:PORT, got "${word}"`);
}

// -------------------------------------------------------------------------------------------------
// Path lines.

/** What a path option reads: its value word (absent for `backup`) into the path being built. */
interface PathOption {
  readonly valueName?: string;
  readonly apply: (path: Mutable<PathSpec>, value: string) => string | undefined;
}

const PATH_OPTIONS: ReadonlyMap<string, PathOption> = new Map<string, PathOption>([
  ["name", {
    valueName: "NAME",
    apply(path, value) {
      const name = parseName(value, "path name");
      if (!name.ok) return name.error;
      path.name = name.value;
    },
  }],
  ["weight", {
    valueName: "N",
    apply(path, value) {
      const weight = Number(value);
      if (!/^\d+$/.test(value) || weight < MIN_PATH_WEIGHT || weight > MAX_PATH_WEIGHT) {
        return `expected a weight from ${MIN_PATH_WEIGHT} to ${MAX_PATH_WEIGHT}, got "${value}"`;
      }
      path.weight = weight;
    },
  }],
  ["backup", {
    apply(path) {
      path.backup = true;
    },
  }],
  ["from", {
    valueName: "ADDRESS",
    apply(path, value) {
      const address = parseHost(value);
      if (!address.ok || !(isIPv4Literal(address.value) || isIPv6Literal(address.value))) {
        return `expected a local IP address after from, got "${value}"`;
      }
      path.fromAddress = address.value;
    },
  }],
  ["dev", {
    valueName: "INTERFACE",
    apply(path, value) {
      path.device = value;
    },
  }],
  ["rate", {
    valueName: "RATE",
    apply(path, value) {
      const rate = parseRate(value);
      if (!rate.ok) return rate.error;
      path.rateBitsPerSecond = rate.value;
    },
  }],
]);

const PATH_OPTION_LIST = [...PATH_OPTIONS.keys()].join(", ").replace(/, (\w+)$/, " or $1");

/**
 * Parses the words of a path line, `HOST PORT [option…]`, as the file writes it (and as a program
 * may take it from its positional arguments). `line` is recorded in the result (0 for none).
 *
 * @example
 * ```ts
 * import { parsePathWords } from "./config.ts";
 * const parsed = parsePathWords(["[::1]", "4001", "name", "lte", "backup"], 0);
 * if (parsed.ok) console.log(parsed.value.host, parsed.value.backup); // ::1 true
 * ```
 */
export function parsePathWords(words: readonly string[], line: number): Parsed<PathSpec> {
  if (words.length === 0) return refuse(`expected a path "HOST PORT [option…]"`);
  const address = parseHostAndPort(words[0], words[1]);
  if (!address.ok) return address;
  const path: Mutable<PathSpec> = {
    host: address.value.hostname,
    port: address.value.port,
    weight: 1,
    backup: false,
    line,
  };
  const given = new Set<string>();
  for (let index = 2; index < words.length; index++) {
    const optionName = words[index];
    const option = PATH_OPTIONS.get(optionName);
    if (option === undefined) {
      return refuse(`unknown path option "${optionName}"; expected ${PATH_OPTION_LIST}`);
    }
    if (given.has(optionName)) return refuse(`${optionName} is given twice on this path`);
    given.add(optionName);
    let value = "";
    if (option.valueName !== undefined) {
      if (index + 1 >= words.length) {
        return refuse(`${optionName} needs a value; expected "${optionName} ${option.valueName}"`);
      }
      value = words[++index];
    }
    const problem = option.apply(path, value);
    if (problem !== undefined) return refuse(problem);
  }
  if (path.fromAddress !== undefined && path.device !== undefined) {
    return refuse(`a path takes from or dev, not both`);
  }
  return accept(path);
}

// -------------------------------------------------------------------------------------------------
// Allow rules.

type Network = Pick<AllowRule, "network" | "prefixLength" | "family">;

/** Parses `ADDRESS[/PREFIX]`; a bare address is one host. */
function parseNetwork(word: string): Parsed<Network> {
  const [addressText, prefixText, ...rest] = word.split("/");
  const address = rest.length === 0 && !addressText.includes("%")
    ? parseIPBytes(addressText)
    : undefined;
  if (address === undefined) {
    return refuse(
      `expected an IP address or network such as 10.0.0.0/8 or 2001:db8::/32, got "${word}"`,
    );
  }
  const maxPrefixLength = address.bytes.length * 8;
  // A mapped IPv6 network ::ffff:a.b.c.d/N is the IPv4 network a.b.c.d/(N-96).
  const writtenAsMapped = address.family === 4 && addressText.includes(":");
  const writtenMaxPrefixLength = writtenAsMapped ? 128 : maxPrefixLength;
  let prefixLength = maxPrefixLength;
  if (prefixText !== undefined) {
    const writtenPrefixLength = Number(prefixText);
    const lowest = writtenAsMapped ? 96 : 0;
    if (
      !/^\d{1,3}$/.test(prefixText) || writtenPrefixLength > writtenMaxPrefixLength ||
      writtenPrefixLength < lowest
    ) {
      return refuse(
        `expected a prefix length from ${lowest} to ${writtenMaxPrefixLength} after "/", ` +
          `got "${prefixText}" in "${word}"`,
      );
    }
    prefixLength = writtenPrefixLength - (writtenAsMapped ? 96 : 0);
  }
  const network: IPBytes = {
    family: address.family,
    bytes: maskedBytes(address.bytes, prefixLength),
  };
  if (!network.bytes.every((byte, index) => byte === address.bytes[index])) {
    const suggestion = `${formatIPBytes(network)}/${prefixLength}`;
    return refuse(`${word} has host bits set; did you mean ${suggestion}?`);
  }
  return accept({ network: formatIPBytes(network), prefixLength, family: address.family });
}

function parsePortRange(word: string): Parsed<readonly [number, number]> {
  const match = /^(\d+)(?:-(\d+))?$/.exec(word);
  if (match === null) {
    return refuse(`expected a port or port range such as 53 or 8000-8999, got "${word}"`);
  }
  const low = parsePort(match[1]);
  if (!low.ok) return low;
  const high = match[2] === undefined ? low : parsePort(match[2]);
  if (!high.ok) return high;
  if (low.value > high.value) {
    return refuse(`port range ${word} runs backwards; expected LOW-HIGH with LOW ≤ HIGH`);
  }
  return accept([low.value, high.value]);
}

// -------------------------------------------------------------------------------------------------
// Keywords.

/** Where the words being applied came from: a line of a file, or a flag (line 0). */
interface Origin {
  readonly line: number;
  /** First line (0 for a flag) of each thing that must be unique, keyed like `target:dns`. */
  readonly firstLines: Map<string, number>;
}

function earlier(line: number): string {
  return line > 0 ? `on line ${line}` : "earlier on the command line";
}

/** One keyword: its words, what it means, and how it changes the configuration being built. */
interface KeywordRule<Config> {
  readonly keyword: string;
  /** The words after the keyword, for messages and `--help` (`HOST:PORT`). */
  readonly valueWords: string;
  readonly summary: string;
  /** The configuration field this keyword sets, which a flag of the same name replaces. */
  readonly field: keyof Config & string;
  readonly repeatable: boolean;
  readonly minWords: number;
  readonly maxWords: number;
  /** Applies the words after the keyword; returns what was wrong, or undefined. */
  readonly apply: (
    config: Mutable<Config>,
    words: readonly string[],
    origin: Origin,
  ) => string | undefined;
}

/** A keyword that sets one field once, from `wordCount` words. */
function setting<Config, Field extends keyof Config & string>(
  keyword: string,
  field: Field,
  valueWords: string,
  summary: string,
  parse: (words: readonly string[]) => Parsed<NonNullable<Config[Field]>>,
  wordCount = 1,
): KeywordRule<Config> {
  return {
    keyword,
    valueWords,
    summary,
    field,
    repeatable: false,
    minWords: wordCount,
    maxWords: wordCount,
    apply(config, words) {
      const parsed = parse(words);
      if (!parsed.ok) return parsed.error;
      config[field] = parsed.value;
    },
  };
}

/** A keyword that may repeat, each line adding one entry. */
function repeated<Config>(
  rule: Omit<KeywordRule<Config>, "repeatable" | "maxWords"> & { readonly maxWords?: number },
): KeywordRule<Config> {
  return { ...rule, repeatable: true, maxWords: rule.maxWords ?? rule.minWords };
}

/** The keywords both files share, for a configuration type that has their fields. */
interface SharedSettings {
  readonly secretFile?: string;
  readonly control?: HostPort;
  readonly logLevel?: LogLevel;
  readonly logFormat?: LogFormat;
}

/** Rules over SharedSettings fit any Config that extends it: they touch only those fields. */
function sharedRules<Config extends SharedSettings>(): KeywordRule<Config>[] {
  return [
    setting<SharedSettings, "secretFile">(
      "secret-file",
      "secretFile",
      "PATH",
      "file holding the shared secret (or set MPTUNNEL_SECRET)",
      ([path]) => accept(path),
    ),
    setting<SharedSettings, "control">(
      "control",
      "control",
      "[HOST:]PORT",
      "local status and metrics endpoint",
      ([word]) => parseListenAddress(word, CONTROL_DEFAULT_HOST),
    ),
    setting<SharedSettings, "logLevel">(
      "log-level",
      "logLevel",
      "debug|info|warning|error",
      "least severe log lines to write",
      ([word]) => parseLogLevel(word),
    ),
    setting<SharedSettings, "logFormat">(
      "log-format",
      "logFormat",
      "text|json",
      "how log lines are written",
      ([word]) => parseLogFormat(word),
    ),
  ];
}

const CLIENT_RULES: readonly KeywordRule<ClientConfig>[] = [
  setting<ClientConfig, "uplinksAuto">(
    "uplinks",
    "uplinksAuto",
    "auto HOST PORT",
    "one path to HOST PORT per usable local interface",
    ([auto, host, port]) =>
      auto === "auto"
        ? parseHostAndPort(host, port)
        : refuse(`expected "auto" after uplinks, got "${auto}"`),
    3,
  ),
  repeated<ClientConfig>({
    keyword: "exclude",
    valueWords: "INTERFACE",
    summary: "leave this interface out of uplinks auto (repeatable)",
    field: "excludeInterfaces",
    minWords: 1,
    apply(config, [device]) {
      config.excludeInterfaces = [...config.excludeInterfaces, device];
    },
  }),
  setting<ClientConfig, "listen">(
    "listen",
    "listen",
    "[HOST:]PORT",
    `where applications send (a bare PORT is on ${CLIENT_DEFAULT_LISTEN_HOST})`,
    ([word]) => parseListenAddress(word, CLIENT_DEFAULT_LISTEN_HOST),
  ),
  repeated<ClientConfig>({
    keyword: "forward",
    valueWords: "[HOST:]PORT TARGET",
    summary: "another local listener, to a target name on the server or HOST:PORT (repeatable)",
    field: "forwards",
    minWords: 2,
    apply(config, [listenWord, targetWord], origin) {
      const listen = parseListenAddress(listenWord, CLIENT_DEFAULT_LISTEN_HOST);
      if (!listen.ok) return listen.error;
      const target = parseForwardTarget(targetWord);
      if (!target.ok) return target.error;
      const clash = config.forwards.find((forward) =>
        forward.listen.hostname === listen.value.hostname &&
        forward.listen.port === listen.value.port && listen.value.port !== 0
      );
      if (clash !== undefined) {
        return `forward ${listenWord} listens where the forward ${earlier(clash.line)} does`;
      }
      const forward = { listen: listen.value, target: target.value, line: origin.line };
      config.forwards = [...config.forwards, forward];
    },
  }),
  setting<ClientConfig, "socks5">(
    "socks5",
    "socks5",
    "[HOST:]PORT",
    "a SOCKS5 front end (UDP ASSOCIATE)",
    ([word]) => parseListenAddress(word, CLIENT_DEFAULT_LISTEN_HOST),
  ),
  setting<ClientConfig, "mode">(
    "mode",
    "mode",
    "redundant|adaptive|balance|fec",
    "how datagrams are spread over the paths",
    ([word]) => parseMode(word),
  ),
  setting<ClientConfig, "targetLossPercent">(
    "target-loss",
    "targetLossPercent",
    "PERCENT",
    "the loss the scheduler aims below, in percent (0.1)",
    ([word]) => parseTargetLoss(word),
  ),
  setting<ClientConfig, "fec">(
    "fec",
    "fec",
    "K:M|auto",
    "forward error correction: K data and M parity shards, or chosen from the loss",
    ([word]) => parseFec(word),
  ),
  setting<ClientConfig, "rekeyIntervalMs">(
    "rekey-interval",
    "rekeyIntervalMs",
    "DURATION",
    "with a secret, how often fresh session keys are agreed (default 2m; 1s to 1h)",
    ([word]) => parseRekeyInterval(word),
  ),
  setting<ClientConfig, "reorderTimeoutMs">(
    "reorder-timeout",
    "reorderTimeoutMs",
    "DURATION",
    "hold a datagram that overtook an earlier one of its flow at most this long (default 0: off)",
    ([word]) => parseReorderTimeout(word),
  ),
  setting<ClientConfig, "pathDownAfterMs">(
    "path-down-after",
    "pathDownAfterMs",
    "DURATION",
    "a silent path is down after at most this long (default 2s; busy tunnels notice sooner)",
    ([word]) => parsePathDownAfter(word),
  ),
  ...sharedRules<ClientConfig>(),
];

const SERVER_RULES: readonly KeywordRule<ServerConfig>[] = [
  repeated<ServerConfig>({
    keyword: "listen",
    valueWords: "[HOST:]PORT",
    summary:
      `where clients and bridges send (repeatable; bare PORT: ${SERVER_DEFAULT_LISTEN_HOST})`,
    field: "listen",
    minWords: 1,
    apply(config, [word], origin) {
      const listen = parseListenAddress(word, SERVER_DEFAULT_LISTEN_HOST);
      if (!listen.ok) return listen.error;
      const key = `listen:${listen.value.hostname}:${listen.value.port}`;
      const firstLine = origin.firstLines.get(key);
      if (firstLine !== undefined && listen.value.port !== 0) {
        return `listen ${word} is already given ${earlier(firstLine)}`;
      }
      origin.firstLines.set(key, origin.line);
      config.listen = [...config.listen, listen.value];
    },
  }),
  repeated<ServerConfig>({
    keyword: "target",
    valueWords: "NAME HOST PORT",
    summary: "a named target clients may ask for (repeatable)",
    field: "targets",
    minWords: 3,
    apply(config, [nameWord, hostWord, portWord], origin) {
      const name = parseName(nameWord, "target name");
      if (!name.ok) return name.error;
      const address = parseHostAndPort(hostWord, portWord);
      if (!address.ok) return address.error;
      const firstLine = origin.firstLines.get(`target:${name.value}`);
      if (firstLine !== undefined) {
        return `target "${name.value}" is already defined ${earlier(firstLine)}`;
      }
      origin.firstLines.set(`target:${name.value}`, origin.line);
      config.targets = new Map([...config.targets, [name.value, address.value]]);
    },
  }),
  setting<ServerConfig, "defaultTarget">(
    "default-target",
    "defaultTarget",
    "NAME",
    "the target classic clients' traffic goes to",
    ([word]) => parseName(word, "target name"),
  ),
  repeated<ServerConfig>({
    keyword: "allow",
    valueWords: "CIDR PORT[-PORT]",
    summary: "what explicit HOST:PORT requests may reach (repeatable)",
    field: "allow",
    minWords: 2,
    apply(config, [networkWord, portsWord], origin) {
      const network = parseNetwork(networkWord);
      if (!network.ok) return network.error;
      const ports = parsePortRange(portsWord);
      if (!ports.ok) return ports.error;
      const [portLow, portHigh] = ports.value;
      config.allow = [...config.allow, { ...network.value, portLow, portHigh, line: origin.line }];
    },
  }),
  ...sharedRules<ServerConfig>(),
];

function byKeyword<Config>(
  rules: readonly KeywordRule<Config>[],
): ReadonlyMap<string, KeywordRule<Config>> {
  return new Map(rules.map((rule) => [rule.keyword, rule]));
}

const CLIENT_RULES_BY_KEYWORD = byKeyword(CLIENT_RULES);
const SERVER_RULES_BY_KEYWORD = byKeyword(SERVER_RULES);

/** One keyword (and flag) as `--help` describes it. */
export interface KeywordHelp {
  readonly keyword: string;
  /** The words after the keyword, such as `[HOST:]PORT`. */
  readonly valueWords: string;
  readonly summary: string;
  /** Whether the keyword may be given more than once (each adds an entry). */
  readonly repeatable: boolean;
}

function helpOf<Config>(rules: readonly KeywordRule<Config>[]): readonly KeywordHelp[] {
  return Object.freeze(
    rules.map(({ keyword, valueWords, summary, repeatable }) =>
      Object.freeze({ keyword, valueWords, summary, repeatable })
    ),
  );
}

/** The client's keywords in the order `--help` lists them; each is also a `--keyword` flag. */
export const CLIENT_KEYWORD_HELP: readonly KeywordHelp[] = helpOf(CLIENT_RULES);
/** The server's keywords in the order `--help` lists them; each is also a `--keyword` flag. */
export const SERVER_KEYWORD_HELP: readonly KeywordHelp[] = helpOf(SERVER_RULES);

/** Every client keyword, which is also a flag of the same name. */
export const CLIENT_VALUE_KEYWORDS: readonly string[] = Object.freeze(
  CLIENT_RULES.map((rule) => rule.keyword),
);
/** Every server keyword, which is also a flag of the same name. */
export const SERVER_VALUE_KEYWORDS: readonly string[] = Object.freeze(
  SERVER_RULES.map((rule) => rule.keyword),
);

/** Option declarations for `node:util` `parseArgs`, one string flag per keyword. */
export type FlagOptions = Readonly<
  Record<string, { readonly type: "string"; readonly multiple: boolean }>
>;

function flagOptionsOf<Config>(rules: readonly KeywordRule<Config>[]): FlagOptions {
  return Object.freeze(Object.fromEntries(
    rules.map((rule) => [rule.keyword, { type: "string", multiple: rule.repeatable }] as const),
  ));
}

/**
 * The client's keyword flags as `parseArgs` options; spread them into the program's own options.
 *
 * @example
 * ```ts
 * import { parseArgs } from "node:util";
 * import { applyClientFlags, CLIENT_FLAG_OPTIONS, EMPTY_CLIENT_CONFIG } from "./config.ts";
 * const { values } = parseArgs({ args: ["--mode", "fec"], options: { ...CLIENT_FLAG_OPTIONS } });
 * console.log(applyClientFlags(EMPTY_CLIENT_CONFIG, values).mode); // fec
 * ```
 */
export const CLIENT_FLAG_OPTIONS: FlagOptions = flagOptionsOf(CLIENT_RULES);
/** The server's keyword flags as `parseArgs` options, as {@link CLIENT_FLAG_OPTIONS} for the client. */
export const SERVER_FLAG_OPTIONS: FlagOptions = flagOptionsOf(SERVER_RULES);

// -------------------------------------------------------------------------------------------------
// Applying lines and flags.

/** Checks the number of words after a keyword; a flag's message does not repeat the keyword. */
function checkWordCount<Config>(
  rule: KeywordRule<Config>,
  words: readonly string[],
  usage: string,
  isFlag: boolean,
): string | undefined {
  const expected = `expected "${usage}"`;
  if (words.length === 0 && rule.minWords > 0) {
    return isFlag ? `missing value; ${expected}` : `${rule.keyword} needs a value; ${expected}`;
  }
  if (words.length < rule.minWords) {
    return isFlag
      ? `incomplete value "${words.join(" ")}"; ${expected}`
      : `${rule.keyword} is incomplete; ${expected}`;
  }
  if (words.length > rule.maxWords) {
    const accepted = [...(isFlag ? [] : [rule.keyword]), ...words.slice(0, rule.maxWords)];
    return `unexpected "${words[rule.maxWords]}" after "${accepted.join(" ")}"; ${expected}`;
  }
}

function splitWords(text: string): string[] {
  return text.split(/[ \t\r]+/).filter((word) => word !== "");
}

/** The non-blank lines of a file, comments removed, split into words, with 1-based line numbers. */
function* wordLines(text: string): Generator<{ line: number; words: string[] }> {
  const body = text.startsWith(BYTE_ORDER_MARK) ? text.slice(1) : text;
  const lines = body.split("\n");
  for (let index = 0; index < lines.length; index++) {
    const hash = lines[index].indexOf("#");
    const words = splitWords(hash < 0 ? lines[index] : lines[index].slice(0, hash));
    if (words.length > 0) yield { line: index + 1, words };
  }
}

/** Optimal string alignment distance: edits, counting a swap of neighbours as one. */
function editDistance(a: string, b: string): number {
  const rows = Array.from(
    { length: a.length + 1 },
    (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      rows[i][j] = Math.min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        rows[i][j] = Math.min(rows[i][j], rows[i - 2][j - 2] + 1);
      }
    }
  }
  return rows[a.length][b.length];
}

/** The keyword `word` is most likely a misspelling of, if any is within `maxDistance` edits. */
function closestKeyword(
  word: string,
  keywords: readonly string[],
  maxDistance: number,
): string | undefined {
  let best: string | undefined;
  let bestDistance = maxDistance + 1;
  for (const keyword of keywords) {
    const distance = editDistance(word.toLowerCase(), keyword);
    if (distance < bestDistance) [best, bestDistance] = [keyword, distance];
  }
  return best;
}

function unknownKeyword(word: string, keywords: readonly string[], alternative: string): string {
  const suggestion = closestKeyword(word, keywords, 2);
  const hint = suggestion === undefined ? "" : ` (did you mean "${suggestion}"?)`;
  return `unknown keyword "${word}"${hint}; expected ${keywords.join(", ")}${alternative}`;
}

/** Keywords this short have too many plausible host names one edit away to refuse them. */
const MIN_KEYWORD_LENGTH_FOR_TYPO_CHECK = 4;

/**
 * Decides whether a client line that does not start with a keyword is a misspelt keyword rather
 * than a path, and says so; undefined means "read it as a path line".
 */
function misspeltClientKeyword(words: readonly string[]): string | undefined {
  const [first, second] = words;
  const isAddressLike = first.includes(".") || first.includes(":") || first.startsWith("[");
  if (isAddressLike) return undefined;
  const alternative = ` or a path "HOST PORT [option…]"`;
  if (second === undefined || !/^\d+$/.test(second)) {
    return unknownKeyword(first, CLIENT_VALUE_KEYWORDS, alternative);
  }
  const typoOf = closestKeyword(
    first,
    CLIENT_VALUE_KEYWORDS.filter((keyword) => keyword.length >= MIN_KEYWORD_LENGTH_FOR_TYPO_CHECK),
    1,
  );
  if (typoOf === undefined) return undefined;
  return `unknown keyword "${first}" (did you mean "${typoOf}"?); ` +
    `if it is a host name, write it with a trailing dot: "${first}."`;
}

function parseFile<Config>(
  text: string,
  fileName: string,
  rules: ReadonlyMap<string, KeywordRule<Config>>,
  config: Mutable<Config>,
  otherLine: (words: readonly string[], origin: Origin) => string | undefined,
): Map<string, number> {
  const firstLines = new Map<string, number>();
  for (const { line, words } of wordLines(text)) {
    const origin: Origin = { line, firstLines };
    const fail = (problem: string) => new ConfigError(`${fileName}:${line}: ${problem}`);
    const rule = rules.get(words[0]);
    if (rule === undefined) {
      const problem = otherLine(words, origin);
      if (problem !== undefined) throw fail(problem);
      continue;
    }
    const valueWords = words.slice(1);
    const usage = `${rule.keyword} ${rule.valueWords}`;
    const problem = checkWordCount(rule, valueWords, usage, false);
    if (problem !== undefined) throw fail(problem);
    const firstLine = firstLines.get(rule.keyword);
    if (!rule.repeatable && firstLine !== undefined) {
      throw fail(`${rule.keyword} is already set on line ${firstLine}; give it once`);
    }
    if (firstLine === undefined) firstLines.set(rule.keyword, line);
    const applyProblem = rule.apply(config, valueWords, origin);
    if (applyProblem !== undefined) throw fail(applyProblem);
  }
  return firstLines;
}

/** What `parseArgs` gives for options; only keyword flags are read, the rest are ignored. */
export type FlagValues = Readonly<
  Record<string, string | boolean | readonly (string | boolean)[] | undefined>
>;

function applyFlags<Config>(
  config: Config,
  flags: FlagValues,
  rules: readonly KeywordRule<Config>[],
  empty: Config,
): Mutable<Config> {
  const merged: Mutable<Config> = { ...config };
  const fromFlags: Mutable<Config> = { ...empty };
  const firstLines = new Map<string, number>();
  for (const rule of rules) {
    const given = flags[rule.keyword];
    if (given === undefined) continue;
    const values = typeof given === "object" ? given : [given];
    if (values.length === 0) continue;
    const flag = `--${rule.keyword}`;
    if (!rule.repeatable && values.length > 1) {
      throw new ConfigError(`${flag}: given more than once; give it once`);
    }
    for (const value of values) {
      if (typeof value !== "string") {
        throw new TypeError(`${flag} must be declared as a string option, got ${typeof value}`);
      }
      const words = splitWords(value);
      const problem = checkWordCount(rule, words, `${flag} ${rule.valueWords}`, true) ??
        rule.apply(fromFlags, words, { line: 0, firstLines });
      if (problem !== undefined) throw new ConfigError(`${flag}: ${problem}`);
    }
    // The command line wins: its value (its whole list, if repeatable) replaces the file's.
    merged[rule.field] = fromFlags[rule.field];
  }
  return merged;
}

// -------------------------------------------------------------------------------------------------
// The client and server entry points.

/**
 * Parses the text of a client configuration file; `fileName` is how messages name it.
 * Throws a {@link ConfigError} at the first mistake.
 *
 * @example
 * ```ts
 * import { parseClientConfig } from "./config.ts";
 * const text = "127.0.0.1 4001\n[::1] 4002 backup\nmode redundant\n";
 * const config = parseClientConfig(text, "mpclient.conf");
 * console.log(config.paths.length, config.mode); // 2 redundant
 * ```
 */
export function parseClientConfig(text: string, fileName: string): ClientConfig {
  const config: Mutable<ClientConfig> = { ...EMPTY_CLIENT_CONFIG };
  parseFile(text, fileName, CLIENT_RULES_BY_KEYWORD, config, (words, origin) => {
    const misspelt = misspeltClientKeyword(words);
    if (misspelt !== undefined) return misspelt;
    const path = parsePathWords(words, origin.line);
    if (!path.ok) return path.error;
    if (path.value.name !== undefined) {
      const key = `path-name:${path.value.name}`;
      const firstLine = origin.firstLines.get(key);
      if (firstLine !== undefined) {
        return `path name "${path.value.name}" is already used on line ${firstLine}`;
      }
      origin.firstLines.set(key, origin.line);
    }
    config.paths = [...config.paths, path.value];
  });
  return config;
}

/**
 * Parses the text of a server configuration file; `fileName` is how messages name it.
 * Throws a {@link ConfigError} at the first mistake, including a `default-target` naming no target.
 *
 * @example
 * ```ts
 * import { parseServerConfig } from "./config.ts";
 * const text = "listen 0.0.0.0:2000\ntarget dns 127.0.0.1 53\ndefault-target dns\n";
 * const config = parseServerConfig(text, "mpserver.conf");
 * console.log(config.targets.get("dns")); // { hostname: "127.0.0.1", port: 53 }
 * ```
 */
export function parseServerConfig(text: string, fileName: string): ServerConfig {
  const config: Mutable<ServerConfig> = { ...EMPTY_SERVER_CONFIG };
  const firstLines = parseFile(
    text,
    fileName,
    SERVER_RULES_BY_KEYWORD,
    config,
    ([first]) => unknownKeyword(first, SERVER_VALUE_KEYWORDS, ""),
  );
  const problem = checkDefaultTarget(config);
  if (problem !== undefined) {
    throw new ConfigError(`${fileName}:${firstLines.get("default-target")}: ${problem}`);
  }
  return config;
}

function checkDefaultTarget(config: ServerConfig): string | undefined {
  const name = config.defaultTarget;
  if (name === undefined || config.targets.has(name)) return undefined;
  const defined = config.targets.size === 0
    ? "no targets are defined"
    : `defined targets: ${[...config.targets.keys()].join(", ")}`;
  return `default-target "${name}" names no target (${defined}); ` +
    `define it with "target ${name} HOST PORT"`;
}

/**
 * Applies `--keyword value` flags over a parsed client configuration: the command line wins, and a
 * repeatable keyword's flags replace the file's lines for it. Values are checked by the same code as
 * the file, and a mistake throws a {@link ConfigError} naming the flag
 * (`--mode: expected redundant, adaptive, balance or fec, got "x"`). Keys that are not keywords
 * (`help`, `config`…) are ignored.
 */
export function applyClientFlags(config: ClientConfig, flags: FlagValues): ClientConfig {
  return applyFlags(config, flags, CLIENT_RULES, EMPTY_CLIENT_CONFIG);
}

/**
 * Applies `--keyword value` flags over a parsed server configuration, as {@link applyClientFlags}
 * does for the client, then checks that `default-target` still names a target.
 */
export function applyServerFlags(config: ServerConfig, flags: FlagValues): ServerConfig {
  const merged = applyFlags(config, flags, SERVER_RULES, EMPTY_SERVER_CONFIG);
  const problem = checkDefaultTarget(merged);
  if (problem !== undefined) {
    const flag = flags["default-target"] !== undefined ? "--default-target" : "--target";
    throw new ConfigError(`${flag}: ${problem}`);
  }
  return merged;
}

// -------------------------------------------------------------------------------------------------
// Reading files.

function describeReadError(error: unknown): string {
  if (error instanceof Deno.errors.NotFound) return "no such file";
  if (error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotCapable) {
    return "permission denied";
  }
  if (error instanceof Deno.errors.IsADirectory) return "it is a directory";
  return error instanceof Error ? error.message : String(error);
}

/** Reads a configuration file as UTF-8; a failure names the file (and the line, for bad UTF-8). */
async function readConfigText(path: string): Promise<string> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    throw new ConfigError(
      `${path}: cannot read the configuration file (${describeReadError(error)})`,
    );
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    // Decode line by line to say where the bad bytes are.
    const decoder = new TextDecoder("utf-8", { fatal: true });
    let line = 1;
    let start = 0;
    for (let index = 0; index <= bytes.length; index++) {
      if (index < bytes.length && bytes[index] !== 0x0a) continue;
      try {
        decoder.decode(bytes.subarray(start, index));
      } catch {
        break;
      }
      line++;
      start = index + 1;
    }
    throw new ConfigError(`${path}:${line}: not valid UTF-8; save the file as UTF-8`);
  }
}

/** Reads and parses a client configuration file; every problem is a {@link ConfigError}. */
export async function loadClientConfigFile(path: string): Promise<ClientConfig> {
  return parseClientConfig(await readConfigText(path), path);
}

/** Reads and parses a server configuration file; every problem is a {@link ConfigError}. */
export async function loadServerConfigFile(path: string): Promise<ServerConfig> {
  return parseServerConfig(await readConfigText(path), path);
}
