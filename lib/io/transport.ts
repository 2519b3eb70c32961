/**
 * The socket seam. Every driver talks to the network through {@link DatagramTransport}; the real one
 * wraps `Deno.listenDatagram` (`udp.ts`), the batched one drives libc through FFI (`udp_batch.ts`),
 * and tests use the in-memory pair (`memory_transport.ts`). The drivers cannot tell them apart.
 *
 * Deno reads a send buffer when the send actually runs, not when `send` is called: a buffer handed to
 * `send` must not be changed until its promise settles.
 */

import type { HostPort, UdpEndpoint } from "../base/address.ts";

/** The largest UDP payload over IPv4 (65535 − 20 − 8). */
export const MAX_UDP_PAYLOAD_BYTES = 65507;

/**
 * A UDP address as the sockets take and give it (Deno's own `NetAddr` has this shape); kept as one
 * object per peer to avoid re-allocating.
 */
export type UdpAddress = UdpEndpoint;

/** A bound UDP socket. */
export interface DatagramTransport {
  /** The address the socket is bound to (port resolved when 0 was asked for). */
  readonly localAddress: UdpAddress;
  /** Sends one datagram. The buffer must stay unchanged until the promise settles. */
  send(datagram: Uint8Array, to: UdpAddress): Promise<number>;
  /** Receives one datagram into `buffer`; returns a view of it and the sender's address. */
  receive(buffer: Uint8Array): Promise<[Uint8Array, UdpAddress]>;
  /** Closes the socket; a pending `receive` rejects. */
  close(): void;
}

/**
 * Opens a socket bound to `address` (port 0: any free port). The drivers take one as their `bind`
 * option: the programs pass `bindUdp` (`udp.ts`), tests a `MemoryNetwork`'s `bind`
 * (`memory_transport.ts`). Errors about the address (in use, not local) are thrown.
 */
export type BindTransport = (address: HostPort) => DatagramTransport;

/** Makes the address object Deno's UDP calls expect. */
export function udpAddress(address: HostPort): UdpAddress {
  return { transport: "udp", hostname: address.hostname, port: address.port };
}
