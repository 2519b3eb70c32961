/**
 * The way a user's mistake ends a program: one clear line, exit code 2, no stack trace.
 */

import { EXIT_USAGE, UsageError } from "../base/usage_error.ts";

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
