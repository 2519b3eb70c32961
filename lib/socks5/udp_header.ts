/**
 * The SOCKS5 UDP request header (RFC 1928 section 7) that wraps every application datagram of a
 * UDP ASSOCIATE, both ways (the address is the destination going out, the source coming back). All
 * integers are big-endian:
 *
 * | offset | size | field                                                       |
 * |--------|------|-------------------------------------------------------------|
 * | 0      | 2    | RSV, 0                                                      |
 * | 2      | 1    | FRAG, fragment number; only 0 (standalone) is supported     |
 * | 3      | …    | address (ATYP, ADDR, PORT; see `address.ts`)                |
 * | …      | …    | DATA                                                        |
 *
 * The decoder never throws on hostile input: it returns a reason the caller can count.
 */

import {
  decodeSocks5Address,
  encodeSocks5Address,
  type Socks5Address,
  socks5AddressBytes,
} from "./address.ts";

/** Size of a UDP header's fixed part: RSV (2) and FRAG (1). */
const UDP_FIXED_BYTES = 3;

/** Why a UDP datagram from the application was dropped; each is a drop counter. */
export type UdpDatagramFailure =
  | "truncated"
  | "bad-reserved"
  | "bad-address-type"
  | "fragmented"
  | "bad-domain";

/** Outcome of {@link decodeUdpDatagram}. `payload` is a view into the datagram, not a copy. */
export type DecodedUdpDatagram =
  | {
    readonly ok: true;
    readonly fragment: number;
    readonly destination: Socks5Address;
    readonly payload: Uint8Array;
  }
  | { readonly ok: false; readonly reason: UdpDatagramFailure };

/** Size of the UDP request header {@link encodeUdpRequestHeader} writes for `destination`. */
export function udpRequestHeaderBytes(destination: Socks5Address): number {
  return UDP_FIXED_BYTES + socks5AddressBytes(destination);
}

/**
 * Encodes the UDP request header (RSV 0, FRAG 0, address) for `destination`. With `out`, writes at
 * its start and returns the view `out[0..header)`, so the payload can be placed right after it;
 * without, returns a new array. Throws a `RangeError` when `out` is too short or the address cannot
 * be sent.
 *
 * @example
 * ```ts
 * import { encodeUdpRequestHeader } from "./udp_header.ts";
 * const header = encodeUdpRequestHeader({ kind: "ipv4", host: "10.0.0.53", port: 53 });
 * console.log(header); // Uint8Array(10) [0, 0, 0, 1, 10, 0, 0, 53, 0, 53]
 * ```
 */
export function encodeUdpRequestHeader(destination: Socks5Address, out?: Uint8Array): Uint8Array {
  const headerBytes = udpRequestHeaderBytes(destination);
  const target = out ?? new Uint8Array(headerBytes);
  if (target.length < headerBytes) {
    throw new RangeError(`SOCKS5 UDP header needs ${headerBytes} bytes, got ${target.length}`);
  }
  target[0] = 0;
  target[1] = 0;
  target[2] = 0;
  encodeSocks5Address(destination, target, UDP_FIXED_BYTES);
  return target.subarray(0, headerBytes);
}

/**
 * Encodes a datagram for the application: the UDP header naming `source` (where the reply came
 * from), then `payload`, copied into one new array.
 */
export function encodeUdpDatagram(source: Socks5Address, payload: Uint8Array): Uint8Array {
  const headerBytes = udpRequestHeaderBytes(source);
  const datagram = new Uint8Array(headerBytes + payload.length);
  encodeUdpRequestHeader(source, datagram);
  datagram.set(payload, headerBytes);
  return datagram;
}

/**
 * Decodes a datagram from the application. Never throws. A FRAG other than 0 is `"fragmented"`:
 * this implementation does not reassemble, and RFC 1928 lets such an implementation drop them.
 * The payload is a view into `datagram`; copy it before the buffer is reused.
 *
 * @example
 * ```ts
 * import { decodeUdpDatagram } from "./udp_header.ts";
 * const decoded = decodeUdpDatagram(new Uint8Array([0, 0, 0, 1, 10, 0, 0, 53, 0, 53, 0xab]));
 * if (decoded.ok) console.log(decoded.destination, decoded.payload); // { kind: "ipv4", host: "10.0.0.53", port: 53 } Uint8Array(1) [ 171 ]
 * else console.log("dropped:", decoded.reason);
 * ```
 */
export function decodeUdpDatagram(datagram: Uint8Array): DecodedUdpDatagram {
  if (datagram.length < UDP_FIXED_BYTES + 1) return { ok: false, reason: "truncated" };
  if (datagram[0] !== 0 || datagram[1] !== 0) return { ok: false, reason: "bad-reserved" };
  const fragment = datagram[2];
  if (fragment !== 0) return { ok: false, reason: "fragmented" };
  const address = decodeSocks5Address(datagram, UDP_FIXED_BYTES);
  if (!address.ok) return address;
  return {
    ok: true,
    fragment,
    destination: address.address,
    payload: datagram.subarray(address.endOffset),
  };
}
