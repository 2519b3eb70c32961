/**
 * The bridge's driver: a UDP relay between clients and one server, with impairments in each direction.
 *
 * ```
 *  client A ─┐                 ┌─ upstream socket A (ephemeral port) ─┐
 *            ├─► listen socket ┤                                      ├─► server
 *  client B ─┘                 └─ upstream socket B (ephemeral port) ─┘
 * ```
 *
 * Each client address gets its own upstream socket, so the server sees one address per client and its
 * replies find their way back. Mappings idle for `idleTimeoutMs` are closed. Datagrams whose impairment
 * says "later" are copied into one deadline queue served by a single timer; the rest are sent straight
 * from the receive buffer, which is reused only after the send settles.
 *
 * Each direction has one impairment shared by every client, as one impaired link would: the upstream
 * direction's randomness is seeded with `seed`, the downstream direction's with `seed + 1`.
 */

import { formatHostPort, type HostPort } from "../base/address.ts";
import {
  type BridgeStats,
  createDirectionStats,
  type Direction,
  type DirectionStats,
} from "./bridge_stats.ts";
import { DeadlineQueue } from "./deadline_queue.ts";
import { isIPLiteral, resolveServer, resolveWithSystem } from "./server_address.ts";
import { createImpairment, type Impairment, type ImpairmentOptions } from "./impairment.ts";
import { type Logger, silentLogger } from "../base/log.ts";
import { seededRandom } from "../base/rng.ts";
import { classifySendError } from "../io/udp.ts";
import {
  type BindTransport,
  type DatagramTransport,
  type UdpAddress,
  udpAddress,
} from "../io/transport.ts";

/** Mappings unused for this long are closed, by default. */
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
/** The most clients relayed at once, by default; datagrams from further clients are dropped. */
export const DEFAULT_MAX_MAPPINGS = 4096;
/** A server host name is looked up again after this long without a datagram from it, by default. */
export const DEFAULT_RERESOLVE_AFTER_MS = 30_000;
/**
 * Each socket's receive buffer: the largest UDP payload over IPv6, so nothing is truncated.
 * One per mapping, so the mapping cap bounds memory (4096 mappings hold 256 MiB).
 */
const RECEIVE_BUFFER_BYTES = 65536;
const MIN_SWEEP_INTERVAL_MS = 10;
const MAX_SWEEP_INTERVAL_MS = 1000;

/** What {@link startBridge} needs. */
export interface BridgeOptions {
  /** Where clients send. */
  readonly listen: HostPort;
  /** The server: a literal address or a host name (looked up at start and when it falls silent). */
  readonly server: HostPort;
  /** Impairments, applied to each direction by its own instance. */
  readonly impairment?: ImpairmentOptions;
  /** Seeds the impairments' randomness (upstream `seed`, downstream `seed + 1`). */
  readonly seed: number;
  /** How long a client mapping may stay unused before its socket is closed (default 60 s). */
  readonly idleTimeoutMs?: number;
  /** The most client mappings at once (default 4096). */
  readonly maxMappings?: number;
  /** Look a server host name up again after this long without a datagram from it (default 30 s). */
  readonly reresolveAfterMs?: number;
  readonly logger?: Logger;
  /** Opens the sockets: `bindUdp` in the program, a `MemoryNetwork`'s `bind` in tests. */
  readonly bind: BindTransport;
  /** Turns a host name into one IP address; defaults to the system resolver. */
  readonly resolveHost?: (hostname: string) => Promise<string>;
}

/** A running bridge. */
export interface Bridge {
  /** Where the bridge listens (with the real port when 0 was asked for). */
  readonly listenAddress: UdpAddress;
  /** The server address datagrams are currently sent to. */
  readonly serverAddress: UdpAddress;
  /** Settles when the bridge has stopped; rejects if a relay loop failed (a bug). */
  readonly finished: Promise<void>;
  /** A snapshot of the counters. */
  stats(): BridgeStats;
  /** Closes every socket and timer and resolves once every loop has ended. */
  stop(): Promise<void>;
}

/** The bridge could not start: the listen address is unusable or the server name does not resolve. */
export class BridgeStartError extends Error {
  override name = "BridgeStartError";
}

/**
 * Resolves the server, binds the listen socket and starts relaying.
 *
 * @example
 * ```ts
 * import { startBridge } from "./bridge_relay.ts";
 * import { MemoryNetwork } from "../io/memory_transport.ts";
 * const bridge = await startBridge({
 *   listen: { hostname: "127.0.0.1", port: 4001 },
 *   server: { hostname: "127.0.0.1", port: 5000 },
 *   impairment: { lossPercent: 10, delayMs: 40 },
 *   seed: 1,
 *   bind: new MemoryNetwork().bind, // `bindUdp` (../io/udp.ts) for real sockets
 * });
 * // … later
 * await bridge.stop();
 * console.log(bridge.stats().upstream.dropped.loss);
 * ```
 */
export async function startBridge(options: BridgeOptions): Promise<Bridge> {
  const resolveHost = options.resolveHost ?? resolveWithSystem;
  let serverHostname: string;
  try {
    serverHostname = await resolveServer(options.server.hostname, resolveHost);
  } catch (error) {
    throw new BridgeStartError(
      `cannot resolve server host "${options.server.hostname}": ${errorMessage(error)}`,
    );
  }
  const bind = options.bind;
  let listenSocket: DatagramTransport;
  try {
    listenSocket = bind(options.listen);
  } catch (error) {
    throw new BridgeStartError(
      `cannot listen on ${formatHostPort(options.listen)}: ${errorMessage(error)}`,
    );
  }
  const relay = new BridgeRelay(options, listenSocket, serverHostname, resolveHost, bind);
  relay.start();
  return relay;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function isClosedError(error: unknown): boolean {
  return error instanceof Deno.errors.Interrupted || error instanceof Deno.errors.BadResource;
}

/** One client's relay state. */
interface Mapping {
  readonly clientAddress: UdpAddress;
  readonly socket: DatagramTransport;
  readonly buffer: Uint8Array;
  lastActiveMs: number;
  closed: boolean;
}

/** A datagram waiting for its impairment deadline; `datagram` is a copy the entry owns. */
interface DelayedDatagram {
  readonly atMs: number;
  readonly order: number;
  readonly direction: Direction;
  readonly datagram: Uint8Array;
  readonly mapping: Mapping;
}

class BridgeRelay implements Bridge {
  readonly listenAddress: UdpAddress;
  serverAddress: UdpAddress;
  readonly finished: Promise<void>;

  readonly #options: BridgeOptions;
  readonly #listenSocket: DatagramTransport;
  readonly #listenBuffer = new Uint8Array(RECEIVE_BUFFER_BYTES);
  readonly #resolveHost: (hostname: string) => Promise<string>;
  readonly #bind: BindTransport;
  readonly #logger: Logger;
  readonly #idleTimeoutMs: number;
  readonly #maxMappings: number;
  readonly #reresolveAfterMs: number;
  readonly #upstreamImpairment: Impairment;
  readonly #downstreamImpairment: Impairment;
  readonly #upstream = createDirectionStats();
  readonly #downstream = createDirectionStats();
  /** Mappings by client host name, then port: no key string is built per datagram. */
  readonly #mappings = new Map<string, Map<number, Mapping>>();
  #mappingCount = 0;
  #mappingsOpened = 0;
  #mappingsExpired = 0;
  readonly #queue = new DeadlineQueue<DelayedDatagram>();
  #nextOrder = 0;
  #timerId: ReturnType<typeof setTimeout> | undefined;
  #timerDeadlineMs = Infinity;
  #draining = false;
  #sweepTimerId: ReturnType<typeof setInterval> | undefined;
  #lastServerDatagramMs: number;
  #lastUpstreamSendMs = -Infinity;
  #lastResolveMs: number;
  #resolving = false;
  readonly #tasks = new Set<Promise<void>>();
  #stopping: Promise<void> | undefined;
  #failure: { readonly error: unknown } | undefined;
  readonly #resolveFinished: () => void;
  readonly #rejectFinished: (error: unknown) => void;

  constructor(
    options: BridgeOptions,
    listenSocket: DatagramTransport,
    serverHostname: string,
    resolveHost: (hostname: string) => Promise<string>,
    bind: BindTransport,
  ) {
    this.#options = options;
    this.#listenSocket = listenSocket;
    this.listenAddress = listenSocket.localAddress;
    this.serverAddress = udpAddress({ hostname: serverHostname, port: options.server.port });
    this.#resolveHost = resolveHost;
    this.#bind = bind;
    this.#logger = options.logger ?? silentLogger;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    this.#maxMappings = options.maxMappings ?? DEFAULT_MAX_MAPPINGS;
    this.#reresolveAfterMs = options.reresolveAfterMs ?? DEFAULT_RERESOLVE_AFTER_MS;
    const startMs = performance.now();
    const impairment = options.impairment ?? {};
    this.#upstreamImpairment = createImpairment(impairment, seededRandom(options.seed), startMs);
    this.#downstreamImpairment = createImpairment(
      impairment,
      seededRandom((options.seed + 1) >>> 0),
      startMs,
    );
    this.#lastServerDatagramMs = startMs;
    this.#lastResolveMs = startMs;
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    promise.catch(() => {}); // Callers who await it still see the rejection.
    this.finished = promise;
    this.#resolveFinished = resolve;
    this.#rejectFinished = reject;
  }

  start(): void {
    const sweepIntervalMs = Math.min(
      MAX_SWEEP_INTERVAL_MS,
      Math.max(MIN_SWEEP_INTERVAL_MS, this.#idleTimeoutMs / 4),
    );
    this.#sweepTimerId = setInterval(this.#sweep, sweepIntervalMs);
    this.#track(this.#runListenLoop());
  }

  stats(): BridgeStats {
    return {
      upstream: structuredClone(this.#upstream),
      downstream: structuredClone(this.#downstream),
      mappingsOpened: this.#mappingsOpened,
      mappingsExpired: this.#mappingsExpired,
      mappingsActive: this.#mappingCount,
      datagramsQueued: this.#queue.size,
    };
  }

  stop(): Promise<void> {
    if (this.#stopping === undefined) {
      this.#stopping = this.#shutdown();
      this.#stopping.then(this.#resolveFinished, this.#rejectFinished);
    }
    return this.#stopping;
  }

  async #shutdown(): Promise<void> {
    clearInterval(this.#sweepTimerId);
    clearTimeout(this.#timerId);
    this.#timerId = undefined;
    this.#queue.clear();
    this.#listenSocket.close();
    for (const byPort of this.#mappings.values()) {
      for (const mapping of byPort.values()) this.#closeMapping(mapping);
    }
    this.#mappings.clear();
    while (this.#tasks.size > 0) await Promise.allSettled([...this.#tasks]);
    if (this.#failure !== undefined) throw this.#failure.error;
  }

  get #stopped(): boolean {
    return this.#stopping !== undefined;
  }

  /** Keeps a loop's promise so `stop` can wait for it; a loop that throws is a bug and stops the bridge. */
  #track(task: Promise<void>): void {
    this.#tasks.add(task);
    task.then(
      () => this.#tasks.delete(task),
      (error) => {
        this.#tasks.delete(task);
        this.#failure ??= { error };
        this.stop().catch(() => {});
      },
    );
  }

  // Client → server: one loop on the listen socket.
  async #runListenLoop(): Promise<void> {
    const buffer = this.#listenBuffer;
    const stats = this.#upstream;
    while (!this.#stopped) {
      let datagram: Uint8Array;
      let from: UdpAddress;
      try {
        [datagram, from] = await this.#listenSocket.receive(buffer);
      } catch (error) {
        if (this.#stopped || isClosedError(error)) return;
        if (error instanceof TypeError) throw error;
        stats.receiveErrors++;
        continue;
      }
      if (this.#stopped) return; // A mapping opened now would outlive the stop.
      const nowMs = performance.now();
      stats.datagramsIn++;
      stats.bytesIn += datagram.length;
      const mapping = this.#mappingFor(from, nowMs);
      if (mapping === undefined) continue;
      mapping.lastActiveMs = nowMs;
      const decision = this.#upstreamImpairment.decide(nowMs, datagram.length);
      if (decision.action === "drop") {
        stats.dropped[decision.reason]++;
      } else if (decision.atMs > nowMs) {
        this.#enqueue(decision.atMs, "upstream", datagram.slice(), mapping);
      } else {
        await this.#sendUpstream(mapping, datagram);
      }
    }
  }

  // Server → client: one loop per mapping, on its upstream socket.
  async #runMappingLoop(mapping: Mapping): Promise<void> {
    const buffer = mapping.buffer;
    const stats = this.#downstream;
    while (!mapping.closed) {
      let datagram: Uint8Array;
      let from: UdpAddress;
      try {
        [datagram, from] = await mapping.socket.receive(buffer);
      } catch (error) {
        if (mapping.closed || isClosedError(error)) return;
        if (error instanceof TypeError) throw error;
        stats.receiveErrors++;
        continue;
      }
      if (mapping.closed) return;
      const nowMs = performance.now();
      stats.datagramsIn++;
      stats.bytesIn += datagram.length;
      const server = this.serverAddress;
      if (from.port !== server.port || from.hostname !== server.hostname) {
        stats.dropped["not-from-server"]++;
        continue;
      }
      this.#lastServerDatagramMs = nowMs;
      mapping.lastActiveMs = nowMs;
      const decision = this.#downstreamImpairment.decide(nowMs, datagram.length);
      if (decision.action === "drop") {
        stats.dropped[decision.reason]++;
      } else if (decision.atMs > nowMs) {
        this.#enqueue(decision.atMs, "downstream", datagram.slice(), mapping);
      } else {
        await this.#sendDownstream(mapping, datagram);
      }
    }
  }

  #mappingFor(from: UdpAddress, nowMs: number): Mapping | undefined {
    let byPort = this.#mappings.get(from.hostname);
    const existing = byPort?.get(from.port);
    if (existing !== undefined) return existing;
    if (this.#mappingCount >= this.#maxMappings) {
      if (this.#upstream.dropped["mapping-limit"]++ === 0) {
        this.#logger.warning("Too many clients; dropping datagrams from new ones.", {
          maxMappings: this.#maxMappings,
        });
      }
      return undefined;
    }
    let socket: DatagramTransport;
    const anyAddress = this.serverAddress.hostname.includes(":") ? "::" : "0.0.0.0";
    try {
      socket = this.#bind({ hostname: anyAddress, port: 0 });
    } catch (error) {
      this.#upstream.dropped["no-socket"]++;
      this.#logger.warning("Cannot open an upstream socket for a new client.", {
        client: formatHostPort(from),
        error: errorMessage(error),
      });
      return undefined;
    }
    const mapping: Mapping = {
      clientAddress: udpAddress(from),
      socket,
      buffer: new Uint8Array(RECEIVE_BUFFER_BYTES),
      lastActiveMs: nowMs,
      closed: false,
    };
    if (byPort === undefined) {
      byPort = new Map();
      this.#mappings.set(from.hostname, byPort);
    }
    byPort.set(from.port, mapping);
    this.#mappingCount++;
    this.#mappingsOpened++;
    this.#logger.debug("New client.", {
      client: formatHostPort(from),
      upstreamPort: socket.localAddress.port,
    });
    this.#track(this.#runMappingLoop(mapping));
    return mapping;
  }

  #closeMapping(mapping: Mapping): void {
    if (mapping.closed) return;
    mapping.closed = true;
    mapping.socket.close();
    this.#mappingCount--;
  }

  async #sendUpstream(mapping: Mapping, datagram: Uint8Array): Promise<void> {
    const stats = this.#upstream;
    if (mapping.closed) {
      stats.dropped["mapping-closed"]++;
      return;
    }
    try {
      await mapping.socket.send(datagram, this.serverAddress);
      stats.datagramsOut++;
      stats.bytesOut += datagram.length;
      this.#lastUpstreamSendMs = performance.now();
    } catch (error) {
      this.#countSendError(stats, error, mapping.closed);
    }
  }

  async #sendDownstream(mapping: Mapping, datagram: Uint8Array): Promise<void> {
    const stats = this.#downstream;
    try {
      await this.#listenSocket.send(datagram, mapping.clientAddress);
      stats.datagramsOut++;
      stats.bytesOut += datagram.length;
    } catch (error) {
      this.#countSendError(stats, error, false);
    }
  }

  #countSendError(stats: DirectionStats, error: unknown, socketClosed: boolean): void {
    if (socketClosed || this.#stopped) {
      stats.dropped["mapping-closed"]++;
      return;
    }
    const kind = classifySendError(error);
    if (kind === undefined) throw error;
    stats.dropped["send-error"]++;
    stats.sendErrors[kind] = (stats.sendErrors[kind] ?? 0) + 1;
  }

  #enqueue(atMs: number, direction: Direction, datagram: Uint8Array, mapping: Mapping): void {
    this.#queue.push({ atMs, order: this.#nextOrder++, direction, datagram, mapping });
    if (!this.#draining) this.#armTimer();
  }

  /** Points the one timer at the earliest deadline, if it is not already there. */
  #armTimer(): void {
    const head = this.#queue.peek();
    if (head === undefined || this.#stopped) return;
    if (this.#timerId !== undefined && this.#timerDeadlineMs <= head.atMs) return;
    clearTimeout(this.#timerId);
    this.#timerDeadlineMs = head.atMs;
    this.#timerId = setTimeout(
      this.#onTimer,
      Math.max(0, Math.ceil(head.atMs - performance.now())),
    );
  }

  readonly #onTimer = (): void => {
    this.#timerId = undefined;
    this.#timerDeadlineMs = Infinity;
    if (!this.#draining && !this.#stopped) this.#track(this.#drain());
  };

  /** Sends every datagram whose deadline has passed, in deadline order, one send at a time. */
  async #drain(): Promise<void> {
    this.#draining = true;
    try {
      for (;;) {
        const head = this.#queue.peek();
        if (head === undefined || head.atMs > performance.now() || this.#stopped) break;
        this.#queue.pop();
        if (head.direction === "upstream") await this.#sendUpstream(head.mapping, head.datagram);
        else await this.#sendDownstream(head.mapping, head.datagram);
      }
    } finally {
      this.#draining = false;
    }
    this.#armTimer();
  }

  /** Closes idle mappings and looks the server up again when it has been silent too long. */
  readonly #sweep = (): void => {
    const nowMs = performance.now();
    for (const [hostname, byPort] of this.#mappings) {
      for (const [port, mapping] of byPort) {
        if (nowMs - mapping.lastActiveMs < this.#idleTimeoutMs) continue;
        this.#closeMapping(mapping);
        this.#mappingsExpired++;
        byPort.delete(port);
        this.#logger.debug("Client idle; mapping closed.", {
          client: formatHostPort({ hostname, port }),
        });
      }
      if (byPort.size === 0) this.#mappings.delete(hostname);
    }
    if (
      !this.#resolving && !isIPLiteral(this.#options.server.hostname) &&
      this.#lastUpstreamSendMs > this.#lastServerDatagramMs &&
      nowMs - this.#lastServerDatagramMs >= this.#reresolveAfterMs &&
      nowMs - this.#lastResolveMs >= this.#reresolveAfterMs
    ) {
      this.#lastResolveMs = nowMs;
      this.#track(this.#reresolve());
    }
  };

  async #reresolve(): Promise<void> {
    this.#resolving = true;
    const hostname = this.#options.server.hostname;
    let address: string;
    try {
      address = await resolveServer(hostname, this.#resolveHost);
    } catch (error) {
      this.#logger.warning("Cannot look the server up again.", {
        server: hostname,
        error: errorMessage(error),
      });
      return;
    } finally {
      this.#resolving = false;
    }
    if (this.#stopped || address === this.serverAddress.hostname) return;
    this.#logger.info("Server address changed.", {
      server: hostname,
      from: this.serverAddress.hostname,
      to: address,
    });
    const familyChanged = address.includes(":") !== this.serverAddress.hostname.includes(":");
    this.serverAddress = udpAddress({ hostname: address, port: this.#options.server.port });
    if (familyChanged) {
      // The upstream sockets are bound to the old family; clients get new ones on their next datagram.
      for (const byPort of this.#mappings.values()) {
        for (const mapping of byPort.values()) this.#closeMapping(mapping);
      }
      this.#mappings.clear();
    }
  }
}
