/**
 * `node:util`'s `parseArgs`, with its failures turned into {@link UsageError}s: every program and
 * subcommand (`mpclient`, `mpclient status`, the demo) reads its arguments through it, so it sits
 * at the bottom, where the `status` subcommand in ops can reach it as well as the CLI.
 */

import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError } from "./usage_error.ts";

/**
 * `parseArgs` whose errors become {@link UsageError}s (one clear line, exit 2).
 *
 * @example
 * ```ts
 * import { parseArguments } from "./parse_arguments.ts";
 * const { values } = parseArguments({ args: ["--json"], options: { json: { type: "boolean" } } });
 * console.log(values.json); // true
 * ```
 */
export function parseArguments<T extends ParseArgsConfig>(
  config: T,
): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (error) {
    if (error instanceof TypeError) {
      // node:util's messages are long and quote oddly; the option's name is what matters.
      const unknown = /Unknown option '([^']+)'/.exec(error.message);
      throw new UsageError(unknown ? `unknown option "${unknown[1]}"` : error.message);
    }
    throw error;
  }
}
