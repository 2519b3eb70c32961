/**
 * The client's driver: the sockets and the timer around {@link ClientCore}. One socket listens for
 * applications; each path has a socket of its own (its own source port, so bridges and NATs see one
 * mapping per path). Each distinct application address is a flow; replies go back to it.
 *
 * A path's socket is not forever: a path bound to an interface (`dev`, `uplinks auto`) is re-opened
 * on the interface's new address when it changes, and a path that stays silent is re-opened on a
 * fresh source port (a stale NAT mapping is the usual cause). The core keeps the path's index and
 * state, and the server follows the path to its new address; a socket's receive loop ends when the
 * socket is replaced.
 *
 * Every receive loop owns a receive buffer and a scratch buffer, and waits for the sends it started
 * before it receives again, because Deno reads a send buffer when the send runs.
 */

import { formatHostPort, type HostPort, isIPv6Literal } from "./address.ts";
import { assertNever } from "./assert.ts";
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
import { type InterfaceChange, watchInterfaces } from "./interfaces.ts";
import { isHostName, resolveHost, wildcardFor } from "./resolve.ts";
import { firstLook, type UplinkAction, UplinkManager } from "./uplinks.ts";
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
  /** The local interface to send through: its current address of the destination's family. */
  readonly device?: string;
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
  /** A path down this long is re-opened on a fresh source port, then every this often. */
  readonly reopenAfterMs?: number;
  /** `uplinks auto HOST PORT`: a path to this address per usable interface, named after it. */
  readonly uplinksAuto?: {
    readonly host: string;
    readonly port: number;
    /** Interfaces left out (`exclude` lines). */
    readonly excluded?: readonly string[];
  };
  /** How the interfaces are read, for `dev` paths and `uplinks auto` (tests inject a list). */
  readonly interfaces?: {
    /** Default `Deno.networkInterfaces`. */
    readonly read?: () => Deno.NetworkInterfaceInfo[];
    /** Default 1000 ms. */
    readonly intervalMs?: number;
  };
}

/** What {@link ClientDriver.setPathInService} found. */
export type PathServiceResult = "ok" | "no-such-path" | "unsupported";

const RECEIVE_BUFFER_BYTES = 65536;
const MAINTENANCE_INTERVAL_MS = 1000;
const DEFAULT_FLOW_IDLE_TIMEOUT_MS = 180_000;
const DEFAULT_RERESOLVE_AFTER_MS = 5000;
const DEFAULT_REOPEN_AFTER_MS = 5000;

/** One application address talking through the tunnel. */
interface Flow {
  readonly id: number;
  readonly address: UdpAddress;
  lastActiveMs: number;
}

/** A path's socket and where it sends. */
interface PathSocket {
  readonly target: ClientPathTarget;
  /** Undefined while the path waits for its interface to have an address (or its bind failed). */
  transport: DatagramTransport | undefined;
  /** What the socket binds: undefined while a `dev` path's interface has no address. */
  bindAddress: string | undefined;
  destination: UdpAddress;
  lastResolvedMs: number;
  /** When the socket was last (re-)opened, or a bind last tried. */
  lastOpenedMs: number;
  /** Made by `uplinks auto` (a reload leaves it alone). */
  readonly auto: boolean;
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
    a.fromAddress === b.fromAddress && a.device === b.device &&
    (a.backup ?? false) === (b.backup ?? false);
}

/** A path's label: its name, or HOST:PORT. */
function pathLabel(target: ClientPathTarget): string {
  return target.label ?? formatHostPort({ hostname: target.host, port: target.port });
}

/** The family of an IP literal (4 when it is not one, e.g. an unresolved name). */
function familyOf(address: string): 4 | 6 {
  return isIPv6Literal(address) ? 6 : 4;
}

/**
 * Resolves a path's host; its socket is bound by the driver, which knows the interfaces (its
 * send-error handler is set by the caller).
 */
async function preparePath(
  target: ClientPathTarget,
  logger: Logger,
  auto = false,
): Promise<PathSocket> {
  const address = await resolveHost(target.host).catch((error) => {
    logger.warning("cannot resolve a path's host yet; will retry", {
      host: target.host,
      error: (error as Error).message,
    });
    return undefined;
  });
  return {
    target,
    transport: undefined,
    bindAddress: target.device !== undefined
      ? undefined
      : target.fromAddress ?? wildcardFor(address ?? "0.0.0.0"),
    destination: { transport: "udp", hostname: address ?? target.host, port: target.port },
    lastResolvedMs: performance.now(),
    lastOpenedMs: performance.now(),
    auto,
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
  readonly #reopenAfterMs: number;
  readonly #options: ClientDriverOptions;
  /** Follows the interfaces for `dev` paths and `uplinks auto`; made when first needed. */
  #uplinks: UplinkManager | undefined;
  #watcher: { stop(): void } | undefined;
  /** `uplinks auto`'s destination, resolved once at start. */
  #autoDestination: { host: string; port: number } | undefined;
  /** Interface changes are applied one at a time (adding a path awaits its resolution). */
  #interfaceWork: Promise<void> = Promise.resolve();
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
    this.#reopenAfterMs = options.reopenAfterMs ?? DEFAULT_REOPEN_AFTER_MS;
    this.#options = options;
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

  /**
   * Resolves the paths, binds every socket (a `dev` path whose interface has no address yet waits
   * for one), makes the `uplinks auto` paths, and starts the loops and the interface watcher.
   */
  static async start(options: ClientDriverOptions): Promise<ClientDriver> {
    const paths: PathSocket[] = [];
    for (const target of options.paths) paths.push(await preparePath(target, options.logger));
    const app = bindUdp(options.listen);
    const driver = new ClientDriver(options, paths, app);
    try {
      paths.forEach((path, index) => {
        path.onSendError = (error) => driver.#sendFailed(index, error);
      });
      if (options.uplinksAuto !== undefined) {
        const { host, port } = options.uplinksAuto;
        const address = await resolveHost(host).catch(() => undefined);
        driver.#autoDestination = { host: address ?? host, port };
        driver.#uplinks = new UplinkManager({
          family: familyOf(address ?? host),
          excluded: options.uplinksAuto.excluded ?? [],
        });
      } else if (paths.some((path) => path.target.device !== undefined)) {
        driver.#uplinks = new UplinkManager();
      }
      if (driver.#uplinks !== undefined) {
        // The first look is synchronous, so the paths exist before the first datagram; the
        // watcher's own first look then changes nothing. (It adds the `uplinks auto` paths.)
        await driver.#applyInterfaceChanges(firstLook(driver.#readInterfaces()));
      }
      options.paths.forEach((target, index) => {
        if (target.device !== undefined) {
          paths[index].bindAddress = driver.#watchDevice(index, paths[index]);
        }
      });
      for (let index = 0; index < paths.length; index++) {
        // A `from` address that cannot be bound is a configuration mistake: it throws.
        if (paths[index].bindAddress !== undefined) {
          driver.#openSocket(index, paths[index], paths[index].target.device === undefined);
        } else driver.#logWaiting(paths[index]);
      }
    } catch (error) {
      await driver.stop();
      throw error;
    }
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
    const current = this.#paths.flatMap((path, index) =>
      path && !path.auto ? [{ path, index }] : []
    );
    const removed = current.filter(({ path }) =>
      !targets.some((target) => samePath(target, path.target))
    );
    const added = targets.filter((target) =>
      !current.some(({ path }) => samePath(target, path.target))
    );
    // Open the new paths first, so a mistake leaves everything as it was.
    const opened: PathSocket[] = [];
    try {
      for (const target of added) {
        const path = await preparePath(target, this.#logger);
        opened.push(path);
        if (path.bindAddress !== undefined) path.transport = bindUdp(udpBind(path.bindAddress));
      }
    } catch (error) {
      for (const path of opened) path.transport?.close();
      throw error;
    }
    if (opened.some((path) => path.target.device !== undefined)) this.#ensureWatching();
    for (const path of opened) {
      const index = this.core.addPath(
        pathLabel(path.target),
        path.target.backup ?? false,
        path.target.weight ?? 1,
      );
      path.onSendError = (error) => this.#sendFailed(index, error);
      this.#paths[index] = path;
      if (path.target.device !== undefined) {
        path.bindAddress = this.#watchDevice(index, path);
        this.#openSocket(index, path, false);
      } else this.#track(this.#pathLoop(index, path, path.transport!));
    }
    for (const { index } of removed) this.#closePath(index);
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

  /**
   * Where each path sends from and to, in path order (for status output): `local` is undefined
   * while a path waits for an address, `interfaceName` set for `dev` and `uplinks auto` paths.
   */
  pathAddresses(): {
    readonly local: UdpAddress | undefined;
    readonly remote: UdpAddress;
    readonly interfaceName: string | undefined;
  }[] {
    return this.core.paths.map((state) => {
      const path = this.#paths[state.index]!;
      return {
        local: path.transport?.localAddress,
        remote: path.destination,
        interfaceName: path.target.device,
      };
    });
  }

  /**
   * Takes a path (by its label or index, as `/status` shows them) out of service or puts it back:
   * it is still probed, but carries no data while out.
   */
  setPathInService(nameOrIndex: string, inService: boolean): PathServiceResult {
    const state = this.core.paths.find((path) => path.label === nameOrIndex) ??
      (/^\d+$/.test(nameOrIndex)
        ? this.core.paths.find((path) => path.index === Number(nameOrIndex))
        : undefined);
    if (state === undefined) return "no-such-path";
    const core = this.core as ClientCore & {
      setPathInService?: (pathIndex: number, inService: boolean) => void;
    };
    if (!("setPathInService" in core) || typeof core.setPathInService !== "function") {
      return "unsupported";
    }
    core.setPathInService(state.index, inService);
    this.#armTimer();
    return "ok";
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
    this.#watcher?.stop();
    this.app.close();
    for (const path of this.#paths) path?.transport?.close();
    await this.#interfaceWork;
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
    if (this.#uplinks !== undefined) this.#ensureWatching();
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
        const transport = path?.transport;
        if (transport) {
          pending.push(
            transport.send(datagram, path.destination).catch((error) => {
              // A send still running on a socket that was replaced meanwhile is not the path's.
              if (path.transport === transport) path.onSendError(error);
            }),
          );
        } else if (path) {
          // The path waits for an address on its interface: the send could not happen.
          this.core.recordSendError(pathIndex, "no-address", performance.now());
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

  /** Receives on one socket of path `index` until the path closes or the socket is replaced. */
  async #pathLoop(index: number, path: PathSocket, transport: DatagramTransport): Promise<void> {
    const pending: Promise<unknown>[] = [];
    const outbox = this.#outbox(pending);
    const buffer = new Uint8Array(RECEIVE_BUFFER_BYTES);
    const current = () => !this.#stopping && !path.closed && path.transport === transport;
    while (current()) {
      let received: [Uint8Array, UdpAddress];
      try {
        received = await transport.receive(buffer);
      } catch (error) {
        if (!current()) return;
        this.#logger.debug("receive failed on a path socket", {
          path: index,
          error: String(error),
        });
        continue;
      }
      if (!current()) return;
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

  /**
   * Once a second: forget idle flows; re-open the sockets of dead paths on fresh source ports and
   * resolve their host names again.
   */
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
      if (
        state.state !== "up" && path.bindAddress !== undefined &&
        now - Math.max(state.lastHeardMs, path.lastOpenedMs) >= this.#reopenAfterMs
      ) {
        const wasPort = path.transport?.localAddress.port;
        if (this.#openSocket(index, path, false)) {
          this.#logger.info("silent path re-opened on a fresh source port", {
            path: state.label,
            from: wasPort === undefined ? "none" : String(wasPort),
            to: String(path.transport!.localAddress.port),
          });
        }
      }
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

  /**
   * (Re-)opens path `index`'s socket on its bind address with a fresh port, closes the old one and
   * starts the new one's receive loop. A bind that fails is logged and the path waits (the next
   * change of its interface, or the silent-path re-open, tries again) — unless `throwOnFailure`.
   * Returns true when a socket is open.
   */
  #openSocket(index: number, path: PathSocket, throwOnFailure: boolean): boolean {
    path.lastOpenedMs = performance.now();
    const old = path.transport;
    path.transport = undefined;
    old?.close();
    if (path.bindAddress === undefined || path.closed || this.#stopping) return false;
    try {
      path.transport = bindUdp(udpBind(path.bindAddress));
    } catch (error) {
      if (throwOnFailure) throw error;
      this.#logger.warning("cannot open a path's socket; will retry", {
        path: pathLabel(path.target),
        address: path.bindAddress,
        error: (error as Error).message,
      });
      return false;
    }
    this.#track(this.#pathLoop(index, path, path.transport));
    return true;
  }

  /** Removes path `index`: from the core, the interface manager and its socket. */
  #closePath(index: number): void {
    const path = this.#paths[index];
    if (!path) return;
    this.core.removePath(index);
    this.#uplinks?.removeDevice(index);
    this.#paths[index] = undefined;
    path.closed = true;
    path.transport?.close();
  }

  /** Binds path `index` to its interface in the manager; returns the address to bind now. */
  #watchDevice(index: number, path: PathSocket): string | undefined {
    this.#uplinks ??= new UplinkManager();
    return this.#uplinks.addDevice(
      index,
      path.target.device!,
      familyOf(path.destination.hostname),
    );
  }

  #logWaiting(path: PathSocket): void {
    this.#logger.warning("path waits for an address on its interface", {
      path: pathLabel(path.target),
      interface: path.target.device ?? "",
    });
  }

  #readInterfaces(): Deno.NetworkInterfaceInfo[] {
    const read = this.#options.interfaces?.read ?? (() => Deno.networkInterfaces());
    return read();
  }

  /** Starts the interface watcher if it is not running (dev paths or `uplinks auto` need it). */
  #ensureWatching(): void {
    this.#uplinks ??= new UplinkManager();
    if (this.#watcher !== undefined || this.#stopping) return;
    this.#watcher = watchInterfaces({
      intervalMs: this.#options.interfaces?.intervalMs,
      read: () => this.#readInterfaces(),
      onChanges: (changes) => {
        this.#interfaceWork = this.#interfaceWork.then(() => this.#applyInterfaceChanges(changes));
      },
      onError: (error) => {
        this.#logger.warning("cannot read the network interfaces", { error: String(error) });
      },
    });
  }

  /** Applies what changed in the interfaces: re-opens, adds and removes paths. */
  async #applyInterfaceChanges(changes: readonly InterfaceChange[]): Promise<void> {
    const manager = this.#uplinks;
    if (manager === undefined || this.#stopping) return;
    for (const action of manager.apply(changes)) await this.#applyUplinkAction(action);
    this.#armTimer();
  }

  async #applyUplinkAction(action: UplinkAction): Promise<void> {
    if (this.#stopping) return;
    switch (action.kind) {
      case "bind": {
        const path = this.#paths[action.pathIndex];
        if (!path) return;
        const from = path.bindAddress;
        path.bindAddress = action.address;
        if (action.address === undefined) {
          path.transport?.close();
          path.transport = undefined;
          this.#logWaiting(path);
          return;
        }
        if (this.#openSocket(action.pathIndex, path, false)) {
          this.#logger.info("path re-opened on its interface's new address", {
            path: pathLabel(path.target),
            interface: path.target.device ?? "",
            from: from ?? "none",
            to: action.address,
          });
        }
        return;
      }
      case "add-uplink": {
        const destination = this.#autoDestination!;
        const path = await preparePath(
          { ...destination, label: action.interfaceName, device: action.interfaceName },
          this.#logger,
          true,
        );
        if (this.#stopping) return;
        const index = this.core.addPath(action.interfaceName);
        path.onSendError = (error) => this.#sendFailed(index, error);
        this.#paths[index] = path;
        path.bindAddress = this.#watchDevice(index, path);
        this.#logger.info("uplink found: path added", {
          interface: action.interfaceName,
          address: path.bindAddress ?? "none",
        });
        // Until #run, start() opens the sockets itself.
        if (this.#maintenanceTimer !== undefined) this.#openSocket(index, path, false);
        return;
      }
      case "remove-uplink": {
        const index = this.#paths.findIndex((path) =>
          path?.auto === true && path.target.device === action.interfaceName
        );
        if (index < 0) return;
        this.#logger.info("uplink gone: path removed", { interface: action.interfaceName });
        this.#closePath(index);
        return;
      }
      default:
        return assertNever(action);
    }
  }
}

/** What to bind for sending from `address` (any free port). */
function udpBind(address: string): HostPort {
  return { hostname: address, port: 0 };
}
