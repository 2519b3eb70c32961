/**
 * Joins the protocol cores to the network simulator: a {@link TunnelClient} wraps a `ClientCore` as the
 * simulator's client endpoint, a {@link TunnelServer} wraps a `ServerCore` as its server endpoint, and
 * a {@link TunnelScenario} builds the whole scene — paths, an optional secret, an application that
 * records replies, and a target that records what reached it and can echo each datagram back.
 *
 * ```
 *   app ─sendFromApp─▶ TunnelClient ══ paths ══▶ TunnelServer ─deliverToTarget─▶ target
 *       ◀─deliverToApp─             ◀══════════              ◀─sendFromTarget── (echo)
 * ```
 *
 * Restarts are endpoint swaps: {@link TunnelScenario.restartClient} attaches a fresh `ClientCore` (a
 * new process: new session id and, by default, new source ports on every path) and
 * {@link TunnelScenario.restartServer} a fresh `ServerCore` with no sessions.
 *
 * Both endpoints also count, per direction, the distinct DATA sequence numbers of which at least one
 * copy arrived. Delivered datagrams can then be compared with that exactly: "nothing lost beyond what
 * the paths lost" becomes an equality, not a tolerance.
 *
 * @example
 * ```ts
 * import { TunnelScenario } from "./tunnel_harness.ts";
 *
 * const scenario = new TunnelScenario({ seed: 1, paths: [{ both: { delayMs: 10 } }], echo: true });
 * const stream = scenario.startStream({ startMs: 500, count: 100 });
 * scenario.network.runUntil(stream.lastSendMs + 500);
 * // scenario.target.recorder.unique === 100, scenario.app.recorder.unique === 100
 * ```
 */

import { clientSeams, serverSeams } from "../session/engine_seams.ts";
import {
  ClientCore,
  type ClientCoreOptions,
  type ClientOutbox,
  type ClientTiming,
} from "../../lib/session/client_core.ts";
import { deriveSecretKeys, type SecretKeys } from "../../lib/crypto/handshake.ts";
import type { Logger, LogLevel, LogProperties } from "../../lib/base/log.ts";
import { type Random, seededRandom } from "../../lib/base/rng.ts";
import { ServerCore, type ServerLimits, type ServerOutbox } from "../../lib/session/server_core.ts";
import type { UdpAddress } from "../../lib/io/transport.ts";
import { MessageType, SEALED_HEADER_BYTES } from "../../lib/wire/messages.ts";
import {
  type ConstantStream,
  constantStream,
  DeliveryRecorder,
  Network,
  type PathOptions,
  type SimClientEndpoint,
  type SimServerEndpoint,
} from "./network.ts";

/** The outbox scratch size the cores require. */
const SCRATCH_BYTES = 65536;
/** The application flow the stream uses. */
export const STREAM_FLOW_ID = 1;

// ---------------------------------------------------------------------------------------------------
// Addresses

/** Turns the simulator's `path0:40000` into the address object the server core works with. */
export function toUdpAddress(address: string): UdpAddress {
  const colon = address.lastIndexOf(":");
  const port = Number(address.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port)) {
    throw new Error(`not a simulator address: ${JSON.stringify(address)}`);
  }
  return { transport: "udp", hostname: address.slice(0, colon), port };
}

/** The simulator's form of an address the server core sends to. */
export function fromUdpAddress(address: UdpAddress): string {
  return `${address.hostname}:${address.port}`;
}

// ---------------------------------------------------------------------------------------------------
// Logging

/** One log line with the virtual time it was written at. */
export interface TimedLogRecord {
  readonly atMs: number;
  readonly source: string;
  readonly level: LogLevel;
  readonly message: string;
  readonly properties: LogProperties;
}

/** A logger that stamps each line with the network's clock and its source, kept in `records`. */
export function timedLogger(network: Network, source: string, records: TimedLogRecord[]): Logger {
  const at = (level: LogLevel) => (message: string, properties: LogProperties = {}) => {
    records.push({ atMs: network.nowMs, source, level, message, properties });
  };
  return { debug: at("debug"), info: at("info"), warning: at("warning"), error: at("error") };
}

// ---------------------------------------------------------------------------------------------------
// Counting what arrives on the wire

/**
 * Distinct DATA sequence numbers seen arriving, per session and key phase: "at least one copy made
 * it". It reads the plaintext header only, so it works with and without a secret.
 */
export class WireArrivals {
  readonly #sequences = new Map<number, Set<number>>();
  #total = 0;

  /** Notes a datagram if it is a DATA message. */
  note(datagram: Uint8Array): void {
    if (datagram.length < SEALED_HEADER_BYTES || datagram[1] !== MessageType.data) return;
    const view = new DataView(datagram.buffer, datagram.byteOffset, datagram.byteLength);
    const key = view.getUint32(4) * 256 + datagram[3];
    const sequence = view.getUint32(8) * 2 ** 32 + view.getUint32(12);
    let sequences = this.#sequences.get(key);
    if (sequences === undefined) this.#sequences.set(key, sequences = new Set());
    if (!sequences.has(sequence)) {
      sequences.add(sequence);
      this.#total++;
    }
  }

  /** Distinct DATA datagrams of which at least one copy arrived, over every session and phase. */
  get distinct(): number {
    return this.#total;
  }
}

// ---------------------------------------------------------------------------------------------------
// Endpoints

/** A `ClientCore` as the simulator's client endpoint; application deliveries go to `deliverToApp`. */
export class TunnelClient implements SimClientEndpoint {
  readonly name: string;
  readonly core: ClientCore;
  /** DATA datagrams from the server of which at least one copy reached this client. */
  readonly wireArrivals = new WireArrivals();
  readonly #outbox: ClientOutbox;

  constructor(
    network: Network,
    core: ClientCore,
    deliverToApp: (flowId: number, payload: Uint8Array, nowMs: number) => void,
    name = "mpclient",
  ) {
    this.name = name;
    this.core = core;
    this.#outbox = {
      scratch: new Uint8Array(SCRATCH_BYTES),
      sendOnPath: (pathIndex, datagram) => network.clientSend(pathIndex, datagram),
      deliverToApp: (flowId, payload) => deliverToApp(flowId, payload, network.nowMs),
    };
  }

  /** The application hands the tunnel a datagram. */
  sendFromApp(flowId: number, payload: Uint8Array, nowMs: number): void {
    this.core.sendFromApp(flowId, payload, nowMs, this.#outbox);
  }

  receiveFromPath(pathIndex: number, datagram: Uint8Array, nowMs: number): void {
    this.wireArrivals.note(datagram);
    this.core.receiveFromPath(pathIndex, datagram, nowMs, this.#outbox);
  }

  onTimer(nowMs: number): void {
    this.core.onTimer(nowMs, this.#outbox);
  }

  nextDeadlineMs(): number | undefined {
    return this.core.nextDeadlineMs();
  }
}

/** A `ServerCore` as the simulator's server endpoint; target deliveries go to `deliverToTarget`. */
export class TunnelServer implements SimServerEndpoint {
  readonly name: string;
  readonly core: ServerCore;
  /** DATA datagrams from clients of which at least one copy reached this server. */
  readonly wireArrivals = new WireArrivals();
  /** The outbox for the core's receive loop. */
  readonly #outbox: ServerOutbox;
  /** A second outbox for the target's replies, as the real driver has one loop per target socket. */
  readonly #targetOutbox: ServerOutbox;
  readonly #addresses = new Map<string, UdpAddress>();

  constructor(
    network: Network,
    core: ServerCore,
    deliverToTarget: (
      sessionId: number,
      flowId: number,
      payload: Uint8Array,
      nowMs: number,
    ) => void,
    name = "mpserver",
  ) {
    this.name = name;
    this.core = core;
    const sendTo = (address: UdpAddress, datagram: Uint8Array) =>
      network.serverSend(fromUdpAddress(address), datagram);
    this.#outbox = {
      scratch: new Uint8Array(SCRATCH_BYTES),
      sendTo,
      deliverToTarget: (sessionId, flowId, payload) =>
        deliverToTarget(sessionId, flowId, payload, network.nowMs),
    };
    this.#targetOutbox = {
      scratch: new Uint8Array(SCRATCH_BYTES),
      sendTo,
      deliverToTarget: () => {
        throw new Error("the target's outbox never delivers to the target");
      },
    };
  }

  /** The target answers on session `sessionId`'s flow; false when the server no longer has it. */
  sendFromTarget(sessionId: number, flowId: number, payload: Uint8Array, nowMs: number): boolean {
    return this.core.sendFromTarget(sessionId, flowId, payload, nowMs, this.#targetOutbox);
  }

  receiveFrom(address: string, datagram: Uint8Array, nowMs: number): void {
    let from = this.#addresses.get(address);
    if (from === undefined) this.#addresses.set(address, from = toUdpAddress(address));
    this.wireArrivals.note(datagram);
    this.core.receive(from, datagram, nowMs, this.#outbox);
  }

  onTimer(nowMs: number): void {
    this.core.onTimer(nowMs, this.#outbox);
  }

  nextDeadlineMs(): number | undefined {
    return this.core.nextDeadlineMs();
  }
}

// ---------------------------------------------------------------------------------------------------
// The application and the target

/** The application behind mpclient: records what comes back on the stream's flow. */
export class SimApp {
  /** Replies of the stream (stream id 1). */
  readonly recorder = new DeliveryRecorder(1);
  /** Deliveries on a flow other than the stream's. */
  otherFlows = 0;

  deliver(flowId: number, payload: Uint8Array, nowMs: number): void {
    if (flowId !== STREAM_FLOW_ID) {
      this.otherFlows++;
      return;
    }
    this.recorder.record(payload, nowMs);
  }
}

/** What reached the target from one session. */
export interface TargetSessionCounts {
  datagrams: number;
  firstMs: number;
  lastMs: number;
}

/**
 * The service behind mpserver. It records what reached it (first copies, duplicates, corrupted or
 * foreign payloads) and, in echo mode, sends each datagram back on the same session and flow.
 */
export class SimTarget {
  /** What reached the target on the stream's flow. */
  readonly recorder = new DeliveryRecorder(1);
  /** Deliveries per session id. */
  readonly bySession = new Map<number, TargetSessionCounts>();
  /** Deliveries on a flow other than the stream's. */
  otherFlows = 0;
  /** Echoes sent back into the tunnel. */
  echoesSent = 0;
  /** Echoes the server refused because it no longer had the session. */
  echoesRefused = 0;
  readonly #network: Network;
  readonly #server: () => TunnelServer;
  readonly #echo: boolean;
  readonly #echoDelayMs: number;

  constructor(network: Network, server: () => TunnelServer, echo: boolean, echoDelayMs: number) {
    this.#network = network;
    this.#server = server;
    this.#echo = echo;
    this.#echoDelayMs = echoDelayMs;
  }

  deliver(sessionId: number, flowId: number, payload: Uint8Array, nowMs: number): void {
    const counts = this.bySession.get(sessionId);
    if (counts === undefined) {
      this.bySession.set(sessionId, { datagrams: 1, firstMs: nowMs, lastMs: nowMs });
    } else {
      counts.datagrams++;
      counts.lastMs = nowMs;
    }
    if (flowId !== STREAM_FLOW_ID) {
      this.otherFlows++;
      return;
    }
    this.recorder.record(payload, nowMs);
    if (!this.#echo) return;
    // The payload is a view of the server's scratch: copy it, and answer from a later event, as a
    // real target answers from its own socket, not from inside the server's receive call.
    const copy = payload.slice();
    this.#network.schedule(nowMs + this.#echoDelayMs, (echoMs) => {
      if (this.#server().sendFromTarget(sessionId, flowId, copy, echoMs)) this.echoesSent++;
      else this.echoesRefused++;
    });
  }
}

// ---------------------------------------------------------------------------------------------------
// Scenarios

/** How to build a {@link TunnelScenario}. */
export interface TunnelScenarioOptions {
  /** Seeds the network and the session ids. Print it when a test fails. */
  readonly seed: number;
  readonly paths: readonly PathOptions[];
  /** The shared secret of both ends; plaintext when omitted. */
  readonly secret?: string;
  /** The target echoes each datagram (true) or only records it (false, the default). */
  readonly echo?: boolean;
  /** How long the target takes to answer, 0 by default. */
  readonly echoDelayMs?: number;
  readonly clientTiming?: Partial<ClientTiming>;
  readonly serverLimits?: Partial<ServerLimits>;
  /** Scheduling of the client: mode, loss target, FEC, reordering, path weights and backups. */
  readonly scheduling?: Pick<
    ClientCoreOptions,
    "mode" | "targetLossRatio" | "fec" | "reorderTimeoutMs" | "pathWeights" | "backupPaths"
  >;
}

/** What {@link TunnelScenario.startStream} sends. */
export interface StreamOptions {
  readonly startMs: number;
  readonly count: number;
  /** 1 by default. */
  readonly intervalMs?: number;
  /** 1000 by default. */
  readonly sizeBytes?: number;
}

/**
 * A whole scene in the simulator: network, client, server, application and target. The client and
 * server are reached through getters, since a restart swaps them.
 */
export class TunnelScenario {
  readonly seed: number;
  readonly network: Network;
  readonly app = new SimApp();
  readonly target: SimTarget;
  /** Every log line of every client and server, stamped with virtual time. */
  readonly logRecords: TimedLogRecord[] = [];
  /** Session ids the servers forgot, with when. */
  readonly closedSessions: { sessionId: number; atMs: number }[] = [];
  readonly #options: TunnelScenarioOptions;
  readonly #secretKeys: SecretKeys | undefined;
  readonly #sessionIds: Random;
  #client: TunnelClient;
  #server: TunnelServer;
  #clientGeneration = 0;
  #serverGeneration = 0;

  constructor(options: TunnelScenarioOptions) {
    this.seed = options.seed;
    this.#options = options;
    this.#secretKeys = options.secret === undefined ? undefined : deriveSecretKeys(options.secret);
    // Session ids from the seed rather than crypto, so a run is reproducible from its seed alone.
    this.#sessionIds = seededRandom(options.seed ^ 0x5e55_1011);
    this.network = new Network({ seed: options.seed, paths: options.paths });
    this.target = new SimTarget(
      this.network,
      () => this.#server,
      options.echo ?? false,
      options.echoDelayMs ?? 0,
    );
    this.#server = this.#makeServer();
    this.#client = this.#makeClient();
    this.network.attachServer(this.#server);
    this.network.attachClient(this.#client);
  }

  /** The client endpoint attached now. */
  get client(): TunnelClient {
    return this.#client;
  }

  /** The server endpoint attached now. */
  get server(): TunnelServer {
    return this.#server;
  }

  /** A constant stream from the application into whichever client is attached when each is sent. */
  startStream(options: StreamOptions): ConstantStream {
    return constantStream({
      network: this.network,
      startMs: options.startMs,
      intervalMs: options.intervalMs ?? 1,
      count: options.count,
      sizeBytes: options.sizeBytes ?? 1000,
      send: (_seq, payload) =>
        this.#client.sendFromApp(STREAM_FLOW_ID, payload, this.network.nowMs),
    });
  }

  /**
   * A new mpclient process from now on: a fresh core with a new session id and, unless
   * `keepAddresses`, a new source address on every path (new sockets). Returns the new endpoint.
   */
  restartClient(options: { keepAddresses?: boolean } = {}): TunnelClient {
    if (!options.keepAddresses) { for (const path of this.network.paths) path.rebind(); }
    this.#client = this.#makeClient();
    this.network.replaceClient(this.#client);
    return this.#client;
  }

  /** A new mpserver process from now on: a fresh core that knows no session. */
  restartServer(): TunnelServer {
    this.#server = this.#makeServer();
    this.network.replaceServer(this.#server);
    return this.#server;
  }

  /** Log lines whose message contains `text`. */
  logsContaining(text: string): TimedLogRecord[] {
    return this.logRecords.filter((record) => record.message.includes(text));
  }

  #makeClient(): TunnelClient {
    const name = `mpclient#${this.#clientGeneration++}`;
    const core = new ClientCore({
      ...clientSeams,
      pathLabels: this.network.paths.map((path) => `path${path.index}`),
      secret: this.#secretKeys,
      logger: timedLogger(this.network, name, this.logRecords),
      random: this.#sessionIds,
      timing: this.#options.clientTiming,
      ...this.#options.scheduling,
    });
    return new TunnelClient(
      this.network,
      core,
      (flowId, payload, nowMs) => this.app.deliver(flowId, payload, nowMs),
      name,
    );
  }

  #makeServer(): TunnelServer {
    const name = `mpserver#${this.#serverGeneration++}`;
    const core = new ServerCore({
      ...serverSeams,
      secret: this.#secretKeys,
      logger: timedLogger(this.network, name, this.logRecords),
      limits: this.#options.serverLimits,
      onSessionClosed: (sessionId) =>
        this.closedSessions.push({ sessionId, atMs: this.network.nowMs }),
    });
    return new TunnelServer(
      this.network,
      core,
      (sessionId, flowId, payload, nowMs) => this.target.deliver(sessionId, flowId, payload, nowMs),
      name,
    );
  }
}
