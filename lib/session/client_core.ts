/**
 * The client's protocol engine, free of I/O and of the clock: it takes application datagrams, datagrams
 * from paths and the time, and tells its outbox what to send on which path and what to deliver to
 * which application flow. The driver (`lib/driver/client_driver.ts`) owns the sockets and the timer.
 *
 * Life of a session: a random session id; a handshake (INIT on every path, retried until a RESPONSE
 * comes back); then sealed DATA on the paths the scheduling mode picks (`lib/session/scheduler.ts`: every
 * live path, the fewest good enough, one in turn, or FEC shards in turn). The server answering RESET (it
 * restarted and lost the session) or falling silent starts a new handshake on the same session id;
 * with a secret, a new handshake also runs every {@link ClientTiming.rekeyIntervalMs}. While a
 * handshake is pending, application datagrams wait in a short queue instead of being lost.
 */

import { formatSessionId } from "../wire/session_id.ts";
import {
  completeHandshake,
  createInit,
  type PendingHandshake,
  type SecretKeys,
} from "../crypto/handshake.ts";
import { KeyPhase, openMessage, sealMessage } from "../crypto/key_phase.ts";
import { FecDecoder } from "../fec/decoder.ts";
import { FecEncoder } from "../fec/encoder.ts";
import type { FecShard } from "../fec/group.ts";
import { chooseFecParameters, type FecParameters } from "../fec/parameters.ts";
import { ReorderBuffer } from "./reorder.ts";
import {
  adaptivePathCount,
  falseDownProbability,
  probeIntervalMs,
  RateMeter,
  type SchedulingMode,
  silenceLimitMs,
  UNKNOWN_LOSS_RATIO,
  WeightedRoundRobin,
} from "./scheduler.ts";
import { formatHostPort } from "../base/address.ts";
import { assertNever } from "../base/assert.ts";
import type { Logger } from "../base/log.ts";
import { ClientPath, type PathState } from "../path/path_stats.ts";
import { createDropCounters, createTrafficCounters, type DropReason } from "../base/counters.ts";
import { LogThrottle } from "../base/throttle.ts";
import type { SendErrorKind } from "../path/send_error.ts";
import {
  DECLARED_FLOW_BASE,
  decodeFlowReplyBody,
  decodeMessage,
  decodeProbeEcho,
  decodeProbeReplyCount,
  encodeFlowOpenBody,
  encodeProbeBody,
  type FlowRefusal,
  type FlowTarget,
  type HandshakeMessage,
  MAX_APP_PAYLOAD_BYTES,
  MAX_FLOW_ID,
  NoticeCode,
  type PathAdvice,
  type SealedMessage,
  TUNNEL_OVERHEAD_BYTES,
} from "../wire/messages.ts";

/** How the client paces its handshakes, probes and failure detection. */
export interface ClientTiming {
  /** INIT is re-sent this often until a RESPONSE arrives. */
  readonly handshakeRetryMs: number;
  /** A PROBE goes out on each path this often (it doubles as the keepalive for bridges and NATs). */
  readonly probeIntervalMs: number;
  /** A path silent for longer than a probe interval is probed this often, to tell loss from death. */
  readonly quietProbeIntervalMs: number;
  /**
   * A path not heard from for this long is marked down, at most. On a busy tunnel probes go out up to
   * every 100 ms and a path is down after as few missed probes as its measured loss allows.
   */
  readonly pathDownAfterMs: number;
  /** ... but never sooner than this. */
  readonly minPathDownAfterMs: number;
  /** Nothing authentic from the server on any path for this long starts a new handshake. */
  readonly serverSilenceMs: number;
  /** With a secret, a new handshake (fresh keys) runs this often. */
  readonly rekeyIntervalMs: number;
  /** After a new handshake, datagrams under the previous keys are still accepted this long. */
  readonly previousKeysGraceMs: number;
}

/** Defaults: a restart is noticed within about a second, a dead path within two. */
export const DEFAULT_CLIENT_TIMING: ClientTiming = {
  handshakeRetryMs: 250,
  probeIntervalMs: 500,
  quietProbeIntervalMs: 150,
  pathDownAfterMs: 2000,
  minPathDownAfterMs: 150,
  serverSilenceMs: 1500,
  rekeyIntervalMs: 120_000,
  previousKeysGraceMs: 10_000,
};

/** Application datagrams kept while a handshake is pending. */
export const PENDING_QUEUE_LIMIT = 256;

/** A RESET starts a handshake at most this often. */
const RESET_HANDSHAKE_SPACING_MS = 1000;

/** A redundant copy counts as a sign of life on its path when this close to the newest number. */
const RECENT_DUPLICATE_SPAN = 256;

/** A FLOW_OPEN not answered is sent again this often. */
export const FLOW_OPEN_RETRY_MS = 200;

/** Adaptive mode's loss target when none is configured: 0.1 %. */
export const DEFAULT_TARGET_LOSS_RATIO = 0.001;

/** Adaptive path sets and automatic FEC parameters are recomputed this often. */
const ADAPTIVE_REFRESH_MS = 100;
const FEC_REFRESH_MS = 250;

/** A path that went down counts as unreliable in adaptive mode for this long. */
const FLAP_MEMORY_MS = 30_000;

/** Loss assumed for FEC's automatic choice before anything is measured: cautious, as the first
 * groups go out before any measurement. */
const FEC_INITIAL_LOSS_RATIO = 0.25;

/**
 * The loss FEC's automatic choice plans for: the measured mean plus a margin for the estimate's own
 * error (a group shaped for exactly the measured loss loses ten times the target at a little more).
 */
function fecPlanningLossRatio(measuredLossRatio: number): number {
  return Math.min(0.5, measuredLossRatio * 1.1 + 0.01);
}

/** How the client core hands work to its driver. */
export interface ClientOutbox {
  /**
   * A buffer of at least 65 536 bytes that belongs to the calling receive loop: the core seals an
   * outgoing datagram or decrypts an incoming one into it. The driver keeps it unchanged until every
   * send made during the call has settled.
   */
  readonly scratch: Uint8Array;
  /** Sends a datagram on path `pathIndex`. */
  sendOnPath(pathIndex: number, datagram: Uint8Array): void;
  /** Hands a datagram from the server to the application flow `flowId`. */
  deliverToApp(flowId: number, payload: Uint8Array): void;
  /** The server refused a declared flow (see {@link ClientCore.openFlow}). */
  flowRefused?(flowId: number, reason: FlowRefusal): void;
}

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
  /** The session id; a random non-zero 32-bit number when omitted. */
  readonly sessionId?: number;
  readonly timing?: Partial<ClientTiming>;
}

/** Why a handshake runs: the first one, fresh keys, or the server lost or stopped answering us. */
type HandshakeReason = "start" | "rekey" | "server-lost-session" | "server-silent";

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
  /** The paths in use, in the order they were added. */
  paths: readonly ClientPath[];
  /** Every path by its index (removed ones leave a hole: an index is never reused). */
  readonly #pathsByIndex: (ClientPath | undefined)[];
  readonly counters: ClientCounters = {
    fromApp: createTrafficCounters(),
    toApp: createTrafficCounters(),
    duplicates: 0,
    fecRecovered: 0,
    handshakesCompleted: 0,
    drops: createDropCounters(),
  };
  readonly mode: SchedulingMode;
  readonly #targetLossRatio: number;
  readonly #fecSetting: FecParameters | "auto";
  readonly #reorderTimeoutMs: number;
  /** Paths that may carry data now (backup rule applied); rebuilt when a path changes state. */
  #candidates: ClientPath[] = [];
  #candidatesStale = true;
  #adaptiveSet: ClientPath[] = [];
  #adaptiveComputedMs = -Infinity;
  readonly #roundRobin = new WeightedRoundRobin();
  readonly #pickKeys: number[] = [];
  readonly #pickWeights: number[] = [];
  readonly #dataRate = new RateMeter();
  readonly #flowSequences = new Map<number, number>();
  readonly #reorderBuffers = new Map<number, ReorderBuffer>();
  #fecEncoder: FecEncoder | undefined;
  #fecDecoder: FecDecoder | undefined;
  #fecComputedMs = -Infinity;
  /** What the server is asked to use for its FEC groups toward us. */
  #downstreamFec: FecParameters = { dataShards: 0, parityShards: 0 };
  #deliveringOutbox: ClientOutbox | undefined;
  /** Declared flows by id: their target and whether the server has opened them. */
  readonly #declaredFlows = new Map<number, DeclaredFlow>();
  /** The last generation declared per flow id (kept after a flow closes: ids come back). */
  readonly #flowGenerations = new Map<number, number>();
  /** How often each path is probed now: faster while the tunnel is busy. */
  #probeIntervalMs: number;
  /** When probing last sped up: silence before it was judged at the slower pace. */
  #silenceCountsFromMs = -Infinity;
  readonly #secret: SecretKeys | undefined;
  readonly #logger: Logger;
  #timing: ClientTiming;
  readonly #logThrottle = new LogThrottle(10_000);
  #state: ClientState = "connecting";
  #current: KeyPhase | undefined;
  #previous: KeyPhase | undefined;
  #pending: PendingHandshake | undefined;
  #handshakeReason: HandshakeReason = "start";
  #pendingStartedMs = 0;
  #pendingLastSentMs = -Infinity;
  #lastTimestampMs = 0;
  #nextKeyPhase = 0;
  #lastHeardFromServerMs = -Infinity;
  /**
   * Datagrams sent since a RESET said the server lost our session; re-sent under the new keys if the
   * handshake confirms it (the RESPONSE says the session was not continued), forgotten otherwise.
   */
  #sentSinceReset: { flowId: number; payload: Uint8Array }[] | undefined;
  #lastResetHandshakeMs = -Infinity;
  #queue: { flowId: number; payload: Uint8Array }[] = [];

  constructor(options: ClientCoreOptions) {
    this.sessionId = options.sessionId ?? randomSessionId();
    this.#pathsByIndex = options.pathLabels.map((label, index) =>
      new ClientPath(
        index,
        label,
        options.backupPaths?.[index] ?? false,
        options.pathWeights?.[index] ?? 1,
      )
    );
    this.paths = [...this.#pathsByIndex] as ClientPath[];
    this.#secret = options.secret;
    this.#logger = options.logger;
    this.#timing = { ...DEFAULT_CLIENT_TIMING, ...options.timing };
    this.mode = options.mode ?? "redundant";
    this.#targetLossRatio = options.targetLossRatio ?? DEFAULT_TARGET_LOSS_RATIO;
    this.#fecSetting = options.fec ?? "auto";
    this.#reorderTimeoutMs = options.reorderTimeoutMs ?? 0;
    this.#probeIntervalMs = this.#timing.probeIntervalMs;
    for (const path of this.#pathsByIndex) path!.silenceLimitMs = this.#timing.pathDownAfterMs;
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
    const declared = flowId >= DECLARED_FLOW_BASE ? this.#declaredFlows.get(flowId) : undefined;
    if (declared && declared.state !== "pending" && declared.state !== "open") {
      this.counters.drops["target-refused"]++;
      return;
    }
    this.counters.fromApp.datagrams++;
    this.counters.fromApp.bytes += payload.length;
    this.#dataRate.count(nowMs);
    if (declared?.reused && declared.state === "pending") {
      // The server may still hold the previous use of this id as open, toward another target: wait
      // for the answer to this declaration before sending anything.
      if (declared.waiting.length >= PENDING_QUEUE_LIMIT) {
        declared.waiting.shift();
        this.counters.drops["queue-full"]++;
      }
      declared.waiting.push(payload.slice());
      return;
    }
    if (!this.#current) {
      if (this.#queue.length >= PENDING_QUEUE_LIMIT) {
        this.#queue.shift();
        this.counters.drops["queue-full"]++;
      }
      this.#queue.push({ flowId, payload: payload.slice() }); // the caller reuses its buffer
      return;
    }
    // After a RESET, datagrams still go out under the current keys (the RESET may be forged), and a
    // copy is kept in case the new handshake shows the server really lost them.
    if (this.#sentSinceReset && this.#sentSinceReset.length < PENDING_QUEUE_LIMIT) {
      this.#sentSinceReset.push({ flowId, payload: payload.slice() });
    }
    this.#sendData(flowId, payload, outbox.scratch, nowMs, outbox);
  }

  /** Handles a datagram that arrived on path `pathIndex`. */
  receiveFromPath(
    pathIndex: number,
    datagram: Uint8Array,
    nowMs: number,
    outbox: ClientOutbox,
  ): void {
    const path = this.#pathsByIndex[pathIndex];
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
        if (message.sessionId !== this.sessionId || message.keyPhase !== this.#current?.phase) {
          this.counters.drops["unknown-session"]++;
        } else if (
          !this.#pending && nowMs - this.#lastResetHandshakeMs >= RESET_HANDSHAKE_SPACING_MS
        ) {
          // RESETs are not authenticated: spacing the handshakes they start bounds what forged
          // ones can cost, while a real restart is answered at once.
          this.#lastResetHandshakeMs = nowMs;
          this.#logger.info("server does not know our session (it restarted?); handshaking again", {
            path: path.label,
          });
          this.#sentSinceReset = [];
          this.#startHandshake("server-lost-session", nowMs, outbox);
        }
        return;
      case "notice":
        if (message.sessionId !== this.sessionId) {
          this.counters.drops["unknown-session"]++;
          return;
        }
        this.#logNotice(message.code, path, nowMs);
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
    // A flow id comes back after 32 768 others: each declaration of it has a generation, echoed in
    // the answer, so an answer (or the server's state) from the previous use is never taken for
    // this one's.
    const generation = this.#flowGenerations.get(flowId);
    const nextGeneration = generation === undefined ? 0 : (generation + 1) & 0xffff;
    this.#flowGenerations.set(flowId, nextGeneration);
    const declared: DeclaredFlow = {
      target,
      body: encodeFlowOpenBody(target),
      state: "pending",
      lastSentMs: -Infinity,
      generation: nextGeneration,
      reused: generation !== undefined,
      waiting: [],
    };
    this.#declaredFlows.set(flowId, declared);
    if (this.#current) this.#sendFlowOpen(flowId, declared, nowMs, outbox);
  }

  /** Forgets a declared flow (its application went quiet). */
  closeFlow(flowId: number): void {
    this.#declaredFlows.delete(flowId);
    this.#reorderBuffers.delete(flowId);
    this.#flowSequences.delete(flowId);
  }

  /** Where a declared flow stands: waiting for the server, open, or refused (and why). */
  flowState(flowId: number): "pending" | "open" | FlowRefusal | undefined {
    return this.#declaredFlows.get(flowId)?.state;
  }

  /** Records that a send on a path failed; the other paths carry on. */
  recordSendError(pathIndex: number, kind: SendErrorKind, nowMs: number): void {
    const path = this.#pathsByIndex[pathIndex];
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
    const path = new ClientPath(this.#pathsByIndex.length, label, backup, weight);
    path.silenceLimitMs = this.#timing.pathDownAfterMs;
    this.#pathsByIndex.push(path);
    this.paths = [...this.paths, path];
    this.#pathsChanged();
    this.#logger.info("path added", { path: label, backup });
    return path.index;
  }

  /** Removes a path (on a configuration reload); the session and the other paths carry on. */
  removePath(pathIndex: number): void {
    const path = this.#pathsByIndex[pathIndex];
    if (!path) return;
    this.#pathsByIndex[pathIndex] = undefined;
    this.paths = this.paths.filter((known) => known !== path);
    this.#roundRobin.forget(pathIndex);
    this.#pathsChanged();
    this.#logger.info("path removed", { path: path.label });
  }

  /**
   * Takes a path out of service (no data, no advice to carry data; still probed, so its health stays
   * known) or puts it back, at run time: an operator draining a metered link, say.
   */
  setPathInService(pathIndex: number, inService: boolean): void {
    const path = this.#pathsByIndex[pathIndex];
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
    if (this.#pending) {
      if (nowMs - this.#pendingLastSentMs >= timing.handshakeRetryMs) this.#sendInit(nowMs, outbox);
      const waitedMs = nowMs - this.#pendingStartedMs;
      if (waitedMs >= 5000 && this.#logThrottle.allow("no-response", nowMs) !== undefined) {
        this.#logger.warning(
          "no handshake response from the server: is mpserver running and reachable, and do both ends use the same secret?",
          { waitedMs: Math.round(waitedMs) },
        );
      }
    } else if (!this.#current) {
      this.#startHandshake("start", nowMs, outbox);
    } else if (nowMs - this.#lastHeardFromServerMs >= timing.serverSilenceMs) {
      this.#startHandshake("server-silent", nowMs, outbox);
    } else if (
      (this.#secret && nowMs - this.#current.createdMs >= timing.rekeyIntervalMs) ||
      this.#current.exhausted
    ) {
      this.#startHandshake("rekey", nowMs, outbox);
    }
    if (this.#previous && nowMs - this.#current!.createdMs >= timing.previousKeysGraceMs) {
      this.#previous.dispose();
      this.#previous = undefined;
    }
    const intervalMs = probeIntervalMs(this.#dataRate.perSecond(nowMs), timing.probeIntervalMs);
    // Silence is judged against the probing in force while it lasted: after a speed-up, from now.
    // (Only a real speed-up: the rate wobbles, and each wobble must not restart every silence.)
    if (intervalMs < 0.75 * this.#probeIntervalMs) this.#silenceCountsFromMs = nowMs;
    this.#probeIntervalMs = intervalMs;
    for (const path of this.paths) {
      path.silenceLimitMs = silenceLimitMs({
        probeIntervalMs: this.#probeIntervalMs,
        roundTripLossRatio: path.roundTripLossEstimate(nowMs),
        smoothedRttMs: path.smoothedRttMs,
        rttVarianceMs: path.rttVarianceMs,
        floorMs: timing.minPathDownAfterMs,
        ceilingMs: timing.pathDownAfterMs,
        falseDownProbability: falseDownProbability(this.mode),
      });
      // The same sum as in nextDeadlineMs, so rounding cannot leave a deadline that never fires.
      if (path.state === "up" && nowMs >= this.#silenceEndsMs(path)) {
        this.#setPathState(path, "down", nowMs);
      }
      if (this.#current && nowMs >= this.#nextProbeMs(path)) this.#sendProbe(path, nowMs, outbox);
    }
    if (this.#current && this.#fecEncoder) {
      this.#sendShards(this.#fecEncoder.flush(nowMs), nowMs, outbox);
    }
    if (this.#current) {
      for (const [flowId, declared] of this.#declaredFlows) {
        if (declared.state === "pending" && nowMs - declared.lastSentMs >= FLOW_OPEN_RETRY_MS) {
          this.#sendFlowOpen(flowId, declared, nowMs, outbox);
        }
      }
    }
    for (const [flowId, buffer] of this.#reorderBuffers) {
      this.#deliveringOutbox = outbox;
      this.#deliveringFlowId = flowId;
      buffer.flush(nowMs, this.#deliverHeld);
    }
  }

  /** The next time {@link onTimer} has work, or undefined if none is scheduled. */
  nextDeadlineMs(): number | undefined {
    const timing = this.#timing;
    if (!this.#current && !this.#pending) return -Infinity;
    let deadline = Infinity;
    if (this.#pending) deadline = this.#pendingLastSentMs + timing.handshakeRetryMs;
    if (this.#current) {
      if (!this.#pending) {
        deadline = Math.min(deadline, this.#lastHeardFromServerMs + timing.serverSilenceMs);
        if (this.#secret) {
          deadline = Math.min(deadline, this.#current.createdMs + timing.rekeyIntervalMs);
        }
      }
      if (this.#previous) {
        deadline = Math.min(deadline, this.#current.createdMs + timing.previousKeysGraceMs);
      }
      for (const path of this.paths) deadline = Math.min(deadline, this.#nextProbeMs(path));
      deadline = Math.min(deadline, this.#fecEncoder?.nextDeadlineMs() ?? Infinity);
      for (const declared of this.#declaredFlows.values()) {
        if (declared.state === "pending") {
          deadline = Math.min(deadline, declared.lastSentMs + FLOW_OPEN_RETRY_MS);
        }
      }
    }
    for (const path of this.paths) {
      if (path.state === "up") deadline = Math.min(deadline, this.#silenceEndsMs(path));
    }
    for (const buffer of this.#reorderBuffers.values()) {
      deadline = Math.min(deadline, buffer.nextDeadlineMs() ?? Infinity);
    }
    return deadline === Infinity ? undefined : deadline;
  }

  /** Seals one application datagram and sends it where the mode says. */
  #sendData(
    flowId: number,
    payload: Uint8Array,
    out: Uint8Array,
    nowMs: number,
    outbox: ClientOutbox,
  ): void {
    const current = this.#current!;
    if (this.mode === "fec") {
      this.#refreshFec(nowMs);
      this.#sendShards(this.#fecEncoder!.add(flowId, payload, nowMs), nowMs, outbox);
      return;
    }
    const flowSequence = this.#flowSequences.get(flowId) ?? 0;
    this.#flowSequences.set(flowId, (flowSequence + 1) & 0xffff);
    const datagram = sealMessage(
      current,
      this.sessionId,
      "data",
      flowId,
      payload,
      out,
      flowSequence,
    );
    switch (this.mode) {
      case "redundant":
        for (const path of this.#dataCandidates()) this.#sendSealed(path, datagram, outbox);
        return;
      case "adaptive":
        for (const path of this.#adaptivePaths(nowMs)) this.#sendSealed(path, datagram, outbox);
        return;
      case "balance": {
        const path = this.#pickPath(true, nowMs);
        if (path) this.#sendSealed(path, datagram, outbox);
        return;
      }
      default:
        return assertNever(this.mode);
    }
  }

  /** Seals FEC shards, each into a buffer of its own (they all go out before any send settles). */
  #sendShards(shards: readonly FecShard[], nowMs: number, outbox: ClientOutbox): void {
    for (const shard of shards) {
      const out = new Uint8Array(shard.body.length + TUNNEL_OVERHEAD_BYTES);
      const datagram = sealMessage(
        this.#current!,
        this.sessionId,
        "fec",
        shard.flowId,
        shard.body,
        out,
      );
      const path = this.#pickPath(false, nowMs);
      if (path) this.#sendSealed(path, datagram, outbox);
    }
  }

  #sendSealed(path: ClientPath, datagram: Uint8Array, outbox: ClientOutbox): void {
    path.sealedSent++;
    path.sent.datagrams++;
    path.sent.bytes += datagram.length;
    outbox.sendOnPath(path.index, datagram);
  }

  /**
   * The paths that may carry data: every primary path not known to be down; backup paths only when
   * no primary path is live; and when no path at all is live, all of them, since any might be the
   * one that works.
   */
  #dataCandidates(): ClientPath[] {
    if (!this.#candidatesStale) return this.#candidates;
    let primaryLive = false;
    let backupLive = false;
    const inService = this.paths.filter((path) => path.inService);
    for (const path of inService) {
      if (path.state === "down") continue;
      if (path.backup) backupLive = true;
      else primaryLive = true;
    }
    this.#candidates = inService.filter((path) =>
      primaryLive
        ? !path.backup && path.state !== "down"
        : backupLive
        ? path.backup && path.state !== "down"
        : true
    );
    this.#candidatesStale = false;
    return this.#candidates;
  }

  /**
   * One path for the next datagram (balance, weighted) or shard (fec, in turn): among the
   * candidates, only those heard from once any is.
   */
  #pickPath(weighted: boolean, nowMs: number): ClientPath | undefined {
    const candidates = this.#dataCandidates();
    // A path quiet for a couple of probe intervals is suspect: in these modes a datagram or shard
    // sent there may be lost outright, while the others take it at no cost, so it is skipped until
    // it is heard again — long before the evidence would mark it down.
    let anyUp = false;
    let anyTrusted = false;
    for (const path of candidates) {
      anyUp ||= path.state === "up";
      anyTrusted ||= path.state === "up" && !this.#suspect(path, nowMs);
    }
    let count = 0;
    for (const path of candidates) {
      if (anyUp && path.state !== "up") continue;
      if (anyTrusted && this.#suspect(path, nowMs)) continue;
      this.#pickKeys[count] = path.index;
      this.#pickWeights[count] = weighted ? balanceWeight(path) : 1;
      count++;
    }
    const chosen = this.#roundRobin.pick(this.#pickKeys, this.#pickWeights, count);
    return chosen < 0 ? undefined : this.#pathsByIndex[this.#pickKeys[chosen]];
  }

  /** Adaptive mode's paths toward the server, recomputed every 100 ms or when a path changes. */
  #adaptivePaths(nowMs: number): ClientPath[] {
    if (nowMs - this.#adaptiveComputedMs < ADAPTIVE_REFRESH_MS) return this.#adaptiveSet;
    this.#adaptiveComputedMs = nowMs;
    this.#adaptiveSet = fewestGoodEnough(
      this.#dataCandidates(),
      (path) => upstreamLossRatio(path, nowMs),
      this.#targetLossRatio,
    );
    return this.#adaptiveSet;
  }

  /** Chooses the FEC groups' shape in each direction (fixed, or from the measured loss). */
  #refreshFec(nowMs: number): void {
    if (this.#fecEncoder && nowMs - this.#fecComputedMs < FEC_REFRESH_MS) return;
    this.#fecComputedMs = nowMs;
    const setting = this.#fecSetting;
    const candidates = this.#dataCandidates();
    const upstream = setting === "auto"
      ? chooseFecParameters(
        fecPlanningLossRatio(meanLossRatio(
          candidates,
          (path) => path.lossToServerRatio ?? path.roundTripLossEstimate(nowMs),
        )),
        this.#targetLossRatio,
      )
      : setting;
    this.#downstreamFec = setting === "auto"
      ? chooseFecParameters(
        fecPlanningLossRatio(meanLossRatio(candidates, (path) =>
          path.lossFromServerRatio(nowMs) ?? path.roundTripLossEstimate(nowMs))),
        this.#targetLossRatio,
      )
      : setting;
    if (!this.#fecEncoder) {
      this.#fecEncoder = new FecEncoder(upstream);
    } else {
      this.#fecEncoder.setParameters(upstream);
    }
  }

  /** What the server is asked to do with its datagrams toward us on `path`. */
  #adviceFor(path: ClientPath, nowMs: number): PathAdvice {
    if (this.mode === "fec") this.#refreshFec(nowMs);
    const candidates = this.#dataCandidates();
    let carryData = candidates.includes(path);
    if (carryData && this.mode === "balance") {
      carryData = path.state === "up" || !candidates.some((known) => known.state === "up");
    } else if (carryData && this.mode === "adaptive") {
      carryData = fewestGoodEnough(
        candidates,
        (known) => downstreamLossRatio(known, nowMs),
        this.#targetLossRatio,
      ).includes(path);
    }
    return {
      mode: this.mode,
      carryData,
      weight: path.weight,
      reorderTimeoutMs: this.#reorderTimeoutMs,
      fecDataShards: this.#downstreamFec.dataShards,
      fecParityShards: this.#downstreamFec.parityShards,
    };
  }

  /** Hands a datagram from the server to the application, through its flow's reorder buffer. */
  #deliver(
    flowId: number,
    flowSequence: number,
    payload: Uint8Array,
    nowMs: number,
    outbox: ClientOutbox,
  ): void {
    if (this.#reorderTimeoutMs <= 0) {
      this.#deliverNow(flowId, payload, outbox);
      return;
    }
    let buffer = this.#reorderBuffers.get(flowId);
    if (!buffer) {
      buffer = new ReorderBuffer(this.#reorderTimeoutMs);
      this.#reorderBuffers.set(flowId, buffer);
    }
    this.#deliveringOutbox = outbox;
    this.#deliveringFlowId = flowId;
    buffer.push(flowSequence, payload, nowMs, this.#deliverHeld);
  }

  #deliveringFlowId = 0;
  /** The reorder buffers' delivery callback, made once (not a closure per datagram). */
  readonly #deliverHeld = (payload: Uint8Array): void => {
    this.#deliverNow(this.#deliveringFlowId, payload, this.#deliveringOutbox!);
  };

  #deliverNow(flowId: number, payload: Uint8Array, outbox: ClientOutbox): void {
    if (flowId >= DECLARED_FLOW_BASE) {
      // Replies to an earlier use of a reused id (from its old target) are not this flow's.
      const declared = this.#declaredFlows.get(flowId);
      if (declared?.reused && declared.state !== "open") {
        this.counters.drops.unexpected++;
        return;
      }
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
    const keyPhase = this.#current?.phase === message.keyPhase
      ? this.#current
      : this.#previous?.phase === message.keyPhase
      ? this.#previous
      : undefined;
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
          this.#heard(path, datagramBytes, nowMs);
        }
      } else {
        this.counters.drops[opened.reason]++;
      }
      return;
    }
    this.#heard(path, datagramBytes, nowMs);
    this.#lastHeardFromServerMs = nowMs;
    if (message.type === "data") {
      this.#dataRate.count(nowMs);
      this.#deliver(message.flowId, message.flowSequence, opened.body, nowMs, outbox);
      return;
    }
    if (message.type === "fec") {
      this.#dataRate.count(nowMs);
      this.#fecDecoder ??= new FecDecoder();
      for (const delivery of this.#fecDecoder.receive(message.flowId, opened.body, nowMs)) {
        if (delivery.recovered) this.counters.fecRecovered++;
        this.#deliverNow(delivery.flowId, delivery.payload, outbox);
      }
      return;
    }
    if (message.type === "probe") {
      this.counters.drops.unexpected++;
      return;
    }
    if (message.type === "flow-reply") {
      this.#receiveFlowReply(message.flowId, message.flowSequence, opened.body, nowMs, outbox);
      return;
    }
    const probe = decodeProbeEcho(opened.body);
    if (!probe || probe.pathIndex !== path.index || probe.sentAtMs > nowMs) {
      this.counters.drops.malformed++;
      return;
    }
    path.recordProbeReply(
      probe.probeId,
      nowMs - probe.sentAtMs,
      decodeProbeReplyCount(opened.body),
    );
  }

  #receiveResponse(
    path: ClientPath,
    message: HandshakeMessage,
    datagram: Uint8Array,
    nowMs: number,
    outbox: ClientOutbox,
  ): void {
    const pending = this.#pending;
    if (!pending) {
      // The same RESPONSE comes back once per path; the first one completed the handshake.
      if (this.#current?.phase === message.keyPhase && message.sessionId === this.sessionId) {
        this.counters.duplicates++; // not a sign of life: anyone can replay a RESPONSE
      } else {
        this.counters.drops.unexpected++;
      }
      return;
    }
    const result = completeHandshake(this.#secret, pending, message, datagram);
    if (!result.ok) {
      this.counters.drops[result.reason]++;
      if (
        result.reason !== "unexpected" &&
        this.#logThrottle.allow("bad-response", nowMs) !== undefined
      ) {
        this.#logger.warning(
          result.reason === "bad-mac"
            ? "the server's handshake response failed authentication: the two ends hold different secrets (or someone forged it)"
            : this.#secret
            ? "the server answered without authentication: it has no secret configured; refusing to run unauthenticated"
            : "the server answered with authentication: it has a secret, this client has none",
          { path: path.label },
        );
      }
      return;
    }
    const keys = result.keys;
    this.#previous?.dispose();
    this.#previous = this.#current;
    this.#current = new KeyPhase(
      pending.keyPhase,
      keys?.clientToServer,
      keys?.serverToClient,
      nowMs,
      message.sessionContinued ? this.#previous : undefined,
    );
    this.#pending = undefined;
    this.#state = "established";
    this.counters.handshakesCompleted++;
    this.#lastHeardFromServerMs = nowMs;
    this.#heard(path, datagram.length, nowMs);
    const details = {
      session: formatSessionId(this.sessionId),
      keyPhase: pending.keyPhase,
      path: path.label,
      handshakeMs: Math.round(nowMs - this.#pendingStartedMs),
    };
    switch (this.#handshakeReason) {
      case "rekey":
        this.#logger.debug("new session keys", details);
        break;
      case "start":
        this.#logger.info("session established", { ...details, encrypted: keys !== undefined });
        break;
      case "server-lost-session":
      case "server-silent":
        this.#logger.info("session re-established", { ...details, after: this.#handshakeReason });
        break;
      default:
        assertNever(this.#handshakeReason);
    }
    if (!message.sessionContinued && this.#previous) {
      // A new server-side session: its FEC groups and flow sequences start again from zero, so
      // what this side remembers of the old ones would make the new ones look late or stale.
      this.#fecDecoder = undefined;
      this.#reorderBuffers.clear();
      this.#flowSequences.clear();
      this.#fecEncoder = undefined;
      this.#fecComputedMs = -Infinity;
    }
    // A server that did not know the session has none of its flows: declare them again, first (a
    // declared flow's datagrams are held by the server until it has the declaration).
    for (const [flowId, declared] of this.#declaredFlows) {
      if (!message.sessionContinued && declared.state === "open") declared.state = "pending";
      if (declared.state === "pending") this.#sendFlowOpen(flowId, declared, nowMs, outbox);
    }
    const queued = this.#queue;
    this.#queue = [];
    if (this.#sentSinceReset && !message.sessionContinued) queued.push(...this.#sentSinceReset);
    this.#sentSinceReset = undefined;
    for (const { flowId, payload } of queued) {
      // Each queued datagram gets its own buffer: they are all sent before any send settles.
      const out = new Uint8Array(payload.length + TUNNEL_OVERHEAD_BYTES);
      this.#sendData(flowId, payload, out, nowMs, outbox);
    }
  }

  #startHandshake(reason: HandshakeReason, nowMs: number, outbox: ClientOutbox): void {
    this.#handshakeReason = reason;
    // Timestamps only need to grow within one session id, so the monotonic clock serves.
    this.#lastTimestampMs = Math.max(this.#lastTimestampMs + 1, Math.floor(nowMs));
    this.#pending = createInit(
      this.#secret,
      this.sessionId,
      this.#nextKeyPhase,
      this.#lastTimestampMs,
    );
    this.#nextKeyPhase = (this.#nextKeyPhase + 1) & 0xff;
    this.#pendingStartedMs = nowMs;
    this.#sendInit(nowMs, outbox);
  }

  #sendInit(nowMs: number, outbox: ClientOutbox): void {
    this.#pendingLastSentMs = nowMs;
    for (const path of this.paths) {
      path.sent.datagrams++;
      path.sent.bytes += this.#pending!.init.length;
      outbox.sendOnPath(path.index, this.#pending!.init);
    }
  }

  /** When the next PROBE is due on `path`: sooner once it has been quiet for a probe interval. */
  #nextProbeMs(path: ClientPath): number {
    const intervalMs = this.#probeIntervalMs;
    const quiet = path.lastProbeSentMs - path.lastHeardMs > intervalMs;
    return path.lastProbeSentMs +
      (quiet ? Math.min(intervalMs, this.#timing.quietProbeIntervalMs) : intervalMs);
  }

  #sendProbe(path: ClientPath, nowMs: number, outbox: ClientOutbox): void {
    path.lastProbeSentMs = nowMs;
    path.probesSent++;
    const body = encodeProbeBody({
      pathIndex: path.index,
      probeId: path.nextProbeId++,
      sentAtMs: nowMs,
      advice: this.#adviceFor(path, nowMs),
    });
    const out = new Uint8Array(body.length + TUNNEL_OVERHEAD_BYTES);
    path.noteProbeSent(path.nextProbeId - 1, nowMs);
    const datagram = sealMessage(this.#current!, this.sessionId, "probe", 0, body, out);
    path.sealedSent++;
    path.sent.datagrams++;
    path.sent.bytes += datagram.length;
    outbox.sendOnPath(path.index, datagram);
  }

  #heard(path: ClientPath, datagramBytes: number, nowMs: number): void {
    path.received.datagrams++;
    path.received.bytes += datagramBytes;
    path.lastHeardMs = nowMs;
    if (path.state !== "up") this.#setPathState(path, "up", nowMs);
  }

  #setPathState(path: ClientPath, state: PathState, nowMs: number): void {
    const previous = path.state;
    path.state = state;
    this.#pathsChanged();
    if (state === "down") {
      path.lastDownMs = nowMs;
      this.#logger.warning("path down", {
        path: path.label,
        silentMs: Math.round(nowMs - path.lastHeardMs),
      });
    } else if (previous === "down") {
      this.#logger.info("path up again", { path: path.label });
    } else {
      this.#logger.info("path up", { path: path.label });
    }
  }

  /**
   * True when `path` has been quiet for more than two probe intervals and a round trip: a hint, not
   * a verdict (see {@link #pickPath}).
   */
  #suspect(path: ClientPath, nowMs: number): boolean {
    const roundTripMs = (path.smoothedRttMs ?? 0) + 4 * path.rttVarianceMs;
    return nowMs - Math.max(path.lastHeardMs, this.#silenceCountsFromMs) >
      2 * this.#probeIntervalMs + roundTripMs;
  }

  /** When `path`, silent since it was last heard, is to be marked down. */
  #silenceEndsMs(path: ClientPath): number {
    return Math.max(path.lastHeardMs, this.#silenceCountsFromMs) + path.silenceLimitMs;
  }

  /** Sends a FLOW_OPEN on every path (declarations are small and must not wait for a lossy one). */
  #sendFlowOpen(flowId: number, declared: DeclaredFlow, nowMs: number, outbox: ClientOutbox): void {
    declared.lastSentMs = nowMs;
    const out = new Uint8Array(declared.body.length + TUNNEL_OVERHEAD_BYTES);
    const datagram = sealMessage(
      this.#current!,
      this.sessionId,
      "flow-open",
      flowId,
      declared.body,
      out,
      declared.generation,
    );
    for (const path of this.#dataCandidates()) this.#sendSealed(path, datagram, outbox);
  }

  #receiveFlowReply(
    flowId: number,
    generation: number,
    body: Uint8Array,
    nowMs: number,
    outbox: ClientOutbox,
  ): void {
    const status = decodeFlowReplyBody(body);
    const declared = this.#declaredFlows.get(flowId);
    if (!status || !declared || declared.generation !== generation) {
      if (!status) this.counters.drops.malformed++;
      return; // a reply for a flow we forgot or an earlier use of its id, or another copy
    }
    if (declared.state === status) return;
    if (status === "limit" && declared.state === "pending") return; // asked again every 200 ms
    declared.state = status;
    const waiting = declared.waiting;
    declared.waiting = [];
    if (status === "open") {
      for (const payload of waiting) {
        const out = new Uint8Array(payload.length + TUNNEL_OVERHEAD_BYTES);
        this.#sendData(flowId, payload, out, nowMs, outbox);
      }
      return;
    }
    this.counters.drops["target-refused"] += waiting.length;
    const target = declared.target.kind === "named"
      ? declared.target.name
      : formatHostPort({ hostname: declared.target.host, port: declared.target.port });
    const held = this.#logThrottle.allow(`flow-refused ${status}`, nowMs);
    if (held !== undefined) {
      // The driver logs each refused flow with where it came from; this is the core's view.
      this.#logger.debug("the server refused a flow's target", {
        target,
        reason: status,
        repeats: held,
      });
    }
    outbox.flowRefused?.(flowId, status);
  }

  /** The set of paths that may carry data changed: recompute what depends on it. */
  #pathsChanged(): void {
    this.#candidatesStale = true;
    this.#adaptiveComputedMs = -Infinity;
  }

  #logNotice(code: number, path: ClientPath, nowMs: number): void {
    if (this.#logThrottle.allow(`notice ${code}`, nowMs) === undefined) return;
    const explanation = code === NoticeCode.secretRequired
      ? "the server requires a shared secret; configure the same secret on this client (--secret-file or MPTUNNEL_SECRET)"
      : code === NoticeCode.secretMismatch
      ? "the server could not authenticate our handshake: the two ends hold different secrets"
      : code === NoticeCode.secretNotConfigured
      ? "the server has no secret configured but this client has one; refusing to run unauthenticated"
      : `the server refused our handshake (notice code ${code})`;
    this.#logger.error(explanation, { path: path.label });
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

/** A path's share in balance mode: its weight, less as it loses more (loss is a sign of overload). */
function balanceWeight(path: ClientPath): number {
  return path.weight * Math.max(0.05, 1 - 2 * (path.lossToServerRatio ?? 0));
}

/** The best estimate of a path's loss toward the server, for adaptive mode. */
function upstreamLossRatio(path: ClientPath, nowMs: number): number {
  const measured = path.lossToServerRatio ?? path.roundTripLossEstimate(nowMs) ??
    UNKNOWN_LOSS_RATIO;
  return distrustFlapping(path, measured, nowMs);
}

/** The best estimate of a path's loss from the server, for adaptive mode. */
function downstreamLossRatio(path: ClientPath, nowMs: number): number {
  const measured = path.lossFromServerRatio(nowMs) ?? path.roundTripLossEstimate(nowMs) ??
    UNKNOWN_LOSS_RATIO;
  return distrustFlapping(path, measured, nowMs);
}

/**
 * A path that went down lately may go again, and a datagram sent only there would be lost until it
 * is noticed: for a while it counts as no better than an unknown one, so adaptive mode leans on
 * steadier paths and uses this one only alongside them.
 */
function distrustFlapping(path: ClientPath, lossRatio: number, nowMs: number): number {
  return nowMs - path.lastDownMs < FLAP_MEMORY_MS
    ? Math.max(lossRatio, UNKNOWN_LOSS_RATIO)
    : lossRatio;
}

/** Adaptive mode: the fewest paths, lowest loss (then round trip) first, that meet the target. */
function fewestGoodEnough(
  candidates: readonly ClientPath[],
  lossOf: (path: ClientPath) => number,
  targetLossRatio: number,
): ClientPath[] {
  const ranked = candidates.map((path) => ({ path, loss: lossOf(path) }));
  ranked.sort((a, b) =>
    a.loss - b.loss || (a.path.smoothedRttMs ?? Infinity) - (b.path.smoothedRttMs ?? Infinity)
  );
  const count = adaptivePathCount(ranked.map((entry) => entry.loss), targetLossRatio);
  return ranked.slice(0, count).map((entry) => entry.path);
}

/** The mean loss over paths, those not measured yet counted at a moderate guess. */
function meanLossRatio(
  paths: readonly ClientPath[],
  lossOf: (path: ClientPath) => number | undefined,
): number {
  if (paths.length === 0) return FEC_INITIAL_LOSS_RATIO;
  let total = 0;
  for (const path of paths) total += lossOf(path) ?? FEC_INITIAL_LOSS_RATIO;
  return total / paths.length;
}

/** A declared flow as the client keeps it. */
interface DeclaredFlow {
  readonly target: FlowTarget;
  /** Its FLOW_OPEN body, encoded once. */
  readonly body: Uint8Array;
  state: "pending" | "open" | FlowRefusal;
  lastSentMs: number;
  /** Which declaration of this id it is (carried in the FLOW_OPEN header's flow sequence). */
  readonly generation: number;
  /** The id was declared before: datagrams wait for the server's answer to this declaration. */
  readonly reused: boolean;
  /** Datagrams waiting for that answer. */
  waiting: Uint8Array[];
}

/** A random non-zero 32-bit session id. */
export function randomSessionId(): number {
  const value = new Uint32Array(1);
  do crypto.getRandomValues(value); while (value[0] === 0);
  return value[0];
}
