/**
 * mpclient's application flows: one per application address (or SOCKS5 destination) talking
 * through the tunnel, each with a flow id. Classic flows (to the server's default target) take ids
 * 1–{@link MAX_CLASSIC_FLOW_ID}; declared flows (to a target the client names) take
 * {@link DECLARED_FLOW_BASE}–{@link MAX_FLOW_ID}. Ids are handed out round-robin, so a flow just
 * forgotten does not get its id reused at once.
 */

import type { FlowRefusal } from "../session/client_core.ts";
import { DECLARED_FLOW_BASE, MAX_FLOW_ID } from "../wire/messages.ts";

/** The last classic flow id; declared flows are {@link DECLARED_FLOW_BASE}–{@link MAX_FLOW_ID}. */
export const MAX_CLASSIC_FLOW_ID = DECLARED_FLOW_BASE - 1;

/** One application address (or SOCKS5 destination) talking through the tunnel. */
export interface Flow {
  readonly id: number;
  /** How logs name it. */
  readonly label: string;
  lastActiveMs: number;
  /** Sends a reply to the application; the payload may be reused once the promise settles. */
  readonly deliver: (payload: Uint8Array) => Promise<unknown>;
  /** Removes the flow from its owner's index when the driver forgets it for being idle. */
  readonly expired: () => void;
  /** Set when the server refused the flow's target (logged once). */
  refusal: FlowRefusal | undefined;
}

/** The flows by id, and the id allocation of both kinds. */
export class FlowTable {
  readonly #byId = new Map<number, Flow>();
  readonly #closeDeclared: (flowId: number) => void;
  #classicCount = 0;
  #declaredCount = 0;
  #nextClassicId = 1;
  #nextDeclaredId = DECLARED_FLOW_BASE;

  /** `closeDeclared` tells the core a declared flow is gone (classic ones it never knew). */
  constructor(closeDeclared: (flowId: number) => void) {
    this.#closeDeclared = closeDeclared;
  }

  /** Flows tracked now. */
  get size(): number {
    return this.#byId.size;
  }

  /** The flow with this id. */
  get(flowId: number): Flow | undefined {
    return this.#byId.get(flowId);
  }

  /** A classic flow (to the server's default target); undefined when every classic id is taken. */
  openClassic(
    label: string,
    deliver: Flow["deliver"],
    expired: Flow["expired"],
    nowMs: number,
  ): Flow | undefined {
    if (this.#classicCount >= MAX_CLASSIC_FLOW_ID) return undefined;
    while (this.#byId.has(this.#nextClassicId)) {
      this.#nextClassicId = nextId(this.#nextClassicId, 1, MAX_CLASSIC_FLOW_ID);
    }
    const id = this.#nextClassicId;
    this.#nextClassicId = nextId(id, 1, MAX_CLASSIC_FLOW_ID);
    const flow: Flow = { id, label, lastActiveMs: nowMs, deliver, expired, refusal: undefined };
    this.#byId.set(id, flow);
    this.#classicCount++;
    return flow;
  }

  /**
   * A declared flow (the caller tells the core its target); undefined when every declared id is
   * taken.
   */
  openDeclared(
    label: string,
    deliver: Flow["deliver"],
    expired: Flow["expired"],
    nowMs: number,
  ): Flow | undefined {
    if (this.#declaredCount > MAX_FLOW_ID - DECLARED_FLOW_BASE) return undefined;
    while (this.#byId.has(this.#nextDeclaredId)) {
      this.#nextDeclaredId = nextId(this.#nextDeclaredId, DECLARED_FLOW_BASE, MAX_FLOW_ID);
    }
    const id = this.#nextDeclaredId;
    this.#nextDeclaredId = nextId(id, DECLARED_FLOW_BASE, MAX_FLOW_ID);
    const flow: Flow = { id, label, lastActiveMs: nowMs, deliver, expired, refusal: undefined };
    this.#byId.set(id, flow);
    this.#declaredCount++;
    return flow;
  }

  /** Forgets a flow (the core too, for a declared one); its owner's index is the caller's. */
  forget(flow: Flow): void {
    if (this.#byId.get(flow.id) !== flow) return;
    this.#byId.delete(flow.id);
    if (flow.id >= DECLARED_FLOW_BASE) {
      this.#declaredCount--;
      this.#closeDeclared(flow.id);
    } else this.#classicCount--;
  }

  /** Forgets every flow silent for `idleTimeoutMs`, and tells each one's owner. */
  expireIdle(nowMs: number, idleTimeoutMs: number): void {
    for (const flow of this.#byId.values()) {
      if (nowMs - flow.lastActiveMs < idleTimeoutMs) continue;
      this.forget(flow);
      flow.expired();
    }
  }
}

/** The id after `id` in `first..last`, wrapping around. */
function nextId(id: number, first: number, last: number): number {
  return id >= last ? first : id + 1;
}
