/**
 * The logger the core and the drivers are given. The core never imports a logging library: it receives
 * an object of this shape, so tests can record what was logged and the core stays free of output.
 * The command-line programs back it with LogTape (see `lib/ops/logging.ts`).
 */

/** Severity levels, lowest first. */
export type LogLevel = "debug" | "info" | "warning" | "error";

/** Structured properties attached to a log line. */
export type LogProperties = Readonly<Record<string, unknown>>;

/** What the core logs through. Messages are short sentences; details go in properties. */
export interface Logger {
  debug(message: string, properties?: LogProperties): void;
  info(message: string, properties?: LogProperties): void;
  warning(message: string, properties?: LogProperties): void;
  error(message: string, properties?: LogProperties): void;
}

/** A logger that drops everything. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warning() {},
  error() {},
};

/** One line recorded by {@link recordingLogger}. */
export interface LogRecord {
  readonly level: LogLevel;
  readonly message: string;
  readonly properties: LogProperties;
}

/** A logger that keeps every line in `records`, for tests. */
export function recordingLogger(): Logger & { readonly records: LogRecord[] } {
  const records: LogRecord[] = [];
  const at = (level: LogLevel) => (message: string, properties: LogProperties = {}) => {
    records.push({ level, message, properties });
  };
  return {
    records,
    debug: at("debug"),
    info: at("info"),
    warning: at("warning"),
    error: at("error"),
  };
}
