/**
 * Application datagrams kept across a handshake: those that arrive before the first one completes
 * (sent once it does), and copies of those sent after a RESET (sent again if the new handshake
 * shows the server really lost the session).
 */

import type { DropReason } from "../../base/counters.ts";

/** Application datagrams kept while a handshake is pending. */
export const PENDING_QUEUE_LIMIT = 256;

/** One application datagram kept, with its flow. */
export interface QueuedDatagram {
  readonly flowId: number;
  readonly payload: Uint8Array;
}

/** The datagrams a handshake decides the fate of. */
export class HandshakeQueue {
  #queue: QueuedDatagram[] = [];
  /**
   * Datagrams sent since a RESET said the server lost our session; re-sent under the new keys if the
   * handshake confirms it (the RESPONSE says the session was not continued), forgotten otherwise.
   */
  #sentSinceReset: QueuedDatagram[] | undefined;

  constructor(readonly drops: Record<DropReason, number>) {}

  /** Keeps a copy of a datagram that cannot go out before the handshake (the oldest goes first). */
  hold(flowId: number, payload: Uint8Array): void {
    if (this.#queue.length >= PENDING_QUEUE_LIMIT) {
      this.#queue.shift();
      this.drops["queue-full"]++;
    }
    this.#queue.push({ flowId, payload: payload.slice() }); // the caller reuses its buffer
  }

  /** A RESET started a handshake: from now on, keep copies of what is sent. */
  resetReceived(): void {
    this.#sentSinceReset = [];
  }

  /**
   * Keeps a copy of a datagram sent after a RESET: datagrams still go out under the current keys
   * (the RESET may be forged), in case the new handshake shows the server really lost them.
   */
  noteSent(flowId: number, payload: Uint8Array): void {
    if (this.#sentSinceReset && this.#sentSinceReset.length < PENDING_QUEUE_LIMIT) {
      this.#sentSinceReset.push({ flowId, payload: payload.slice() });
    }
  }

  /** A handshake completed: what is to be sent now (the copies too when the server lost them). */
  release(sessionContinued: boolean): QueuedDatagram[] {
    const queued = this.#queue;
    this.#queue = [];
    if (this.#sentSinceReset && !sessionContinued) queued.push(...this.#sentSinceReset);
    this.#sentSinceReset = undefined;
    return queued;
  }
}
