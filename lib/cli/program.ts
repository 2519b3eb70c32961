/**
 * The programs' command lines: `parseArgs` whose mistakes are usage errors, the flags every program
 * has (`--config`, `--help`, `--version`), and the help text of the keyword flags. Running a program
 * is `program_runner.ts`.
 */

import { parseArguments } from "../base/parse_arguments.ts";
import { VERSION } from "../base/usage_error.ts";
import type { FlagOptions, KeywordHelp } from "../ops/config.ts";

export { parseArguments };

/** A program's arguments: its keyword flags' values (and `config`) and the positional words. */
export interface ProgramArguments {
  readonly values: Readonly<Record<string, string | string[] | boolean | undefined>>;
  readonly positionals: readonly string[];
}

/**
 * Parses a program's arguments: its keyword flags plus `-c/--config`, `-h/--help` and
 * `-V/--version`. Help and version are printed here, and then "done" is returned.
 */
export function parseProgramArguments(
  program: string,
  help: string,
  flagOptions: FlagOptions,
  args: readonly string[],
): ProgramArguments | "done" {
  const { values, positionals } = parseArguments({
    args: [...args],
    allowPositionals: true,
    options: {
      ...flagOptions,
      config: { type: "string", short: "c" },
      help: { type: "boolean", short: "h" },
      version: { type: "boolean", short: "V" },
    },
  });
  if (values.help) {
    console.log(help);
    return "done";
  }
  if (values.version) {
    console.log(`${program} ${VERSION}`);
    return "done";
  }
  return { values, positionals };
}

/** Formats the keyword flags for `--help`, one line each. */
export function keywordFlagHelp(keywords: readonly KeywordHelp[]): string {
  const rows = keywords.map((help) => [`--${help.keyword} ${help.valueWords}`, help.summary]);
  const width = Math.max(...rows.map(([flag]) => flag.length));
  return rows.map(([flag, summary]) => `  ${flag.padEnd(width)}  ${summary}`).join("\n");
}
