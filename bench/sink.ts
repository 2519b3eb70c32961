/**
 * The benchmark's receiver and target, a process of its own: counts the distinct datagrams of each
 * stream (duplicates apart) and, when asked, echoes every datagram to its sender (the latency test
 * puts it behind the tunnel as an echo target). It receives in batches with a large receive buffer
 * (see `bench/libc_udp.ts`), so it is not what loses datagrams. Prints `listening on PORT` to stderr
 * once ready; driven by `bench/tunnel_bench.ts` over stdin/stdout (see `bench/helper_protocol.ts`):
 *
 *     {"op":"count","streamId":7}   → {"received":29990,"duplicates":0,"foreign":0}
 *     {"op":"echo","on":true}       → {"echo":true}
 *     {"op":"forget","streamId":7}  → {"forgotten":true}
 */

import { readDatagram, serveRequests } from "./helper_protocol.ts";
import { LibcUdpSocket, SLOT_BYTES } from "./libc_udp.ts";

/** Sequence numbers above this are not counted, so no datagram makes the sink allocate much. */
const MAX_COUNTED_SEQUENCE = 2 ** 27;
/** Asked of the kernel; it grants at most `net.core.rmem_max` (doubled). */
const RECEIVE_BUFFER_BYTES = 16 << 20;
/** A receive returns empty after this long, so closing is noticed. */
const RECEIVE_TIMEOUT_MS = 100;

/** The arrivals of one stream: one bit per sequence number. */
class StreamTally {
  received = 0;
  duplicates = 0;
  #seen = new Uint8Array(1 << 14);

  record(sequence: number): void {
    const byte = sequence >>> 3;
    if (byte >= this.#seen.length) {
      let length = this.#seen.length;
      while (length <= byte) length *= 2;
      const grown = new Uint8Array(length);
      grown.set(this.#seen);
      this.#seen = grown;
    }
    const bit = 1 << (sequence & 7);
    if ((this.#seen[byte] & bit) !== 0) {
      this.duplicates++;
      return;
    }
    this.#seen[byte] |= bit;
    this.received++;
  }
}

const socket = LibcUdpSocket.open({
  port: Number(Deno.args[0] ?? 0),
  receiveBufferBytes: RECEIVE_BUFFER_BYTES,
  sendBufferBytes: RECEIVE_BUFFER_BYTES,
  receiveTimeoutMs: RECEIVE_TIMEOUT_MS,
});
const streams = new Map<number, StreamTally>();
let foreign = 0;
let echo = false;
let stopping = false;

async function receiveLoop(): Promise<void> {
  const received = socket.received;
  while (!stopping) {
    const count = await socket.receiveBatch();
    for (let index = 0; index < count; index++) {
      const offset = index * SLOT_BYTES;
      const length = Math.min(SLOT_BYTES, socket.receivedLength(index));
      const header = readDatagram(received.subarray(offset, offset + length));
      if (header === undefined || header.sequence > MAX_COUNTED_SEQUENCE) {
        foreign++;
        continue;
      }
      let tally = streams.get(header.streamId);
      if (tally === undefined) streams.set(header.streamId, tally = new StreamTally());
      tally.record(header.sequence);
    }
    if (echo && count > 0) socket.echoBatch(count);
  }
}

function handle(request: Record<string, unknown>): unknown {
  switch (request.op) {
    case "count": {
      const tally = streams.get(request.streamId as number);
      return { received: tally?.received ?? 0, duplicates: tally?.duplicates ?? 0, foreign };
    }
    case "echo":
      echo = request.on === true;
      return { echo };
    case "forget":
      return { forgotten: streams.delete(request.streamId as number) };
    default:
      throw new Error(`sink: unknown request ${JSON.stringify(request)}`);
  }
}

if (import.meta.main) {
  const receiving = receiveLoop();
  console.error(`listening on ${socket.port}`);
  try {
    await serveRequests(handle);
  } finally {
    stopping = true;
    await receiving;
    socket.close();
  }
}
