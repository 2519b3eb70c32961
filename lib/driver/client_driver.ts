/**
 * The client's driver: the sockets and the timer around {@link ClientCore}. Applications reach
 * the tunnel through its front ends: the classic listener (its flows go to the server's default
 * target), one listener per `forward` (its flows are declared with the forward's target), and the
 * SOCKS5 front end (`lib/socks5/front.ts`: each destination of an association is a declared flow).
 * Each distinct application address on a listener is a flow; replies go back to it from that
 * listener. Each path has a socket of its own (its own source port, so bridges and NATs see one
 * mapping per path).
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

import { formatHostPort, type HostPort, isIPv6Literal } from "../base/address.ts";
import { assertNever } from "../base/assert.ts";
import type { FecParameters } from "../fec/fec.ts";
import type { SchedulingMode } from "../session/scheduler.ts";
import {
  ClientCore,
  type ClientOutbox,
  type ClientTiming,
  type FlowRefusal,
  type FlowTarget,
} from "../session/client_core.ts";
import { formatSessionId } from "../wire/session_id.ts";
import type { SecretKeys } from "../crypto/handshake.ts";
import type { Logger } from "../base/log.ts";
import { type InterfaceChange, watchInterfaces } from "../uplink/interfaces.ts";
import { isHostName, resolveHost, wildcardFor } from "../io/resolve.ts";
import { firstLook, type UplinkAction, UplinkManager } from "../uplink/uplinks.ts";
import { formatDrops } from "../base/counters.ts";
import { DeadlineTimer } from "../io/deadline_timer.ts";
import { classifySendError } from "../io/udp.ts";
import type { BindTransport, DatagramTransport, UdpAddress } from "../io/transport.ts";
import { DECLARED_FLOW_BASE, MAX_FLOW_ID } from "../wire/messages.ts";
import type { Socks5Credentials } from "../socks5/messages.ts";
import {
  Socks5Front,
  type Socks5Tunnel,
  type TunnelChannel,
  type TunnelFlowHandlers,
} from "../socks5/front.ts";

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

/** How the client spreads datagrams over its paths (see `lib/session/scheduler.ts`). */
export interface ClientScheduling {
  readonly mode: SchedulingMode;
  readonly targetLossRatio?: number;
  readonly fec?: FecParameters | "auto";
  readonly reorderTimeoutMs?: number;
}

/** A `forward` line: another local listener whose flows go to one target. */
export interface ClientForward {
  readonly listen: HostPort;
  readonly target: FlowTarget;
}

/** The SOCKS5 front end's settings (see `lib/socks5/front.ts`). */
export interface ClientSocks5 {
  /** The TCP address of the control listener. */
  readonly listen: HostPort;
  /** When set, clients must authenticate with these (RFC 1929). */
  readonly credentials?: Socks5Credentials;
  readonly maxAssociations?: number;
  readonly maxFlowsPerAssociation?: number;
}

/** What starts a client. */
export interface ClientDriverOptions {
  /** Where applications send for the server's default target (the classic listener), if any. */
  readonly listen?: HostPort;
  /** More listeners, each to a target of its own. */
  readonly forwards?: readonly ClientForward[];
  /** A SOCKS5 front end. */
  readonly socks5?: ClientSocks5;
  readonly paths: readonly ClientPathTarget[];
  readonly secret?: SecretKeys;
  readonly logger: Logger;
  /** Opens the UDP sockets: `bindUdp` in the programs, a `MemoryNetwork`'s `bind` in tests. */
  readonly bind: BindTransport;
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

/** One application address (or SOCKS5 destination) talking through the tunnel. */
interface Flow {
  readonly id: number;
  /** How logs name it. */
  readonly label: string;
  lastActiveMs: number;
  /** Sends a reply to the application; the payload may be reused once the promise settles. */
  readonly deliver: (payload: Uint8Array) => Promise<unknown>;
  /** Removes the flow from its owner's index when the driver forgets it for being idle. */
  readonly expired: () => void;
  /** Set when the server refused the flow's target (logged once). */
  refusal: FlowRefusal | undefined;
}

/** A UDP listener for applications: the classic one, or a forward's. */
interface AppListener {
  readonly transport: DatagramTransport;
  /** Undefined for the classic listener: its flows go to the server's default target. */
  readonly target: FlowTarget | undefined;
  /** How logs name it: "listen" or "forward HOST:PORT → TARGET". */
  readonly label: string;
  /** Its flows by application host, then port. */
  readonly flowsByHost: Map<string, Map<number, Flow>>;
}

/** What a forward listener reports (for status output). */
export interface ForwardStatus {
  /** Where its applications send, HOST:PORT. */
  readonly listen: string;
  /** The target: a name, or HOST:PORT. */
  readonly target: string;
  readonly flows: number;
}

/** What the SOCKS5 front end reports (for status output). */
export interface Socks5Status {
  /** The TCP control listener, HOST:PORT. */
  readonly listen: string;
  readonly associations: number;
  readonly flows: number;
  readonly connections: number;
  readonly handshakeFailures: number;
  readonly toTunnel: number;
  readonly toClients: number;
  /** Datagrams to a relay dropped, by reason (only reasons that happened). */
  readonly drops: Readonly<Record<string, number>>;
}

/** The last classic flow id; declared flows are {@link DECLARED_FLOW_BASE}–{@link MAX_FLOW_ID}. */
const MAX_CLASSIC_FLOW_ID = DECLARED_FLOW_BASE - 1;

/** How logs and status write a flow target. */
export function formatFlowTarget(target: FlowTarget): string {
  return target.kind === "named"
    ? target.name
    : formatHostPort({ hostname: target.host, port: target.port });
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
  /**
   * What a send on `transport` does when it fails: {@link onSendError}, unless the socket has been
   * replaced meanwhile (the error is not the path's then). Made once per socket, not per datagram.
   */
  sendFailed?: { readonly transport: DatagramTransport; readonly handle: (error: unknown) => void };
}

/** The failed-send handler of `path` for sends on `transport` (see `PathSocket.sendFailed`). */
function sendFailedHandler(
  path: PathSocket,
  transport: DatagramTransport,
): (error: unknown) => void {
  if (path.sendFailed?.transport !== transport) {
    path.sendFailed = {
      transport,
      handle: (error) => {
        if (path.transport === transport) path.onSendError(error);
      },
    };
  }
  return path.sendFailed.handle;
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
  /** Path sockets by the core's path index (a removed path leaves a hole). */
  readonly #paths: (PathSocket | undefined)[];
  readonly #logger: Logger;
  /** The classic listener first (when there is one), then the forwards' in configuration order. */
  readonly #listeners: AppListener[] = [];
  #socks5: Socks5Front | undefined;
  readonly #flowsById = new Map<number, Flow>();
  #classicFlowCount = 0;
  #declaredFlowCount = 0;
  #nextClassicFlowId = 1;
  #nextDeclaredFlowId = DECLARED_FLOW_BASE;
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
  #maintenanceTimer: ReturnType<typeof setInterval> | undefined;
  #stopping = false;

  private constructor(options: ClientDriverOptions, paths: PathSocket[]) {
    this.#paths = paths;
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
   * Resolves the paths, binds every socket (the listeners, the SOCKS5 front end, and the paths: a
   * `dev` path whose interface has no address yet waits for one), makes the `uplinks auto` paths,
   * and starts the loops and the interface watcher. A listener that cannot be bound throws, with
   * everything opened so far closed.
   */
  static async start(options: ClientDriverOptions): Promise<ClientDriver> {
    const paths: PathSocket[] = [];
    for (const target of options.paths) paths.push(await preparePath(target, options.logger));
    const driver = new ClientDriver(options, paths);
    try {
      driver.#openFrontEnds();
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
        if (path.bindAddress !== undefined) {
          path.transport = this.#options.bind(udpBind(path.bindAddress));
        }
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

  /**
   * The address applications send to: the classic listener's; without one, the first forward's,
   * or else the SOCKS5 control listener's.
   */
  get listenAddress(): UdpAddress {
    return this.#listeners[0]?.transport.localAddress ?? this.#socks5!.address;
  }

  /** The classic listener's address (undefined when only forwards or SOCKS5 are configured). */
  get classicListenAddress(): UdpAddress | undefined {
    const first = this.#listeners[0];
    return first?.target === undefined ? first?.transport.localAddress : undefined;
  }

  /** Each forward: where it listens, its target and its flows now. */
  forwards(): ForwardStatus[] {
    return this.#listeners.flatMap((listener) => {
      if (listener.target === undefined) return [];
      let flows = 0;
      for (const byPort of listener.flowsByHost.values()) flows += byPort.size;
      return [{
        listen: formatHostPort(listener.transport.localAddress),
        target: formatFlowTarget(listener.target),
        flows,
      }];
    });
  }

  /** The SOCKS5 front end's state, when it runs. */
  socks5(): Socks5Status | undefined {
    const front = this.#socks5;
    if (front === undefined) return undefined;
    const counters = front.counters;
    return {
      listen: formatHostPort(front.address),
      associations: front.associationCount,
      flows: front.flowCount,
      connections: counters.connections,
      handshakeFailures: counters.handshakeFailures,
      toTunnel: counters.toTunnel,
      toClients: counters.toClients,
      drops: Object.fromEntries(Object.entries(counters.drops).filter(([, count]) => count > 0)),
    };
  }

  /** Declared flows the server refused, by reason (each flow counted once). */
  readonly refusedFlows: Partial<Record<FlowRefusal, number>> = {};

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
    for (const listener of this.#listeners) listener.transport.close();
    const socks5Stopped = this.#socks5?.stop();
    for (const path of this.#paths) path?.transport?.close();
    await socks5Stopped;
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
    } from-app=${counters.fromApp.datagrams} to-app=${counters.toApp.datagrams} duplicates=${counters.duplicates} replies-for-gone-flows=${this.repliesForGoneFlows}${this.#frontEndsLine()} drops: ${
      formatDrops(counters.drops)
    } paths: ${paths}`;
  }

  /** The forwards' and SOCKS5's part of the stats line (empty when neither is configured). */
  #frontEndsLine(): string {
    const forwards = this.forwards().map((forward) =>
      `${forward.listen}→${forward.target}[flows=${forward.flows}]`
    );
    const socks5 = this.socks5();
    const refused = Object.entries(this.refusedFlows).map(([reason, count]) =>
      `${reason}=${count}`
    );
    const socks5Drops = Object.entries(socks5?.drops ?? {}).map(([reason, count]) =>
      ` ${reason}=${count}`
    ).join("");
    return (forwards.length > 0 ? ` forwards: ${forwards.join(" ")}` : "") +
      (socks5 !== undefined
        ? ` socks5: ${socks5.listen}[associations=${socks5.associations} flows=${socks5.flows} to-tunnel=${socks5.toTunnel} to-clients=${socks5.toClients} handshake-failures=${socks5.handshakeFailures}${socks5Drops}]`
        : "") +
      (refused.length > 0 ? ` refused-flows: ${refused.join(" ")}` : "");
  }

  /** Binds the classic listener, the forwards' and the SOCKS5 front end (throws if one cannot). */
  #openFrontEnds(): void {
    const options = this.#options;
    if (options.listen !== undefined) {
      this.#listeners.push({
        transport: naming("listen", options.listen, () => options.bind(options.listen!)),
        target: undefined,
        label: "listen",
        flowsByHost: new Map(),
      });
    }
    for (const forward of options.forwards ?? []) {
      this.#listeners.push({
        transport: naming("forward", forward.listen, () => options.bind(forward.listen)),
        target: forward.target,
        label: `forward ${formatHostPort(forward.listen)} → ${formatFlowTarget(forward.target)}`,
        flowsByHost: new Map(),
      });
    }
    if (options.socks5 !== undefined) {
      const socks5 = options.socks5;
      this.#socks5 = naming("socks5", socks5.listen, () =>
        Socks5Front.start({
          listen: socks5.listen,
          credentials: socks5.credentials,
          maxAssociations: socks5.maxAssociations,
          maxFlowsPerAssociation: socks5.maxFlowsPerAssociation,
          tunnel: this.#socks5Tunnel(),
          logger: this.#logger,
        }));
    }
  }

  /** The tunnel as the SOCKS5 front end sees it: declared flows, each loop with its own outbox. */
  #socks5Tunnel(): Socks5Tunnel {
    return {
      channel: (): TunnelChannel => {
        const pending: Promise<unknown>[] = [];
        const outbox = this.#outbox(pending);
        return {
          openFlow: (target, handlers: TunnelFlowHandlers) =>
            this.#openDeclaredFlow(
              target,
              handlers.label,
              handlers.deliver,
              () => handlers.expired(),
              performance.now(),
              outbox,
            )?.id,
          send: async (flowId, payload) => {
            const flow = this.#flowsById.get(flowId);
            if (flow === undefined || this.#stopping) return;
            // Let the FLOW_OPEN's sends run first, in case the core sealed it in the scratch
            // buffer.
            if (pending.length > 0) await this.#settle(pending);
            const now = performance.now();
            flow.lastActiveMs = now;
            this.core.sendFromApp(flowId, payload, now, outbox);
            await this.#settle(pending);
          },
        };
      },
      closeFlow: (flowId) => {
        const flow = this.#flowsById.get(flowId);
        if (flow !== undefined) this.#forgetFlow(flow);
      },
    };
  }

  #run(): void {
    for (const listener of this.#listeners) this.#track(this.#appLoop(listener));
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
            transport.send(datagram, path.destination).catch(sendFailedHandler(path, transport)),
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
        pending.push(flow.deliver(payload).catch(appSendFailed));
      },
      flowRefused: (flowId, reason) => this.#flowRefused(flowId, reason),
    };
  }

  /** The server refused a declared flow: logged once per flow, counted by reason. */
  #flowRefused(flowId: number, reason: FlowRefusal): void {
    const flow = this.#flowsById.get(flowId);
    if (flow === undefined || flow.refusal !== undefined) return;
    flow.refusal = reason;
    this.refusedFlows[reason] = (this.refusedFlows[reason] ?? 0) + 1;
    this.#logger.warning("the server refused a flow; its datagrams are dropped", {
      flow: flow.label,
      reason,
    });
  }

  async #appLoop(listener: AppListener): Promise<void> {
    const pending: Promise<unknown>[] = [];
    const outbox = this.#outbox(pending);
    const buffer = new Uint8Array(RECEIVE_BUFFER_BYTES);
    while (!this.#stopping) {
      let received: [Uint8Array, UdpAddress];
      try {
        received = await listener.transport.receive(buffer);
      } catch (error) {
        if (this.#stopping) return;
        this.#logger.warning("receive failed on an application socket", {
          listener: listener.label,
          error: String(error),
        });
        continue;
      }
      const [payload, from] = received;
      let now = performance.now();
      let flow = this.#knownFlow(listener, from, now);
      if (!flow) {
        flow = this.#newListenerFlow(listener, from, now, outbox);
        if (!flow) continue;
        if (pending.length > 0) {
          // Let the FLOW_OPEN's sends run first, in case the core sealed it in the scratch buffer.
          await this.#settle(pending);
          now = performance.now();
        }
      }
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

  /** The flow of application address `from` on `listener`, marked active; undefined when new. */
  #knownFlow(listener: AppListener, from: UdpAddress, nowMs: number): Flow | undefined {
    const flow = listener.flowsByHost.get(from.hostname)?.get(from.port);
    if (flow) flow.lastActiveMs = nowMs;
    return flow;
  }

  /**
   * Makes the flow of a new application address on `listener`: a classic flow on the classic
   * listener, a declared one (told to the server through `outbox`) on a forward's. Undefined when
   * every flow id of its kind is taken.
   */
  #newListenerFlow(
    listener: AppListener,
    from: UdpAddress,
    nowMs: number,
    outbox: ClientOutbox,
  ): Flow | undefined {
    const address: UdpAddress = { transport: "udp", hostname: from.hostname, port: from.port };
    const label = `${formatHostPort(address)} on ${listener.label}`;
    const deliver = (payload: Uint8Array) => listener.transport.send(payload, address);
    const expired = () => {
      const byPort = listener.flowsByHost.get(address.hostname);
      byPort?.delete(address.port);
      if (byPort?.size === 0) listener.flowsByHost.delete(address.hostname);
    };
    const flow = listener.target === undefined
      ? this.#openClassicFlow(label, deliver, expired, nowMs)
      : this.#openDeclaredFlow(listener.target, label, deliver, expired, nowMs, outbox);
    if (!flow) return undefined;
    let byPort = listener.flowsByHost.get(address.hostname);
    if (!byPort) listener.flowsByHost.set(address.hostname, byPort = new Map());
    byPort.set(address.port, flow);
    this.#logger.debug("new application flow", { flow: flow.id, from: label });
    return flow;
  }

  /** A classic flow (to the server's default target); undefined when every classic id is taken. */
  #openClassicFlow(
    label: string,
    deliver: Flow["deliver"],
    expired: Flow["expired"],
    nowMs: number,
  ): Flow | undefined {
    if (this.#classicFlowCount >= MAX_CLASSIC_FLOW_ID) return undefined;
    while (this.#flowsById.has(this.#nextClassicFlowId)) {
      this.#nextClassicFlowId = nextId(this.#nextClassicFlowId, 1, MAX_CLASSIC_FLOW_ID);
    }
    const id = this.#nextClassicFlowId;
    this.#nextClassicFlowId = nextId(id, 1, MAX_CLASSIC_FLOW_ID);
    const flow: Flow = { id, label, lastActiveMs: nowMs, deliver, expired, refusal: undefined };
    this.#flowsById.set(id, flow);
    this.#classicFlowCount++;
    return flow;
  }

  /**
   * A declared flow to `target`, told to the core (which tells the server through `outbox`);
   * undefined when every declared id is taken.
   */
  #openDeclaredFlow(
    target: FlowTarget,
    label: string,
    deliver: Flow["deliver"],
    expired: Flow["expired"],
    nowMs: number,
    outbox: ClientOutbox,
  ): Flow | undefined {
    if (this.#stopping || this.#declaredFlowCount > MAX_FLOW_ID - DECLARED_FLOW_BASE) {
      return undefined;
    }
    while (this.#flowsById.has(this.#nextDeclaredFlowId)) {
      this.#nextDeclaredFlowId = nextId(this.#nextDeclaredFlowId, DECLARED_FLOW_BASE, MAX_FLOW_ID);
    }
    const id = this.#nextDeclaredFlowId;
    this.#nextDeclaredFlowId = nextId(id, DECLARED_FLOW_BASE, MAX_FLOW_ID);
    const flow: Flow = { id, label, lastActiveMs: nowMs, deliver, expired, refusal: undefined };
    this.#flowsById.set(id, flow);
    this.#declaredFlowCount++;
    this.core.openFlow(id, target, nowMs, outbox);
    return flow;
  }

  /** Forgets a flow (the core too, for a declared one); its owner's index is the caller's. */
  #forgetFlow(flow: Flow): void {
    if (this.#flowsById.get(flow.id) !== flow) return;
    this.#flowsById.delete(flow.id);
    if (flow.id >= DECLARED_FLOW_BASE) {
      this.#declaredFlowCount--;
      this.core.closeFlow(flow.id);
    } else this.#classicFlowCount--;
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
      this.#forgetFlow(flow);
      flow.expired();
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
      path.transport = this.#options.bind(udpBind(path.bindAddress));
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

/**
 * Runs `bind`; an error it throws keeps its class (callers tell "address in use" by it) and gets
 * the listener's name and address in front of its message.
 */
function naming<T>(what: string, address: HostPort, bind: () => T): T {
  try {
    return bind();
  } catch (error) {
    if (error instanceof Error) {
      error.message = `${what} ${formatHostPort(address)}: ${error.message}`;
    }
    throw error;
  }
}

/** The id after `id` in `first..last`, wrapping around. */
function nextId(id: number, first: number, last: number): number {
  return id >= last ? first : id + 1;
}

/** What to bind for sending from `address` (any free port). */
function udpBind(address: string): HostPort {
  return { hostname: address, port: 0 };
}
