/**
 * How the client's datagrams leave: sealed under the current keys, numbered in their flow, on the
 * paths the mode's scheduler picks (as FEC shards in fec mode), counted on each path. PROBEs carry
 * the advice of what the server is to send on their path.
 */

import { sealMessage } from "../../crypto/key_phase.ts";
import type { FecShard } from "../../fec/group.ts";
import type { ClientPath } from "../../path/path_stats.ts";
import { type PathAdvice, type SealedType, TUNNEL_OVERHEAD_BYTES } from "../../wire/messages.ts";
import type { ClientHandshake } from "./client_handshake.ts";
import type { ClientOutbox } from "./client_outbox.ts";
import type { ClientPaths } from "./client_paths.ts";
import type { FecTuning } from "./fec_tuning.ts";
import type { PathMonitor } from "./path_monitor.ts";
import type { ClientScheduler } from "./scheduling/client_scheduler.ts";

/** What the sender works with: the client's other concerns, and the settings it advises. */
export interface ClientSenderParts {
  readonly sessionId: number;
  readonly handshake: ClientHandshake;
  readonly paths: ClientPaths;
  readonly scheduler: ClientScheduler<ClientPath>;
  readonly fec: FecTuning;
  readonly monitor: PathMonitor;
  /** The reorder timeout the server is asked to use toward us. */
  readonly reorderTimeoutMs: number;
}

/** Seals and sends what the client sends. */
export class ClientSender {
  /** The next flow sequence number per flow, toward the server. */
  readonly #flowSequences = new Map<number, number>();

  constructor(readonly parts: ClientSenderParts) {}

  /** Seals one application datagram and sends it where the mode says. */
  sendData(
    flowId: number,
    payload: Uint8Array,
    out: Uint8Array,
    nowMs: number,
    outbox: ClientOutbox,
  ): void {
    const { paths, scheduler } = this.parts;
    const candidates = paths.candidates();
    if (scheduler.sendsFecShards) {
      const encoder = this.parts.fec.refresh(candidates, nowMs);
      this.sendShards(encoder.add(flowId, payload, nowMs), nowMs, outbox);
      return;
    }
    const flowSequence = this.#flowSequences.get(flowId) ?? 0;
    this.#flowSequences.set(flowId, (flowSequence + 1) & 0xffff);
    const datagram = this.#seal("data", flowId, payload, out, flowSequence);
    for (const path of scheduler.choose(candidates, nowMs)) {
      this.#sendSealed(path, datagram, outbox);
    }
  }

  /** Seals FEC shards, each into a buffer of its own (they all go out before any send settles). */
  sendShards(shards: readonly FecShard[], nowMs: number, outbox: ClientOutbox): void {
    const { paths, scheduler } = this.parts;
    for (const shard of shards) {
      const out = new Uint8Array(shard.body.length + TUNNEL_OVERHEAD_BYTES);
      const datagram = this.#seal("fec", shard.flowId, shard.body, out);
      for (const path of scheduler.choose(paths.candidates(), nowMs)) {
        this.#sendSealed(path, datagram, outbox);
      }
    }
  }

  /** Sends the pending handshake's INIT on every path. */
  sendInit(nowMs: number, outbox: ClientOutbox): void {
    const init = this.parts.handshake.initToSend(nowMs);
    for (const path of this.parts.paths.list) {
      path.sent.datagrams++;
      path.sent.bytes += init.length;
      outbox.sendOnPath(path.index, init);
    }
  }

  /** Sends a PROBE on `path`, with the advice for it. */
  sendProbe(path: ClientPath, nowMs: number, outbox: ClientOutbox): void {
    const body = this.parts.monitor.probeBody(
      path,
      nowMs,
      (probed) => this.#adviceFor(probed, nowMs),
    );
    const out = new Uint8Array(body.length + TUNNEL_OVERHEAD_BYTES);
    this.#sendSealed(path, this.#seal("probe", 0, body, out), outbox);
  }

  /** Sends a FLOW_OPEN on every path (declarations are small and must not wait for a lossy one). */
  sendFlowOpen(flowId: number, body: Uint8Array, generation: number, outbox: ClientOutbox): void {
    const out = new Uint8Array(body.length + TUNNEL_OVERHEAD_BYTES);
    const datagram = this.#seal("flow-open", flowId, body, out, generation);
    for (const path of this.parts.paths.candidates()) this.#sendSealed(path, datagram, outbox);
  }

  /** Forgets a flow's numbering (the flow was closed). */
  forgetFlow(flowId: number): void {
    this.#flowSequences.delete(flowId);
  }

  /** Numbers every flow from zero again: the server started a new session. */
  restartFlows(): void {
    this.#flowSequences.clear();
  }

  /** Seals a message under the current keys. */
  #seal(
    type: SealedType,
    flowId: number,
    body: Uint8Array,
    out: Uint8Array,
    flowSequence?: number,
  ): Uint8Array {
    return sealMessage(
      this.parts.handshake.current!,
      this.parts.sessionId,
      type,
      flowId,
      body,
      out,
      flowSequence,
    );
  }

  #sendSealed(path: ClientPath, datagram: Uint8Array, outbox: ClientOutbox): void {
    path.sealedSent++;
    path.sent.datagrams++;
    path.sent.bytes += datagram.length;
    outbox.sendOnPath(path.index, datagram);
  }

  /** What the server is asked to do with its datagrams toward us on `path`. */
  #adviceFor(path: ClientPath, nowMs: number): PathAdvice {
    const { paths, scheduler, fec } = this.parts;
    const candidates = paths.candidates();
    if (scheduler.sendsFecShards) fec.refresh(candidates, nowMs);
    return {
      mode: scheduler.mode,
      carryData: scheduler.carriesDataFromServer(path, candidates, nowMs),
      weight: path.weight,
      reorderTimeoutMs: this.parts.reorderTimeoutMs,
      fecDataShards: fec.downstream.dataShards,
      fecParityShards: fec.downstream.parityShards,
    };
  }
}
