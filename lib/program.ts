/**
 * What the entry points share beyond argument parsing: reading `parseArgs` results as usage errors,
 * printing help, and running until SIGINT/SIGTERM with a final stats line.
 */

import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError } from "./cli.ts";
import type { KeywordHelp } from "./config.ts";
import type { Logger } from "./log.ts";
import { shutDownLogging } from "./logging.ts";

/** `parseArgs` whose errors become {@link UsageError}s (one clear line, exit 2). */
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
