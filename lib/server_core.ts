/**
 * The server's protocol engine, free of I/O and of the clock. It answers handshakes, opens sealed
 * datagrams from any number of clients, hands their payloads to the driver for the target, and seals
 * the target's replies back to every address a session was heard from recently. The driver
 * (`lib/server_driver.ts`) owns the sockets: the listening one and one per session flow to the target.
 *
 * Defences: a handshake's MAC is checked before any state or key work; handshakes and RESETs are
 * rate-limited; a session, and each of its addresses, exists only after an authentic message; replies
 * are never larger than the datagram that caused them; everything that is not ours is counted and
 * dropped.
 */

import { formatSessionId } from "./client_core.ts";
import { respondToInit, type SecretKeys, verifyInit } from "./handshake.ts";
import { KeyPhase, openMessage, sealMessage } from "./key_phase.ts";
import { formatHostPort } from "./address.ts";
import { assertNever } from "./assert.ts";
import type { Logger } from "./log.ts";
import {
  createDropCounters,
  createTrafficCounters,
  type DropReason,
  type TrafficCounters,
} from "./stats.ts";
import { LogThrottle, TokenBucket } from "./throttle.ts";
import type { UdpAddress } from "./udp.ts";
import {
  decodeMessage,
  encodeNotice,
  encodeProbeReplyBody,
  encodeReset,
  type HandshakeMessage,
  MAX_APP_PAYLOAD_BYTES,
  NoticeCode,
  PROBE_BODY_BYTES,
  type SealedMessage,
  TUNNEL_OVERHEAD_BYTES,
} from "./wire.ts";

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
  sendTo(address: UdpAddress, datagram: Uint8Array): void;
  /**
   * Hands a payload from the client to the target of `sessionId`'s flow `flowId`. The payload may
   * live in `scratch`: it is valid only during the call, and the driver must not call back into the
   * core with this outbox before it has sent the payload.
   */
  deliverToTarget(sessionId: number, flowId: number, payload: Uint8Array): void;
}

/** One address a session was heard from: a path, as the server sees it. */
export interface SessionAddress {
  readonly address: UdpAddress;
  lastHeardMs: number;
  /** Datagrams of the session received from this address, redundant copies included (reported back in probe replies). */
  received: number;
}

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
  receive(from: UdpAddress, datagram: Uint8Array, nowMs: number, outbox: ServerOutbox): void {
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
        this.#receiveSealed(from, message, datagram.length, nowMs, outbox);
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
    const datagram = sealMessage(
      session.current,
      sessionId,
      "data",
      flowId,
      payload,
      outbox.scratch,
    );
    this.#sendToSession(session, datagram, nowMs, outbox);
    return true;
  }

  /** Forgets idle sessions. */
  onTimer(nowMs: number): void {
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
        session.previous = undefined;
      }
    }
  }

  /** The next time {@link onTimer} has work. */
  nextDeadlineMs(): number | undefined {
    if (this.sessions.size === 0) return undefined;
    return this.#lastSweepMs === -Infinity ? -Infinity : this.#lastSweepMs + SWEEP_INTERVAL_MS;
  }

  /** Forgets every session (at shutdown), telling the driver about each. */
  closeAll(): void {
    for (const session of [...this.sessions.values()]) this.#closeSession(session, "shutdown");
  }

  #receiveInit(
    from: UdpAddress,
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
    from: UdpAddress,
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
      outbox.deliverToTarget(session.id, message.flowId, opened.body);
      return;
    }
    if (opened.body.length < PROBE_BODY_BYTES) {
      this.counters.drops.malformed++;
      return;
    }
    const reply = encodeProbeReplyBody(opened.body, address.received);
    const out = new Uint8Array(reply.length + TUNNEL_OVERHEAD_BYTES);
    const datagram = sealMessage(session.current!, session.id, "probe-reply", 0, reply, out);
    session.toClient.datagrams++;
    session.toClient.bytes += datagram.length;
    this.#sendControl(outbox, from, datagram);
  }

  #noteAddress(session: ServerSession, from: UdpAddress, nowMs: number): SessionAddress {
    const addresses = session.addresses;
    for (const known of addresses) {
      if (known.address.port === from.port && known.address.hostname === from.hostname) {
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
      addresses.splice(oldest, 1);
    }
    const added: SessionAddress = {
      address: { transport: "udp", hostname: from.hostname, port: from.port },
      lastHeardMs: nowMs,
      received: 1,
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
      if (nowMs - known.lastHeardMs > timeoutMs) continue;
      outbox.sendTo(known.address, datagram);
      sent++;
    }
    // When every path has gone quiet, the freshest address is still the best guess.
    if (sent === 0 && freshest) {
      outbox.sendTo(freshest.address, datagram);
      sent = 1;
    }
    session.toClient.datagrams += sent;
    session.toClient.bytes += sent * datagram.length;
    this.counters.sent.datagrams += sent;
    this.counters.sent.bytes += sent * datagram.length;
  }

  /** Sends a control message, which has a buffer of its own. */
  #sendControl(outbox: ServerOutbox, to: UdpAddress, datagram: Uint8Array): void {
    this.counters.sent.datagrams++;
    this.counters.sent.bytes += datagram.length;
    outbox.sendTo(to, datagram);
  }

  #closeSession(session: ServerSession, why: string): void {
    this.sessions.delete(session.id);
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
