/**
 * The benchmark's load generator, a process of its own so that it shares an event loop with nothing
 * it measures: sends numbered datagrams at a paced rate from one socket (one application flow, as the
 * tunnel sees it). Driven by `bench/tunnel_bench.ts` over stdin/stdout (see
 * `bench/helper_protocol.ts`):
 *
 *     {"op":"send","port":4000,"ratePps":20000,"durationMs":1500,"sizeBytes":1200,"streamId":7}
 *     → {"sent":30000,"sendErrors":0,"sendingMs":1499.6}
 *
 * Pacing: every {@link TICK_MS} (a thread sleep, not a timer of the event loop) the datagrams due
 * go out, up to {@link BATCH_DATAGRAMS} per `sendmmsg` call (see `bench/libc_udp.ts`), so the
 * generator costs little CPU and its bursts stay short. A rate it cannot reach shows as a longer
 * `sendingMs` (the achieved rate is `sent / sendingMs`).
 */

import { BATCH_DATAGRAMS, LibcUdpSocket } from "./libc_udp.ts";
import { prepareDatagram, serveRequests, setSequence } from "./helper_protocol.ts";

/** How long the generator sleeps between batches. */
const TICK_MS = 0.1;

/** One request to send. */
interface SendRequest {
  readonly port: number;
  readonly ratePps: number;
  readonly durationMs: number;
  readonly sizeBytes: number;
  readonly streamId: number;
}

const socket = LibcUdpSocket.open({ port: 0, sendBufferBytes: 4 << 20 });
const sleeper = new Int32Array(new SharedArrayBuffer(4));

function send(request: SendRequest): Record<string, number> {
  const batch = socket.batchTo("127.0.0.1", request.port, request.sizeBytes);
  const views = Array.from(
    { length: BATCH_DATAGRAMS },
    (_, index) =>
      prepareDatagram(
        batch.data.subarray(index * request.sizeBytes, (index + 1) * request.sizeBytes),
        request.streamId,
      ),
  );
  const total = Math.round(request.ratePps * request.durationMs / 1000);
  const intervalMs = 1000 / request.ratePps;
  let sent = 0;
  let sendErrors = 0;
  const startedAt = performance.now();
  while (sent < total) {
    const due = Math.min(total, Math.floor((performance.now() - startedAt) / intervalMs) + 1);
    if (due <= sent) {
      Atomics.wait(sleeper, 0, 0, TICK_MS);
      continue;
    }
    const count = Math.min(due - sent, BATCH_DATAGRAMS);
    for (let index = 0; index < count; index++) setSequence(views[index], sent + index);
    const went = batch.send(count);
    sendErrors += count - went;
    sent += count;
  }
  return { sent, sendErrors, sendingMs: performance.now() - startedAt };
}

if (import.meta.main) {
  try {
    await serveRequests((request) => {
      if (request.op === "send") return send(request as unknown as SendRequest);
      throw new Error(`blast: unknown request ${JSON.stringify(request)}`);
    });
  } finally {
    socket.close();
  }
}
