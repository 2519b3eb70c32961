/**
 * The programs' logging, on LogTape: a {@link Logger} for the core, lines on stderr as text or JSON,
 * a level filter. Only the command-line programs import this; the core receives a Logger.
 */

import {
  configure,
  dispose,
  getLogger,
  jsonLinesFormatter,
  type LogRecord,
  reset,
} from "@logtape/logtape";
import type { Logger, LogLevel, LogProperties } from "../base/log.ts";

/** How log lines are written. */
export type LogFormat = "text" | "json";

/** The log levels a user may choose, lowest first. */
export const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warning", "error"];

const LEVEL_LABELS: Record<string, string> = {
  trace: "TRACE",
  debug: "DEBUG",
  info: "INFO ",
  warning: "WARN ",
  error: "ERROR",
  fatal: "FATAL",
};

/** `2026-11-25T12:00:00.000Z INFO  client: session established session=1a2b3c4d path=127.0.0.1:4001` */
function textFormatter(record: LogRecord): string {
  const properties = Object.entries(record.properties).map(([key, value]) =>
    ` ${key}=${typeof value === "string" && !/\s/.test(value) ? value : JSON.stringify(value)}`
  ).join("");
  const message = record.message.map((part) => typeof part === "string" ? part : String(part)).join(
    "",
  );
  return `${new Date(record.timestamp).toISOString()} ${LEVEL_LABELS[record.level]} ${
    record.category.slice(1).join(".")
  }: ${message}${properties}\n`;
}

/**
 * Writes each line to stderr synchronously. (A stream sink would lock `Deno.stderr.writable` and
 * close it when a reload reconfigures logging.) Lines are rare — state changes, not datagrams.
 */
function stderrSink(formatter: (record: LogRecord) => string): (record: LogRecord) => void {
  const encoder = new TextEncoder();
  return (record) => {
    const bytes = encoder.encode(formatter(record));
    let written = 0;
    while (written < bytes.length) written += Deno.stderr.writeSync(bytes.subarray(written));
  };
}

/** Sets up LogTape for one program, at start and again on a reload. */
export async function setUpLogging(level: LogLevel, format: LogFormat): Promise<void> {
  await configure({
    reset: true,
    sinks: { stderr: stderrSink(format === "json" ? jsonLinesFormatter : textFormatter) },
    loggers: [
      { category: ["mptunnel"], lowestLevel: level, sinks: ["stderr"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stderr"] },
    ],
  });
}

/** Flushes and closes the log sinks (at exit). */
export async function shutDownLogging(): Promise<void> {
  await dispose();
  await reset();
}

/** A {@link Logger} writing under `mptunnel.<category>`. */
export function programLogger(category: string): Logger {
  const logger = getLogger(["mptunnel", category]);
  // LogTape reads `{name}` in a message as a placeholder; ours are plain sentences, so escape braces.
  const plain = (message: string) => message.replaceAll("{", "{{").replaceAll("}", "}}");
  return {
    debug: (message: string, properties?: LogProperties) =>
      logger.debug(plain(message), properties ?? {}),
    info: (message: string, properties?: LogProperties) =>
      logger.info(plain(message), properties ?? {}),
    warning: (message: string, properties?: LogProperties) =>
      logger.warn(plain(message), properties ?? {}),
    error: (message: string, properties?: LogProperties) =>
      logger.error(plain(message), properties ?? {}),
  };
}
