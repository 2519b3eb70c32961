/**
 * The wire format, version 1: the byte layout of every datagram mptunnel sends between mpclient and
 * mpserver. This module is the only one that knows offsets; `docs/PROTOCOL.md` specifies the same
 * layout in prose. All integers are big-endian.
 *
 * Sealed messages (DATA, PROBE, PROBE_REPLY, FEC) share one 20-byte header:
 *
 * | offset | size | field                                                              |
 * |--------|------|--------------------------------------------------------------------|
 * | 0      | 1    | version (1)                                                        |
 * | 1      | 1    | type (0x01 DATA, 0x02 PROBE, 0x03 PROBE_REPLY, 0x04 FEC,           |
 * |        |      |       0x05 FLOW_OPEN, 0x06 FLOW_REPLY)                             |
 * | 2      | 1    | flags (bit 0: body is AEAD-sealed)                                 |
 * | 3      | 1    | key phase (which handshake's keys sealed it)                       |
 * | 4      | 4    | session id (chosen at random by mpclient, never 0)                 |
 * | 8      | 8    | sequence number (per session, direction and key phase; < 2^53)     |
 * | 16     | 2    | flow id (which local application socket the datagram belongs to)   |
 * | 18     | 2    | flow sequence (per flow and direction, wraps; for reordering)      |
 * | 20     | …    | body: plaintext, or ciphertext followed by a 16-byte tag           |
 *
 * The whole header is the AEAD's associated data and the sequence number its nonce, so every field
 * the receiver acts on is authenticated and a datagram is identical on every path (sealed once).
 *
 * Handshake messages are fixed-size, 64 bytes each, so that a response is never larger than what
 * provoked it:
 *
 * | offset | size | INIT (0x10, client → server)     | RESPONSE (0x11, server → client)      |
 * |--------|------|----------------------------------|---------------------------------------|
 * | 0      | 4    | version, type, flags, key phase  | version, type, flags, key phase       |
 * | 4      | 4    | session id                       | session id                            |
 * | 8      | 8    | client timestamp (ms)            | the INIT's timestamp, echoed          |
 * | 16     | 32   | client ephemeral X25519 key      | server ephemeral X25519 key           |
 * | 48     | 16   | MAC over bytes 0–47              | MAC over bytes 0–47 and the INIT's MAC|
 *
 * Flags bit 0 on a handshake message means "authenticated with a shared secret"; without a secret
 * the key and MAC fields are zero. Flags bit 1 on a RESPONSE means the server already knew the
 * session. RESET (0x12, 8 bytes: version, type, 0, key phase, session id)
 * tells a client that the server does not know its session; NOTICE (0x13, 12 bytes: version, type,
 * code, key phase, session id, 4 reserved) explains a refused handshake.
 */

/** The protocol version this module speaks. */
export const PROTOCOL_VERSION = 1;

/** Message type codes (byte 1). */
export const MessageType = {
  data: 0x01,
  probe: 0x02,
  probeReply: 0x03,
  fec: 0x04,
  flowOpen: 0x05,
  flowReply: 0x06,
  init: 0x10,
  response: 0x11,
  reset: 0x12,
  notice: 0x13,
} as const;

/** The message types that carry the sealed header. */
export type SealedType = "data" | "probe" | "probe-reply" | "fec" | "flow-open" | "flow-reply";

/** Flag bit: a sealed body is encrypted and authenticated; a handshake is authenticated. */
export const FLAG_AUTHENTICATED = 0x01;
/**
 * Flag bit on a RESPONSE: the server already knew the session, and (without a secret) the new key
 * phase continues the previous phase's sequence numbers and window.
 */
export const FLAG_SESSION_CONTINUED = 0x02;

/** Size of the sealed-message header. */
export const SEALED_HEADER_BYTES = 20;
/** Size of the AEAD tag that follows an encrypted body. */
export const TAG_BYTES = 16;
/** Size of INIT and RESPONSE messages. */
export const HANDSHAKE_BYTES = 64;
/** Offset of the ephemeral public key in INIT and RESPONSE. */
export const HANDSHAKE_KEY_OFFSET = 16;
/** Offset of the MAC in INIT and RESPONSE (also the number of bytes it covers). */
export const HANDSHAKE_MAC_OFFSET = 48;
/** Size of a RESET message. */
export const RESET_BYTES = 8;
/** Size of a NOTICE message. */
export const NOTICE_BYTES = 12;
/** Largest sequence number (sequence numbers are JavaScript-safe integers). */
export const MAX_SEQUENCE = 2 ** 53 - 1;
/** Largest flow id. */
export const MAX_FLOW_ID = 0xffff;

/** Bytes a sealed datagram adds around an application payload: header plus tag. */
export const TUNNEL_OVERHEAD_BYTES = SEALED_HEADER_BYTES + TAG_BYTES;

/** Why a NOTICE was sent (byte 2). */
export const NoticeCode = {
  /** The server has a secret; the client's INIT was not authenticated. */
  secretRequired: 1,
  /** The INIT's MAC did not verify: the two ends hold different secrets. */
  secretMismatch: 2,
  /** The client authenticated its INIT but the server has no secret configured. */
  secretNotConfigured: 3,
} as const;

/** A NOTICE code's value. */
export type NoticeCodeValue = typeof NoticeCode[keyof typeof NoticeCode];

/** The decoded sealed header; `body` is a view into the datagram (not a copy). */
export interface SealedMessage {
  readonly type: SealedType;
  readonly authenticated: boolean;
  readonly keyPhase: number;
  readonly sessionId: number;
  readonly sequence: number;
  readonly flowId: number;
  /** Position of the datagram in its flow (16 bits, wrapping): what a reorder buffer sorts by. */
  readonly flowSequence: number;
  /** The header bytes (associated data for the AEAD). */
  readonly header: Uint8Array;
  /** Plaintext or ciphertext‖tag, a view into the datagram. */
  readonly body: Uint8Array;
}

/** A decoded INIT or RESPONSE; `publicKey` and `mac` are views into the datagram. */
export interface HandshakeMessage {
  readonly type: "init" | "response";
  readonly authenticated: boolean;
  /** RESPONSE only: the server already knew the session (see {@link FLAG_SESSION_CONTINUED}). */
  readonly sessionContinued: boolean;
  readonly keyPhase: number;
  readonly sessionId: number;
  readonly timestampMs: number;
  readonly publicKey: Uint8Array;
  readonly mac: Uint8Array;
  /** The bytes the MAC covers (0–47). */
  readonly macInput: Uint8Array;
}

/** A decoded RESET. */
export interface ResetMessage {
  readonly type: "reset";
  readonly keyPhase: number;
  readonly sessionId: number;
}

/** A decoded NOTICE. */
export interface NoticeMessage {
  readonly type: "notice";
  readonly code: number;
  readonly keyPhase: number;
  readonly sessionId: number;
}

/** Any message of ours. */
export type Message = SealedMessage | HandshakeMessage | ResetMessage | NoticeMessage;

/** Why a datagram could not be decoded; each is a drop counter. */
export type DecodeFailure = "malformed" | "bad-version" | "unknown-type";

/** Outcome of {@link decodeMessage}. */
export type Decoded = { readonly ok: true; readonly message: Message } | {
  readonly ok: false;
  readonly reason: DecodeFailure;
};

const SEALED_TYPES: Record<number, SealedType> = {
  [MessageType.data]: "data",
  [MessageType.probe]: "probe",
  [MessageType.probeReply]: "probe-reply",
  [MessageType.fec]: "fec",
  [MessageType.flowOpen]: "flow-open",
  [MessageType.flowReply]: "flow-reply",
};

const SEALED_TYPE_CODES: Record<SealedType, number> = {
  "data": MessageType.data,
  "probe": MessageType.probe,
  "probe-reply": MessageType.probeReply,
  "fec": MessageType.fec,
  "flow-open": MessageType.flowOpen,
  "flow-reply": MessageType.flowReply,
};

const TWO_TO_32 = 2 ** 32;

/**
 * Decodes any datagram. Never throws: hostile input yields `{ ok: false, reason }`.
 * Views returned point into `datagram`; copy them before the buffer is reused.
 */
export function decodeMessage(datagram: Uint8Array): Decoded {
  if (datagram.length < RESET_BYTES) return { ok: false, reason: "malformed" };
  if (datagram[0] !== PROTOCOL_VERSION) return { ok: false, reason: "bad-version" };
  const view = new DataView(datagram.buffer, datagram.byteOffset, datagram.byteLength);
  const typeCode = datagram[1];
  const sealedType = SEALED_TYPES[typeCode];
  if (sealedType !== undefined) return decodeSealed(datagram, view, sealedType);
  switch (typeCode) {
    case MessageType.init:
    case MessageType.response:
      return decodeHandshake(datagram, view, typeCode === MessageType.init ? "init" : "response");
    case MessageType.reset:
      if (datagram.length !== RESET_BYTES || datagram[2] !== 0) {
        return { ok: false, reason: "malformed" };
      }
      return {
        ok: true,
        message: { type: "reset", keyPhase: datagram[3], sessionId: view.getUint32(4) },
      };
    case MessageType.notice:
      if (datagram.length !== NOTICE_BYTES) return { ok: false, reason: "malformed" };
      return {
        ok: true,
        message: {
          type: "notice",
          code: datagram[2],
          keyPhase: datagram[3],
          sessionId: view.getUint32(4),
        },
      };
    default:
      return { ok: false, reason: "unknown-type" };
  }
}

function decodeSealed(datagram: Uint8Array, view: DataView, type: SealedType): Decoded {
  if (datagram.length < SEALED_HEADER_BYTES) return { ok: false, reason: "malformed" };
  const flags = datagram[2];
  const authenticated = (flags & FLAG_AUTHENTICATED) !== 0;
  const sequenceHigh = view.getUint32(8);
  const sessionId = view.getUint32(4);
  if (flags & ~FLAG_AUTHENTICATED || sequenceHigh >= 0x200000 || sessionId === 0) {
    return { ok: false, reason: "malformed" };
  }
  if (authenticated && datagram.length < SEALED_HEADER_BYTES + TAG_BYTES) {
    return { ok: false, reason: "malformed" };
  }
  return {
    ok: true,
    message: {
      type,
      authenticated,
      keyPhase: datagram[3],
      sessionId,
      sequence: sequenceHigh * TWO_TO_32 + view.getUint32(12),
      flowId: view.getUint16(16),
      flowSequence: view.getUint16(18),
      header: datagram.subarray(0, SEALED_HEADER_BYTES),
      body: datagram.subarray(SEALED_HEADER_BYTES),
    },
  };
}

function decodeHandshake(
  datagram: Uint8Array,
  view: DataView,
  type: "init" | "response",
): Decoded {
  const flags = datagram[2];
  const sessionId = view.getUint32(4);
  const allowedFlags = type === "response"
    ? FLAG_AUTHENTICATED | FLAG_SESSION_CONTINUED
    : FLAG_AUTHENTICATED;
  if (
    datagram.length !== HANDSHAKE_BYTES || flags & ~allowedFlags || sessionId === 0 ||
    view.getUint32(8) >= 0x200000
  ) {
    return { ok: false, reason: "malformed" };
  }
  return {
    ok: true,
    message: {
      type,
      authenticated: (flags & FLAG_AUTHENTICATED) !== 0,
      sessionContinued: (flags & FLAG_SESSION_CONTINUED) !== 0,
      keyPhase: datagram[3],
      sessionId,
      timestampMs: view.getUint32(8) * TWO_TO_32 + view.getUint32(12),
      publicKey: datagram.subarray(HANDSHAKE_KEY_OFFSET, HANDSHAKE_MAC_OFFSET),
      mac: datagram.subarray(HANDSHAKE_MAC_OFFSET, HANDSHAKE_BYTES),
      macInput: datagram.subarray(0, HANDSHAKE_MAC_OFFSET),
    },
  };
}

/** The fields of a sealed header to encode. */
export interface SealedHeaderFields {
  readonly type: SealedType;
  readonly authenticated: boolean;
  readonly keyPhase: number;
  readonly sessionId: number;
  readonly sequence: number;
  readonly flowId: number;
  /** Position in the flow, 16 bits (0 where the receiver does not reorder, e.g. probes). */
  readonly flowSequence?: number;
}

/** Writes a sealed header into `out[0..20)`. */
export function encodeSealedHeader(out: Uint8Array, fields: SealedHeaderFields): void {
  const view = new DataView(out.buffer, out.byteOffset, SEALED_HEADER_BYTES);
  out[0] = PROTOCOL_VERSION;
  out[1] = SEALED_TYPE_CODES[fields.type];
  out[2] = fields.authenticated ? FLAG_AUTHENTICATED : 0;
  out[3] = fields.keyPhase;
  view.setUint32(4, fields.sessionId);
  view.setUint32(8, Math.floor(fields.sequence / TWO_TO_32));
  view.setUint32(12, fields.sequence >>> 0);
  view.setUint16(16, fields.flowId);
  view.setUint16(18, (fields.flowSequence ?? 0) & 0xffff);
}

/** The fields of an INIT or RESPONSE, before its MAC. */
export interface HandshakeFields {
  readonly type: "init" | "response";
  readonly authenticated: boolean;
  /** RESPONSE only: set {@link FLAG_SESSION_CONTINUED}. */
  readonly sessionContinued?: boolean;
  readonly keyPhase: number;
  readonly sessionId: number;
  readonly timestampMs: number;
  /** 32 bytes, or undefined without a secret (written as zeros). */
  readonly publicKey?: Uint8Array;
}

/** Encodes an INIT or RESPONSE with a zero MAC; the caller fills bytes 48–63 when authenticated. */
export function encodeHandshake(fields: HandshakeFields): Uint8Array {
  const out = new Uint8Array(HANDSHAKE_BYTES);
  const view = new DataView(out.buffer);
  out[0] = PROTOCOL_VERSION;
  out[1] = fields.type === "init" ? MessageType.init : MessageType.response;
  out[2] = (fields.authenticated ? FLAG_AUTHENTICATED : 0) |
    (fields.sessionContinued ? FLAG_SESSION_CONTINUED : 0);
  out[3] = fields.keyPhase;
  view.setUint32(4, fields.sessionId);
  view.setUint32(8, Math.floor(fields.timestampMs / TWO_TO_32));
  view.setUint32(12, fields.timestampMs >>> 0);
  if (fields.publicKey) out.set(fields.publicKey, HANDSHAKE_KEY_OFFSET);
  return out;
}

/** Encodes a RESET for a session the server does not know. */
export function encodeReset(sessionId: number, keyPhase: number): Uint8Array {
  const out = new Uint8Array(RESET_BYTES);
  out[0] = PROTOCOL_VERSION;
  out[1] = MessageType.reset;
  out[3] = keyPhase;
  new DataView(out.buffer).setUint32(4, sessionId);
  return out;
}

/** Encodes a NOTICE explaining why a handshake was refused. */
export function encodeNotice(
  code: NoticeCodeValue,
  sessionId: number,
  keyPhase: number,
): Uint8Array {
  const out = new Uint8Array(NOTICE_BYTES);
  out[0] = PROTOCOL_VERSION;
  out[1] = MessageType.notice;
  out[2] = code;
  out[3] = keyPhase;
  new DataView(out.buffer).setUint32(4, sessionId);
  return out;
}

/** The largest datagram UDP carries over IPv4 (65535 − 20 − 8). */
export const MAX_DATAGRAM_BYTES = 65507;

/** The largest application datagram the tunnel carries: whatever fits with our overhead. */
export const MAX_APP_PAYLOAD_BYTES = MAX_DATAGRAM_BYTES - TUNNEL_OVERHEAD_BYTES;

/**
 * Size of a PROBE body: path index (2), reserved (2), probe id (4), send time in ms (float64, 8), then
 * the client's scheduling advice for the server's replies (8, see {@link PathAdvice}). A PROBE is as
 * large as its reply, so a reply never amplifies.
 */
export const PROBE_BODY_BYTES = 24;
/** The part of a PROBE body that its reply echoes. */
const PROBE_ECHO_BYTES = 16;
/** Size of a PROBE_REPLY body: the first 16 bytes of the PROBE echoed, then datagrams the server received on that path (4), reserved (4). */
export const PROBE_REPLY_BODY_BYTES = 24;

/** Scheduling modes as the advice byte carries them. */
const MODE_CODES = { redundant: 0, adaptive: 1, balance: 2, fec: 3 } as const;
const MODES_BY_CODE = ["redundant", "adaptive", "balance", "fec"] as const;
/** Shards in one FEC group at most (GF(2^8) Reed–Solomon). */
const MAX_FEC_GROUP_SHARDS = 255;
/** Advice flag: the client wants the server's datagrams on this path. */
const ADVICE_CARRY_DATA = 0x01;

/** How the server should send toward the client (the same modes as the client's `--mode`). */
export type AdviceMode = keyof typeof MODE_CODES;

/**
 * What the client tells the server, in every PROBE, about sending back: the client measures every
 * path in both directions, so it decides and the server follows (the server never guesses).
 *
 * | offset | size | field                                                          |
 * |--------|------|----------------------------------------------------------------|
 * | 16     | 1    | mode (0 redundant, 1 adaptive, 2 balance, 3 fec)               |
 * | 17     | 1    | flags (bit 0: carry data on this path)                         |
 * | 18     | 2    | weight of this path (balance)                                  |
 * | 20     | 2    | reorder timeout in ms (0: deliver as datagrams arrive)         |
 * | 22     | 1    | FEC data shards per group (fec mode)                           |
 * | 23     | 1    | FEC parity shards per group (fec mode)                         |
 */
export interface PathAdvice {
  readonly mode: AdviceMode;
  /** False when the client does not want data on this path (down, unused by adaptive, a backup). */
  readonly carryData: boolean;
  /** Share of datagrams in balance mode, relative to the other paths' weights (1..65535). */
  readonly weight: number;
  readonly reorderTimeoutMs: number;
  readonly fecDataShards: number;
  readonly fecParityShards: number;
}

/** The fields of a PROBE (and the echoed part of a PROBE_REPLY). */
export interface ProbeFields {
  readonly pathIndex: number;
  readonly probeId: number;
  readonly sentAtMs: number;
  /** Absent in a PROBE_REPLY's echo, and in PROBEs encoded without advice (read as redundant). */
  readonly advice?: PathAdvice;
}

/** Encodes a PROBE body. */
export function encodeProbeBody(fields: ProbeFields): Uint8Array {
  const body = new Uint8Array(PROBE_BODY_BYTES);
  const view = new DataView(body.buffer);
  view.setUint16(0, fields.pathIndex);
  view.setUint32(4, fields.probeId);
  view.setFloat64(8, fields.sentAtMs);
  const advice = fields.advice;
  if (advice) {
    body[16] = MODE_CODES[advice.mode];
    body[17] = advice.carryData ? ADVICE_CARRY_DATA : 0;
    view.setUint16(18, Math.max(1, Math.min(0xffff, Math.round(advice.weight))));
    view.setUint16(20, Math.max(0, Math.min(0xffff, Math.round(advice.reorderTimeoutMs))));
    body[22] = advice.fecDataShards & 0xff;
    body[23] = advice.fecParityShards & 0xff;
  } else {
    body[17] = ADVICE_CARRY_DATA;
    view.setUint16(18, 1);
  }
  return body;
}

/** Decodes the part of a PROBE that a PROBE_REPLY echoes (no advice); undefined when too short. */
export function decodeProbeEcho(body: Uint8Array): ProbeFields | undefined {
  if (body.length < PROBE_ECHO_BYTES) return undefined;
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  return { pathIndex: view.getUint16(0), probeId: view.getUint32(4), sentAtMs: view.getFloat64(8) };
}

/** Decodes a PROBE body with its advice (none when the body is short); undefined when too short. */
export function decodeProbeBody(body: Uint8Array): ProbeFields | undefined {
  const fields = decodeProbeEcho(body);
  if (!fields || body.length < PROBE_BODY_BYTES) return fields;
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const mode = MODES_BY_CODE[body[16]];
  if (mode === undefined) return fields; // an unknown mode: the server keeps its default
  // A group shape no Reed–Solomon code has (no data shards, more than 255 in all) is no advice.
  const fecValid = body[22] >= 1 && body[22] + body[23] <= MAX_FEC_GROUP_SHARDS;
  return {
    ...fields,
    advice: {
      mode,
      carryData: (body[17] & ADVICE_CARRY_DATA) !== 0,
      weight: Math.max(1, view.getUint16(18)),
      reorderTimeoutMs: view.getUint16(20),
      fecDataShards: fecValid ? body[22] : 0,
      fecParityShards: fecValid ? body[23] : 0,
    },
  };
}

/** Encodes a PROBE_REPLY body: the probe's body echoed and the server's receive count for the path. */
export function encodeProbeReplyBody(probeBody: Uint8Array, receivedOnPath: number): Uint8Array {
  const body = new Uint8Array(PROBE_REPLY_BODY_BYTES);
  body.set(probeBody.subarray(0, PROBE_ECHO_BYTES));
  new DataView(body.buffer).setUint32(PROBE_ECHO_BYTES, receivedOnPath >>> 0);
  return body;
}

/** Reads the server's receive count from a PROBE_REPLY body; undefined when too short. */
export function decodeProbeReplyCount(body: Uint8Array): number | undefined {
  if (body.length < PROBE_REPLY_BODY_BYTES) return undefined;
  return new DataView(body.buffer, body.byteOffset, body.byteLength).getUint32(PROBE_ECHO_BYTES);
}

// -------------------------------------------------------------------------------------------------
// Flows with a target of their own

/**
 * Flow ids from here up are "declared": the client names their target in a FLOW_OPEN. Ids below are
 * classic flows, which go to the server's default target. The split lets the server tell a declared
 * flow whose FLOW_OPEN is still on its way (hold its datagrams) from a classic one (deliver).
 */
export const DECLARED_FLOW_BASE = 0x8000;

/** Where a declared flow's datagrams go: a target the server names, or an address it must allow. */
export type FlowTarget =
  | { readonly kind: "named"; readonly name: string }
  | {
    readonly kind: "address";
    /** An IPv4 or IPv6 literal (no brackets) or a host name the server resolves. */
    readonly host: string;
    readonly port: number;
  };

/** Why the server refused a declared flow (FLOW_REPLY status 1–6). */
export type FlowRefusal =
  | "denied"
  | "unknown-target"
  | "unresolvable"
  | "limit"
  | "no-default-target"
  | "unreachable";

const FLOW_STATUS_CODES: readonly ("open" | FlowRefusal)[] = [
  "open",
  "denied",
  "unknown-target",
  "unresolvable",
  "limit",
  "no-default-target",
  "unreachable",
];
const FLOW_TARGET_NAMED = 1;
const FLOW_TARGET_ADDRESS = 2;
/** Host names and target names are at most this long (a DNS name's limit). */
export const MAX_FLOW_TARGET_NAME_BYTES = 253;
/** Size of a FLOW_REPLY body: status (1), reserved (3). */
export const FLOW_REPLY_BODY_BYTES = 4;

const textEncoder = new TextEncoder();
const strictTextDecoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Encodes a FLOW_OPEN body: kind (1: named, 2: address), port (u16, 0 for a name), name length (u8),
 * name (UTF-8). Throws RangeError for a name that does not fit (a programming error: callers check).
 */
export function encodeFlowOpenBody(target: FlowTarget): Uint8Array {
  const name = textEncoder.encode(target.kind === "named" ? target.name : target.host);
  if (name.length === 0 || name.length > MAX_FLOW_TARGET_NAME_BYTES) {
    throw new RangeError(`a flow target name must be 1 to ${MAX_FLOW_TARGET_NAME_BYTES} bytes`);
  }
  const body = new Uint8Array(4 + name.length);
  body[0] = target.kind === "named" ? FLOW_TARGET_NAMED : FLOW_TARGET_ADDRESS;
  new DataView(body.buffer).setUint16(1, target.kind === "named" ? 0 : target.port);
  body[3] = name.length;
  body.set(name, 4);
  return body;
}

/** Decodes a FLOW_OPEN body; undefined for anything malformed (never throws). */
export function decodeFlowOpenBody(body: Uint8Array): FlowTarget | undefined {
  if (body.length < 5) return undefined;
  const kind = body[0];
  const port = (body[1] << 8) | body[2];
  const length = body[3];
  if (length === 0 || body.length !== 4 + length) return undefined;
  let name: string;
  try {
    name = strictTextDecoder.decode(body.subarray(4));
  } catch {
    return undefined;
  }
  // Names end up in logs and resolvers: no control characters or spaces.
  for (let i = 0; i < name.length; i++) {
    const code = name.charCodeAt(i);
    if (code <= 0x20 || code === 0x7f) return undefined;
  }
  if (kind === FLOW_TARGET_NAMED && port === 0) return { kind: "named", name };
  if (kind === FLOW_TARGET_ADDRESS && port !== 0) return { kind: "address", host: name, port };
  return undefined;
}

/** Encodes a FLOW_REPLY body. */
export function encodeFlowReplyBody(status: "open" | FlowRefusal): Uint8Array {
  const body = new Uint8Array(FLOW_REPLY_BODY_BYTES);
  body[0] = FLOW_STATUS_CODES.indexOf(status);
  return body;
}

/** Decodes a FLOW_REPLY body; undefined when malformed. */
export function decodeFlowReplyBody(body: Uint8Array): "open" | FlowRefusal | undefined {
  if (body.length !== FLOW_REPLY_BODY_BYTES) return undefined;
  return FLOW_STATUS_CODES[body[0]];
}
