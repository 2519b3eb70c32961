/**
 * mpserver once its arguments are read: the secret, the driver and control endpoint it starts, its
 * start line and warnings, and what SIGHUP applies (logging; the rest waits for a restart).
 */

import { formatHostPort } from "../base/address.ts";
import { VERSION } from "../base/usage_error.ts";
import type { Logger } from "../base/log.ts";
import { describeListeners, ServerDriver } from "../driver/server_driver.ts";
import { setUpLogging } from "../ops/logging.ts";
import { serverStatus } from "../ops/status.ts";
import { loadSecret } from "../crypto/secret.ts";
import type { BindTransport } from "../io/transport.ts";
import type { RunningProgram } from "./program_runner.ts";
import { readServerSettings, type ServerSettings } from "./server_settings.ts";
import { noSecretWarning, secretFields, startDriver, withControl } from "./tunnel_end.ts";

/** What mpserver runs with: its settings and the secret. */
export interface ServerStart {
  readonly args: readonly string[];
  readonly settings: ServerSettings;
  readonly secret: Awaited<ReturnType<typeof loadSecret>>;
}

/** Parses mpserver's arguments and file, then loads the secret. */
export async function readServerStart(args: readonly string[]): Promise<ServerStart | "done"> {
  const settings = await readServerSettings(args);
  if (settings === "done") return "done";
  return { args, settings, secret: await loadSecret(settings.config.secretFile) };
}

/**
 * Starts the driver on sockets from `bind` and the control endpoint; returns what the runner logs,
 * reloads and stops.
 */
export async function startServer(
  { args, settings, secret }: ServerStart,
  logger: Logger,
  bind: BindTransport,
): Promise<RunningProgram> {
  const { config, listen, target } = settings;
  const driver = await startDriver(
    () =>
      ServerDriver.start({
        listen,
        target,
        targets: config.targets,
        allow: config.allow,
        secret: secret?.keys,
        logger,
        bind,
      }),
    [Deno.errors.AddrInUse, Deno.errors.PermissionDenied],
  );
  const running = await withControl(driver, config.control, {
    status: () => serverStatus(driver, performance.now(), { encrypted: secret !== undefined }),
  }, logger);
  let inForce = settings;
  return {
    ...running,
    startLine: {
      message: `mpserver ${VERSION} started`,
      fields: {
        listen: describeListeners(driver.listeners),
        target: driver.target === undefined ? "none" : formatHostPort(driver.target),
        ...(config.targets.size > 0 ? { targets: [...config.targets.keys()].join(",") } : {}),
        ...(config.allow.length > 0 ? { allowRules: config.allow.length } : {}),
        ...secretFields(secret),
      },
    },
    warnings: secret ? [] : [noSecretWarning("this server")],
    reload: async () => {
      inForce = await reloadServer(args, inForce, logger);
    },
  };
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
