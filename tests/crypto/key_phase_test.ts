/**
 * Sealing and opening under one key phase: round trips with and without keys, the window checked
 * before any decryption, forged and mismatched datagrams refused without moving the window, and
 * sealing in place.
 */
import assert from "node:assert/strict";
import type { Aead } from "../../lib/crypto/aead.ts";
import { createAead } from "../../lib/crypto/aead_factory.ts";
import { KeyPhase, openMessage, type OpenResult, sealMessage } from "../../lib/crypto/key_phase.ts";
import { REPLAY_WINDOW_SIZE } from "../../lib/crypto/replay_window.ts";
import {
  decodeMessage,
  FLAG_AUTHENTICATED,
  MAX_SEQUENCE,
  SEALED_HEADER_BYTES,
  type SealedMessage,
  TAG_BYTES,
  TUNNEL_OVERHEAD_BYTES,
} from "../../lib/wire/messages.ts";

const SESSION_ID = 0x5eed5eed;
const FLOW_ID = 9;
const KEY = Uint8Array.from({ length: 32 }, (_, index) => 100 + index);

/** An Aead that counts how often it is asked to open. */
function countingAead(inner: Aead): Aead & { opens: number } {
  const counting = {
    algorithm: inner.algorithm,
    opens: 0,
    seal: inner.seal.bind(inner),
    dispose: inner.dispose.bind(inner),
    open(...args: Parameters<Aead["open"]>) {
      counting.opens++;
      return inner.open(...args);
    },
  };
  return counting;
}

/** A sender and a receiver of one direction: both plaintext, or both with the same key. */
function pair(encrypted: boolean, phase = 4) {
  const sendKey = encrypted ? createAead(KEY) : undefined;
  const receiveKey = encrypted ? countingAead(createAead(KEY)) : undefined;
  return {
    sender: new KeyPhase(phase, sendKey, undefined, 0),
    receiver: new KeyPhase(phase, undefined, receiveKey, 0),
    receiveKey,
  };
}

function seal(sender: KeyPhase, text: string, type: "data" | "probe" = "data"): Uint8Array {
  const body = new TextEncoder().encode(text);
  const out = new Uint8Array(body.length + TUNNEL_OVERHEAD_BYTES);
  return sealMessage(sender, SESSION_ID, type, FLOW_ID, body, out).slice();
}

function decode(datagram: Uint8Array): SealedMessage {
  const decoded = decodeMessage(datagram);
  assert.ok(decoded.ok, JSON.stringify(decoded));
  const message = decoded.message;
  assert.ok(message.type === "data" || message.type === "probe" || message.type === "probe-reply");
  return message;
}

function open(receiver: KeyPhase, datagram: Uint8Array): OpenResult {
  return openMessage(receiver, decode(datagram), new Uint8Array(datagram.length));
}

function openedText(receiver: KeyPhase, datagram: Uint8Array): string {
  const result = open(receiver, datagram);
  return result.ok ? new TextDecoder().decode(result.body) : `refused: ${result.reason}`;
}

/** A copy of `datagram` carrying sequence number `sequence` (its tag no longer matches). */
function withSequence(datagram: Uint8Array, sequence: number): Uint8Array {
  const copy = datagram.slice();
  const view = new DataView(copy.buffer);
  view.setUint32(8, Math.floor(sequence / 2 ** 32));
  view.setUint32(12, sequence >>> 0);
  return copy;
}

// ---------------------------------------------------------------------------------------------------
// Round trips

Deno.test("a plaintext datagram round-trips its body, flow id and sequence number", () => {
  const { sender, receiver } = pair(false);
  const datagram = seal(sender, "plain words");
  assert.equal(datagram.length, SEALED_HEADER_BYTES + 11);
  const message = decode(datagram);
  assert.equal(message.authenticated, false);
  assert.equal(message.keyPhase, 4);
  assert.equal(message.sessionId, SESSION_ID);
  assert.equal(message.flowId, FLOW_ID);
  assert.equal(message.sequence, 0);
  assert.equal(openedText(receiver, datagram), "plain words");
});

Deno.test("an encrypted datagram round-trips and carries ciphertext plus a 16-byte tag", () => {
  const { sender, receiver } = pair(true);
  const datagram = seal(sender, "secret words");
  assert.equal(datagram.length, SEALED_HEADER_BYTES + 12 + TAG_BYTES);
  assert.equal(datagram[2], FLAG_AUTHENTICATED);
  assert.notDeepEqual(
    [...datagram.subarray(SEALED_HEADER_BYTES, SEALED_HEADER_BYTES + 12)],
    [...new TextEncoder().encode("secret words")],
  );
  assert.equal(openedText(receiver, datagram), "secret words");
});

Deno.test("each sealed message takes the next sequence number", () => {
  const { sender } = pair(true);
  const sequences = [seal(sender, "a"), seal(sender, "b"), seal(sender, "c", "probe")].map(
    (datagram) => decode(datagram).sequence,
  );
  assert.deepEqual(sequences, [0, 1, 2]);
  assert.equal(sender.nextSendSequence, 3);
});

Deno.test("an empty body seals and opens as an empty body", () => {
  const { sender, receiver } = pair(true);
  assert.equal(openedText(receiver, seal(sender, "")), "");
});

Deno.test("datagrams opened out of order are each accepted once", () => {
  const { sender, receiver } = pair(true);
  const datagrams = ["zero", "one", "two", "three"].map((text) => seal(sender, text));
  const order = [2, 0, 3, 1];
  assert.deepEqual(order.map((index) => openedText(receiver, datagrams[index])), [
    "two",
    "zero",
    "three",
    "one",
  ]);
  assert.deepEqual(order.map((index) => openedText(receiver, datagrams[index])), [
    "refused: duplicate",
    "refused: duplicate",
    "refused: duplicate",
    "refused: duplicate",
  ]);
});

Deno.test("an encrypted body opens into the given buffer; a plaintext body is a view of the datagram", () => {
  const encrypted = pair(true);
  const sealed = seal(encrypted.sender, "abc");
  const out = new Uint8Array(64);
  const opened = openMessage(encrypted.receiver, decode(sealed), out);
  assert.ok(opened.ok);
  assert.equal(opened.body.buffer, out.buffer);

  const plain = pair(false);
  const datagram = seal(plain.sender, "abc");
  const openedPlain = openMessage(plain.receiver, decode(datagram), new Uint8Array(64));
  assert.ok(openedPlain.ok);
  assert.equal(openedPlain.body.buffer, datagram.buffer);
});

Deno.test("sealing works at sequence numbers near 2^53", () => {
  const { sender, receiver } = pair(true);
  sender.nextSendSequence = MAX_SEQUENCE - 1;
  const datagram = seal(sender, "late");
  assert.equal(decode(datagram).sequence, MAX_SEQUENCE - 1);
  assert.equal(openedText(receiver, datagram), "late");
});

Deno.test("a key phase is exhausted 2^32 sequence numbers before the largest", () => {
  const { sender } = pair(true);
  sender.nextSendSequence = MAX_SEQUENCE - 2 ** 32 - 1;
  assert.equal(sender.exhausted, false);
  sender.nextSendSequence++;
  assert.equal(sender.exhausted, true);
});

// ---------------------------------------------------------------------------------------------------
// The window comes first

Deno.test("a redundant copy is a duplicate and costs no decryption", () => {
  const { sender, receiver, receiveKey } = pair(true);
  const datagram = seal(sender, "once");
  assert.equal(openedText(receiver, datagram), "once");
  assert.equal(receiveKey!.opens, 1);
  for (let copy = 0; copy < 5; copy++) {
    assert.deepEqual(open(receiver, datagram), { ok: false, reason: "duplicate" });
  }
  assert.equal(receiveKey!.opens, 1);
});

Deno.test("a datagram older than the window is a replay and costs no decryption", () => {
  const { sender, receiver, receiveKey } = pair(true);
  const old = seal(sender, "old");
  sender.nextSendSequence = REPLAY_WINDOW_SIZE + 10;
  assert.equal(openedText(receiver, seal(sender, "new")), "new");
  const opensBefore = receiveKey!.opens;
  assert.deepEqual(open(receiver, old), { ok: false, reason: "replay" });
  assert.equal(receiveKey!.opens, opensBefore);
});

// ---------------------------------------------------------------------------------------------------
// Forgeries

Deno.test("a forged datagram at sequence 1000 is a bad-tag and sequence 5 is still accepted", () => {
  const { sender, receiver } = pair(true);
  sender.nextSendSequence = 5;
  const genuine = seal(sender, "genuine");
  assert.deepEqual(open(receiver, withSequence(genuine, 1000)), { ok: false, reason: "bad-tag" });
  assert.equal(receiver.receiveWindow.highest, -1);
  assert.equal(openedText(receiver, genuine), "genuine");
});

Deno.test("a forged datagram far ahead does not push the window past genuine ones", () => {
  const { sender, receiver } = pair(true);
  const genuine = seal(sender, "genuine");
  const farAhead = withSequence(genuine, 10 * REPLAY_WINDOW_SIZE);
  assert.deepEqual(open(receiver, farAhead), { ok: false, reason: "bad-tag" });
  assert.equal(openedText(receiver, genuine), "genuine");
});

Deno.test("a forged datagram does not use up its sequence number", () => {
  const { sender, receiver } = pair(true);
  const first = seal(sender, "first");
  const second = seal(sender, "second");
  assert.deepEqual(open(receiver, withSequence(first, 1)), { ok: false, reason: "bad-tag" });
  assert.equal(openedText(receiver, second), "second");
});

Deno.test("changing any header field of an encrypted datagram makes it a bad-tag", () => {
  // The header is the associated data: flow id, key phase, type and session all count.
  const fields: [string, number][] = [
    ["type", 1],
    ["key phase", 3],
    ["session id", 7],
    ["flow id", 17],
    ["reserved", 19],
  ];
  for (const [name, offset] of fields) {
    const { sender, receiver } = pair(true);
    const tampered = seal(sender, "payload");
    tampered[offset] ^= offset === 1 ? 0x03 /* data → probe */ : 0x01;
    assert.deepEqual(open(receiver, tampered), { ok: false, reason: "bad-tag" }, name);
  }
});

Deno.test("a flipped bit in the ciphertext or the tag makes it a bad-tag", () => {
  const { sender, receiver } = pair(true);
  const genuine = seal(sender, "payload");
  for (const offset of [SEALED_HEADER_BYTES, genuine.length - TAG_BYTES, genuine.length - 1]) {
    const tampered = genuine.slice();
    tampered[offset] ^= 0x80;
    assert.deepEqual(open(receiver, tampered), { ok: false, reason: "bad-tag" }, `${offset}`);
  }
  assert.equal(openedText(receiver, genuine), "payload");
});

Deno.test("a datagram sealed under another key is a bad-tag", () => {
  const sender = new KeyPhase(4, createAead(new Uint8Array(32).fill(1)), undefined, 0);
  const { receiver } = pair(true);
  assert.deepEqual(open(receiver, seal(sender, "elsewhere")), { ok: false, reason: "bad-tag" });
});

// ---------------------------------------------------------------------------------------------------
// Authentication mismatch

Deno.test("a plaintext datagram to an encrypted phase is an auth-mismatch and costs no decryption", () => {
  const { receiver, receiveKey } = pair(true);
  const plaintext = seal(pair(false).sender, "downgrade");
  assert.deepEqual(open(receiver, plaintext), { ok: false, reason: "auth-mismatch" });
  assert.equal(receiveKey!.opens, 0);
  assert.equal(receiver.receiveWindow.highest, -1);
});

Deno.test("an encrypted datagram to a plaintext phase is an auth-mismatch", () => {
  const { receiver } = pair(false);
  const encrypted = seal(pair(true).sender, "upgrade");
  assert.deepEqual(open(receiver, encrypted), { ok: false, reason: "auth-mismatch" });
  assert.equal(receiver.receiveWindow.highest, -1);
});

// ---------------------------------------------------------------------------------------------------
// In place

Deno.test("a plaintext body already at out[20..] is sealed without copying and round-trips", () => {
  const { sender, receiver } = pair(false);
  const out = new Uint8Array(64);
  const text = new TextEncoder().encode("in place");
  out.set(text, SEALED_HEADER_BYTES);
  const body = out.subarray(SEALED_HEADER_BYTES, SEALED_HEADER_BYTES + text.length);
  const datagram = sealMessage(sender, SESSION_ID, "data", FLOW_ID, body, out);
  assert.equal(datagram.buffer, out.buffer);
  assert.equal(datagram.byteOffset, 0);
  assert.equal(datagram.length, SEALED_HEADER_BYTES + text.length);
  assert.equal(openedText(receiver, datagram.slice()), "in place");
});

Deno.test("an encrypted body already at out[20..] is sealed in place and round-trips", () => {
  const { sender, receiver } = pair(true);
  const text = new TextEncoder().encode("sealed where it lies");
  const out = new Uint8Array(text.length + TUNNEL_OVERHEAD_BYTES);
  out.set(text, SEALED_HEADER_BYTES);
  const body = out.subarray(SEALED_HEADER_BYTES, SEALED_HEADER_BYTES + text.length);
  const datagram = sealMessage(sender, SESSION_ID, "data", FLOW_ID, body, out);
  assert.equal(datagram.buffer, out.buffer);
  assert.equal(datagram.length, SEALED_HEADER_BYTES + text.length + TAG_BYTES);
  assert.equal(openedText(receiver, datagram.slice()), "sealed where it lies");
});

Deno.test("sealing into a view at an offset writes only inside that view", () => {
  const { sender, receiver } = pair(true);
  const backing = new Uint8Array(128).fill(0xee);
  const out = backing.subarray(10, 10 + 5 + TUNNEL_OVERHEAD_BYTES);
  const datagram = sealMessage(sender, SESSION_ID, "data", FLOW_ID, new Uint8Array(5), out);
  assert.equal(backing[9], 0xee);
  assert.equal(backing[10 + datagram.length], 0xee);
  assert.equal(openedText(receiver, datagram.slice()), "\0\0\0\0\0");
});
