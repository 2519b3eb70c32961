/**
 * IP addresses as bytes, for matching them against networks: parse a literal into its bytes, compare
 * the first N bits, clear the host bits, and format bytes back canonically. IPv4-mapped IPv6
 * addresses (`::ffff:10.0.0.1`) are IPv4 here, so a mapped client matches IPv4 networks only.
 */

import { isIPv4Literal, isIPv6Literal } from "./address.ts";

/** An IP address as bytes: 4 for IPv4 (IPv4-mapped IPv6 included), 16 for IPv6. */
export interface IPBytes {
  readonly family: 4 | 6;
  readonly bytes: Uint8Array;
}

function ipv4Bytes(text: string): Uint8Array {
  return Uint8Array.from(text.split(".").map(Number));
}

/**
 * Parses an IP literal (brackets and an IPv6 zone tolerated) into bytes, or undefined.
 *
 * @example
 * ```ts
 * import { parseIPBytes } from "./ip_network.ts";
 * console.log(parseIPBytes("::ffff:10.0.0.1")); // { family: 4, bytes: Uint8Array [10, 0, 0, 1] }
 * ```
 */
export function parseIPBytes(text: string): IPBytes | undefined {
  const unbracketed = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  const address = unbracketed.split("%", 1)[0];
  if (isIPv4Literal(address)) return { family: 4, bytes: ipv4Bytes(address) };
  if (!isIPv6Literal(unbracketed)) return undefined;
  const bytes = new Uint8Array(16);
  const groupsOf = (part: string): number[] => {
    if (part === "") return [];
    return part.split(":").flatMap((group) => {
      if (!group.includes(".")) return [parseInt(group, 16)];
      const [a, b, c, d] = ipv4Bytes(group);
      return [(a << 8) | b, (c << 8) | d];
    });
  };
  const [head, tail] = address.split("::");
  const headGroups = groupsOf(head);
  const tailGroups = tail === undefined ? [] : groupsOf(tail);
  const groups = [
    ...headGroups,
    ...new Array<number>(8 - headGroups.length - tailGroups.length).fill(0),
    ...tailGroups,
  ];
  groups.forEach((group, index) => {
    bytes[index * 2] = group >> 8;
    bytes[index * 2 + 1] = group & 0xff;
  });
  const isMapped = bytes.subarray(0, 10).every((byte) => byte === 0) && bytes[10] === 0xff &&
    bytes[11] === 0xff;
  return isMapped ? { family: 4, bytes: bytes.slice(12) } : { family: 6, bytes };
}

/** Formats address bytes canonically: dotted quad, or RFC 5952 IPv6 (lowercase, longest `::`). */
export function formatIPBytes(address: IPBytes): string {
  if (address.family === 4) return Array.from(address.bytes).join(".");
  const groups = Array.from(
    { length: 8 },
    (_, index) => (address.bytes[index * 2] << 8) | address.bytes[index * 2 + 1],
  );
  let bestStart = -1;
  let bestLength = 1; // RFC 5952: "::" never stands for a single zero group
  for (let start = 0; start < 8; start++) {
    let length = 0;
    while (start + length < 8 && groups[start + length] === 0) length++;
    if (length > bestLength) [bestStart, bestLength] = [start, length];
  }
  const hex = (part: number[]) => part.map((group) => group.toString(16)).join(":");
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}

/** True when the first `prefixLength` bits of `a` and `b` are equal. */
export function prefixMatches(a: Uint8Array, b: Uint8Array, prefixLength: number): boolean {
  const wholeBytes = Math.floor(prefixLength / 8);
  for (let index = 0; index < wholeBytes; index++) if (a[index] !== b[index]) return false;
  const remainingBits = prefixLength % 8;
  if (remainingBits === 0) return true;
  const mask = (0xff << (8 - remainingBits)) & 0xff;
  return (a[wholeBytes] & mask) === (b[wholeBytes] & mask);
}

/** A copy of `bytes` with every bit after the first `prefixLength` cleared: the network address. */
export function maskedBytes(bytes: Uint8Array, prefixLength: number): Uint8Array {
  return bytes.map((byte, index) => {
    const bitsKept = Math.min(8, Math.max(0, prefixLength - index * 8));
    return byte & ((0xff << (8 - bitsKept)) & 0xff);
  });
}
