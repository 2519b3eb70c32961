/**
 * The client's driver: the sockets and the timer around {@link ClientCore}. Applications reach
 * the tunnel through its front ends: the classic listener (its flows go to the server's default
 * target), one listener per `forward` (its flows are declared with the forward's target), and the
 * SOCKS5 front end (`lib/socks5/front.ts`: each destination of an association is a declared flow).
 * Each distinct application address on a listener is a flow (`client_flows.ts`); replies go back to
 * it from that listener. The paths' sockets, and how they follow interfaces and silence, are
 * `client_paths.ts`; this file runs the receive loops over both and the core's timer.
 *
 * Every receive loop owns a receive buffer and a scratch buffer, and waits for the sends it started
 * before it receives again, because Deno reads a send buffer when the send runs.
 */

import { formatHostPort, type HostPort } from "../base/address.ts";
import {
  ClientCore,
  type ClientOutbox,
  type FlowRefusal,
  type FlowTarget,
} from "../session/client_core.ts";
import { formatSessionId } from "../wire/session_id.ts";
import type { Logger } from "../base/log.ts";
import { formatDrops } from "../base/counters.ts";
import { DeadlineTimer } from "../io/deadline_timer.ts";
import { classifySendError } from "../io/udp.ts";
import type { DatagramTransport, UdpAddress } from "../io/transport.ts";
import { createAead } from "../crypto/aead_factory.ts";
import { secureRandom } from "../session/secure_random.ts";
import {
  Socks5Front,
  type Socks5Tunnel,
  type TunnelChannel,
  type TunnelFlowHandlers,
} from "../socks5/front.ts";
import {
  type ClientDriverOptions,
  type ClientPathTarget,
  formatFlowTarget,
  type ForwardStatus,
  type PathServiceResult,
  type Socks5Status,
} from "./client_options.ts";
import { type Flow, FlowTable } from "./client_flows.ts";
import { ClientPaths, pathLabel, type PathSocket, preparePath, unmapIPv4 } from "./client_paths.ts";

const RECEIVE_BUFFER_BYTES = 65536;
const MAINTENANCE_INTERVAL_MS = 1000;
const DEFAULT_FLOW_IDLE_TIMEOUT_MS = 180_000;

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

/** A running mpclient. */
export class ClientDriver {
  readonly core: ClientCore;
  readonly #paths: ClientPaths;
  readonly #logger: Logger;
  /** The classic listener first (when there is one), then the forwards' in configuration order. */
  readonly #listeners: AppListener[] = [];
  #socks5: Socks5Front | undefined;
  readonly #flows: FlowTable;
  readonly #flowIdleTimeoutMs: number;
  readonly #options: ClientDriverOptions;
  /** The running receive loops (a removed path's loop leaves the set when it ends). */
  readonly #loops = new Set<Promise<void>>();
  #maintenanceTimer: ReturnType<typeof setInterval> | undefined;
  #stopping = false;

  private constructor(options: ClientDriverOptions, paths: PathSocket[]) {
    this.#logger = options.logger;
    this.#flowIdleTimeoutMs = options.flowIdleTimeoutMs ?? DEFAULT_FLOW_IDLE_TIMEOUT_MS;
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
      aead: createAead,
      random: secureRandom,
      logger: options.logger,
      timing: options.timing,
    });
    this.#flows = new FlowTable((flowId) => this.core.closeFlow(flowId));
    this.#paths = new ClientPaths({
      core: this.core,
      options,
      startLoop: (index, path, transport) => this.#track(this.#pathLoop(index, path, transport)),
      stopping: () => this.#stopping,
      armTimer: () => this.#armTimer(),
    }, paths);
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
      await driver.#paths.open();
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
    const result = await this.#paths.reconfigure(targets);
    this.#armTimer();
    return result;
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
  pathAddresses(): ReturnType<ClientPaths["addresses"]> {
    return this.#paths.addresses();
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
    return this.#flows.size;
  }

  /** Closes every socket and timer and waits for the loops to end. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#timer.cancel();
    clearInterval(this.#maintenanceTimer);
    for (const listener of this.#listeners) listener.transport.close();
    const socks5Stopped = this.#socks5?.stop();
    const pathsClosed = this.#paths.close();
    await socks5Stopped;
    await pathsClosed;
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
            const flow = this.#flows.get(flowId);
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
        const flow = this.#flows.get(flowId);
        if (flow !== undefined) this.#flows.forget(flow);
      },
    };
  }

  #run(): void {
    for (const listener of this.#listeners) this.#track(this.#appLoop(listener));
    this.#paths.run();
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
        this.#paths.send(pathIndex, datagram, pending);
      },
      deliverToApp: (flowId, payload) => {
        const flow = this.#flows.get(flowId);
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
    const flow = this.#flows.get(flowId);
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
      ? this.#flows.openClassic(label, deliver, expired, nowMs)
      : this.#openDeclaredFlow(listener.target, label, deliver, expired, nowMs, outbox);
    if (!flow) return undefined;
    let byPort = listener.flowsByHost.get(address.hostname);
    if (!byPort) listener.flowsByHost.set(address.hostname, byPort = new Map());
    byPort.set(address.port, flow);
    this.#logger.debug("new application flow", { flow: flow.id, from: label });
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
    if (this.#stopping) return undefined;
    const flow = this.#flows.openDeclared(label, deliver, expired, nowMs);
    if (flow !== undefined) this.core.openFlow(flow.id, target, nowMs, outbox);
    return flow;
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
    this.#flows.expireIdle(now, this.#flowIdleTimeoutMs);
    this.#paths.maintain(now);
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
