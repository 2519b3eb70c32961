/** What the client core asks of its driver: sends on paths and deliveries to application flows. */

import type { FlowRefusal } from "../../wire/messages.ts";

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
  /** The server refused a declared flow (see `ClientCore.openFlow`). */
  flowRefused?(flowId: number, reason: FlowRefusal): void;
}
