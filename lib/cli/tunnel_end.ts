/**
 * What mpclient and mpserver do alike when they start: open the driver (an address that cannot be
 * used is the user's mistake), open the control endpoint beside it, and describe the secret in the
 * start line and the warnings.
 */

import { formatHostPort, type HostPort } from "../base/address.ts";
import { UsageError } from "../base/usage_error.ts";
import type { Logger } from "../base/log.ts";
import { type ControlServerOptions, startControlServer } from "../ops/control.ts";
import { fastPathFields } from "../ops/fast_paths.ts";
import { SECRET_ENV_VAR } from "../crypto/secret.ts";
import type { Stoppable } from "./program_runner.ts";

/** An error class the driver may throw about its addresses. */
type AddressErrorClass = new (...args: never[]) => Error;

/**
 * Starts a driver; an error of one of `unusable` classes (address in use, not local, not permitted)
 * becomes a {@link UsageError} "cannot listen: …".
 */
export async function startDriver<Driver>(
  start: () => Promise<Driver>,
  unusable: readonly AddressErrorClass[],
): Promise<Driver> {
  try {
    return await start();
  } catch (error) {
    if (unusable.some((kind) => error instanceof kind)) {
      throw new UsageError(`cannot listen: ${(error as Error).message}`);
    }
    throw error;
  }
}

/**
 * The driver with its control endpoint (when `address` is set) as one thing to stop: the endpoint
 * first, then the driver. An endpoint that cannot listen stops the driver and is a
 * {@link UsageError}.
 */
export async function withControl(
  driver: Stoppable,
  address: HostPort | undefined,
  endpoint: Omit<ControlServerOptions, "address" | "logger">,
  logger: Logger,
): Promise<Stoppable> {
  if (address === undefined) {
    return { stop: () => driver.stop(), statsLine: () => driver.statsLine() };
  }
  const control = await startControlServer({ ...endpoint, address, logger }).catch(
    async (error) => {
      await driver.stop();
      throw new UsageError(
        `cannot listen for --control on ${formatHostPort(address)}: ${(error as Error).message}`,
      );
    },
  );
  return {
    stop: async () => {
      await control.stop();
      await driver.stop();
    },
    statsLine: () => driver.statsLine(),
  };
}

/** The start line's fields about the secret: where it came from, the I/O and the cipher. */
export function secretFields(
  secret: { readonly source: string } | undefined,
): Record<string, string> {
  return { secret: secret?.source ?? "none", ...fastPathFields(secret !== undefined) };
}

/** The warning when there is no secret; `peer` is who could then send to the target. */
export function noSecretWarning(peer: string): string {
  return `no shared secret: traffic is neither authenticated nor encrypted, and anyone who can reach ${peer} can send to its target; set --secret-file or ${SECRET_ENV_VAR}`;
}
