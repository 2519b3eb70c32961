/** What the server core asks of its driver: sends, deliveries to targets, and opening targets. */

import type { UdpEndpoint } from "../../base/address.ts";
import type { FlowTarget } from "../../wire/messages.ts";

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
   * its policy, resolves it, opens the flow's socket and answers with `ServerCore.flowOpened`
   * (at once or later). Without this method declared flows are refused as unreachable.
   */
  openTarget?(sessionId: number, flowId: number, target: FlowTarget, attempt: number): void;
}
