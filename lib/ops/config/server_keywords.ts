/**
 * The server's keywords (`mpserver.conf` and its flags): one row per keyword, the check that
 * `default-target` names a target, and the entry points that read a server file and apply the
 * server's flags.
 */

import {
  byKeyword,
  earlier,
  type KeywordRule,
  parseFile,
  repeated,
  setting,
} from "./keyword_rule.ts";
import { parseNetwork, parsePortRange } from "./allow_line.ts";
import { applyFlags, type FlagOptions, flagOptionsOf, type FlagValues } from "./flags.ts";
import { helpOf, type KeywordHelp } from "./help.ts";
import { ConfigError, readConfigText, unknownKeyword } from "./reader.ts";
import { EMPTY_SERVER_CONFIG, type Mutable, type ServerConfig } from "./settings.ts";
import { sharedRules } from "./shared_keywords.ts";
import { parseHostAndPort, parseListenAddress, parseName } from "./values.ts";

/** Where the server listens when only a port is given: all IPv4 interfaces, like classic mpserver. */
const SERVER_DEFAULT_LISTEN_HOST = "0.0.0.0";

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

const SERVER_RULES_BY_KEYWORD = byKeyword(SERVER_RULES);

/** The server's keywords in the order `--help` lists them; each is also a `--keyword` flag. */
export const SERVER_KEYWORD_HELP: readonly KeywordHelp[] = helpOf(SERVER_RULES);

/** Every server keyword, which is also a flag of the same name. */
export const SERVER_VALUE_KEYWORDS: readonly string[] = Object.freeze(
  SERVER_RULES.map((rule) => rule.keyword),
);

/** The server's keyword flags as `parseArgs` options, as {@link CLIENT_FLAG_OPTIONS} for the client. */
export const SERVER_FLAG_OPTIONS: FlagOptions = flagOptionsOf(SERVER_RULES);

/**
 * Parses the text of a server configuration file; `fileName` is how messages name it.
 * Throws a {@link ConfigError} at the first mistake, including a `default-target` naming no target.
 *
 * @example
 * ```ts
 * import { parseServerConfig } from "./server_keywords.ts";
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

/** Reads and parses a server configuration file; every problem is a {@link ConfigError}. */
export async function loadServerConfigFile(path: string): Promise<ServerConfig> {
  return parseServerConfig(await readConfigText(path), path);
}
