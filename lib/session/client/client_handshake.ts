/**
 * The client's handshakes and key phases: when one is due (first, retry, rekey, after the server
 * went silent), the INIT it sends, the RESPONSE that completes it, and the current and previous keys
 * sealed datagrams are opened under.
 */

import type { AeadFactory } from "../../crypto/aead.ts";
import {
  completeHandshake,
  createInit,
  type PendingHandshake,
  type SecretKeys,
} from "../../crypto/handshake.ts";
import { KeyPhase } from "../../crypto/key_phase.ts";
import type { DropReason } from "../../base/counters.ts";
import type { Logger } from "../../base/log.ts";
import type { LogThrottle } from "../../base/throttle.ts";
import { assertNever } from "../../base/assert.ts";
import { type HandshakeMessage, NoticeCode } from "../../wire/messages.ts";
import { formatSessionId } from "../../wire/session_id.ts";

/** A RESET starts a handshake at most this often. */
const RESET_HANDSHAKE_SPACING_MS = 1000;

/** Why a handshake runs: the first one, fresh keys, or the server lost or stopped answering us. */
export type HandshakeReason = "start" | "rekey" | "server-lost-session" | "server-silent";

/** How the handshakes are paced (a part of the client's timing). */
export interface HandshakeTiming {
  readonly handshakeRetryMs: number;
  readonly serverSilenceMs: number;
  readonly rekeyIntervalMs: number;
  readonly previousKeysGraceMs: number;
}

/** What the timer asks of the handshake: resend the INIT, start a new one, or nothing. */
export type HandshakeDue = "retry" | HandshakeReason | undefined;

/** What came of a RESPONSE. */
export type ResponseOutcome =
  /** Another copy of the RESPONSE that completed the latest handshake. */
  | { readonly kind: "duplicate" }
  /** Not a RESPONSE to a handshake of ours, or one that failed: counted under `reason`. */
  | { readonly kind: "refused"; readonly reason: DropReason }
  | CompletedHandshake;

/** A handshake that completed, as the log tells it. */
export interface CompletedHandshake {
  readonly kind: "completed";
  readonly reason: HandshakeReason;
  readonly keyPhase: number;
  readonly encrypted: boolean;
  readonly handshakeMs: number;
}

/** The client's handshake state and keys. */
export class ClientHandshake {
  #current: KeyPhase | undefined;
  #previous: KeyPhase | undefined;
  #pending: PendingHandshake | undefined;
  #reason: HandshakeReason = "start";
  #pendingStartedMs = 0;
  #pendingLastSentMs = -Infinity;
  #lastTimestampMs = 0;
  #nextKeyPhase = 0;
  #lastResetHandshakeMs = -Infinity;
  /** When anything authentic last came from the server, on any path. */
  lastHeardFromServerMs = -Infinity;

  constructor(
    readonly sessionId: number,
    readonly secret: SecretKeys | undefined,
    readonly aead: AeadFactory,
    readonly logger: Logger,
    readonly logThrottle: LogThrottle,
  ) {}

  /** The keys sealed datagrams go out under; undefined before the first handshake completes. */
  get current(): KeyPhase | undefined {
    return this.#current;
  }

  /** The handshake waiting for its RESPONSE, if any. */
  get pending(): PendingHandshake | undefined {
    return this.#pending;
  }

  /** Why the latest handshake ran. */
  get reason(): HandshakeReason {
    return this.#reason;
  }

  /** The keys a sealed datagram's phase byte names: the current ones or, for a while, the previous. */
  keysFor(keyPhase: number): KeyPhase | undefined {
    return this.#current?.phase === keyPhase
      ? this.#current
      : this.#previous?.phase === keyPhase
      ? this.#previous
      : undefined;
  }

  /** Starts a handshake; its INIT is then {@link initToSend}. */
  start(reason: HandshakeReason, nowMs: number): void {
    this.#reason = reason;
    // Timestamps only need to grow within one session id, so the monotonic clock serves.
    this.#lastTimestampMs = Math.max(this.#lastTimestampMs + 1, Math.floor(nowMs));
    this.#pending = createInit(
      this.secret,
      this.sessionId,
      this.#nextKeyPhase,
      this.#lastTimestampMs,
    );
    this.#nextKeyPhase = (this.#nextKeyPhase + 1) & 0xff;
    this.#pendingStartedMs = nowMs;
  }

  /** The pending INIT, noted as sent now (on every path). */
  initToSend(nowMs: number): Uint8Array {
    this.#pendingLastSentMs = nowMs;
    return this.#pending!.init;
  }

  /** What is due at `nowMs`: the INIT again, a new handshake and why, or nothing. */
  due(nowMs: number, timing: HandshakeTiming): HandshakeDue {
    if (this.#pending) {
      return nowMs - this.#pendingLastSentMs >= timing.handshakeRetryMs ? "retry" : undefined;
    }
    if (!this.#current) return "start";
    if (nowMs - this.lastHeardFromServerMs >= timing.serverSilenceMs) return "server-silent";
    if (
      (this.secret && nowMs - this.#current.createdMs >= timing.rekeyIntervalMs) ||
      this.#current.exhausted
    ) {
      return "rekey";
    }
    return undefined;
  }

  /** Warns (now and then) when a pending handshake has waited for its RESPONSE for seconds. */
  warnIfUnanswered(nowMs: number): void {
    if (!this.#pending) return;
    const waitedMs = nowMs - this.#pendingStartedMs;
    if (waitedMs >= 5000 && this.logThrottle.allow("no-response", nowMs) !== undefined) {
      this.logger.warning(
        "no handshake response from the server: is mpserver running and reachable, and do both ends use the same secret?",
        { waitedMs: Math.round(waitedMs) },
      );
    }
  }

  /** Frees the previous keys once their grace time is over. */
  expirePrevious(nowMs: number, timing: HandshakeTiming): void {
    if (this.#previous && nowMs - this.#current!.createdMs >= timing.previousKeysGraceMs) {
      this.#previous.dispose();
      this.#previous = undefined;
    }
  }

  /** The next time {@link due} or {@link expirePrevious} has work (Infinity: none). */
  nextDeadlineMs(timing: HandshakeTiming): number {
    let deadline = Infinity;
    if (this.#pending) deadline = this.#pendingLastSentMs + timing.handshakeRetryMs;
    if (this.#current) {
      if (!this.#pending) {
        deadline = Math.min(deadline, this.lastHeardFromServerMs + timing.serverSilenceMs);
        if (this.secret) {
          deadline = Math.min(deadline, this.#current.createdMs + timing.rekeyIntervalMs);
        }
      }
      if (this.#previous) {
        deadline = Math.min(deadline, this.#current.createdMs + timing.previousKeysGraceMs);
      }
    }
    return deadline;
  }

  /** Takes a RESPONSE in: completes the pending handshake when it answers it authentically. */
  receiveResponse(
    message: HandshakeMessage,
    datagram: Uint8Array,
    pathLabel: string,
    nowMs: number,
  ): ResponseOutcome {
    const pending = this.#pending;
    if (!pending) {
      // The same RESPONSE comes back once per path; the first one completed the handshake.
      return this.#current?.phase === message.keyPhase && message.sessionId === this.sessionId
        ? { kind: "duplicate" }
        : { kind: "refused", reason: "unexpected" };
    }
    const result = completeHandshake(this.secret, pending, message, datagram, this.aead);
    if (!result.ok) {
      if (
        result.reason !== "unexpected" &&
        this.logThrottle.allow("bad-response", nowMs) !== undefined
      ) {
        this.logger.warning(
          result.reason === "bad-mac"
            ? "the server's handshake response failed authentication: the two ends hold different secrets (or someone forged it)"
            : this.secret
            ? "the server answered without authentication: it has no secret configured; refusing to run unauthenticated"
            : "the server answered with authentication: it has a secret, this client has none",
          { path: pathLabel },
        );
      }
      return { kind: "refused", reason: result.reason };
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
    this.lastHeardFromServerMs = nowMs;
    return {
      kind: "completed",
      reason: this.#reason,
      keyPhase: pending.keyPhase,
      encrypted: keys !== undefined,
      handshakeMs: Math.round(nowMs - this.#pendingStartedMs),
    };
  }

  /** True when keys of an earlier handshake are still accepted. */
  get hasPrevious(): boolean {
    return this.#previous !== undefined;
  }

  /**
   * Takes a RESET in (it answers one of our datagrams the server could not place): only one naming
   * the keys we use now means the server lost the session ("handshake": start one now); RESETs for
   * earlier keys answer datagrams from before a handshake, or replays ("unknown-session").
   */
  receiveReset(
    reset: { readonly sessionId: number; readonly keyPhase: number },
    pathLabel: string,
    nowMs: number,
  ): "unknown-session" | "handshake" | "ignore" {
    if (reset.sessionId !== this.sessionId || reset.keyPhase !== this.#current?.phase) {
      return "unknown-session";
    }
    // RESETs are not authenticated: spacing the handshakes they start bounds what forged ones can
    // cost, while a real restart is answered at once.
    if (this.#pending || nowMs - this.#lastResetHandshakeMs < RESET_HANDSHAKE_SPACING_MS) {
      return "ignore";
    }
    this.#lastResetHandshakeMs = nowMs;
    this.logger.info("server does not know our session (it restarted?); handshaking again", {
      path: pathLabel,
    });
    return "handshake";
  }

  /** Logs a completed handshake, as a start, a restart or (quietly) new keys. */
  logCompleted(outcome: CompletedHandshake, pathLabel: string): void {
    const details = {
      session: formatSessionId(this.sessionId),
      keyPhase: outcome.keyPhase,
      path: pathLabel,
      handshakeMs: outcome.handshakeMs,
    };
    const reason = outcome.reason;
    switch (reason) {
      case "rekey":
        this.logger.debug("new session keys", details);
        break;
      case "start":
        this.logger.info("session established", { ...details, encrypted: outcome.encrypted });
        break;
      case "server-lost-session":
      case "server-silent":
        this.logger.info("session re-established", { ...details, after: reason });
        break;
      default:
        assertNever(reason);
    }
  }

  /** Explains a NOTICE, the server's refusal of our handshake (now and then). */
  logNotice(code: number, pathLabel: string, nowMs: number): void {
    if (this.logThrottle.allow(`notice ${code}`, nowMs) === undefined) return;
    const explanation = code === NoticeCode.secretRequired
      ? "the server requires a shared secret; configure the same secret on this client (--secret-file or MPTUNNEL_SECRET)"
      : code === NoticeCode.secretMismatch
      ? "the server could not authenticate our handshake: the two ends hold different secrets"
      : code === NoticeCode.secretNotConfigured
      ? "the server has no secret configured but this client has one; refusing to run unauthenticated"
      : `the server refused our handshake (notice code ${code})`;
    this.logger.error(explanation, { path: pathLabel });
  }
}
