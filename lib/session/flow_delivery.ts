/**
 * The receiving side of a session's flows, the same at both ends: DATA goes through its flow's
 * reorder buffer (when reordering is asked for), FEC shards through the group decoder, and what comes
 * out goes to the end's sink (the application at the client, the target at the server).
 */

import { FecDecoder } from "../fec/decoder.ts";
import { DEFAULT_REORDER_CAPACITY, ReorderBuffer } from "./reorder.ts";

/**
 * Where a flow's datagrams go once in order; the payload may be a view valid only during the call.
 * `context` is what the caller passed along with the datagram (its outbox, say), so the sink needs
 * no closure per datagram.
 */
export type FlowSink<Context> = (
  flowId: number,
  payload: Uint8Array,
  nowMs: number,
  context: Context,
) => void;

/** How one end delivers its flows. */
export interface FlowDeliveryOptions {
  /** Hold datagrams that overtake an earlier one of their flow at most this long (0: never). */
  readonly reorderTimeoutMs: number;
  /** Datagrams one flow's reorder buffer holds at most. */
  readonly reorderCapacity?: number;
  /** Reorder buffers at most; a flow beyond them is delivered unordered. */
  readonly maxReorderBuffers?: number;
  /** Called once for each datagram rebuilt from FEC parity, before it is delivered. */
  readonly onFecRecovered?: () => void;
}

/**
 * Reorders and decodes one session's incoming flows.
 *
 * @example
 * ```ts
 * import { FlowDelivery } from "./flow_delivery.ts";
 * const delivered: number[] = [];
 * const delivery = new FlowDelivery<undefined>(
 *   (_flowId, payload) => delivered.push(payload[0]),
 *   { reorderTimeoutMs: 50 },
 * );
 * delivery.receiveData(1, 1, new Uint8Array([2]), 0, undefined); // waits for sequence 0
 * delivery.receiveData(1, 0, new Uint8Array([1]), 5, undefined); // delivered: [1, 2]
 * ```
 */
export class FlowDelivery<Context> {
  /** The timeout new reorder buffers get (the server follows the client's latest advice). */
  reorderTimeoutMs: number;
  readonly #sink: FlowSink<Context>;
  readonly #reorderCapacity: number;
  readonly #maxReorderBuffers: number;
  readonly #onFecRecovered: () => void;
  readonly #reorderBuffers = new Map<number, ReorderBuffer>();
  #fecDecoder: FecDecoder | undefined;
  #deliveringFlowId = 0;
  #deliveringNowMs = 0;
  #deliveringContext: Context | undefined;
  /** The reorder buffers' delivery callback, made once (not a closure per datagram). */
  readonly #deliverHeld = (payload: Uint8Array): void => {
    this.#sink(
      this.#deliveringFlowId,
      payload,
      this.#deliveringNowMs,
      this.#deliveringContext as Context,
    );
  };

  constructor(sink: FlowSink<Context>, options: FlowDeliveryOptions) {
    this.#sink = sink;
    this.reorderTimeoutMs = options.reorderTimeoutMs;
    this.#reorderCapacity = options.reorderCapacity ?? DEFAULT_REORDER_CAPACITY;
    this.#maxReorderBuffers = options.maxReorderBuffers ?? Infinity;
    this.#onFecRecovered = options.onFecRecovered ?? (() => {});
  }

  /**
   * Takes a DATA body of flow `flowId` in: delivered now, or held for reordering. Returns true
   * when the flow's buffer holds datagrams afterwards (it has a deadline then).
   */
  receiveData(
    flowId: number,
    flowSequence: number,
    payload: Uint8Array,
    nowMs: number,
    context: Context,
  ): boolean {
    if (this.reorderTimeoutMs <= 0) {
      this.#sink(flowId, payload, nowMs, context);
      return false;
    }
    let buffer = this.#reorderBuffers.get(flowId);
    if (!buffer) {
      if (this.#reorderBuffers.size >= this.#maxReorderBuffers) {
        this.#sink(flowId, payload, nowMs, context);
        return false;
      }
      buffer = new ReorderBuffer(this.reorderTimeoutMs, this.#reorderCapacity);
      this.#reorderBuffers.set(flowId, buffer);
    }
    this.#deliveringFlowId = flowId;
    this.#deliveringNowMs = nowMs;
    this.#deliveringContext = context;
    buffer.push(flowSequence, payload, nowMs, this.#deliverHeld);
    return buffer.size > 0;
  }

  /** Takes an FEC shard in and delivers what it completes (not reordered: groups are in order). */
  receiveFec(groupFlowId: number, body: Uint8Array, nowMs: number, context: Context): void {
    this.#fecDecoder ??= new FecDecoder();
    for (const delivery of this.#fecDecoder.receive(groupFlowId, body, nowMs)) {
      if (delivery.recovered) this.#onFecRecovered();
      this.#sink(delivery.flowId, delivery.payload, nowMs, context);
    }
  }

  /** Gives up reorder gaps that waited long enough. Returns true while any buffer still holds. */
  flush(nowMs: number, context: Context): boolean {
    let holding = false;
    for (const [flowId, buffer] of this.#reorderBuffers) {
      this.#deliveringFlowId = flowId;
      this.#deliveringNowMs = nowMs;
      this.#deliveringContext = context;
      buffer.flush(nowMs, this.#deliverHeld);
      holding ||= buffer.size > 0;
    }
    return holding;
  }

  /** When {@link flush} has work, or undefined. */
  nextDeadlineMs(): number | undefined {
    let deadline = Infinity;
    for (const buffer of this.#reorderBuffers.values()) {
      deadline = Math.min(deadline, buffer.nextDeadlineMs() ?? Infinity);
    }
    return deadline === Infinity ? undefined : deadline;
  }

  /** Forgets a flow's reorder buffer (the flow was closed). */
  forgetFlow(flowId: number): void {
    this.#reorderBuffers.delete(flowId);
  }

  /** Forgets every flow and FEC group: the other end started its numbering again. */
  reset(): void {
    this.#fecDecoder = undefined;
    this.#reorderBuffers.clear();
  }
}
