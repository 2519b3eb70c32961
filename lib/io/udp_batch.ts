/**
 * A faster {@link DatagramTransport} for Linux (x86_64, aarch64): a socket made by
 * `Deno.listenDatagram` and driven through libc with Deno's FFI, moving up to
 * {@link BATCH_DATAGRAMS} datagrams per system call (`recvmmsg`, `sendmmsg`), with larger kernel
 * buffers (`SO_RCVBUF`, `SO_SNDBUF`). `bindUdp` in `lib/io/udp.ts` picks it when asked to (see `udpIo`).
 *
 * Why a Deno socket underneath: waiting is what Deno does well. A `receive` first takes what is
 * already queued in the kernel, without waiting (`recvmmsg` with `MSG_DONTWAIT`, a synchronous FFI
 * call); only when nothing is there does it fall back to Deno's own `receive`, which waits on Deno's
 * event loop (no thread per socket, no hop between threads, so no added latency) and delivers that
 * one datagram. Closing is Deno's too: a pending receive rejects with `BadResource`, and no call is
 * left running. The socket's descriptor is found once, at bind, by asking `getsockname` of the
 * descriptors in use for the address Deno reports.
 *
 * Receiving: the first datagram of a batch goes straight into the caller's buffer (no copy); the
 * rest wait in slots of this socket and are copied into the caller's buffer by the next `receive`
 * calls. Every slot has room for the largest UDP datagram ({@link SLOT_BYTES}), mapped with `mmap`
 * so that the kernel gives it pages only where datagrams are written (`message_vector.ts` says
 * more). The slot area starts at 8 slots and doubles, up to {@link BATCH_DATAGRAMS}, whenever a
 * batch fills it; it is unmapped when the socket closes (or, for one left open, when it is
 * garbage-collected).
 *
 * Sending: `send` queues the datagram (its bytes are read by the kernel when the queue is flushed,
 * so the buffer must stay unchanged until the promise settles, as with Deno's own socket); the queue
 * is flushed with one `sendmmsg` in a microtask, or at once when {@link BATCH_DATAGRAMS} are queued.
 * What the kernel refuses for want of buffer space (EAGAIN), and destinations that are not IP
 * addresses of the socket's family, go through Deno's `send`, which waits or reports as it does.
 *
 * Senders' addresses are kept as one object per peer (up to {@link ADDRESS_CACHE_ENTRIES} per
 * socket), so a batch allocates no address; a v4 address sent from an IPv6 socket goes out as
 * `::ffff:a.b.c.d`. Errors are Deno's own: a datagram the kernel refuses, and a receive that fails,
 * are handed to Deno's `send` and `receive`, which report them (errno read through FFI is only a
 * hint, see `errno`), so `classifySendError` reads them alike.
 *
 * Beside it: the libc binding and errno (`libc.ts`), socket addresses in libc's bytes
 * (`sockaddr.ts`), and the message vectors with their slot memory (`message_vector.ts`).
 */

import type { HostPort } from "../base/address.ts";
import type { DatagramTransport, UdpAddress } from "./transport.ts";
import {
  addressOf,
  EAGAIN,
  EBADF,
  EINTR,
  errno,
  type Libc,
  libcUnavailable,
  loadedLibc,
  MSG_DONTWAIT,
  MSG_TRUNC,
  SO_RCVBUF,
  SO_SNDBUF,
  SOL_SOCKET,
} from "./libc.ts";
import {
  AF_INET,
  AF_INET6,
  decodeSockaddr,
  encodeSockaddr,
  parseIPv4,
  SOCKADDR_BYTES,
  SOCKADDR_IN_BYTES,
} from "./sockaddr.ts";
import {
  KEPT_SLOT_BYTES,
  MessageVector,
  MMSGHDR_BYTES,
  ReceiveVector,
  SLOT_BYTES,
} from "./message_vector.ts";

/** The most datagrams one `recvmmsg` or `sendmmsg` call moves. */
export const BATCH_DATAGRAMS = 64;
/** `SO_RCVBUF` and `SO_SNDBUF` asked for (the kernel doubles it, capped by `net.core.*mem_max`). */
export const SOCKET_BUFFER_BYTES = 4 << 20;
/** Sender addresses remembered per socket; the cache starts over when it is full. */
export const ADDRESS_CACHE_ENTRIES = 1024;

const INITIAL_SLOTS = 8;
/** Batches taken without yielding to the event loop, at most (see `#tryReceive`). */
const BATCHES_BEFORE_YIELD = 4;
/** How far {@link findSocketFd} looks, and how many closed descriptors in a row end its search. */
const MAX_SCANNED_FD = 1 << 20;
const MAX_UNUSED_FDS_IN_A_ROW = 1024;

/** Why the batched socket cannot be used in this process, or undefined when it can. */
export function batchedUdpUnavailable(): string | undefined {
  return libcUnavailable();
}

/** The encoded forms of one destination, by socket family, kept beside the caller's object. */
interface EncodedAddress {
  hostname: string;
  port: number;
  v4?: Uint8Array;
  v6?: Uint8Array;
}

/** Destinations encoded once each: the drivers keep one address object per peer. */
const encodedAddresses = new WeakMap<UdpAddress, EncodedAddress>();

/** A datagram waiting for the next `sendmmsg`, and the promise `send` returned for it. */
interface QueuedSend {
  readonly datagram: Uint8Array;
  readonly to: UdpAddress;
  readonly resolve: (bytes: number) => void;
  readonly reject: (error: unknown) => void;
}

/** A cached sender: its address object and the raw `sockaddr` it came from. */
interface KnownSender {
  readonly address: UdpAddress;
  readonly raw: Uint8Array;
}

/**
 * The file descriptor of the socket bound to `address` (a Deno socket just made), found by asking
 * `getsockname` of the descriptors in use; undefined when none matches.
 */
function findSocketFd(symbols: Libc, address: UdpAddress, family: number): number | undefined {
  const wanted = new Uint8Array(SOCKADDR_BYTES);
  const wantedLength = encodeSockaddr(wanted, address.hostname, address.port, family);
  if (wantedLength <= 0) return undefined;
  const name = new Uint8Array(SOCKADDR_BYTES);
  const length = new Uint8Array(4);
  const lengthView = new DataView(length.buffer);
  let found: number | undefined;
  let unused = 0;
  for (let fd = 3; fd < MAX_SCANNED_FD && unused < MAX_UNUSED_FDS_IN_A_ROW; fd++) {
    lengthView.setUint32(0, SOCKADDR_BYTES, true);
    if (symbols.getsockname(fd, name, length) !== 0) {
      if (errno() === EBADF) unused++;
      else unused = 0;
      continue;
    }
    unused = 0;
    if (lengthView.getUint32(0, true) !== wantedLength) continue;
    let same = true;
    // The family and port, then the address (a sockaddr_in6's flow info may differ).
    for (let at = 0; at < 4 && same; at++) same = name[at] === wanted[at];
    const [from, to] = family === AF_INET ? [4, 8] : [8, 24];
    for (let at = from; at < to && same; at++) same = name[at] === wanted[at];
    if (!same) continue;
    if (found !== undefined) return undefined; // two alike: not sure which is ours
    found = fd;
  }
  return found;
}

/**
 * A UDP socket made by Deno and driven through libc, batching sends and receives. Made by
 * {@link bindBatchedUdp}.
 */
export class BatchedUdpSocket implements DatagramTransport {
  readonly fd: number;
  readonly localAddress: UdpAddress;
  /** Datagrams cut short by the kernel (longer than a slot: cannot happen with UDP's limits). */
  truncatedDatagrams = 0;
  readonly #conn: Deno.DatagramConn;
  readonly #libc: Libc;
  readonly #family: number;
  #receiveVector: ReceiveVector;
  /** The vector the current batch lives in, while a larger one waits for the next batch. */
  #pendingVector: ReceiveVector | undefined;
  /** Received datagrams not handed out yet: indexes `#nextIndex` to `#receivedCount - 1`. */
  #receivedCount = 0;
  #nextIndex = 0;
  #lastBuffer: Uint8Array | undefined;
  #lastBufferBase = 0n;
  readonly #senders = new Map<number, KnownSender>();
  readonly #sendVector = new MessageVector(BATCH_DATAGRAMS);
  readonly #queued: QueuedSend[] = [];
  #flushScheduled = false;
  #closed = false;
  readonly #flush = () => {
    this.#flushScheduled = false;
    this.#flushQueue();
  };

  private constructor(conn: Deno.DatagramConn, fd: number, family: number, libc: Libc) {
    this.#conn = conn;
    this.fd = fd;
    this.#family = family;
    this.localAddress = conn.addr as UdpAddress;
    this.#libc = libc;
    this.#receiveVector = new ReceiveVector(libc, INITIAL_SLOTS);
  }

  /**
   * Binds a socket; throws Deno's error when the address is taken or not local, and a TypeError
   * when the host is not an IP address or the socket cannot be driven through libc.
   */
  static bind(address: HostPort): BatchedUdpSocket {
    const symbols = loadedLibc();
    const name = new Uint8Array(SOCKADDR_BYTES);
    const v6 = !parseIPv4(address.hostname) && address.hostname !== "localhost";
    const family = v6 ? AF_INET6 : AF_INET;
    if (encodeSockaddr(name, address.hostname, address.port, family) <= 0) {
      throw new TypeError(`not an IP address: ${address.hostname}`);
    }
    const conn = Deno.listenDatagram({
      transport: "udp",
      hostname: address.hostname,
      port: address.port,
    });
    const fd = findSocketFd(symbols, conn.addr as UdpAddress, family);
    if (fd === undefined) {
      conn.close();
      throw new TypeError("the new socket's file descriptor was not found");
    }
    const value = new Uint8Array(4);
    new DataView(value.buffer).setInt32(0, SOCKET_BUFFER_BYTES, true);
    // Best effort: the kernel caps what it grants.
    symbols.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, value, 4);
    symbols.setsockopt(fd, SOL_SOCKET, SO_SNDBUF, value, 4);
    return new BatchedUdpSocket(conn, fd, family, symbols);
  }

  #batchesInARow = 0;

  receive(buffer: Uint8Array): Promise<[Uint8Array, UdpAddress]> {
    if (this.#closed) return Promise.reject(new Deno.errors.BadResource("socket closed"));
    try {
      const received = this.#tryReceive(buffer);
      if (received !== undefined) return Promise.resolve(received);
    } catch (error) {
      return Promise.reject(error);
    }
    // Nothing waiting: Deno's own receive waits for it (on its event loop, no thread involved).
    return this.#conn.receive(buffer) as Promise<[Uint8Array, UdpAddress]>;
  }

  send(datagram: Uint8Array, to: UdpAddress): Promise<number> {
    if (this.#closed) return Promise.reject(new Deno.errors.BadResource("socket closed"));
    return new Promise((resolve, reject) => this.#enqueue({ datagram, to, resolve, reject }));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const queued of this.#queued.splice(0)) {
      queued.reject(new Deno.errors.BadResource("socket closed"));
    }
    this.#receiveVector.free();
    this.#pendingVector?.free();
    this.#pendingVector = undefined;
    this.#receivedCount = this.#nextIndex = 0;
    try {
      this.#conn.close();
    } catch (error) {
      if (!(error instanceof Deno.errors.BadResource)) throw error;
    }
  }

  /** The next datagram: from the current batch, else from a new one; undefined when none waits. */
  #tryReceive(buffer: Uint8Array): [Uint8Array, UdpAddress] | undefined {
    while (true) {
      while (this.#nextIndex < this.#receivedCount) {
        const received = this.#take(buffer);
        if (received !== undefined) return received;
      }
      // Under a steady backlog every receive would resolve at once and the event loop would never
      // turn (timers, other sockets, a flood at the listening port starving replies): every few
      // batches, wait through Deno's receive instead, which yields.
      if (++this.#batchesInARow > BATCHES_BEFORE_YIELD) {
        this.#batchesInARow = 0;
        return undefined;
      }
      if (this.#receiveBatch(buffer) === 0) {
        this.#batchesInARow = 0;
        return undefined;
      }
    }
  }

  /** Runs one `recvmmsg`; returns how many arrived (0: none waiting). Throws a receive error. */
  #receiveBatch(buffer: Uint8Array): number {
    const vector = this.#receiveVector;
    if (buffer !== this.#lastBuffer) {
      this.#lastBuffer = buffer;
      this.#lastBufferBase = addressOf(buffer);
    }
    vector.setIovec(0, this.#lastBufferBase, buffer.byteLength);
    const capacity = vector.capacity;
    // The kernel shortened the name lengths of the messages it filled last time, and only those.
    for (let index = 0; index < vector.namesFilled; index++) {
      vector.setNameLength(index, SOCKADDR_BYTES);
    }
    let count: number;
    do {
      count = this.#libc.recvmmsg(this.fd, vector.headers, capacity, MSG_DONTWAIT, null);
    } while (count < 0 && errno() === EINTR);
    vector.namesFilled = Math.max(0, count);
    // Nothing queued (EAGAIN), or an error: either way Deno's receive takes over, and it waits or
    // reports the error itself. errno is only a hint here (see `errno`), never the error reported.
    if (count < 0) return 0;
    this.#receivedCount = count;
    this.#nextIndex = 0;
    if (count === capacity && capacity < BATCH_DATAGRAMS) {
      let larger: ReceiveVector | undefined;
      try {
        larger = new ReceiveVector(this.#libc, capacity * 2);
      } catch {
        // No memory for more slots: carry on with these.
      }
      if (larger !== undefined) {
        this.#receiveVector = larger; // used once this batch's slots are handed out
        this.#pendingVector = vector;
      }
    }
    return count;
  }

  /**
   * Hands out the next received datagram, copied into `buffer` unless it is already there;
   * undefined when the kernel cut it short (counted; UDP's limits make that impossible).
   */
  #take(buffer: Uint8Array): [Uint8Array, UdpAddress] | undefined {
    const pending = this.#pendingVector;
    const vector = pending ?? this.#receiveVector;
    const index = this.#nextIndex++;
    let taken: [Uint8Array, UdpAddress] | undefined;
    if (index > 0 && (vector.flags(index) & MSG_TRUNC) !== 0) {
      this.truncatedDatagrams++;
    } else {
      const datagramBytes = vector.length(index);
      // A caller's buffer shorter than the datagram gets its start, as with Deno's own receive.
      const length = Math.min(datagramBytes, buffer.byteLength);
      if (index > 0) {
        const start = index * SLOT_BYTES;
        buffer.set(vector.slots.subarray(start, start + length));
        if (datagramBytes > KEPT_SLOT_BYTES) vector.release(index);
      }
      taken = [buffer.subarray(0, length), this.#sender(vector.names, index * SOCKADDR_BYTES)];
    }
    if (pending !== undefined && this.#nextIndex >= this.#receivedCount) {
      // The batch held in the smaller vector is handed out: its slots are done with.
      this.#pendingVector = undefined;
      pending.free();
    }
    return taken;
  }

  /** The address object of the sender whose `sockaddr` is at `names[offset]`, made once per peer. */
  #sender(names: Uint8Array, offset: number): UdpAddress {
    const family = names[offset];
    const rawBytes = family === AF_INET ? SOCKADDR_IN_BYTES : SOCKADDR_BYTES;
    // The port, then the address bytes, mixed; collisions are told apart by the raw bytes.
    let key = (names[offset + 2] << 8) | names[offset + 3];
    const first = family === AF_INET ? 4 : 8;
    const last = family === AF_INET ? 8 : 24;
    for (let at = first; at < last; at++) key = (Math.imul(key, 31) + names[offset + at]) | 0;
    const known = this.#senders.get(key);
    if (known !== undefined && known.raw.length === rawBytes) {
      let same = true;
      for (let at = 0; at < rawBytes && same; at++) same = known.raw[at] === names[offset + at];
      if (same) return known.address;
    }
    if (this.#senders.size >= ADDRESS_CACHE_ENTRIES) this.#senders.clear();
    const raw = names.slice(offset, offset + rawBytes);
    const address = decodeSockaddr(raw, 0);
    this.#senders.set(key, { address, raw });
    const encoded: EncodedAddress = { hostname: address.hostname, port: address.port };
    if (family === AF_INET) encoded.v4 = raw;
    else encoded.v6 = raw;
    encodedAddresses.set(address, encoded);
    return address;
  }

  /** The `sockaddr` for `to` on this socket's family: a cached one, or undefined when invalid. */
  #nameFor(to: UdpAddress): Uint8Array | undefined {
    let encoded = encodedAddresses.get(to);
    if (encoded === undefined || encoded.hostname !== to.hostname || encoded.port !== to.port) {
      encoded = { hostname: to.hostname, port: to.port };
      encodedAddresses.set(to, encoded);
    }
    const v6 = this.#family === AF_INET6;
    let name = v6 ? encoded.v6 : encoded.v4;
    if (name === undefined) {
      const bytes = new Uint8Array(SOCKADDR_BYTES);
      const length = encodeSockaddr(bytes, to.hostname, to.port, this.#family);
      if (length <= 0) return undefined;
      name = bytes.subarray(0, length);
      if (v6) encoded.v6 = name;
      else encoded.v4 = name;
    }
    return name;
  }

  #enqueue(queued: QueuedSend): void {
    const name = this.#nameFor(queued.to);
    if (name === undefined) {
      // A host name, or an IPv6 destination on an IPv4 socket: Deno's send says what is wrong.
      this.#sendWithDeno(queued);
      return;
    }
    const index = this.#queued.length;
    this.#queued.push(queued);
    const vector = this.#sendVector;
    const datagram = queued.datagram;
    vector.names.set(name, index * SOCKADDR_BYTES);
    vector.setNameLength(index, name.length);
    vector.setIovec(
      index,
      datagram.byteLength === 0 ? 0n : addressOf(datagram),
      datagram.byteLength,
    );
    if (this.#queued.length === BATCH_DATAGRAMS) {
      this.#flushQueue();
    } else if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(this.#flush);
    }
  }

  #sendWithDeno(queued: QueuedSend): void {
    this.#conn.send(queued.datagram, queued.to).then(queued.resolve, queued.reject);
  }

  /** Sends what is queued with as few `sendmmsg` calls as the kernel allows. */
  #flushQueue(): void {
    const queued = this.#queued;
    if (this.#closed || queued.length === 0) return;
    const vector = this.#sendVector;
    let done = 0;
    while (done < queued.length) {
      const headers = done === 0 ? vector.headers : vector.headers.subarray(done * MMSGHDR_BYTES);
      const count = this.#libc.sendmmsg(this.fd, headers, queued.length - done, MSG_DONTWAIT);
      if (count > 0) {
        for (let index = done; index < done + count; index++) {
          queued[index].resolve(vector.length(index));
        }
        done += count;
        continue;
      }
      const code = errno();
      if (code === EINTR) continue;
      if (code === EAGAIN) {
        // The kernel's send buffer is full: Deno's sends wait until it has room.
        for (let index = done; index < queued.length; index++) this.#sendWithDeno(queued[index]);
        break;
      }
      // The first datagram failed (too large, no route, not permitted…). Deno's send of it reports
      // the error exactly as Deno's socket would; the rest go on in a batch.
      this.#sendWithDeno(queued[done]);
      done++;
    }
    queued.length = 0;
  }
}

/** Binds a batched UDP socket (throws when it cannot; see {@link batchedUdpUnavailable}). */
export function bindBatchedUdp(address: HostPort): DatagramTransport {
  return BatchedUdpSocket.bind(address);
}
