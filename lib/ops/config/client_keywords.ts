/**
 * The client's keywords (`mpclient.conf` and its flags): one row per keyword, the path lines between
 * them, and the entry points that read a client file and apply the client's flags.
 */

import {
  byKeyword,
  earlier,
  type KeywordRule,
  parseFile,
  repeated,
  setting,
} from "./keyword_rule.ts";
import { applyFlags, type FlagOptions, flagOptionsOf, type FlagValues } from "./flags.ts";
import { helpOf, type KeywordHelp } from "./help.ts";
import { parsePathWords } from "./path_line.ts";
import { closestKeyword, readConfigText, unknownKeyword } from "./reader.ts";
import { type ClientConfig, EMPTY_CLIENT_CONFIG, type Mutable } from "./settings.ts";
import { sharedRules } from "./shared_keywords.ts";
import {
  parseFec,
  parseForwardTarget,
  parseHostAndPort,
  parseListenAddress,
  parseMode,
  parsePathDownAfter,
  parseRekeyInterval,
  parseReorderTimeout,
  parseTargetLoss,
  refuse,
} from "./values.ts";

/** Where the client's own listeners bind when only a port is given: this machine only. */
const CLIENT_DEFAULT_LISTEN_HOST = "127.0.0.1";

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

const CLIENT_RULES_BY_KEYWORD = byKeyword(CLIENT_RULES);

/** The client's keywords in the order `--help` lists them; each is also a `--keyword` flag. */
export const CLIENT_KEYWORD_HELP: readonly KeywordHelp[] = helpOf(CLIENT_RULES);

/** Every client keyword, which is also a flag of the same name. */
export const CLIENT_VALUE_KEYWORDS: readonly string[] = Object.freeze(
  CLIENT_RULES.map((rule) => rule.keyword),
);

/**
 * The client's keyword flags as `parseArgs` options; spread them into the program's own options.
 *
 * @example
 * ```ts
 * import { parseArgs } from "node:util";
 * import { applyClientFlags, CLIENT_FLAG_OPTIONS, EMPTY_CLIENT_CONFIG } from "../config.ts";
 * const { values } = parseArgs({ args: ["--mode", "fec"], options: { ...CLIENT_FLAG_OPTIONS } });
 * console.log(applyClientFlags(EMPTY_CLIENT_CONFIG, values).mode); // fec
 * ```
 */
export const CLIENT_FLAG_OPTIONS: FlagOptions = flagOptionsOf(CLIENT_RULES);

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

/**
 * Parses the text of a client configuration file; `fileName` is how messages name it.
 * Throws a {@link ConfigError} at the first mistake.
 *
 * @example
 * ```ts
 * import { parseClientConfig } from "./client_keywords.ts";
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
 * Applies `--keyword value` flags over a parsed client configuration: the command line wins, and a
 * repeatable keyword's flags replace the file's lines for it. Values are checked by the same code as
 * the file, and a mistake throws a {@link ConfigError} naming the flag
 * (`--mode: expected redundant, adaptive, balance or fec, got "x"`). Keys that are not keywords
 * (`help`, `config`…) are ignored.
 */
export function applyClientFlags(config: ClientConfig, flags: FlagValues): ClientConfig {
  return applyFlags(config, flags, CLIENT_RULES, EMPTY_CLIENT_CONFIG);
}

/** Reads and parses a client configuration file; every problem is a {@link ConfigError}. */
export async function loadClientConfigFile(path: string): Promise<ClientConfig> {
  return parseClientConfig(await readConfigText(path), path);
}
