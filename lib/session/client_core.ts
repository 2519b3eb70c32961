/**
 * The client's protocol engine, free of I/O and of the clock: it takes application datagrams, datagrams
 * from paths and the time, and tells its outbox what to send on which path and what to deliver to
 * which application flow. The driver (`lib/driver/client_driver.ts`) owns the sockets and the timer.
 *
 * Life of a session: a random session id; a handshake (INIT on every path, retried until a RESPONSE
 * comes back); then sealed DATA on the paths the scheduling mode picks (`client/scheduling/`: every
 * live path, the fewest good enough, one in turn, or FEC shards in turn). The server answering RESET (it
 * restarted and lost the session) or falling silent starts a new handshake on the same session id;
 * with a secret, a new handshake also runs every {@link ClientTiming.rekeyIntervalMs}. While a
 * handshake is pending, application datagrams wait in a short queue instead of being lost.
 *
 * This class routes messages and timers to the objects that own each concern: the handshake and
 * keys (`client/client_handshake.ts`), the paths (`client/client_paths.ts`) and their probing
 * (`client/path_monitor.ts`), the scheduler of the mode, FEC group shapes (`client/fec_tuning.ts`),
 * delivery in order (`flow_delivery.ts`) and declared flows (`client/declared_flows.ts`).
 */

import type { AeadFactory } from "../crypto/aead.ts";
import type { SecretKeys } from "../crypto/handshake.ts";
import { openMessage } from "../crypto/key_phase.ts";
import type { FecParameters } from "../fec/parameters.ts";
import { assertNever } from "../base/assert.ts";
import { createDropCounters, createTrafficCounters, type DropReason } from "../base/counters.ts";
import type { Logger } from "../base/log.ts";
import type { Random } from "../base/rng.ts";
import { LogThrottle } from "../base/throttle.ts";
import { ClientPath } from "../path/path_stats.ts";
import type { SendErrorKind } from "../path/send_error.ts";
import { randomSessionId } from "../wire/session_id.ts";
import {
  DECLARED_FLOW_BASE,
  decodeMessage,
  type FlowRefusal,
  type FlowTarget,
  type HandshakeMessage,
  MAX_APP_PAYLOAD_BYTES,
  MAX_FLOW_ID,
  type SealedMessage,
  TUNNEL_OVERHEAD_BYTES,
} from "../wire/messages.ts";
import { FlowDelivery } from "./flow_delivery.ts";
import type { SchedulingMode } from "./scheduler.ts";
import { ClientHandshake, type HandshakeReason } from "./client/client_handshake.ts";
import { ClientPaths } from "./client/client_paths.ts";
import { ClientSender } from "./client/client_sender.ts";
import { ClientDeclaredFlows, type DeclaredFlowState } from "./client/declared_flows.ts";
import { FecTuning } from "./client/fec_tuning.ts";
import { HandshakeQueue, PENDING_QUEUE_LIMIT } from "./client/handshake_queue.ts";
import { PathMonitor } from "./client/path_monitor.ts";
import type { ClientScheduler } from "./client/scheduling/client_scheduler.ts";
import { createClientScheduler } from "./client/scheduling/scheduler_factory.ts";

import type { ClientOutbox } from "./client/client_outbox.ts";
import { type ClientTiming, DEFAULT_CLIENT_TIMING } from "./client/client_timing.ts";

export { FLOW_OPEN_RETRY_MS } from "./client/declared_flows.ts";
export { PENDING_QUEUE_LIMIT } from "./client/handshake_queue.ts";
export type { ClientOutbox } from "./client/client_outbox.ts";
export { type ClientTiming, DEFAULT_CLIENT_TIMING } from "./client/client_timing.ts";

/** A redundant copy counts as a sign of life on its path when this close to the newest number. */
const RECENT_DUPLICATE_SPAN = 256;

/** Adaptive mode's loss target when none is configured: 0.1 %. */
export const DEFAULT_TARGET_LOSS_RATIO = 0.001;

export type { FlowRefusal, FlowTarget };

/** What builds a client core. */
export interface ClientCoreOptions {
  /** A label per path (its name or HOST:PORT), in config order. */
  readonly pathLabels: readonly string[];
  /** Per path, true for a backup path: used only while no other path is up. */
  readonly backupPaths?: readonly boolean[];
  /** Per path, its share in balance mode (default 1). */
  readonly pathWeights?: readonly number[];
  /** How datagrams are spread over the paths (default redundant). */
  readonly mode?: SchedulingMode;
  /** Adaptive mode and automatic FEC aim for residual loss below this (default 0.001). */
  readonly targetLossRatio?: number;
  /** FEC group shape, or chosen from the measured loss (default). */
  readonly fec?: FecParameters | "auto";
  /** Hold datagrams that overtake an earlier one of their flow at most this long (0: never). */
  readonly reorderTimeoutMs?: number;
  /** Derived from the shared secret; undefined runs unauthenticated and unencrypted. */
  readonly secret?: SecretKeys;
  readonly logger: Logger;
  /** The session id; a random non-zero 32-bit number from `random` when omitted. */
  readonly sessionId?: number;
  /** Makes the session keys' AEADs: the driver passes the fastest available, tests what they test. */
  readonly aead: AeadFactory;
  /** Where randomness comes from: the system's CSPRNG in the driver, a seeded one in tests. */
  readonly random: Random;
  readonly timing?: Partial<ClientTiming>;
}

/** Where the client is in its life. */
export type ClientState = "connecting" | "established";

/** Counters the client keeps beyond its paths'. */
export interface ClientCounters {
  readonly fromApp: { datagrams: number; bytes: number };
  readonly toApp: { datagrams: number; bytes: number };
  /** Redundant copies dropped by the window (expected in redundant mode, not an error). */
  duplicates: number;
  /** Datagrams from the server rebuilt from FEC parity. */
  fecRecovered: number;
  handshakesCompleted: number;
  readonly drops: Record<DropReason, number>;
}

/** The client end of the tunnel, as a state machine. */
export class ClientCore {
  readonly sessionId: number;
  readonly counters: ClientCounters = {
    fromApp: createTrafficCounters(),
    toApp: createTrafficCounters(),
    duplicates: 0,
    fecRecovered: 0,
    handshakesCompleted: 0,
    drops: createDropCounters(),
  };
  readonly mode: SchedulingMode;
  readonly #paths: ClientPaths;
  readonly #scheduler: ClientScheduler<ClientPath>;
  readonly #monitor: PathMonitor;
  readonly #handshake: ClientHandshake;
  readonly #fec: FecTuning;
  readonly #delivery: FlowDelivery<ClientOutbox>;
  readonly #declaredFlows: ClientDeclaredFlows<ClientOutbox>;
  readonly #reorderTimeoutMs: number;
  readonly #sender: ClientSender;
  readonly #secret: SecretKeys | undefined;
  readonly #logger: Logger;
  #timing: ClientTiming;
  readonly #logThrottle = new LogThrottle(10_000);
  #state: ClientState = "connecting";
  readonly #queue: HandshakeQueue = new HandshakeQueue(this.counters.drops);

  constructor(options: ClientCoreOptions) {
    this.sessionId = options.sessionId ?? randomSessionId(options.random);
    this.#paths = new ClientPaths(options.pathLabels.map((label, index) =>
      new ClientPath(
        index,
        label,
        options.backupPaths?.[index] ?? false,
        options.pathWeights?.[index] ?? 1,
      )
    ));
    this.#secret = options.secret;
    this.#logger = options.logger;
    this.#timing = { ...DEFAULT_CLIENT_TIMING, ...options.timing };
    this.mode = options.mode ?? "redundant";
    const targetLossRatio = options.targetLossRatio ?? DEFAULT_TARGET_LOSS_RATIO;
    this.#fec = new FecTuning(options.fec ?? "auto", targetLossRatio);
    this.#reorderTimeoutMs = options.reorderTimeoutMs ?? 0;
    this.#monitor = new PathMonitor(this.#timing, this.#logger, () => this.#pathsChanged());
    this.#scheduler = createClientScheduler(this.mode, {
      targetLossRatio,
      suspect: (path, nowMs) => this.#monitor.suspect(path, nowMs),
    });
    this.#handshake = new ClientHandshake(
      this.sessionId,
      this.#secret,
      options.aead,
      this.#logger,
      this.#logThrottle,
    );
    this.#sender = new ClientSender({
      sessionId: this.sessionId,
      handshake: this.#handshake,
      paths: this.#paths,
      scheduler: this.#scheduler,
      fec: this.#fec,
      monitor: this.#monitor,
      reorderTimeoutMs: this.#reorderTimeoutMs,
    });
    this.#delivery = new FlowDelivery<ClientOutbox>(
      (flowId, payload, _nowMs, outbox) => this.#deliverNow(flowId, payload, outbox),
      {
        reorderTimeoutMs: this.#reorderTimeoutMs,
        onFecRecovered: () => this.counters.fecRecovered++,
      },
    );
    this.#declaredFlows = new ClientDeclaredFlows<ClientOutbox>(
      {
        sendFlowOpen: (flowId, body, generation, outbox) =>
          this.#sender.sendFlowOpen(flowId, body, generation, outbox),
        sendWaiting: (flowId, payload, nowMs, outbox) => {
          const out = new Uint8Array(payload.length + TUNNEL_OVERHEAD_BYTES);
          this.#sender.sendData(flowId, payload, out, nowMs, outbox);
        },
        refused: (flowId, reason, outbox) => outbox.flowRefused?.(flowId, reason),
      },
      this.counters.drops,
      this.#logger,
      this.#logThrottle,
      PENDING_QUEUE_LIMIT,
    );
    for (const path of this.#paths.list) path.silenceLimitMs = this.#timing.pathDownAfterMs;
  }

  /** The paths in use, in the order they were added. */
  get paths(): readonly ClientPath[] {
    return this.#paths.list;
  }

  /** `connecting` until the first handshake completes. */
  get state(): ClientState {
    return this.#state;
  }

  /** True when traffic is sealed with keys from a secret. */
  get authenticated(): boolean {
    return this.#secret !== undefined;
  }

  /** Tunnels one application datagram of flow `flowId` (queued while connecting). */
  sendFromApp(flowId: number, payload: Uint8Array, nowMs: number, outbox: ClientOutbox): void {
    if (payload.length > MAX_APP_PAYLOAD_BYTES) {
      this.#drop("oversize", nowMs, "dropped an application datagram too large to tunnel", {
        bytes: payload.length,
        maxBytes: MAX_APP_PAYLOAD_BYTES,
      });
      return;
    }
    if (this.#declaredFlows.refuses(flowId)) {
      this.counters.drops["target-refused"]++;
      return;
    }
    this.counters.fromApp.datagrams++;
    this.counters.fromApp.bytes += payload.length;
    this.#monitor.countData(nowMs);
    if (this.#declaredFlows.holdForAnswer(flowId, payload)) return;
    if (!this.#handshake.current) {
      this.#queue.hold(flowId, payload);
      return;
    }
    this.#queue.noteSent(flowId, payload);
    this.#sender.sendData(flowId, payload, outbox.scratch, nowMs, outbox);
  }

  /** Handles a datagram that arrived on path `pathIndex`. */
  receiveFromPath(
    pathIndex: number,
    datagram: Uint8Array,
    nowMs: number,
    outbox: ClientOutbox,
  ): void {
    const path = this.#paths.get(pathIndex);
    if (!path) {
      this.counters.drops.unexpected++; // a path removed while its datagrams were in flight
      return;
    }
    const decoded = decodeMessage(datagram);
    if (!decoded.ok) {
      this.counters.drops[decoded.reason]++;
      return;
    }
    const message = decoded.message;
    switch (message.type) {
      case "data":
      case "probe-reply":
      case "fec":
      case "flow-reply":
        this.#receiveSealed(path, message, datagram.length, nowMs, outbox);
        return;
      case "flow-open":
        this.counters.drops.unexpected++;
        return;
      case "response":
        this.#receiveResponse(path, message, datagram, nowMs, outbox);
        return;
      case "reset":
        // A RESET answers one of our datagrams the server could not place. Only one naming the
        // keys we use now means the server lost the session: RESETs for earlier keys answer
        // datagrams from before a handshake, or replays.
        switch (this.#handshake.receiveReset(message, path.label, nowMs)) {
          case "unknown-session":
            this.counters.drops["unknown-session"]++;
            return;
          case "handshake":
            this.#queue.resetReceived();
            this.#startHandshake("server-lost-session", nowMs, outbox);
            return;
          case "ignore":
            return;
        }
        return;
      case "notice":
        if (message.sessionId !== this.sessionId) {
          this.counters.drops["unknown-session"]++;
          return;
        }
        this.#handshake.logNotice(message.code, path.label, nowMs);
        return;
      case "init":
      case "probe":
        this.counters.drops.unexpected++;
        return;
      default:
        return assertNever(message);
    }
  }

  /**
   * Declares flow `flowId` (at least {@link DECLARED_FLOW_BASE}) and where its datagrams go. The
   * core tells the server on every live path, again every {@link FLOW_OPEN_RETRY_MS} until it
   * answers, and again after the server lost the session. Datagrams may be sent at once: the server
   * holds a declared flow's datagrams briefly until it has opened the flow.
   */
  openFlow(flowId: number, target: FlowTarget, nowMs: number, outbox: ClientOutbox): void {
    if (flowId < DECLARED_FLOW_BASE || flowId > MAX_FLOW_ID) {
      throw new RangeError(`declared flow ids are ${DECLARED_FLOW_BASE} to ${MAX_FLOW_ID}`);
    }
    this.#declaredFlows.open(flowId, target, this.#handshake.current !== undefined, nowMs, outbox);
  }

  /** Forgets a declared flow (its application went quiet). */
  closeFlow(flowId: number): void {
    this.#declaredFlows.close(flowId);
    this.#delivery.forgetFlow(flowId);
    this.#sender.forgetFlow(flowId);
  }

  /** Where a declared flow stands: waiting for the server, open, or refused (and why). */
  flowState(flowId: number): DeclaredFlowState | undefined {
    return this.#declaredFlows.state(flowId);
  }

  /** Records that a send on a path failed; the other paths carry on. */
  recordSendError(pathIndex: number, kind: SendErrorKind, nowMs: number): void {
    const path = this.#paths.get(pathIndex);
    if (!path) return;
    path.sendErrors[kind]++;
    const held = this.#logThrottle.allow(`send-error ${pathIndex} ${kind}`, nowMs);
    if (held !== undefined) {
      this.#logger.warning("send failed on path", { path: path.label, error: kind, repeats: held });
    }
  }

  /**
   * Adds a path (on a configuration reload); it is probed at once and carries data as soon as it is
   * heard. Returns its index, which the driver uses for its socket.
   */
  addPath(label: string, backup = false, weight = 1): number {
    const path = this.#paths.add(label, backup, weight);
    path.silenceLimitMs = this.#timing.pathDownAfterMs;
    this.#scheduler.pathsChanged();
    this.#logger.info("path added", { path: label, backup });
    return path.index;
  }

  /** Removes a path (on a configuration reload); the session and the other paths carry on. */
  removePath(pathIndex: number): void {
    const path = this.#paths.remove(pathIndex);
    if (!path) return;
    this.#scheduler.forgetPath(pathIndex);
    this.#scheduler.pathsChanged();
    this.#logger.info("path removed", { path: path.label });
  }

  /**
   * Takes a path out of service (no data, no advice to carry data; still probed, so its health stays
   * known) or puts it back, at run time: an operator draining a metered link, say.
   */
  setPathInService(pathIndex: number, inService: boolean): void {
    const path = this.#paths.get(pathIndex);
    if (!path || path.inService === inService) return;
    path.inService = inService;
    this.#pathsChanged();
    this.#logger.info(inService ? "path back in service" : "path taken out of service", {
      path: path.label,
    });
  }

  /** Changes the timing (on a configuration reload), e.g. the rekey interval. */
  setTiming(timing: Partial<ClientTiming>): void {
    this.#timing = { ...this.#timing, ...timing };
  }

  /** Runs what is due at `nowMs`: handshake retries, probes, path and server liveness, rekeying. */
  onTimer(nowMs: number, outbox: ClientOutbox): void {
    const timing = this.#timing;
    const handshake = this.#handshake;
    const due = handshake.due(nowMs, timing);
    if (handshake.pending) {
      if (due === "retry") this.#sender.sendInit(nowMs, outbox);
      handshake.warnIfUnanswered(nowMs);
    } else if (due !== undefined && due !== "retry") {
      this.#startHandshake(due, nowMs, outbox);
    }
    handshake.expirePrevious(nowMs, timing);
    const monitor = this.#monitor;
    monitor.updateProbeInterval(nowMs, timing);
    const current = handshake.current;
    for (const path of this.#paths.list) {
      monitor.checkSilence(path, nowMs, timing, this.#scheduler.falseDownProbability);
      if (current && nowMs >= monitor.nextProbeMs(path, timing)) {
        this.#sender.sendProbe(path, nowMs, outbox);
      }
    }
    const encoder = this.#fec.encoder;
    if (current && encoder) this.#sender.sendShards(encoder.flush(nowMs), nowMs, outbox);
    if (current) this.#declaredFlows.retry(nowMs, outbox);
    this.#delivery.flush(nowMs, outbox);
  }

  /** The next time {@link onTimer} has work, or undefined if none is scheduled. */
  nextDeadlineMs(): number | undefined {
    const timing = this.#timing;
    const handshake = this.#handshake;
    if (!handshake.current && !handshake.pending) return -Infinity;
    let deadline = handshake.nextDeadlineMs(timing);
    if (handshake.current) {
      for (const path of this.#paths.list) {
        deadline = Math.min(deadline, this.#monitor.nextProbeMs(path, timing));
      }
      deadline = Math.min(deadline, this.#fec.encoder?.nextDeadlineMs() ?? Infinity);
      deadline = Math.min(deadline, this.#declaredFlows.nextDeadlineMs());
    }
    for (const path of this.#paths.list) {
      if (path.state === "up") deadline = Math.min(deadline, this.#monitor.silenceEndsMs(path));
    }
    deadline = Math.min(deadline, this.#delivery.nextDeadlineMs() ?? Infinity);
    return deadline === Infinity ? undefined : deadline;
  }

  /** Hands a datagram from the server to the application, unless it belongs to an earlier flow. */
  #deliverNow(flowId: number, payload: Uint8Array, outbox: ClientOutbox): void {
    if (!this.#declaredFlows.admitsDelivery(flowId)) {
      this.counters.drops.unexpected++;
      return;
    }
    this.counters.toApp.datagrams++;
    this.counters.toApp.bytes += payload.length;
    outbox.deliverToApp(flowId, payload);
  }

  #receiveSealed(
    path: ClientPath,
    message: SealedMessage,
    datagramBytes: number,
    nowMs: number,
    outbox: ClientOutbox,
  ): void {
    if (message.sessionId !== this.sessionId) {
      this.counters.drops["unknown-session"]++;
      return;
    }
    const keyPhase = this.#handshake.keysFor(message.keyPhase);
    if (!keyPhase) {
      this.counters.drops["unknown-session"]++;
      return;
    }
    const opened = openMessage(keyPhase, message, outbox.scratch);
    if (!opened.ok) {
      if (opened.reason === "duplicate") {
        this.counters.duplicates++;
        // A redundant copy shows the path works, but it is unauthenticated: only a copy of one of
        // the latest datagrams counts, so replaying old ones cannot keep a dead path up.
        if (keyPhase.receiveWindow.highest - message.sequence < RECENT_DUPLICATE_SPAN) {
          this.#monitor.heard(path, datagramBytes, nowMs);
        }
      } else {
        this.counters.drops[opened.reason]++;
      }
      return;
    }
    this.#monitor.heard(path, datagramBytes, nowMs);
    this.#handshake.lastHeardFromServerMs = nowMs;
    switch (message.type) {
      case "data":
        this.#monitor.countData(nowMs);
        this.#delivery.receiveData(
          message.flowId,
          message.flowSequence,
          opened.body,
          nowMs,
          outbox,
        );
        return;
      case "fec":
        this.#monitor.countData(nowMs);
        this.#delivery.receiveFec(message.flowId, opened.body, nowMs, outbox);
        return;
      case "flow-reply":
        this.#declaredFlows.receiveReply(
          message.flowId,
          message.flowSequence,
          opened.body,
          nowMs,
          outbox,
        );
        return;
      case "probe-reply":
        if (!this.#monitor.receiveProbeReply(path, opened.body, nowMs)) {
          this.counters.drops.malformed++;
        }
        return;
      default:
        this.counters.drops.unexpected++; // the server sends no PROBE or FLOW_OPEN
    }
  }

  #receiveResponse(
    path: ClientPath,
    message: HandshakeMessage,
    datagram: Uint8Array,
    nowMs: number,
    outbox: ClientOutbox,
  ): void {
    const outcome = this.#handshake.receiveResponse(message, datagram, path.label, nowMs);
    if (outcome.kind === "duplicate") {
      this.counters.duplicates++; // not a sign of life: anyone can replay a RESPONSE
      return;
    }
    if (outcome.kind === "refused") {
      this.counters.drops[outcome.reason]++;
      return;
    }
    this.#state = "established";
    this.counters.handshakesCompleted++;
    this.#monitor.heard(path, datagram.length, nowMs);
    this.#handshake.logCompleted(outcome, path.label);
    if (!message.sessionContinued && this.#handshake.hasPrevious) {
      // A new server-side session: its FEC groups and flow sequences start again from zero, so
      // what this side remembers of the old ones would make the new ones look late or stale.
      this.#delivery.reset();
      this.#sender.restartFlows();
      this.#fec.reset();
    }
    // A server that did not know the session has none of its flows: declare them again, first (a
    // declared flow's datagrams are held by the server until it has the declaration).
    this.#declaredFlows.redeclare(message.sessionContinued, nowMs, outbox);
    for (const { flowId, payload } of this.#queue.release(message.sessionContinued)) {
      // Each queued datagram gets its own buffer: they are all sent before any send settles.
      const out = new Uint8Array(payload.length + TUNNEL_OVERHEAD_BYTES);
      this.#sender.sendData(flowId, payload, out, nowMs, outbox);
    }
  }

  #startHandshake(reason: HandshakeReason, nowMs: number, outbox: ClientOutbox): void {
    this.#handshake.start(reason, nowMs);
    this.#sender.sendInit(nowMs, outbox);
  }

  /** The set of paths that may carry data changed: recompute what depends on it. */
  #pathsChanged(): void {
    this.#paths.changed();
    this.#scheduler.pathsChanged();
  }

  #drop(
    reason: DropReason,
    nowMs: number,
    message: string,
    details: Record<string, unknown>,
  ): void {
    this.counters.drops[reason]++;
    const held = this.#logThrottle.allow(reason, nowMs);
    if (held !== undefined) this.#logger.warning(message, { ...details, repeats: held });
  }
}
