/**
 * The server's protocol engine, free of I/O and of the clock. It answers handshakes, opens sealed
 * datagrams from any number of clients, hands their payloads to the driver for the target, and seals
 * the target's replies back to every address a session was heard from recently. The driver
 * (`lib/driver/server_driver.ts`) owns the sockets: the listening one and one per session flow to the target.
 *
 * How replies are spread over a session's paths is the client's call: each PROBE carries its advice
 * (mode, whether that path should carry data, its weight, FEC shape, reorder timeout), and the server
 * follows it with one scheduler object per mode (`server/reply_schedulers.ts`).
 *
 * Defences: a handshake's MAC is checked before any state or key work; handshakes and RESETs are
 * rate-limited; a session, and each of its addresses, exists only after an authentic message; replies
 * are never larger than the datagram that caused them; everything that is not ours is counted and
 * dropped.
 *
 * This class routes messages and timers to the objects that own each concern: the handshake
 * (`server/server_handshake.ts`), the sessions (`server/server_session.ts`) and their addresses and
 * the client's advice (`server/session_addresses.ts`), delivery in order (`flow_delivery.ts`) and
 * declared flows (`server/declared_flows.ts`).
 */

import type { UdpEndpoint } from "../base/address.ts";
import { formatHostPort } from "../base/address.ts";
import { assertNever } from "../base/assert.ts";
import {
  createDropCounters,
  createTrafficCounters,
  type DropReason,
  type TrafficCounters,
} from "../base/counters.ts";
import type { Logger } from "../base/log.ts";
import { LogThrottle, TokenBucket } from "../base/throttle.ts";
import type { AeadFactory } from "../crypto/aead.ts";
import type { SecretKeys } from "../crypto/handshake.ts";
import { openMessage, sealMessage } from "../crypto/key_phase.ts";
import type { FecShard } from "../fec/group.ts";
import {
  decodeMessage,
  decodeProbeBody,
  encodeFlowReplyBody,
  encodeProbeReplyBody,
  encodeReset,
  type FlowRefusal,
  MAX_APP_PAYLOAD_BYTES,
  PROBE_BODY_BYTES,
  type SealedMessage,
  TUNNEL_OVERHEAD_BYTES,
} from "../wire/messages.ts";
import { formatSessionId } from "../wire/session_id.ts";
import type { PathScheduler } from "./path_scheduler.ts";
import { ServerDeclaredFlows } from "./server/declared_flows.ts";
import { ServerHandshake } from "./server/server_handshake.ts";
import { DEFAULT_SERVER_LIMITS, type ServerLimits } from "./server/server_limits.ts";
import type { ServerOutbox } from "./server/server_outbox.ts";
import { ServerSession, type SessionAddress } from "./server/server_session.ts";
import { countCopy, noteAddress, takeAdvice } from "./server/session_addresses.ts";

export { DEFAULT_SERVER_LIMITS, type ServerLimits } from "./server/server_limits.ts";
export type { ServerOutbox } from "./server/server_outbox.ts";
export { ServerSession, type SessionAddress } from "./server/server_session.ts";

/** What builds a server core. */
export interface ServerCoreOptions {
  readonly secret?: SecretKeys;
  readonly logger: Logger;
  /** Makes the session keys' AEADs: the driver passes the fastest available, tests what they test. */
  readonly aead: AeadFactory;
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
  readonly #logger: Logger;
  readonly #limits: ServerLimits;
  readonly #onSessionClosed: (sessionId: number) => void;
  readonly #resetBucket: TokenBucket;
  readonly #logThrottle = new LogThrottle(10_000);
  readonly #handshake: ServerHandshake;
  readonly #flows: ServerDeclaredFlows;
  #lastSweepMs = -Infinity;
  /** Sessions with an open FEC group or datagrams held for reordering: they have deadlines. */
  readonly #timedSessions = new Set<ServerSession>();
  /** Where a session's flows go once in order: the target, through the declared-flow rules. */
  readonly #deliver = (
    session: ServerSession,
    flowId: number,
    payload: Uint8Array,
    nowMs: number,
    outbox: ServerOutbox,
  ): void => this.#flows.toTarget(session, flowId, payload, nowMs, outbox);

  constructor(options: ServerCoreOptions) {
    this.#logger = options.logger;
    this.#limits = { ...DEFAULT_SERVER_LIMITS, ...options.limits };
    this.#onSessionClosed = options.onSessionClosed ?? (() => {});
    this.#resetBucket = new TokenBucket(this.#limits.resetsPerSecond, this.#limits.resetsPerSecond);
    this.#handshake = new ServerHandshake(
      {
        sessions: this.sessions,
        openSession: (sessionId, nowMs) => this.#openSession(sessionId, nowMs),
        sendControl: (outbox, to, datagram) => this.#sendControl(outbox, to, datagram),
        countDrop: (reason, nowMs, message, details) =>
          this.#countDrop(reason, nowMs, message, details),
      },
      options.secret,
      options.aead,
      this.#limits,
      this.#resetBucket,
      this.counters,
      this.#logger,
      this.#logThrottle,
    );
    this.#flows = new ServerDeclaredFlows(
      {
        sendFlowReply: (session, flowId, generation, status, nowMs, outbox) =>
          this.#sendFlowReply(session, flowId, generation, status, nowMs, outbox),
        holding: (session) => this.#timedSessions.add(session),
      },
      this.counters.drops,
      this.#logger,
    );
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
        this.#handshake.receiveInit(from, message, datagram, nowMs, outbox);
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
    const scheduler = session.scheduler;
    if (scheduler.sendsFecShards && session.fecEncoder) {
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
    // Before the client's advice has shaped the FEC groups, a whole datagram goes everywhere.
    const via = scheduler.sendsFecShards ? session.everyAddress : scheduler;
    this.#sendVia(via, session, datagram, nowMs, outbox);
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
      deadline = Math.min(deadline, session.delivery.nextDeadlineMs() ?? Infinity);
      deadline = Math.min(deadline, this.#flows.nextDeadlineMs(session));
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
      pending = session.delivery.flush(nowMs, outbox) || pending;
      pending = this.#flows.expireHeld(session, nowMs) || pending;
      if (!pending) this.#timedSessions.delete(session);
    }
  }

  /** Forgets every session (at shutdown), telling the driver about each. */
  closeAll(): void {
    for (const session of [...this.sessions.values()]) this.#closeSession(session, "shutdown");
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
    if (!session) return;
    this.#flows.opened(session, flowId, status, nowMs, outbox, attempt);
  }

  #openSession(sessionId: number, nowMs: number): ServerSession {
    const session = new ServerSession(sessionId, nowMs, {
      deliver: this.#deliver,
      addressTimeoutMs: this.#limits.addressTimeoutMs,
    });
    this.sessions.set(session.id, session);
    this.counters.sessionsOpened++;
    return session;
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
        countCopy(session, from);
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
    const address = noteAddress(
      session,
      from,
      nowMs,
      this.#limits.maxAddressesPerSession,
      this.#logger,
    );
    switch (message.type) {
      case "data": {
        const holding = session.delivery.receiveData(
          message.flowId,
          message.flowSequence,
          opened.body,
          nowMs,
          outbox,
        );
        if (holding) this.#timedSessions.add(session);
        return;
      }
      case "fec":
        session.delivery.receiveFec(message.flowId, opened.body, nowMs, outbox);
        return;
      case "flow-open":
        this.#flows.receiveOpen(
          session,
          message.flowId,
          message.flowSequence,
          opened.body,
          from,
          nowMs,
          outbox,
        );
        return;
      default:
        this.#answerProbe(session, address, message, opened.body, from, outbox);
    }
  }

  /** Takes a PROBE's advice in and answers it on the path it came by. */
  #answerProbe(
    session: ServerSession,
    address: SessionAddress,
    message: SealedMessage,
    body: Uint8Array,
    from: UdpEndpoint,
    outbox: ServerOutbox,
  ): void {
    const probe = body.length < PROBE_BODY_BYTES ? undefined : decodeProbeBody(body);
    if (!probe) {
      this.counters.drops.malformed++;
      return;
    }
    takeAdvice(session, address, probe.pathIndex, probe.advice, message, this.#logger);
    const reply = encodeProbeReplyBody(body, address.received);
    const out = new Uint8Array(reply.length + TUNNEL_OVERHEAD_BYTES);
    const datagram = sealMessage(session.current!, session.id, "probe-reply", 0, reply, out);
    session.toClient.datagrams++;
    session.toClient.bytes += datagram.length;
    this.#sendControl(outbox, from, datagram);
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
    this.#sendVia(session.everyAddress, session, datagram, nowMs, outbox);
  }

  /** Sends a datagram to the addresses `scheduler` chooses. */
  #sendVia(
    scheduler: PathScheduler<SessionAddress>,
    session: ServerSession,
    datagram: Uint8Array,
    nowMs: number,
    outbox: ServerOutbox,
  ): void {
    const chosen = scheduler.choose(session.addresses, nowMs);
    for (const known of chosen) outbox.sendTo(known.address, datagram);
    this.#countSent(session, chosen.length, datagram.length);
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
      this.#sendVia(session.shardScheduler, session, datagram, nowMs, outbox);
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
