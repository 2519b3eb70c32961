/**
 * The keywords both programs take, with the same words and meaning: `secret-file`, `control`,
 * `log-level` and `log-format`.
 */

import type { HostPort } from "../../base/address.ts";
import type { LogLevel } from "../../base/log.ts";
import { type KeywordRule, setting } from "./keyword_rule.ts";
import type { LogFormat } from "./settings.ts";
import { accept, parseListenAddress, parseLogFormat, parseLogLevel } from "./values.ts";

/** Where the status endpoint binds when only a port is given, on either side. */
const CONTROL_DEFAULT_HOST = "127.0.0.1";

/** The keywords both files share, for a configuration type that has their fields. */
export interface SharedSettings {
  readonly secretFile?: string;
  readonly control?: HostPort;
  readonly logLevel?: LogLevel;
  readonly logFormat?: LogFormat;
}

/** Rules over SharedSettings fit any Config that extends it: they touch only those fields. */
export function sharedRules<Config extends SharedSettings>(): KeywordRule<Config>[] {
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
