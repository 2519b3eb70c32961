/**
 * The wire format: every message type survives an encode/decode round trip with its fields intact,
 * every out-of-range field is refused with the right reason, and decoding never throws.
 */
import assert from "node:assert/strict";
import { seededRandom } from "../../lib/base/rng.ts";
import {
  type Decoded,
  decodeMessage,
  decodeProbeBody,
  decodeProbeEcho,
  decodeProbeReplyCount,
  encodeHandshake,
  encodeNotice,
  encodeProbeBody,
  encodeProbeReplyBody,
  encodeReset,
  encodeSealedHeader,
  FLAG_AUTHENTICATED,
  HANDSHAKE_BYTES,
  type HandshakeMessage,
  MAX_FLOW_ID,
  MAX_SEQUENCE,
  type Message,
  MessageType,
  NOTICE_BYTES,
  NoticeCode,
  PROBE_BODY_BYTES,
  PROBE_REPLY_BODY_BYTES,
  PROTOCOL_VERSION,
  RESET_BYTES,
  SEALED_HEADER_BYTES,
  type SealedHeaderFields,
  type SealedMessage,
  type SealedType,
  TAG_BYTES,
} from "../../lib/wire/messages.ts";

// ---------------------------------------------------------------------------------------------------
// Helpers

/** A sealed datagram: the header of `fields`, then `body`. */
function sealedDatagram(fields: SealedHeaderFields, body: Uint8Array): Uint8Array {
  const datagram = new Uint8Array(SEALED_HEADER_BYTES + body.length);
  encodeSealedHeader(datagram, fields);
  datagram.set(body, SEALED_HEADER_BYTES);
  return datagram;
}

const DATA_FIELDS: SealedHeaderFields = {
  type: "data",
  authenticated: false,
  keyPhase: 3,
  sessionId: 0x12345678,
  sequence: 42,
  flowId: 7,
};

/** A valid plaintext DATA datagram with a 4-byte body, to be broken by the tests. */
function validData(): Uint8Array {
  return sealedDatagram(DATA_FIELDS, new Uint8Array([9, 8, 7, 6]));
}

function decodedMessage(datagram: Uint8Array): Message {
  const decoded = decodeMessage(datagram);
  assert.ok(decoded.ok, `expected a message, got ${JSON.stringify(decoded)}`);
  return decoded.message;
}

function decodedSealed(datagram: Uint8Array): SealedMessage {
  const message = decodedMessage(datagram);
  assert.ok(
    message.type === "data" || message.type === "probe" || message.type === "probe-reply" ||
      message.type === "fec" || message.type === "flow-open" || message.type === "flow-reply",
  );
  return message;
}

function decodedHandshake(datagram: Uint8Array): HandshakeMessage {
  const message = decodedMessage(datagram);
  assert.ok(message.type === "init" || message.type === "response");
  return message;
}

function failure(datagram: Uint8Array): string {
  const decoded = decodeMessage(datagram);
  assert.equal(decoded.ok, false, `expected a refusal, got ${JSON.stringify(decoded)}`);
  return (decoded as Extract<Decoded, { ok: false }>).reason;
}

function withByte(datagram: Uint8Array, offset: number, value: number): Uint8Array {
  const copy = datagram.slice();
  copy[offset] = value;
  return copy;
}

const SAMPLE_KEY = Uint8Array.from({ length: 32 }, (_, index) => index + 1);

function validInit(): Uint8Array {
  const init = encodeHandshake({
    type: "init",
    authenticated: true,
    keyPhase: 9,
    sessionId: 0xdeadbeef,
    timestampMs: 1_700_000_000_123,
    publicKey: SAMPLE_KEY,
  });
  init.fill(0xab, 48, 64);
  return init;
}

// ---------------------------------------------------------------------------------------------------
// Round trips: sealed messages

Deno.test("a plaintext DATA datagram decodes to the fields it was encoded with", () => {
  const message = decodedSealed(validData());
  assert.equal(message.type, "data");
  assert.equal(message.authenticated, false);
  assert.equal(message.keyPhase, 3);
  assert.equal(message.sessionId, 0x12345678);
  assert.equal(message.sequence, 42);
  assert.equal(message.flowId, 7);
  assert.deepEqual([...message.body], [9, 8, 7, 6]);
  assert.equal(message.header.length, SEALED_HEADER_BYTES);
});

Deno.test("every sealed type round-trips its type code", () => {
  const expectedCodes: Record<SealedType, number> = {
    "data": MessageType.data,
    "probe": MessageType.probe,
    "probe-reply": MessageType.probeReply,
    "fec": MessageType.fec,
    "flow-open": MessageType.flowOpen,
    "flow-reply": MessageType.flowReply,
  };
  for (
    const type of ["data", "probe", "probe-reply", "fec", "flow-open", "flow-reply"] as const
  ) {
    const datagram = sealedDatagram({ ...DATA_FIELDS, type }, new Uint8Array(4));
    assert.equal(datagram[1], expectedCodes[type], type);
    assert.equal(decodedSealed(datagram).type, type);
  }
});

Deno.test("an authenticated sealed header sets flag bit 0 and decodes as authenticated", () => {
  const datagram = sealedDatagram(
    { ...DATA_FIELDS, authenticated: true },
    new Uint8Array(TAG_BYTES + 3),
  );
  assert.equal(datagram[2], FLAG_AUTHENTICATED);
  const message = decodedSealed(datagram);
  assert.equal(message.authenticated, true);
  assert.equal(message.body.length, TAG_BYTES + 3);
});

Deno.test("sequence numbers up to 2^53 - 1 round-trip exactly", () => {
  const sequences = [
    0,
    1,
    2 ** 32 - 1,
    2 ** 32,
    2 ** 32 + 1,
    2 ** 52 + 12345,
    MAX_SEQUENCE - 2 ** 32,
    MAX_SEQUENCE - 1,
    MAX_SEQUENCE,
  ];
  for (const sequence of sequences) {
    const datagram = sealedDatagram({ ...DATA_FIELDS, sequence }, new Uint8Array(0));
    assert.equal(decodedSealed(datagram).sequence, sequence, `sequence ${sequence}`);
  }
});

Deno.test("the largest sequence number is written as high word 2^21 - 1 and low word 2^32 - 1", () => {
  const datagram = sealedDatagram({ ...DATA_FIELDS, sequence: MAX_SEQUENCE }, new Uint8Array(0));
  const view = new DataView(datagram.buffer);
  assert.equal(view.getUint32(8), 2 ** 21 - 1);
  assert.equal(view.getUint32(12), 2 ** 32 - 1);
});

Deno.test("flow ids 0 and 65535 round-trip", () => {
  for (const flowId of [0, 1, 0x8000, MAX_FLOW_ID]) {
    const datagram = sealedDatagram({ ...DATA_FIELDS, flowId }, new Uint8Array(1));
    assert.equal(decodedSealed(datagram).flowId, flowId);
  }
});

Deno.test("session ids 1 and 2^32 - 1 and key phases 0 and 255 round-trip", () => {
  for (const [sessionId, keyPhase] of [[1, 0], [0xffffffff, 255], [0x80000000, 128]]) {
    const message = decodedSealed(
      sealedDatagram({ ...DATA_FIELDS, sessionId, keyPhase }, new Uint8Array(1)),
    );
    assert.equal(message.sessionId, sessionId);
    assert.equal(message.keyPhase, keyPhase);
  }
});

Deno.test("the reserved bytes of a sealed header are written as zero", () => {
  const datagram = new Uint8Array(SEALED_HEADER_BYTES).fill(0xff);
  encodeSealedHeader(datagram, DATA_FIELDS);
  assert.deepEqual([...datagram.subarray(18, 20)], [0, 0]);
});

Deno.test("a sealed body is a view into the datagram, not a copy", () => {
  const datagram = validData();
  const message = decodedSealed(datagram);
  assert.equal(message.body.buffer, datagram.buffer);
  assert.equal(message.body.byteOffset, SEALED_HEADER_BYTES);
  assert.equal(message.header.buffer, datagram.buffer);
});

Deno.test("a sealed datagram with an empty body decodes with an empty body", () => {
  const message = decodedSealed(sealedDatagram(DATA_FIELDS, new Uint8Array(0)));
  assert.equal(message.body.length, 0);
});

Deno.test("a datagram inside a larger buffer at an odd offset decodes from its own bytes", () => {
  const backing = new Uint8Array(200).fill(0xee);
  const datagram = validData();
  backing.set(datagram, 37);
  const message = decodedSealed(backing.subarray(37, 37 + datagram.length));
  assert.equal(message.sessionId, 0x12345678);
  assert.equal(message.sequence, 42);
  assert.deepEqual([...message.body], [9, 8, 7, 6]);
});

Deno.test("encodeSealedHeader writes into an offset view without touching the bytes around it", () => {
  const backing = new Uint8Array(64).fill(0xee);
  encodeSealedHeader(backing.subarray(5, 25), { ...DATA_FIELDS, sequence: 2 ** 40 + 3 });
  assert.equal(backing[4], 0xee);
  assert.equal(backing[25], 0xee);
  assert.equal(decodedSealed(backing.subarray(5, 25)).sequence, 2 ** 40 + 3);
});

// ---------------------------------------------------------------------------------------------------
// Round trips: handshake, RESET, NOTICE

Deno.test("an INIT round-trips every field, its key, its MAC and the MAC input", () => {
  const init = validInit();
  const message = decodedHandshake(init);
  assert.equal(message.type, "init");
  assert.equal(message.authenticated, true);
  assert.equal(message.keyPhase, 9);
  assert.equal(message.sessionId, 0xdeadbeef);
  assert.equal(message.timestampMs, 1_700_000_000_123);
  assert.deepEqual([...message.publicKey], [...SAMPLE_KEY]);
  assert.deepEqual([...message.mac], Array(16).fill(0xab));
  assert.deepEqual([...message.macInput], [...init.subarray(0, 48)]);
});

Deno.test("a RESPONSE round-trips with type response", () => {
  const response = encodeHandshake({
    type: "response",
    authenticated: true,
    keyPhase: 255,
    sessionId: 1,
    timestampMs: 2 ** 53 - 1,
    publicKey: SAMPLE_KEY,
  });
  assert.equal(response[1], MessageType.response);
  const message = decodedHandshake(response);
  assert.equal(message.type, "response");
  assert.equal(message.keyPhase, 255);
  assert.equal(message.sessionId, 1);
  assert.equal(message.timestampMs, 2 ** 53 - 1);
});

Deno.test("an unauthenticated INIT has zero key and MAC and decodes as unauthenticated", () => {
  const init = encodeHandshake({
    type: "init",
    authenticated: false,
    keyPhase: 0,
    sessionId: 5,
    timestampMs: 0,
  });
  assert.equal(init.length, HANDSHAKE_BYTES);
  assert.equal(init[2], 0);
  assert.ok(init.subarray(16).every((byte) => byte === 0));
  const message = decodedHandshake(init);
  assert.equal(message.authenticated, false);
  assert.equal(message.timestampMs, 0);
});

Deno.test("a RESET round-trips its session id and key phase", () => {
  const reset = encodeReset(0xcafebabe, 17);
  assert.equal(reset.length, RESET_BYTES);
  assert.deepEqual(decodedMessage(reset), { type: "reset", keyPhase: 17, sessionId: 0xcafebabe });
});

Deno.test("a NOTICE round-trips its code, session id and key phase", () => {
  for (const code of Object.values(NoticeCode)) {
    const notice = encodeNotice(code, 0x01020304, 200);
    assert.equal(notice.length, NOTICE_BYTES);
    assert.deepEqual(decodedMessage(notice), {
      type: "notice",
      code,
      keyPhase: 200,
      sessionId: 0x01020304,
    });
  }
});

// ---------------------------------------------------------------------------------------------------
// Probe bodies

Deno.test("a PROBE body round-trips path index, probe id and a fractional send time", () => {
  const body = encodeProbeBody({ pathIndex: 65535, probeId: 0xffffffff, sentAtMs: 1234.5678 });
  assert.equal(body.length, PROBE_BODY_BYTES);
  assert.deepEqual(decodeProbeEcho(body), {
    pathIndex: 65535,
    probeId: 0xffffffff,
    sentAtMs: 1234.5678,
  });
  // Without advice, a PROBE asks for what the server always did: redundant, data on this path.
  assert.deepEqual(decodeProbeBody(body)?.advice, {
    mode: "redundant",
    carryData: true,
    weight: 1,
    reorderTimeoutMs: 0,
    fecDataShards: 0,
    fecParityShards: 0,
  });
});

Deno.test("a PROBE body carries the client's advice for the server", () => {
  const advice = {
    mode: "fec",
    carryData: false,
    weight: 700,
    reorderTimeoutMs: 40,
    fecDataShards: 20,
    fecParityShards: 14,
  } as const;
  const body = encodeProbeBody({ pathIndex: 3, probeId: 9, sentAtMs: 5, advice });
  assert.equal(body.length, PROBE_BODY_BYTES);
  assert.deepEqual(decodeProbeBody(body), { pathIndex: 3, probeId: 9, sentAtMs: 5, advice });
  for (const mode of ["redundant", "adaptive", "balance", "fec"] as const) {
    const encoded = encodeProbeBody({
      pathIndex: 0,
      probeId: 0,
      sentAtMs: 0,
      advice: { ...advice, mode },
    });
    assert.equal(decodeProbeBody(encoded)?.advice?.mode, mode);
  }
  // A mode this version does not know: no advice (the server keeps what it had).
  body[16] = 9;
  assert.equal(decodeProbeBody(body)?.advice, undefined);
});

Deno.test("a PROBE_REPLY body echoes the probe and carries the receive count", () => {
  const probe = encodeProbeBody({ pathIndex: 2, probeId: 77, sentAtMs: 99.25 });
  const reply = encodeProbeReplyBody(probe, 123456);
  assert.equal(reply.length, PROBE_REPLY_BODY_BYTES);
  assert.deepEqual(decodeProbeEcho(reply), { pathIndex: 2, probeId: 77, sentAtMs: 99.25 });
  assert.equal(decodeProbeReplyCount(reply), 123456);
});

Deno.test("a PROBE_REPLY is no larger than the PROBE it answers", () => {
  assert.ok(PROBE_REPLY_BODY_BYTES <= PROBE_BODY_BYTES);
});

Deno.test("probe bodies inside a larger buffer decode from their own bytes", () => {
  const backing = new Uint8Array(100).fill(0x55);
  backing.set(
    encodeProbeReplyBody(encodeProbeBody({ pathIndex: 1, probeId: 2, sentAtMs: 3 }), 4),
    11,
  );
  const view = backing.subarray(11, 11 + PROBE_REPLY_BODY_BYTES);
  assert.deepEqual(decodeProbeEcho(view), { pathIndex: 1, probeId: 2, sentAtMs: 3 });
  assert.equal(decodeProbeReplyCount(view), 4);
});

Deno.test("a probe body shorter than 16 bytes decodes as undefined", () => {
  assert.equal(decodeProbeBody(new Uint8Array(15)), undefined);
  assert.notEqual(decodeProbeBody(new Uint8Array(16)), undefined);
});

Deno.test("a probe reply body shorter than 24 bytes has no receive count", () => {
  assert.equal(decodeProbeReplyCount(new Uint8Array(23)), undefined);
  assert.equal(decodeProbeReplyCount(new Uint8Array(24)), 0);
});

// ---------------------------------------------------------------------------------------------------
// Refusals

Deno.test("refuses a datagram shorter than the smallest message as malformed", () => {
  for (let length = 0; length < RESET_BYTES; length++) {
    assert.equal(failure(validData().subarray(0, length)), "malformed", `length ${length}`);
  }
});

Deno.test("refuses a sealed datagram shorter than its 20-byte header as malformed", () => {
  for (const type of [MessageType.data, MessageType.probe, MessageType.probeReply]) {
    const datagram = withByte(validData(), 1, type);
    for (let length = RESET_BYTES; length < SEALED_HEADER_BYTES; length++) {
      assert.equal(failure(datagram.subarray(0, length)), "malformed", `type ${type} ${length}`);
    }
    assert.equal(decodeMessage(datagram.subarray(0, SEALED_HEADER_BYTES)).ok, true);
  }
});

Deno.test("refuses an authenticated sealed datagram shorter than header plus tag as malformed", () => {
  const datagram = sealedDatagram(
    { ...DATA_FIELDS, authenticated: true },
    new Uint8Array(TAG_BYTES),
  );
  for (let length = SEALED_HEADER_BYTES; length < SEALED_HEADER_BYTES + TAG_BYTES; length++) {
    assert.equal(failure(datagram.subarray(0, length)), "malformed", `length ${length}`);
  }
  assert.equal(decodedSealed(datagram).body.length, TAG_BYTES);
});

Deno.test("refuses an INIT or RESPONSE of any length but 64 as malformed", () => {
  const init = validInit();
  const response = withByte(init, 1, MessageType.response);
  for (const handshake of [init, response]) {
    for (const length of [8, 20, 47, 48, 63]) {
      assert.equal(failure(handshake.subarray(0, length)), "malformed", `length ${length}`);
    }
    const longer = new Uint8Array(65);
    longer.set(handshake);
    assert.equal(failure(longer), "malformed");
  }
});

Deno.test("refuses a RESET of any length but 8 as malformed", () => {
  const longer = new Uint8Array(RESET_BYTES + 1);
  longer.set(encodeReset(1, 0));
  assert.equal(failure(longer), "malformed");
});

Deno.test("refuses a NOTICE of any length but 12 as malformed", () => {
  const notice = encodeNotice(NoticeCode.secretMismatch, 1, 0);
  for (const length of [8, 11]) assert.equal(failure(notice.subarray(0, length)), "malformed");
  const longer = new Uint8Array(NOTICE_BYTES + 1);
  longer.set(notice);
  assert.equal(failure(longer), "malformed");
});

Deno.test("refuses a RESET whose flags byte is not zero as malformed", () => {
  assert.equal(failure(withByte(encodeReset(1, 0), 2, 1)), "malformed");
});

Deno.test("refuses versions 0, 2 and 255 as bad-version", () => {
  for (const version of [0, 2, 255]) {
    assert.equal(failure(withByte(validData(), 0, version)), "bad-version", `version ${version}`);
    assert.equal(failure(withByte(validInit(), 0, version)), "bad-version", `version ${version}`);
  }
});

Deno.test("the protocol version is 1", () => {
  assert.equal(PROTOCOL_VERSION, 1);
  assert.equal(validData()[0], 1);
});

Deno.test("refuses a type code nobody defined as unknown-type", () => {
  for (const type of [0x00, 0x07, 0x0f, 0x14, 0x20, 0xff]) {
    assert.equal(failure(withByte(validInit(), 1, type)), "unknown-type", `type ${type}`);
  }
});

Deno.test("refuses a sealed header with any reserved flag bit set as malformed", () => {
  for (let bit = 1; bit < 8; bit++) {
    assert.equal(failure(withByte(validData(), 2, 1 << bit)), "malformed", `bit ${bit}`);
  }
});

Deno.test("refuses a handshake with any reserved flag bit set as malformed", () => {
  for (let bit = 1; bit < 8; bit++) {
    assert.equal(failure(withByte(validInit(), 2, 1 | (1 << bit))), "malformed", `bit ${bit}`);
  }
});

Deno.test("refuses a sequence number whose high word is 2^21 or more as malformed", () => {
  for (const high of [0x200000, 0x200001, 0xffffffff]) {
    const datagram = validData();
    new DataView(datagram.buffer).setUint32(8, high);
    assert.equal(failure(datagram), "malformed", `high word ${high}`);
  }
  const atLimit = validData();
  new DataView(atLimit.buffer).setUint32(8, 0x1fffff);
  assert.equal(decodedSealed(atLimit).sequence, 0x1fffff * 2 ** 32 + 42);
});

Deno.test("refuses a handshake timestamp whose high word is 2^21 or more as malformed", () => {
  const init = validInit();
  new DataView(init.buffer).setUint32(8, 0x200000);
  assert.equal(failure(init), "malformed");
});

Deno.test("refuses a sealed datagram for session id 0 as malformed", () => {
  const datagram = validData();
  new DataView(datagram.buffer).setUint32(4, 0);
  assert.equal(failure(datagram), "malformed");
});

Deno.test("refuses a handshake for session id 0 as malformed", () => {
  const init = validInit();
  new DataView(init.buffer).setUint32(4, 0);
  assert.equal(failure(init), "malformed");
});

// ---------------------------------------------------------------------------------------------------
// Hostile input

Deno.test("decodeMessage never throws on random datagrams of every length 0..100", () => {
  const seed = 20261125;
  const random = seededRandom(seed);
  const typeCodes = [...Object.values(MessageType), 0x00, 0x04, 0x14, 0xff];
  const outcomes = new Map<string, number>();
  for (let length = 0; length <= 100; length++) {
    for (let round = 0; round < 300; round++) {
      const datagram = Uint8Array.from({ length }, () => random.below(256));
      // Steer most datagrams past the version and type checks so that every decoder is reached;
      // and make the range checks (flags, session, high words) pass or fail about evenly.
      if (length > 0 && random.next() < 0.9) datagram[0] = PROTOCOL_VERSION;
      if (length > 1 && random.next() < 0.9) {
        datagram[1] = typeCodes[random.below(typeCodes.length)];
      }
      if (length > 2 && random.next() < 0.5) datagram[2] = random.below(2);
      if (length > 11 && random.next() < 0.5) datagram[8] = datagram[9] = 0;
      let decoded: Decoded;
      try {
        decoded = decodeMessage(datagram);
      } catch (error) {
        throw new Error(`decodeMessage threw on length ${length} (seed ${seed}): ${error}`);
      }
      const outcome = decoded.ok ? decoded.message.type : decoded.reason;
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      const message = decoded.ok ? decoded.message : undefined;
      if (message && message.type !== "reset" && message.type !== "notice") {
        assert.notEqual(message.sessionId, 0, `seed ${seed}`);
      }
    }
  }
  // Every outcome was reached, so the fuzzing exercised every decoder and every refusal.
  const expected = [
    "malformed",
    "bad-version",
    "unknown-type",
    "data",
    "probe",
    "probe-reply",
    "init",
    "response",
    "reset",
    "notice",
  ];
  for (const outcome of expected) {
    assert.ok((outcomes.get(outcome) ?? 0) > 0, `never saw ${outcome} (seed ${seed})`);
  }
});
