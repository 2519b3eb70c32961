/**
 * The socket seam. Every driver talks to the network through {@link DatagramTransport}; the real one
 * wraps `Deno.listenDatagram`, and tests may substitute an in-memory one. A faster implementation
 * (batching through FFI) can plug in behind the same interface later.
 *
 * Deno reads a send buffer when the send actually runs, not when `send` is called: a buffer handed to
 * `send` must not be changed until its promise settles.
 */

import type { HostPort } from "./address.ts";

/** The largest UDP payload over IPv4 (65535 − 20 − 8). */
export const MAX_UDP_PAYLOAD_BYTES = 65507;

/** A UDP address as Deno's socket calls take it; kept as one object per peer to avoid re-allocating. */
export type UdpAddress = Deno.NetAddr;

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

/** Makes the address object Deno's UDP calls expect. */
export function udpAddress(address: HostPort): UdpAddress {
  return { transport: "udp", hostname: address.hostname, port: address.port };
}

/** Binds a UDP socket with `Deno.listenDatagram`. */
export function bindUdp(address: HostPort): DatagramTransport {
  const conn = Deno.listenDatagram({
    transport: "udp",
    hostname: address.hostname,
    port: address.port,
  });
  return {
    localAddress: conn.addr as UdpAddress,
    send: (datagram, to) => conn.send(datagram, to),
    receive: (buffer) => conn.receive(buffer) as Promise<[Uint8Array, UdpAddress]>,
    close: () => {
      try {
        conn.close();
      } catch (error) {
        if (!(error instanceof Deno.errors.BadResource)) throw error;
      }
    },
  };
}

/** Why a send failed, in the words the path counters use. */
export type SendErrorKind =
  | "refused"
  | "unreachable"
  | "not-permitted"
  | "no-address"
  | "too-large"
  | "no-buffer"
  | "other";

/**
 * Classifies a send error so the caller can count it on the path instead of stopping.
 * Programming errors (a closed socket, a bad argument) are not send errors and return undefined.
 */
export function classifySendError(error: unknown): SendErrorKind | undefined {
  if (!(error instanceof Error)) return undefined;
  if (error instanceof Deno.errors.BadResource || error instanceof TypeError) return undefined;
  if (error instanceof Deno.errors.ConnectionRefused) return "refused";
  if (error instanceof Deno.errors.PermissionDenied) return "not-permitted";
  if (error instanceof Deno.errors.AddrNotAvailable) return "no-address";
  const message = error.message;
  if (/os error 90\b|too long/i.test(message)) return "too-large";
  if (/os error (101|113|65)\b|unreachable|no route/i.test(message)) return "unreachable";
  if (/os error 1\b|not permitted/i.test(message)) return "not-permitted";
  if (/os error 99\b|cannot assign/i.test(message)) return "no-address";
  if (/os error 105\b|no buffer space/i.test(message)) return "no-buffer";
  if (/os error 111\b|refused/i.test(message)) return "refused";
  return "other";
}
