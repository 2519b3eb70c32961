/**
 * A deterministic, seeded discrete-event network simulator that drives the sans-I/O core.
 *
 * The simulator knows nothing of the protocol. It holds a virtual clock, an event queue, a list of
 * {@link Path}s (each a pair of impaired {@link Link}s) and two endpoints written against small
 * interfaces: a client that sends and receives on path indexes, and a server that sees source
 * addresses (`path0:40000`), so NAT rebinding is one call away. Endpoints send through
 * {@link Network.clientSend} and {@link Network.serverSend}; the network calls their `onTimer` at the
 * deadline they report.
 *
 * ```
 *   client ──path0.forward──▶ server        the server sees path0's client address
 *          ◀─path0.reverse───               and replies to it
 *          ──path1.forward──▶
 *          ◀─path1.reverse───
 * ```
 *
 * Every random choice comes from a per-link generator derived from the network seed and the link's
 * index, and every datagram draws the same number of values whatever the settings, so the same seed
 * gives the same run and adding a path or changing one impairment leaves the other draws alone.
 *
 * @example
 * ```ts
 * import { Network } from "./network.ts";
 *
 * const network = new Network({ seed: 7 });
 * network.addPath({ both: { delayMs: 20, lossPercent: 1 } });
 * network.schedule(5, () => network.clientSend(0, new Uint8Array([1, 2, 3])));
 * network.runUntil(1000);
 * ```
 */

import { type Random, seededRandom } from "../../lib/base/rng.ts";

/** How many times an endpoint's timer may fire at one instant before the network calls it a busy loop. */
export const DEFAULT_TIMER_CALLS_PER_INSTANT_LIMIT = 10_000;
/** Bytes a rate-limited link may hold (waiting or being serialised) before it drops at the tail. */
export const DEFAULT_QUEUE_LIMIT_BYTES = 64 * 1024;
/** Extra delay given to a datagram picked for reordering, so later datagrams overtake it. */
export const DEFAULT_REORDER_DELAY_MS = 10;
/** The first port handed out for the client's addresses as the server sees them. */
const FIRST_CLIENT_PORT = 40_000;

// ---------------------------------------------------------------------------------------------------
// Endpoints

/** The client side of the tunnel as the simulator drives it: it owns one socket per path. */
export interface SimClientEndpoint {
  /** A name for error messages (optional). */
  readonly name?: string;
  /** A datagram arrived on path `pathIndex`. The buffer is the endpoint's to keep. */
  receiveFromPath(pathIndex: number, datagram: Uint8Array, nowMs: number): void;
  /** Called at (never before) the deadline last reported by `nextDeadlineMs`. */
  onTimer(nowMs: number): void;
  /** When the endpoint next wants `onTimer`, or `undefined` for never. Re-queried after every event. */
  nextDeadlineMs(): number | undefined;
}

/** The server side of the tunnel as the simulator drives it: one socket, many source addresses. */
export interface SimServerEndpoint {
  /** A name for error messages (optional). */
  readonly name?: string;
  /** A datagram arrived from `address` (e.g. `path1:40001`). The buffer is the endpoint's to keep. */
  receiveFrom(address: string, datagram: Uint8Array, nowMs: number): void;
  /** Called at (never before) the deadline last reported by `nextDeadlineMs`. */
  onTimer(nowMs: number): void;
  /** When the endpoint next wants `onTimer`, or `undefined` for never. Re-queried after every event. */
  nextDeadlineMs(): number | undefined;
}

// ---------------------------------------------------------------------------------------------------
// Event queue

interface QueuedEvent {
  readonly atMs: number;
  readonly order: number;
  readonly run: (nowMs: number) => void;
}

/** A binary min-heap of events keyed by time, then by insertion order so that ties are deterministic. */
class EventQueue {
  #heap: QueuedEvent[] = [];
  #nextOrder = 0;

  get size(): number {
    return this.#heap.length;
  }

  push(atMs: number, run: (nowMs: number) => void): void {
    const heap = this.#heap;
    const event: QueuedEvent = { atMs, order: this.#nextOrder++, run };
    let index = heap.length;
    heap.push(event);
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!earlier(event, heap[parent])) break;
      heap[index] = heap[parent];
      index = parent;
    }
    heap[index] = event;
  }

  peekTimeMs(): number | undefined {
    return this.#heap.length === 0 ? undefined : this.#heap[0].atMs;
  }

  pop(): QueuedEvent | undefined {
    const heap = this.#heap;
    if (heap.length === 0) return undefined;
    const top = heap[0];
    const last = heap.pop()!;
    if (heap.length > 0) {
      let index = 0;
      for (;;) {
        const left = 2 * index + 1;
        if (left >= heap.length) break;
        const right = left + 1;
        const child = right < heap.length && earlier(heap[right], heap[left]) ? right : left;
        if (!earlier(heap[child], last)) break;
        heap[index] = heap[child];
        index = child;
      }
      heap[index] = last;
    }
    return top;
  }
}

function earlier(a: QueuedEvent, b: QueuedEvent): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.order < b.order);
}

// ---------------------------------------------------------------------------------------------------
// Links

/** Gilbert–Elliott bursty loss: a two-state chain stepped once per datagram offered to the link. */
export interface BurstLoss {
  /** Chance, per datagram, of moving from the good state to the bad one. */
  readonly enterBadPercent: number;
  /** Chance, per datagram, of moving from the bad state back to the good one. */
  readonly leaveBadPercent: number;
  /** Chance a datagram is lost while the chain is in the bad state. */
  readonly lossInBadPercent: number;
}

/** A window `[fromMs, toMs)` of virtual time during which a link drops everything sent into it. */
export interface Outage {
  readonly fromMs: number;
  readonly toMs: number;
}

/** The impairments of one link. Drops are judged when a datagram enters the link. */
export interface LinkSettings {
  /** Drops everything while true ("cable pulled"); counted as `down`. */
  readonly down: boolean;
  /** Independent loss, applied in both Gilbert–Elliott states. */
  readonly lossPercent: number;
  /** Bursty loss on top of `lossPercent`, or `undefined` for none. */
  readonly burst: BurstLoss | undefined;
  /** Fixed one-way propagation delay. */
  readonly delayMs: number;
  /** Extra delay drawn uniformly from `[0, jitterMs)`. Jitter alone never reorders: the link is FIFO. */
  readonly jitterMs: number;
  /** Chance a datagram is held back by `reorderDelayMs` so that later ones overtake it. */
  readonly reorderPercent: number;
  /** The hold-back applied to a datagram picked for reordering. */
  readonly reorderDelayMs: number;
  /** Chance a datagram is delivered twice (the copy arrives right after the original). */
  readonly duplicatePercent: number;
  /** Serialisation rate, or `undefined` for an infinitely fast link. */
  readonly rateBitsPerSecond: number | undefined;
  /** With a rate: bytes waiting or being serialised beyond which new datagrams are tail-dropped. */
  readonly queueLimitBytes: number;
  /** Windows of virtual time during which the link drops everything; counted as `outage`. */
  readonly outages: readonly Outage[];
}

/** Changes to a link's settings; missing fields keep their value (`burst: undefined` clears bursts). */
export type LinkOptions = Partial<LinkSettings>;

/** Why a link dropped a datagram. */
export type LinkDropReason =
  | "down"
  | "outage"
  | "queueFull"
  | "loss"
  | "burstLoss"
  | "receiverDown";

/** What happened on one link. `offered + duplicated = delivered + dropped + in flight`. */
export interface LinkCounters {
  /** Datagrams handed to the link. */
  offered: number;
  /** Bytes handed to the link. */
  offeredBytes: number;
  /** Copies handed to an endpoint (duplicates included). */
  delivered: number;
  /** Bytes handed to an endpoint. */
  deliveredBytes: number;
  /** Extra copies the link made. */
  duplicated: number;
  /** Drops by reason. `receiverDown` counts arrivals while the receiving endpoint was down or absent. */
  dropped: Record<LinkDropReason, number>;
}

const DEFAULT_LINK_SETTINGS: LinkSettings = {
  down: false,
  lossPercent: 0,
  burst: undefined,
  delayMs: 0,
  jitterMs: 0,
  reorderPercent: 0,
  reorderDelayMs: DEFAULT_REORDER_DELAY_MS,
  duplicatePercent: 0,
  rateBitsPerSecond: undefined,
  queueLimitBytes: DEFAULT_QUEUE_LIMIT_BYTES,
  outages: [],
};

/** Where a link puts datagrams it lets through; returns false if nobody was there to take one. */
export type LinkArrival = (datagram: Uint8Array, nowMs: number) => boolean;

/** One direction of one path, with seeded impairments that can change at run time. */
export class Link {
  /** E.g. `path0 forward`. */
  readonly name: string;
  readonly #random: Random;
  readonly #schedule: (atMs: number, run: (nowMs: number) => void) => void;
  #settings: LinkSettings = DEFAULT_LINK_SETTINGS;
  #inBadState = false;
  #busyUntilMs = -Infinity;
  #lastInOrderArrivalMs = -Infinity;
  readonly #counters: LinkCounters = {
    offered: 0,
    offeredBytes: 0,
    delivered: 0,
    deliveredBytes: 0,
    duplicated: 0,
    dropped: { down: 0, outage: 0, queueFull: 0, loss: 0, burstLoss: 0, receiverDown: 0 },
  };

  /** Made by {@link Network.addPath}; `schedule` puts an arrival on the network's event queue. */
  constructor(
    name: string,
    random: Random,
    schedule: (atMs: number, run: (nowMs: number) => void) => void,
    options: LinkOptions = {},
  ) {
    this.name = name;
    this.#random = random;
    this.#schedule = schedule;
    this.set(options);
  }

  /** The current impairments. */
  get settings(): LinkSettings {
    return this.#settings;
  }

  /** What has happened on this link so far (a live view; copy it to keep a snapshot). */
  get counters(): Readonly<LinkCounters> {
    return this.#counters;
  }

  /**
   * Changes impairments from now on; datagrams already in flight keep their fate.
   *
   * @example
   * ```ts
   * import { Network } from "./network.ts";
   *
   * const network = new Network({ seed: 1 });
   * const path = network.addPath();
   * network.schedule(1000, () => path.forward.set({ down: true }));
   * network.schedule(3000, () => path.forward.set({ down: false, lossPercent: 5 }));
   * ```
   */
  set(changes: LinkOptions): void {
    const current = this.#settings;
    const next: LinkSettings = {
      down: changes.down ?? current.down,
      lossPercent: changes.lossPercent ?? current.lossPercent,
      burst: "burst" in changes ? changes.burst : current.burst,
      delayMs: changes.delayMs ?? current.delayMs,
      jitterMs: changes.jitterMs ?? current.jitterMs,
      reorderPercent: changes.reorderPercent ?? current.reorderPercent,
      reorderDelayMs: changes.reorderDelayMs ?? current.reorderDelayMs,
      duplicatePercent: changes.duplicatePercent ?? current.duplicatePercent,
      rateBitsPerSecond: "rateBitsPerSecond" in changes
        ? changes.rateBitsPerSecond
        : current.rateBitsPerSecond,
      queueLimitBytes: changes.queueLimitBytes ?? current.queueLimitBytes,
      outages: (changes.outages ?? current.outages).map((outage) => ({ ...outage })),
    };
    validateLinkSettings(this.name, next);
    if (next.burst === undefined) this.#inBadState = false;
    this.#settings = next;
  }

  /**
   * Offers a datagram to the link at `nowMs`. The link keeps `datagram` (the caller passes a copy) and
   * calls `arrive` with it, and with a fresh copy for a duplicate, when each copy arrives.
   */
  send(datagram: Uint8Array, nowMs: number, arrive: LinkArrival): void {
    const settings = this.#settings;
    const counters = this.#counters;
    const random = this.#random;
    // A fixed number of draws per datagram, whatever the settings, keeps one impairment's pattern
    // unchanged when another is switched on or off.
    const stateDraw = random.next();
    const burstLossDraw = random.next();
    const lossDraw = random.next();
    const jitterDraw = random.next();
    const reorderDraw = random.next();
    const duplicateDraw = random.next();

    counters.offered++;
    counters.offeredBytes += datagram.length;
    if (settings.burst !== undefined) {
      const threshold = this.#inBadState
        ? settings.burst.leaveBadPercent
        : settings.burst.enterBadPercent;
      if (stateDraw * 100 < threshold) this.#inBadState = !this.#inBadState;
    }
    if (settings.down) {
      counters.dropped.down++;
      return;
    }
    if (settings.outages.some((outage) => outage.fromMs <= nowMs && nowMs < outage.toMs)) {
      counters.dropped.outage++;
      return;
    }

    let departureMs = nowMs;
    if (settings.rateBitsPerSecond !== undefined) {
      const bytesPerMs = settings.rateBitsPerSecond / 8000;
      const startMs = Math.max(nowMs, this.#busyUntilMs);
      const backlogBytes = (startMs - nowMs) * bytesPerMs;
      if (backlogBytes + datagram.length > settings.queueLimitBytes) {
        counters.dropped.queueFull++;
        return;
      }
      departureMs = startMs + datagram.length / bytesPerMs;
      this.#busyUntilMs = departureMs;
    }
    // Loss after the queue: a datagram lost on the wire still took its turn at the bottleneck.
    if (
      settings.burst !== undefined && this.#inBadState &&
      burstLossDraw * 100 < settings.burst.lossInBadPercent
    ) {
      counters.dropped.burstLoss++;
      return;
    }
    if (lossDraw * 100 < settings.lossPercent) {
      counters.dropped.loss++;
      return;
    }

    let arrivalMs = departureMs + settings.delayMs + jitterDraw * settings.jitterMs;
    if (reorderDraw * 100 < settings.reorderPercent) {
      arrivalMs += settings.reorderDelayMs;
    } else {
      arrivalMs = Math.max(arrivalMs, this.#lastInOrderArrivalMs);
      this.#lastInOrderArrivalMs = arrivalMs;
    }
    this.#scheduleArrival(arrivalMs, datagram, arrive);
    if (duplicateDraw * 100 < settings.duplicatePercent) {
      counters.duplicated++;
      // Its own copy: an endpoint may decrypt the first one in place.
      this.#scheduleArrival(arrivalMs, datagram.slice(), arrive);
    }
  }

  #scheduleArrival(arrivalMs: number, datagram: Uint8Array, arrive: LinkArrival): void {
    this.#schedule(arrivalMs, (nowMs) => {
      if (arrive(datagram, nowMs)) {
        this.#counters.delivered++;
        this.#counters.deliveredBytes += datagram.length;
      } else {
        this.#counters.dropped.receiverDown++;
      }
    });
  }
}

function validateLinkSettings(name: string, settings: LinkSettings): void {
  const percent = (field: string, value: number) => {
    if (!(value >= 0 && value <= 100)) {
      throw new RangeError(`${name}: ${field} must be within 0..100, got ${value}`);
    }
  };
  const nonNegative = (field: string, value: number) => {
    if (!(value >= 0 && Number.isFinite(value))) {
      throw new RangeError(`${name}: ${field} must be a finite number ≥ 0, got ${value}`);
    }
  };
  percent("lossPercent", settings.lossPercent);
  percent("reorderPercent", settings.reorderPercent);
  percent("duplicatePercent", settings.duplicatePercent);
  if (settings.burst !== undefined) {
    percent("burst.enterBadPercent", settings.burst.enterBadPercent);
    percent("burst.leaveBadPercent", settings.burst.leaveBadPercent);
    percent("burst.lossInBadPercent", settings.burst.lossInBadPercent);
  }
  nonNegative("delayMs", settings.delayMs);
  nonNegative("jitterMs", settings.jitterMs);
  nonNegative("reorderDelayMs", settings.reorderDelayMs);
  nonNegative("queueLimitBytes", settings.queueLimitBytes);
  const rate = settings.rateBitsPerSecond;
  if (rate !== undefined && !(rate > 0 && Number.isFinite(rate))) {
    throw new RangeError(`${name}: rateBitsPerSecond must be a finite number > 0, got ${rate}`);
  }
  for (const outage of settings.outages) {
    if (!(outage.fromMs <= outage.toMs)) {
      throw new RangeError(
        `${name}: outage must have fromMs ≤ toMs, got ${JSON.stringify(outage)}`,
      );
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Paths

/** How to build a path; `both` applies to each direction before `forward`/`reverse`. */
export interface PathOptions {
  readonly both?: LinkOptions;
  readonly forward?: LinkOptions;
  readonly reverse?: LinkOptions;
  /** The client's address on this path as the server sees it; a fresh `pathN:PORT` by default. */
  readonly clientAddress?: string;
}

/** One path between client and server: forward (client → server) and reverse (server → client). */
export class Path {
  /** The path's position in {@link Network.paths}; the client sends and receives by it. */
  readonly index: number;
  /** Client → server. */
  readonly forward: Link;
  /** Server → client. */
  readonly reverse: Link;
  readonly #network: Network;

  /** Made by {@link Network.addPath}. */
  constructor(index: number, forward: Link, reverse: Link, network: Network) {
    this.index = index;
    this.forward = forward;
    this.reverse = reverse;
    this.#network = network;
  }

  /** The client's address on this path as the server sees it (and must reply to). */
  get clientAddress(): string {
    return this.#network.clientAddressOf(this.index);
  }

  /** Applies the same changes to both directions. */
  set(changes: LinkOptions): void {
    this.forward.set(changes);
    this.reverse.set(changes);
  }

  /** Gives the client a new address on this path, as a NAT rebinding would; returns it. */
  rebind(address?: string): string {
    return this.#network.setClientAddress(this.index, address);
  }
}

// ---------------------------------------------------------------------------------------------------
// The network

/** How to build a {@link Network}. */
export interface NetworkOptions {
  /** Seeds every link's generator. Print it when a test fails so the run can be replayed. */
  readonly seed: number;
  /** Paths to add at once, as with {@link Network.addPath}. */
  readonly paths?: readonly PathOptions[];
  /** Timer calls allowed at one instant per endpoint before it is called a busy loop. */
  readonly timerCallsPerInstantLimit?: number;
}

/** Counters that belong to no single link. */
export interface NetworkCounters {
  /** Server sends to an address no path currently has (e.g. the address before a NAT rebinding). */
  unroutableServerSends: number;
  /** Timer calls made on the client and the server. */
  clientTimerCalls: number;
  serverTimerCalls: number;
}

/** One datagram as seen by an observer at send time (before any impairment). */
export interface ObservedDatagram {
  readonly direction: "toServer" | "toClient";
  readonly pathIndex: number;
  /** The client's address on the path at send time. */
  readonly clientAddress: string;
  /** A copy: keep it or change it freely (e.g. to replay it later with an `inject` call). */
  readonly datagram: Uint8Array;
  readonly nowMs: number;
}

class EndpointSlot<E extends SimClientEndpoint | SimServerEndpoint> {
  endpoint: E | undefined = undefined;
  down = false;
  /** When the pending timer event fires, or undefined if none is pending. */
  scheduledAtMs: number | undefined = undefined;
  /** Bumped to cancel the pending timer event (the heap has no removal; stale events check this). */
  generation = 0;
  timerCallsAtInstant = 0;
  lastTimerCallMs = Number.NaN;

  constructor(readonly role: "client" | "server") {}

  describe(): string {
    const name = this.endpoint?.name;
    return name === undefined ? `${this.role} endpoint` : `${this.role} endpoint "${name}"`;
  }
}

/**
 * The simulated network: virtual clock, event queue, paths and the two endpoints.
 *
 * @example
 * ```ts
 * import { Network, type SimServerEndpoint } from "./network.ts";
 *
 * const network = new Network({
 *   seed: 42,
 *   paths: [{ both: { delayMs: 10 } }, { both: { delayMs: 30 } }],
 * });
 * const arrivals: string[] = [];
 * const server: SimServerEndpoint = {
 *   receiveFrom: (address, _datagram, nowMs) => arrivals.push(`${address}@${nowMs}`),
 *   onTimer() {},
 *   nextDeadlineMs: () => undefined,
 * };
 * network.attachServer(server);
 * network.schedule(0, () => {
 *   network.clientSend(0, new Uint8Array(8));
 *   network.clientSend(1, new Uint8Array(8));
 * });
 * network.runUntil(100);
 * // arrivals: ["path0:40000@10", "path1:40001@30"]
 * ```
 */
export class Network {
  /** The seed every link's generator is derived from. */
  readonly seed: number;
  readonly #queue = new EventQueue();
  readonly #paths: Path[] = [];
  readonly #clientAddresses: string[] = [];
  readonly #pathByClientAddress = new Map<string, number>();
  readonly #client = new EndpointSlot<SimClientEndpoint>("client");
  readonly #server = new EndpointSlot<SimServerEndpoint>("server");
  readonly #observers: ((observed: ObservedDatagram) => void)[] = [];
  readonly #timerCallsPerInstantLimit: number;
  readonly #counters: NetworkCounters = {
    unroutableServerSends: 0,
    clientTimerCalls: 0,
    serverTimerCalls: 0,
  };
  #nowMs = 0;
  #nextClientPort = FIRST_CLIENT_PORT;
  #running = false;

  constructor(options: NetworkOptions) {
    this.seed = options.seed;
    this.#timerCallsPerInstantLimit = options.timerCallsPerInstantLimit ??
      DEFAULT_TIMER_CALLS_PER_INSTANT_LIMIT;
    for (const path of options.paths ?? []) this.addPath(path);
  }

  /** The virtual clock, in milliseconds since the start of the run. */
  get nowMs(): number {
    return this.#nowMs;
  }

  /** Every path, by index. */
  get paths(): readonly Path[] {
    return this.#paths;
  }

  /** Counters that belong to no single link. */
  get counters(): Readonly<NetworkCounters> {
    return this.#counters;
  }

  /** Events still queued (arrivals in flight, scheduled calls, pending timers). */
  get pendingEvents(): number {
    return this.#queue.size;
  }

  /** Adds a path with the next index. Its links' generators depend only on the seed and that index. */
  addPath(options: PathOptions = {}): Path {
    const index = this.#paths.length;
    const schedule = (atMs: number, run: (nowMs: number) => void) => this.#queue.push(atMs, run);
    const makeLink = (direction: "forward" | "reverse", linkIndex: number) => {
      const link = new Link(
        `path${index} ${direction}`,
        seededRandom(deriveLinkSeed(this.seed, linkIndex)),
        schedule,
        options.both,
      );
      link.set(options[direction] ?? {});
      return link;
    };
    const path = new Path(
      index,
      makeLink("forward", 2 * index),
      makeLink("reverse", 2 * index + 1),
      this,
    );
    this.#paths.push(path);
    this.#clientAddresses.push("");
    this.setClientAddress(index, options.clientAddress);
    return path;
  }

  /** The path at `index`; throws if there is none. */
  path(index: number): Path {
    const path = this.#paths[index];
    if (path === undefined) {
      throw new RangeError(`no path ${index}: the network has ${this.#paths.length} path(s)`);
    }
    return path;
  }

  /** The client's address on path `pathIndex` as the server sees it. */
  clientAddressOf(pathIndex: number): string {
    return this.#clientAddresses[this.path(pathIndex).index];
  }

  /**
   * Changes the client's address on a path as the server sees it (a NAT rebinding): datagrams sent
   * from now on carry the new address, and server sends to the old one are unroutable. Without an
   * address, takes a fresh `pathN:PORT`. Returns the new address.
   */
  setClientAddress(pathIndex: number, address?: string): string {
    this.path(pathIndex);
    const next = address ?? `path${pathIndex}:${this.#nextClientPort++}`;
    const owner = this.#pathByClientAddress.get(next);
    if (owner !== undefined && owner !== pathIndex) {
      throw new Error(`address ${next} is already path ${owner}'s client address`);
    }
    this.#pathByClientAddress.delete(this.#clientAddresses[pathIndex]);
    this.#clientAddresses[pathIndex] = next;
    this.#pathByClientAddress.set(next, pathIndex);
    return next;
  }

  /** Attaches the first client endpoint; throws if one is attached (use {@link replaceClient}). */
  attachClient(endpoint: SimClientEndpoint): void {
    if (this.#client.endpoint !== undefined) {
      throw new Error("a client endpoint is already attached; use replaceClient");
    }
    this.replaceClient(endpoint);
  }

  /** Attaches the first server endpoint; throws if one is attached (use {@link replaceServer}). */
  attachServer(endpoint: SimServerEndpoint): void {
    if (this.#server.endpoint !== undefined) {
      throw new Error("a server endpoint is already attached; use replaceServer");
    }
    this.replaceServer(endpoint);
  }

  /** Swaps the client (a process restart): the old one gets no more calls; in-flight datagrams go to the new one. */
  replaceClient(endpoint: SimClientEndpoint): void {
    this.#replace(this.#client, endpoint);
  }

  /** Swaps the server (a process restart): the old one gets no more calls; in-flight datagrams go to the new one. */
  replaceServer(endpoint: SimServerEndpoint): void {
    this.#replace(this.#server, endpoint);
  }

  /** While down, the client gets no datagrams (dropped as `receiverDown`) and no timer calls. */
  setClientDown(down: boolean): void {
    this.#client.down = down;
    this.#refreshTimer(this.#client);
  }

  /** While down, the server gets no datagrams (dropped as `receiverDown`) and no timer calls. */
  setServerDown(down: boolean): void {
    this.#server.down = down;
    this.#refreshTimer(this.#server);
  }

  /** Sends from the client on a path. The datagram is copied now, so the caller may reuse its buffer. */
  clientSend(pathIndex: number, datagram: Uint8Array): void {
    const path = this.path(pathIndex);
    const sourceAddress = this.#clientAddresses[pathIndex];
    const copy = datagram.slice();
    this.#notify("toServer", pathIndex, sourceAddress, copy);
    path.forward.send(copy, this.#nowMs, (arrived, nowMs) => {
      return this.#deliverToServer(sourceAddress, arrived, nowMs);
    });
  }

  /**
   * Sends from the server to an address. The datagram is copied now. An address no path has (say,
   * one from before a NAT rebinding) is counted in `unroutableServerSends` and dropped.
   */
  serverSend(address: string, datagram: Uint8Array): void {
    const pathIndex = this.#pathByClientAddress.get(address);
    if (pathIndex === undefined) {
      this.#counters.unroutableServerSends++;
      return;
    }
    const copy = datagram.slice();
    this.#notify("toClient", pathIndex, address, copy);
    this.#paths[pathIndex].reverse.send(copy, this.#nowMs, (arrived, nowMs) => {
      return this.#deliverToClient(pathIndex, arrived, nowMs);
    });
  }

  /** Calls `observer` with a copy of every datagram an endpoint sends, before any impairment. */
  observe(observer: (observed: ObservedDatagram) => void): void {
    this.#observers.push(observer);
  }

  /** Delivers a datagram to the server as if from `address`, at `atMs` (now by default), past every link. */
  injectToServer(address: string, datagram: Uint8Array, atMs = this.#nowMs): void {
    const copy = datagram.slice();
    this.schedule(atMs, (nowMs) => this.#deliverToServer(address, copy, nowMs));
  }

  /** Delivers a datagram to the client on a path, at `atMs` (now by default), past every link. */
  injectToClient(pathIndex: number, datagram: Uint8Array, atMs = this.#nowMs): void {
    this.path(pathIndex);
    const copy = datagram.slice();
    this.schedule(atMs, (nowMs) => this.#deliverToClient(pathIndex, copy, nowMs));
  }

  /**
   * Runs `run` at virtual time `atMs` (not before now). Events at the same time run in the order
   * they were scheduled.
   */
  schedule(atMs: number, run: (nowMs: number) => void): void {
    if (!(atMs >= this.#nowMs)) {
      throw new RangeError(
        `cannot schedule at ${atMs} ms: the clock is already at ${this.#nowMs} ms`,
      );
    }
    this.#queue.push(atMs, run);
  }

  /**
   * Processes every event up to and including `endMs`, then sets the clock to `endMs`. Exceptions
   * from endpoints and scheduled calls propagate (programming errors should stop the test).
   */
  runUntil(endMs: number): void {
    if (!(endMs >= this.#nowMs)) {
      throw new RangeError(
        `cannot run until ${endMs} ms: the clock is already at ${this.#nowMs} ms`,
      );
    }
    if (this.#running) throw new Error("runUntil called from inside an event");
    this.#running = true;
    try {
      // Test code may have called an endpoint directly since the last run.
      this.#refreshTimer(this.#client);
      this.#refreshTimer(this.#server);
      for (;;) {
        const nextMs = this.#queue.peekTimeMs();
        if (nextMs === undefined || nextMs > endMs) break;
        const event = this.#queue.pop()!;
        this.#nowMs = event.atMs;
        event.run(event.atMs);
        this.#refreshTimer(this.#client);
        this.#refreshTimer(this.#server);
      }
      this.#nowMs = endMs;
    } finally {
      this.#running = false;
    }
  }

  /** Runs for `durationMs` more milliseconds of virtual time. */
  runFor(durationMs: number): void {
    this.runUntil(this.#nowMs + durationMs);
  }

  #notify(
    direction: ObservedDatagram["direction"],
    pathIndex: number,
    clientAddress: string,
    datagram: Uint8Array,
  ): void {
    for (const observer of this.#observers) {
      observer({
        direction,
        pathIndex,
        clientAddress,
        datagram: datagram.slice(),
        nowMs: this.#nowMs,
      });
    }
  }

  #deliverToServer(address: string, datagram: Uint8Array, nowMs: number): boolean {
    const slot = this.#server;
    if (slot.down || slot.endpoint === undefined) return false;
    slot.endpoint.receiveFrom(address, datagram, nowMs);
    return true;
  }

  #deliverToClient(pathIndex: number, datagram: Uint8Array, nowMs: number): boolean {
    const slot = this.#client;
    if (slot.down || slot.endpoint === undefined) return false;
    slot.endpoint.receiveFromPath(pathIndex, datagram, nowMs);
    return true;
  }

  #replace<E extends SimClientEndpoint | SimServerEndpoint>(
    slot: EndpointSlot<E>,
    endpoint: E,
  ): void {
    slot.endpoint = endpoint;
    slot.generation++;
    slot.scheduledAtMs = undefined;
    slot.timerCallsAtInstant = 0;
    slot.lastTimerCallMs = Number.NaN;
    this.#refreshTimer(slot);
  }

  /** Makes the pending timer event match the endpoint's current deadline. */
  #refreshTimer<E extends SimClientEndpoint | SimServerEndpoint>(slot: EndpointSlot<E>): void {
    const endpoint = slot.endpoint;
    let deadlineMs: number | undefined = undefined;
    if (endpoint !== undefined && !slot.down) {
      deadlineMs = endpoint.nextDeadlineMs();
      if (Number.isNaN(deadlineMs)) {
        throw new Error(`${slot.describe()} returned NaN from nextDeadlineMs()`);
      }
      if (deadlineMs === Infinity) deadlineMs = undefined;
    }
    // A deadline already past fires now: late, never early.
    const atMs = deadlineMs === undefined ? undefined : Math.max(deadlineMs, this.#nowMs);
    if (atMs === slot.scheduledAtMs) return;
    slot.generation++;
    slot.scheduledAtMs = atMs;
    if (atMs === undefined) return;
    const generation = slot.generation;
    this.#queue.push(atMs, (nowMs) => this.#fireTimer(slot, generation, nowMs));
  }

  #fireTimer<E extends SimClientEndpoint | SimServerEndpoint>(
    slot: EndpointSlot<E>,
    generation: number,
    nowMs: number,
  ): void {
    if (generation !== slot.generation) return;
    slot.scheduledAtMs = undefined;
    const endpoint = slot.endpoint;
    if (endpoint === undefined || slot.down) return;
    const deadlineMs = endpoint.nextDeadlineMs();
    // The deadline moved later without an event in between (cannot happen through the network, but
    // a test may poke the endpoint directly): the refresh after this event reschedules it.
    if (deadlineMs === undefined || deadlineMs > nowMs) return;
    if (nowMs === slot.lastTimerCallMs) {
      slot.timerCallsAtInstant++;
      if (slot.timerCallsAtInstant > this.#timerCallsPerInstantLimit) {
        throw new Error(
          `timer busy loop: ${slot.describe()} had onTimer called ${slot.timerCallsAtInstant} times ` +
            `at ${nowMs} ms and nextDeadlineMs() still returns ${deadlineMs} (≤ now); ` +
            `after onTimer it must report a later deadline or undefined`,
        );
      }
    } else {
      slot.lastTimerCallMs = nowMs;
      slot.timerCallsAtInstant = 1;
    }
    if (slot.role === "client") this.#counters.clientTimerCalls++;
    else this.#counters.serverTimerCalls++;
    endpoint.onTimer(nowMs);
  }
}

/** Mixes the network seed and a link's index into that link's seed (MurmurHash3's finaliser). */
function deriveLinkSeed(networkSeed: number, linkIndex: number): number {
  return finalMix32((networkSeed >>> 0) ^ finalMix32((linkIndex + 0x9e3779b9) >>> 0));
}

function finalMix32(value: number): number {
  let h = value >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

// ---------------------------------------------------------------------------------------------------
// Application traffic

/** Bytes of the application header: sequence number then stream id, both 32-bit big-endian. */
export const APP_HEADER_BYTES = 8;

/** What an application payload says about itself. */
export interface AppHeader {
  readonly seq: number;
  readonly streamId: number;
}

/**
 * Makes an application payload: `seq` (u32 BE), `streamId` (u32 BE), then a filler derived from both
 * so that {@link readAppPayload} can tell a corrupted payload.
 */
export function makeAppPayload(streamId: number, seq: number, sizeBytes: number): Uint8Array {
  if (!(sizeBytes >= APP_HEADER_BYTES)) {
    throw new RangeError(
      `an app payload needs at least ${APP_HEADER_BYTES} bytes, got ${sizeBytes}`,
    );
  }
  const payload = new Uint8Array(sizeBytes);
  const view = new DataView(payload.buffer);
  view.setUint32(0, seq >>> 0);
  view.setUint32(4, streamId >>> 0);
  const start = fillerStart(streamId, seq);
  for (let index = APP_HEADER_BYTES; index < sizeBytes; index++) {
    payload[index] = (start + index) & 0xff;
  }
  return payload;
}

/** Reads an application payload's header; `undefined` if it is too short or its filler is wrong. */
export function readAppPayload(payload: Uint8Array): AppHeader | undefined {
  if (payload.length < APP_HEADER_BYTES) return undefined;
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const seq = view.getUint32(0);
  const streamId = view.getUint32(4);
  const start = fillerStart(streamId, seq);
  for (let index = APP_HEADER_BYTES; index < payload.length; index++) {
    if (payload[index] !== ((start + index) & 0xff)) return undefined;
  }
  return { seq, streamId };
}

function fillerStart(streamId: number, seq: number): number {
  return (Math.imul(seq, 31) + Math.imul(streamId, 17)) >>> 0;
}

/** How to run a {@link constantStream}. */
export interface ConstantStreamOptions {
  readonly network: Network;
  /** Time of the first send (sequence number 0). */
  readonly startMs: number;
  readonly intervalMs: number;
  /** How many datagrams to send: sequence numbers `0 .. count - 1`. */
  readonly count: number;
  /** Payload size, at least {@link APP_HEADER_BYTES}. */
  readonly sizeBytes: number;
  /** Written after the sequence number so that two streams can be told apart; 1 by default. */
  readonly streamId?: number;
  /** Hands one payload (a fresh buffer) to the sending side, e.g. to the client's tunnel input. */
  readonly send: (seq: number, payload: Uint8Array) => void;
}

/** A running constant-rate stream. */
export interface ConstantStream {
  readonly streamId: number;
  readonly count: number;
  /** Datagrams sent so far. */
  readonly sent: number;
  /** When sequence number `seq` is (or was) sent. */
  sentAtMs(seq: number): number;
  /** When the last datagram is sent. */
  readonly lastSendMs: number;
}

/**
 * Schedules `count` application sends, one every `intervalMs` from `startMs`. Only the next send is
 * queued at any time, so long streams cost no memory up front.
 *
 * @example
 * ```ts
 * import { constantStream, DeliveryRecorder, Network } from "./network.ts";
 *
 * const network = new Network({ seed: 3 });
 * const recorder = new DeliveryRecorder(1);
 * const stream = constantStream({
 *   network, startMs: 0, intervalMs: 1, count: 1000, sizeBytes: 100,
 *   send: (_seq, payload) => recorder.record(payload, network.nowMs),
 * });
 * network.runUntil(stream.lastSendMs);
 * // recorder.lossRatio(stream.count) === 0
 * ```
 */
export function constantStream(options: ConstantStreamOptions): ConstantStream {
  const { network, startMs, intervalMs, count, sizeBytes, send } = options;
  const streamId = options.streamId ?? 1;
  if (!(intervalMs > 0)) throw new RangeError(`intervalMs must be > 0, got ${intervalMs}`);
  if (!(Number.isInteger(count) && count >= 0)) {
    throw new RangeError(`count must be a whole number ≥ 0, got ${count}`);
  }
  // Multiplying rather than adding keeps send times exact over long runs.
  const sentAtMs = (seq: number) => startMs + seq * intervalMs;
  let sent = 0;
  const sendNext = () => {
    const seq = sent++;
    send(seq, makeAppPayload(streamId, seq, sizeBytes));
    if (sent < count) network.schedule(sentAtMs(sent), sendNext);
  };
  if (count > 0) network.schedule(startMs, sendNext);
  return {
    streamId,
    count,
    get sent() {
      return sent;
    },
    sentAtMs,
    lastSendMs: sentAtMs(Math.max(0, count - 1)),
  };
}

/** One-way latencies of first copies, by nearest rank. */
export interface LatencySummary {
  readonly count: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/**
 * Records which sequence numbers of one stream arrived, and when, at the receiving application.
 * Payloads of other streams and corrupted payloads are counted, not recorded.
 */
export class DeliveryRecorder {
  /** The stream this recorder accepts. */
  readonly streamId: number;
  readonly #firstArrivalMs = new Map<number, number>();
  /** First-arrival times in recording order (non-decreasing when driven by the simulator). */
  readonly #arrivalTimesMs: number[] = [];
  #duplicates = 0;
  #foreign = 0;
  #malformed = 0;

  constructor(streamId = 1) {
    this.streamId = streamId;
  }

  /** Records a payload made by {@link makeAppPayload}, delivered at `nowMs`. */
  record(payload: Uint8Array, nowMs: number): void {
    const header = readAppPayload(payload);
    if (header === undefined) this.#malformed++;
    else if (header.streamId !== this.streamId) this.#foreign++;
    else this.recordSequence(header.seq, nowMs);
  }

  /** Records sequence number `seq` delivered at `nowMs`. */
  recordSequence(seq: number, nowMs: number): void {
    if (this.#firstArrivalMs.has(seq)) {
      this.#duplicates++;
      return;
    }
    this.#firstArrivalMs.set(seq, nowMs);
    this.#arrivalTimesMs.push(nowMs);
  }

  /** Distinct sequence numbers delivered. */
  get unique(): number {
    return this.#firstArrivalMs.size;
  }

  /** Deliveries of a sequence number already delivered. */
  get duplicates(): number {
    return this.#duplicates;
  }

  /** Well-formed payloads of another stream. */
  get foreign(): number {
    return this.#foreign;
  }

  /** Payloads too short or with a corrupted filler. */
  get malformed(): number {
    return this.#malformed;
  }

  /** When `seq` first arrived, or `undefined`. */
  firstArrivalMs(seq: number): number | undefined {
    return this.#firstArrivalMs.get(seq);
  }

  /** The share of `0 .. expectedCount - 1` never delivered. */
  lossRatio(expectedCount: number): number {
    if (expectedCount <= 0) return 0;
    let delivered = 0;
    for (const seq of this.#firstArrivalMs.keys()) if (seq < expectedCount) delivered++;
    return 1 - delivered / expectedCount;
  }

  /**
   * The longest stretch of `[fromMs, toMs]` without a new delivery, counting the edges (from `fromMs`
   * to the first delivery, from the last to `toMs`): how long the application saw nothing, e.g.
   * across a failover.
   */
  longestGapMs(fromMs: number, toMs: number): number {
    const times = Float64Array.from(this.#arrivalTimesMs).sort();
    let longest = 0;
    let previousMs = fromMs;
    for (const timeMs of times) {
      if (timeMs < fromMs) continue;
      if (timeMs > toMs) break;
      longest = Math.max(longest, timeMs - previousMs);
      previousMs = timeMs;
    }
    return Math.max(longest, toMs - previousMs);
  }

  /** Latency of every delivered sequence number's first copy, given when each was sent. */
  latency(sentAtMs: (seq: number) => number): LatencySummary {
    const latencies = new Float64Array(this.#firstArrivalMs.size);
    let index = 0;
    for (const [seq, arrivalMs] of this.#firstArrivalMs) {
      latencies[index++] = arrivalMs - sentAtMs(seq);
    }
    latencies.sort();
    const rank = (fraction: number) =>
      latencies.length === 0
        ? Number.NaN
        : latencies[Math.max(0, Math.ceil(fraction * latencies.length) - 1)];
    return {
      count: latencies.length,
      p50Ms: rank(0.5),
      p99Ms: rank(0.99),
      maxMs: latencies.length === 0 ? Number.NaN : latencies[latencies.length - 1],
    };
  }
}
