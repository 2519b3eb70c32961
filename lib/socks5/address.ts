/**
 * The SOCKS5 address (RFC 1928): the tail of a request, of a reply and of a UDP header, written and
 * read here and nowhere else. ATYP, then ADDR, then PORT, big-endian:
 *
 * | ATYP | ADDR                                       | PORT |
 * |------|--------------------------------------------|------|
 * | 0x01 | 4 bytes, IPv4                              | 2    |
 * | 0x03 | 1 length byte (1–255), then the name bytes | 2    |
 * | 0x04 | 16 bytes, IPv6                             | 2    |
 *
 * The decoder never throws on hostile input: it returns a reason the caller can count.
 */

/** Address type codes (ATYP). */
export const Socks5AddressType = {
  ipv4: 0x01,
  domain: 0x03,
  ipv6: 0x04,
} as const;

/** Longest domain name, user name or password: their length fields are one byte. */
export const MAX_FIELD_BYTES = 255;

const IPV4_BYTES = 4;
const IPV6_BYTES = 16;
const PORT_BYTES = 2;

/**
 * A SOCKS5 address and port. An IPv4 host is a dotted quad (`"10.0.0.53"`); an IPv6 host is written
 * without brackets and decoded in canonical form (RFC 5952: lower case, longest zero run compressed,
 * `"::1"`, `"2001:db8::7"`, IPv4-mapped as `"::ffff:192.0.2.1"`, as Deno writes addresses); a
 * domain is the name as sent, not resolved.
 */
export type Socks5Address =
  | { readonly kind: "ipv4"; readonly host: string; readonly port: number }
  | { readonly kind: "ipv6"; readonly host: string; readonly port: number }
  | { readonly kind: "domain"; readonly host: string; readonly port: number };

/** Why an address could not be decoded. */
export type Socks5AddressFailure = "truncated" | "bad-address-type" | "bad-domain";

/** Outcome of {@link decodeSocks5Address}: the address and the offset just past it, or a reason. */
export type DecodedSocks5Address =
  | { readonly ok: true; readonly address: Socks5Address; readonly endOffset: number }
  | { readonly ok: false; readonly reason: Socks5AddressFailure };

const textEncoder = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Number of bytes {@link encodeSocks5Address} writes for `address` (ATYP, ADDR and PORT). */
export function socks5AddressBytes(address: Socks5Address): number {
  switch (address.kind) {
    case "ipv4":
      return 1 + IPV4_BYTES + PORT_BYTES;
    case "ipv6":
      return 1 + IPV6_BYTES + PORT_BYTES;
    case "domain":
      return 1 + 1 + domainBytes(address.host).length + PORT_BYTES;
  }
}

/**
 * Writes ATYP, ADDR and PORT at `out[offset..)` and returns the offset just past them. Throws a
 * `RangeError` for an address that cannot be sent (a malformed literal, an empty or over-long name,
 * a port outside 0–65535) or when `out` is too short: those are the caller's mistakes.
 */
export function encodeSocks5Address(address: Socks5Address, out: Uint8Array, offset = 0): number {
  if (!Number.isInteger(address.port) || address.port < 0 || address.port > 0xffff) {
    throw new RangeError(`SOCKS5 port ${address.port} is outside 0-65535`);
  }
  let addressBytes: Uint8Array;
  let typeCode: number;
  switch (address.kind) {
    case "ipv4": {
      const parsed = parseIpv4(address.host);
      if (parsed === undefined) throw new RangeError(`"${address.host}" is not an IPv4 address`);
      addressBytes = parsed;
      typeCode = Socks5AddressType.ipv4;
      break;
    }
    case "ipv6": {
      const parsed = parseIpv6(address.host);
      if (parsed === undefined) throw new RangeError(`"${address.host}" is not an IPv6 address`);
      addressBytes = parsed;
      typeCode = Socks5AddressType.ipv6;
      break;
    }
    case "domain": {
      const name = domainBytes(address.host);
      addressBytes = new Uint8Array(1 + name.length);
      addressBytes[0] = name.length;
      addressBytes.set(name, 1);
      typeCode = Socks5AddressType.domain;
      break;
    }
  }
  const endOffset = offset + 1 + addressBytes.length + PORT_BYTES;
  if (offset < 0 || endOffset > out.length) {
    throw new RangeError(`SOCKS5 address needs ${endOffset - offset} bytes at offset ${offset}`);
  }
  out[offset] = typeCode;
  out.set(addressBytes, offset + 1);
  out[endOffset - 2] = address.port >>> 8;
  out[endOffset - 1] = address.port & 0xff;
  return endOffset;
}

/**
 * Reads ATYP, ADDR and PORT starting at `bytes[offset]`. Never throws: a short buffer is
 * `"truncated"`, an ATYP other than 1, 3 or 4 `"bad-address-type"`, and a domain that is empty, not
 * UTF-8 or holds control characters or spaces `"bad-domain"` (the name ends up in logs and a
 * resolver, which should never see such bytes).
 */
export function decodeSocks5Address(bytes: Uint8Array, offset = 0): DecodedSocks5Address {
  if (offset >= bytes.length) return { ok: false, reason: "truncated" };
  const typeCode = bytes[offset];
  let host: string;
  let kind: Socks5Address["kind"];
  let portOffset: number;
  switch (typeCode) {
    case Socks5AddressType.ipv4:
      portOffset = offset + 1 + IPV4_BYTES;
      if (portOffset + PORT_BYTES > bytes.length) return { ok: false, reason: "truncated" };
      kind = "ipv4";
      host = bytes.subarray(offset + 1, portOffset).join(".");
      break;
    case Socks5AddressType.ipv6:
      portOffset = offset + 1 + IPV6_BYTES;
      if (portOffset + PORT_BYTES > bytes.length) return { ok: false, reason: "truncated" };
      kind = "ipv6";
      host = formatIpv6(bytes.subarray(offset + 1, portOffset));
      break;
    case Socks5AddressType.domain: {
      if (offset + 1 >= bytes.length) return { ok: false, reason: "truncated" };
      const nameLength = bytes[offset + 1];
      portOffset = offset + 2 + nameLength;
      if (portOffset + PORT_BYTES > bytes.length) return { ok: false, reason: "truncated" };
      const name = decodeDomain(bytes.subarray(offset + 2, portOffset));
      if (name === undefined) return { ok: false, reason: "bad-domain" };
      kind = "domain";
      host = name;
      break;
    }
    default:
      return { ok: false, reason: "bad-address-type" };
  }
  const port = (bytes[portOffset] << 8) | bytes[portOffset + 1];
  return { ok: true, address: { kind, host, port }, endOffset: portOffset + PORT_BYTES };
}

function domainBytes(name: string): Uint8Array {
  const encoded = textEncoder.encode(name);
  if (encoded.length < 1 || encoded.length > MAX_FIELD_BYTES) {
    throw new RangeError(`SOCKS5 domain names are 1-255 bytes, "${name}" is ${encoded.length}`);
  }
  return encoded;
}

function decodeDomain(nameBytes: Uint8Array): string | undefined {
  if (nameBytes.length === 0) return undefined;
  for (const byte of nameBytes) {
    if (byte <= 0x20 || byte === 0x7f) return undefined;
  }
  try {
    return strictUtf8.decode(nameBytes);
  } catch {
    return undefined; // not UTF-8
  }
}

function parseIpv4(text: string): Uint8Array | undefined {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (match === null) return undefined;
  const parts = match.slice(1).map(Number);
  return parts.every((part) => part <= 255) ? Uint8Array.from(parts) : undefined;
}

/** Parses an IPv6 literal without brackets or zone (SOCKS5 cannot carry a zone) into 16 bytes. */
function parseIpv6(text: string): Uint8Array | undefined {
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groupsOf = (part: string) => (part === "" ? [] : part.split(":"));
  const head = groupsOf(halves[0]);
  const tail = halves.length === 2 ? groupsOf(halves[1]) : [];
  const last = halves.length === 2 ? tail : head;
  const values: number[][] = [[], []];
  const lists = [head, tail];
  for (let listIndex = 0; listIndex < 2; listIndex++) {
    const list = lists[listIndex];
    for (let index = 0; index < list.length; index++) {
      const group = list[index];
      if (list === last && index === list.length - 1 && group.includes(".")) {
        const embedded = parseIpv4(group);
        if (embedded === undefined) return undefined;
        values[listIndex].push((embedded[0] << 8) | embedded[1], (embedded[2] << 8) | embedded[3]);
      } else if (/^[0-9A-Fa-f]{1,4}$/.test(group)) {
        values[listIndex].push(parseInt(group, 16));
      } else {
        return undefined;
      }
    }
  }
  const groupCount = values[0].length + values[1].length;
  if (halves.length === 2 ? groupCount > 7 : groupCount !== 8) return undefined;
  const groups = [
    ...values[0],
    ...new Array<number>(8 - groupCount).fill(0),
    ...values[1],
  ];
  const out = new Uint8Array(IPV6_BYTES);
  groups.forEach((group, index) => {
    out[2 * index] = group >>> 8;
    out[2 * index + 1] = group & 0xff;
  });
  return out;
}

/** RFC 5952 text for 16 address bytes, as Deno (Rust's `Ipv6Addr`) writes it. */
function formatIpv6(addressBytes: Uint8Array): string {
  const groups: number[] = [];
  for (let index = 0; index < 8; index++) {
    groups.push((addressBytes[2 * index] << 8) | addressBytes[2 * index + 1]);
  }
  if (groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff) {
    return `::ffff:${addressBytes.subarray(12).join(".")}`;
  }
  // The longest run of two or more zero groups is compressed; the first wins a tie.
  let bestStart = -1;
  let bestLength = 1;
  for (let start = 0; start < 8;) {
    if (groups[start] !== 0) {
      start++;
      continue;
    }
    let end = start;
    while (end < 8 && groups[end] === 0) end++;
    if (end - start > bestLength) {
      bestStart = start;
      bestLength = end - start;
    }
    start = end;
  }
  const hex = (part: number[]) => part.map((group) => group.toString(16)).join(":");
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}
