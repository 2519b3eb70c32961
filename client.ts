/**
 * mpclient: takes datagrams from local applications and sends each over every path (bridge relays, or
 * the server itself) to mpserver; passes the first copy of each reply back.
 *
 *     mpclient [OPTIONS] [[HOST:]PORT] CONFIG_FILE
 */

import { formatHostPort, parseHostPort } from "./lib/address.ts";
import { runMain, UsageError, VERSION } from "./lib/cli.ts";
import {
  ClientDriver,
  type ClientDriverOptions,
  type ClientPathTarget,
  type ClientScheduling,
} from "./lib/client_driver.ts";
import { type ClientTiming, DEFAULT_CLIENT_TIMING, formatSessionId } from "./lib/client_core.ts";
import { type ControlServer, runStatusCommand, startControlServer } from "./lib/control.ts";
import type { Logger } from "./lib/log.ts";
import {
  applyClientFlags,
  CLIENT_FLAG_OPTIONS,
  CLIENT_KEYWORD_HELP,
  type ClientConfig,
  EMPTY_CLIENT_CONFIG,
  loadClientConfigFile,
} from "./lib/config.ts";
import { programLogger, setUpLogging } from "./lib/logging.ts";
import { keywordFlagHelp, parseProgramArguments, runUntilSignal } from "./lib/program.ts";
import { loadSecret, SECRET_ENV_VAR } from "./lib/secret.ts";
import { clientStatus } from "./lib/status.ts";

const HELP = `mpclient ${VERSION} — the client end of mptunnel, a multipath UDP tunnel

Usage:
  mpclient [OPTIONS] [[HOST:]PORT] CONFIG_FILE
  mpclient [OPTIONS] --config CONFIG_FILE
  mpclient status [--control HOST:PORT | CONFIG_FILE] [--json] [--watch [--interval 1s]]

Applications send UDP datagrams to [HOST:]PORT (HOST defaults to 127.0.0.1); each goes out on every
path listed in CONFIG_FILE (one "HOST PORT" per line: a bridge, or mpserver itself) and mpserver keeps
the first copy. Replies come back the same way.

Options:
  -c, --config FILE   the configuration file (or give it as the last argument)
  -h, --help          print this help
  -V, --version       print the version
Every configuration keyword is also a flag, and the flag wins over the file:
${keywordFlagHelp(CLIENT_KEYWORD_HELP)}

The shared secret comes from --secret-file or the ${SECRET_ENV_VAR} environment variable, never from
the command line. Without one, traffic is neither authenticated nor encrypted.

Examples:
  mpclient 4000 mpclient.conf      # mpclient.conf: "192.0.2.1 4001" and "198.51.100.1 4001"
  mpclient --uplinks auto 203.0.113.7:2000 4000    # one path per local uplink, straight to mpserver
`;

/** Reads the arguments and the file into one configuration; every mistake is a UsageError. */
export async function readClientConfig(args: readonly string[]): Promise<ClientConfig | "done"> {
  const parsed = parseProgramArguments(
    "mpclient",
    HELP,
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

/** Refuses, clearly, what the configuration language has words for but this version does not do. */
function checkSupported(config: ClientConfig, configFile: string | undefined): void {
  const notYet = (what: string) => {
    throw new UsageError(`${what} is not available in mpclient ${VERSION} yet`);
  };
  if (config.paths.length === 0 && config.uplinksAuto === undefined) {
    throw new UsageError(
      configFile === undefined
        ? 'no paths: give a configuration file with one "HOST PORT" line per bridge, or "uplinks auto HOST PORT"'
        : `${configFile} lists no path; add one "HOST PORT" line per bridge, or "uplinks auto HOST PORT"`,
    );
  }
  if (config.listen === undefined) {
    throw new UsageError(
      "no listen port: give [HOST:]PORT before the file, --listen, or a listen line",
    );
  }
  if (config.forwards.length > 0) notYet("forward");
  if (config.socks5 !== undefined) notYet("socks5");
}

/** Runs mpclient with these arguments until SIGINT or SIGTERM. */
export async function main(args: readonly string[]): Promise<void> {
  if (args[0] === "status") {
    const code = await runStatusCommand({
      program: "mpclient",
      args: args.slice(1),
      controlFromFile: async (file) => (await loadClientConfigFile(file)).control,
    });
    if (code !== 0) Deno.exit(code);
    return;
  }
  const config = await readClientConfig(args);
  if (config === "done") return;
  const secret = await loadSecret(config.secretFile);
  await setUpLogging(config.logLevel ?? "info", config.logFormat ?? "text");
  const logger = programLogger("client");
  const driver = await ClientDriver.start({
    listen: config.listen!,
    paths: pathTargets(config),
    secret: secret?.keys,
    logger,
    timing: timingOf(config),
    scheduling: schedulingOf(config),
    uplinksAuto: uplinksAutoOf(config),
  }).catch((error) => {
    const unusable = error instanceof Deno.errors.AddrInUse ||
      error instanceof Deno.errors.AddrNotAvailable ||
      error instanceof Deno.errors.PermissionDenied;
    throw unusable ? new UsageError(`cannot listen: ${(error as Error).message}`) : error;
  });
  const listen = driver.listenAddress;
  logger.info(`mpclient ${VERSION} started`, {
    listen: `${listen.hostname}:${listen.port}`,
    paths: driver.core.paths.map((path) => path.label).join(","),
    session: formatSessionId(driver.core.sessionId),
    secret: secret?.source ?? "none",
  });
  if (!secret) {
    logger.warning(
      `no shared secret: traffic is neither authenticated nor encrypted, and anyone who can reach mpserver can send to its target; set --secret-file or ${SECRET_ENV_VAR}`,
    );
  }
  let control: ControlServer | undefined;
  if (config.control !== undefined) {
    control = await startControlServer({
      address: config.control,
      status: () => clientStatus(driver, performance.now()),
      setPathInService: (path, inService) => driver.setPathInService(path, inService),
      logger,
    }).catch(async (error) => {
      await driver.stop();
      throw new UsageError(
        `cannot listen for --control on ${formatHostPort(config.control!)}: ${
          (error as Error).message
        }`,
      );
    });
  }
  const stoppable = {
    stop: async () => {
      await control?.stop();
      await driver.stop();
    },
    statsLine: () => driver.statsLine(),
  };
  let running = config;
  await runUntilSignal(stoppable, logger, async () => {
    running = await reloadClient(args, running, driver, logger);
  });
}

/** The driver's view of the configured paths. */
function pathTargets(config: ClientConfig): ClientPathTarget[] {
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
function uplinksAutoOf(config: ClientConfig): ClientDriverOptions["uplinksAuto"] {
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
function schedulingOf(config: ClientConfig): ClientScheduling {
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
function timingOf(config: ClientConfig): Partial<ClientTiming> {
  return {
    ...(config.rekeyIntervalMs === undefined ? {} : { rekeyIntervalMs: config.rekeyIntervalMs }),
    ...(config.pathDownAfterMs === undefined ? {} : { pathDownAfterMs: config.pathDownAfterMs }),
  };
}

/**
 * SIGHUP: reads the file and flags again and applies what can change under traffic — paths added
 * and removed, the rekey interval, logging — keeping the session. What needs new sockets or keys
 * (listen, secret) is reported and waits for a restart. Returns the configuration now in force.
 */
async function reloadClient(
  args: readonly string[],
  running: ClientConfig,
  driver: ClientDriver,
  logger: Logger,
): Promise<ClientConfig> {
  const next = await readClientConfig(args);
  if (next === "done") return running;
  const listenChanged = next.listen?.hostname !== running.listen?.hostname ||
    next.listen?.port !== running.listen?.port;
  if (listenChanged) logger.warning("listen changed; it takes effect after a restart");
  if (next.secretFile !== running.secretFile) {
    logger.warning("secret-file changed; it takes effect after a restart");
  }
  if (JSON.stringify(uplinksAutoOf(next)) !== JSON.stringify(uplinksAutoOf(running))) {
    logger.warning("uplinks or exclude changed; they take effect after a restart");
  }
  if (JSON.stringify(next.control) !== JSON.stringify(running.control)) {
    logger.warning("control changed; it takes effect after a restart");
  }
  if (next.logLevel !== running.logLevel || next.logFormat !== running.logFormat) {
    await setUpLogging(next.logLevel ?? "info", next.logFormat ?? "text");
  }
  const { added, removed } = await driver.reconfigure(pathTargets(next));
  driver.core.setTiming({
    rekeyIntervalMs: next.rekeyIntervalMs ?? DEFAULT_CLIENT_TIMING.rekeyIntervalMs,
    pathDownAfterMs: next.pathDownAfterMs ?? DEFAULT_CLIENT_TIMING.pathDownAfterMs,
  });
  if (JSON.stringify(schedulingOf(next)) !== JSON.stringify(schedulingOf(running))) {
    logger.warning(
      "mode, target-loss, fec or reorder-timeout changed; they take effect after a restart",
    );
  }
  logger.info("configuration reloaded", { pathsAdded: added, pathsRemoved: removed });
  return {
    ...next,
    listen: running.listen,
    secretFile: running.secretFile,
    control: running.control,
  };
}

if (import.meta.main) await runMain("mpclient", () => main(Deno.args));
