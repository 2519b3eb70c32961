/**
 * mpclient: takes datagrams from local applications and sends each over every path (bridge relays, or
 * the server itself) to mpserver; passes the first copy of each reply back. Applications reach it
 * on the classic listener (to the server's default target), on `forward` listeners (each to a
 * target of its own) or through its SOCKS5 front end (a destination per datagram).
 *
 *     mpclient [OPTIONS] [[HOST:]PORT] CONFIG_FILE
 */

import { formatHostPort, parseHostPort } from "./lib/base/address.ts";
import { runMain } from "./lib/cli/run_main.ts";
import { bindUdp } from "./lib/io/udp.ts";
import { UsageError, VERSION } from "./lib/base/usage_error.ts";
import { ClientDriver } from "./lib/driver/client_driver.ts";
import type {
  ClientDriverOptions,
  ClientForward,
  ClientPathTarget,
  ClientScheduling,
  ForwardStatus,
  Socks5Status,
} from "./lib/driver/client_options.ts";
import { type ClientTiming, DEFAULT_CLIENT_TIMING } from "./lib/session/client_core.ts";
import { formatSessionId } from "./lib/wire/session_id.ts";
import { type ControlServer, runStatusCommand, startControlServer } from "./lib/ops/control.ts";
import type { Logger } from "./lib/base/log.ts";
import {
  applyClientFlags,
  CLIENT_FLAG_OPTIONS,
  CLIENT_KEYWORD_HELP,
  type ClientConfig,
  EMPTY_CLIENT_CONFIG,
  loadClientConfigFile,
} from "./lib/ops/config.ts";
import { programLogger, setUpLogging } from "./lib/ops/logging.ts";
import { fastPathFields } from "./lib/ops/fast_paths.ts";
import { keywordFlagHelp, parseProgramArguments, runUntilSignal } from "./lib/cli/program.ts";
import { loadSecret, SECRET_ENV_VAR } from "./lib/crypto/secret.ts";
import { type ClientStatus, clientStatus } from "./lib/ops/status.ts";
import type { Socks5Credentials } from "./lib/socks5/messages.ts";
import {
  SOCKS5_PASSWORD_ENV_VAR,
  SOCKS5_USER_ENV_VAR,
  socks5CredentialsFrom,
} from "./lib/socks5/front.ts";

const HELP = `mpclient ${VERSION} — the client end of mptunnel, a multipath UDP tunnel

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
function socks5Credentials(config: ClientConfig): Socks5Credentials | undefined {
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
function forwardsOf(config: ClientConfig): ClientForward[] {
  return config.forwards.map((forward) => ({
    listen: forward.listen,
    target: forward.target.kind === "named" ? { kind: "named", name: forward.target.name } : {
      kind: "address",
      host: forward.target.address.hostname,
      port: forward.target.address.port,
    },
  }));
}

/** What mpclient reports at `/status`: the common status, its forwards and SOCKS5 front end. */
export interface ClientFrontEndStatus extends ClientStatus {
  readonly forwards: readonly ForwardStatus[];
  /** Null when no SOCKS5 front end runs. */
  readonly socks5: Socks5Status | null;
  /** Declared flows the server refused, by reason. */
  readonly refusedFlows: Readonly<Record<string, number>>;
}

/** The client's status with its front ends. */
function statusWithFrontEnds(driver: ClientDriver, nowMs: number): ClientFrontEndStatus {
  return {
    ...clientStatus(driver, nowMs),
    forwards: driver.forwards(),
    socks5: driver.socks5() ?? null,
    refusedFlows: { ...driver.refusedFlows },
  };
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
  const credentials = socks5Credentials(config);
  await setUpLogging(config.logLevel ?? "info", config.logFormat ?? "text");
  const logger = programLogger("client");
  const driver = await ClientDriver.start({
    listen: config.listen,
    forwards: forwardsOf(config),
    socks5: config.socks5 === undefined ? undefined : { listen: config.socks5, credentials },
    paths: pathTargets(config),
    secret: secret?.keys,
    logger,
    bind: bindUdp,
    timing: timingOf(config),
    scheduling: schedulingOf(config),
    uplinksAuto: uplinksAutoOf(config),
  }).catch((error) => {
    const unusable = error instanceof Deno.errors.AddrInUse ||
      error instanceof Deno.errors.AddrNotAvailable ||
      error instanceof Deno.errors.PermissionDenied;
    throw unusable ? new UsageError(`cannot listen: ${(error as Error).message}`) : error;
  });
  const listen = driver.classicListenAddress;
  const socks5 = driver.socks5();
  let control: ControlServer | undefined;
  if (config.control !== undefined) {
    control = await startControlServer({
      address: config.control,
      status: () => statusWithFrontEnds(driver, performance.now()),
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
  // Signals are handled before the start line is printed: whoever waits for that line may signal
  // at once, and must get a reload or a clean stop, not the default death.
  const stopped = runUntilSignal(stoppable, logger, async () => {
    running = await reloadClient(args, running, driver, logger);
  });
  await new Promise((resolve) => setTimeout(resolve, 0));
  logger.info(`mpclient ${VERSION} started`, {
    listen: listen === undefined ? "none" : formatHostPort(listen),
    ...(config.forwards.length > 0
      ? {
        forwards: driver.forwards().map((forward) => `${forward.listen}→${forward.target}`).join(
          ",",
        ),
      }
      : {}),
    ...(socks5 !== undefined
      ? { socks5: socks5.listen, socks5Auth: credentials === undefined ? "none" : "username" }
      : {}),
    paths: driver.core.paths.map((path) => path.label).join(","),
    session: formatSessionId(driver.core.sessionId),
    secret: secret?.source ?? "none",
    ...fastPathFields(secret !== undefined),
  });
  if (!secret) {
    logger.warning(
      `no shared secret: traffic is neither authenticated nor encrypted, and anyone who can reach mpserver can send to its target; set --secret-file or ${SECRET_ENV_VAR}`,
    );
  }
  if (socks5 !== undefined && credentials === undefined && !isLoopback(config.socks5!.hostname)) {
    logger.warning(
      `the SOCKS5 front end listens on a non-loopback address without a username and password: anyone who can reach it can use the tunnel; set ${SOCKS5_USER_ENV_VAR} and ${SOCKS5_PASSWORD_ENV_VAR}`,
    );
  }
  await stopped;
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

/** True for the loopback addresses (127.0.0.0/8, ::1) and `localhost`. */
function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "::1" || /^127\.\d+\.\d+\.\d+$/.test(hostname);
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
  if (JSON.stringify(forwardsOf(next)) !== JSON.stringify(forwardsOf(running))) {
    logger.warning("forward lines changed; they take effect after a restart");
  }
  if (JSON.stringify(next.socks5) !== JSON.stringify(running.socks5)) {
    logger.warning("socks5 changed; it takes effect after a restart");
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
    forwards: running.forwards,
    socks5: running.socks5,
    secretFile: running.secretFile,
    control: running.control,
  };
}

if (import.meta.main) await runMain("mpclient", () => main(Deno.args));
