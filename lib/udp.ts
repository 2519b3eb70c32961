/**
 * The socket seam. Every driver talks to the network through {@link DatagramTransport}; the real one
 * wraps `Deno.listenDatagram`, and tests may substitute an in-memory one. On Linux with FFI
 * permitted, {@link bindUdp} may pick the batched socket of `lib/udp_batch.ts` instead (see
 * {@link udpIo}); the drivers cannot tell the difference.
 *
 * Deno reads a send buffer when the send actually runs, not when `send` is called: a buffer handed to
 * `send` must not be changed until its promise settles.
 */

import type { HostPort } from "./address.ts";
import { batchedUdpUnavailable, bindBatchedUdp } from "./udp_batch.ts";
import { chooseImplementation } from "./implementation_choice.ts";

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

/** Which socket implementation {@link bindUdp} uses: Deno's own, or batched through libc. */
export type UdpIo = "deno" | "batched";

/** The environment variable that overrides {@link udpIo}'s choice (`deno` or `batched`). */
export const UDP_IO_ENV_VAR = "MPTUNNEL_IO";
/**
 * What {@link udpIo} picks when the environment does not say: the batched layer, which moves 2.8–3.4×
 * the datagrams per CPU of Deno's sockets in `deno task bench` (it falls back to them by itself
 * wherever it cannot run, e.g. without `--allow-ffi`).
 */
export const DEFAULT_UDP_IO: UdpIo = "batched";

let chosenIo: UdpIo | undefined;

/**
 * The socket implementation {@link bindUdp} uses in this process, decided once: `MPTUNNEL_IO` when
 * set (and readable), else {@link DEFAULT_UDP_IO}; "batched" only where it can run (Linux x86_64 or
 * aarch64 with `--allow-ffi`), else "deno" with a warning when it was asked for explicitly.
 */
export function udpIo(): UdpIo {
  chosenIo ??= chooseImplementation<"batched", "deno">({
    envVar: UDP_IO_ENV_VAR,
    fast: "batched",
    portable: "deno",
    defaultChoice: DEFAULT_UDP_IO,
    fastUnavailable: batchedUdpUnavailable,
    portableDescription: "Deno's sockets",
  });
  return chosenIo;
}

/** Forgets {@link udpIo}'s choice (for tests that change the environment). */
export function resetUdpIo(): void {
  chosenIo = undefined;
}

/**
 * Binds a UDP socket: batched through libc when {@link udpIo} says so, else (and whenever the
 * batched socket cannot be made for a reason other than the address) with `Deno.listenDatagram`.
 * Errors about the address itself (in use, not local, not permitted) are thrown either way.
 */
export function bindUdp(address: HostPort): DatagramTransport {
  if (udpIo() === "batched") {
    try {
      return bindBatchedUdp(address);
    } catch (error) {
      if (
        error instanceof Deno.errors.AddrInUse || error instanceof Deno.errors.AddrNotAvailable ||
        error instanceof Deno.errors.PermissionDenied
      ) throw error;
      // A host name, or a libc that misbehaves: Deno's socket handles it.
    }
  }
  return bindDenoUdp(address);
}

/** Binds a UDP socket with `Deno.listenDatagram`. */
export function bindDenoUdp(address: HostPort): DatagramTransport {
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
