/**
 * mpserver's settings: its help, and its arguments and configuration file read into the addresses
 * it listens on, its default target and the rest of its configuration (every mistake a
 * `UsageError`). `keygen` is answered here.
 */

import { type HostPort, parseHostPort } from "../base/address.ts";
import { UsageError, VERSION } from "../base/usage_error.ts";
import {
  applyServerFlags,
  EMPTY_SERVER_CONFIG,
  loadServerConfigFile,
  parsePathWords,
  SERVER_FLAG_OPTIONS,
  SERVER_KEYWORD_HELP,
  type ServerConfig,
} from "../ops/config.ts";
import { keywordFlagHelp, parseProgramArguments } from "./program.ts";
import { generateSecret, SECRET_ENV_VAR } from "../crypto/secret.ts";

/** mpserver's `--help`. */
export const SERVER_HELP = `mpserver ${VERSION} — the server end of mptunnel, a multipath UDP tunnel

Usage:
  mpserver [OPTIONS] [HOST:]PORT TARGET_HOST TARGET_PORT
  mpserver [OPTIONS] --config FILE
  mpserver keygen          print a fresh random shared secret
  mpserver status [--control HOST:PORT | --config FILE] [--json] [--watch [--interval 1s]]

Listens on [HOST:]PORT (HOST defaults to 0.0.0.0, all IPv4 interfaces) for mpclient's datagrams,
arriving over any number of paths; keeps the first copy of each and sends it to TARGET_HOST
TARGET_PORT from a socket of its own per client flow. Replies travel back over every path the
client was heard on recently.

With a file, one mpserver serves several targets: \`target NAME HOST PORT\` lines name the
targets clients may ask for, \`default-target NAME\` is where classic clients' traffic goes, and
\`allow CIDR PORT[-PORT]\` lines say which explicit HOST:PORT requests may pass (after the server
resolves them). Anything else is refused, logged and counted, and the client is told.

Options:
  -c, --config FILE   the configuration file
  -h, --help          print this help
  -V, --version       print the version
Every configuration keyword is also a flag, and the flag wins over the file:
${keywordFlagHelp(SERVER_KEYWORD_HELP)}

The shared secret comes from --secret-file or the ${SECRET_ENV_VAR} environment variable, never from
the command line. Without one, traffic is neither authenticated nor encrypted.

Examples:
  mpserver 2000 127.0.0.1 1194     # to a local OpenVPN
  mpserver --config /etc/mptunnel/mpserver.conf
      listen 0.0.0.0:2000
      listen [::]:2000
      target vpn 127.0.0.1 1194
      target dns 127.0.0.1 53
      default-target vpn
      allow 10.0.0.0/8 53
`;

/** A server configuration reduced to what this version runs. */
export interface ServerSettings {
  readonly config: ServerConfig;
  readonly listen: readonly HostPort[];
  /** The default target: where classic flows go (none: only declared flows are served). */
  readonly target: HostPort | undefined;
}

/** Reads the arguments and the file into settings; every mistake is a UsageError. */
export async function readServerSettings(
  args: readonly string[],
): Promise<ServerSettings | "done"> {
  const parsed = parseProgramArguments("mpserver", SERVER_HELP, SERVER_FLAG_OPTIONS, args);
  if (parsed === "done") return "done";
  const { values, positionals } = parsed;
  if (positionals[0] === "keygen") {
    if (positionals.length > 1) {
      throw new UsageError(`keygen takes no argument, got "${positionals[1]}"`);
    }
    console.log(generateSecret());
    return "done";
  }
  const configFile = values.config as string | undefined;
  const fromFile = configFile === undefined
    ? EMPTY_SERVER_CONFIG
    : await loadServerConfigFile(configFile);
  const config = applyServerFlags(
    fromFile,
    values as Record<string, string | string[] | undefined>,
  );
  let listen = config.listen;
  let target = config.defaultTarget !== undefined
    ? config.targets.get(config.defaultTarget)
    : undefined;
  if (positionals.length > 0) {
    if (positionals.length !== 3) {
      throw new UsageError(
        `expected [HOST:]PORT TARGET_HOST TARGET_PORT, got ${positionals.length} argument${
          positionals.length === 1 ? "" : "s"
        }`,
      );
    }
    const listenAddress = parseHostPort(positionals[0], "0.0.0.0", true);
    if (!listenAddress.ok) throw new UsageError(`listen address: ${listenAddress.error}`);
    const targetPath = parsePathWords(positionals.slice(1), 0);
    if (!targetPath.ok) throw new UsageError(`target: ${targetPath.error}`);
    listen = [listenAddress.value];
    target = { hostname: targetPath.value.host, port: targetPath.value.port };
  }
  if (target === undefined && config.targets.size === 1) target = [...config.targets.values()][0];
  if (listen.length === 0) {
    throw new UsageError(
      "no listen address: give [HOST:]PORT TARGET_HOST TARGET_PORT, --listen, or a listen line",
    );
  }
  if (target === undefined && config.targets.size === 0 && config.allow.length === 0) {
    throw new UsageError(
      "nothing to reach: give [HOST:]PORT TARGET_HOST TARGET_PORT, or target and allow lines",
    );
  }
  return { config, listen, target };
}
