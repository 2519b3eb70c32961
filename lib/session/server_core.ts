/**
 * The server's protocol engine, free of I/O and of the clock. It answers handshakes, opens sealed
 * datagrams from any number of clients, hands their payloads to the driver for the target, and seals
 * the target's replies back to every address a session was heard from recently. The driver
 * (`lib/driver/server_driver.ts`) owns the sockets: the listening one and one per session flow to the target.
 *
 * How replies are spread over a session's paths is the client's call: each PROBE carries its advice
 * (mode, whether that path should carry data, its weight, FEC shape, reorder timeout), and the server
 * follows it with the same scheduler functions the client uses.
 *
 * Defences: a handshake's MAC is checked before any state or key work; handshakes and RESETs are
 * rate-limited; a session, and each of its addresses, exists only after an authentic message; replies
 * are never larger than the datagram that caused them; everything that is not ours is counted and
 * dropped.
 */

import { formatSessionId } from "../wire/session_id.ts";
import { respondToInit, type SecretKeys, verifyInit } from "../crypto/handshake.ts";
import { KeyPhase, openMessage, sealMessage } from "../crypto/key_phase.ts";
import { FecDecoder } from "../fec/decoder.ts";
import { FecEncoder } from "../fec/encoder.ts";
import type { FecShard } from "../fec/group.ts";
import { ReorderBuffer } from "./reorder.ts";
import { type SchedulingMode, WeightedRoundRobin } from "./scheduler.ts";
import { formatHostPort } from "../base/address.ts";
import { assertNever } from "../base/assert.ts";
import type { Logger } from "../base/log.ts";
import {
  createDropCounters,
  createTrafficCounters,
  type DropReason,
  type TrafficCounters,
} from "../base/counters.ts";
import { LogThrottle, TokenBucket } from "../base/throttle.ts";
import type { UdpEndpoint } from "../base/address.ts";
import {
  DECLARED_FLOW_BASE,
  decodeFlowOpenBody,
  decodeMessage,
  decodeProbeBody,
  encodeFlowReplyBody,
  encodeNotice,
  encodeProbeReplyBody,
  encodeReset,
  type FlowRefusal,
  type FlowTarget,
  type HandshakeMessage,
  MAX_APP_PAYLOAD_BYTES,
  NoticeCode,
  type PathAdvice,
  PROBE_BODY_BYTES,
  type SealedMessage,
  TUNNEL_OVERHEAD_BYTES,
} from "../wire/messages.ts";

/** Limits and timeouts of the server. */
export interface ServerLimits {
  /** A session with no authentic datagram for this long is forgotten. */
  readonly sessionIdleTimeoutMs: number;
  /** A session whose handshake was never followed by a sealed datagram is forgotten after this. */
  readonly unconfirmedSessionTimeoutMs: number;
  /** Replies go to addresses heard from within this time. */
  readonly addressTimeoutMs: number;
  /** Sessions at most. */
  readonly maxSessions: number;
  /** Addresses remembered per session (paths, and their NAT rebindings). */
  readonly maxAddressesPerSession: number;
  /** Handshakes (key agreements) per second, and the burst allowed. */
  readonly handshakesPerSecond: number;
  readonly handshakeBurst: number;
  /** RESETs and NOTICEs per second. */
  readonly resetsPerSecond: number;
  /** Datagrams under the previous keys are accepted this long after new keys are in use. */
  readonly previousKeysGraceMs: number;
}

/** Defaults for a server with up to thousands of clients. */
export const DEFAULT_SERVER_LIMITS: ServerLimits = {
  sessionIdleTimeoutMs: 60_000,
  unconfirmedSessionTimeoutMs: 10_000,
  addressTimeoutMs: 3_000,
  maxSessions: 10_000,
  maxAddressesPerSession: 16,
  handshakesPerSecond: 200,
  handshakeBurst: 400,
  resetsPerSecond: 200,
  previousKeysGraceMs: 10_000,
};

/** How the server core hands work to its driver. */
export interface ServerOutbox {
  /**
   * A buffer of at least 65 536 bytes that belongs to the calling receive loop: the core seals a
   * reply or decrypts a client's datagram into it. The driver keeps it unchanged until every send
   * made during the call has settled.
   */
  readonly scratch: Uint8Array;
  /** Sends a datagram to a client address. */
  sendTo(address: UdpEndpoint, datagram: Uint8Array): void;
  /**
   * Hands a payload from the client to the target of `sessionId`'s flow `flowId`. The payload may
   * live in `scratch`: it is valid only during the call, and the driver must not call back into the
   * core with this outbox before it has sent the payload.
   */
  deliverToTarget(sessionId: number, flowId: number, payload: Uint8Array): void;
  /**
   * A client declared flow `flowId` of `sessionId` with this target: the driver checks it against
   * its policy, resolves it, opens the flow's socket and answers with {@link ServerCore.flowOpened}
   * (at once or later). Without this method declared flows are refused as unreachable.
   */
  openTarget?(sessionId: number, flowId: number, target: FlowTarget, attempt: number): void;
}

/** A declared flow as the server keeps it. */
interface DeclaredFlowState {
  /** The declaration, to tell a repeat from a new target for the same id. */
  body: Uint8Array;
  state: "opening" | "open" | FlowRefusal;
  /** The client's generation of this declaration (flow ids are reused), echoed in FLOW_REPLY. */
  generation: number;
  /** Which openTarget call is current: a slower, earlier one's answer is ignored. */
  attempt: number;
}

/** Declared flows per session at most, and of them waiting for the driver's answer. */
const MAX_DECLARED_FLOWS_PER_SESSION = 1024;
const MAX_OPENING_FLOWS_PER_SESSION = 32;

/** The longest reorder timeout the server honours (the client's own limit is the same). */
const MAX_REORDER_TIMEOUT_MS = 1000;
/** Datagrams one server-side reorder buffer holds at most. */
const REORDER_CAPACITY_PER_FLOW = 32;
/** Reorder buffers per session at most; a flow beyond them is delivered unordered. */
const MAX_REORDER_BUFFERS_PER_SESSION = 16;

/** A declared flow's datagrams held while its FLOW_OPEN is awaited, per session at most. */
const MAX_HELD_PER_SESSION = 64;
/** ... and for at most this long. */
const HOLD_MS = 1000;

/** One address a session was heard from: a path, as the server sees it. */
export interface SessionAddress {
  readonly address: UdpEndpoint;
  /** A number of its own, for the round robin (addresses come and go). */
  readonly id: number;
  lastHeardMs: number;
  /** Smoothed time between authentic datagrams from this address. */
  arrivalGapMs: number;
  /** Datagrams of the session received from this address, redundant copies included (reported back in probe replies). */
  received: number;
  /** The client's index for this path, from its PROBEs (undefined until one arrives). */
  pathIndex: number | undefined;
  /** The client's advice: send data here (in modes other than redundant). */
  carryData: boolean;
  /** The client's advice: this path's share in balance mode. */
  weight: number;
  /** The key phase and sequence number of the latest PROBE from here (which of two is newer). */
  lastProbeKeyPhase: number;
  lastProbeSequence: number;
}

/** Smoothing of the time between datagrams from an address. */
const ARRIVAL_GAP_GAIN = 1 / 8;
/** In modes other than redundant, an address is used while it is silent for less than this... */
const MIN_ADDRESS_SILENCE_MS = 300;
/** ... or four of its usual gaps between datagrams, plus this. */
const ADDRESS_SILENCE_MARGIN_MS = 100;

/** What the server knows of one client session. */
export class ServerSession {
  current: KeyPhase | undefined;
  /** Keys of a completed handshake the client has not used yet. */
  next: KeyPhase | undefined;
  previous: KeyPhase | undefined;
  /** When `current` replaced `previous`. */
  switchedKeysMs = 0;
  lastInitTimestampMs = -1;
  lastInitKeyPhase = -1;
  /** The RESPONSE to the latest INIT, re-sent when that INIT arrives again on another path. */
  lastResponse: Uint8Array | undefined;
  /** False until a sealed datagram proves the client holds the keys. */
  confirmed = false;
  lastActiveMs: number;
  readonly addresses: SessionAddress[] = [];
  readonly fromClient: TrafficCounters = createTrafficCounters();
  readonly toClient: TrafficCounters = createTrafficCounters();
  duplicates = 0;
  /** Datagrams from the client rebuilt from FEC parity. */
  fecRecovered = 0;
  /** How replies are spread, as the client's latest PROBE advised. */
  mode: SchedulingMode = "redundant";
  reorderTimeoutMs = 0;
  fecEncoder: FecEncoder | undefined;
  fecDecoder: FecDecoder | undefined;
  readonly roundRobin: WeightedRoundRobin = new WeightedRoundRobin();
  /** The next flow sequence number per flow, toward the client. */
  readonly flowSequences: Map<number, number> = new Map();
  readonly reorderBuffers: Map<number, ReorderBuffer> = new Map();
  /** Declared flows by id. */
  readonly declaredFlows: Map<number, DeclaredFlowState> = new Map();
  /** Datagrams of declared flows the server does not know yet (their FLOW_OPEN is on its way). */
  held: { flowId: number; payload: Uint8Array; heldMs: number }[] = [];
  nextAddressId = 0;

  constructor(readonly id: number, readonly createdMs: number) {
    this.lastActiveMs = createdMs;
  }

  /**
   * Starts sending under `next`. A plaintext phase continues the current one's sequence numbers
   * (the client keeps one window across them), and the current phase may have sent more since
   * `next` was made: continue from whichever is further.
   */
  promoteNext(nowMs: number): void {
    const next = this.next!;
    if (this.current && !next.authenticated) {
      next.nextSendSequence = Math.max(next.nextSendSequence, this.current.nextSendSequence);
    }
    this.previous?.dispose();
    this.previous = this.current;
    this.current = next;
    this.next = undefined;
    this.switchedKeysMs = nowMs;
  }

  /** The keys a sealed datagram's phase byte names, if any. */
  keysFor(keyPhase: number): KeyPhase | undefined {
    if (this.current?.phase === keyPhase) return this.current;
    if (this.next?.phase === keyPhase) return this.next;
    if (this.previous?.phase === keyPhase) return this.previous;
    return undefined;
  }
}

/** What builds a server core. */
export interface ServerCoreOptions {
  readonly secret?: SecretKeys;
  readonly logger: Logger;
  readonly limits?: Partial<ServerLimits>;
  /** Called when a session is forgotten, so the driver closes its target sockets. */
  readonly onSessionClosed?: (sessionId: number) => void;
}

/** Counters of the whole server. */
export interface ServerCounters {
  readonly received: TrafficCounters;
  readonly sent: TrafficCounters;
  /** Redundant copies dropped by the window. */
  duplicates: number;
  sessionsOpened: number;
  sessionsClosed: number;
  readonly drops: Record<DropReason, number>;
}

/** Sweeps for idle sessions this often. */
const SWEEP_INTERVAL_MS = 1000;

/** The server end of the tunnel, for any number of clients. */
export class ServerCore {
  readonly sessions: Map<number, ServerSession> = new Map();
  readonly counters: ServerCounters = {
    received: createTrafficCounters(),
    sent: createTrafficCounters(),
    duplicates: 0,
    sessionsOpened: 0,
    sessionsClosed: 0,
    drops: createDropCounters(),
  };
  readonly #secret: SecretKeys | undefined;
  readonly #logger: Logger;
  readonly #limits: ServerLimits;
  readonly #onSessionClosed: (sessionId: number) => void;
  readonly #handshakeBucket: TokenBucket;
  readonly #resetBucket: TokenBucket;
  readonly #logThrottle = new LogThrottle(10_000);
  #lastSweepMs = -Infinity;
  #openAttempts = 0;
  /** Sessions with an open FEC group or datagrams held for reordering: they have deadlines. */
  readonly #timedSessions = new Set<ServerSession>();
  readonly #pickKeys: number[] = [];
  readonly #pickWeights: number[] = [];
  readonly #picked: SessionAddress[] = [];
  #deliveringSessionId = 0;
  #deliveringFlowId = 0;
  #deliveringOutbox: ServerOutbox | undefined;
  #deliveringNowMs = 0;
  /** The reorder buffers' delivery callback, made once (not a closure per datagram). */
  readonly #deliverHeld = (payload: Uint8Array): void => {
    const session = this.sessions.get(this.#deliveringSessionId);
    if (!session) return;
    this.#toTarget(
      session,
      this.#deliveringFlowId,
      payload,
      this.#deliveringNowMs,
      this.#deliveringOutbox!,
    );
  };

  constructor(options: ServerCoreOptions) {
    this.#secret = options.secret;
    this.#logger = options.logger;
    this.#limits = { ...DEFAULT_SERVER_LIMITS, ...options.limits };
    this.#onSessionClosed = options.onSessionClosed ?? (() => {});
    this.#handshakeBucket = new TokenBucket(
      this.#limits.handshakesPerSecond,
      this.#limits.handshakeBurst,
    );
    this.#resetBucket = new TokenBucket(this.#limits.resetsPerSecond, this.#limits.resetsPerSecond);
  }

  /** Handles a datagram that arrived from `from`. */
  receive(from: UdpEndpoint, datagram: Uint8Array, nowMs: number, outbox: ServerOutbox): void {
    this.counters.received.datagrams++;
    this.counters.received.bytes += datagram.length;
    const decoded = decodeMessage(datagram);
    if (!decoded.ok) {
      this.counters.drops[decoded.reason]++;
      return;
    }
    const message = decoded.message;
    switch (message.type) {
      case "data":
      case "probe":
      case "fec":
      case "flow-open":
        this.#receiveSealed(from, message, datagram.length, nowMs, outbox);
        return;
      case "flow-reply":
        this.counters.drops.unexpected++;
        return;
      case "init":
        this.#receiveInit(from, message, datagram, nowMs, outbox);
        return;
      case "probe-reply":
      case "response":
      case "reset":
      case "notice":
        this.counters.drops.unexpected++;
        return;
      default:
        return assertNever(message);
    }
  }

  /**
   * Seals a datagram from the target of `sessionId`'s flow `flowId` and sends it to every address
   * the session was heard from recently. Returns false when the session is gone.
   */
  sendFromTarget(
    sessionId: number,
    flowId: number,
    payload: Uint8Array,
    nowMs: number,
    outbox: ServerOutbox,
  ): boolean {
    const session = this.sessions.get(sessionId);
    if (!session?.current) return false;
    if (payload.length > MAX_APP_PAYLOAD_BYTES) {
      this.#countDrop("oversize", nowMs, "dropped a datagram from the target too large to tunnel", {
        bytes: payload.length,
      });
      return true;
    }
    if (session.mode === "fec" && session.fecEncoder) {
      const shards = session.fecEncoder.add(flowId, payload, nowMs);
      this.#sendShards(session, shards, nowMs, outbox);
      this.#timedSessions.add(session);
      return true;
    }
    const flowSequence = session.flowSequences.get(flowId) ?? 0;
    session.flowSequences.set(flowId, (flowSequence + 1) & 0xffff);
    const datagram = sealMessage(
      session.current,
      sessionId,
      "data",
      flowId,
      payload,
      outbox.scratch,
      flowSequence,
    );
    switch (session.mode) {
      case "redundant":
      case "fec": // before the client's advice has shaped the groups
        this.#sendToSession(session, datagram, nowMs, outbox);
        break;
      case "adaptive":
        this.#sendToAdvised(session, datagram, nowMs, outbox);
        break;
      case "balance":
        this.#sendToOne(session, datagram, true, nowMs, outbox);
        break;
      default:
        assertNever(session.mode);
    }
    return true;
  }

  /** Closes FEC groups that waited long enough, gives up reorder gaps, forgets idle sessions. */
  onTimer(nowMs: number, outbox?: ServerOutbox): void {
    if (outbox) this.#runSessionDeadlines(nowMs, outbox);
    if (nowMs - this.#lastSweepMs < SWEEP_INTERVAL_MS) return;
    this.#lastSweepMs = nowMs;
    const limits = this.#limits;
    for (const session of this.sessions.values()) {
      const timeoutMs = session.confirmed
        ? limits.sessionIdleTimeoutMs
        : limits.unconfirmedSessionTimeoutMs;
      if (nowMs - session.lastActiveMs >= timeoutMs) {
        this.#closeSession(session, session.confirmed ? "idle" : "handshake never confirmed");
        continue;
      }
      if (session.previous && nowMs - session.switchedKeysMs >= limits.previousKeysGraceMs) {
        session.previous.dispose();
        session.previous = undefined;
      }
    }
  }

  /** The next time {@link onTimer} has work. */
  nextDeadlineMs(): number | undefined {
    if (this.sessions.size === 0) return undefined;
    if (this.#lastSweepMs === -Infinity) return -Infinity;
    let deadline = this.#lastSweepMs + SWEEP_INTERVAL_MS;
    for (const session of this.#timedSessions) {
      deadline = Math.min(deadline, session.fecEncoder?.nextDeadlineMs() ?? Infinity);
      for (const buffer of session.reorderBuffers.values()) {
        deadline = Math.min(deadline, buffer.nextDeadlineMs() ?? Infinity);
      }
      if (session.held.length > 0) deadline = Math.min(deadline, session.held[0].heldMs + HOLD_MS);
    }
    return deadline;
  }

  #runSessionDeadlines(nowMs: number, outbox: ServerOutbox): void {
    for (const session of this.#timedSessions) {
      let pending = false;
      if (session.fecEncoder && session.current) {
        this.#sendShards(session, session.fecEncoder.flush(nowMs), nowMs, outbox);
        pending = session.fecEncoder.nextDeadlineMs() !== undefined;
      }
      for (const [flowId, buffer] of session.reorderBuffers) {
        this.#deliveringSessionId = session.id;
        this.#deliveringFlowId = flowId;
        this.#deliveringOutbox = outbox;
        this.#deliveringNowMs = nowMs;
        buffer.flush(nowMs, this.#deliverHeld);
        pending ||= buffer.size > 0;
      }
      if (session.held.length > 0) {
        const kept = session.held.filter((held) => nowMs - held.heldMs < HOLD_MS);
        this.counters.drops["flow-unknown"] += session.held.length - kept.length;
        session.held = kept;
        pending ||= kept.length > 0;
      }
      if (!pending) this.#timedSessions.delete(session);
    }
  }

  /** Forgets every session (at shutdown), telling the driver about each. */
  closeAll(): void {
    for (const session of [...this.sessions.values()]) this.#closeSession(session, "shutdown");
  }

  #receiveInit(
    from: UdpEndpoint,
    message: HandshakeMessage,
    datagram: Uint8Array,
    nowMs: number,
    outbox: ServerOutbox,
  ): void {
    const verdict = verifyInit(this.#secret, message);
    if (verdict !== "ok") {
      const reason: DropReason = verdict === "secret-mismatch" ? "bad-mac" : "auth-mismatch";
      this.counters.drops[reason]++;
      if (this.#logThrottle.allow(`init ${verdict}`, nowMs) !== undefined) {
        this.#logger.warning(
          verdict === "secret-mismatch"
            ? "refused a handshake that failed authentication: the client holds a different secret (or it is forged)"
            : verdict === "secret-required"
            ? "refused an unauthenticated handshake: this server requires a secret"
            : "refused an authenticated handshake: this server has no secret configured",
          { from: formatHostPort(from) },
        );
      }
      const code = verdict === "secret-mismatch"
        ? NoticeCode.secretMismatch
        : verdict === "secret-required"
        ? NoticeCode.secretRequired
        : NoticeCode.secretNotConfigured;
      if (this.#resetBucket.take(nowMs)) {
        this.#sendControl(outbox, from, encodeNotice(code, message.sessionId, message.keyPhase));
      }
      return;
    }
    let session = this.sessions.get(message.sessionId);
    if (session && message.timestampMs <= session.lastInitTimestampMs) {
      const sameInit = message.timestampMs === session.lastInitTimestampMs &&
        message.keyPhase === session.lastInitKeyPhase;
      if (sameInit && session.lastResponse) {
        // The INIT came again (another path, or a retry): answer with the same RESPONSE.
        session.duplicates++;
        this.counters.duplicates++;
        this.#sendControl(outbox, from, session.lastResponse);
      } else {
        this.counters.drops["stale-handshake"]++;
      }
      return;
    }
    if (!this.#handshakeBucket.take(nowMs)) {
      this.#countDrop(
        "handshake-rate-limited",
        nowMs,
        "handshakes arrive faster than the limit; dropping some",
        {
          perSecond: this.#limits.handshakesPerSecond,
        },
      );
      return;
    }
    if (!session && this.sessions.size >= this.#limits.maxSessions) {
      this.#countDrop("session-limit", nowMs, "refused a new session: too many sessions", {
        maxSessions: this.#limits.maxSessions,
      });
      return;
    }
    const answer = respondToInit(this.#secret, message, datagram, session !== undefined);
    if (!answer) {
      this.counters.drops.malformed++;
      return;
    }
    if (!session) {
      session = new ServerSession(message.sessionId, nowMs);
      this.sessions.set(session.id, session);
      this.counters.sessionsOpened++;
    }
    const keys = answer.keys;
    const keyPhase = new KeyPhase(
      message.keyPhase,
      keys?.serverToClient,
      keys?.clientToServer,
      nowMs,
      session.next ?? session.current,
    );
    // A client starts a handshake only after finishing the previous one, so it holds the keys of
    // `next` already: they become current rather than being lost.
    if (session.next) session.promoteNext(nowMs);
    if (session.current) session.next = keyPhase;
    else session.current = keyPhase;
    session.lastInitTimestampMs = message.timestampMs;
    session.lastInitKeyPhase = message.keyPhase;
    session.lastResponse = answer.response;
    this.#sendControl(outbox, from, answer.response);
  }

  #receiveSealed(
    from: UdpEndpoint,
    message: SealedMessage,
    datagramBytes: number,
    nowMs: number,
    outbox: ServerOutbox,
  ): void {
    const session = this.sessions.get(message.sessionId);
    const keyPhase = session?.keysFor(message.keyPhase);
    if (!session || !keyPhase) {
      this.counters.drops["unknown-session"]++;
      // Tell the client to handshake again; a RESET is smaller than any sealed datagram.
      if (this.#resetBucket.take(nowMs)) {
        this.#sendControl(outbox, from, encodeReset(message.sessionId, message.keyPhase));
      }
      return;
    }
    const opened = openMessage(keyPhase, message, outbox.scratch);
    if (!opened.ok) {
      if (opened.reason === "duplicate") {
        session.duplicates++;
        this.counters.duplicates++;
        // Count the copy on its path (only a known one), so the client can estimate loss per path.
        for (const known of session.addresses) {
          if (known.address.port === from.port && known.address.hostname === from.hostname) {
            known.received++;
            break;
          }
        }
      } else {
        this.counters.drops[opened.reason]++;
      }
      return;
    }
    if (keyPhase === session.next) session.promoteNext(nowMs);
    if (!session.confirmed) {
      session.confirmed = true;
      this.#logger.info("session started", {
        session: formatSessionId(session.id),
        from: formatHostPort(from),
        encrypted: keyPhase.authenticated,
        sessions: this.sessions.size,
      });
    }
    session.lastActiveMs = nowMs;
    session.fromClient.datagrams++;
    session.fromClient.bytes += datagramBytes;
    const address = this.#noteAddress(session, from, nowMs);
    if (message.type === "data") {
      this.#deliver(session, message.flowId, message.flowSequence, opened.body, nowMs, outbox);
      return;
    }
    if (message.type === "fec") {
      session.fecDecoder ??= new FecDecoder();
      for (const delivery of session.fecDecoder.receive(message.flowId, opened.body, nowMs)) {
        if (delivery.recovered) session.fecRecovered++;
        this.#toTarget(session, delivery.flowId, delivery.payload, nowMs, outbox);
      }
      return;
    }
    if (message.type === "flow-open") {
      this.#receiveFlowOpen(
        session,
        message.flowId,
        message.flowSequence,
        opened.body,
        from,
        nowMs,
        outbox,
      );
      return;
    }
    const probe = opened.body.length < PROBE_BODY_BYTES ? undefined : decodeProbeBody(opened.body);
    if (!probe) {
      this.counters.drops.malformed++;
      return;
    }
    this.#takeAdvice(session, address, probe.pathIndex, probe.advice, message);
    const reply = encodeProbeReplyBody(opened.body, address.received);
    const out = new Uint8Array(reply.length + TUNNEL_OVERHEAD_BYTES);
    const datagram = sealMessage(session.current!, session.id, "probe-reply", 0, reply, out);
    session.toClient.datagrams++;
    session.toClient.bytes += datagram.length;
    this.#sendControl(outbox, from, datagram);
  }

  #noteAddress(session: ServerSession, from: UdpEndpoint, nowMs: number): SessionAddress {
    const addresses = session.addresses;
    for (const known of addresses) {
      if (known.address.port === from.port && known.address.hostname === from.hostname) {
        known.arrivalGapMs += (nowMs - known.lastHeardMs - known.arrivalGapMs) * ARRIVAL_GAP_GAIN;
        known.lastHeardMs = nowMs;
        known.received++;
        return known;
      }
    }
    if (addresses.length >= this.#limits.maxAddressesPerSession) {
      let oldest = 0;
      for (let i = 1; i < addresses.length; i++) {
        if (addresses[i].lastHeardMs < addresses[oldest].lastHeardMs) oldest = i;
      }
      const [evicted] = addresses.splice(oldest, 1);
      session.roundRobin.forget(evicted.id);
    }
    const added: SessionAddress = {
      address: { transport: "udp", hostname: from.hostname, port: from.port },
      id: session.nextAddressId++,
      lastHeardMs: nowMs,
      arrivalGapMs: MIN_ADDRESS_SILENCE_MS,
      received: 1,
      pathIndex: undefined,
      carryData: true,
      weight: 1,
      lastProbeKeyPhase: -1,
      lastProbeSequence: -1,
    };
    addresses.push(added);
    this.#logger.debug("session heard on a new address", {
      session: formatSessionId(session.id),
      from: formatHostPort(from),
      addresses: addresses.length,
    });
    return added;
  }

  #sendToSession(
    session: ServerSession,
    datagram: Uint8Array,
    nowMs: number,
    outbox: ServerOutbox,
  ): void {
    const timeoutMs = this.#limits.addressTimeoutMs;
    let sent = 0;
    let freshest: SessionAddress | undefined;
    for (const known of session.addresses) {
      if (!freshest || known.lastHeardMs > freshest.lastHeardMs) freshest = known;
      // Redundant: every recent address, except those the client asked to spare (a backup path
      // while others are up, a path out of service).
      if (nowMs - known.lastHeardMs > timeoutMs || !known.carryData) continue;
      outbox.sendTo(known.address, datagram);
      sent++;
    }
    // When every path has gone quiet, the freshest address is still the best guess.
    if (sent === 0 && freshest) {
      outbox.sendTo(freshest.address, datagram);
      sent = 1;
    }
    this.#countSent(session, sent, datagram.length);
  }

  /**
   * Takes in the advice of a PROBE from `address`: the session's mode and this path's part in it.
   * A path that shows up from a new address (NAT rebinding, a new uplink address, a restarted
   * bridge) leaves its old address behind: the PROBE that says so is authentic, so only the client
   * can move its paths.
   */
  #takeAdvice(
    session: ServerSession,
    address: SessionAddress,
    pathIndex: number,
    advice: PathAdvice | undefined,
    probe: SealedMessage,
  ): void {
    const newer = (known: SessionAddress) =>
      known.lastProbeKeyPhase === probe.keyPhase && known.lastProbeSequence > probe.sequence;
    if (address.pathIndex !== pathIndex) {
      const stale = session.addresses.findIndex((known) =>
        known !== address && known.pathIndex === pathIndex
      );
      // A PROBE that left before the one that moved the path (it arrived late, or it is a copy an
      // attacker raced here from elsewhere) does not move it back.
      if (stale >= 0 && newer(session.addresses[stale])) return;
      address.pathIndex = pathIndex;
      if (stale >= 0) {
        const [old] = session.addresses.splice(stale, 1);
        session.roundRobin.forget(old.id);
        this.#logger.info("a path of the session moved to a new address", {
          session: formatSessionId(session.id),
          from: formatHostPort(old.address),
          to: formatHostPort(address.address),
        });
      }
    }
    address.lastProbeKeyPhase = probe.keyPhase;
    address.lastProbeSequence = probe.sequence;
    if (!advice) return;
    address.carryData = advice.carryData;
    address.weight = advice.weight;
    session.mode = advice.mode;
    // The client's wish, bounded: a reorder buffer holds copies, and the server pays for them.
    session.reorderTimeoutMs = Math.min(advice.reorderTimeoutMs, MAX_REORDER_TIMEOUT_MS);
    if (advice.mode === "fec" && advice.fecDataShards > 0) {
      const parameters = {
        dataShards: advice.fecDataShards,
        parityShards: advice.fecParityShards,
      };
      if (!session.fecEncoder) session.fecEncoder = new FecEncoder(parameters);
      else session.fecEncoder.setParameters(parameters);
    }
  }

  /** Hands a client's datagram to the target, through its flow's reorder buffer when asked. */
  #deliver(
    session: ServerSession,
    flowId: number,
    flowSequence: number,
    payload: Uint8Array,
    nowMs: number,
    outbox: ServerOutbox,
  ): void {
    if (session.reorderTimeoutMs <= 0) {
      this.#toTarget(session, flowId, payload, nowMs, outbox);
      return;
    }
    let buffer = session.reorderBuffers.get(flowId);
    if (!buffer) {
      if (session.reorderBuffers.size >= MAX_REORDER_BUFFERS_PER_SESSION) {
        this.#toTarget(session, flowId, payload, nowMs, outbox);
        return;
      }
      buffer = new ReorderBuffer(session.reorderTimeoutMs, REORDER_CAPACITY_PER_FLOW);
      session.reorderBuffers.set(flowId, buffer);
    }
    this.#deliveringSessionId = session.id;
    this.#deliveringFlowId = flowId;
    this.#deliveringOutbox = outbox;
    this.#deliveringNowMs = nowMs;
    buffer.push(flowSequence, payload, nowMs, this.#deliverHeld);
    if (buffer.size > 0) this.#timedSessions.add(session);
  }

  /** True while `attempt` is the declaration of the flow the driver should still answer. */
  isCurrentFlowAttempt(sessionId: number, flowId: number, attempt: number): boolean {
    return this.sessions.get(sessionId)?.declaredFlows.get(flowId)?.attempt === attempt;
  }

  /**
   * The driver's answer to {@link ServerOutbox.openTarget}: the flow is open (its held datagrams go
   * to the target now) or refused (they are dropped). The client is told either way.
   */
  flowOpened(
    sessionId: number,
    flowId: number,
    status: "open" | FlowRefusal,
    nowMs: number,
    outbox: ServerOutbox,
    attempt?: number,
  ): void {
    const session = this.sessions.get(sessionId);
    const declared = session?.declaredFlows.get(flowId);
    if (!session || !declared) return;
    if (attempt !== undefined && attempt !== declared.attempt) return; // superseded
    declared.state = status;
    this.#sendFlowReply(session, flowId, declared.generation, status, nowMs, outbox);
    const waiting = session.held.filter((held) => held.flowId === flowId);
    if (waiting.length === 0) return;
    session.held = session.held.filter((held) => held.flowId !== flowId);
    for (const held of waiting) this.#toTarget(session, flowId, held.payload, nowMs, outbox);
  }

  #receiveFlowOpen(
    session: ServerSession,
    flowId: number,
    generation: number,
    body: Uint8Array,
    from: UdpEndpoint,
    nowMs: number,
    outbox: ServerOutbox,
  ): void {
    const target = flowId >= DECLARED_FLOW_BASE ? decodeFlowOpenBody(body) : undefined;
    if (!target) {
      this.counters.drops.malformed++;
      return;
    }
    const known = session.declaredFlows.get(flowId);
    if (known && sameBytes(known.body, body)) {
      // Another copy, the client did not hear the answer, or the id came back for the same target:
      // answer again (once decided) under the generation asked.
      known.generation = generation;
      if (known.state !== "opening") {
        this.#sendFlowReply(session, flowId, generation, known.state, nowMs, outbox);
      }
      return;
    }
    let opening = 0;
    for (const declared of session.declaredFlows.values()) {
      opening += Number(declared.state === "opening");
    }
    if (
      (!known && session.declaredFlows.size >= MAX_DECLARED_FLOWS_PER_SESSION) ||
      opening >= MAX_OPENING_FLOWS_PER_SESSION
    ) {
      // Not kept: the client asks again, and gets in once others are decided or forgotten.
      this.#sendFlowReply(session, flowId, generation, "limit", nowMs, outbox);
      return;
    }
    const attempt = ++this.#openAttempts;
    session.declaredFlows.set(flowId, {
      body: body.slice(),
      state: "opening",
      generation,
      attempt,
    });
    this.#logger.debug("flow declared", {
      session: formatSessionId(session.id),
      flow: flowId,
      from: formatHostPort(from),
    });
    if (!outbox.openTarget) {
      this.flowOpened(session.id, flowId, "unreachable", nowMs, outbox, attempt);
      return;
    }
    outbox.openTarget(session.id, flowId, target, attempt);
  }

  /**
   * Hands a client's datagram to the target, unless it belongs to a declared flow that is not open:
   * held while its FLOW_OPEN is awaited, dropped when refused.
   */
  #toTarget(
    session: ServerSession,
    flowId: number,
    payload: Uint8Array,
    nowMs: number,
    outbox: ServerOutbox,
  ): void {
    if (flowId < DECLARED_FLOW_BASE) {
      outbox.deliverToTarget(session.id, flowId, payload);
      return;
    }
    const state = session.declaredFlows.get(flowId)?.state;
    if (state === "open") {
      outbox.deliverToTarget(session.id, flowId, payload);
      return;
    }
    if (state !== undefined && state !== "opening") {
      this.counters.drops["target-refused"]++;
      return;
    }
    if (session.held.length >= MAX_HELD_PER_SESSION) {
      this.counters.drops["flow-unknown"]++;
      return;
    }
    session.held.push({ flowId, payload: payload.slice(), heldMs: nowMs });
    this.#timedSessions.add(session);
  }

  /** Tells the client where a declared flow stands, on every path it uses. */
  #sendFlowReply(
    session: ServerSession,
    flowId: number,
    generation: number,
    status: "open" | FlowRefusal,
    nowMs: number,
    outbox: ServerOutbox,
  ): void {
    if (!session.current) return;
    const body = encodeFlowReplyBody(status);
    const out = new Uint8Array(body.length + TUNNEL_OVERHEAD_BYTES);
    const datagram = sealMessage(
      session.current,
      session.id,
      "flow-reply",
      flowId,
      body,
      out,
      generation,
    );
    this.#sendToSession(session, datagram, nowMs, outbox);
  }

  /** True when an address may carry data in modes other than redundant: advised and not silent. */
  #usable(known: SessionAddress, nowMs: number): boolean {
    if (!known.carryData) return false;
    const limitMs = Math.min(
      this.#limits.addressTimeoutMs,
      Math.max(MIN_ADDRESS_SILENCE_MS, 4 * known.arrivalGapMs + ADDRESS_SILENCE_MARGIN_MS),
    );
    return nowMs - known.lastHeardMs <= limitMs;
  }

  /** Adaptive mode: to every address the client wants data on; all recent ones when none is. */
  #sendToAdvised(
    session: ServerSession,
    datagram: Uint8Array,
    nowMs: number,
    outbox: ServerOutbox,
  ): void {
    let sent = 0;
    for (const known of session.addresses) {
      if (!this.#usable(known, nowMs)) continue;
      outbox.sendTo(known.address, datagram);
      sent++;
    }
    if (sent === 0) {
      this.#sendToSession(session, datagram, nowMs, outbox);
      return;
    }
    this.#countSent(session, sent, datagram.length);
  }

  /** Balance and FEC: one address, by weighted round robin over the usable ones. */
  #sendToOne(
    session: ServerSession,
    datagram: Uint8Array,
    weighted: boolean,
    nowMs: number,
    outbox: ServerOutbox,
  ): void {
    let count = 0;
    for (const known of session.addresses) {
      if (!this.#usable(known, nowMs)) continue;
      this.#pickKeys[count] = known.id;
      this.#pickWeights[count] = weighted ? known.weight : 1;
      this.#picked[count] = known;
      count++;
    }
    const chosen = session.roundRobin.pick(this.#pickKeys, this.#pickWeights, count);
    if (chosen < 0) {
      this.#sendToSession(session, datagram, nowMs, outbox);
      return;
    }
    outbox.sendTo(this.#picked[chosen].address, datagram);
    this.#countSent(session, 1, datagram.length);
  }

  /** Seals FEC shards, each into a buffer of its own, one address each in turn. */
  #sendShards(
    session: ServerSession,
    shards: readonly FecShard[],
    nowMs: number,
    outbox: ServerOutbox,
  ): void {
    for (const shard of shards) {
      const out = new Uint8Array(shard.body.length + TUNNEL_OVERHEAD_BYTES);
      const datagram = sealMessage(
        session.current!,
        session.id,
        "fec",
        shard.flowId,
        shard.body,
        out,
      );
      this.#sendToOne(session, datagram, false, nowMs, outbox);
    }
  }

  #countSent(session: ServerSession, copies: number, bytes: number): void {
    session.toClient.datagrams += copies;
    session.toClient.bytes += copies * bytes;
    this.counters.sent.datagrams += copies;
    this.counters.sent.bytes += copies * bytes;
  }

  /** Sends a control message, which has a buffer of its own. */
  #sendControl(outbox: ServerOutbox, to: UdpEndpoint, datagram: Uint8Array): void {
    this.counters.sent.datagrams++;
    this.counters.sent.bytes += datagram.length;
    outbox.sendTo(to, datagram);
  }

  #closeSession(session: ServerSession, why: string): void {
    this.sessions.delete(session.id);
    for (const keyPhase of [session.previous, session.current, session.next]) keyPhase?.dispose();
    this.#timedSessions.delete(session);
    this.counters.sessionsClosed++;
    if (session.confirmed || why === "shutdown") {
      this.#logger.info("session ended", {
        session: formatSessionId(session.id),
        why,
        fromClient: session.fromClient.datagrams,
        toClient: session.toClient.datagrams,
        duplicates: session.duplicates,
      });
    }
    this.#onSessionClosed(session.id);
  }

  #countDrop(
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

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
