/**
 * The server side of a SOCKS5 control connection (RFC 1928) with username/password authentication
 * (RFC 1929), as much of it as a UDP ASSOCIATE front end needs: a sans-I/O state machine fed the
 * bytes of the TCP stream. Client → server, then server → client:
 *
 * | message              | client sends                          | server answers               |
 * |----------------------|---------------------------------------|------------------------------|
 * | greeting             | VER=5, NMETHODS, METHODS (NMETHODS)   | VER=5, METHOD (0xFF: none)   |
 * | RFC 1929 credentials | VER=1, ULEN, UNAME, PLEN, PASSWD      | VER=1, STATUS (0x00: ok)     |
 * | request              | VER=5, CMD, RSV=0, address            | VER=5, REP, RSV=0, address   |
 *
 * The address is that of `address.ts`. Hostile input never throws: it closes the session with a
 * reason for the log.
 */

import {
  decodeSocks5Address,
  encodeSocks5Address,
  MAX_FIELD_BYTES,
  type Socks5Address,
  socks5AddressBytes,
} from "./address.ts";

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

/**
 * Default bound on bytes a {@link Socks5Session} holds while waiting for the rest of a message.
 * The longest message (RFC 1929 credentials, 513 bytes) fits, so only a hostile peer reaches it.
 */
export const DEFAULT_MAX_BUFFERED_BYTES = 1024;

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
const textEncoder = new TextEncoder();
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
 * import { Socks5Session } from "./session.ts";
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
