/**
 * mpclient's settings: its help, its arguments and configuration file read into one
 * {@link ClientConfig} (every mistake a `UsageError`), and that configuration as the driver's
 * options (paths, `uplinks auto`, forwards, scheduling, timing, SOCKS5 credentials).
 */

import { formatHostPort, parseHostPort } from "../base/address.ts";
import { UsageError, VERSION } from "../base/usage_error.ts";
import type {
  ClientDriverOptions,
  ClientForward,
  ClientPathTarget,
  ClientScheduling,
} from "../driver/client_options.ts";
import type { ClientTiming } from "../session/client_core.ts";
import {
  applyClientFlags,
  CLIENT_FLAG_OPTIONS,
  CLIENT_KEYWORD_HELP,
  type ClientConfig,
  EMPTY_CLIENT_CONFIG,
  loadClientConfigFile,
} from "../ops/config.ts";
import { keywordFlagHelp, parseProgramArguments } from "./program.ts";
import { SECRET_ENV_VAR } from "../crypto/secret.ts";
import type { Socks5Credentials } from "../socks5/session.ts";
import {
  SOCKS5_PASSWORD_ENV_VAR,
  SOCKS5_USER_ENV_VAR,
  socks5CredentialsFrom,
} from "../socks5/front.ts";

/** mpclient's `--help`. */
export const CLIENT_HELP = `mpclient ${VERSION} — the client end of mptunnel, a multipath UDP tunnel

Usage:
  mpclient [OPTIONS] [[HOST:]PORT] CONFIG_FILE
  mpclient [OPTIONS] --config CONFIG_FILE
  mpclient status [--control HOST:PORT | CONFIG_FILE] [--json] [--watch [--interval 1s]]

Applications send UDP datagrams to [HOST:]PORT (HOST defaults to 127.0.0.1) for the server's default
target; each goes out on every path listed in CONFIG_FILE (one "HOST PORT" per line: a bridge, or
mpserver itself) and mpserver keeps the first copy. Replies come back the same way.
"forward [HOST:]PORT TARGET" adds a listener whose datagrams go to TARGET (a target name on the
server, or HOST:PORT the server allows); "socks5 HOST:PORT" adds a SOCKS5 front end (UDP ASSOCIATE)
where applications choose the destination per datagram. With either, [HOST:]PORT is optional.

Options:
  -c, --config FILE   the configuration file (or give it as the last argument)
  -h, --help          print this help
  -V, --version       print the version
Every configuration keyword is also a flag, and the flag wins over the file:
${keywordFlagHelp(CLIENT_KEYWORD_HELP)}

The shared secret comes from --secret-file or the ${SECRET_ENV_VAR} environment variable, never from
the command line. Without one, traffic is neither authenticated nor encrypted.
SOCKS5 clients must log in (RFC 1929) when ${SOCKS5_USER_ENV_VAR} and ${SOCKS5_PASSWORD_ENV_VAR} are set
(never on the command line); otherwise the front end asks for no authentication.

Examples:
  mpclient 4000 mpclient.conf      # mpclient.conf: "192.0.2.1 4001" and "198.51.100.1 4001"
  mpclient --uplinks auto 203.0.113.7:2000 4000    # one path per local uplink, straight to mpserver
  mpclient --forward "127.0.0.1:5353 dns" --socks5 127.0.0.1:1080 mpclient.conf
`;

/** Reads the arguments and the file into one configuration; every mistake is a UsageError. */
export async function readClientConfig(args: readonly string[]): Promise<ClientConfig | "done"> {
  const parsed = parseProgramArguments(
    "mpclient",
    CLIENT_HELP,
    CLIENT_FLAG_OPTIONS,
    joinUplinksFlag(args),
  );
  if (parsed === "done") return "done";
  const { values, positionals } = parsed;
  let listenWord: string | undefined;
  let configFile = values.config as string | undefined;
  if (positionals.length > 2) throw new UsageError(`unexpected argument "${positionals[2]}"`);
  if (positionals.length === 2) [listenWord, configFile] = positionals;
  if (positionals.length === 1) {
    if (configFile === undefined) configFile = positionals[0];
    else listenWord = positionals[0];
  }
  const fromFile = configFile === undefined
    ? EMPTY_CLIENT_CONFIG
    : await loadClientConfigFile(configFile);
  let config = applyClientFlags(fromFile, values as Record<string, string | string[] | undefined>);
  if (listenWord !== undefined) {
    const listen = parseHostPort(listenWord, "127.0.0.1", true);
    if (!listen.ok) throw new UsageError(`listen address: ${listen.error}`);
    config = { ...config, listen: listen.value };
  }
  checkSupported(config, configFile);
  return config;
}

/**
 * `--uplinks auto HOST:PORT` (three words on the command line, as the issue and `--help` write it)
 * becomes the one flag value `auto HOST PORT` that the keyword takes; `--uplinks "auto HOST PORT"`
 * passes unchanged.
 */
export function joinUplinksFlag(args: readonly string[]): string[] {
  const joined: string[] = [];
  for (let index = 0; index < args.length; index++) {
    if (args[index] === "--") {
      joined.push(...args.slice(index));
      break;
    }
    const address = args[index] === "--uplinks" && args[index + 1] === "auto"
      ? parseHostPort(args[index + 2] ?? "")
      : undefined;
    if (address?.ok) {
      const host = address.value.hostname.includes(":")
        ? `[${address.value.hostname}]`
        : address.value.hostname;
      joined.push("--uplinks", `auto ${host} ${address.value.port}`);
      index += 2;
    } else joined.push(args[index]);
  }
  return joined;
}

/** Refuses, clearly, a configuration mpclient cannot run with. */
function checkSupported(config: ClientConfig, configFile: string | undefined): void {
  if (config.paths.length === 0 && config.uplinksAuto === undefined) {
    throw new UsageError(
      configFile === undefined
        ? 'no paths: give a configuration file with one "HOST PORT" line per bridge, or "uplinks auto HOST PORT"'
        : `${configFile} lists no path; add one "HOST PORT" line per bridge, or "uplinks auto HOST PORT"`,
    );
  }
  if (config.listen === undefined && config.forwards.length === 0 && config.socks5 === undefined) {
    throw new UsageError(
      "nowhere for applications to send: give [HOST:]PORT before the file (or --listen, or a listen line), a forward, or socks5",
    );
  }
}

/**
 * The SOCKS5 credentials from the environment, when the front end is configured (the variables are
 * not read otherwise). Every mistake is a UsageError: a front end meant to ask for a password must
 * not start without one.
 */
export function socks5Credentials(config: ClientConfig): Socks5Credentials | undefined {
  if (config.socks5 === undefined) return undefined;
  const read = (name: string) => {
    try {
      return Deno.env.get(name);
    } catch (error) {
      if (
        error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied
      ) {
        throw new UsageError(
          `cannot read ${name} for the SOCKS5 front end: allow it (--allow-env=${SECRET_ENV_VAR},${SOCKS5_USER_ENV_VAR},${SOCKS5_PASSWORD_ENV_VAR})`,
        );
      }
      throw error;
    }
  };
  const credentials = socks5CredentialsFrom(read);
  if (!credentials.ok) throw new UsageError(credentials.error);
  return credentials.value;
}

/** The driver's view of the `forward` lines. */
export function forwardsOf(config: ClientConfig): ClientForward[] {
  return config.forwards.map((forward) => ({
    listen: forward.listen,
    target: forward.target.kind === "named" ? { kind: "named", name: forward.target.name } : {
      kind: "address",
      host: forward.target.address.hostname,
      port: forward.target.address.port,
    },
  }));
}

/** The driver's view of the configured paths. */
export function pathTargets(config: ClientConfig): ClientPathTarget[] {
  // A `rate` sets a path's share in balance mode; paths without one count as the mean rate.
  const rates = config.paths.flatMap((path) => path.rateBitsPerSecond ?? []);
  const meanRate = rates.length === 0 ? 0 : rates.reduce((a, b) => a + b, 0) / rates.length;
  return config.paths.map((path) => ({
    host: path.host,
    port: path.port,
    // Two unnamed paths to one server through two interfaces need two names.
    label: path.name ??
      (path.device === undefined
        ? undefined
        : `${formatHostPort({ hostname: path.host, port: path.port })}@${path.device}`),
    fromAddress: path.fromAddress,
    device: path.device,
    backup: path.backup,
    weight: rates.length === 0
      ? path.weight
      : Math.max(1, Math.round((path.rateBitsPerSecond ?? meanRate) / RATE_PER_WEIGHT_UNIT)),
  }));
}

/**
 * `uplinks auto` as the driver takes it. An interface an explicit `dev` path to the same server
 * already uses gets no second path.
 */
export function uplinksAutoOf(config: ClientConfig): ClientDriverOptions["uplinksAuto"] {
  const auto = config.uplinksAuto;
  if (auto === undefined) return undefined;
  const taken = config.paths.flatMap((path) =>
    path.device !== undefined && path.host === auto.hostname && path.port === auto.port
      ? [path.device]
      : []
  );
  return {
    host: auto.hostname,
    port: auto.port,
    excluded: [...config.excludeInterfaces, ...taken],
  };
}

/** Rates become balance weights in units of 100 kbit/s. */
const RATE_PER_WEIGHT_UNIT = 100_000;

/** The scheduling settings of a configuration, as the driver takes them. */
export function schedulingOf(config: ClientConfig): ClientScheduling {
  return {
    mode: config.mode ?? "redundant",
    targetLossRatio: config.targetLossPercent === undefined
      ? undefined
      : config.targetLossPercent / 100,
    fec: config.fec,
    reorderTimeoutMs: config.reorderTimeoutMs,
  };
}

/** The timing settings of a configuration. */
export function timingOf(config: ClientConfig): Partial<ClientTiming> {
  return {
    ...(config.rekeyIntervalMs === undefined ? {} : { rekeyIntervalMs: config.rekeyIntervalMs }),
    ...(config.pathDownAfterMs === undefined ? {} : { pathDownAfterMs: config.pathDownAfterMs }),
  };
}
