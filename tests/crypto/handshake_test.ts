/**
 * The handshake: with a shared secret both ends derive the same fresh session keys, anything tampered
 * with or meant for another handshake is refused, misconfigurations get the right verdict, weak
 * secrets are refused, and the keys of a recorded session stay out of reach of whoever later learns
 * the secret (forward secrecy).
 */
import assert from "node:assert/strict";
import type { Aead } from "../../lib/crypto/aead.ts";
import { createAead } from "../../lib/crypto/aead_factory.ts";
import {
  generateKeyPair,
  hkdf,
  hmac16,
  type KeyPair,
  x25519,
} from "../../lib/crypto/primitives.ts";
import {
  completeHandshake,
  createInit,
  deriveSecretKeys,
  MIN_SECRET_CHARS,
  type PendingHandshake,
  respondToInit,
  type SecretKeys,
  secretWeakness,
  type ServerHandshake,
  type SessionKeys,
  verifyInit,
} from "../../lib/crypto/handshake.ts";
import { KeyPhase, openMessage, sealMessage } from "../../lib/crypto/key_phase.ts";
import { generateSecret } from "../../lib/crypto/secret.ts";
import {
  decodeMessage,
  encodeHandshake,
  HANDSHAKE_BYTES,
  HANDSHAKE_MAC_OFFSET,
  type HandshakeMessage,
  type SealedMessage,
  TUNNEL_OVERHEAD_BYTES,
} from "../../lib/wire/messages.ts";

const SECRET = "correct horse battery staple 42";
const SESSION_ID = 0x0badcafe;
const TIMESTAMP_MS = 1_000_000;

function decodeHandshake(datagram: Uint8Array): HandshakeMessage {
  const decoded = decodeMessage(datagram);
  assert.ok(decoded.ok, `not a message: ${JSON.stringify(decoded)}`);
  assert.ok(decoded.message.type === "init" || decoded.message.type === "response");
  return decoded.message;
}

function decodeSealed(datagram: Uint8Array): SealedMessage {
  const decoded = decodeMessage(datagram);
  assert.ok(decoded.ok, `not a message: ${JSON.stringify(decoded)}`);
  const message = decoded.message;
  assert.ok(message.type === "data" || message.type === "probe" || message.type === "probe-reply");
  return message;
}

/** One complete handshake between a client and a server holding `clientSecret` / `serverSecret`. */
function handshake(
  clientSecret: SecretKeys | undefined,
  serverSecret: SecretKeys | undefined,
  options: { sessionId?: number; keyPhase?: number; timestampMs?: number } = {},
) {
  const pending = createInit(
    clientSecret,
    options.sessionId ?? SESSION_ID,
    options.keyPhase ?? 0,
    options.timestampMs ?? TIMESTAMP_MS,
  );
  const init = decodeHandshake(pending.init);
  const verdict = verifyInit(serverSecret, init);
  const server = respondToInit(serverSecret, init, pending.init);
  assert.ok(server, "respondToInit refused a well-formed INIT");
  const response = decodeHandshake(server.response);
  const client = completeHandshake(clientSecret, pending, response, server.response);
  return { pending, verdict, server, client };
}

/** Both ends' key phases after a handshake, as the cores build them. */
function keyPhases(clientKeys: SessionKeys | undefined, serverKeys: SessionKeys | undefined) {
  return {
    client: new KeyPhase(0, clientKeys?.clientToServer, clientKeys?.serverToClient, 0),
    server: new KeyPhase(0, serverKeys?.serverToClient, serverKeys?.clientToServer, 0),
  };
}

/** Seals `text` at `from` and opens it at `to`; the opened text, or the reason it was refused. */
function carry(from: KeyPhase, to: KeyPhase, text: string): string {
  const body = new TextEncoder().encode(text);
  const datagram = sealMessage(
    from,
    SESSION_ID,
    "data",
    1,
    body,
    new Uint8Array(body.length + TUNNEL_OVERHEAD_BYTES),
  ).slice();
  const opened = openMessage(to, decodeSealed(datagram), new Uint8Array(datagram.length));
  return opened.ok ? new TextDecoder().decode(opened.body) : `refused: ${opened.reason}`;
}

function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const copy = bytes.slice();
  copy[bit >>> 3] ^= 1 << (bit & 7);
  return copy;
}

// ---------------------------------------------------------------------------------------------------
// Agreement

Deno.test("with a shared secret, a full handshake gives both ends keys that open each other's datagrams", () => {
  const secret = deriveSecretKeys(SECRET);
  const { verdict, server, client } = handshake(secret, secret);
  assert.equal(verdict, "ok");
  assert.ok(client.ok);
  assert.ok(client.keys && server.keys);
  const phases = keyPhases(client.keys, server.keys);
  assert.equal(phases.client.authenticated, true);
  assert.equal(carry(phases.client, phases.server, "up the tunnel"), "up the tunnel");
  assert.equal(carry(phases.server, phases.client, "down the tunnel"), "down the tunnel");
});

Deno.test("the two directions of a session use different keys", () => {
  const secret = deriveSecretKeys(SECRET);
  const { client } = handshake(secret, secret);
  assert.ok(client.ok && client.keys);
  // A datagram the client sealed, reflected back to the client, must not open there.
  const sender = new KeyPhase(0, client.keys.clientToServer, client.keys.serverToClient, 0);
  const reflectedTo = new KeyPhase(0, client.keys.clientToServer, client.keys.serverToClient, 0);
  assert.equal(carry(sender, reflectedTo, "echo"), "refused: bad-tag");
});

Deno.test("without a secret the handshake completes with no keys, no public key and no MAC", () => {
  const { pending, verdict, server, client } = handshake(undefined, undefined);
  assert.equal(verdict, "ok");
  assert.deepEqual(client, { ok: true });
  assert.equal(server.keys, undefined);
  assert.equal(pending.keyPair, undefined);
  assert.ok(pending.init.subarray(16, 64).every((byte) => byte === 0), "INIT key and MAC zero");
  assert.ok(server.response.subarray(16, 64).every((byte) => byte === 0), "RESPONSE zero");
  const phases = keyPhases(undefined, undefined);
  assert.equal(carry(phases.client, phases.server, "plain"), "plain");
});

Deno.test("the RESPONSE echoes the INIT's session id, key phase and timestamp", () => {
  const secret = deriveSecretKeys(SECRET);
  const { server } = handshake(secret, secret, {
    sessionId: 77,
    keyPhase: 200,
    timestampMs: 2 ** 40,
  });
  const response = decodeHandshake(server.response);
  assert.equal(response.type, "response");
  assert.equal(response.sessionId, 77);
  assert.equal(response.keyPhase, 200);
  assert.equal(response.timestampMs, 2 ** 40);
  assert.equal(server.response.length, HANDSHAKE_BYTES);
});

// ---------------------------------------------------------------------------------------------------
// The server's verdict on an INIT

Deno.test("verifyInit: same secret on both ends is ok", () => {
  const secret = deriveSecretKeys(SECRET);
  const init = decodeHandshake(createInit(secret, SESSION_ID, 0, TIMESTAMP_MS).init);
  assert.equal(verifyInit(secret, init), "ok");
});

Deno.test("verifyInit: no secret on either end is ok", () => {
  const init = decodeHandshake(createInit(undefined, SESSION_ID, 0, TIMESTAMP_MS).init);
  assert.equal(verifyInit(undefined, init), "ok");
});

Deno.test("verifyInit: an unauthenticated INIT at a server with a secret is secret-required", () => {
  const init = decodeHandshake(createInit(undefined, SESSION_ID, 0, TIMESTAMP_MS).init);
  assert.equal(verifyInit(deriveSecretKeys(SECRET), init), "secret-required");
});

Deno.test("verifyInit: an INIT authenticated with another secret is secret-mismatch", () => {
  const init = decodeHandshake(
    createInit(deriveSecretKeys(SECRET + " other"), SESSION_ID, 0, TIMESTAMP_MS).init,
  );
  assert.equal(verifyInit(deriveSecretKeys(SECRET), init), "secret-mismatch");
});

Deno.test("verifyInit: an authenticated INIT at a server without a secret is secret-not-configured", () => {
  const init = decodeHandshake(
    createInit(deriveSecretKeys(SECRET), SESSION_ID, 0, TIMESTAMP_MS).init,
  );
  assert.equal(verifyInit(undefined, init), "secret-not-configured");
});

Deno.test("verifyInit: an INIT with any single bit flipped is not ok", () => {
  const secret = deriveSecretKeys(SECRET);
  const init = createInit(secret, SESSION_ID, 3, TIMESTAMP_MS).init;
  for (let bit = 0; bit < HANDSHAKE_BYTES * 8; bit++) {
    const decoded = decodeMessage(flipBit(init, bit));
    if (!decoded.ok || decoded.message.type !== "init") continue; // refused earlier: also not ok
    const verdict = verifyInit(secret, decoded.message);
    assert.notEqual(verdict, "ok", `bit ${bit}`);
  }
});

Deno.test("respondToInit refuses a verified INIT whose public key is a low-order point", () => {
  const secret = deriveSecretKeys(SECRET);
  const init = encodeHandshake({
    type: "init",
    authenticated: true,
    keyPhase: 0,
    sessionId: SESSION_ID,
    timestampMs: TIMESTAMP_MS,
    publicKey: new Uint8Array(32), // the all-zero point: every shared value would be zero
  });
  init.set(hmac16(secret.macKey, init.subarray(0, HANDSHAKE_MAC_OFFSET)), HANDSHAKE_MAC_OFFSET);
  const message = decodeHandshake(init);
  assert.equal(verifyInit(secret, message), "ok");
  assert.equal(respondToInit(secret, message, init), undefined);
});

// ---------------------------------------------------------------------------------------------------
// The client's check of a RESPONSE

/** A server's RESPONSE to `pending`'s INIT. */
function respond(secret: SecretKeys | undefined, pending: PendingHandshake): ServerHandshake {
  const answer = respondToInit(secret, decodeHandshake(pending.init), pending.init);
  assert.ok(answer);
  return answer;
}

Deno.test("a RESPONSE to an INIT with another timestamp is unexpected", () => {
  const secret = deriveSecretKeys(SECRET);
  const first = createInit(secret, SESSION_ID, 0, TIMESTAMP_MS);
  const second = createInit(secret, SESSION_ID, 0, TIMESTAMP_MS + 1);
  const answer = respond(secret, second);
  const result = completeHandshake(
    secret,
    first,
    decodeHandshake(answer.response),
    answer.response,
  );
  assert.deepEqual(result, { ok: false, reason: "unexpected" });
});

Deno.test("a RESPONSE to an INIT for another key phase is unexpected", () => {
  const secret = deriveSecretKeys(SECRET);
  const first = createInit(secret, SESSION_ID, 4, TIMESTAMP_MS);
  const answer = respond(secret, createInit(secret, SESSION_ID, 5, TIMESTAMP_MS));
  const result = completeHandshake(
    secret,
    first,
    decodeHandshake(answer.response),
    answer.response,
  );
  assert.deepEqual(result, { ok: false, reason: "unexpected" });
});

Deno.test("a RESPONSE to an INIT of another session is unexpected", () => {
  const secret = deriveSecretKeys(SECRET);
  const first = createInit(secret, SESSION_ID, 0, TIMESTAMP_MS);
  const answer = respond(secret, createInit(secret, SESSION_ID + 1, 0, TIMESTAMP_MS));
  const result = completeHandshake(
    secret,
    first,
    decodeHandshake(answer.response),
    answer.response,
  );
  assert.deepEqual(result, { ok: false, reason: "unexpected" });
});

Deno.test("a RESPONSE to another INIT with the same session, phase and timestamp fails its MAC", () => {
  // The RESPONSE's MAC covers the INIT's MAC, so it answers exactly one INIT.
  const secret = deriveSecretKeys(SECRET);
  const first = createInit(secret, SESSION_ID, 0, TIMESTAMP_MS);
  const twin = createInit(secret, SESSION_ID, 0, TIMESTAMP_MS);
  const answer = respond(secret, twin);
  const result = completeHandshake(
    secret,
    first,
    decodeHandshake(answer.response),
    answer.response,
  );
  assert.deepEqual(result, { ok: false, reason: "bad-mac" });
});

Deno.test("an unauthenticated RESPONSE to an authenticated INIT is an auth-mismatch", () => {
  const pending = createInit(deriveSecretKeys(SECRET), SESSION_ID, 0, TIMESTAMP_MS);
  const answer = respondToInit(undefined, decodeHandshake(pending.init), pending.init);
  assert.ok(answer);
  const result = completeHandshake(
    deriveSecretKeys(SECRET),
    pending,
    decodeHandshake(answer.response),
    answer.response,
  );
  assert.deepEqual(result, { ok: false, reason: "auth-mismatch" });
});

Deno.test("an authenticated RESPONSE to a client without a secret is an auth-mismatch", () => {
  const pending = createInit(undefined, SESSION_ID, 0, TIMESTAMP_MS);
  const response = encodeHandshake({
    type: "response",
    authenticated: true,
    keyPhase: 0,
    sessionId: SESSION_ID,
    timestampMs: TIMESTAMP_MS,
    publicKey: generateKeyPair().publicKey,
  });
  const result = completeHandshake(undefined, pending, decodeHandshake(response), response);
  assert.deepEqual(result, { ok: false, reason: "auth-mismatch" });
});

Deno.test("a RESPONSE from a server with another secret fails its MAC", () => {
  const pending = createInit(deriveSecretKeys(SECRET), SESSION_ID, 0, TIMESTAMP_MS);
  const answer = respond(deriveSecretKeys(SECRET + " other"), pending);
  const result = completeHandshake(
    deriveSecretKeys(SECRET),
    pending,
    decodeHandshake(answer.response),
    answer.response,
  );
  assert.deepEqual(result, { ok: false, reason: "bad-mac" });
});

Deno.test("a RESPONSE with any single bit flipped is refused", () => {
  const secret = deriveSecretKeys(SECRET);
  const pending = createInit(secret, SESSION_ID, 0, TIMESTAMP_MS);
  const answer = respond(secret, pending);
  let refusedByTheDecoder = 0;
  for (let bit = 0; bit < HANDSHAKE_BYTES * 8; bit++) {
    const tampered = flipBit(answer.response, bit);
    const decoded = decodeMessage(tampered);
    if (!decoded.ok || decoded.message.type !== "response") {
      refusedByTheDecoder++;
      continue;
    }
    const result = completeHandshake(secret, pending, decoded.message, tampered);
    assert.equal(result.ok, false, `bit ${bit} (byte ${bit >>> 3})`);
  }
  // Caught before the MAC check: the 8 version bits, the 8 type bits, the 6 reserved flag bits
  // (bit 1 is the session-continued flag, which the MAC covers) and the 11 timestamp bits at 2^53
  // and above; every other flip reached completeHandshake.
  assert.equal(refusedByTheDecoder, 8 + 8 + 6 + 11);
  // And the untouched RESPONSE still completes, so the refusals above came from the flips.
  assert.equal(
    completeHandshake(secret, pending, decodeHandshake(answer.response), answer.response).ok,
    true,
  );
});

// ---------------------------------------------------------------------------------------------------
// Secrets

Deno.test("secretWeakness refuses an empty or blank secret", () => {
  assert.equal(secretWeakness(""), "the secret is empty");
  assert.equal(secretWeakness(" \n\t "), "the secret is empty");
});

Deno.test("secretWeakness refuses a secret shorter than 16 characters, saying its length", () => {
  const weakness = secretWeakness("abcdefghijklmno");
  assert.ok(weakness?.includes("15 characters"), weakness);
  assert.ok(weakness?.includes(`at least ${MIN_SECRET_CHARS}`), weakness);
});

Deno.test("secretWeakness counts length after trimming surrounding white space", () => {
  assert.ok(secretWeakness("   abcdefghij   ")?.includes("10 characters"));
});

Deno.test("secretWeakness refuses a long secret of fewer than 6 distinct characters", () => {
  const weakness = secretWeakness("abcdeabcdeabcdeabcdeabcde");
  assert.ok(weakness?.includes("distinct characters"), weakness);
  assert.ok(secretWeakness("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")?.includes("distinct"));
});

Deno.test("secretWeakness accepts 16 characters of 6 distinct ones", () => {
  assert.equal(secretWeakness("abcdefabcdefabcd"), undefined);
});

Deno.test("secretWeakness accepts what generateSecret prints", () => {
  for (let round = 0; round < 20; round++) {
    const secret = generateSecret();
    assert.equal(secretWeakness(secret), undefined, secret);
  }
});

Deno.test("deriveSecretKeys ignores white space around the secret", () => {
  const plain = deriveSecretKeys(SECRET);
  const padded = deriveSecretKeys(`  ${SECRET}\n`);
  assert.deepEqual(padded.macKey, plain.macKey);
  assert.deepEqual(padded.keySalt, plain.keySalt);
});

Deno.test("deriveSecretKeys gives different MAC keys and salts for different secrets", () => {
  const one = deriveSecretKeys(SECRET);
  const other = deriveSecretKeys(SECRET + "!");
  assert.notDeepEqual(one.macKey, other.macKey);
  assert.notDeepEqual(one.keySalt, other.keySalt);
  assert.notDeepEqual(one.macKey, one.keySalt);
});

// ---------------------------------------------------------------------------------------------------
// Forward secrecy
//
// The argument. The session keys are
//
//     HKDF-SHA256(ikm = X25519(client ephemeral private, server ephemeral public),
//                 salt = keySalt(secret), info = label ‖ INIT ‖ RESPONSE[0..48])
//
// Someone who recorded the traffic and later steals the secret knows the salt (deriveSecretKeys),
// the info (both handshake messages are on the wire) and both ephemeral PUBLIC keys. The only input
// missing is the X25519 shared value, and computing it from the two public keys alone is the
// computational Diffie-Hellman problem. Both ephemeral private keys are created per handshake and
// dropped when it completes (the client forgets its PendingHandshake; the server's key pair is local
// to respondToInit), so nothing that outlives the session can produce the shared value.
//
// The tests below make that concrete. They rebuild the key schedule from PROTOCOL.md and first
// show that it is exactly right: fed the client's real ephemeral private key (which the test, unlike
// the attacker, still holds) it opens the recorded datagrams. Then they give the attacker everything
// else — the secret, the recorded INIT and RESPONSE, fresh key pairs of its own, and the secret's
// own derived keys tried as the shared value — and show that no datagram opens. Finally two
// handshakes under the same secret yield different keys, so keys cannot be a function of the secret.

const SESSION_KEYS_LABEL = new TextEncoder().encode("mptunnel v1 session keys");

/** The key schedule of PROTOCOL.md, computed from a guessed X25519 shared value. */
function sessionKeysFrom(
  secret: SecretKeys,
  shared: Uint8Array,
  init: Uint8Array,
  response: Uint8Array,
): { clientToServer: Aead; serverToClient: Aead } {
  const info = new Uint8Array(SESSION_KEYS_LABEL.length + HANDSHAKE_BYTES + HANDSHAKE_MAC_OFFSET);
  info.set(SESSION_KEYS_LABEL, 0);
  info.set(init, SESSION_KEYS_LABEL.length);
  info.set(response.subarray(0, HANDSHAKE_MAC_OFFSET), SESSION_KEYS_LABEL.length + HANDSHAKE_BYTES);
  const material = hkdf(shared, secret.keySalt, info, 64);
  return {
    clientToServer: createAead(material.subarray(0, 32)),
    serverToClient: createAead(material.subarray(32, 64)),
  };
}

/** A recorded session: its handshake and datagrams in both directions. */
function recordSession() {
  const secret = deriveSecretKeys(SECRET);
  const { pending, server, client } = handshake(secret, secret);
  assert.ok(client.ok && client.keys && server.keys);
  const phases = keyPhases(client.keys, server.keys);
  const seal = (from: KeyPhase, text: string) => {
    const body = new TextEncoder().encode(text);
    return sealMessage(
      from,
      SESSION_ID,
      "data",
      1,
      body,
      new Uint8Array(body.length + TUNNEL_OVERHEAD_BYTES),
    ).slice();
  };
  return {
    init: pending.init.slice(),
    response: server.response.slice(),
    clientKeyPair: pending.keyPair!,
    upstream: [seal(phases.client, "user name"), seal(phases.client, "password")],
    downstream: [seal(phases.server, "welcome"), seal(phases.server, "bank balance")],
  };
}

/** How many recorded datagrams these guessed keys open. */
function openedWith(
  keys: { clientToServer: Aead; serverToClient: Aead },
  recorded: ReturnType<typeof recordSession>,
): number {
  let opened = 0;
  const tryOpen = (aead: Aead, datagram: Uint8Array) => {
    const message = decodeSealed(datagram);
    const phase = new KeyPhase(0, aead, aead, 0);
    if (openMessage(phase, message, new Uint8Array(datagram.length)).ok) opened++;
  };
  for (const datagram of recorded.upstream) tryOpen(keys.clientToServer, datagram);
  for (const datagram of recorded.downstream) tryOpen(keys.serverToClient, datagram);
  return opened;
}

Deno.test("forward secrecy: the rebuilt key schedule opens a recorded session given the ephemeral key", () => {
  const recorded = recordSession();
  const serverPublic = decodeHandshake(recorded.response).publicKey;
  const shared = x25519(recorded.clientKeyPair.privateKey, serverPublic);
  assert.ok(shared);
  const keys = sessionKeysFrom(
    deriveSecretKeys(SECRET),
    shared,
    recorded.init,
    recorded.response,
  );
  assert.equal(openedWith(keys, recorded), 4);
});

Deno.test("forward secrecy: the secret and the recorded handshake without the ephemeral keys open nothing", () => {
  const recorded = recordSession();
  const stolen = deriveSecretKeys(SECRET);
  const clientPublic = decodeHandshake(recorded.init).publicKey;
  const serverPublic = decodeHandshake(recorded.response).publicKey;
  // The attacker can check the recorded handshake's MAC (it has the secret) ...
  assert.equal(verifyInit(stolen, decodeHandshake(recorded.init)), "ok");
  // ... but every shared value it can compute is wrong.
  const guesses: Uint8Array[] = [];
  for (let attempt = 0; attempt < 8; attempt++) {
    const own: KeyPair = generateKeyPair();
    guesses.push(x25519(own.privateKey, serverPublic)!, x25519(own.privateKey, clientPublic)!);
  }
  guesses.push(
    stolen.macKey,
    stolen.keySalt,
    new Uint8Array(32),
    clientPublic.slice(),
    serverPublic.slice(),
  );
  for (const [index, guess] of guesses.entries()) {
    const keys = sessionKeysFrom(stolen, guess, recorded.init, recorded.response);
    assert.equal(openedWith(keys, recorded), 0, `guess ${index}`);
  }
});

Deno.test("forward secrecy: two handshakes with the same secret give different session keys", () => {
  const secret = deriveSecretKeys(SECRET);
  const first = handshake(secret, secret);
  const second = handshake(secret, secret);
  assert.ok(first.client.ok && first.client.keys && second.client.ok && second.client.keys);
  // Same secret, session, phase, timestamp, plaintext and sequence number: different ciphertext ...
  const sealWith = (keys: SessionKeys) => {
    const phase = new KeyPhase(0, keys.clientToServer, keys.serverToClient, 0);
    const body = new TextEncoder().encode("same words");
    return sealMessage(
      phase,
      SESSION_ID,
      "data",
      1,
      body,
      new Uint8Array(body.length + TUNNEL_OVERHEAD_BYTES),
    ).slice();
  };
  const fromFirst = sealWith(first.client.keys);
  const fromSecond = sealWith(second.client.keys);
  assert.deepEqual(fromFirst.subarray(0, 20), fromSecond.subarray(0, 20), "same header");
  assert.notDeepEqual(fromFirst.subarray(20), fromSecond.subarray(20));
  // ... and neither session's keys open the other's datagrams.
  const secondServer = new KeyPhase(
    0,
    second.server.keys!.serverToClient,
    second.server.keys!.clientToServer,
    0,
  );
  const opened = openMessage(
    secondServer,
    decodeSealed(fromFirst),
    new Uint8Array(fromFirst.length),
  );
  assert.deepEqual(opened, { ok: false, reason: "bad-tag" });
});

Deno.test("forward secrecy: each handshake uses fresh ephemeral public keys on both sides", () => {
  const secret = deriveSecretKeys(SECRET);
  const first = handshake(secret, secret);
  const second = handshake(secret, secret);
  const key = (bytes: Uint8Array) => [...decodeHandshake(bytes).publicKey];
  assert.notDeepEqual(key(first.pending.init), key(second.pending.init));
  assert.notDeepEqual(key(first.server.response), key(second.server.response));
});
