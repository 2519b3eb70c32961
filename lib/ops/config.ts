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
 *
 * This module is the language's public face; its parts live in `lib/ops/config/`: `settings.ts`
 * (what can be said), `reader.ts` (lines, words, mistakes), `values.ts` (one parser per kind of
 * value), `path_line.ts`, `allow_line.ts`, `keyword_rule.ts` (a keyword's row and applying a file),
 * `shared_keywords.ts`, `client_keywords.ts`, `server_keywords.ts`, `flags.ts` and `help.ts`.
 * The runtime reads an `allow` rule through `lib/session/allow_rule.ts`, never through here.
 */

export { type AllowRule, allowRuleMatches } from "../session/allow_rule.ts";
export type { SchedulingMode } from "../session/scheduler.ts";
export {
  type ClientConfig,
  EMPTY_CLIENT_CONFIG,
  EMPTY_SERVER_CONFIG,
  type FecSetting,
  type ForwardSpec,
  type ForwardTarget,
  type LogFormat,
  type PathSpec,
  type ServerConfig,
} from "./config/settings.ts";
export { ConfigError } from "./config/reader.ts";
export { parsePathWords } from "./config/path_line.ts";
export type { FlagOptions, FlagValues } from "./config/flags.ts";
export type { KeywordHelp } from "./config/help.ts";
export {
  applyClientFlags,
  CLIENT_FLAG_OPTIONS,
  CLIENT_KEYWORD_HELP,
  CLIENT_VALUE_KEYWORDS,
  loadClientConfigFile,
  parseClientConfig,
} from "./config/client_keywords.ts";
export {
  applyServerFlags,
  loadServerConfigFile,
  parseServerConfig,
  SERVER_FLAG_OPTIONS,
  SERVER_KEYWORD_HELP,
  SERVER_VALUE_KEYWORDS,
} from "./config/server_keywords.ts";
