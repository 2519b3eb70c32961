/**
 * An in-memory network behind the {@link DatagramTransport} seam, for tests: the drivers run on it
 * unchanged, with no socket, no port taken on the machine and no kernel buffer in the way.
 *
 * It behaves as UDP on loopback does, in what the drivers can see:
 * - `bind` with port 0 gives each socket a port of its own; binding an address and port already
 *   taken (or the wildcard `0.0.0.0`/`::` on a taken port, or a port taken by the wildcard) throws
 *   `Deno.errors.AddrInUse`, as Deno does.
 * - `send` copies the datagram to the socket bound at the destination (or to the wildcard socket
 *   of its family on that port); when there is none, or its queue is full, the datagram is dropped
 *   without a word, as UDP drops it.
 * - A socket bound to a wildcard sends from the destination's address, as the kernel picks the
 *   loopback address for loopback traffic, so replies find their way back to it.
 * - `close` makes a pending and every later `receive` (and `send`) reject with
 *   `Deno.errors.BadResource`, the error the drivers already take as "this socket was closed".
 *
 * Not modelled: IPv4 arriving on a dual-stack `::` socket, MTU limits, send errors.
 */

import { formatHostPort, type HostPort, isIPv6Literal } from "../base/address.ts";
import type { DatagramTransport, UdpAddress } from "./transport.ts";

/** The first port handed out for port 0 (the usual start of Linux's ephemeral range). */
const FIRST_EPHEMERAL_PORT = 32768;
/** Datagrams a socket holds unread before new ones are dropped, by default. */
export const DEFAULT_MEMORY_QUEUE_DATAGRAMS = 4096;

/** Options of {@link MemoryNetwork}. */
export interface MemoryNetworkOptions {
  /** Datagrams each socket holds unread before it drops new ones (default 4096). */
  readonly queueDatagrams?: number;
}

/**
 * A network in this process. Its `bind` is the transport factory the drivers take.
 *
 * @example
 * ```ts
 * import { MemoryNetwork } from "./memory_transport.ts";
 * const network = new MemoryNetwork();
 * const a = network.bind({ hostname: "127.0.0.1", port: 0 });
 * const b = network.bind({ hostname: "127.0.0.1", port: 0 });
 * await a.send(new Uint8Array([1, 2, 3]), b.localAddress);
 * const [datagram, from] = await b.receive(new Uint8Array(64));
 * console.log(datagram.length, from.port === a.localAddress.port); // 3 true
 * a.close();
 * b.close();
 * ```
 */
export class MemoryNetwork {
  readonly #sockets = new Map<string, MemorySocket>();
  readonly #queueDatagrams: number;
  #nextPort = FIRST_EPHEMERAL_PORT;
  /** Datagrams dropped because nobody was bound at the destination or its queue was full. */
  dropped = 0;

  constructor(options: MemoryNetworkOptions = {}) {
    this.#queueDatagrams = options.queueDatagrams ?? DEFAULT_MEMORY_QUEUE_DATAGRAMS;
  }

  /** Binds a socket on `address` (port 0: a free port); the drivers' `bind` option. */
  readonly bind = (address: HostPort): DatagramTransport => {
    const port = address.port === 0 ? this.#freePort(address.hostname) : address.port;
    if (this.#taken(address.hostname, port)) {
      throw new Deno.errors.AddrInUse(
        `Address already in use (os error 98): ${formatHostPort({ ...address, port })}`,
      );
    }
    const socket = new MemorySocket(this, address.hostname, port, this.#queueDatagrams);
    this.#sockets.set(key(address.hostname, port), socket);
    return socket;
  };

  /** Sockets bound now. */
  get boundCount(): number {
    return this.#sockets.size;
  }

  /** Hands a copy of `datagram` to whoever is bound at `to`, else drops it. */
  deliver(datagram: Uint8Array, from: UdpAddress, to: UdpAddress): void {
    const socket = this.#sockets.get(key(to.hostname, to.port)) ??
      this.#sockets.get(key(wildcardOf(to.hostname), to.port));
    if (socket === undefined || !socket.enqueue(datagram.slice(), from)) this.dropped++;
  }

  /** Forgets a closed socket, so its address can be bound again. */
  release(socket: MemorySocket): void {
    const socketKey = key(socket.localAddress.hostname, socket.localAddress.port);
    if (this.#sockets.get(socketKey) === socket) this.#sockets.delete(socketKey);
  }

  #taken(hostname: string, port: number): boolean {
    if (this.#sockets.has(key(hostname, port))) return true;
    if (isWildcard(hostname)) {
      for (const socket of this.#sockets.values()) {
        const bound = socket.localAddress;
        if (bound.port === port && wildcardOf(bound.hostname) === hostname) return true;
      }
      return false;
    }
    return this.#sockets.has(key(wildcardOf(hostname), port));
  }

  #freePort(hostname: string): number {
    for (;;) {
      const port = this.#nextPort;
      this.#nextPort = port >= 65535 ? FIRST_EPHEMERAL_PORT : port + 1;
      if (!this.#taken(hostname, port)) return port;
    }
  }
}

/** One bound socket of a {@link MemoryNetwork}. */
class MemorySocket implements DatagramTransport {
  readonly localAddress: UdpAddress;
  readonly #network: MemoryNetwork;
  readonly #queueDatagrams: number;
  readonly #queue: { readonly datagram: Uint8Array; readonly from: UdpAddress }[] = [];
  readonly #waiting: {
    readonly buffer: Uint8Array;
    readonly resolve: (received: [Uint8Array, UdpAddress]) => void;
    readonly reject: (error: unknown) => void;
  }[] = [];
  #closed = false;

  constructor(network: MemoryNetwork, hostname: string, port: number, queueDatagrams: number) {
    this.#network = network;
    this.#queueDatagrams = queueDatagrams;
    this.localAddress = { transport: "udp", hostname, port };
  }

  send(datagram: Uint8Array, to: UdpAddress): Promise<number> {
    if (this.#closed) return Promise.reject(closedError());
    const bound = this.localAddress;
    const from: UdpAddress = {
      transport: "udp",
      hostname: isWildcard(bound.hostname) ? to.hostname : bound.hostname,
      port: bound.port,
    };
    this.#network.deliver(datagram, from, to);
    return Promise.resolve(datagram.length);
  }

  receive(buffer: Uint8Array): Promise<[Uint8Array, UdpAddress]> {
    if (this.#closed) return Promise.reject(closedError());
    const next = this.#queue.shift();
    if (next !== undefined) return Promise.resolve(copyInto(buffer, next.datagram, next.from));
    const { promise, resolve, reject } = Promise.withResolvers<[Uint8Array, UdpAddress]>();
    this.#waiting.push({ buffer, resolve, reject });
    return promise;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue.length = 0;
    this.#network.release(this);
    for (const waiter of this.#waiting.splice(0)) waiter.reject(closedError());
  }

  /** Takes a datagram in; false when it is dropped (closed, or the queue is full). */
  enqueue(datagram: Uint8Array, from: UdpAddress): boolean {
    if (this.#closed) return false;
    const waiter = this.#waiting.shift();
    if (waiter !== undefined) {
      waiter.resolve(copyInto(waiter.buffer, datagram, from));
      return true;
    }
    if (this.#queue.length >= this.#queueDatagrams) return false;
    this.#queue.push({ datagram, from });
    return true;
  }
}

/** What a receive gives: the datagram in the caller's buffer (cut to fit, as UDP truncates). */
function copyInto(
  buffer: Uint8Array,
  datagram: Uint8Array,
  from: UdpAddress,
): [Uint8Array, UdpAddress] {
  const length = Math.min(buffer.length, datagram.length);
  buffer.set(datagram.subarray(0, length));
  return [buffer.subarray(0, length), from];
}

function closedError(): Error {
  return new Deno.errors.BadResource("Bad resource ID");
}

function key(hostname: string, port: number): string {
  return `${hostname} ${port}`;
}

function isWildcard(hostname: string): boolean {
  return hostname === "0.0.0.0" || hostname === "::";
}

function wildcardOf(hostname: string): string {
  return isIPv6Literal(hostname) ? "::" : "0.0.0.0";
}
