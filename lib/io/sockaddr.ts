/**
 * Socket addresses in the bytes libc takes and gives (`sockaddr_in`, `sockaddr_in6`, Linux layout):
 * written from an IP literal and port, read back into an address object whose text is what Deno's
 * own socket would report for the same peer, so the two socket implementations name peers alike.
 */

import type { UdpAddress } from "./transport.ts";

/** `AF_INET`: the address family of IPv4 (a `sockaddr_in`). */
export const AF_INET = 2;
/** `AF_INET6`: the address family of IPv6 (a `sockaddr_in6`). */
export const AF_INET6 = 10;
/** Room for any socket address here: a `sockaddr_in6`; a `sockaddr_in` uses the first 16. */
export const SOCKADDR_BYTES = 28;
/** The length of a `sockaddr_in`. */
export const SOCKADDR_IN_BYTES = 16;

const IPV4_LITERAL = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** The 4 bytes of an IPv4 literal, or undefined. */
export function parseIPv4(text: string): number[] | undefined {
  const match = IPV4_LITERAL.exec(text);
  if (!match) return undefined;
  const bytes = match.slice(1).map(Number);
  return bytes.every((byte) => byte <= 255) ? bytes : undefined;
}

/** The 16 bytes of an IPv6 literal (brackets and a numeric zone allowed), or undefined. */
function parseIPv6(text: string): { bytes: number[]; scopeId: number } | undefined {
  let body = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  let scopeId = 0;
  const zone = body.indexOf("%");
  if (zone >= 0) {
    scopeId = Number(body.slice(zone + 1));
    if (!Number.isInteger(scopeId)) return undefined;
    body = body.slice(0, zone);
  }
  if (!body.includes(":")) return undefined;
  const halves = body.split("::");
  if (halves.length > 2) return undefined;
  const words = (part: string): number[] | undefined => {
    if (part === "") return [];
    const result: number[] = [];
    const groups = part.split(":");
    for (let index = 0; index < groups.length; index++) {
      const group = groups[index];
      if (index === groups.length - 1 && group.includes(".")) {
        const v4 = parseIPv4(group);
        if (!v4) return undefined;
        result.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else {
        if (!/^[0-9a-f]{1,4}$/i.test(group)) return undefined;
        result.push(parseInt(group, 16));
      }
    }
    return result;
  };
  const head = words(halves[0]);
  const tail = halves.length === 2 ? words(halves[1]) : [];
  if (!head || !tail) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...head, ...new Array(missing).fill(0), ...tail];
  return { bytes: all.flatMap((word) => [word >> 8, word & 0xff]), scopeId };
}

/**
 * Writes a `sockaddr_in` or `sockaddr_in6` for `hostname:port`; its length, or 0 when the host is
 * not an IP literal, or -1 for an IPv6 destination on an IPv4 socket.
 */
export function encodeSockaddr(
  target: Uint8Array,
  hostname: string,
  port: number,
  family: number,
): number {
  const view = new DataView(target.buffer, target.byteOffset, SOCKADDR_BYTES);
  target.fill(0, 0, SOCKADDR_BYTES);
  const name = hostname === "localhost" ? (family === AF_INET6 ? "::1" : "127.0.0.1") : hostname;
  const v4 = parseIPv4(name);
  if (v4 && family === AF_INET) {
    view.setUint16(0, AF_INET, true);
    view.setUint16(2, port);
    target.set(v4, 4);
    return SOCKADDR_IN_BYTES;
  }
  const v6 = v4
    ? { bytes: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...v4], scopeId: 0 }
    : parseIPv6(name);
  if (!v6) return 0;
  if (family === AF_INET) return -1; // an IPv6 destination on an IPv4 socket
  view.setUint16(0, AF_INET6, true);
  view.setUint16(2, port);
  target.set(v6.bytes, 8);
  view.setUint32(24, v6.scopeId, true);
  return SOCKADDR_BYTES;
}

/** The text of an IPv6 address as Deno (Rust) prints it: zeros compressed, mapped v4 dotted. */
function formatIPv6(bytes: Uint8Array, offset: number): string {
  const words: number[] = [];
  for (let index = 0; index < 8; index++) {
    words.push((bytes[offset + 2 * index] << 8) | bytes[offset + 2 * index + 1]);
  }
  if (words.slice(0, 5).every((word) => word === 0) && words[5] === 0xffff) {
    return `::ffff:${bytes.subarray(offset + 12, offset + 16).join(".")}`;
  }
  let bestStart = -1;
  let bestLength = 1;
  for (let start = 0; start < 8;) {
    if (words[start] !== 0) {
      start++;
      continue;
    }
    let end = start;
    while (end < 8 && words[end] === 0) end++;
    if (end - start > bestLength) [bestStart, bestLength] = [start, end - start];
    start = end;
  }
  const hex = (from: number, to: number) =>
    words.slice(from, to).map((word) => word.toString(16)).join(":");
  return bestStart < 0 ? hex(0, 8) : `${hex(0, bestStart)}::${hex(bestStart + bestLength, 8)}`;
}

/** Decodes a `sockaddr_in`/`sockaddr_in6` into a new address object. */
export function decodeSockaddr(bytes: Uint8Array, offset: number): UdpAddress {
  const family = bytes[offset] | (bytes[offset + 1] << 8);
  const port = (bytes[offset + 2] << 8) | bytes[offset + 3];
  const hostname = family === AF_INET
    ? bytes.subarray(offset + 4, offset + 8).join(".")
    : formatIPv6(bytes, offset + 8);
  return { transport: "udp", hostname, port };
}
