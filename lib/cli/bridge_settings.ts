/**
 * mpbridge's command line: its usage text, and its arguments read into a {@link BridgeCommand}
 * (every mistake a `UsageError`).
 */

import { parseArgs } from "node:util";
import {
  type HostPort,
  type Parsed,
  parseHost,
  parseHostPort,
  parsePort,
} from "../base/address.ts";
import { DEFAULT_IDLE_TIMEOUT_MS } from "../bridge/bridge_relay.ts";
import { UsageError } from "../base/usage_error.ts";
import {
  checkImpairmentOptions,
  DEFAULT_QUEUE_LIMIT_MS,
  type ImpairmentOptions,
  parseBlackout,
} from "../bridge/impairment.ts";
import type { LogLevel } from "../base/log.ts";
import { LOG_LEVELS, type LogFormat } from "../ops/logging.ts";
import { parseDuration, parsePercent, parseRate } from "../base/units.ts";

/** The program's name, as usage errors and `--version` write it. */
export const PROGRAM = "mpbridge";
const DEFAULT_LISTEN_HOST = "0.0.0.0";
const LOG_FORMATS: readonly LogFormat[] = ["text", "json"];
const IDLE_DEFAULT = formatMs(DEFAULT_IDLE_TIMEOUT_MS);
const QUEUE_DEFAULT = formatMs(DEFAULT_QUEUE_LIMIT_MS);

/** mpbridge's `--help`. */
export const BRIDGE_USAGE = `Usage: ${PROGRAM} [HOST:]LISTEN_PORT SERVER_HOST SERVER_PORT [options]

Relays UDP between clients on LISTEN_PORT and the server, one upstream port per client,
optionally impairing the link. Each direction is impaired on its own.

Options:
  --loss PERCENT          drop this share of datagrams at random (0-100, e.g. 5 or 0.5)
  --delay DURATION        delay every datagram (e.g. 40ms)
  --jitter DURATION       vary the delay uniformly by up to ± this much (may reorder)
  --rate RATE             limit each direction to this rate (e.g. 512kbit, 20mbit)
  --queue-limit DURATION  longest wait for the rate-limited link before a tail drop (default ${QUEUE_DEFAULT})
  --blackout SPEC         drop everything during a window, counted from start; may repeat:
                            5s+3s             from 5 s for 3 s
                            5s+3s every 10s   the same, repeating every 10 s
                            "every 10s for 2s"  for 2 s in every 10 s, the first at 10 s
  --seed N                seed for loss and jitter (default: random, printed at start)
  --idle-timeout DURATION forget a client after this long without traffic (default ${IDLE_DEFAULT})
  --listen-host HOST      address to listen on (default ${DEFAULT_LISTEN_HOST}; or give HOST:PORT)
  --log-level LEVEL       debug, info, warning or error (default info)
  --log-format FORMAT     text, or json for one JSON object per line (default text)
  -h, --help              show this help
  --version               show the version

Durations and rates carry units: 500ms, 2s, 1m; 512kbit, 20mbit (rates are in bits; kbps/mbps are refused as ambiguous).
IPv6 literals go in brackets before a port: [::1]:4001.`;

/** What the command line asks for. */
export type BridgeCommand =
  | { readonly kind: "help" }
  | { readonly kind: "version" }
  | {
    readonly kind: "run";
    readonly listen: HostPort;
    readonly server: HostPort;
    readonly impairment: ImpairmentOptions;
    readonly seed: number | undefined;
    readonly idleTimeoutMs: number;
    readonly logLevel: LogLevel;
    readonly logFormat: LogFormat;
  };

/** Parses mpbridge's arguments; mistakes throw {@link UsageError}. */
export function parseBridgeArgs(args: readonly string[]): BridgeCommand {
  const { values, positionals } = parseArgsStrictly(args);
  if (values.help) return { kind: "help" };
  if (values.version) return { kind: "version" };
  if (positionals.length !== 3) {
    throw new UsageError(
      `expected [HOST:]LISTEN_PORT SERVER_HOST SERVER_PORT, got ${positionals.length} argument(s)`,
    );
  }
  const [listenText, serverHostText, serverPortText] = positionals;
  let listenHost = DEFAULT_LISTEN_HOST;
  if (values["listen-host"] !== undefined) {
    if (!/^\d+$/.test(listenText)) {
      throw new UsageError(`give the listen host once: "${listenText}" or --listen-host`);
    }
    listenHost = check("--listen-host", parseHost(values["listen-host"]));
  }
  const listen = check("LISTEN_PORT", parseHostPort(listenText, listenHost, true));
  const server = {
    hostname: check("SERVER_HOST", parseHost(serverHostText)),
    port: check("SERVER_PORT", parsePort(serverPortText)),
  };
  const optional = <T>(flag: string, parse: (text: string) => Parsed<T>): T | undefined => {
    const text = values[flag as keyof typeof values];
    return typeof text === "string" ? check(`--${flag}`, parse(text)) : undefined;
  };
  const impairment: ImpairmentOptions = {
    lossPercent: optional("loss", parsePercent),
    delayMs: optional("delay", parseDuration),
    jitterMs: optional("jitter", parseDuration),
    rateBitsPerSecond: optional("rate", parseRate),
    queueLimitMs: optional("queue-limit", parseDuration),
    blackouts: (values.blackout ?? []).map((text) => check("--blackout", parseBlackout(text))),
  };
  const problem = checkImpairmentOptions(impairment);
  if (problem !== undefined) throw new UsageError(problem);
  const idleTimeoutMs = optional("idle-timeout", parseDuration) ?? DEFAULT_IDLE_TIMEOUT_MS;
  if (!(idleTimeoutMs > 0)) throw new UsageError(`--idle-timeout: must be longer than 0ms`);
  const logLevel = values["log-level"] ?? "info";
  if (!LOG_LEVELS.includes(logLevel as LogLevel)) {
    throw new UsageError(`--log-level: expected ${LOG_LEVELS.join(", ")}, got "${logLevel}"`);
  }
  const logFormat = values["log-format"] ?? "text";
  if (!LOG_FORMATS.includes(logFormat as LogFormat)) {
    throw new UsageError(`--log-format: expected ${LOG_FORMATS.join(" or ")}, got "${logFormat}"`);
  }
  return {
    kind: "run",
    listen,
    server,
    impairment,
    seed: optional("seed", parseSeed),
    idleTimeoutMs,
    logLevel: logLevel as LogLevel,
    logFormat: logFormat as LogFormat,
  };
}

function parseArgsStrictly(args: readonly string[]) {
  try {
    return parseArgs({
      args: [...args],
      allowPositionals: true,
      strict: true,
      options: {
        loss: { type: "string" },
        delay: { type: "string" },
        jitter: { type: "string" },
        rate: { type: "string" },
        "queue-limit": { type: "string" },
        blackout: { type: "string", multiple: true },
        seed: { type: "string" },
        "idle-timeout": { type: "string" },
        "listen-host": { type: "string" },
        "log-level": { type: "string" },
        "log-format": { type: "string" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean" },
      },
    });
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
    const code = (error as TypeError & { code?: string }).code;
    const option = /'([^']*)'/.exec(error.message)?.[1];
    if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
      throw new UsageError(`unknown option "${option}"`);
    }
    if (/argument missing/.test(error.message) && option !== undefined) {
      throw new UsageError(`${option.replace(/ <value>$/, "")} needs a value`);
    }
    throw new UsageError(error.message.replaceAll("\n", " "));
  }
}

function check<T>(what: string, parsed: Parsed<T>): T {
  if (!parsed.ok) throw new UsageError(`${what}: ${parsed.error}`);
  return parsed.value;
}

function parseSeed(text: string): Parsed<number> {
  return /^\d{1,10}$/.test(text) && Number(text) <= 0xffffffff
    ? { ok: true, value: Number(text) }
    : { ok: false, error: `expected a whole number from 0 to 4294967295, got "${text}"` };
}

/** Writes a duration as the flags take it: whole seconds as `2s`, else `500ms`. */
export function formatMs(ms: number): string {
  return ms >= 1000 && ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}
