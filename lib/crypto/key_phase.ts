/**
 * One key phase of a session: the keys a handshake produced (none for a plaintext session), the next
 * sequence number to send under them and the window of sequence numbers received under them.
 * Sealing and opening sealed messages happens here, so the client and server cores share one path.
 */

import type { Aead } from "./aead.ts";
import { ReplayWindow } from "./replay_window.ts";
import type { DropReason } from "../base/counters.ts";
import {
  encodeSealedHeader,
  MAX_SEQUENCE,
  SEALED_HEADER_BYTES,
  type SealedMessage,
  type SealedType,
} from "../wire/messages.ts";

/** Keys and sequence-number state of one handshake. */
export class KeyPhase {
  /** The sequence number the next sealed message gets. */
  nextSendSequence = 0;
  /** Which sequence numbers have been received under this phase. */
  readonly receiveWindow: ReplayWindow;

  constructor(
    /** The key-phase byte carried in every header sealed under these keys. */
    readonly phase: number,
    /** Seals what this end sends; undefined for a plaintext session. */
    readonly sendAead: Aead | undefined,
    /** Opens what this end receives; undefined for a plaintext session. */
    readonly receiveAead: Aead | undefined,
    /** When the handshake completed. */
    readonly createdMs: number,
    /**
     * Without keys, a phase cannot tell its datagrams from an earlier phase's with the same phase
     * byte (it wraps after 256 handshakes), so a plaintext phase continues the previous one's
     * sequence numbers and shares its window: a replay stays a replay across handshakes.
     * With keys, a new phase starts afresh — old datagrams do not authenticate under new keys.
     */
    continues?: KeyPhase,
  ) {
    const carryOver = continues !== undefined && sendAead === undefined &&
      receiveAead === undefined;
    this.receiveWindow = carryOver ? continues.receiveWindow : new ReplayWindow();
    if (carryOver) this.nextSendSequence = continues.nextSendSequence;
  }

  /** Frees the phase's keys (see `Aead.dispose`) once nothing will seal or open under it again. */
  dispose(): void {
    this.sendAead?.dispose();
    this.receiveAead?.dispose();
  }

  /** True when datagrams under this phase are encrypted and authenticated. */
  get authenticated(): boolean {
    return this.sendAead !== undefined;
  }

  /** True when the sequence space is nearly used up and a new handshake is due. */
  get exhausted(): boolean {
    return this.nextSendSequence >= MAX_SEQUENCE - 2 ** 32;
  }
}

/**
 * Seals `body` as a message of `type` into `out` (header, then body or ciphertext and tag) and returns
 * the datagram, a view of `out`. `body` may already sit at `out[20…]` (nothing is copied then, in
 * plaintext mode). `out` must have room for the body plus 36 bytes. `flowSequence` is the
 * datagram's place in its flow, for the receiver's reorder buffer.
 */
export function sealMessage(
  keyPhase: KeyPhase,
  sessionId: number,
  type: SealedType,
  flowId: number,
  body: Uint8Array,
  out: Uint8Array,
  flowSequence = 0,
): Uint8Array {
  const sequence = keyPhase.nextSendSequence++;
  encodeSealedHeader(out, {
    type,
    authenticated: keyPhase.sendAead !== undefined,
    keyPhase: keyPhase.phase,
    sessionId,
    sequence,
    flowId,
    flowSequence,
  });
  if (keyPhase.sendAead) {
    const sealedBytes = keyPhase.sendAead.seal(
      sequence,
      out.subarray(0, SEALED_HEADER_BYTES),
      body,
      out,
      SEALED_HEADER_BYTES,
    );
    return out.subarray(0, SEALED_HEADER_BYTES + sealedBytes);
  }
  const alreadyInPlace = body.buffer === out.buffer &&
    body.byteOffset === out.byteOffset + SEALED_HEADER_BYTES;
  if (!alreadyInPlace) out.set(body, SEALED_HEADER_BYTES);
  return out.subarray(0, SEALED_HEADER_BYTES + body.length);
}

/** Outcome of {@link openMessage}: the body, or why it was not accepted. */
export type OpenResult =
  | { readonly ok: true; readonly body: Uint8Array }
  | { readonly ok: false; readonly reason: DropReason | "duplicate" };

/**
 * Accepts a sealed message received under `keyPhase`: the window check comes first (a redundant
 * copy costs no decryption), then authentication, and only an authentic message moves the window.
 * The returned body is a view of `out` (decrypted) or of the datagram itself (plaintext).
 */
export function openMessage(
  keyPhase: KeyPhase,
  message: SealedMessage,
  out: Uint8Array,
): OpenResult {
  const verdict = keyPhase.receiveWindow.check(message.sequence);
  if (verdict !== "new") {
    return { ok: false, reason: verdict === "duplicate" ? "duplicate" : "replay" };
  }
  if (message.authenticated !== (keyPhase.receiveAead !== undefined)) {
    return { ok: false, reason: "auth-mismatch" };
  }
  let body = message.body;
  if (keyPhase.receiveAead) {
    const length = keyPhase.receiveAead.open(
      message.sequence,
      message.header,
      message.body,
      out,
      0,
    );
    if (length < 0) return { ok: false, reason: "bad-tag" };
    body = out.subarray(0, length);
  }
  keyPhase.receiveWindow.mark(message.sequence);
  return { ok: true, body };
}
