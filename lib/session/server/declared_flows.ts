/**
 * Flows a client declares with a target (FLOW_OPEN), as the server handles them: the declaration
 * (a repeat, a new target, or over the limits), the driver's answer, the client told either way,
 * and the flow's datagrams held until then (briefly, boundedly) or dropped once it is refused.
 */

import { formatHostPort, type UdpEndpoint } from "../../base/address.ts";
import type { DropReason } from "../../base/counters.ts";
import type { Logger } from "../../base/log.ts";
import { DECLARED_FLOW_BASE, decodeFlowOpenBody, type FlowRefusal } from "../../wire/messages.ts";
import { formatSessionId } from "../../wire/session_id.ts";
import type { ServerOutbox } from "./server_outbox.ts";
import type { ServerSession } from "./server_session.ts";

/** Declared flows per session at most, and of them waiting for the driver's answer. */
const MAX_DECLARED_FLOWS_PER_SESSION = 1024;
const MAX_OPENING_FLOWS_PER_SESSION = 32;

/** A declared flow's datagrams held while its FLOW_OPEN is awaited, per session at most. */
const MAX_HELD_PER_SESSION = 64;
/** ... and for at most this long. */
const HOLD_MS = 1000;

/** What the declared flows need from the server core to act. */
export interface ServerFlowHost {
  /** Tells the client where a declared flow stands, on every path it uses. */
  sendFlowReply(
    session: ServerSession,
    flowId: number,
    generation: number,
    status: "open" | FlowRefusal,
    nowMs: number,
    outbox: ServerOutbox,
  ): void;
  /** The session now holds datagrams: it has a deadline. */
  holding(session: ServerSession): void;
}

/** The server's handling of declared flows, over all sessions. */
export class ServerDeclaredFlows {
  #openAttempts = 0;

  constructor(
    readonly host: ServerFlowHost,
    readonly drops: Record<DropReason, number>,
    readonly logger: Logger,
  ) {}

  /** Takes a FLOW_OPEN's body in: answers a repeat, refuses over the limits, else asks the driver. */
  receiveOpen(
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
      this.drops.malformed++;
      return;
    }
    const known = session.declaredFlows.get(flowId);
    if (known && sameBytes(known.body, body)) {
      // Another copy, the client did not hear the answer, or the id came back for the same target:
      // answer again (once decided) under the generation asked.
      known.generation = generation;
      if (known.state !== "opening") {
        this.host.sendFlowReply(session, flowId, generation, known.state, nowMs, outbox);
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
      this.host.sendFlowReply(session, flowId, generation, "limit", nowMs, outbox);
      return;
    }
    const attempt = ++this.#openAttempts;
    session.declaredFlows.set(flowId, {
      body: body.slice(),
      state: "opening",
      generation,
      attempt,
    });
    this.logger.debug("flow declared", {
      session: formatSessionId(session.id),
      flow: flowId,
      from: formatHostPort(from),
    });
    if (!outbox.openTarget) {
      this.opened(session, flowId, "unreachable", nowMs, outbox, attempt);
      return;
    }
    outbox.openTarget(session.id, flowId, target, attempt);
  }

  /**
   * The driver's answer: the flow is open (its held datagrams go to the target now) or refused
   * (they are dropped). The client is told either way. An answer to a superseded attempt is ignored.
   */
  opened(
    session: ServerSession,
    flowId: number,
    status: "open" | FlowRefusal,
    nowMs: number,
    outbox: ServerOutbox,
    attempt?: number,
  ): void {
    const declared = session.declaredFlows.get(flowId);
    if (!declared) return;
    if (attempt !== undefined && attempt !== declared.attempt) return; // superseded
    declared.state = status;
    this.host.sendFlowReply(session, flowId, declared.generation, status, nowMs, outbox);
    const waiting = session.held.filter((held) => held.flowId === flowId);
    if (waiting.length === 0) return;
    session.held = session.held.filter((held) => held.flowId !== flowId);
    for (const held of waiting) this.toTarget(session, flowId, held.payload, nowMs, outbox);
  }

  /**
   * Hands a client's datagram to the target, unless it belongs to a declared flow that is not open:
   * held while its FLOW_OPEN is awaited, dropped when refused.
   */
  toTarget(
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
      this.drops["target-refused"]++;
      return;
    }
    if (session.held.length >= MAX_HELD_PER_SESSION) {
      this.drops["flow-unknown"]++;
      return;
    }
    session.held.push({ flowId, payload: payload.slice(), heldMs: nowMs });
    this.host.holding(session);
  }

  /** Drops held datagrams that waited too long; returns true while some are still held. */
  expireHeld(session: ServerSession, nowMs: number): boolean {
    if (session.held.length === 0) return false;
    const kept = session.held.filter((held) => nowMs - held.heldMs < HOLD_MS);
    this.drops["flow-unknown"] += session.held.length - kept.length;
    session.held = kept;
    return kept.length > 0;
  }

  /** When {@link expireHeld} has work for `session` (Infinity: none). */
  nextDeadlineMs(session: ServerSession): number {
    return session.held.length > 0 ? session.held[0].heldMs + HOLD_MS : Infinity;
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
