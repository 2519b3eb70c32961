/**
 * What the entry points share beyond argument parsing: reading `parseArgs` results as usage errors,
 * printing help, and running until SIGINT/SIGTERM with a final stats line.
 */

import { parseArguments } from "../base/parse_arguments.ts";
import { VERSION } from "../base/usage_error.ts";
import type { FlagOptions, KeywordHelp } from "../ops/config.ts";
import type { Logger } from "../base/log.ts";
import { shutDownLogging } from "../ops/logging.ts";

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

/** Something that runs until stopped. */
export interface Stoppable {
  stop(): Promise<void>;
  statsLine(): string;
}

/**
 * Waits for SIGINT or SIGTERM, then stops `running`, logs its final stats line and flushes the log.
 * With `reload`, SIGHUP calls it (one reload at a time; a SIGHUP during a reload runs another after
 * it); a failed reload is logged and the program carries on as it was. Resolves when everything is
 * closed.
 */
export async function runUntilSignal(
  running: Stoppable,
  logger: Logger,
  reload?: () => Promise<void>,
): Promise<void> {
  const { promise: stopped, resolve } = Promise.withResolvers<string>();
  const windows = Deno.build.os === "windows";
  const signals: Deno.Signal[] = windows ? ["SIGINT", "SIGBREAK"] : ["SIGINT", "SIGTERM"];
  const listeners = signals.map((signal) => {
    const listener = () => resolve(signal);
    Deno.addSignalListener(signal, listener);
    return { signal, listener };
  });
  let reloading: Promise<void> | undefined;
  let reloadAgain = false;
  const runReload = async (): Promise<void> => {
    do {
      reloadAgain = false;
      try {
        await reload!();
      } catch (error) {
        logger.error("reload failed; carrying on with the previous configuration", {
          error: error instanceof Error ? error.message : String(error),
        });
      }
    } while (reloadAgain);
    reloading = undefined;
  };
  if (reload && !windows) {
    const listener = () => {
      if (reloading) reloadAgain = true;
      else reloading = runReload();
    };
    Deno.addSignalListener("SIGHUP", listener);
    listeners.push({ signal: "SIGHUP", listener });
  }
  const signal = await stopped;
  for (const { signal, listener } of listeners) Deno.removeSignalListener(signal, listener);
  await reloading;
  await running.stop();
  logger.info(`stopped on ${signal}`, { stats: running.statsLine() });
  await shutDownLogging();
}
