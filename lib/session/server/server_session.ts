/**
 * What the server knows of one client session: its key phases (current, next and previous, and the
 * last handshake), the addresses it was heard from, how replies are spread over them (the client's
 * advice), its flows and its counters.
 */

import { createTrafficCounters, type TrafficCounters } from "../../base/counters.ts";
import type { KeyPhase } from "../../crypto/key_phase.ts";
import type { FecEncoder } from "../../fec/encoder.ts";
import type { FlowRefusal } from "../../wire/messages.ts";
import { FlowDelivery } from "../flow_delivery.ts";
import type { PathScheduler } from "../path_scheduler.ts";
import { type SchedulingMode, WeightedRoundRobin } from "../scheduler.ts";
import { createReplyScheduler } from "./reply_schedulers.ts";

export type { SessionAddress };
import type { ServerOutbox } from "./server_outbox.ts";
import type { SessionAddress } from "./session_address.ts";
import { DEFAULT_SERVER_LIMITS } from "./server_limits.ts";

/** A declared flow as the server keeps it. */
export interface DeclaredFlowState {
  /** The declaration, to tell a repeat from a new target for the same id. */
  body: Uint8Array;
  state: "opening" | "open" | FlowRefusal;
  /** The client's generation of this declaration (flow ids are reused), echoed in FLOW_REPLY. */
  generation: number;
  /** Which openTarget call is current: a slower, earlier one's answer is ignored. */
  attempt: number;
}

/** A declared flow's datagram held while its FLOW_OPEN is awaited. */
export interface HeldDatagram {
  readonly flowId: number;
  readonly payload: Uint8Array;
  readonly heldMs: number;
}

/** Datagrams one server-side reorder buffer holds at most. */
const REORDER_CAPACITY_PER_FLOW = 32;
/** Reorder buffers per session at most; a flow beyond them is delivered unordered. */
const MAX_REORDER_BUFFERS_PER_SESSION = 16;

/** Where a session's flows go once in order (the server core's way to the target). */
export type SessionSink = (
  session: ServerSession,
  flowId: number,
  payload: Uint8Array,
  nowMs: number,
  outbox: ServerOutbox,
) => void;

/** How a session is made beyond its id and birth. */
export interface ServerSessionOptions {
  /** Where its flows go (default: nowhere, for a session only looked at). */
  readonly deliver?: SessionSink;
  /** Replies go to addresses heard from within this time (default as in `DEFAULT_SERVER_LIMITS`). */
  readonly addressTimeoutMs?: number;
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
  /** Datagrams from the client rebuilt from FEC parity. */
  fecRecovered = 0;
  fecEncoder: FecEncoder | undefined;
  /** The round robin's credits per address, shared by every mode the session goes through. */
  readonly roundRobin: WeightedRoundRobin = new WeightedRoundRobin();
  /** How data replies are spread, as the client's latest PROBE advised. */
  scheduler: PathScheduler<SessionAddress>;
  /** Where FEC shards go, one address each in turn (whatever the mode is by the time they leave). */
  readonly shardScheduler: PathScheduler<SessionAddress>;
  /** Every recent address: control messages, and data while the groups are not shaped yet. */
  readonly everyAddress: PathScheduler<SessionAddress>;
  /** The client's datagrams on their way to the target: reordered, FEC-decoded. */
  readonly delivery: FlowDelivery<ServerOutbox>;
  /** The next flow sequence number per flow, toward the client. */
  readonly flowSequences: Map<number, number> = new Map();
  /** Declared flows by id. */
  readonly declaredFlows: Map<number, DeclaredFlowState> = new Map();
  /** Datagrams of declared flows the server does not know yet (their FLOW_OPEN is on its way). */
  held: HeldDatagram[] = [];
  nextAddressId = 0;
  readonly #addressTimeoutMs: number;

  constructor(readonly id: number, readonly createdMs: number, options: ServerSessionOptions = {}) {
    this.lastActiveMs = createdMs;
    this.#addressTimeoutMs = options.addressTimeoutMs ?? DEFAULT_SERVER_LIMITS.addressTimeoutMs;
    this.scheduler = this.#schedulerFor("redundant");
    this.shardScheduler = this.#schedulerFor("fec");
    this.everyAddress = this.#schedulerFor("redundant");
    const deliver = options.deliver;
    this.delivery = new FlowDelivery<ServerOutbox>(
      deliver
        ? (flowId, payload, nowMs, outbox) => deliver(this, flowId, payload, nowMs, outbox)
        : () => {},
      {
        reorderTimeoutMs: 0,
        reorderCapacity: REORDER_CAPACITY_PER_FLOW,
        maxReorderBuffers: MAX_REORDER_BUFFERS_PER_SESSION,
        onFecRecovered: () => this.fecRecovered++,
      },
    );
  }

  /** How replies are spread, as the client's latest PROBE advised. */
  get mode(): SchedulingMode {
    return this.scheduler.mode;
  }

  /** Follows the client's advice to spread replies in `mode`. */
  setMode(mode: SchedulingMode): void {
    if (mode !== this.scheduler.mode) this.scheduler = this.#schedulerFor(mode);
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
    this.previous?.dispose();
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

  #schedulerFor(mode: SchedulingMode): PathScheduler<SessionAddress> {
    return createReplyScheduler(mode, {
      addressTimeoutMs: this.#addressTimeoutMs,
      roundRobin: this.roundRobin,
    });
  }
}
