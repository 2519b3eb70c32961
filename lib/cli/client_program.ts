/**
 * mpclient once its arguments are read: the secret and SOCKS5 login, the driver and control
 * endpoint it starts, its start line and warnings, and what SIGHUP applies.
 */

import { formatHostPort } from "../base/address.ts";
import { VERSION } from "../base/usage_error.ts";
import type { Logger } from "../base/log.ts";
import { ClientDriver } from "../driver/client_driver.ts";
import type { ForwardStatus, Socks5Status } from "../driver/client_options.ts";
import { DEFAULT_CLIENT_TIMING } from "../session/client_core.ts";
import { formatSessionId } from "../wire/session_id.ts";
import type { ClientConfig } from "../ops/config.ts";
import { setUpLogging } from "../ops/logging.ts";
import { type ClientStatus, clientStatus } from "../ops/status.ts";
import { loadSecret } from "../crypto/secret.ts";
import type { Socks5Credentials } from "../socks5/session.ts";
import { SOCKS5_PASSWORD_ENV_VAR, SOCKS5_USER_ENV_VAR } from "../socks5/front.ts";
import type { BindTransport } from "../io/transport.ts";
import type { RunningProgram } from "./program_runner.ts";
import {
  forwardsOf,
  pathTargets,
  readClientConfig,
  schedulingOf,
  socks5Credentials,
  timingOf,
  uplinksAutoOf,
} from "./client_settings.ts";
import { noSecretWarning, secretFields, startDriver, withControl } from "./tunnel_end.ts";

/** What mpclient runs with: its configuration, the secret and the SOCKS5 front end's login. */
export interface ClientStart {
  readonly args: readonly string[];
  readonly config: ClientConfig;
  readonly secret: Awaited<ReturnType<typeof loadSecret>>;
  readonly credentials: Socks5Credentials | undefined;
}

/** Parses mpclient's arguments and file, then loads the secret and the SOCKS5 login. */
export async function readClientStart(args: readonly string[]): Promise<ClientStart | "done"> {
  const config = await readClientConfig(args);
  if (config === "done") return "done";
  const secret = await loadSecret(config.secretFile);
  return { args, config, secret, credentials: socks5Credentials(config) };
}

/**
 * Starts the driver on sockets from `bind` and the control endpoint; returns what the runner logs,
 * reloads and stops.
 */
export async function startClient(
  { args, config, secret, credentials }: ClientStart,
  logger: Logger,
  bind: BindTransport,
): Promise<RunningProgram> {
  const driver = await startDriver(
    () =>
      ClientDriver.start({
        listen: config.listen,
        forwards: forwardsOf(config),
        socks5: config.socks5 === undefined ? undefined : { listen: config.socks5, credentials },
        paths: pathTargets(config),
        secret: secret?.keys,
        logger,
        bind,
        timing: timingOf(config),
        scheduling: schedulingOf(config),
        uplinksAuto: uplinksAutoOf(config),
      }),
    [Deno.errors.AddrInUse, Deno.errors.AddrNotAvailable, Deno.errors.PermissionDenied],
  );
  const running = await withControl(driver, config.control, {
    status: () => statusWithFrontEnds(driver, performance.now()),
    setPathInService: (path, inService) => driver.setPathInService(path, inService),
  }, logger);
  const listen = driver.classicListenAddress;
  const socks5 = driver.socks5();
  const warnings: string[] = [];
  if (!secret) warnings.push(noSecretWarning("mpserver"));
  if (socks5 !== undefined && credentials === undefined && !isLoopback(config.socks5!.hostname)) {
    warnings.push(
      `the SOCKS5 front end listens on a non-loopback address without a username and password: anyone who can reach it can use the tunnel; set ${SOCKS5_USER_ENV_VAR} and ${SOCKS5_PASSWORD_ENV_VAR}`,
    );
  }
  let inForce = config;
  return {
    ...running,
    startLine: {
      message: `mpclient ${VERSION} started`,
      fields: {
        listen: listen === undefined ? "none" : formatHostPort(listen),
        ...(config.forwards.length > 0
          ? {
            forwards: driver.forwards().map((forward) => `${forward.listen}→${forward.target}`)
              .join(","),
          }
          : {}),
        ...(socks5 !== undefined
          ? { socks5: socks5.listen, socks5Auth: credentials === undefined ? "none" : "username" }
          : {}),
        paths: driver.core.paths.map((path) => path.label).join(","),
        session: formatSessionId(driver.core.sessionId),
        ...secretFields(secret),
      },
    },
    warnings,
    reload: async () => {
      inForce = await reloadClient(args, inForce, driver, logger);
    },
  };
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

/** True for the loopback addresses (127.0.0.0/8, ::1) and `localhost`. */
function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "::1" || /^127\.\d+\.\d+\.\d+$/.test(hostname);
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
