/**
 * Flows the client declares to the server with a target (`openFlow`): each declaration, its
 * generation (flow ids come back), its FLOW_OPEN retries, the server's answer, and the datagrams
 * that wait for that answer when the id was used before.
 */

import { formatHostPort } from "../../base/address.ts";
import type { DropReason } from "../../base/counters.ts";
import type { Logger } from "../../base/log.ts";
import type { LogThrottle } from "../../base/throttle.ts";
import {
  DECLARED_FLOW_BASE,
  decodeFlowReplyBody,
  encodeFlowOpenBody,
  type FlowRefusal,
  type FlowTarget,
} from "../../wire/messages.ts";

/** A FLOW_OPEN not answered is sent again this often. */
export const FLOW_OPEN_RETRY_MS = 200;

/** A declared flow's state at the client: waiting for the server, open, or refused (and why). */
export type DeclaredFlowState = "pending" | "open" | FlowRefusal;

/** A declared flow as the client keeps it. */
interface DeclaredFlow {
  readonly target: FlowTarget;
  /** Its FLOW_OPEN body, encoded once. */
  readonly body: Uint8Array;
  state: DeclaredFlowState;
  lastSentMs: number;
  /** Which declaration of this id it is (carried in the FLOW_OPEN header's flow sequence). */
  readonly generation: number;
  /** The id was declared before: datagrams wait for the server's answer to this declaration. */
  readonly reused: boolean;
  /** Datagrams waiting for that answer. */
  waiting: Uint8Array[];
}

/** What the declared flows need from the client to act. */
export interface DeclaredFlowHost<Context> {
  /** Seals a FLOW_OPEN and sends it on every path that may carry data. */
  sendFlowOpen(flowId: number, body: Uint8Array, generation: number, context: Context): void;
  /** Sends a datagram that waited for its flow to open (it has a buffer of its own). */
  sendWaiting(flowId: number, payload: Uint8Array, nowMs: number, context: Context): void;
  /** Tells the driver the server refused the flow. */
  refused(flowId: number, reason: FlowRefusal, context: Context): void;
}

/** The client's declared flows. */
export class ClientDeclaredFlows<Context> {
  /** Declared flows by id: their target and whether the server has opened them. */
  readonly #flows = new Map<number, DeclaredFlow>();
  /** The last generation declared per flow id (kept after a flow closes: ids come back). */
  readonly #generations = new Map<number, number>();

  constructor(
    readonly host: DeclaredFlowHost<Context>,
    readonly drops: Record<DropReason, number>,
    readonly logger: Logger,
    readonly logThrottle: LogThrottle,
    /** Datagrams waiting for an answer, per flow at most. */
    readonly waitingLimit: number,
  ) {}

  /** Declares `flowId` with `target`; the FLOW_OPEN goes out now when `connected`. */
  open(flowId: number, target: FlowTarget, connected: boolean, nowMs: number, context: Context) {
    // A flow id comes back after 32 768 others: each declaration of it has a generation, echoed in
    // the answer, so an answer (or the server's state) from the previous use is never taken for
    // this one's.
    const generation = this.#generations.get(flowId);
    const nextGeneration = generation === undefined ? 0 : (generation + 1) & 0xffff;
    this.#generations.set(flowId, nextGeneration);
    const declared: DeclaredFlow = {
      target,
      body: encodeFlowOpenBody(target),
      state: "pending",
      lastSentMs: -Infinity,
      generation: nextGeneration,
      reused: generation !== undefined,
      waiting: [],
    };
    this.#flows.set(flowId, declared);
    if (connected) this.#sendOpen(flowId, declared, nowMs, context);
  }

  /** Forgets a declared flow. */
  close(flowId: number): void {
    this.#flows.delete(flowId);
  }

  /** Where a declared flow stands. */
  state(flowId: number): DeclaredFlowState | undefined {
    return this.#flows.get(flowId)?.state;
  }

  /** True when the server refused `flowId`: the application's datagrams for it are dropped. */
  refuses(flowId: number): boolean {
    const declared = flowId >= DECLARED_FLOW_BASE ? this.#flows.get(flowId) : undefined;
    return declared !== undefined && declared.state !== "pending" && declared.state !== "open";
  }

  /**
   * Keeps a copy of an application datagram when its flow reuses an id and waits for the server's
   * answer (the server may still hold the previous use as open, toward another target). Returns
   * true when kept: it is not to be sent now.
   */
  holdForAnswer(flowId: number, payload: Uint8Array): boolean {
    const declared = flowId >= DECLARED_FLOW_BASE ? this.#flows.get(flowId) : undefined;
    if (!declared?.reused || declared.state !== "pending") return false;
    if (declared.waiting.length >= this.waitingLimit) {
      declared.waiting.shift();
      this.drops["queue-full"]++;
    }
    declared.waiting.push(payload.slice());
    return true;
  }

  /** False for a reply to an earlier use of a reused id (from its old target): not this flow's. */
  admitsDelivery(flowId: number): boolean {
    if (flowId < DECLARED_FLOW_BASE) return true;
    const declared = this.#flows.get(flowId);
    return !(declared?.reused && declared.state !== "open");
  }

  /** Sends FLOW_OPEN again for the declarations not answered within {@link FLOW_OPEN_RETRY_MS}. */
  retry(nowMs: number, context: Context): void {
    for (const [flowId, declared] of this.#flows) {
      if (declared.state === "pending" && nowMs - declared.lastSentMs >= FLOW_OPEN_RETRY_MS) {
        this.#sendOpen(flowId, declared, nowMs, context);
      }
    }
  }

  /** When {@link retry} has work (Infinity: none). */
  nextDeadlineMs(): number {
    let deadline = Infinity;
    for (const declared of this.#flows.values()) {
      if (declared.state === "pending") {
        deadline = Math.min(deadline, declared.lastSentMs + FLOW_OPEN_RETRY_MS);
      }
    }
    return deadline;
  }

  /**
   * A handshake completed: declare the waiting flows again, first, and every open one too when
   * the server did not know the session (it has none of its flows).
   */
  redeclare(sessionContinued: boolean, nowMs: number, context: Context): void {
    for (const [flowId, declared] of this.#flows) {
      if (!sessionContinued && declared.state === "open") declared.state = "pending";
      if (declared.state === "pending") this.#sendOpen(flowId, declared, nowMs, context);
    }
  }

  /** Takes the server's FLOW_REPLY in. */
  receiveReply(
    flowId: number,
    generation: number,
    body: Uint8Array,
    nowMs: number,
    context: Context,
  ): void {
    const status = decodeFlowReplyBody(body);
    const declared = this.#flows.get(flowId);
    if (!status || !declared || declared.generation !== generation) {
      if (!status) this.drops.malformed++;
      return; // a reply for a flow we forgot or an earlier use of its id, or another copy
    }
    if (declared.state === status) return;
    if (status === "limit" && declared.state === "pending") return; // asked again every 200 ms
    declared.state = status;
    const waiting = declared.waiting;
    declared.waiting = [];
    if (status === "open") {
      for (const payload of waiting) this.host.sendWaiting(flowId, payload, nowMs, context);
      return;
    }
    this.drops["target-refused"] += waiting.length;
    const target = declared.target.kind === "named"
      ? declared.target.name
      : formatHostPort({ hostname: declared.target.host, port: declared.target.port });
    const held = this.logThrottle.allow(`flow-refused ${status}`, nowMs);
    if (held !== undefined) {
      // The driver logs each refused flow with where it came from; this is the core's view.
      this.logger.debug("the server refused a flow's target", {
        target,
        reason: status,
        repeats: held,
      });
    }
    this.host.refused(flowId, status, context);
  }

  #sendOpen(flowId: number, declared: DeclaredFlow, nowMs: number, context: Context): void {
    declared.lastSentMs = nowMs;
    this.host.sendFlowOpen(flowId, declared.body, declared.generation, context);
  }
}
