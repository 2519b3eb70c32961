/**
 * The client's driver: the sockets and the timer around {@link ClientCore}. One socket listens for
 * applications; each path has a socket of its own (its own source port, so bridges and NATs see one
 * mapping per path). Each distinct application address is a flow; replies go back to it.
 *
 * Every receive loop owns a receive buffer and a scratch buffer, and waits for the sends it started
 * before it receives again, because Deno reads a send buffer when the send runs.
 */

import { formatHostPort, type HostPort } from "./address.ts";
import type { FecParameters } from "./fec.ts";
import type { SchedulingMode } from "./scheduler.ts";
import {
  ClientCore,
  type ClientOutbox,
  type ClientTiming,
  formatSessionId,
} from "./client_core.ts";
import type { SecretKeys } from "./handshake.ts";
import type { Logger } from "./log.ts";
import { isHostName, resolveHost, wildcardFor } from "./resolve.ts";
import { formatDrops } from "./stats.ts";
import { DeadlineTimer } from "./deadline_timer.ts";
import { bindUdp, classifySendError, type DatagramTransport, type UdpAddress } from "./udp.ts";
import { MAX_FLOW_ID } from "./wire.ts";

/** A path as the driver needs it: where to send. */
export interface ClientPathTarget {
  readonly host: string;
  readonly port: number;
  /** How logs name it; HOST:PORT when omitted. */
  readonly label?: string;
  /** The local address to send from (bind); the wildcard of the destination's family when omitted. */
  readonly fromAddress?: string;
  /** Carries data only while no other path is up. */
  readonly backup?: boolean;
  /** Share of datagrams in balance mode (default 1). */
  readonly weight?: number;
}

/** How the client spreads datagrams over its paths (see `lib/scheduler.ts`). */
export interface ClientScheduling {
  readonly mode: SchedulingMode;
  readonly targetLossRatio?: number;
  readonly fec?: FecParameters | "auto";
  readonly reorderTimeoutMs?: number;
}

/** What starts a client. */
export interface ClientDriverOptions {
  /** Where applications send. */
  readonly listen: HostPort;
  readonly paths: readonly ClientPathTarget[];
  readonly secret?: SecretKeys;
  readonly logger: Logger;
  readonly timing?: Partial<ClientTiming>;
  /** Redundant mode when omitted. */
  readonly scheduling?: ClientScheduling;
  /** A flow whose application has been silent this long is forgotten. */
  readonly flowIdleTimeoutMs?: number;
  /** A path down this long has its host name resolved again, then every this often. */
  readonly reresolveAfterMs?: number;
}

const RECEIVE_BUFFER_BYTES = 65536;
const MAINTENANCE_INTERVAL_MS = 1000;
const DEFAULT_FLOW_IDLE_TIMEOUT_MS = 180_000;
const DEFAULT_RERESOLVE_AFTER_MS = 5000;

/** One application address talking through the tunnel. */
interface Flow {
  readonly id: number;
  readonly address: UdpAddress;
  lastActiveMs: number;
}

/** A path's socket and where it sends. */
interface PathSocket {
  readonly target: ClientPathTarget;
  readonly transport: DatagramTransport;
  destination: UdpAddress;
  lastResolvedMs: number;
  /** Set when a reload removed the path: its loop ends. */
  closed: boolean;
  /** Counts a failed send on this path (made once, not per datagram). */
  onSendError: (error: unknown) => void;
}

/** `::ffff:192.0.2.1` → `192.0.2.1`; any other address unchanged. */
function unmapIPv4(hostname: string): string {
  return hostname.startsWith("::ffff:") && hostname.includes(".") ? hostname.slice(7) : hostname;
}

/** Two path lines name the same path when everything about them is the same. */
function samePath(a: ClientPathTarget, b: ClientPathTarget): boolean {
  return a.host === b.host && a.port === b.port && a.label === b.label &&
    a.fromAddress === b.fromAddress && (a.backup ?? false) === (b.backup ?? false);
}

/** A path's label: its name, or HOST:PORT. */
function pathLabel(target: ClientPathTarget): string {
  return target.label ?? formatHostPort({ hostname: target.host, port: target.port });
}

/** Resolves a path's host and binds its socket (its send-error handler is set by the caller). */
async function openPath(target: ClientPathTarget, logger: Logger): Promise<PathSocket> {
  const address = await resolveHost(target.host).catch((error) => {
    logger.warning("cannot resolve a path's host yet; will retry", {
      host: target.host,
      error: (error as Error).message,
    });
    return undefined;
  });
  return {
    target,
    transport: bindUdp({
      hostname: target.fromAddress ?? wildcardFor(address ?? "0.0.0.0"),
      port: 0,
    }),
    destination: { transport: "udp", hostname: address ?? target.host, port: target.port },
    lastResolvedMs: performance.now(),
    closed: false,
    onSendError: () => {},
  };
}

/** A running mpclient. */
export class ClientDriver {
  readonly core: ClientCore;
  readonly app: DatagramTransport;
  /** Path sockets by the core's path index (a removed path leaves a hole). */
  readonly #paths: (PathSocket | undefined)[];
  readonly #logger: Logger;
  readonly #flowsByHost = new Map<string, Map<number, Flow>>();
  readonly #flowsById = new Map<number, Flow>();
  readonly #flowIdleTimeoutMs: number;
  readonly #reresolveAfterMs: number;
  /** The running receive loops (a removed path's loop leaves the set when it ends). */
  readonly #loops = new Set<Promise<void>>();
  #nextFlowId = 1;
  #maintenanceTimer: ReturnType<typeof setInterval> | undefined;
  #stopping = false;

  private constructor(options: ClientDriverOptions, paths: PathSocket[], app: DatagramTransport) {
    this.#paths = paths;
    this.app = app;
    this.#logger = options.logger;
    this.#flowIdleTimeoutMs = options.flowIdleTimeoutMs ?? DEFAULT_FLOW_IDLE_TIMEOUT_MS;
    this.#reresolveAfterMs = options.reresolveAfterMs ?? DEFAULT_RERESOLVE_AFTER_MS;
    this.core = new ClientCore({
      backupPaths: paths.map((path) => path.target.backup ?? false),
      pathWeights: paths.map((path) => path.target.weight ?? 1),
      mode: options.scheduling?.mode,
      targetLossRatio: options.scheduling?.targetLossRatio,
      fec: options.scheduling?.fec,
      reorderTimeoutMs: options.scheduling?.reorderTimeoutMs,
      pathLabels: paths.map((path) => pathLabel(path.target)),
      secret: options.secret,
      logger: options.logger,
      timing: options.timing,
    });
  }

  /** Resolves the paths, binds every socket and starts the loops. */
  static async start(options: ClientDriverOptions): Promise<ClientDriver> {
    const paths: PathSocket[] = [];
    const app = bindUdp(options.listen);
    try {
      for (const target of options.paths) paths.push(await openPath(target, options.logger));
    } catch (error) {
      app.close();
      for (const path of paths) path.transport.close();
      throw error;
    }
    const driver = new ClientDriver(options, paths, app);
    paths.forEach((path, index) => {
      path.onSendError = (error) => driver.#sendFailed(index, error);
    });
    driver.#run();
    return driver;
  }

  /**
   * Makes the paths those of `targets` (on a configuration reload): paths that stay keep their
   * socket and state, removed ones are closed, new ones are opened and probed. The session and the
   * application's traffic carry on over the paths that stay.
   */
  async reconfigure(
    targets: readonly ClientPathTarget[],
  ): Promise<{ added: number; removed: number }> {
    const current = this.#paths.flatMap((path, index) => path ? [{ path, index }] : []);
    const removed = current.filter(({ path }) =>
      !targets.some((target) => samePath(target, path.target))
    );
    const added = targets.filter((target) =>
      !current.some(({ path }) => samePath(target, path.target))
    );
    // Open the new paths first, so a mistake leaves everything as it was.
    const opened: PathSocket[] = [];
    try {
      for (const target of added) opened.push(await openPath(target, this.#logger));
    } catch (error) {
      for (const path of opened) path.transport.close();
      throw error;
    }
    for (const path of opened) {
      const index = this.core.addPath(
        pathLabel(path.target),
        path.target.backup ?? false,
        path.target.weight ?? 1,
      );
      path.onSendError = (error) => this.#sendFailed(index, error);
      this.#paths[index] = path;
      this.#track(this.#pathLoop(index));
    }
    for (const { path, index } of removed) {
      this.core.removePath(index);
      this.#paths[index] = undefined;
      path.closed = true;
      path.transport.close();
    }
    this.#armTimer();
    return { added: opened.length, removed: removed.length };
  }

  /** The address applications send to. */
  get listenAddress(): UdpAddress {
    return this.app.localAddress;
  }

  /** Datagrams from the server for a flow this client no longer tracks (counted, dropped). */
  repliesForGoneFlows = 0;

  /** When the client started (`performance.now()` time). */
  readonly startedAtMs: number = performance.now();

  /** Where each path sends from and to, in path order (for status output). */
  pathAddresses(): { readonly local: UdpAddress; readonly remote: UdpAddress }[] {
    return this.core.paths.map((state) => {
      const path = this.#paths[state.index]!;
      return { local: path.transport.localAddress, remote: path.destination };
    });
  }

  /** Application flows being tracked. */
  get flowCount(): number {
    return this.#flowsById.size;
  }

  /** Closes every socket and timer and waits for the loops to end. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#timer.cancel();
    clearInterval(this.#maintenanceTimer);
    this.app.close();
    for (const path of this.#paths) path?.transport.close();
    while (this.#loops.size > 0) await Promise.allSettled([...this.#loops]);
  }

  /** One line of totals, for the log at exit. */
  statsLine(): string {
    const counters = this.core.counters;
    const paths = this.core.paths.map((path) =>
      `${path.label}[${path.state} sent=${path.sent.datagrams} received=${path.received.datagrams} errors=${path.totalSendErrors}]`
    ).join(" ");
    return `session=${
      formatSessionId(this.core.sessionId)
    } from-app=${counters.fromApp.datagrams} to-app=${counters.toApp.datagrams} duplicates=${counters.duplicates} replies-for-gone-flows=${this.repliesForGoneFlows} drops: ${
      formatDrops(counters.drops)
    } paths: ${paths}`;
  }

  #run(): void {
    this.#track(this.#appLoop());
    this.#paths.forEach((_, index) => this.#track(this.#pathLoop(index)));
    this.#maintenanceTimer = setInterval(() => this.#maintain(), MAINTENANCE_INTERVAL_MS);
    this.#armTimer();
  }

  #track(loop: Promise<void>): void {
    this.#loops.add(loop);
    loop.finally(() => this.#loops.delete(loop));
  }

  /** Makes an outbox for one loop: its sends are collected so the loop can wait for them. */
  #outbox(pending: Promise<unknown>[]): ClientOutbox {
    const appSendFailed = (error: unknown) => this.#appSendFailed(error);
    return {
      scratch: new Uint8Array(RECEIVE_BUFFER_BYTES),
      sendOnPath: (pathIndex, datagram) => {
        const path = this.#paths[pathIndex];
        if (path) {
          pending.push(path.transport.send(datagram, path.destination).catch(path.onSendError));
        }
      },
      deliverToApp: (flowId, payload) => {
        const flow = this.#flowsById.get(flowId);
        if (!flow) {
          this.repliesForGoneFlows++; // the application's flow expired or never existed here
          return;
        }
        // Replies keep a flow alive too: an application may send once and then mostly listen.
        flow.lastActiveMs = performance.now();
        pending.push(this.app.send(payload, flow.address).catch(appSendFailed));
      },
    };
  }

  async #appLoop(): Promise<void> {
    const pending: Promise<unknown>[] = [];
    const outbox = this.#outbox(pending);
    const buffer = new Uint8Array(RECEIVE_BUFFER_BYTES);
    while (!this.#stopping) {
      let received: [Uint8Array, UdpAddress];
      try {
        received = await this.app.receive(buffer);
      } catch (error) {
        if (this.#stopping) return;
        this.#logger.warning("receive failed on the application socket", { error: String(error) });
        continue;
      }
      const [payload, from] = received;
      const now = performance.now();
      const flow = this.#flowFor(from, now);
      if (!flow) continue;
      this.core.sendFromApp(flow.id, payload, now, outbox);
      await this.#settle(pending);
    }
  }

  async #pathLoop(index: number): Promise<void> {
    const pending: Promise<unknown>[] = [];
    const outbox = this.#outbox(pending);
    const buffer = new Uint8Array(RECEIVE_BUFFER_BYTES);
    const path = this.#paths[index]!;
    while (!this.#stopping && !path.closed) {
      let received: [Uint8Array, UdpAddress];
      try {
        received = await path.transport.receive(buffer);
      } catch (error) {
        if (this.#stopping || path.closed) return;
        this.#logger.debug("receive failed on a path socket", {
          path: index,
          error: String(error),
        });
        continue;
      }
      const [datagram, from] = received;
      // Only the path's own destination may speak on its socket. (An IPv6 socket reports an IPv4
      // peer as ::ffff:a.b.c.d.)
      if (
        from.port !== path.destination.port ||
        unmapIPv4(from.hostname) !== unmapIPv4(path.destination.hostname)
      ) {
        this.core.counters.drops.unexpected++;
        continue;
      }
      this.core.receiveFromPath(index, datagram, performance.now(), outbox);
      await this.#settle(pending);
    }
  }

  async #settle(pending: Promise<unknown>[]): Promise<void> {
    if (pending.length > 0) {
      await Promise.all(pending);
      pending.length = 0;
    }
    this.#armTimer();
  }

  #flowFor(from: UdpAddress, nowMs: number): Flow | undefined {
    let byPort = this.#flowsByHost.get(from.hostname);
    let flow = byPort?.get(from.port);
    if (flow) {
      flow.lastActiveMs = nowMs;
      return flow;
    }
    if (this.#flowsById.size >= MAX_FLOW_ID) return undefined;
    while (this.#flowsById.has(this.#nextFlowId)) {
      this.#nextFlowId = this.#nextFlowId >= MAX_FLOW_ID ? 1 : this.#nextFlowId + 1;
    }
    flow = {
      id: this.#nextFlowId,
      address: { transport: "udp", hostname: from.hostname, port: from.port },
      lastActiveMs: nowMs,
    };
    this.#nextFlowId = this.#nextFlowId >= MAX_FLOW_ID ? 1 : this.#nextFlowId + 1;
    if (!byPort) this.#flowsByHost.set(from.hostname, byPort = new Map());
    byPort.set(from.port, flow);
    this.#flowsById.set(flow.id, flow);
    this.#logger.debug("new application flow", {
      flow: flow.id,
      from: `${from.hostname}:${from.port}`,
    });
    return flow;
  }

  #sendFailed(pathIndex: number, error: unknown): void {
    const kind = classifySendError(error);
    if (kind === undefined) {
      if (this.#stopping) return;
      throw error;
    }
    this.core.recordSendError(pathIndex, kind, performance.now());
  }

  #appSendFailed(error: unknown): void {
    if (this.#stopping || classifySendError(error) !== undefined) return;
    throw error;
  }

  /** Keeps the timer armed for the core's next deadline. */
  #armTimer(): void {
    if (!this.#stopping) this.#timer.arm(this.core.nextDeadlineMs());
  }

  readonly #timer = new DeadlineTimer(() => void this.#fireTimer());
  #timerPending: Promise<unknown>[] = [];
  #timerOutbox: ClientOutbox | undefined;

  async #fireTimer(): Promise<void> {
    if (this.#stopping) return;
    this.#timerOutbox ??= this.#outbox(this.#timerPending);
    this.core.onTimer(performance.now(), this.#timerOutbox);
    await this.#settle(this.#timerPending);
  }

  /** Once a second: forget idle flows, resolve the host names of dead paths again. */
  #maintain(): void {
    const now = performance.now();
    for (const flow of this.#flowsById.values()) {
      if (now - flow.lastActiveMs < this.#flowIdleTimeoutMs) continue;
      this.#flowsById.delete(flow.id);
      this.#flowsByHost.get(flow.address.hostname)?.delete(flow.address.port);
    }
    this.#paths.forEach((path, index) => {
      const state = this.core.paths.find((known) => known.index === index);
      if (!path || !state) return;
      const silentMs = now - Math.max(state.lastHeardMs, path.lastResolvedMs);
      if (
        state.state === "up" || !isHostName(path.target.host) || silentMs < this.#reresolveAfterMs
      ) return;
      path.lastResolvedMs = now;
      resolveHost(path.target.host).then((address) => {
        if (this.#stopping || address === path.destination.hostname) return;
        this.#logger.info("path host resolved to a new address", { path: state.label, address });
        path.destination = { transport: "udp", hostname: address, port: path.target.port };
      }, (error) => {
        this.#logger.debug("cannot resolve a path's host", {
          path: state.label,
          error: String(error),
        });
      });
    });
  }
}
