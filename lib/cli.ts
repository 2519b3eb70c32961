/**
 * What the three command-line programs share: the version, the usage-error type and the way a user's
 * mistake ends the program (one clear line, exit code 2, no stack trace).
 */

/** The program version, printed by `--version`. */
export const VERSION = "0.1.0";

/** A mistake in arguments or configuration: reported as one line, exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Exit code for bad arguments or configuration. */
export const EXIT_USAGE = 2;

/**
 * Runs a program's main function: a {@link UsageError} prints `program: message` and exits 2;
 * anything else is a bug and keeps its stack trace.
 */
export async function runMain(program: string, main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`${program}: ${error.message}`);
      console.error(`Try '${program} --help' for more information.`);
      Deno.exit(EXIT_USAGE);
    }
    throw error;
  }
}
