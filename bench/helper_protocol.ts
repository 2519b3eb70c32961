/**
 * What the benchmark's helper processes share: the datagram they number, and the one-JSON-object-
 * per-line conversation on stdin and stdout through which `bench/tunnel_bench.ts` drives them.
 *
 * A benchmark datagram is a traffic datagram of `tools/traffic.ts` without the pattern (checking a
 * 1200-byte pattern in JavaScript would cost the sink more than receiving it):
 *
 * | offset | size | field                                      |
 * | ------ | ---- | ------------------------------------------ |
 * | 0      | 4    | magic `0x4D505453` ("MPTS"), big-endian     |
 * | 4      | 4    | stream id (u32)                             |
 * | 8      | 8    | sequence number (u64, below 2^53), from 0  |
 * | 16     | …    | zeros                                       |
 */

import { TRAFFIC_MAGIC } from "../tools/traffic.ts";

/** The smallest benchmark datagram: magic, stream id, sequence number. */
export const BENCH_HEADER_BYTES = 16;

const TWO_TO_32 = 2 ** 32;

/** Writes magic and stream id into a datagram buffer; the sequence number is set per send. */
export function prepareDatagram(buffer: Uint8Array, streamId: number): DataView {
  const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  view.setUint32(0, TRAFFIC_MAGIC);
  view.setUint32(4, streamId >>> 0);
  return view;
}

/** Sets the sequence number of a prepared datagram. */
export function setSequence(view: DataView, sequence: number): void {
  view.setUint32(8, Math.floor(sequence / TWO_TO_32));
  view.setUint32(12, sequence >>> 0);
}

/** Reads stream id and sequence number, or returns undefined for anything else. */
export function readDatagram(
  datagram: Uint8Array,
): { readonly streamId: number; readonly sequence: number } | undefined {
  if (datagram.length < BENCH_HEADER_BYTES) return undefined;
  const view = new DataView(datagram.buffer, datagram.byteOffset, BENCH_HEADER_BYTES);
  if (view.getUint32(0) !== TRAFFIC_MAGIC) return undefined;
  return {
    streamId: view.getUint32(4),
    sequence: view.getUint32(8) * TWO_TO_32 + view.getUint32(12),
  };
}

/**
 * Reads requests, one JSON object per line, from stdin and writes each answer as one JSON line to
 * stdout, in order. Returns when stdin closes (the benchmark went away).
 */
export async function serveRequests(
  handle: (request: Record<string, unknown>) => unknown | Promise<unknown>,
): Promise<void> {
  const encoder = new TextEncoder();
  let partial = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    const lines = (partial + chunk).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      if (line.trim() === "") continue;
      const answer = await handle(JSON.parse(line));
      await writeAll(encoder.encode(JSON.stringify(answer) + "\n"));
    }
  }
}

async function writeAll(bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await Deno.stdout.write(bytes.subarray(written));
}

/** A helper process (`bench/blast.ts`, `bench/sink.ts`) and the conversation with it. */
export interface HelperProcess extends AsyncDisposable {
  readonly pid: number;
  /** Resolves with the first stderr line matching `pattern`. */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Sends one request and resolves with its answer (requests are answered in order). */
  request<T = Record<string, number>>(request: Record<string, unknown>): Promise<T>;
}

const KILL_GRACE_MS = 2000;

/** Starts `deno run --allow-all SCRIPT ARGS` with a piped stdin and stdout for requests. */
export function startHelper(scriptPath: string, args: readonly string[] = []): HelperProcess {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", scriptPath, ...args],
    env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  const encoder = new TextEncoder();
  const waitingForAnswer: ((line: string) => void)[] = [];
  const errorLines: string[] = [];
  const lineWatchers = new Set<(line: string) => void>();
  let exited = false;
  const status = child.status.then((value) => {
    exited = true;
    return value;
  });
  const readLines = async (stream: ReadableStream<Uint8Array>, onLine: (line: string) => void) => {
    let partial = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      const lines = (partial + chunk).split("\n");
      partial = lines.pop() ?? "";
      lines.forEach(onLine);
    }
  };
  const readers = Promise.all([
    readLines(child.stdout, (line) => {
      const waiter = waitingForAnswer.shift();
      if (waiter) waiter(line);
      else errorLines.push(`(stdout) ${line}`);
    }),
    readLines(child.stderr, (line) => {
      errorLines.push(line);
      if (errorLines.length > 50) errorLines.shift();
      for (const watcher of lineWatchers) watcher(line);
    }),
  ]);
  const describe = () => `${scriptPath} (pid ${child.pid}); its stderr:\n${errorLines.join("\n")}`;
  return {
    pid: child.pid,
    waitForLine(pattern, timeoutMs = 10_000) {
      for (const line of errorLines) {
        const match = line.match(pattern);
        if (match) return Promise.resolve(match);
      }
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          lineWatchers.delete(watcher);
          reject(new Error(`no line matching ${pattern} from ${describe()}`));
        }, timeoutMs);
        const watcher = (line: string) => {
          const match = line.match(pattern);
          if (!match) return;
          clearTimeout(timer);
          lineWatchers.delete(watcher);
          resolve(match);
        };
        lineWatchers.add(watcher);
      });
    },
    async request<T>(request: Record<string, unknown>): Promise<T> {
      if (exited) throw new Error(`the helper exited: ${describe()}`);
      const answer = new Promise<string>((resolve, reject) => {
        waitingForAnswer.push(resolve);
        status.then(() => reject(new Error(`the helper exited: ${describe()}`)));
      });
      await writer.write(encoder.encode(JSON.stringify(request) + "\n"));
      return JSON.parse(await answer) as T;
    },
    async [Symbol.asyncDispose]() {
      await writer.close().catch(() => {});
      const killTimer = setTimeout(() => {
        if (!exited) child.kill("SIGKILL");
      }, KILL_GRACE_MS);
      try {
        await status;
        await readers;
      } finally {
        clearTimeout(killTimer);
      }
    },
  };
}
