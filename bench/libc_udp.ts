/**
 * A bare IPv4 UDP socket through libc (`Deno.dlopen`), for the benchmark's instruments only: the load
 * generator and the sink must be neither the bottleneck nor a large consumer of the two cores the
 * programs under test run on. With `sendmmsg`/`recvmmsg` they move up to {@link BATCH_DATAGRAMS}
 * datagrams per system call, and the sink asks for a large receive buffer (`SO_RCVBUF`), so a
 * moment without CPU does not lose what the programs delivered. The programs under test (mpclient,
 * mpserver, the relay) keep Deno's own sockets with the default buffers.
 *
 * Linux on a 64-bit architecture only (the `msghdr` layout below). Needs `--allow-ffi`.
 */

/** The most datagrams one `sendmmsg` or `recvmmsg` call moves. */
export const BATCH_DATAGRAMS = 64;
/** The room for each received datagram; longer ones are counted but cut. */
export const SLOT_BYTES = 2048;

const AF_INET = 2;
const SOCK_DGRAM = 2;
const SOL_SOCKET = 1;
const SO_SNDBUF = 7;
const SO_RCVBUF = 8;
const SO_RCVTIMEO = 20;
const MSG_WAITFORONE = 0x10000;
const EAGAIN = 11;
const EINTR = 4;

const SOCKADDR_IN_BYTES = 16;
const IOVEC_BYTES = 16;
/** `struct mmsghdr` on 64-bit Linux: a 56-byte `msghdr`, the 4-byte `msg_len`, padding. */
const MMSGHDR_BYTES = 64;
const MSG_LEN_OFFSET = 56;

const LIBC = Deno.dlopen("libc.so.6", {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "pointer", "u32"], result: "i32" },
  getsockname: { parameters: ["i32", "pointer", "pointer"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "pointer", "u32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  sendmmsg: { parameters: ["i32", "pointer", "u32", "i32"], result: "i32" },
  recvmmsg: {
    parameters: ["i32", "pointer", "u32", "i32", "pointer"],
    result: "i32",
    nonblocking: true,
  },
  __errno_location: { parameters: [], result: "pointer" },
});

function pointerTo(bytes: Uint8Array): Deno.PointerValue {
  return Deno.UnsafePointer.of(bytes as Uint8Array<ArrayBuffer>);
}

function addressOf(bytes: Uint8Array, offset = 0): bigint {
  return BigInt(Deno.UnsafePointer.value(pointerTo(bytes))) + BigInt(offset);
}

/** The last libc error number of this thread. */
function errno(): number {
  const location = LIBC.symbols.__errno_location();
  return new Deno.UnsafePointerView(location!).getInt32();
}

function encodeSockaddr(target: Uint8Array, hostname: string, port: number): void {
  const view = new DataView(target.buffer, target.byteOffset, SOCKADDR_IN_BYTES);
  view.setUint16(0, AF_INET, true);
  view.setUint16(2, port);
  hostname.split(".").forEach((part, index) => view.setUint8(4 + index, Number(part)));
}

/**
 * An array of `mmsghdr` whose entries point at their own slot of one data buffer and, optionally, of
 * one address buffer. The typed arrays are kept here so the memory the pointers name stays alive.
 */
class MessageVector {
  readonly headers = new Uint8Array(BATCH_DATAGRAMS * MMSGHDR_BYTES);
  readonly iovecs = new Uint8Array(BATCH_DATAGRAMS * IOVEC_BYTES);
  readonly headerView = new DataView(this.headers.buffer);
  readonly iovecView = new DataView(this.iovecs.buffer);
  readonly pointer = pointerTo(this.headers);
  /** The buffers the pointers name: referenced here so they live as long as the vector. */
  readonly buffers: readonly Uint8Array[];

  constructor(data: Uint8Array, slotBytes: number, names: Uint8Array, nameStrideBytes: number) {
    this.buffers = [data, names];
    for (let index = 0; index < BATCH_DATAGRAMS; index++) {
      const header = index * MMSGHDR_BYTES;
      const iovec = index * IOVEC_BYTES;
      this.iovecView.setBigUint64(iovec, addressOf(data, index * slotBytes), true);
      this.iovecView.setBigUint64(iovec + 8, BigInt(slotBytes), true);
      this.headerView.setBigUint64(header, addressOf(names, index * nameStrideBytes), true);
      this.headerView.setUint32(header + 8, SOCKADDR_IN_BYTES, true);
      this.headerView.setBigUint64(header + 16, addressOf(this.iovecs, iovec), true);
      this.headerView.setBigUint64(header + 24, 1n, true);
    }
  }

  /** Sets the length of datagram `index` (for sending). */
  setLength(index: number, bytes: number): void {
    this.iovecView.setBigUint64(index * IOVEC_BYTES + 8, BigInt(bytes), true);
  }

  /** The length of received datagram `index`. */
  receivedLength(index: number): number {
    return this.headerView.getUint32(index * MMSGHDR_BYTES + MSG_LEN_OFFSET, true);
  }

  /** Restores the address length the kernel overwrote on receive. */
  resetNameLength(index: number): void {
    this.headerView.setUint32(index * MMSGHDR_BYTES + 8, SOCKADDR_IN_BYTES, true);
  }
}

/** Options of {@link LibcUdpSocket.open}. */
export interface LibcUdpOptions {
  /** Port on 127.0.0.1 (0 for any free port). */
  readonly port: number;
  /** `SO_RCVBUF` to ask for (the kernel doubles it and caps it at `net.core.rmem_max`). */
  readonly receiveBufferBytes?: number;
  /** `SO_SNDBUF` to ask for. */
  readonly sendBufferBytes?: number;
  /** A receive waiting this long returns empty, so a closing socket is noticed. */
  readonly receiveTimeoutMs?: number;
}

/** A UDP socket on 127.0.0.1 moving datagrams in batches. */
export class LibcUdpSocket {
  readonly fd: number;
  readonly port: number;
  /** Received datagrams: slot `i` starts at `i * SLOT_BYTES`. */
  readonly received = new Uint8Array(BATCH_DATAGRAMS * SLOT_BYTES);
  /** Senders of the received datagrams (`sockaddr_in`, one per slot). */
  readonly #receivedFrom = new Uint8Array(BATCH_DATAGRAMS * SOCKADDR_IN_BYTES);
  readonly #receiveVector: MessageVector;
  /** Echoes: the received slots, back to their senders. */
  readonly #echoVector: MessageVector;
  #closed = false;

  private constructor(fd: number, port: number) {
    this.fd = fd;
    this.port = port;
    this.#receiveVector = new MessageVector(
      this.received,
      SLOT_BYTES,
      this.#receivedFrom,
      SOCKADDR_IN_BYTES,
    );
    this.#echoVector = new MessageVector(
      this.received,
      SLOT_BYTES,
      this.#receivedFrom,
      SOCKADDR_IN_BYTES,
    );
  }

  /** Opens and binds a socket on 127.0.0.1. */
  static open(options: LibcUdpOptions): LibcUdpSocket {
    const fd = LIBC.symbols.socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) throw new Error(`socket() failed: errno ${errno()}`);
    const setInt = (option: number, value: number) => {
      const bytes = new Uint8Array(4);
      new DataView(bytes.buffer).setInt32(0, value, true);
      if (LIBC.symbols.setsockopt(fd, SOL_SOCKET, option, pointerTo(bytes), 4) !== 0) {
        throw new Error(`setsockopt(${option}) failed: errno ${errno()}`);
      }
    };
    if (options.receiveBufferBytes !== undefined) setInt(SO_RCVBUF, options.receiveBufferBytes);
    if (options.sendBufferBytes !== undefined) setInt(SO_SNDBUF, options.sendBufferBytes);
    if (options.receiveTimeoutMs !== undefined) {
      const timeval = new Uint8Array(16);
      const view = new DataView(timeval.buffer);
      view.setBigInt64(0, BigInt(Math.floor(options.receiveTimeoutMs / 1000)), true);
      view.setBigInt64(8, BigInt((options.receiveTimeoutMs % 1000) * 1000), true);
      LIBC.symbols.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, pointerTo(timeval), 16);
    }
    const address = new Uint8Array(SOCKADDR_IN_BYTES);
    encodeSockaddr(address, "127.0.0.1", options.port);
    if (LIBC.symbols.bind(fd, pointerTo(address), SOCKADDR_IN_BYTES) !== 0) {
      const code = errno();
      LIBC.symbols.close(fd);
      throw new Error(`bind(127.0.0.1:${options.port}) failed: errno ${code}`);
    }
    const length = new Uint8Array(4);
    new DataView(length.buffer).setUint32(0, SOCKADDR_IN_BYTES, true);
    LIBC.symbols.getsockname(fd, pointerTo(address), pointerTo(length));
    return new LibcUdpSocket(fd, new DataView(address.buffer).getUint16(2));
  }

  /**
   * Waits for at least one datagram and takes up to {@link BATCH_DATAGRAMS}; returns how many
   * (0 when the receive timeout passed). Datagram `i` is `received` from `i * SLOT_BYTES`, of
   * {@link receivedLength}`(i)` bytes. Runs in a worker thread, so the event loop stays free.
   */
  async receiveBatch(): Promise<number> {
    for (let index = 0; index < BATCH_DATAGRAMS; index++) {
      this.#receiveVector.resetNameLength(index);
    }
    const count = await LIBC.symbols.recvmmsg(
      this.fd,
      this.#receiveVector.pointer,
      BATCH_DATAGRAMS,
      MSG_WAITFORONE,
      null,
    );
    if (count >= 0) return count;
    // errno is per thread, and the call ran on another one: a closed socket or a timeout alike
    // return nothing; the caller checks whether it is closing.
    return 0;
  }

  /** The length of received datagram `index` (cut to {@link SLOT_BYTES} in `received`). */
  receivedLength(index: number): number {
    return this.#receiveVector.receivedLength(index);
  }

  /** Sends the first `count` received datagrams back to their senders; returns how many went. */
  echoBatch(count: number): number {
    for (let index = 0; index < count; index++) {
      this.#echoVector.setLength(index, Math.min(SLOT_BYTES, this.receivedLength(index)));
    }
    return this.#sendAll(this.#echoVector, count);
  }

  /** Closes the socket (a receive in progress returns at its timeout). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    LIBC.symbols.close(this.fd);
  }

  /** Sends `count` entries of `vector`, retrying what a partial send left; returns how many went. */
  #sendAll(vector: MessageVector, count: number): number {
    let sent = 0;
    while (sent < count) {
      const result = LIBC.symbols.sendmmsg(
        this.fd,
        Deno.UnsafePointer.offset(vector.pointer!, sent * MMSGHDR_BYTES),
        count - sent,
        0,
      );
      if (result < 0) {
        const code = errno();
        if (code === EINTR || code === EAGAIN) continue;
        return sent; // e.g. ECONNREFUSED from an earlier ICMP: the rest of the batch is lost
      }
      sent += result;
    }
    return sent;
  }

  /** {@link BATCH_DATAGRAMS} buffers of `sizeBytes` each, sent to one address with one call. */
  batchTo(hostname: string, port: number, sizeBytes: number): DatagramBatch {
    const data = new Uint8Array(BATCH_DATAGRAMS * sizeBytes);
    const name = new Uint8Array(SOCKADDR_IN_BYTES);
    encodeSockaddr(name, hostname, port);
    const vector = new MessageVector(data, sizeBytes, name, 0);
    return { data, sizeBytes, send: (count) => this.#sendAll(vector, count) };
  }
}

/** Datagram buffers of one size, to one address, sent together. */
export interface DatagramBatch {
  /** Datagram `i` is `data` from `i * sizeBytes`. */
  readonly data: Uint8Array;
  readonly sizeBytes: number;
  /** Sends the first `count` (at most {@link BATCH_DATAGRAMS}) datagrams; returns how many went. */
  send(count: number): number;
}
