/**
 * The server's side of the handshake: an INIT's MAC is checked before any state or key work (a
 * NOTICE tells a client with the wrong secret, rate-limited), a repeated INIT gets the same
 * RESPONSE, handshakes are rate-limited, and a new one makes the session (within the limit) and
 * its next key phase.
 */

import { formatHostPort, type UdpEndpoint } from "../../base/address.ts";
import type { DropReason } from "../../base/counters.ts";
import type { Logger } from "../../base/log.ts";
import { type LogThrottle, TokenBucket } from "../../base/throttle.ts";
import type { AeadFactory } from "../../crypto/aead.ts";
import { respondToInit, type SecretKeys, verifyInit } from "../../crypto/handshake.ts";
import { KeyPhase } from "../../crypto/key_phase.ts";
import { encodeNotice, type HandshakeMessage, NoticeCode } from "../../wire/messages.ts";
import type { ServerLimits } from "./server_limits.ts";
import type { ServerOutbox } from "./server_outbox.ts";
import type { ServerSession } from "./server_session.ts";

/** What the handshake needs from the server core. */
export interface ServerHandshakeHost {
  /** The sessions by id. */
  readonly sessions: ReadonlyMap<number, ServerSession>;
  /** Makes and keeps a new session. */
  openSession(sessionId: number, nowMs: number): ServerSession;
  /** Sends a control message (it has a buffer of its own). */
  sendControl(outbox: ServerOutbox, to: UdpEndpoint, datagram: Uint8Array): void;
  /** Counts a drop and logs it, now and then. */
  countDrop(
    reason: DropReason,
    nowMs: number,
    message: string,
    details: Record<string, unknown>,
  ): void;
}

/** Counters the handshake moves. */
export interface ServerHandshakeCounters {
  duplicates: number;
  readonly drops: Record<DropReason, number>;
}

/** Answers INITs. */
export class ServerHandshake {
  readonly #handshakeBucket: TokenBucket;

  constructor(
    readonly host: ServerHandshakeHost,
    readonly secret: SecretKeys | undefined,
    readonly aead: AeadFactory,
    readonly limits: ServerLimits,
    /** Bounds RESETs and NOTICEs together (the server core sends RESETs under it too). */
    readonly resetBucket: TokenBucket,
    readonly counters: ServerHandshakeCounters,
    readonly logger: Logger,
    readonly logThrottle: LogThrottle,
  ) {
    this.#handshakeBucket = new TokenBucket(limits.handshakesPerSecond, limits.handshakeBurst);
  }

  /** Takes an INIT from `from` in and answers it, or counts why not. */
  receiveInit(
    from: UdpEndpoint,
    message: HandshakeMessage,
    datagram: Uint8Array,
    nowMs: number,
    outbox: ServerOutbox,
  ): void {
    const verdict = verifyInit(this.secret, message);
    if (verdict !== "ok") {
      const reason: DropReason = verdict === "secret-mismatch" ? "bad-mac" : "auth-mismatch";
      this.counters.drops[reason]++;
      if (this.logThrottle.allow(`init ${verdict}`, nowMs) !== undefined) {
        this.logger.warning(
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
      if (this.resetBucket.take(nowMs)) {
        this.host.sendControl(
          outbox,
          from,
          encodeNotice(code, message.sessionId, message.keyPhase),
        );
      }
      return;
    }
    let session = this.host.sessions.get(message.sessionId);
    if (session && message.timestampMs <= session.lastInitTimestampMs) {
      const sameInit = message.timestampMs === session.lastInitTimestampMs &&
        message.keyPhase === session.lastInitKeyPhase;
      if (sameInit && session.lastResponse) {
        // The INIT came again (another path, or a retry): answer with the same RESPONSE.
        session.duplicates++;
        this.counters.duplicates++;
        this.host.sendControl(outbox, from, session.lastResponse);
      } else {
        this.counters.drops["stale-handshake"]++;
      }
      return;
    }
    if (!this.#handshakeBucket.take(nowMs)) {
      this.host.countDrop(
        "handshake-rate-limited",
        nowMs,
        "handshakes arrive faster than the limit; dropping some",
        {
          perSecond: this.limits.handshakesPerSecond,
        },
      );
      return;
    }
    if (!session && this.host.sessions.size >= this.limits.maxSessions) {
      this.host.countDrop("session-limit", nowMs, "refused a new session: too many sessions", {
        maxSessions: this.limits.maxSessions,
      });
      return;
    }
    const answer = respondToInit(this.secret, message, datagram, session !== undefined, this.aead);
    if (!answer) {
      this.counters.drops.malformed++;
      return;
    }
    session ??= this.host.openSession(message.sessionId, nowMs);
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
    this.host.sendControl(outbox, from, answer.response);
  }
}
