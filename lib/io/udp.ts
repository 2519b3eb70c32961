/**
 * Real UDP sockets behind the {@link DatagramTransport} seam: Deno's own `listenDatagram`, or, on
 * Linux with FFI permitted, the batched socket of `udp_batch.ts` (see {@link udpIo}), and the
 * classification of their send errors into the path counters' words.
 */

import type { HostPort } from "../base/address.ts";
import type { SendErrorKind } from "../path/send_error.ts";
import type { DatagramTransport, UdpAddress } from "./transport.ts";
import { batchedUdpUnavailable, bindBatchedUdp } from "./udp_batch.ts";
import { chooseImplementation } from "../base/implementation_choice.ts";

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
