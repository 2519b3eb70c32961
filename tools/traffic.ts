/**
 * A measuring traffic stream over UDP, for the demo, the end-to-end tests, the benchmarks and
 * anyone checking their own tunnel: {@link runTrafficStream} sends numbered, time-stamped datagrams
 * to an address and measures the echoes that come back; {@link runUdpEcho} is the echo target to
 * put behind the tunnel; {@link runTrafficSink} measures one direction alone, as a target that does
 * not reply.
 *
 * Every datagram is self-checking:
 *
 * | offset | size | field                                                                  |
 * | ------ | ---- | ---------------------------------------------------------------------- |
 * | 0      | 4    | magic `0x4D505453` ("MPTS"), big-endian                                |
 * | 4      | 4    | stream id (u32)                                                        |
 * | 8      | 8    | sequence number (u64, below 2^53), from 0                              |
 * | 16     | 8    | send time: the sender's `performance.now()` in ms (float64)            |
 * | 24     | …    | pattern: a fixed pseudo-random table read from an offset hashed from   |
 * |        |      | bytes 4..24, so a change to the header or the payload shows as corrupt |
 *
 * The send time is only meaningful to the process that wrote it (each process has its own
 * `performance.now()` origin), so round-trip times come from the echo, never from the sink.
 */

import { formatHostPort, type HostPort } from "../lib/base/address.ts";
import { bindUdp, classifySendError } from "../lib/io/udp.ts";
import {
  type DatagramTransport,
  MAX_UDP_PAYLOAD_BYTES,
  type UdpAddress,
  udpAddress,
} from "../lib/io/transport.ts";

/** The first four bytes of every traffic datagram: "MPTS". */
export const TRAFFIC_MAGIC = 0x4d505453;
/** The header size, and so the smallest traffic datagram. */
export const TRAFFIC_HEADER_BYTES = 24;
/** Datagram size when none is asked for. */
export const DEFAULT_TRAFFIC_SIZE_BYTES = 64;
/** Send interval when neither an interval nor a rate is asked for (100 datagrams per second). */
export const DEFAULT_TRAFFIC_INTERVAL_MS = 10;
/** How long a stream waits for the last echoes after it stopped sending. */
export const DEFAULT_DRAIN_MS = 1000;
/** How often the progress callback is called. */
export const DEFAULT_PROGRESS_INTERVAL_MS = 250;

/** The sink refuses sequence numbers above this, so no datagram makes it allocate much. */
const MAX_SINK_SEQUENCE = 2 ** 28;
/** The sink tracks at most this many streams; datagrams of further streams count as foreign. */
const MAX_SINK_STREAMS = 1024;
/** The echo target counts distinct senders up to this many, then stops adding. */
const MAX_COUNTED_SENDERS = 65536;
/** The echo target queues at most this many replies; while the queue is full it stops receiving. */
const MAX_QUEUED_ECHOES = 1024;

const PATTERN_OFFSETS = 65536;
const MAX_SEQUENCE_HIGH_WORD = 2 ** 21; // high word of a sequence number below 2^53
const TWO_TO_32 = 2 ** 32;

// -------------------------------------------------------------------------------------------------
// Datagram format

/** The header of a traffic datagram. */
export interface TrafficHeader {
  readonly streamId: number;
  readonly sequence: number;
  /** The sender's `performance.now()` when it sent the datagram, in ms. */
  readonly sentAtMs: number;
}

let patternTable: Uint8Array | undefined;

/** The pattern: a fixed xorshift sequence, long enough to read a full payload at any offset. */
function pattern(): Uint8Array {
  if (patternTable === undefined) {
    patternTable = new Uint8Array(PATTERN_OFFSETS + MAX_UDP_PAYLOAD_BYTES);
    let state = 0x2545f491;
    for (let index = 0; index < patternTable.length; index++) {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      patternTable[index] = state & 0xff;
    }
  }
  return patternTable;
}

/** FNV-1a over the header after the magic, folded to an offset into the pattern table. */
function patternOffset(datagram: Uint8Array): number {
  let hash = 0x811c9dc5;
  for (let index = 4; index < TRAFFIC_HEADER_BYTES; index++) {
    hash = Math.imul(hash ^ datagram[index], 0x01000193);
  }
  return ((hash >>> 16) ^ hash) & (PATTERN_OFFSETS - 1);
}

/**
 * Writes a traffic datagram over the whole of `buffer` (its length is the datagram size, at least
 * {@link TRAFFIC_HEADER_BYTES}).
 */
export function encodeTrafficDatagram(buffer: Uint8Array, header: TrafficHeader): void {
  if (buffer.length < TRAFFIC_HEADER_BYTES || buffer.length > MAX_UDP_PAYLOAD_BYTES) {
    throw new RangeError(`a traffic datagram is 24 to ${MAX_UDP_PAYLOAD_BYTES} bytes`);
  }
  const view = new DataView(buffer.buffer, buffer.byteOffset, TRAFFIC_HEADER_BYTES);
  view.setUint32(0, TRAFFIC_MAGIC);
  view.setUint32(4, header.streamId >>> 0);
  view.setUint32(8, Math.floor(header.sequence / TWO_TO_32));
  view.setUint32(12, header.sequence >>> 0);
  view.setFloat64(16, header.sentAtMs);
  const offset = patternOffset(buffer);
  buffer.set(
    pattern().subarray(offset, offset + buffer.length - TRAFFIC_HEADER_BYTES),
    TRAFFIC_HEADER_BYTES,
  );
}

/**
 * Reads the header of a traffic datagram, or returns undefined when the bytes are not one (too
 * short, wrong magic, impossible sequence number). Does not check the pattern: see
 * {@link hasTrafficPattern}.
 */
export function decodeTrafficDatagram(datagram: Uint8Array): TrafficHeader | undefined {
  if (datagram.length < TRAFFIC_HEADER_BYTES) return undefined;
  const view = new DataView(datagram.buffer, datagram.byteOffset, TRAFFIC_HEADER_BYTES);
  if (view.getUint32(0) !== TRAFFIC_MAGIC) return undefined;
  const sequenceHigh = view.getUint32(8);
  if (sequenceHigh >= MAX_SEQUENCE_HIGH_WORD) return undefined;
  return {
    streamId: view.getUint32(4),
    sequence: sequenceHigh * TWO_TO_32 + view.getUint32(12),
    sentAtMs: view.getFloat64(16),
  };
}

/** True when the bytes after the header are the pattern the header calls for. */
export function hasTrafficPattern(datagram: Uint8Array): boolean {
  const table = pattern();
  const offset = patternOffset(datagram) - TRAFFIC_HEADER_BYTES;
  for (let index = TRAFFIC_HEADER_BYTES; index < datagram.length; index++) {
    if (datagram[index] !== table[offset + index]) return false;
  }
  return true;
}

// -------------------------------------------------------------------------------------------------
// Measurement (no I/O: the drivers below pass arrivals and the time in)

/** Which sequence numbers have arrived: one bit each, grown as higher numbers arrive. */
class SequenceSet {
  #words = new Uint32Array(64);

  /** Adds `sequence`; returns false when it was already there. */
  add(sequence: number): boolean {
    const word = Math.floor(sequence / 32);
    if (word >= this.#words.length) {
      let length = this.#words.length;
      while (length <= word) length *= 2;
      const grown = new Uint32Array(length);
      grown.set(this.#words);
      this.#words = grown;
    }
    const bit = 1 << (sequence % 32);
    if ((this.#words[word] & bit) !== 0) return false;
    this.#words[word] |= bit;
    return true;
  }
}

/** Counts the arrivals of one stream and the longest silence between them. */
class ArrivalTally {
  received = 0;
  duplicates = 0;
  corrupted = 0;
  outOfOrder = 0;
  highestSequence = -1;
  /** When the silence being measured began: the last unique arrival (or the start of sending). */
  lastArrivalAt: number | undefined;
  firstArrivalAt: number | undefined;
  longestSilenceMs = 0;
  longestSilenceStartedAt: number | undefined;
  #seen = new SequenceSet();
  /** Arrivals after this time do not lengthen a silence (the sender had stopped). */
  #countSilenceUntil = Infinity;

  /** Starts the silence clock before the first arrival (the stream's first send). */
  startAt(now: number): void {
    this.lastArrivalAt = now;
  }

  /** Stops the silence clock: time after `now` is not silence, as nothing was being sent. */
  stopAt(now: number): void {
    this.#countSilenceUntil = now;
    this.#noteSilenceUntil(now);
  }

  /** Records a well-formed arrival; returns whether it was the first copy. */
  record(sequence: number, now: number): "new" | "duplicate" {
    if (!this.#seen.add(sequence)) {
      this.duplicates++;
      return "duplicate";
    }
    this.received++;
    if (sequence < this.highestSequence) this.outOfOrder++;
    else this.highestSequence = sequence;
    this.firstArrivalAt ??= now;
    this.#noteSilenceUntil(now);
    if (this.lastArrivalAt === undefined || now > this.lastArrivalAt) this.lastArrivalAt = now;
    return "new";
  }

  #noteSilenceUntil(now: number): void {
    if (this.lastArrivalAt === undefined) return;
    const silenceMs = Math.min(now, this.#countSilenceUntil) - this.lastArrivalAt;
    if (silenceMs > this.longestSilenceMs) {
      this.longestSilenceMs = silenceMs;
      this.longestSilenceStartedAt = this.lastArrivalAt;
    }
  }
}

/** Round-trip times in logarithmic buckets (about 1 % wide): percentiles cost nothing to read. */
class LatencyHistogram {
  static readonly BUCKETS_PER_DOUBLING = 64;
  #counts = new Uint32Array(LatencyHistogram.BUCKETS_PER_DOUBLING * 40);
  count = 0;
  maxMs: number | undefined;

  record(latencyMs: number): void {
    const microseconds = latencyMs * 1000;
    const index = microseconds < 1 ? 0 : Math.min(
      this.#counts.length - 1,
      1 + Math.floor(Math.log2(microseconds) * LatencyHistogram.BUCKETS_PER_DOUBLING),
    );
    this.#counts[index]++;
    this.count++;
    if (this.maxMs === undefined || latencyMs > this.maxMs) this.maxMs = latencyMs;
  }

  /** The latency below which a fraction `quantile` of the samples fall (bucket middle, in ms). */
  quantileMs(quantile: number): number | undefined {
    if (this.count === 0 || this.maxMs === undefined) return undefined;
    const rank = Math.max(1, Math.ceil(quantile * this.count));
    let cumulative = 0;
    for (let index = 0; index < this.#counts.length; index++) {
      cumulative += this.#counts[index];
      if (cumulative >= rank) {
        if (index === 0) return Math.min(this.maxMs, 0.0005);
        const middle = 2 ** ((index - 0.5) / LatencyHistogram.BUCKETS_PER_DOUBLING) / 1000;
        return Math.min(this.maxMs, middle);
      }
    }
    return this.maxMs;
  }
}

// -------------------------------------------------------------------------------------------------
// Timing for the drivers

/** Waits `ms` (at once when ≤ 0); wakes early when `signal` aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const wake = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", wake);
      resolve();
    };
    const timer = setTimeout(wake, Math.max(0, ms));
    signal?.addEventListener("abort", wake, { once: true });
  });
}

function isClosedSocketError(error: unknown): boolean {
  return error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted;
}

/** An address to bind a stream's socket to, in the target's family and on loopback if it is. */
function defaultBindFor(target: HostPort): HostPort {
  if (target.hostname.includes(":")) {
    return { hostname: target.hostname === "::1" ? "::1" : "::", port: 0 };
  }
  if (target.hostname.startsWith("127.") || target.hostname === "localhost") {
    return { hostname: "127.0.0.1", port: 0 };
  }
  return { hostname: "0.0.0.0", port: 0 };
}

// -------------------------------------------------------------------------------------------------
// The echo target

/** What an echo target has seen; the numbers change as it runs. */
export interface EchoCounters {
  /** Datagrams received (each is sent back). */
  readonly datagrams: number;
  /** Bytes received. */
  readonly bytes: number;
  /** Distinct sender addresses seen (counted up to 65536). */
  readonly senders: number;
  /** Replies that could not be sent. */
  readonly sendErrors: number;
}

/** A running echo target. */
export interface UdpEcho {
  /** The bound address (with the port resolved when 0 was asked for). */
  readonly address: UdpAddress;
  /** Live counters. */
  readonly counters: EchoCounters;
  /** Closes the socket and waits for the replies in flight. */
  stop(): Promise<void>;
}

/** Options of {@link runUdpEcho}. */
export interface UdpEchoOptions {
  /** Where to listen (port 0 for any free port). */
  readonly listen: HostPort;
  /** A socket to use instead of binding `listen`; the echo closes it when stopped. */
  readonly transport?: DatagramTransport;
}

/**
 * Starts a UDP echo target: each datagram goes back, unchanged, to the address that sent it.
 *
 * @example
 * ```ts
 * import { runUdpEcho } from "./traffic.ts";
 * const echo = runUdpEcho({ listen: { hostname: "127.0.0.1", port: 0 } });
 * console.log(`echo on port ${echo.address.port}`);
 * await echo.stop();
 * ```
 */
export function runUdpEcho(options: UdpEchoOptions): UdpEcho {
  const transport = options.transport ?? bindUdp(options.listen);
  const counters = { datagrams: 0, bytes: 0, senders: 0, sendErrors: 0 };
  const senders = new Set<string>();
  // Replies go out one at a time from a queue: concurrent sends on one socket can overtake each
  // other, and the echo must not reorder what it was sent.
  const queue: { readonly datagram: Uint8Array; readonly to: UdpAddress }[] = [];
  let wakeWriter: (() => void) | undefined;
  let wakeReader: (() => void) | undefined;
  let stopping = false;

  const writeLoop = (async () => {
    while (true) {
      const reply = queue.shift();
      if (reply === undefined) {
        if (stopping) return;
        await new Promise<void>((resolve) => wakeWriter = resolve);
        continue;
      }
      wakeReader?.();
      try {
        await transport.send(reply.datagram, reply.to);
      } catch (error) {
        if (stopping && isClosedSocketError(error)) return;
        if (classifySendError(error) === undefined) throw error;
        counters.sendErrors++;
      }
    }
  })();

  const readLoop = (async () => {
    const buffer = new Uint8Array(MAX_UDP_PAYLOAD_BYTES);
    while (!stopping) {
      let datagram: Uint8Array;
      let from: UdpAddress;
      try {
        [datagram, from] = await transport.receive(buffer);
      } catch (error) {
        if (stopping || isClosedSocketError(error)) return;
        continue; // e.g. an ICMP error reported on the socket: nothing to echo
      }
      counters.datagrams++;
      counters.bytes += datagram.length;
      if (senders.size < MAX_COUNTED_SENDERS) {
        senders.add(formatHostPort(from));
        counters.senders = senders.size;
      }
      // A copy: the receive buffer is reused before the reply is sent.
      queue.push({ datagram: datagram.slice(), to: from });
      wakeWriter?.();
      while (queue.length >= MAX_QUEUED_ECHOES && !stopping) {
        await new Promise<void>((resolve) => wakeReader = resolve);
      }
    }
  })();

  return {
    address: transport.localAddress,
    counters,
    async stop() {
      if (!stopping) {
        stopping = true;
        queue.length = 0;
        transport.close();
        wakeWriter?.();
        wakeReader?.();
      }
      await Promise.all([readLoop, writeLoop]);
    },
  };
}

// -------------------------------------------------------------------------------------------------
// The measuring stream

/** Options of {@link runTrafficStream}. */
export interface TrafficStreamOptions {
  /** Where to send (the tunnel's entry, or an echo target directly). */
  readonly target: HostPort;
  /** Datagram size in bytes, 24 to 65507 (default 64). */
  readonly sizeBytes?: number;
  /** Time between datagrams in ms; below the timer resolution several are sent per tick. */
  readonly intervalMs?: number;
  /** Datagrams per second (instead of `intervalMs`). */
  readonly ratePps?: number;
  /** Send `ceil(durationMs / intervalMs)` datagrams (taking longer if the rate cannot be met). */
  readonly durationMs?: number;
  /** Stop sending after this many datagrams. */
  readonly count?: number;
  /** Stop sending when this aborts (the drain still runs). */
  readonly signal?: AbortSignal;
  /** After sending, wait this long at most for the missing echoes (default 1000; 0 for one-way). */
  readonly drainMs?: number;
  /** The stream id carried in each datagram (default random). */
  readonly streamId?: number;
  /** Where to bind the socket (default: port 0 on loopback or any, in the target's family). */
  readonly bind?: HostPort;
  /** A socket to use instead of binding one; the stream closes it when done. */
  readonly transport?: DatagramTransport;
  /** Called every `progressIntervalMs` while the stream runs, with the figures so far. */
  readonly onProgress?: (progress: StreamReport) => void;
  /** How often `onProgress` is called (default 250 ms). */
  readonly progressIntervalMs?: number;
}

/** What a stream measured. In progress reports the counts are the figures so far. */
export interface StreamReport {
  readonly streamId: number;
  /** The address sent to, as `HOST:PORT`. */
  readonly target: string;
  readonly sizeBytes: number;
  /** The planned time between datagrams. */
  readonly intervalMs: number;
  readonly phase: "sending" | "draining" | "done";
  /** Time since the first send. */
  readonly elapsedMs: number;
  /** Time from the first send to the last one. */
  readonly sendingMs: number;
  readonly sent: number;
  /** Distinct datagrams echoed intact. */
  readonly received: number;
  /** Extra copies of datagrams already received. */
  readonly duplicates: number;
  /** Echoes of this stream whose size, header or pattern was damaged (not counted as received). */
  readonly corrupted: number;
  /** First copies that arrived after a higher sequence number. */
  readonly outOfOrder: number;
  /** Datagrams that were not of this stream (not traffic at all, or another stream id). */
  readonly foreign: number;
  /** Sends that failed (unreachable, no buffer space, …). */
  readonly sendErrors: number;
  /** `sent − received`: includes the datagrams still in flight until the stream is done. */
  readonly lost: number;
  /** `lost / sent` (0 before anything is sent). */
  readonly lossRatio: number;
  readonly rttP50Ms: number | undefined;
  readonly rttP99Ms: number | undefined;
  readonly rttMaxMs: number | undefined;
  /** The longest time without a new echo while the stream was sending (from its first send). */
  readonly longestSilenceMs: number;
  /** When that silence began, in ms after the first send (undefined when there was none). */
  readonly longestSilenceAtMs: number | undefined;
  /** Time since the last new echo (or the first send), while sending; 0 after. */
  readonly currentSilenceMs: number;
}

/**
 * Sends a measuring stream to `target` and measures the echoes: loss, duplicates, corruption,
 * reordering, round-trip times and the longest silence. Sends at an even rate: when the interval is
 * shorter than the timer resolution it sends the datagrams due at each tick together. Sends go out
 * one at a time, so the stream never reorders its own datagrams; a rate above what one socket can
 * send shows as a longer `sendingMs`, not as a burst.
 *
 * @example
 * ```ts
 * import { formatStreamReport, runTrafficStream, runUdpEcho } from "./traffic.ts";
 * const echo = runUdpEcho({ listen: { hostname: "127.0.0.1", port: 0 } });
 * try {
 *   const report = await runTrafficStream({
 *     target: { hostname: "127.0.0.1", port: echo.address.port },
 *     ratePps: 1000,
 *     count: 100,
 *   });
 *   console.log(formatStreamReport(report).join("\n"));
 * } finally {
 *   await echo.stop();
 * }
 * ```
 */
export async function runTrafficStream(options: TrafficStreamOptions): Promise<StreamReport> {
  const sizeBytes = options.sizeBytes ?? DEFAULT_TRAFFIC_SIZE_BYTES;
  if (
    !Number.isInteger(sizeBytes) || sizeBytes < TRAFFIC_HEADER_BYTES ||
    sizeBytes > MAX_UDP_PAYLOAD_BYTES
  ) {
    throw new RangeError(`sizeBytes must be an integer from 24 to ${MAX_UDP_PAYLOAD_BYTES}`);
  }
  const intervalMs = resolveIntervalMs(options);
  let plannedCount = Infinity;
  if (options.count !== undefined) {
    if (!Number.isInteger(options.count) || options.count < 0) {
      throw new RangeError("count must be a whole number");
    }
    plannedCount = options.count;
  }
  if (options.durationMs !== undefined) {
    if (!(options.durationMs >= 0)) throw new RangeError("durationMs must be 0 or more");
    plannedCount = Math.min(plannedCount, Math.ceil(options.durationMs / intervalMs));
  }
  if (plannedCount === Infinity && options.signal === undefined) {
    throw new RangeError("a stream needs a count, a durationMs or a signal to stop");
  }
  const drainMs = options.drainMs ?? DEFAULT_DRAIN_MS;
  const progressIntervalMs = options.progressIntervalMs ?? DEFAULT_PROGRESS_INTERVAL_MS;
  const streamId = (options.streamId ?? crypto.getRandomValues(new Uint32Array(1))[0]) >>> 0;
  const targetText = formatHostPort(options.target);
  const targetAddress = udpAddress(options.target);

  const transport = options.transport ?? bindUdp(options.bind ?? defaultBindFor(options.target));
  // One buffer: sends go out one at a time (concurrent sends on one socket can overtake each other,
  // which would show as reordering that the tunnel did not cause), so it is free again after each.
  const buffer = new Uint8Array(sizeBytes);
  const tally = new ArrivalTally();
  const rtt = new LatencyHistogram();
  let phase: StreamReport["phase"] = "sending";
  let sent = 0;
  let foreign = 0;
  let sendErrors = 0;
  let closing = false;
  const startedAt = performance.now();
  let lastSentAt = startedAt;
  const allEchoed = new AbortController();
  tally.startAt(startedAt);

  const report = (now: number): StreamReport => {
    const lost = sent - tally.received;
    const silenceStartedAt = tally.lastArrivalAt ?? startedAt;
    const currentSilenceMs = phase === "sending" ? now - silenceStartedAt : 0;
    const currentIsLongest = currentSilenceMs > tally.longestSilenceMs;
    const longestSilenceStartedAt = currentIsLongest
      ? silenceStartedAt
      : tally.longestSilenceStartedAt;
    return {
      streamId,
      target: targetText,
      sizeBytes,
      intervalMs,
      phase,
      elapsedMs: now - startedAt,
      sendingMs: lastSentAt - startedAt,
      sent,
      received: tally.received,
      duplicates: tally.duplicates,
      corrupted: tally.corrupted,
      outOfOrder: tally.outOfOrder,
      foreign,
      sendErrors,
      lost,
      lossRatio: sent === 0 ? 0 : lost / sent,
      rttP50Ms: rtt.quantileMs(0.5),
      rttP99Ms: rtt.quantileMs(0.99),
      rttMaxMs: rtt.maxMs,
      longestSilenceMs: currentIsLongest ? currentSilenceMs : tally.longestSilenceMs,
      longestSilenceAtMs: longestSilenceStartedAt === undefined
        ? undefined
        : longestSilenceStartedAt - startedAt,
      currentSilenceMs,
    };
  };

  const onDatagram = (datagram: Uint8Array, now: number) => {
    const header = decodeTrafficDatagram(datagram);
    if (header === undefined || header.streamId !== streamId) {
      foreign++;
      return;
    }
    if (
      datagram.length !== sizeBytes || header.sequence >= sent ||
      !(header.sentAtMs >= startedAt && header.sentAtMs <= now) || !hasTrafficPattern(datagram)
    ) {
      tally.corrupted++;
      return;
    }
    if (tally.record(header.sequence, now) === "new") {
      rtt.record(now - header.sentAtMs);
      if (phase === "draining" && tally.received === sent) allEchoed.abort();
    }
  };

  const receiveLoop = (async () => {
    const buffer = new Uint8Array(MAX_UDP_PAYLOAD_BYTES);
    while (true) {
      let datagram: Uint8Array;
      try {
        [datagram] = await transport.receive(buffer);
      } catch (error) {
        if (closing || isClosedSocketError(error)) return;
        continue; // an error queued on the socket (e.g. ICMP): the stream goes on
      }
      onDatagram(datagram, performance.now());
    }
  })();

  const progressTimer = options.onProgress === undefined
    ? undefined
    : setInterval(() => options.onProgress?.(report(performance.now())), progressIntervalMs);

  try {
    const signal = options.signal;
    while (sent < plannedCount && !signal?.aborted) {
      const dueCount = Math.min(
        plannedCount,
        Math.floor((performance.now() - startedAt) / intervalMs) + 1,
      );
      while (sent < dueCount && !signal?.aborted) {
        lastSentAt = performance.now();
        encodeTrafficDatagram(buffer, { streamId, sequence: sent, sentAtMs: lastSentAt });
        sent++;
        try {
          await transport.send(buffer, targetAddress);
        } catch (error) {
          if (classifySendError(error) === undefined) throw error;
          sendErrors++;
        }
      }
      if (sent >= plannedCount) break;
      await sleep(startedAt + sent * intervalMs - performance.now(), signal);
    }
    tally.stopAt(performance.now());
    phase = "draining";
    if (tally.received < sent && drainMs > 0) await sleep(drainMs, allEchoed.signal);
  } finally {
    if (progressTimer !== undefined) clearInterval(progressTimer);
    closing = true;
    transport.close();
    await receiveLoop;
  }
  phase = "done";
  return report(performance.now());
}

function resolveIntervalMs(options: TrafficStreamOptions): number {
  if (options.intervalMs !== undefined && options.ratePps !== undefined) {
    throw new RangeError("give intervalMs or ratePps, not both");
  }
  if (options.ratePps !== undefined) {
    if (!(options.ratePps > 0 && Number.isFinite(options.ratePps))) {
      throw new RangeError("ratePps must be a positive number");
    }
    return 1000 / options.ratePps;
  }
  const intervalMs = options.intervalMs ?? DEFAULT_TRAFFIC_INTERVAL_MS;
  if (!(intervalMs > 0 && Number.isFinite(intervalMs))) {
    throw new RangeError("intervalMs must be a positive number");
  }
  return intervalMs;
}

// -------------------------------------------------------------------------------------------------
// The one-way sink

/** What a sink measured of one stream. */
export interface SinkStreamReport {
  readonly streamId: number;
  /** Distinct datagrams received intact. */
  readonly received: number;
  readonly duplicates: number;
  /** Datagrams of this stream with a damaged pattern or an impossible sequence number. */
  readonly corrupted: number;
  readonly outOfOrder: number;
  /** The highest sequence number received (−1 before any). */
  readonly highestSequence: number;
  /** Sequence numbers below the highest that have not arrived: a lower bound on the loss. */
  readonly missing: number;
  /** The longest time between two new datagrams (the sink cannot see when the sender stopped). */
  readonly longestSilenceMs: number;
  /** When that silence began, in ms after the stream's first arrival. */
  readonly longestSilenceAtMs: number | undefined;
  /** Time since the last new datagram. */
  readonly sinceLastMs: number;
}

/** What a sink measured. */
export interface SinkReport {
  /** The address the sink listens on, as `HOST:PORT`. */
  readonly address: string;
  /** Datagrams that were not traffic datagrams (or of one stream too many). */
  readonly foreign: number;
  /** The streams seen, in order of first arrival. */
  readonly streams: readonly SinkStreamReport[];
}

/** A running sink. */
export interface TrafficSink {
  /** The bound address (with the port resolved when 0 was asked for). */
  readonly address: UdpAddress;
  /** The figures so far. */
  report(): SinkReport;
  /** The figures so far for one stream, or undefined before it arrives. */
  stream(streamId: number): SinkStreamReport | undefined;
  /**
   * Resolves true once `count` distinct datagrams have arrived (of `streamId`, or of all streams
   * together when it is not given), or false after `timeoutMs`.
   */
  waitForReceived(count: number, timeoutMs: number, streamId?: number): Promise<boolean>;
  /** Closes the socket and returns the final figures. */
  stop(): Promise<SinkReport>;
}

/** Options of {@link runTrafficSink}. */
export interface TrafficSinkOptions {
  /** Where to listen (port 0 for any free port). */
  readonly listen: HostPort;
  /** A socket to use instead of binding `listen`; the sink closes it when stopped. */
  readonly transport?: DatagramTransport;
}

/**
 * Starts a receiver that measures the traffic streams sent to it without replying, so one direction
 * of a tunnel can be measured alone (application → tunnel → sink). Send to it with
 * {@link runTrafficStream} and `drainMs: 0`; compare the stream's `sent` with the sink's
 * `received`.
 *
 * @example
 * ```ts
 * import { runTrafficSink, runTrafficStream } from "./traffic.ts";
 * const sink = runTrafficSink({ listen: { hostname: "127.0.0.1", port: 0 } });
 * try {
 *   const sent = await runTrafficStream({
 *     target: { hostname: "127.0.0.1", port: sink.address.port },
 *     count: 50,
 *     intervalMs: 1,
 *     drainMs: 0,
 *   });
 *   await sink.waitForReceived(sent.sent, 1000, sent.streamId);
 *   console.log(sink.stream(sent.streamId));
 * } finally {
 *   await sink.stop();
 * }
 * ```
 */
export function runTrafficSink(options: TrafficSinkOptions): TrafficSink {
  const transport = options.transport ?? bindUdp(options.listen);
  const addressText = formatHostPort(transport.localAddress);
  const streams = new Map<number, ArrivalTally>();
  let foreign = 0;
  let totalReceived = 0;
  let stopping = false;
  const waiters = new Set<() => void>();

  const onDatagram = (datagram: Uint8Array, now: number) => {
    const header = decodeTrafficDatagram(datagram);
    if (header === undefined) {
      foreign++;
      return;
    }
    let tally = streams.get(header.streamId);
    if (tally === undefined) {
      if (streams.size >= MAX_SINK_STREAMS) {
        foreign++;
        return;
      }
      tally = new ArrivalTally();
      streams.set(header.streamId, tally);
    }
    if (header.sequence > MAX_SINK_SEQUENCE || !hasTrafficPattern(datagram)) {
      tally.corrupted++;
      return;
    }
    if (tally.record(header.sequence, now) === "new") {
      totalReceived++;
      for (const check of waiters) check();
    }
  };

  const receiveLoop = (async () => {
    const buffer = new Uint8Array(MAX_UDP_PAYLOAD_BYTES);
    while (true) {
      let datagram: Uint8Array;
      try {
        [datagram] = await transport.receive(buffer);
      } catch (error) {
        if (stopping || isClosedSocketError(error)) return;
        continue;
      }
      onDatagram(datagram, performance.now());
    }
  })();

  const streamReport = (streamId: number, tally: ArrivalTally, now: number): SinkStreamReport => ({
    streamId,
    received: tally.received,
    duplicates: tally.duplicates,
    corrupted: tally.corrupted,
    outOfOrder: tally.outOfOrder,
    highestSequence: tally.highestSequence,
    missing: tally.highestSequence + 1 - tally.received,
    longestSilenceMs: tally.longestSilenceMs,
    longestSilenceAtMs: tally.longestSilenceStartedAt === undefined ||
        tally.firstArrivalAt === undefined
      ? undefined
      : tally.longestSilenceStartedAt - tally.firstArrivalAt,
    sinceLastMs: tally.lastArrivalAt === undefined ? 0 : now - tally.lastArrivalAt,
  });

  const report = (): SinkReport => {
    const now = performance.now();
    return {
      address: addressText,
      foreign,
      streams: [...streams].map(([streamId, tally]) => streamReport(streamId, tally, now)),
    };
  };

  return {
    address: transport.localAddress,
    report,
    stream(streamId) {
      const tally = streams.get(streamId);
      return tally === undefined ? undefined : streamReport(streamId, tally, performance.now());
    },
    waitForReceived(count, timeoutMs, streamId) {
      const reached = () =>
        (streamId === undefined ? totalReceived : streams.get(streamId)?.received ?? 0) >= count;
      if (reached()) return Promise.resolve(true);
      if (stopping) return Promise.resolve(false);
      return new Promise((resolve) => {
        const finish = (result: boolean) => {
          clearTimeout(timer);
          waiters.delete(check);
          resolve(result);
        };
        const check = () => {
          if (stopping) finish(false);
          else if (reached()) finish(true);
        };
        const timer = setTimeout(() => finish(reached()), timeoutMs);
        waiters.add(check);
      });
    },
    async stop() {
      if (!stopping) {
        stopping = true;
        transport.close();
        for (const check of waiters) check();
      }
      await receiveLoop;
      return report();
    },
  };
}

// -------------------------------------------------------------------------------------------------
// Text

function milliseconds(value: number | undefined): string {
  if (value === undefined) return "-";
  return value >= 100 ? `${value.toFixed(0)} ms` : `${value.toPrecision(3)} ms`;
}

function seconds(valueMs: number): string {
  return `${(valueMs / 1000).toFixed(2)} s`;
}

function percent(ratio: number): string {
  return `${(ratio * 100).toFixed(2)} %`;
}

function alignRows(rows: readonly (readonly [string, string])[]): string[] {
  const width = Math.max(...rows.map(([label]) => label.length));
  return rows.map(([label, value]) => `${label.padEnd(width)}  ${value}`);
}

/**
 * Renders a stream report as aligned lines, for a terminal or a log.
 *
 * @example
 * ```ts ignore
 * console.log(formatStreamReport(report).join("\n"));
 * // stream    3f2a19c0 → 127.0.0.1:5000
 * // sent      1000 × 64 bytes in 0.99 s (1000 pps)
 * // ...
 * ```
 */
export function formatStreamReport(report: StreamReport): string[] {
  const sendingSeconds = report.sendingMs / 1000;
  const ratePps = sendingSeconds > 0 ? (report.sent - 1) / sendingSeconds : 0;
  return alignRows([
    ["stream", `${report.streamId.toString(16).padStart(8, "0")} → ${report.target}`],
    [
      "sent",
      `${report.sent} × ${report.sizeBytes} bytes in ${seconds(report.sendingMs)} (${
        ratePps.toFixed(0)
      } pps)` + (report.sendErrors > 0 ? `, ${report.sendErrors} send errors` : ""),
    ],
    [
      "received",
      `${report.received} (${report.duplicates} duplicates, ${report.corrupted} corrupted, ` +
      `${report.outOfOrder} out of order, ${report.foreign} foreign)`,
    ],
    ["lost", `${report.lost} (${percent(report.lossRatio)})`],
    [
      "rtt",
      `p50 ${milliseconds(report.rttP50Ms)}, p99 ${milliseconds(report.rttP99Ms)}, ` +
      `max ${milliseconds(report.rttMaxMs)}`,
    ],
    [
      "silence",
      `longest ${milliseconds(report.longestSilenceMs)}` +
      (report.longestSilenceAtMs === undefined
        ? ""
        : ` from ${seconds(report.longestSilenceAtMs)}`),
    ],
  ]);
}

/** Renders a sink report as aligned lines, one block per stream. */
export function formatSinkReport(report: SinkReport): string[] {
  const lines = [
    `sink ${report.address}: ${report.streams.length} streams, ${report.foreign} foreign`,
  ];
  for (const stream of report.streams) {
    lines.push(
      ...alignRows([
        ["stream", stream.streamId.toString(16).padStart(8, "0")],
        [
          "received",
          `${stream.received} (${stream.duplicates} duplicates, ${stream.corrupted} corrupted, ` +
          `${stream.outOfOrder} out of order)`,
        ],
        ["missing", `${stream.missing} below sequence ${stream.highestSequence}`],
        [
          "silence",
          `longest ${milliseconds(stream.longestSilenceMs)}` +
          (stream.longestSilenceAtMs === undefined
            ? ""
            : ` from ${seconds(stream.longestSilenceAtMs)}`) +
          `, last datagram ${milliseconds(stream.sinceLastMs)} ago`,
        ],
      ]).map((line) => `  ${line}`),
    );
  }
  return lines;
}
