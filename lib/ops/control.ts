/**
 * The local control endpoint, both ends of it: {@link startControlServer} serves a running
 * program's state over HTTP (`--control 127.0.0.1:PORT`), and {@link runStatusCommand} is
 * `mpclient status` / `mpserver status`, which asks it and prints a table or the JSON.
 *
 * Routes: `GET /status` (JSON, `lib/ops/status.ts`), `GET /metrics` (Prometheus text,
 * `lib/ops/metrics.ts`), `GET /` (the web dashboard, `lib/ops/dashboard.ts`, which polls `/status`); any
 * other path is a 404, any method but GET or HEAD a 405. mpclient adds `POST /paths/NAME/disable`
 * and `POST /paths/NAME/enable` (NAME: the path's name or index as `/status` shows them), which take
 * a path out of service and put it back.
 *
 * The endpoint listens on loopback unless told otherwise. On loopback it also refuses requests whose
 * `Host` is not a loopback name, so a web page cannot read it through DNS rebinding; it sends no CORS
 * headers, so other origins cannot read it either; and it refuses a POST that carries another
 * origin's `Origin` header, so a web page cannot drive it with a form either.
 */

import { formatHostPort, type HostPort, isIPv4Literal, parseHostPort } from "../base/address.ts";
import { UsageError } from "../base/usage_error.ts";
import { DASHBOARD_HTML } from "./dashboard.ts";
import type { Logger } from "../base/log.ts";
import { formatMetrics, METRICS_CONTENT_TYPE } from "./metrics.ts";
import { parseArguments } from "../base/parse_arguments.ts";
import type { ProgramStatus } from "./status.ts";
import { formatStatus } from "./status_view.ts";
import { parseDuration } from "../base/units.ts";

/** How long `status` waits for an answer. */
const FETCH_TIMEOUT_MS = 5000;
/** How often `status --watch` refreshes unless `--interval` says otherwise. */
const DEFAULT_WATCH_INTERVAL_MS = 1000;
/** `--interval` below this would only load the program being watched. */
const MIN_WATCH_INTERVAL_MS = 100;
/** Exit code when the endpoint cannot be reached or answers nonsense. */
const EXIT_UNREACHABLE = 1;

/** What {@link startControlServer} needs. */
export interface ControlServerOptions {
  /** Where to listen (port 0: any free port; the bound one is in the result and the log). */
  readonly address: HostPort;
  /** The program's state now. Called on every `/status` and `/metrics` request. */
  readonly status: () => ProgramStatus;
  /** The Prometheus text; by default rendered from `status()`, the one source of truth. */
  readonly metrics?: () => string;
  /** The page served at `/`; the web dashboard by default. */
  readonly dashboardHtml?: string;
  /**
   * Takes a path (by name or index) out of service (`false`) or puts it back; enables the
   * `POST /paths/NAME/disable|enable` routes. Answers what happened.
   */
  readonly setPathInService?: (
    path: string,
    inService: boolean,
  ) => "ok" | "no-such-path" | "unsupported";
  readonly logger: Logger;
}

/** `/paths/NAME/disable` or `/paths/NAME/enable`. */
const PATH_ACTION_ROUTE = /^\/paths\/([^/]+)\/(disable|enable)$/;

/** A running control endpoint. */
export interface ControlServer {
  /** Where it listens, with the port resolved. */
  readonly address: HostPort;
  /** Stops listening and waits for requests in progress to finish. */
  stop(): Promise<void>;
}

/**
 * Starts the control endpoint. It never throws into the tunnel: a failing handler answers 500 and
 * logs why. Binding fails (rejects) as `Deno.serve` does, e.g. with `Deno.errors.AddrInUse`.
 *
 * @example
 * ```ts ignore
 * const control = await startControlServer({
 *   address: { hostname: "127.0.0.1", port: 9100 },
 *   status: () => clientStatus(driver, performance.now()),
 *   logger,
 * });
 * // ... on shutdown, before the driver stops:
 * await control.stop();
 * ```
 */
export function startControlServer(options: ControlServerOptions): Promise<ControlServer> {
  const logger = options.logger;
  const metrics = options.metrics ?? (() => formatMetrics(options.status()));
  const loopbackOnly = isLoopbackHost(options.address.hostname);
  const abort = new AbortController();
  const page = options.dashboardHtml ?? DASHBOARD_HTML;
  const routes: Readonly<Record<string, () => Response>> = {
    "/": () => respond(200, page, "text/html; charset=utf-8", DASHBOARD_HEADERS),
    "/status": () =>
      respond(200, JSON.stringify(options.status(), null, 2) + "\n", "application/json"),
    "/metrics": () => respond(200, metrics(), METRICS_CONTENT_TYPE),
  };
  const handle = (request: Request): Response => {
    if (loopbackOnly && !isLoopbackHostHeader(request.headers.get("host"))) {
      return respond(403, "the control endpoint answers only to a loopback Host\n");
    }
    const path = new URL(request.url).pathname;
    const pathAction = PATH_ACTION_ROUTE.exec(path);
    if (pathAction !== null && options.setPathInService !== undefined) {
      return pathActionResponse(request, pathAction, options.setPathInService, logger);
    }
    const route = Object.hasOwn(routes, path) ? routes[path] : undefined;
    if (route === undefined) return respond(404, "not found: try /status or /metrics\n");
    if (request.method !== "GET" && request.method !== "HEAD") {
      return respond(405, "only GET is allowed\n", undefined, { allow: "GET, HEAD" });
    }
    const response = route();
    return request.method === "HEAD"
      ? new Response(null, { status: response.status, headers: response.headers })
      : response;
  };
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: options.address.hostname,
      port: options.address.port,
      signal: abort.signal,
      onListen: () => {},
      onError: (error) => {
        logger.error("the control endpoint failed to answer a request", {
          error: error instanceof Error ? (error.stack ?? error.message) : String(error),
        });
        return respond(500, "internal error; see the program's log\n");
      },
    }, handle);
  } catch (error) {
    return Promise.reject(error);
  }
  const address = { hostname: server.addr.hostname, port: server.addr.port };
  logger.info("control endpoint listening", { address: formatHostPort(address) });
  if (!loopbackOnly) {
    logger.warning(
      "the control endpoint listens on a non-loopback address: anyone who can reach it can read this program's status; give --control 127.0.0.1:PORT unless that is intended",
      { address: formatHostPort(address) },
    );
  }
  let stopped: Promise<void> | undefined;
  return Promise.resolve({
    address,
    stop() {
      stopped ??= (async () => {
        abort.abort();
        await server.finished;
      })();
      return stopped;
    },
  });
}

/** Answers `POST /paths/NAME/disable|enable`. */
function pathActionResponse(
  request: Request,
  [, encodedName, action]: RegExpExecArray,
  setPathInService: NonNullable<ControlServerOptions["setPathInService"]>,
  logger: Logger,
): Response {
  if (request.method !== "POST") {
    return respond(405, "only POST is allowed\n", undefined, { allow: "POST" });
  }
  const origin = request.headers.get("origin");
  if (origin !== null && origin !== `http://${request.headers.get("host")}`) {
    return respond(403, "a path action is not accepted from another origin\n");
  }
  let name: string;
  try {
    name = decodeURIComponent(encodedName);
  } catch {
    return respond(400, "the path name is not valid percent-encoding\n");
  }
  const inService = action === "enable";
  const result = setPathInService(name, inService);
  switch (result) {
    case "ok":
      logger.info(
        inService ? "control: path put back in service" : "control: path taken out of service",
        {
          path: name,
        },
      );
      return respond(200, JSON.stringify({ path: name, inService }) + "\n", "application/json");
    case "no-such-path":
      return respond(404, `no path named "${name}": see /status for the names\n`);
    case "unsupported":
      return respond(501, "this version cannot take a path out of service\n");
  }
}

/**
 * The dashboard page may run its own inline script and fetch from this origin, nothing else (the page
 * carries the same policy in a meta tag; the header also covers framing).
 */
const DASHBOARD_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy":
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
};

function respond(
  status: number,
  body: string,
  contentType = "text/plain; charset=utf-8",
  headers: Readonly<Record<string, string>> = {},
): Response {
  return new Response(body, {
    status,
    headers: {
      "content-type": contentType,
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
      ...headers,
    },
  });
}

/** True for `localhost`, 127.0.0.0/8 and ::1 (with or without brackets). */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.startsWith("[") && hostname.endsWith("]")
    ? hostname.slice(1, -1)
    : hostname;
  const lower = host.toLowerCase();
  if (lower === "localhost" || lower.endsWith(".localhost")) return true;
  if (isIPv4Literal(host)) return host.startsWith("127.");
  return lower === "::1" || lower === "0:0:0:0:0:0:0:1" || lower === "::ffff:127.0.0.1";
}

/** True when a `Host` header (`127.0.0.1:9100`, `[::1]:9100`, `localhost`) names a loopback host. */
function isLoopbackHostHeader(header: string | null): boolean {
  if (header === null) return false;
  const host = header.startsWith("[")
    ? header.slice(0, header.indexOf("]") + 1)
    : header.replace(/:\d*$/, "");
  return isLoopbackHost(host);
}

// -------------------------------------------------------------------------------------------------
// `mpclient status`, `mpserver status`

/** The endpoint could not be reached, or did not answer as a control endpoint does. */
export class ControlUnreachableError extends Error {
  override name = "ControlUnreachableError";
}

/**
 * Fetches `/status` from a control endpoint. A refused connection, a timeout or an answer that is
 * not a status is a {@link ControlUnreachableError} whose message is one line for the user.
 */
export async function fetchStatus(
  address: HostPort,
  program: string,
  timeoutMs = FETCH_TIMEOUT_MS,
): Promise<ProgramStatus> {
  const where = formatHostPort(address);
  let response: Response;
  try {
    response = await fetch(`http://${where}/status`, {
      signal: AbortSignal.timeout(timeoutMs),
      headers: { accept: "application/json" },
    });
  } catch (error) {
    // Deno's fetch says "fetch failed" and puts the reason (refused, no route…) in `cause`.
    const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
    const message = cause instanceof Error ? cause.message : String(cause);
    if (error instanceof DOMException && error.name === "TimeoutError") {
      throw new ControlUnreachableError(
        `the control endpoint at ${where} did not answer within ${timeoutMs} ms`,
      );
    }
    throw new ControlUnreachableError(
      /refused|os error 111\b/i.test(message)
        ? `no control endpoint at ${where}: is ${program} running with --control?`
        : `cannot reach the control endpoint at ${where}: ${
          message.split("\n")[0].replace(/^error sending request for url \([^)]*\): /, "")
        }`,
    );
  }
  const text = await response.text();
  if (!response.ok) {
    throw new ControlUnreachableError(
      `the control endpoint at ${where} answered HTTP ${response.status}: ${
        text.split("\n")[0].slice(0, 200)
      }`,
    );
  }
  let status: unknown;
  try {
    status = JSON.parse(text);
  } catch {
    throw new ControlUnreachableError(`${where} answered /status with something other than JSON`);
  }
  const programName = (status as { program?: unknown } | null)?.program;
  if (programName !== "mpclient" && programName !== "mpserver") {
    throw new ControlUnreachableError(`${where} does not look like an mptunnel control endpoint`);
  }
  return status as ProgramStatus;
}

/** What {@link runStatusCommand} needs from the program it belongs to. */
export interface StatusCommandOptions {
  readonly program: "mpclient" | "mpserver";
  /** The arguments after `status`. */
  readonly args: readonly string[];
  /** Reads a configuration file (a mistake in it is a UsageError) and returns its `control` line. */
  readonly controlFromFile: (path: string) => Promise<HostPort | undefined>;
}

/** The help of `status`. */
export function statusHelp(program: string): string {
  const file = program === "mpclient" ? "CONFIG_FILE" : "--config FILE";
  return `Usage:
  ${program} status [--control HOST:PORT | ${file}] [--json] [--watch [--interval 1s]]

Asks a running ${program} for its status at its control endpoint (started with --control, or a
"control" line in its configuration file) and prints it as a table: each ${
    program === "mpclient"
      ? "path's state, round-trip time, loss each way, jitter and traffic"
      : "session with its paths and traffic"
  }, and the drops that happened.

Options:
  --control HOST:PORT   where the endpoint listens (HOST defaults to 127.0.0.1)
  -c, --config FILE     read the address from the file's "control" line
  --json                print the status as JSON (one object per line with --watch)
  --watch               refresh until Ctrl-C (in place in a terminal)
  --interval DURATION   how often --watch refreshes (default 1s)
  -h, --help            print this help
`;
}

/**
 * Runs `status`: prints the table (or the JSON) once, or repeatedly with `--watch`. Returns the
 * exit code: 0, or 1 when the endpoint cannot be reached (one line on stderr). A mistake in the
 * arguments throws a UsageError (exit 2).
 */
export async function runStatusCommand(options: StatusCommandOptions): Promise<number> {
  const { program } = options;
  const { values, positionals } = parseArguments({
    args: [...options.args],
    allowPositionals: true,
    options: {
      control: { type: "string" },
      config: { type: "string", short: "c" },
      json: { type: "boolean" },
      watch: { type: "boolean" },
      interval: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(statusHelp(program));
    return 0;
  }
  if (positionals.length > 1 || (positionals.length === 1 && values.config !== undefined)) {
    throw new UsageError(`status: unexpected argument "${positionals.at(-1)}"`);
  }
  const configFile = values.config ?? positionals[0];
  let address: HostPort | undefined;
  if (values.control !== undefined) {
    const parsed = parseHostPort(values.control, "127.0.0.1");
    if (!parsed.ok) throw new UsageError(`--control: ${parsed.error}`);
    address = parsed.value;
  } else if (configFile !== undefined) {
    address = await options.controlFromFile(configFile);
    if (address === undefined) {
      throw new UsageError(
        `${configFile} has no "control" line: add "control 127.0.0.1:PORT" (and restart ${program}), or give --control HOST:PORT`,
      );
    }
    if (address.port === 0) {
      throw new UsageError(
        `${configFile} says "control" on port 0 (any free port): give --control HOST:PORT with the port ${program} logged at start`,
      );
    }
  } else {
    throw new UsageError(
      `status needs the control address: --control HOST:PORT, or ${
        program === "mpclient" ? "the configuration file" : "--config FILE"
      } with a "control" line`,
    );
  }
  address = reachableAddress(address);
  let intervalMs = DEFAULT_WATCH_INTERVAL_MS;
  if (values.interval !== undefined) {
    if (!values.watch) throw new UsageError("--interval goes with --watch");
    const parsed = parseDuration(values.interval);
    if (!parsed.ok) throw new UsageError(`--interval: ${parsed.error}`);
    if (parsed.value < MIN_WATCH_INTERVAL_MS) {
      throw new UsageError(`--interval: at least ${MIN_WATCH_INTERVAL_MS}ms`);
    }
    intervalMs = parsed.value;
  }
  const render = (status: ProgramStatus) =>
    values.json
      ? JSON.stringify(status, null, values.watch ? undefined : 2) + "\n"
      : formatStatus(status);

  if (!values.watch) {
    try {
      await writeOut(render(await fetchStatus(address, program)));
      return 0;
    } catch (error) {
      if (!(error instanceof ControlUnreachableError)) throw error;
      console.error(`${program}: ${error.message}`);
      return EXIT_UNREACHABLE;
    }
  }
  return await watch(address, program, intervalMs, render, values.json === true);
}

/** Refreshes until SIGINT or SIGTERM; an unreachable endpoint is shown and retried. */
async function watch(
  address: HostPort,
  program: string,
  intervalMs: number,
  render: (status: ProgramStatus) => string,
  json: boolean,
): Promise<number> {
  const inPlace = !json && Deno.stdout.isTerminal();
  const { promise: interrupted, resolve: interrupt } = Promise.withResolvers<void>();
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  for (const signal of signals) Deno.addSignalListener(signal, interrupt);
  let stop = false;
  interrupted.then(() => stop = true);
  try {
    while (!stop) {
      let text: string;
      try {
        text = render(await fetchStatus(address, program));
      } catch (error) {
        if (!(error instanceof ControlUnreachableError)) throw error;
        if (!inPlace) {
          console.error(`${program}: ${error.message}`);
          return EXIT_UNREACHABLE;
        }
        text = `${error.message}\n(retrying every ${intervalMs} ms)\n`;
      }
      if (stop) break;
      if (inPlace) {
        const heading = `${program} status at ${formatHostPort(address)}, every ${
          intervalMs / 1000
        }s — Ctrl-C to stop — ${new Date().toLocaleTimeString()}\n\n`;
        await writeOut(terminalFrame(heading + text));
      } else {
        await writeOut(json ? text : text + "\n");
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        interrupted,
        new Promise<void>((resolve) => timer = setTimeout(resolve, intervalMs)),
      ]);
      clearTimeout(timer);
    }
  } finally {
    for (const signal of signals) Deno.removeSignalListener(signal, interrupt);
  }
  return 0;
}

/**
 * A screenful that replaces the previous one in a terminal: cursor home, each line followed by
 * "erase to the end of the line", then "erase below" — no full clear, so no flicker.
 */
export function terminalFrame(text: string): string {
  const lines = text.endsWith("\n") ? text.slice(0, -1).split("\n") : text.split("\n");
  return `\x1b[H${lines.map((line) => `${line}\x1b[K`).join("\n")}\n\x1b[J`;
}

/** A wildcard listening address is asked at loopback, in its family. */
function reachableAddress(address: HostPort): HostPort {
  if (address.hostname === "0.0.0.0") return { ...address, hostname: "127.0.0.1" };
  if (address.hostname === "::") return { ...address, hostname: "::1" };
  return address;
}

async function writeOut(text: string): Promise<void> {
  const bytes = new TextEncoder().encode(text);
  let written = 0;
  while (written < bytes.length) written += await Deno.stdout.write(bytes.subarray(written));
}
