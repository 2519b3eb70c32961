/**
 * Helpers for the end-to-end tests, which start real processes: the repository's own programs
 * through {@link denoScript}, and peers such as socat, iperf, dnsmasq or dig through
 * {@link spawnCommand}. Both give a {@link ProcessHandle} that collects the output in the
 * background (so a chatty child never blocks on a full pipe), waits for a line, and is killed and
 * awaited when disposed:
 *
 * ```ts ignore
 * await using server = denoScript("server.ts", ["--config", path]);
 * const [, port] = await server.waitForLine(/listening on .*:(\d+)/);
 * ```
 */

/** How long {@link ProcessHandle.waitForLine} waits when no timeout is given. */
export const DEFAULT_LINE_TIMEOUT_MS = 10_000;
/** How long a program may take to print that it started (several start at once on two cores). */
export const STARTUP_TIMEOUT_MS = 15_000;
/** How long a client may take to establish its session and bring every path up. */
export const PATHS_UP_TIMEOUT_MS = 10_000;
/** How long disposal waits after SIGTERM before it sends SIGKILL. */
export const KILL_GRACE_MS = 2_000;
/** How many output lines a handle keeps (the oldest go first). */
export const DEFAULT_MAX_OUTPUT_LINES = 5_000;
/** Longer lines are cut to this many characters. */
const MAX_LINE_CHARS = 10_000;
/** How many of the last output lines an error message quotes. */
const OUTPUT_LINES_IN_ERRORS = 60;

const REPOSITORY_ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname);

/** A running child process. */
export interface ProcessHandle extends AsyncDisposable {
  /** What the process is called in messages (the script or the command). */
  readonly name: string;
  readonly pid: number;
  /**
   * Resolves with the exit code once the process has exited and its output has been read to the end
   * (a process killed by a signal reports 128 + the signal number, as a shell does).
   */
  readonly exited: Promise<number>;
  /**
   * Resolves with the match of the first line (of stdout or stderr) matching `pattern` that comes
   * after the line a previous call matched, as `expect` does: each match consumes the output up to
   * it. Rejects, quoting the output, when `timeoutMs` passes or the process exits first.
   */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** The output collected so far (the last lines, stdout and stderr in the order read). */
  output(): string;
  /** Sends a signal; does nothing once the process has exited. */
  kill(signal?: Deno.Signal): void;
}

/** Options for starting a process. */
export interface SpawnOptions {
  /** Extra environment variables (the rest is inherited). */
  readonly env?: Readonly<Record<string, string>>;
  /** Working directory (default: the repository root). */
  readonly cwd?: string;
  /** The name used in messages (default: the command or script). */
  readonly name?: string;
  /** How many output lines to keep (default 5000). */
  readonly maxOutputLines?: number;
}

/** Options for starting a Deno script. */
export interface DenoScriptOptions extends SpawnOptions {
  /** Flags for `deno run` itself, before the script (e.g. `--v8-flags=…`). */
  readonly denoFlags?: readonly string[];
}

/**
 * Starts a Deno script of this repository (`server.ts`, `tools/udp_echo.ts`, a test fixture) with
 * `deno run --allow-all`, as the tests are allowed every permission. The path is relative to the
 * repository root unless absolute.
 */
export function denoScript(
  script: string,
  args: readonly string[] = [],
  options: DenoScriptOptions = {},
): ProcessHandle {
  const scriptPath = script.startsWith("/") ? script : REPOSITORY_ROOT + script;
  const flags = options.denoFlags ?? [];
  return spawnCommand(Deno.execPath(), ["run", "--allow-all", ...flags, scriptPath, ...args], {
    ...options,
    name: options.name ?? script,
    env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1", ...options.env },
  });
}

/**
 * Starts dnsmasq in the foreground on `hostname:port` alone, reading no system file, answering
 * `domain` and every name under it with `address`; the handle is as {@link spawnCommand}'s. Wait
 * for `/started, version/` before querying it.
 */
export function spawnDnsmasq(
  hostname: string,
  port: number,
  domain: string,
  address: string,
): ProcessHandle {
  return spawnCommand("dnsmasq", [
    "--no-daemon",
    "--conf-file=/dev/null",
    `--port=${port}`,
    `--listen-address=${hostname}`,
    "--bind-interfaces",
    "--no-resolv",
    "--no-hosts",
    "--pid-file=",
    `--address=/${domain}/${address}`,
  ], { name: "dnsmasq" });
}

/** Starts a program on PATH (socat, iperf, dnsmasq, dig); the handle is as {@link denoScript}. */
export function spawnCommand(
  command: string,
  args: readonly string[] = [],
  options: SpawnOptions = {},
): ProcessHandle {
  const name = options.name ?? command;
  const child = new Deno.Command(command, {
    args: [...args],
    cwd: options.cwd ?? REPOSITORY_ROOT,
    env: { NO_COLOR: "1", ...options.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();

  const output = new LineBuffer(options.maxOutputLines ?? DEFAULT_MAX_OUTPUT_LINES);
  const readers = Promise.all([
    collectLines(child.stdout, (line) => output.push(line)),
    collectLines(child.stderr, (line) => output.push(line)),
  ]);
  let exitCode: number | undefined;
  const exited = (async () => {
    const status = await child.status;
    await readers;
    exitCode = status.code;
    output.close();
    return status.code;
  })();

  const describe = (what: string) =>
    `${name} (pid ${child.pid}) ${what}; its last output:\n${output.tail(OUTPUT_LINES_IN_ERRORS)}`;

  const kill = (signal: Deno.Signal = "SIGTERM") => {
    if (exitCode !== undefined) return;
    try {
      child.kill(signal);
    } catch (error) {
      // It exited between the check and the kill.
      if (!(error instanceof TypeError)) throw error;
    }
  };

  return {
    name,
    pid: child.pid,
    exited,
    output: () => output.text(),
    kill,
    waitForLine(pattern, timeoutMs = DEFAULT_LINE_TIMEOUT_MS) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          output.unwatch(watcher);
          reject(new Error(describe(`printed no line matching ${pattern} within ${timeoutMs} ms`)));
        }, timeoutMs);
        const watcher: LineWatcher = {
          pattern,
          matched(match) {
            clearTimeout(timer);
            resolve(match);
          },
          closed() {
            clearTimeout(timer);
            reject(
              new Error(describe(`exited with code ${exitCode} before a line matched ${pattern}`)),
            );
          },
        };
        output.watch(watcher);
      });
    },
    async [Symbol.asyncDispose]() {
      if (exitCode === undefined) {
        kill("SIGTERM");
        const killTimer = setTimeout(() => kill("SIGKILL"), KILL_GRACE_MS);
        try {
          await exited;
        } finally {
          clearTimeout(killTimer);
        }
      }
      await exited;
    },
  };
}

/** Someone waiting for a line. */
interface LineWatcher {
  readonly pattern: RegExp;
  matched(match: RegExpMatchArray): void;
  closed(): void;
}

/** The last lines of a process's output, with a cursor that successive matches move forward. */
class LineBuffer {
  readonly #maxLines: number;
  #lines: string[] = [];
  /** Absolute number of the first kept line (lines before it were dropped). */
  #firstLine = 0;
  /** Absolute number of the first line not yet consumed by a match. */
  #cursor = 0;
  #watchers: LineWatcher[] = [];
  #closed = false;

  constructor(maxLines: number) {
    this.#maxLines = maxLines;
  }

  push(line: string): void {
    this.#lines.push(line.length > MAX_LINE_CHARS ? line.slice(0, MAX_LINE_CHARS) + "…" : line);
    if (this.#lines.length > this.#maxLines) {
      this.#lines.splice(0, this.#lines.length - this.#maxLines);
      this.#firstLine = this.#endLine() - this.#lines.length;
    }
    for (const watcher of [...this.#watchers]) this.#check(watcher);
  }

  watch(watcher: LineWatcher): void {
    if (this.#check(watcher)) return;
    if (this.#closed) watcher.closed();
    else this.#watchers.push(watcher);
  }

  unwatch(watcher: LineWatcher): void {
    this.#watchers = this.#watchers.filter((other) => other !== watcher);
  }

  /** The output is complete: waiting watchers will never match. */
  close(): void {
    this.#closed = true;
    for (const watcher of this.#watchers.splice(0)) watcher.closed();
  }

  text(): string {
    return this.#lines.join("\n");
  }

  tail(lineCount: number): string {
    return this.#lines.slice(-lineCount).map((line) => `  | ${line}`).join("\n");
  }

  #endLine(): number {
    return this.#firstLine + this.#lines.length;
  }

  /** Looks for the watcher's line after the cursor; on a match, consumes up to it and tells it. */
  #check(watcher: LineWatcher): boolean {
    const end = this.#endLine();
    for (let line = Math.max(this.#cursor, this.#firstLine); line < end; line++) {
      const match = this.#lines[line - this.#firstLine].match(watcher.pattern);
      if (match !== null) {
        this.#cursor = line + 1;
        this.unwatch(watcher);
        watcher.matched(match);
        return true;
      }
    }
    return false;
  }
}

/** Reads a byte stream to its end, calling `onLine` for each line (without its line ending). */
async function collectLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  let partial = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    const pieces = (partial + chunk).split("\n");
    partial = pieces.pop() ?? "";
    for (const piece of pieces) onLine(piece.endsWith("\r") ? piece.slice(0, -1) : piece);
  }
  if (partial !== "") onLine(partial);
}

/**
 * A UDP port that was free a moment ago (bound to port 0, read, closed). Another process may take
 * it before the caller uses it: never hand it to a child process that must bind it. Start the
 * repository's programs on port 0 and read their port with {@link waitForListening}, and outside
 * peers with {@link startOnFreePort}, which retries when the port was taken.
 */
export function freeUdpPort(hostname = "127.0.0.1"): number {
  return freeUdpPorts(1, hostname)[0];
}

/** `count` distinct UDP ports that were free a moment ago (see {@link freeUdpPort} for the race). */
export function freeUdpPorts(count: number, hostname = "127.0.0.1"): number[] {
  const sockets: Deno.DatagramConn[] = [];
  try {
    for (let index = 0; index < count; index++) {
      sockets.push(Deno.listenDatagram({ transport: "udp", hostname, port: 0 }));
    }
    return sockets.map((socket) => (socket.addr as Deno.NetAddr).port);
  } finally {
    for (const socket of sockets) socket.close();
  }
}

/** A program's start line and the port it says it listens on. */
export interface Listening {
  /** The whole start line. */
  readonly line: string;
  /** The port mpserver or mpclient listens on (`listen=HOST:PORT`), or mpbridge relays from. */
  readonly port: number;
}

/**
 * The start line of mpserver, mpclient or mpbridge: `mpserver … started listen=HOST:PORT …`,
 * `mpclient … started listen=HOST:PORT …` (or `listen=none`), `Relaying HOST:PORT to …`.
 */
const START_LINE =
  /(?:mp(?:server|client) \S+ started listen=|Relaying )(?:(\[[^\]]*\]|[^\s:]+):(\d+)|none\b).*/;

/**
 * Waits for the start line of mpserver, mpclient or mpbridge and reads the port it listens on (0
 * for an mpclient with `listen=none`). Start them on port 0 and ask this, rather than handing them a
 * port freed a moment ago that another process may have taken since.
 *
 * @example
 * ```ts ignore
 * await using server = denoScript("server.ts", ["127.0.0.1:0", "127.0.0.1", "7"]);
 * const { port } = await waitForListening(server);
 * ```
 */
export async function waitForListening(
  handle: ProcessHandle,
  timeoutMs = STARTUP_TIMEOUT_MS,
): Promise<Listening> {
  const match = await handle.waitForLine(START_LINE, timeoutMs);
  return { line: match[0], port: match[2] === undefined ? 0 : Number(match[2]) };
}

/** The ports of mpclient's forwards in its start line (`forwards=HOST:PORT→TARGET,…`), in order. */
export function forwardPorts(startLine: string): number[] {
  const forwards = / forwards=(\S+)/.exec(startLine)?.[1];
  if (forwards === undefined) throw new Error(`no forwards in the start line: ${startLine}`);
  return forwards.split(",").map((forward) => Number(/:(\d+)→/.exec(forward)?.[1]));
}

/** How many times {@link startOnFreePort} tries a fresh port. */
const FREE_PORT_ATTEMPTS = 5;

/**
 * Starts an outside peer that must be told its port (iperf, dnsmasq) on a port free a moment ago,
 * and waits for its `ready` line; when it exits first because the port was taken meanwhile ("in
 * use" in its output), starts it again on a fresh one. The caller owns the returned handle.
 */
export async function startOnFreePort(
  start: (port: number) => ProcessHandle,
  ready: RegExp,
  options: { readonly hostname?: string; readonly timeoutMs?: number } = {},
): Promise<{ readonly handle: ProcessHandle; readonly port: number }> {
  for (let attempt = 1;; attempt++) {
    const port = freeUdpPort(options.hostname);
    const handle = start(port);
    try {
      await handle.waitForLine(ready, options.timeoutMs ?? STARTUP_TIMEOUT_MS);
      return { handle, port };
    } catch (error) {
      await handle[Symbol.asyncDispose]();
      const taken = /in use/i.test(handle.output());
      if (!taken || attempt === FREE_PORT_ATTEMPTS) throw error;
    }
  }
}

/** True when `name` is an executable file on PATH (or, when it holds a slash, at that path). */
export function commandExists(name: string): boolean {
  const candidates = name.includes("/")
    ? [name]
    : (Deno.env.get("PATH") ?? "").split(":").filter((directory) => directory !== "").map((
      directory,
    ) => `${directory}/${name}`);
  return candidates.some((path) => {
    try {
      const info = Deno.statSync(path);
      return info.isFile && (info.mode === null || (info.mode & 0o111) !== 0);
    } catch {
      return false;
    }
  });
}

/** True when the tests run in CI (`CI=true`), where every outside tool must be installed. */
export const IN_CI = Deno.env.get("CI") === "true";

/**
 * The policy for tests that need outside tools, decided when the module loads: the reason to
 * ignore such a test here (some of `tools` are missing; printed as a console line), or undefined
 * when it must run. In CI it is always undefined: the test runs, and {@link requireTools} inside
 * it fails it, naming what .ci/run must install. `isMissing` checks a tool that is not a program
 * on PATH (default: {@link commandExists} fails).
 *
 * @example
 * ```ts ignore
 * const iperfMissing = toolsMissing(["iperf"]);
 * Deno.test({ name: "carries iperf traffic", ignore: iperfMissing !== undefined }, async () => {
 *   requireTools(["iperf"]);
 *   // ...
 * });
 * ```
 */
export function toolsMissing(
  tools: readonly string[],
  options: { readonly ci?: boolean; readonly isMissing?: (tool: string) => boolean } = {},
): string | undefined {
  const isMissing = options.isMissing ?? ((tool: string) => !commandExists(tool));
  const absent = tools.filter(isMissing);
  if (absent.length === 0 || (options.ci ?? IN_CI)) return undefined;
  const reason = `${absent.join(", ")} not installed (install to run this test; CI does)`;
  console.log(`ignored: ${reason}`);
  return reason;
}

/**
 * Fails the test, naming what .ci/run must install, when one of `tools` is not on PATH: the first
 * line of a test whose `ignore` came from {@link toolsMissing}, so that in CI it fails rather than
 * passes having checked nothing.
 */
export function requireTools(tools: readonly string[]): void {
  const absent = tools.filter((tool) => !commandExists(tool));
  if (absent.length > 0) {
    throw new Error(
      `${absent.join(", ")} not on PATH, and this test needs it: install it (CI does, in .ci/run)`,
    );
  }
}

/**
 * Resolves or rejects as `promise` does, or rejects with "`what` did not finish within `ms` ms" if
 * it takes longer. The promise itself is not cancelled.
 */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Prints a test's measured figures: a title, then one indented line each. */
export function show(title: string, lines: readonly string[]): void {
  console.log(`${title}\n${lines.map((line) => `  ${line}`).join("\n")}`);
}

/** Polls a process's output until `pattern` (global) matches `count` times. */
export async function waitForCount(
  handle: ProcessHandle,
  pattern: RegExp,
  count: number,
  timeoutMs: number,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while ((handle.output().match(pattern) ?? []).length < count) {
    if (performance.now() > deadline) {
      throw new Error(
        `${handle.name} printed ${pattern} fewer than ${count} times within ${timeoutMs} ms:\n` +
          handle.output(),
      );
    }
    await delay(20);
  }
}

/** Resolves after `ms`. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
