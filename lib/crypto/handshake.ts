/**
 * The handshake: how mpclient and mpserver agree on a session and, with a shared secret, on fresh
 * keys. In the spirit of WireGuard's pre-shared-key mode:
 *
 * 1. The client sends INIT with an ephemeral X25519 key, a timestamp and a MAC keyed by the secret.
 * 2. The server checks the MAC (cheap, before any state or expensive work), replies RESPONSE with its
 *    own ephemeral key and a MAC over the response and the INIT's MAC.
 * 3. Both compute the X25519 shared value and derive two AEAD keys (one per direction) with HKDF,
 *    salted with a key derived from the secret and bound to both messages.
 *
 * The ephemeral keys are forgotten after the handshake, so recording traffic and stealing the secret
 * later does not reveal the session keys (forward secrecy). Without a secret the same two messages
 * carry no keys and no MAC: they only open a session and its sequence-number spaces.
 */

import {
  constantTimeEqual,
  generateKeyPair,
  hkdf,
  hmac16,
  type KeyPair,
  x25519,
} from "./primitives.ts";
import { createAead } from "./aead_factory.ts";
import type { Aead, AeadFactory } from "./aead.ts";
import {
  encodeHandshake,
  HANDSHAKE_BYTES,
  HANDSHAKE_MAC_OFFSET,
  type HandshakeMessage,
} from "../wire/messages.ts";

/** Shortest secret accepted, in characters. `mpserver keygen` prints 43. */
export const MIN_SECRET_CHARS = 16;

const SECRET_SALT = new TextEncoder().encode("mptunnel v1 secret");
const MAC_INFO = new TextEncoder().encode("mptunnel v1 handshake mac");
const PSK_INFO = new TextEncoder().encode("mptunnel v1 key salt");
const SESSION_KEYS_INFO = new TextEncoder().encode("mptunnel v1 session keys");

/** Keys derived once from the shared secret. */
export interface SecretKeys {
  /** Authenticates INIT and RESPONSE. */
  readonly macKey: Uint8Array;
  /** Salts the session-key derivation, so the session keys depend on the secret too. */
  readonly keySalt: Uint8Array;
}

/** Why a secret was refused, or undefined when it is acceptable. */
export function secretWeakness(secret: string): string | undefined {
  const trimmed = secret.trim();
  if (trimmed.length === 0) return "the secret is empty";
  if (trimmed.length < MIN_SECRET_CHARS) {
    return `the secret is ${trimmed.length} characters long; use at least ${MIN_SECRET_CHARS} (mpserver keygen prints a good one)`;
  }
  if (new Set(trimmed).size < 6) {
    return "the secret repeats too few distinct characters to be hard to guess (mpserver keygen prints a good one)";
  }
  return undefined;
}

/** Derives the handshake keys from a secret's text (surrounding white space is ignored). */
export function deriveSecretKeys(secret: string): SecretKeys {
  const ikm = new TextEncoder().encode(secret.trim());
  return {
    macKey: hkdf(ikm, SECRET_SALT, MAC_INFO, 32),
    keySalt: hkdf(ikm, SECRET_SALT, PSK_INFO, 32),
  };
}

/** The two AEADs of one session and key phase. */
export interface SessionKeys {
  readonly clientToServer: Aead;
  readonly serverToClient: Aead;
}

/** A client's handshake in progress: what it sent and what it needs to finish. */
export interface PendingHandshake {
  readonly sessionId: number;
  readonly keyPhase: number;
  readonly timestampMs: number;
  /** The INIT datagram, sent (and re-sent) on every path. */
  readonly init: Uint8Array;
  readonly keyPair?: KeyPair;
}

/** Builds an INIT. `timestampMs` must grow from one handshake to the next of a session. */
export function createInit(
  secret: SecretKeys | undefined,
  sessionId: number,
  keyPhase: number,
  timestampMs: number,
): PendingHandshake {
  const keyPair = secret ? generateKeyPair() : undefined;
  const init = encodeHandshake({
    type: "init",
    authenticated: secret !== undefined,
    keyPhase,
    sessionId,
    timestampMs,
    publicKey: keyPair?.publicKey,
  });
  if (secret) {
    init.set(hmac16(secret.macKey, init.subarray(0, HANDSHAKE_MAC_OFFSET)), HANDSHAKE_MAC_OFFSET);
  }
  return { sessionId, keyPhase, timestampMs, init, keyPair };
}

/** What the server makes of an INIT, before spending any work on keys. */
export type InitVerdict = "ok" | "secret-required" | "secret-mismatch" | "secret-not-configured";

/** Checks an INIT's authentication against this server's secret (a MAC, nothing expensive). */
export function verifyInit(secret: SecretKeys | undefined, init: HandshakeMessage): InitVerdict {
  if (!secret) return init.authenticated ? "secret-not-configured" : "ok";
  if (!init.authenticated) return "secret-required";
  return constantTimeEqual(hmac16(secret.macKey, init.macInput), init.mac)
    ? "ok"
    : "secret-mismatch";
}

/** The server's answer to a verified INIT: the RESPONSE to send and the session's keys. */
export interface ServerHandshake {
  readonly response: Uint8Array;
  /** Undefined without a secret (plaintext session). */
  readonly keys?: SessionKeys;
}

/**
 * Answers a verified INIT; `sessionContinued` says the server already knew the session; `aead` keys
 * the session (default {@link createAead}). Returns
 * undefined when the client's key is unusable (a low-order point): a forged or broken INIT, dropped
 * like any other.
 */
export function respondToInit(
  secret: SecretKeys | undefined,
  init: HandshakeMessage,
  initBytes: Uint8Array,
  sessionContinued = false,
  aead: AeadFactory = createAead,
): ServerHandshake | undefined {
  const keyPair = secret ? generateKeyPair() : undefined;
  const response = encodeHandshake({
    type: "response",
    authenticated: secret !== undefined,
    sessionContinued,
    keyPhase: init.keyPhase,
    sessionId: init.sessionId,
    timestampMs: init.timestampMs,
    publicKey: keyPair?.publicKey,
  });
  if (!secret || !keyPair) return { response };
  const shared = x25519(keyPair.privateKey, init.publicKey);
  if (!shared) return undefined;
  response.set(
    hmac16(secret.macKey, response.subarray(0, HANDSHAKE_MAC_OFFSET), init.mac),
    HANDSHAKE_MAC_OFFSET,
  );
  return { response, keys: deriveSessionKeys(secret, shared, initBytes, response, aead) };
}

/** Outcome of {@link completeHandshake} at the client. */
export type ClientHandshakeResult =
  | { readonly ok: true; readonly keys?: SessionKeys }
  | { readonly ok: false; readonly reason: "bad-mac" | "auth-mismatch" | "unexpected" };

/**
 * Checks a RESPONSE against the pending INIT and derives the session's keys, made by `aead`
 * (default {@link createAead}).
 */
export function completeHandshake(
  secret: SecretKeys | undefined,
  pending: PendingHandshake,
  response: HandshakeMessage,
  responseBytes: Uint8Array,
  aead: AeadFactory = createAead,
): ClientHandshakeResult {
  if (
    response.sessionId !== pending.sessionId || response.keyPhase !== pending.keyPhase ||
    response.timestampMs !== pending.timestampMs
  ) {
    return { ok: false, reason: "unexpected" };
  }
  if (response.authenticated !== (secret !== undefined)) {
    return { ok: false, reason: "auth-mismatch" };
  }
  if (!secret || !pending.keyPair) return { ok: true };
  const expectedMac = hmac16(
    secret.macKey,
    response.macInput,
    pending.init.subarray(HANDSHAKE_MAC_OFFSET, HANDSHAKE_BYTES),
  );
  if (!constantTimeEqual(expectedMac, response.mac)) return { ok: false, reason: "bad-mac" };
  const shared = x25519(pending.keyPair.privateKey, response.publicKey);
  if (!shared) return { ok: false, reason: "bad-mac" };
  return { ok: true, keys: deriveSessionKeys(secret, shared, pending.init, responseBytes, aead) };
}

function deriveSessionKeys(
  secret: SecretKeys,
  shared: Uint8Array,
  initBytes: Uint8Array,
  responseBytes: Uint8Array,
  aead: AeadFactory,
): SessionKeys {
  const info = new Uint8Array(SESSION_KEYS_INFO.length + HANDSHAKE_BYTES + HANDSHAKE_MAC_OFFSET);
  info.set(SESSION_KEYS_INFO, 0);
  info.set(initBytes.subarray(0, HANDSHAKE_BYTES), SESSION_KEYS_INFO.length);
  info.set(
    responseBytes.subarray(0, HANDSHAKE_MAC_OFFSET),
    SESSION_KEYS_INFO.length + HANDSHAKE_BYTES,
  );
  const material = hkdf(shared, secret.keySalt, info, 64);
  return {
    clientToServer: aead(material.subarray(0, 32)),
    serverToClient: aead(material.subarray(32, 64)),
  };
}
