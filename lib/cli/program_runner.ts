/**
 * The one way mpclient, mpserver and mpbridge run: read the arguments, set up logging, start, print
 * the start line, then run until SIGINT/SIGTERM (SIGINT/SIGBREAK on Windows) with SIGHUP reloading,
 * and stop with a final stats line. Each program says only what is its own ({@link Program}); usage
 * errors end the program through `run_main.ts`.
 */

import type { Logger, LogLevel, LogProperties } from "../base/log.ts";
import { runStatusCommand, type StatusCommandOptions } from "../ops/control.ts";
import { type LogFormat, programLogger, setUpLogging, shutDownLogging } from "../ops/logging.ts";

/** Something that runs until stopped. */
export interface Stoppable {
  stop(): Promise<void>;
  statsLine(): string;
}

/** A program once started: what the runner logs, reloads and stops. */
export interface RunningProgram extends Stoppable {
  /** The start line: printed once signals are handled, so whoever waits for it may signal. */
  readonly startLine: { readonly message: string; readonly fields: LogProperties };
  /** Warnings printed right after the start line. */
  readonly warnings: readonly string[];
  /** SIGHUP: re-reads the configuration and applies what it can (a failure is logged). */
  readonly reload?: () => Promise<void>;
  /** Rejects when the program fails on its own (a bug): it ends with that error. */
  readonly failure?: Promise<never>;
}

/** What makes a program: how it reads its arguments and how it starts. */
export interface Program<Settings> {
  /** The program's name, as `--version` and usage errors write it. */
  readonly name: string;
  /** The logger category of its lines ("client", "server", "bridge"). */
  readonly component: string;
  /** For `PROGRAM status`: who asks, and the control address a configuration file names. */
  readonly status?: Pick<StatusCommandOptions, "program" | "controlFromFile">;
  /** Reads the arguments (and files); "done" when there is nothing to run (help, version). */
  read(args: readonly string[]): Promise<Settings | "done">;
  /** The log level and format the settings ask for. */
  logging(settings: Settings): { readonly level: LogLevel; readonly format: LogFormat };
  /** Opens everything; a mistake the user can fix throws a `UsageError`. */
  start(settings: Settings, logger: Logger): Promise<RunningProgram>;
}

/**
 * Runs `program` with `args` until a signal stops it (or, for `PROGRAM status`, prints the status
 * and exits with the status command's code).
 */
export async function runProgram<Settings>(
  program: Program<Settings>,
  args: readonly string[],
): Promise<void> {
  if (program.status !== undefined && args[0] === "status") {
    const code = await runStatusCommand({ ...program.status, args: args.slice(1) });
    if (code !== 0) Deno.exit(code);
    return;
  }
  const settings = await program.read(args);
  if (settings === "done") return;
  const { level, format } = program.logging(settings);
  await setUpLogging(level, format);
  const logger = programLogger(program.component);
  const running = await program.start(settings, logger);
  // The listeners are added before runUntilSignal first waits, so before the start line: whoever
  // waits for that line may signal at once, and must get a reload or a clean stop, not the default
  // death.
  const stopped = runUntilSignal(running, logger, running.reload);
  logger.info(running.startLine.message, running.startLine.fields);
  for (const warning of running.warnings) logger.warning(warning);
  await (running.failure === undefined ? stopped : Promise.race([stopped, running.failure]));
}

/**
 * Waits for SIGINT or SIGTERM, then stops `running`, logs its final stats line and flushes the log.
 * With `reload`, SIGHUP calls it (one reload at a time; a SIGHUP during a reload runs another after
 * it); a failed reload is logged and the program carries on as it was. The signal listeners are in
 * place when this returns its promise. Resolves when everything is closed.
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
