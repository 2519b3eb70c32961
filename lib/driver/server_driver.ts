/**
 * The server's driver: the sockets and the timer around {@link ServerCore}. It listens on one or more
 * addresses for clients and opens, per session flow, a socket of its own toward the target, so the
 * target sees a distinct source port per client application. Replies read from that socket are sealed
 * by the core and sent back over the session's paths.
 *
 * Every receive loop owns a receive buffer and a scratch buffer, and waits for the sends it started
 * before it receives again, because Deno reads a send buffer when the send runs.
 */

import { formatHostPort, type HostPort } from "../base/address.ts";
import type { AllowRule } from "../session/allow_rule.ts";
import { addressAllowed, chooseTarget, type TargetPolicy } from "../session/target_policy.ts";
import { DECLARED_FLOW_BASE, type FlowRefusal, type FlowTarget } from "../wire/messages.ts";
import { formatSessionId } from "../wire/session_id.ts";
import type { SecretKeys } from "../crypto/handshake.ts";
import type { Logger } from "../base/log.ts";
import { resolveHost, wildcardFor } from "../io/resolve.ts";
import { ServerCore, type ServerLimits, type ServerOutbox } from "../session/server_core.ts";
import { formatDrops } from "../base/counters.ts";
import { DeadlineTimer } from "../io/deadline_timer.ts";
import { LogThrottle } from "../base/throttle.ts";
import { classifySendError } from "../io/udp.ts";
import type { BindTransport, DatagramTransport, UdpAddress } from "../io/transport.ts";
import { createAead } from "../crypto/aead_factory.ts";

/** What starts a server. */
export interface ServerDriverOptions {
  /** Where clients (and bridges) send. */
  readonly listen: readonly HostPort[];
  /** Where classic flows' datagrams go (the default target); none: classic flows are refused. */
  readonly target?: HostPort;
  /** Named targets clients may declare flows to. */
  readonly targets?: ReadonlyMap<string, HostPort>;
  /** What explicit `HOST:PORT` declarations may reach (default deny). */
  readonly allow?: readonly AllowRule[];
  readonly secret?: SecretKeys;
  readonly logger: Logger;
  /** Opens the sockets: `bindUdp` in the programs, a `MemoryNetwork`'s `bind` in tests. */
  readonly bind: BindTransport;
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
/** Client addresses whose listening socket is remembered (several listen addresses only). */
const MAX_REMEMBERED_ARRIVALS = 65_536;

/** One session flow's socket toward its target. */
interface TargetFlow {
  readonly sessionId: number;
  readonly flowId: number;
  /** Where its datagrams go, resolved; replies from anywhere else are foreign. */
  readonly target: UdpAddress;
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
  /** Classic flows' datagrams dropped because there is no default target. */
  noTarget: number;
  /** Declared flows refused (unknown name, not allowed, unresolvable, at the limit). */
  flowsRefused: number;
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
    noTarget: 0,
    flowsRefused: 0,
  };
  readonly #target: UdpAddress | undefined;
  readonly #policy: TargetPolicy;
  /** Resolved targets of declared flows, kept while the session lives (a socket may close idle). */
  readonly #declaredTargets = new Map<number, Map<number, UdpAddress>>();
  /** With several listening sockets: which one each client address last sent to. */
  readonly #arrivedOn = new Map<string, DatagramTransport>();
  readonly #logger: Logger;
  readonly #bind: BindTransport;
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
    target: UdpAddress | undefined,
  ) {
    this.listeners = listeners;
    this.#target = target;
    this.#policy = {
      targets: options.targets ?? new Map(),
      defaultTarget: options.target,
      allow: options.allow ?? [],
    };
    this.#logger = options.logger;
    this.#bind = options.bind;
    this.#flowIdleTimeoutMs = options.flowIdleTimeoutMs ?? DEFAULT_FLOW_IDLE_TIMEOUT_MS;
    this.#maxFlowsPerSession = options.maxFlowsPerSession ?? DEFAULT_MAX_FLOWS_PER_SESSION;
    this.#maxTargetSockets = options.maxTargetSockets ?? DEFAULT_MAX_TARGET_SOCKETS;
    this.core = new ServerCore({
      secret: options.secret,
      aead: createAead,
      logger: options.logger,
      limits: options.limits,
      onSessionClosed: (sessionId) => this.#closeSessionFlows(sessionId),
    });
  }

  /** Resolves the target, binds the listening sockets and starts the loops. */
  static async start(options: ServerDriverOptions): Promise<ServerDriver> {
    const defaultTarget = options.target;
    const targetAddress = defaultTarget === undefined
      ? undefined
      : await resolveHost(defaultTarget.hostname).catch((error) => {
        throw new Error(
          `cannot resolve the target ${defaultTarget.hostname}: ${(error as Error).message}`,
        );
      });
    const listeners: DatagramTransport[] = [];
    // On Linux `[::]:PORT` is dual-stack and already receives IPv4: bind it first, and let a
    // `0.0.0.0:PORT` beside it go (binding it would fail as "address in use").
    const ordered = [...options.listen].sort((a, b) =>
      Number(b.hostname === "::") - Number(a.hostname === "::")
    );
    try {
      for (const address of ordered) {
        const dualStack = listeners.some((listener) =>
          listener.localAddress.hostname === "::" && listener.localAddress.port === address.port
        );
        if (address.hostname === "0.0.0.0" && dualStack) {
          try {
            listeners.push(options.bind(address));
          } catch (error) {
            if (!(error instanceof Deno.errors.AddrInUse)) throw error;
            options.logger.info("IPv4 arrives on the dual-stack IPv6 socket", {
              listen: formatHostPort(address),
            });
          }
          continue;
        }
        listeners.push(options.bind(address));
      }
    } catch (error) {
      for (const listener of listeners) listener.close();
      throw error;
    }
    const driver = new ServerDriver(
      options,
      listeners,
      targetAddress === undefined || defaultTarget === undefined
        ? undefined
        : { transport: "udp", hostname: targetAddress, port: defaultTarget.port },
    );
    for (const listener of listeners) driver.#track(driver.#listenLoop(listener));
    driver.#maintenanceTimer = setInterval(() => driver.#maintain(), MAINTENANCE_INTERVAL_MS);
    return driver;
  }

  /** Where classic flows go, resolved (undefined: nowhere). */
  get target(): UdpAddress | undefined {
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
        pending.push(flow.transport.send(payload, flow.target).catch(targetSendFailed));
      },
      openTarget: (sessionId, flowId, target, attempt) => {
        this.#openDeclaredFlow(sessionId, flowId, target, attempt).catch((error) => {
          this.#logger.error("opening a flow failed", { error: String(error) });
        });
      },
    };
  }

  #listenerFor(address: UdpAddress): DatagramTransport {
    if (this.listeners.length === 1) return this.listeners[0];
    // Reply from the socket the address last sent to: a client that aimed at one of several
    // addresses (or ports) drops replies from another.
    const arrivedOn = this.#arrivedOn.get(`${address.hostname} ${address.port}`);
    if (arrivedOn) return arrivedOn;
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
      if (this.listeners.length > 1) this.#noteArrival(received[1], listener);
      this.core.receive(received[1], received[0], performance.now(), outbox);
      await this.#settle(pending);
    }
  }

  async #targetLoop(flow: TargetFlow): Promise<void> {
    const pending: Promise<unknown>[] = [];
    const outbox = this.#outbox(pending);
    const buffer = new Uint8Array(RECEIVE_BUFFER_BYTES);
    const target = flow.target;
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
    const target = flowId >= DECLARED_FLOW_BASE
      ? this.#declaredTargets.get(sessionId)?.get(flowId)
      : this.#target;
    if (target === undefined) {
      // A classic flow with no default target, or a declared one the core let through unopened.
      this.targetCounters.noTarget++;
      this.#logFlowRefusal("dropped a datagram with nowhere to go (no default target)", {
        session: formatSessionId(sessionId),
      });
      return undefined;
    }
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
      transport = this.#bind({ hostname: wildcardFor(target.hostname), port: 0 });
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
      target,
      transport,
      lastActiveMs: performance.now(),
      closed: false,
    };
    flows.set(flowId, flow);
    this.#logger.debug("opened a target socket", {
      session: formatSessionId(sessionId),
      flow: flowId,
      localPort: flow.transport.localAddress.port,
      target: formatHostPort(target),
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
    this.#declaredTargets.delete(sessionId);
    const flows = this.#flows.get(sessionId);
    if (!flows) return;
    for (const flow of [...flows.values()]) this.#closeFlow(flow);
  }

  #sendFailed(error: unknown): void {
    if (classifySendError(error) !== undefined) return; // counted by the caller
    if (this.#stopping) return;
    throw error;
  }

  #noteArrival(from: UdpAddress, listener: DatagramTransport): void {
    const key = `${from.hostname} ${from.port}`;
    if (this.#arrivedOn.get(key) === listener) return;
    if (this.#arrivedOn.size >= MAX_REMEMBERED_ARRIVALS) this.#arrivedOn.clear();
    this.#arrivedOn.set(key, listener);
  }

  /** Runs the core's deadlines (FEC groups to close, reorder gaps to give up, idle sessions). */
  async #fireTimer(): Promise<void> {
    if (this.#stopping) return;
    this.#timerOutbox ??= this.#outbox(this.#timerPending);
    this.core.onTimer(performance.now(), this.#timerOutbox);
    this.#armTimer();
    await this.#settle(this.#timerPending);
  }

  /**
   * A client declared a flow: check the name or the rules, resolve, and tell the core. Named targets
   * are always allowed; an explicit address must match an `allow` rule once resolved.
   */
  async #openDeclaredFlow(
    sessionId: number,
    flowId: number,
    target: FlowTarget,
    attempt: number,
  ): Promise<void> {
    const choice = chooseTarget(this.#policy, target);
    let status: "open" | FlowRefusal = choice.ok ? "open" : choice.refusal;
    let label = target.kind === "named" ? target.name : `${target.host}:${target.port}`;
    if (choice.ok) {
      label = choice.label;
      let address: string | undefined;
      try {
        address = await resolveHost(choice.host);
      } catch {
        status = "unresolvable";
      }
      if (address !== undefined) {
        const flows = this.#flows.get(sessionId);
        if (!choice.named && !addressAllowed(this.#policy, address, choice.port)) {
          status = "denied";
        } else if (
          flows && flows.size >= this.#maxFlowsPerSession ||
          this.flowCount >= this.#maxTargetSockets
        ) {
          status = "limit";
        } else if (this.core.isCurrentFlowAttempt(sessionId, flowId, attempt)) {
          let declared = this.#declaredTargets.get(sessionId);
          if (!declared) this.#declaredTargets.set(sessionId, declared = new Map());
          declared.set(flowId, { transport: "udp", hostname: address, port: choice.port });
          // A declaration may replace an earlier one of the same id: its old socket goes.
          const old = flows?.get(flowId);
          if (old) this.#closeFlow(old);
        }
      }
    }
    if (this.#stopping || !this.core.isCurrentFlowAttempt(sessionId, flowId, attempt)) return;
    if (status !== "open") {
      this.targetCounters.flowsRefused++;
      const held = this.#logThrottle.allow(`flow refused ${status}`, performance.now());
      if (held !== undefined) {
        this.#logger.warning("refused a client's flow", {
          session: formatSessionId(sessionId),
          target: label,
          reason: status,
          repeats: held,
        });
      }
    } else {
      this.#logger.debug("flow opened", { session: formatSessionId(sessionId), target: label });
    }
    this.#timerOutbox ??= this.#outbox(this.#timerPending);
    this.core.flowOpened(sessionId, flowId, status, performance.now(), this.#timerOutbox, attempt);
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
