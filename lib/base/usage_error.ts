/**
 * What the three command-line programs share at every layer: the version and the usage-error type
 * that configuration and argument parsers throw (`cli/run_main.ts` turns it into one line, exit 2).
 */

/** The program version, printed by `--version`. */
export const VERSION = "0.1.0";

/** A mistake in arguments or configuration: reported as one line, exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Exit code for bad arguments or configuration. */
export const EXIT_USAGE = 2;
