/**
 * mpserver: receives what mpclient sends over every path, keeps the first copy of each datagram and
 * hands it to the target service; sends the target's replies back over the session's paths. Serves
 * any number of clients at once.
 *
 *     mpserver [OPTIONS] [HOST:]PORT TARGET_HOST TARGET_PORT
 *     mpserver [OPTIONS] --config FILE
 *     mpserver keygen
 */

import { formatHostPort, type HostPort, parseHostPort } from "./lib/base/address.ts";
import { runMain } from "./lib/cli/run_main.ts";
import { bindUdp } from "./lib/io/udp.ts";
import { UsageError, VERSION } from "./lib/base/usage_error.ts";
import { type ControlServer, runStatusCommand, startControlServer } from "./lib/ops/control.ts";
import {
  applyServerFlags,
  EMPTY_SERVER_CONFIG,
  loadServerConfigFile,
  parsePathWords,
  SERVER_FLAG_OPTIONS,
  SERVER_KEYWORD_HELP,
  type ServerConfig,
} from "./lib/ops/config.ts";
import type { Logger } from "./lib/base/log.ts";
import { programLogger, setUpLogging } from "./lib/ops/logging.ts";
import { fastPathFields } from "./lib/ops/fast_paths.ts";
import { keywordFlagHelp, parseProgramArguments, runUntilSignal } from "./lib/cli/program.ts";
import { generateSecret, loadSecret, SECRET_ENV_VAR } from "./lib/crypto/secret.ts";
import { describeListeners, ServerDriver } from "./lib/driver/server_driver.ts";
import { serverStatus } from "./lib/ops/status.ts";

const HELP = `mpserver ${VERSION} — the server end of mptunnel, a multipath UDP tunnel

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
  const parsed = parseProgramArguments("mpserver", HELP, SERVER_FLAG_OPTIONS, args);
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

/** Runs mpserver with these arguments until SIGINT or SIGTERM. */
export async function main(args: readonly string[]): Promise<void> {
  if (args[0] === "status") {
    const code = await runStatusCommand({
      program: "mpserver",
      args: args.slice(1),
      controlFromFile: async (file) => (await loadServerConfigFile(file)).control,
    });
    if (code !== 0) Deno.exit(code);
    return;
  }
  const settings = await readServerSettings(args);
  if (settings === "done") return;
  const { config, listen, target } = settings;
  let running = settings;
  const secret = await loadSecret(config.secretFile);
  await setUpLogging(config.logLevel ?? "info", config.logFormat ?? "text");
  const logger = programLogger("server");
  const driver = await ServerDriver.start({
    listen,
    target,
    targets: config.targets,
    allow: config.allow,
    secret: secret?.keys,
    logger,
    bind: bindUdp,
  }).catch(
    (error) => {
      throw error instanceof Deno.errors.AddrInUse || error instanceof Deno.errors.PermissionDenied
        ? new UsageError(`cannot listen: ${(error as Error).message}`)
        : error;
    },
  );
  let control: ControlServer | undefined;
  if (config.control !== undefined) {
    control = await startControlServer({
      address: config.control,
      status: () => serverStatus(driver, performance.now(), { encrypted: secret !== undefined }),
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
  // Signals are handled before the start line is printed: whoever waits for that line may signal
  // at once, and must get a reload or a clean stop, not the default death.
  const stopped = runUntilSignal(
    {
      stop: async () => {
        await control?.stop();
        await driver.stop();
      },
      statsLine: () => driver.statsLine(),
    },
    logger,
    async () => {
      running = await reloadServer(args, running, logger);
    },
  );
  await new Promise((resolve) => setTimeout(resolve, 0));
  logger.info(`mpserver ${VERSION} started`, {
    listen: describeListeners(driver.listeners),
    target: driver.target === undefined ? "none" : formatHostPort(driver.target),
    ...(config.targets.size > 0 ? { targets: [...config.targets.keys()].join(",") } : {}),
    ...(config.allow.length > 0 ? { allowRules: config.allow.length } : {}),
    secret: secret?.source ?? "none",
    ...fastPathFields(secret !== undefined),
  });
  if (!secret) {
    logger.warning(
      `no shared secret: traffic is neither authenticated nor encrypted, and anyone who can reach this server can send to its target; set --secret-file or ${SECRET_ENV_VAR}`,
    );
  }
  await stopped;
}

/**
 * SIGHUP: reads the file and flags again. Logging changes at once; what needs new sockets or keys
 * (listen, target, secret, control) is reported and waits for a restart, so clients never notice.
 * Returns the configuration now in force.
 */
async function reloadServer(
  args: readonly string[],
  running: ServerSettings,
  logger: Logger,
): Promise<ServerSettings> {
  const next = await readServerSettings(args);
  if (next === "done") return running;
  const changed = (what: string, before: unknown, after: unknown) => {
    if (JSON.stringify(before) !== JSON.stringify(after)) {
      logger.warning(`${what} changed; it takes effect after a restart`);
    }
  };
  changed("listen", running.listen, next.listen);
  changed("target", running.target, next.target);
  changed("targets", [...running.config.targets], [...next.config.targets]);
  changed("allow", running.config.allow, next.config.allow);
  changed("secret-file", running.config.secretFile, next.config.secretFile);
  changed("control", running.config.control, next.config.control);
  const logging = (
    settings: ServerSettings,
  ) => [settings.config.logLevel, settings.config.logFormat];
  if (JSON.stringify(logging(running)) !== JSON.stringify(logging(next))) {
    await setUpLogging(next.config.logLevel ?? "info", next.config.logFormat ?? "text");
  }
  logger.info("configuration reloaded");
  return {
    ...running,
    config: { ...running.config, logLevel: next.config.logLevel, logFormat: next.config.logFormat },
  };
}

if (import.meta.main) await runMain("mpserver", () => main(Deno.args));
