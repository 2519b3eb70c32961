/**
 * SOCKS5 (RFC 1928) with username/password authentication (RFC 1929), as much of it as a UDP
 * ASSOCIATE front end needs: the codec for the UDP request header that wraps every application
 * datagram, and a sans-I/O state machine for the TCP control connection that sets the association up.
 * This module is the only one that knows SOCKS5 offsets. All integers are big-endian.
 *
 * An address (the tail of a request, a reply and a UDP header) is ATYP, then ADDR, then PORT:
 *
 * | ATYP | ADDR                                       | PORT |
 * |------|--------------------------------------------|------|
 * | 0x01 | 4 bytes, IPv4                              | 2    |
 * | 0x03 | 1 length byte (1–255), then the name bytes | 2    |
 * | 0x04 | 16 bytes, IPv6                             | 2    |
 *
 * Control connection, client → server, then server → client:
 *
 * | message              | client sends                          | server answers               |
 * |----------------------|---------------------------------------|------------------------------|
 * | greeting             | VER=5, NMETHODS, METHODS (NMETHODS)   | VER=5, METHOD (0xFF: none)   |
 * | RFC 1929 credentials | VER=1, ULEN, UNAME, PLEN, PASSWD      | VER=1, STATUS (0x00: ok)     |
 * | request              | VER=5, CMD, RSV=0, address            | VER=5, REP, RSV=0, address   |
 *
 * UDP datagrams, both ways (the address is the destination going out, the source coming back):
 *
 * | offset | size | field                                                       |
 * |--------|------|-------------------------------------------------------------|
 * | 0      | 2    | RSV, 0                                                      |
 * | 2      | 1    | FRAG, fragment number; only 0 (standalone) is supported     |
 * | 3      | …    | address (ATYP, ADDR, PORT)                                  |
 * | …      | …    | DATA                                                        |
 *
 * Decoders never throw on hostile input: they return a reason the caller can count.
 */

/** The SOCKS protocol version this module speaks (the VER byte of greetings and requests). */
export const SOCKS_VERSION = 5;
/** The version of the RFC 1929 username/password sub-negotiation. */
export const USERNAME_PASSWORD_VERSION = 1;

/** Authentication method codes (the greeting's METHODS and the server's choice). */
export const Socks5Method = {
  noAuthentication: 0x00,
  gssapi: 0x01,
  usernamePassword: 0x02,
  /** The server's answer when none of the offered methods is acceptable. */
  noAcceptableMethods: 0xff,
} as const;

/** Request command codes (CMD). */
export const Socks5Command = {
  connect: 0x01,
  bind: 0x02,
  udpAssociate: 0x03,
} as const;

/** Address type codes (ATYP). */
export const Socks5AddressType = {
  ipv4: 0x01,
  domain: 0x03,
  ipv6: 0x04,
} as const;

/** Reply codes (REP) of a request's reply, RFC 1928 section 6. */
export const Socks5ReplyCode = {
  succeeded: 0x00,
  generalFailure: 0x01,
  notAllowedByRuleset: 0x02,
  networkUnreachable: 0x03,
  hostUnreachable: 0x04,
  connectionRefused: 0x05,
  ttlExpired: 0x06,
  commandNotSupported: 0x07,
  addressTypeNotSupported: 0x08,
} as const;

/** A reply code's value. */
export type Socks5ReplyCodeValue = typeof Socks5ReplyCode[keyof typeof Socks5ReplyCode];

/** RFC 1929 status byte: success; anything else is a failure after which the server closes. */
export const USERNAME_PASSWORD_SUCCESS = 0x00;
/** The RFC 1929 status byte this module sends for refused credentials. */
export const USERNAME_PASSWORD_FAILURE = 0x01;

/** Longest domain name, user name or password: their length fields are one byte. */
export const MAX_FIELD_BYTES = 255;

/**
 * Default bound on bytes a {@link Socks5Session} holds while waiting for the rest of a message.
 * The longest message (RFC 1929 credentials, 513 bytes) fits, so only a hostile peer reaches it.
 */
export const DEFAULT_MAX_BUFFERED_BYTES = 1024;

/** Size of a UDP header's fixed part: RSV (2) and FRAG (1). */
const UDP_FIXED_BYTES = 3;
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

const textEncoder = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

// ---------------------------------------------------------------------------------------------------
// Addresses

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

// ---------------------------------------------------------------------------------------------------
// UDP datagrams

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
 * import { encodeUdpRequestHeader } from "./messages.ts";
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
 * import { decodeUdpDatagram } from "./messages.ts";
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

// ---------------------------------------------------------------------------------------------------
// Control connection

/** Encodes a request's reply: VER 5, `code`, RSV 0, then the bound address (BND.ADDR, BND.PORT). */
export function encodeSocks5Reply(code: Socks5ReplyCodeValue, bound: Socks5Address): Uint8Array {
  const reply = new Uint8Array(3 + socks5AddressBytes(bound));
  reply[0] = SOCKS_VERSION;
  reply[1] = code;
  encodeSocks5Address(bound, reply, 3);
  return reply;
}

/** The bound address of a failure reply: nothing was bound. */
const UNBOUND: Socks5Address = { kind: "ipv4", host: "0.0.0.0", port: 0 };

/** Username and password a client must present (RFC 1929); each 1–255 bytes of UTF-8. */
export interface Socks5Credentials {
  readonly username: string;
  readonly password: string;
}

/** Options of a {@link Socks5Session}. */
export interface Socks5SessionOptions {
  /** When set, clients must authenticate with these; when absent, only "no authentication". */
  readonly credentials?: Socks5Credentials;
  /**
   * Where the client must send its UDP datagrams (BND.ADDR and BND.PORT of the reply), asked once
   * per association. `undefined` means no relay is available: the client gets a general failure.
   */
  readonly resolveUdpRelay: () => Socks5Address | undefined;
  /** Bound on bytes held while a message is incomplete; {@link DEFAULT_MAX_BUFFERED_BYTES}. */
  readonly maxBufferedBytes?: number;
}

/** Where a control connection is: which message it waits for, or that it is done. */
export type Socks5SessionState =
  | "greeting"
  | "authenticating"
  | "request"
  | "associated"
  | "closed";

/** Something the driver must act on, beyond writing the reply. */
export type Socks5Event = {
  readonly kind: "associate";
  /**
   * The address the client says it will send from (often 0.0.0.0:0, meaning "not known yet");
   * the driver should accept datagrams only from the control connection's peer host.
   */
  readonly clientHint: Socks5Address;
};

/** What one {@link Socks5Session.receive} call asks of the driver. */
export interface Socks5Step {
  /** Bytes to write to the control connection, possibly empty; write them before closing. */
  readonly reply: Uint8Array;
  /** Set when the client's UDP ASSOCIATE succeeded in this step. */
  readonly event?: Socks5Event;
  /** True when the driver must close the connection (after writing `reply`). */
  readonly close: boolean;
  /** Why the session ended, for the log; absent when it ended normally or has not ended. */
  readonly error?: string;
}

/** Result of trying to handle one message at the front of the buffer. */
type Handled =
  | { readonly kind: "incomplete" }
  | { readonly kind: "consumed"; readonly byteCount: number };

const EMPTY = new Uint8Array(0);
const COMMAND_NAMES: Record<number, string> = {
  [Socks5Command.connect]: "CONNECT",
  [Socks5Command.bind]: "BIND",
};

/**
 * The server side of one SOCKS5 control connection, without sockets: feed it the bytes read from
 * the TCP stream, in chunks split anywhere, and write back what it returns. It negotiates the
 * method, checks RFC 1929 credentials, and accepts UDP ASSOCIATE only (CONNECT and BIND are refused
 * with "command not supported"). Once associated, further bytes are ignored: the association lasts
 * as long as the connection.
 *
 * @example
 * ```ts
 * import { Socks5Session } from "./messages.ts";
 * const session = new Socks5Session({
 *   resolveUdpRelay: () => ({ kind: "ipv4", host: "127.0.0.1", port: 40000 }),
 * });
 * session.receive(new Uint8Array([5, 1, 0])); // reply: 05 00
 * const step = session.receive(new Uint8Array([5, 3, 0, 1, 0, 0, 0, 0, 0, 0]));
 * console.log(step.event?.kind, step.close); // associate false
 * ```
 */
export class Socks5Session {
  readonly #credentials?: { readonly username: Uint8Array; readonly password: Uint8Array };
  readonly #resolveUdpRelay: () => Socks5Address | undefined;
  readonly #maxBufferedBytes: number;
  #state: Socks5SessionState = "greeting";
  #pending: Uint8Array = EMPTY;
  // Per receive() call: what the handlers produced.
  #replies: Uint8Array[] = [];
  #event?: Socks5Event;
  #error?: string;

  /** Throws a `RangeError` for credentials that RFC 1929 cannot carry (empty or over 255 bytes). */
  constructor(options: Socks5SessionOptions) {
    if (options.credentials !== undefined) {
      this.#credentials = {
        username: credentialBytes("username", options.credentials.username),
        password: credentialBytes("password", options.credentials.password),
      };
    }
    this.#resolveUdpRelay = options.resolveUdpRelay;
    this.#maxBufferedBytes = options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
  }

  /** Which message the session waits for, or whether it is associated or closed. */
  get state(): Socks5SessionState {
    return this.#state;
  }

  /** Bytes held from an incomplete message (never more than the configured bound). */
  get bufferedBytes(): number {
    return this.#pending.length;
  }

  /**
   * Consumes bytes read from the control connection and returns what to write, whether an
   * association was made and whether to close. Never throws on hostile input.
   */
  receive(bytes: Uint8Array): Socks5Step {
    if (this.#finished()) return { reply: EMPTY, close: this.#state === "closed" };
    this.#replies = [];
    this.#event = undefined;
    this.#error = undefined;
    let input = bytes;
    if (this.#pending.length > 0) {
      input = new Uint8Array(this.#pending.length + bytes.length);
      input.set(this.#pending);
      input.set(bytes, this.#pending.length);
    }
    let offset = 0;
    while (!this.#finished()) {
      const handled = this.#handle(input.subarray(offset));
      if (handled.kind === "incomplete") break;
      offset += handled.byteCount;
    }
    const rest = input.subarray(offset);
    if (this.#finished()) {
      this.#pending = EMPTY; // after the request, nothing more is read
    } else if (rest.length > this.#maxBufferedBytes) {
      this.#fail(`more than ${this.#maxBufferedBytes} bytes buffered for one message`);
      this.#pending = EMPTY;
    } else {
      this.#pending = rest.slice(); // a copy: the caller reuses its read buffer
    }
    const step: Socks5Step = {
      reply: concatenate(this.#replies),
      close: this.#state === "closed",
      ...(this.#event !== undefined ? { event: this.#event } : {}),
      ...(this.#error !== undefined ? { error: this.#error } : {}),
    };
    this.#replies = [];
    return step;
  }

  /** True once the request was answered: nothing more is read. */
  #finished(): boolean {
    return this.#state === "associated" || this.#state === "closed";
  }

  #handle(bytes: Uint8Array): Handled {
    switch (this.#state) {
      case "greeting":
        return this.#handleGreeting(bytes);
      case "authenticating":
        return this.#handleCredentials(bytes);
      case "request":
        return this.#handleRequest(bytes);
      case "associated":
      case "closed":
        return { kind: "consumed", byteCount: bytes.length };
    }
  }

  #handleGreeting(bytes: Uint8Array): Handled {
    if (bytes.length < 1) return { kind: "incomplete" };
    if (bytes[0] !== SOCKS_VERSION) {
      this.#fail(`greeting has version ${bytes[0]}, not ${SOCKS_VERSION}`);
      return { kind: "consumed", byteCount: bytes.length };
    }
    if (bytes.length < 2) return { kind: "incomplete" };
    const byteCount = 2 + bytes[1];
    if (bytes.length < byteCount) return { kind: "incomplete" };
    const offered = bytes.subarray(2, byteCount);
    const wanted = this.#credentials !== undefined
      ? Socks5Method.usernamePassword
      : Socks5Method.noAuthentication;
    if (!offered.includes(wanted)) {
      this.#replies.push(Uint8Array.of(SOCKS_VERSION, Socks5Method.noAcceptableMethods));
      this.#fail(
        this.#credentials !== undefined
          ? "client does not offer username/password authentication"
          : "client does not offer to go without authentication",
      );
      return { kind: "consumed", byteCount };
    }
    this.#replies.push(Uint8Array.of(SOCKS_VERSION, wanted));
    this.#state = wanted === Socks5Method.usernamePassword ? "authenticating" : "request";
    return { kind: "consumed", byteCount };
  }

  #handleCredentials(bytes: Uint8Array): Handled {
    if (bytes.length < 1) return { kind: "incomplete" };
    if (bytes[0] !== USERNAME_PASSWORD_VERSION) {
      this.#fail(`credentials have version ${bytes[0]}, not ${USERNAME_PASSWORD_VERSION}`);
      return { kind: "consumed", byteCount: bytes.length };
    }
    if (bytes.length < 2) return { kind: "incomplete" };
    const usernameEnd = 2 + bytes[1];
    if (bytes.length < usernameEnd + 1) return { kind: "incomplete" };
    const byteCount = usernameEnd + 1 + bytes[usernameEnd];
    if (bytes.length < byteCount) return { kind: "incomplete" };
    const credentials = this.#credentials!;
    const usernameMatches = fieldsEqual(bytes.subarray(2, usernameEnd), credentials.username);
    const passwordMatches = fieldsEqual(
      bytes.subarray(usernameEnd + 1, byteCount),
      credentials.password,
    );
    // `&`, not `&&`: the password is compared even when the user name is wrong.
    if (usernameMatches & passwordMatches) {
      this.#replies.push(Uint8Array.of(USERNAME_PASSWORD_VERSION, USERNAME_PASSWORD_SUCCESS));
      this.#state = "request";
    } else {
      this.#replies.push(Uint8Array.of(USERNAME_PASSWORD_VERSION, USERNAME_PASSWORD_FAILURE));
      this.#fail("wrong username or password");
    }
    return { kind: "consumed", byteCount };
  }

  #handleRequest(bytes: Uint8Array): Handled {
    if (bytes.length < 1) return { kind: "incomplete" };
    if (bytes[0] !== SOCKS_VERSION) {
      this.#fail(`request has version ${bytes[0]}, not ${SOCKS_VERSION}`);
      return { kind: "consumed", byteCount: bytes.length };
    }
    // RSV (byte 2) is not checked: RFC 1928 only says it is sent as 0.
    const decoded = decodeSocks5Address(bytes, 3);
    if (!decoded.ok) {
      switch (decoded.reason) {
        case "truncated":
          return { kind: "incomplete" };
        case "bad-address-type":
          this.#refuse(
            Socks5ReplyCode.addressTypeNotSupported,
            `request has address type ${bytes[3]}`,
          );
          return { kind: "consumed", byteCount: bytes.length };
        case "bad-domain":
          this.#refuse(Socks5ReplyCode.generalFailure, "request has a malformed domain name");
          return { kind: "consumed", byteCount: bytes.length };
      }
    }
    const byteCount = decoded.endOffset;
    const command = bytes[1];
    if (command !== Socks5Command.udpAssociate) {
      const name = COMMAND_NAMES[command] ?? `command ${command}`;
      this.#refuse(Socks5ReplyCode.commandNotSupported, `${name} is not supported`);
      return { kind: "consumed", byteCount };
    }
    const relay = this.#resolveUdpRelay();
    if (relay === undefined) {
      this.#refuse(Socks5ReplyCode.generalFailure, "no UDP relay available");
      return { kind: "consumed", byteCount };
    }
    this.#replies.push(encodeSocks5Reply(Socks5ReplyCode.succeeded, relay));
    this.#event = { kind: "associate", clientHint: decoded.address };
    this.#state = "associated";
    return { kind: "consumed", byteCount };
  }

  #refuse(code: Socks5ReplyCodeValue, error: string): void {
    this.#replies.push(encodeSocks5Reply(code, UNBOUND));
    this.#fail(error);
  }

  #fail(error: string): void {
    this.#state = "closed";
    this.#error = error;
  }
}

function credentialBytes(field: string, value: string): Uint8Array {
  const encoded = textEncoder.encode(value);
  if (encoded.length < 1 || encoded.length > MAX_FIELD_BYTES) {
    throw new RangeError(`SOCKS5 ${field} must be 1-255 bytes of UTF-8, got ${encoded.length}`);
  }
  return encoded;
}

/**
 * 1 when equal, else 0. Always walks all {@link MAX_FIELD_BYTES} positions, so the time taken says
 * neither where the first difference is nor how long the expected value is.
 */
function fieldsEqual(received: Uint8Array, expected: Uint8Array): number {
  let difference = received.length ^ expected.length;
  for (let index = 0; index < MAX_FIELD_BYTES; index++) {
    const receivedByte = index < received.length ? received[index] : 0;
    const expectedByte = index < expected.length ? expected[index] : 0;
    difference |= receivedByte ^ expectedByte;
  }
  return difference === 0 ? 1 : 0;
}

function concatenate(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 0) return EMPTY;
  if (parts.length === 1) return parts[0];
  const total = parts.reduce((sum, part) => sum + part.length, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
