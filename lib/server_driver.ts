/**
 * The server's driver: the sockets and the timer around {@link ServerCore}. It listens on one or more
 * addresses for clients and opens, per session flow, a socket of its own toward the target, so the
 * target sees a distinct source port per client application. Replies read from that socket are sealed
 * by the core and sent back over the session's paths.
 *
 * Every receive loop owns a receive buffer and a scratch buffer, and waits for the sends it started
 * before it receives again, because Deno reads a send buffer when the send runs.
 */

import { formatHostPort, type HostPort } from "./address.ts";
import { formatSessionId } from "./client_core.ts";
import type { SecretKeys } from "./handshake.ts";
import type { Logger } from "./log.ts";
import { resolveHost, wildcardFor } from "./resolve.ts";
import { ServerCore, type ServerLimits, type ServerOutbox } from "./server_core.ts";
import { formatDrops } from "./stats.ts";
import { DeadlineTimer } from "./deadline_timer.ts";
import { LogThrottle } from "./throttle.ts";
import { bindUdp, classifySendError, type DatagramTransport, type UdpAddress } from "./udp.ts";

/** What starts a server. */
export interface ServerDriverOptions {
  /** Where clients (and bridges) send. */
  readonly listen: readonly HostPort[];
  /** Where every flow's datagrams go. */
  readonly target: HostPort;
  readonly secret?: SecretKeys;
  readonly logger: Logger;
  readonly limits?: Partial<ServerLimits>;
  /** A flow whose target has been silent and whose client has been silent this long is closed. */
  readonly flowIdleTimeoutMs?: number;
  /** Target sockets per session at most. */
  readonly maxFlowsPerSession?: number;
  /** Target sockets in all at most (each is a file descriptor). */
  readonly maxTargetSockets?: number;
}

const RECEIVE_BUFFER_BYTES = 65536;
const MAINTENANCE_INTERVAL_MS = 1000;
const DEFAULT_FLOW_IDLE_TIMEOUT_MS = 120_000;
const DEFAULT_MAX_FLOWS_PER_SESSION = 256;
const DEFAULT_MAX_TARGET_SOCKETS = 4096;

/** One session flow's socket toward the target. */
interface TargetFlow {
  readonly sessionId: number;
  readonly flowId: number;
  readonly transport: DatagramTransport;
  lastActiveMs: number;
  closed: boolean;
}

/** Counters the driver keeps beside the core's. */
interface TargetCounters {
  toTarget: number;
  fromTarget: number;
  /** Datagrams on a flow socket from anywhere but the target. */
  foreign: number;
  /** Sends to the target that failed. */
  sendErrors: number;
  /** Sends to client addresses that failed (a path that went away, no route, …). */
  clientSendErrors: number;
  flowLimit: number;
}

/** A running mpserver. */
export class ServerDriver {
  readonly core: ServerCore;
  readonly listeners: DatagramTransport[];
  readonly targetCounters: TargetCounters = {
    toTarget: 0,
    fromTarget: 0,
    foreign: 0,
    sendErrors: 0,
    clientSendErrors: 0,
    flowLimit: 0,
  };
  readonly #target: UdpAddress;
  readonly #logger: Logger;
  readonly #flows = new Map<number, Map<number, TargetFlow>>();
  readonly #flowIdleTimeoutMs: number;
  readonly #maxFlowsPerSession: number;
  readonly #maxTargetSockets: number;
  readonly #logThrottle = new LogThrottle(10_000);
  readonly #loops = new Set<Promise<void>>();
  #maintenanceTimer: ReturnType<typeof setInterval> | undefined;
  readonly #timer = new DeadlineTimer(() => void this.#fireTimer());
  readonly #timerPending: Promise<unknown>[] = [];
  #timerOutbox: ServerOutbox | undefined;
  #stopping = false;

  private constructor(
    options: ServerDriverOptions,
    listeners: DatagramTransport[],
    target: UdpAddress,
  ) {
    this.listeners = listeners;
    this.#target = target;
    this.#logger = options.logger;
    this.#flowIdleTimeoutMs = options.flowIdleTimeoutMs ?? DEFAULT_FLOW_IDLE_TIMEOUT_MS;
    this.#maxFlowsPerSession = options.maxFlowsPerSession ?? DEFAULT_MAX_FLOWS_PER_SESSION;
    this.#maxTargetSockets = options.maxTargetSockets ?? DEFAULT_MAX_TARGET_SOCKETS;
    this.core = new ServerCore({
      secret: options.secret,
      logger: options.logger,
      limits: options.limits,
      onSessionClosed: (sessionId) => this.#closeSessionFlows(sessionId),
    });
  }

  /** Resolves the target, binds the listening sockets and starts the loops. */
  static async start(options: ServerDriverOptions): Promise<ServerDriver> {
    const targetAddress = await resolveHost(options.target.hostname).catch((error) => {
      throw new Error(
        `cannot resolve the target ${options.target.hostname}: ${(error as Error).message}`,
      );
    });
    const listeners: DatagramTransport[] = [];
    try {
      for (const address of options.listen) listeners.push(bindUdp(address));
    } catch (error) {
      for (const listener of listeners) listener.close();
      throw error;
    }
    const driver = new ServerDriver(options, listeners, {
      transport: "udp",
      hostname: targetAddress,
      port: options.target.port,
    });
    for (const listener of listeners) driver.#track(driver.#listenLoop(listener));
    driver.#maintenanceTimer = setInterval(() => driver.#maintain(), MAINTENANCE_INTERVAL_MS);
    return driver;
  }

  /** Where the target is, resolved. */
  get target(): UdpAddress {
    return this.#target;
  }

  /** Closes every socket and timer and waits for the loops to end. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#timer.cancel();
    clearInterval(this.#maintenanceTimer);
    for (const listener of this.listeners) listener.close();
    this.core.closeAll();
    while (this.#loops.size > 0) await Promise.allSettled([...this.#loops]);
  }

  /** One line of totals, for the log at exit. */
  statsLine(): string {
    const counters = this.core.counters;
    const target = this.targetCounters;
    return `sessions=${this.core.sessions.size} opened=${counters.sessionsOpened} received=${counters.received.datagrams} sent=${counters.sent.datagrams} to-target=${target.toTarget} from-target=${target.fromTarget} duplicates=${counters.duplicates} target-send-errors=${target.sendErrors} client-send-errors=${target.clientSendErrors} drops: ${
      formatDrops(counters.drops)
    }${target.foreign > 0 ? ` foreign-on-target-socket=${target.foreign}` : ""}`;
  }

  /** When the server started (`performance.now()` time). */
  readonly startedAtMs: number = performance.now();

  /** Open target sockets of one session. */
  flowsOf(sessionId: number): number {
    return this.#flows.get(sessionId)?.size ?? 0;
  }

  /** Number of open target sockets. */
  get flowCount(): number {
    let count = 0;
    for (const flows of this.#flows.values()) count += flows.size;
    return count;
  }

  #track(loop: Promise<void>): void {
    this.#loops.add(loop);
    loop.finally(() => this.#loops.delete(loop));
  }

  #outbox(pending: Promise<unknown>[]): ServerOutbox {
    const sendFailed = (error: unknown) => {
      this.targetCounters.clientSendErrors++;
      this.#sendFailed(error);
    };
    const targetSendFailed = (error: unknown) => {
      this.targetCounters.sendErrors++;
      this.#sendFailed(error);
    };
    return {
      scratch: new Uint8Array(RECEIVE_BUFFER_BYTES),
      sendTo: (address, datagram) => {
        // Any listener can answer; the first is the one clients sent to in the classic setup.
        const listener = this.#listenerFor(address);
        pending.push(listener.send(datagram, address).catch(sendFailed));
      },
      deliverToTarget: (sessionId, flowId, payload) => {
        const flow = this.#flowFor(sessionId, flowId);
        if (!flow) return;
        flow.lastActiveMs = performance.now();
        this.targetCounters.toTarget++;
        pending.push(flow.transport.send(payload, this.#target).catch(targetSendFailed));
      },
    };
  }

  #listenerFor(address: UdpAddress): DatagramTransport {
    if (this.listeners.length === 1) return this.listeners[0];
    const wantsIPv6 = address.hostname.includes(":");
    return this.listeners.find((listener) =>
      listener.localAddress.hostname.includes(":") === wantsIPv6
    ) ??
      this.listeners[0];
  }

  async #listenLoop(listener: DatagramTransport): Promise<void> {
    const pending: Promise<unknown>[] = [];
    const outbox = this.#outbox(pending);
    const buffer = new Uint8Array(RECEIVE_BUFFER_BYTES);
    while (!this.#stopping) {
      let received: [Uint8Array, UdpAddress];
      try {
        received = await listener.receive(buffer);
      } catch (error) {
        if (this.#stopping) return;
        this.#logger.debug("receive failed on a listening socket", { error: String(error) });
        continue;
      }
      this.core.receive(received[1], received[0], performance.now(), outbox);
      await this.#settle(pending);
    }
  }

  async #targetLoop(flow: TargetFlow): Promise<void> {
    const pending: Promise<unknown>[] = [];
    const outbox = this.#outbox(pending);
    const buffer = new Uint8Array(RECEIVE_BUFFER_BYTES);
    const target = this.#target;
    while (!flow.closed) {
      let received: [Uint8Array, UdpAddress];
      try {
        received = await flow.transport.receive(buffer);
      } catch (error) {
        if (flow.closed || this.#stopping) return;
        this.#logger.debug("receive failed on a target socket", { error: String(error) });
        continue;
      }
      const [payload, from] = received;
      if (from.port !== target.port || from.hostname !== target.hostname) {
        this.targetCounters.foreign++;
        continue;
      }
      const now = performance.now();
      flow.lastActiveMs = now;
      this.targetCounters.fromTarget++;
      if (!this.core.sendFromTarget(flow.sessionId, flow.flowId, payload, now, outbox)) {
        this.#closeFlow(flow);
        return;
      }
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

  #flowFor(sessionId: number, flowId: number): TargetFlow | undefined {
    let flows = this.#flows.get(sessionId);
    const existing = flows?.get(flowId);
    if (existing) return existing;
    if (this.#stopping) return undefined;
    if (
      flows && flows.size >= this.#maxFlowsPerSession || this.flowCount >= this.#maxTargetSockets
    ) {
      this.targetCounters.flowLimit++;
      this.#logFlowRefusal("refused a new target socket: at the limit", {
        perSession: this.#maxFlowsPerSession,
        total: this.#maxTargetSockets,
      });
      return undefined;
    }
    let transport: DatagramTransport;
    try {
      transport = bindUdp({ hostname: wildcardFor(this.#target.hostname), port: 0 });
    } catch (error) {
      // Out of file descriptors or ports: this datagram is lost, the server and its sessions are not.
      this.targetCounters.flowLimit++;
      this.#logFlowRefusal("cannot open a target socket", { error: String(error) });
      return undefined;
    }
    if (!flows) this.#flows.set(sessionId, flows = new Map());
    const flow: TargetFlow = {
      sessionId,
      flowId,
      transport,
      lastActiveMs: performance.now(),
      closed: false,
    };
    flows.set(flowId, flow);
    this.#logger.debug("opened a target socket", {
      session: formatSessionId(sessionId),
      flow: flowId,
      localPort: flow.transport.localAddress.port,
      target: formatHostPort(this.#target),
    });
    this.#track(this.#targetLoop(flow));
    return flow;
  }

  #logFlowRefusal(message: string, details: Record<string, unknown>): void {
    const held = this.#logThrottle.allow(message, performance.now());
    if (held !== undefined) this.#logger.warning(message, { ...details, repeats: held });
  }

  #closeFlow(flow: TargetFlow): void {
    if (flow.closed) return;
    flow.closed = true;
    flow.transport.close();
    const flows = this.#flows.get(flow.sessionId);
    flows?.delete(flow.flowId);
    if (flows?.size === 0) this.#flows.delete(flow.sessionId);
  }

  #closeSessionFlows(sessionId: number): void {
    const flows = this.#flows.get(sessionId);
    if (!flows) return;
    for (const flow of [...flows.values()]) this.#closeFlow(flow);
  }

  #sendFailed(error: unknown): void {
    if (classifySendError(error) !== undefined) return; // counted by the caller
    if (this.#stopping) return;
    throw error;
  }

  /** Runs the core's deadlines (FEC groups to close, reorder gaps to give up, idle sessions). */
  async #fireTimer(): Promise<void> {
    if (this.#stopping) return;
    this.#timerOutbox ??= this.#outbox(this.#timerPending);
    this.core.onTimer(performance.now(), this.#timerOutbox);
    this.#armTimer();
    await this.#settle(this.#timerPending);
  }

  /** Keeps the timer armed for the core's next deadline. */
  #armTimer(): void {
    if (!this.#stopping) this.#timer.arm(this.core.nextDeadlineMs());
  }

  /** Once a second: close target sockets idle in both directions. */
  #maintain(): void {
    const now = performance.now();
    for (const flows of this.#flows.values()) {
      for (const flow of flows.values()) {
        if (now - flow.lastActiveMs >= this.#flowIdleTimeoutMs) this.#closeFlow(flow);
      }
    }
  }
}

/** Describes where a server listens, for the start-up line. */
export function describeListeners(listeners: readonly DatagramTransport[]): string {
  return listeners.map((listener) =>
    formatHostPort({ hostname: listener.localAddress.hostname, port: listener.localAddress.port })
  ).join(", ");
}
