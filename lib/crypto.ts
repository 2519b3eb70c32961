/**
 * The cryptographic primitives mptunnel's handshake and data path use, as pure functions over
 * `Uint8Array` (no I/O, no clocks): X25519 key agreement, HKDF-SHA256, truncated HMAC-SHA256 (all on
 * `node:crypto`), and an AEAD ({@link Aead}) keyed once per direction whose nonce is a 64-bit packet
 * counter. The AEAD runs on OpenSSL's libcrypto through FFI (`lib/aead_openssl.ts`) wherever it can,
 * else on `node:crypto`; both write the same bytes (see {@link aeadImplementation}).
 *
 * Measured 2026-11-25 on a 2-core shared Linux VM (AMD EPYC, has AES-NI/PCLMUL/VAES), Deno 2.9.6,
 * OpenSSL 3.0.19, with `deno bench --allow-ffi bench/crypto_bench.ts`: median of the means of 3
 * runs, range in brackets. Other jobs shared the VM, so single runs vary up to 2x; compare rows, not
 * runs. The `node` rows are what the fallback costs; the first table (4 runs, same day, before the
 * OpenSSL path existed) is kept for the handshake rows.
 *
 * | operation (header 16 B)             | openssl ns/op        | node ns/op               |
 * | ----------------------------------- | -------------------- | ------------------------ |
 * | chacha20-poly1305 seal+open, 64 B   |  1,630 (1,530–1,770) |  10,000 ( 7,600–15,600)  |
 * | aes-256-gcm       seal+open, 64 B   |  1,480 (  950–1,580) |  11,100 ( 9,500–11,400)  |
 * | chacha20-poly1305 seal+open, 1200 B |  3,070 (2,640–3,310) |  18,900 (17,400–29,600)  |
 * | aes-256-gcm       seal+open, 1200 B |  1,590 (1,560–2,400) |  30,500 (30,500–30,900)  |
 * | chacha20-poly1305 seal, 1200 B      |  1,440 (1,210–1,480) |   9,400 ( 8,600–15,300)  |
 * | aes-256-gcm       seal, 1200 B      |    940 (  630–1,110) |  16,700 (14,900–17,500)  |
 * | chacha20-poly1305 open, 1200 B      |  1,620 (1,550–1,750) |   7,700 ( 7,300–11,900)  |
 * | chacha20-poly1305 open forged, 64 B |    680 (  670–  880) |  19,800 (16,000–21,700)  |
 * | aes-256-gcm       open forged, 64 B |    560 (  350–  610) |  19,800 (15,700–20,800)  |
 * | createAead + first seal, 64 B       |  9,200 (6,700–9,800) |   9,500 ( 8,100–16,700)  |
 *
 * | operation                           | ns/op                    | ops/s   |
 * | ----------------------------------- | ------------------------ | ------- |
 * | createCipheriv alone (chacha20)     |   5,600 ( 4,900– 7,000)  | 180,000 |
 * | generateKeyPair + x25519            | 108,000 (92,000–121,000) |   9,200 |
 * | x25519 alone                        |  65,000 (62,000– 83,000) |  15,000 |
 * | hkdf, 32 B in, 64 B out             |   7,200 ( 6,400–10,400)  | 140,000 |
 * | hmac16, 3 parts, 60 B               |  15,800 (10,000–20,300)  |  63,000 |
 *
 * ChaCha20-Poly1305 is {@link DEFAULT_AEAD}. It was chosen on `node:crypto`, where it is about even
 * with AES-256-GCM at 64 B and twice as fast at 1200 B, the size a tunnel mostly carries (Deno
 * implements `node:crypto`'s AES-GCM in Rust with the `aes` and `aead-gcm-stream` crates, far from
 * AES-NI speed). On OpenSSL, AES-256-GCM is about twice as fast at 1200 B on this CPU (AES-NI and
 * VAES); the default stays ChaCha20-Poly1305 because both ends must use the same algorithm (the
 * handshake does not negotiate one), it is the faster of the two for the fallback, and it does not
 * depend on AES hardware.
 *
 * Why the OpenSSL path exists: most of every `node:crypto` seal or open is creating the cipher
 * object, not encrypting. `createCipheriv` builds a whole `stream.Transform` each call (~5 µs before
 * a byte is touched), and `node:crypto` cannot re-key a cipher with a new nonce, so the fallback
 * creates one per datagram. OpenSSL's `EVP_CIPHER_CTX` takes a new nonce without being rebuilt, so
 * `lib/aead_openssl.ts` keeps one keyed context per direction and per datagram only re-sets the
 * nonce: 6–20x less time per datagram. Other alternatives measured were slower than even the
 * fallback: `@noble/ciphers` 2.4.0 (pure JS, writes into a caller buffer) sealed 64 B / 1200 B in ~9
 * / ~23 µs with ChaCha and ~15 / ~54 µs with GCM; WebCrypto has only AES-GCM, is asynchronous, and
 * took ~19 µs per 1200 B encrypt even 64 at a time. In the fallback, writing straight into `out` is
 * not possible (`update` always returns a new `Buffer`); copying that into `out` costs ~40 ns for
 * 1200 B, the allocation behind it 0.2–0.9 µs.
 *
 * A forged datagram costs the OpenSSL path no more than a genuine one (the tag check is a return
 * value, and OpenSSL compares tags in constant time in `EVP_DecryptFinal_ex`). The fallback pays
 * about twice a genuine one to reject it, because `node:crypto` reports a bad tag only by throwing,
 * and building that error costs ~10 µs (suppressing its stack trace does not help). Callers should
 * drop what they can (unknown session, replayed or stale counter) before calling {@link Aead.open}.
 */

import { Buffer } from "node:buffer";
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  type KeyObject,
  randomFillSync,
  timingSafeEqual,
} from "node:crypto";
import {
  checkSealCounter,
  checkSealOutput,
  fitsOutput,
  isValidCounter,
  KEY_BYTES,
  MAX_COUNTER,
  NONCE_BYTES,
  TAG_BYTES,
  writeCounterNonce,
} from "./aead_nonce.ts";
import { createOpensslAead, opensslAeadUnavailable } from "./aead_openssl.ts";
import { chooseImplementation } from "./implementation_choice.ts";

export { KEY_BYTES, MAX_COUNTER, NONCE_BYTES, TAG_BYTES };
/** Length of a raw X25519 public key. */
export const PUBLIC_KEY_BYTES = 32;
/** Length of a truncated HMAC from {@link hmac16}. */
export const MAC_BYTES = 16;

const PRIVATE_KEY_BYTES = 32;
const SHA256_BYTES = 32;
const HKDF_MAX_OUTPUT_BYTES = 255 * SHA256_BYTES;
/** DER prefix of a PKCS #8 X25519 private key (RFC 8410 §7); the 32 raw bytes follow. */
const PKCS8_X25519_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");
/** DER prefix of an X25519 SubjectPublicKeyInfo (RFC 8410 §4); the 32 raw bytes follow. */
const SPKI_X25519_PREFIX = Buffer.from("302a300506032b656e032100", "hex");
const TAG_OPTIONS = { authTagLength: TAG_BYTES } as const;

/** The AEAD algorithms a session may use. */
export type AeadAlgorithm = "chacha20-poly1305" | "aes-256-gcm";

/** The AEAD sessions use (the handshake does not negotiate one); why, at the top of this module. */
export const DEFAULT_AEAD: AeadAlgorithm = "chacha20-poly1305";

/** An X25519 key pair. The private key stays an opaque `node:crypto` object so DH needs no re-import. */
export interface KeyPair {
  /** The private key, usable only with {@link x25519}. */
  readonly privateKey: KeyObject;
  /** The 32-byte raw public key (RFC 7748 little-endian u-coordinate), as sent on the wire. */
  readonly publicKey: Uint8Array;
}

/** Generates a fresh (ephemeral) X25519 key pair. */
export function generateKeyPair(): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync("x25519");
  return { privateKey, publicKey: rawPublicKey(publicKey) };
}

/**
 * Builds a key pair from 32 raw private-key bytes (clamped by X25519 itself, as RFC 7748 says).
 * Meant for known-answer tests and fixed keys; throws `RangeError` unless given exactly 32 bytes.
 */
export function keyPairFromPrivate(raw32: Uint8Array): KeyPair {
  if (raw32.length !== PRIVATE_KEY_BYTES) {
    throw new RangeError(
      `an X25519 private key is ${PRIVATE_KEY_BYTES} bytes, got ${raw32.length}`,
    );
  }
  const privateKey = createPrivateKey({
    key: Buffer.concat([PKCS8_X25519_PREFIX, raw32]),
    format: "der",
    type: "pkcs8",
  });
  return { privateKey, publicKey: rawPublicKey(createPublicKey(privateKey)) };
}

/**
 * X25519 Diffie-Hellman: the 32-byte shared secret of our private key and a peer's raw public key.
 * Returns `undefined`, never throws, when the peer's key is not 32 bytes or is a low-order point
 * (the all-zero shared secret RFC 7748 §6.1 says to reject); throws `TypeError` only when
 * `privateKey` is not an X25519 private key, which is a programming error.
 *
 * @example
 * ```ts
 * import { generateKeyPair, x25519 } from "./crypto.ts";
 * const alice = generateKeyPair(), bob = generateKeyPair();
 * const secret = x25519(alice.privateKey, bob.publicKey); // same bytes as x25519(bob.privateKey, alice.publicKey)
 * ```
 */
export function x25519(privateKey: KeyObject, peerPublic: Uint8Array): Uint8Array | undefined {
  if (privateKey.type !== "private" || privateKey.asymmetricKeyType !== "x25519") {
    throw new TypeError(
      "x25519 needs an X25519 private key from generateKeyPair/keyPairFromPrivate",
    );
  }
  if (peerPublic.length !== PUBLIC_KEY_BYTES) return undefined;
  let shared: Uint8Array;
  try {
    const publicKey = createPublicKey({
      key: Buffer.concat([SPKI_X25519_PREFIX, peerPublic]),
      format: "der",
      type: "spki",
    });
    // Throws for a low-order peer key (all-zero result); we check the result below as well.
    shared = diffieHellman({ privateKey, publicKey });
  } catch {
    return undefined;
  }
  let anyBits = 0;
  for (let index = 0; index < shared.length; index++) anyBits |= shared[index];
  if (shared.length !== KEY_BYTES || anyBits === 0) return undefined;
  return new Uint8Array(shared);
}

/**
 * HKDF-SHA256 (RFC 5869): extract with `salt` (empty means 32 zero bytes), expand with `info`.
 * `lengthBytes` must be 1..8160 and `info` at most 1024 bytes (a `node:crypto` limit); anything else
 * throws `RangeError`, as these are chosen by our code, not by a peer.
 */
export function hkdf(
  ikm: Uint8Array,
  salt: Uint8Array,
  info: Uint8Array,
  lengthBytes: number,
): Uint8Array {
  if (!Number.isInteger(lengthBytes) || lengthBytes < 1 || lengthBytes > HKDF_MAX_OUTPUT_BYTES) {
    throw new RangeError(`HKDF-SHA256 output must be 1..${HKDF_MAX_OUTPUT_BYTES} bytes`);
  }
  return new Uint8Array(hkdfSync("sha256", ikm, salt, info, lengthBytes));
}

/**
 * HMAC-SHA256 over the concatenation of `parts`, truncated to its first 16 bytes ({@link MAC_BYTES}).
 * Compare MACs with {@link constantTimeEqual}, never with a loop that stops early.
 */
export function hmac16(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const mac = createHmac("sha256", key);
  for (const part of parts) mac.update(part);
  return new Uint8Array(mac.digest().subarray(0, MAC_BYTES));
}

/** Compares two byte strings in time independent of their contents; false when lengths differ. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** `count` bytes from the operating system's CSPRNG. */
export function randomBytes(count: number): Uint8Array {
  return randomFillSync(new Uint8Array(count));
}

/**
 * An AEAD key for one direction of a session. The nonce is a counter the caller never repeats
 * under one key (mptunnel uses the packet sequence number); the associated data is the packet header.
 *
 * Both methods allow in-place use: `out` may be the very buffer (or overlap the region) holding
 * `plaintext`/`sealed` and the associated data, because every input is consumed before the first
 * byte of `out` is written.
 *
 * @example
 * ```ts
 * import { createAead, randomBytes, TAG_BYTES } from "./crypto.ts";
 * const key = randomBytes(32);
 * const sender = createAead(key), receiver = createAead(key);
 * const header = new Uint8Array([1, 2, 3]);
 * const payload = new TextEncoder().encode("hello");
 * const datagram = new Uint8Array(payload.length + TAG_BYTES);
 * const sealedBytes = sender.seal(7, header, payload, datagram, 0);
 * const plain = new Uint8Array(payload.length);
 * const plainBytes = receiver.open(7, header, datagram.subarray(0, sealedBytes), plain, 0); // 5, or -1 if forged
 * ```
 */
export interface Aead {
  /** Which cipher this key uses. */
  readonly algorithm: AeadAlgorithm;
  /**
   * Encrypts `plaintext` into `out` at `outOffset`: ciphertext, then the 16-byte tag. Returns the
   * bytes written (`plaintext.length + 16`). `counter` (integer 0..2^53−1) forms the nonce
   * `0x00000000 || counter as 64-bit big-endian`. Throws `RangeError` for a bad counter or an `out`
   * too small: both are bugs in the caller. In-place use is safe.
   */
  seal(
    counter: number,
    associatedData: Uint8Array,
    plaintext: Uint8Array,
    out: Uint8Array,
    outOffset: number,
  ): number;
  /**
   * Verifies and decrypts `sealed` (ciphertext || tag) into `out` at `outOffset`; returns the
   * plaintext length, or -1 when the tag does not verify, `sealed` is shorter than the tag, the
   * counter is not an integer 0..2^53−1, or `out` has no room. Never throws on such input. On -1,
   * `out` is untouched: plaintext is copied into it only after the tag has verified. In-place use is
   * safe.
   */
  open(
    counter: number,
    associatedData: Uint8Array,
    sealed: Uint8Array,
    out: Uint8Array,
    outOffset: number,
  ): number;
  /**
   * Frees what the key holds (native cipher contexts) now, rather than when it is collected, and
   * wipes the key: for a key that is done with, e.g. a key phase that has been replaced. Later seals
   * throw; later opens return -1. Calling it again does nothing.
   */
  dispose(): void;
}

/** Which library implements {@link createAead}'s keys: OpenSSL through FFI, or `node:crypto`. */
export type AeadImplementation = "openssl" | "node";

/** The environment variable that overrides {@link aeadImplementation}'s choice. */
export const AEAD_IMPLEMENTATION_ENV_VAR = "MPTUNNEL_CRYPTO";
/**
 * What {@link aeadImplementation} picks when the environment does not say: OpenSSL, which seals and
 * opens several times faster (see the table at the top of this module). It falls back to
 * `node:crypto` by itself wherever it cannot run (e.g. without `--allow-ffi`).
 */
export const DEFAULT_AEAD_IMPLEMENTATION: AeadImplementation = "openssl";

let chosenImplementation: AeadImplementation | undefined;

/**
 * The implementation {@link createAead} uses in this process, decided once: `MPTUNNEL_CRYPTO`
 * (`openssl` or `node`) when set and readable, else {@link DEFAULT_AEAD_IMPLEMENTATION}; "openssl"
 * only where it loaded and passed its self-test (see `lib/aead_openssl.ts`), else "node", with a
 * warning when OpenSSL was asked for explicitly.
 */
export function aeadImplementation(): AeadImplementation {
  chosenImplementation ??= chooseImplementation<"openssl", "node">({
    envVar: AEAD_IMPLEMENTATION_ENV_VAR,
    fast: "openssl",
    portable: "node",
    defaultChoice: DEFAULT_AEAD_IMPLEMENTATION,
    fastUnavailable: opensslAeadUnavailable,
    portableDescription: "node:crypto",
  });
  return chosenImplementation;
}

/** Forgets {@link aeadImplementation}'s choice (for tests that change the environment). */
export function resetAeadImplementation(): void {
  chosenImplementation = undefined;
}

/**
 * Makes an {@link Aead} from a 32-byte key (copied, so the caller may wipe its own copy), with the
 * implementation {@link aeadImplementation} names; both give the same bytes. Throws `RangeError` for
 * a key of another length.
 */
export function createAead(key: Uint8Array, algorithm: AeadAlgorithm = DEFAULT_AEAD): Aead {
  if (key.length !== KEY_BYTES) {
    throw new RangeError(`an AEAD key is ${KEY_BYTES} bytes, got ${key.length}`);
  }
  return aeadImplementation() === "openssl"
    ? createOpensslAead(key, algorithm)
    : new CounterNonceAead(new Uint8Array(key), algorithm);
}

/**
 * Makes an {@link Aead} on `node:crypto` whatever {@link aeadImplementation} says: the fallback, for
 * tests and benchmarks that compare the two. Throws `RangeError` for a key that is not 32 bytes.
 */
export function createNodeAead(key: Uint8Array, algorithm: AeadAlgorithm = DEFAULT_AEAD): Aead {
  if (key.length !== KEY_BYTES) {
    throw new RangeError(`an AEAD key is ${KEY_BYTES} bytes, got ${key.length}`);
  }
  return new CounterNonceAead(new Uint8Array(key), algorithm);
}

class CounterNonceAead implements Aead {
  readonly algorithm: AeadAlgorithm;
  readonly #key: Uint8Array;
  // One nonce buffer per key: createCipheriv copies the IV before returning, so reuse is safe.
  readonly #nonce = new Uint8Array(NONCE_BYTES);
  readonly #nonceView = new DataView(this.#nonce.buffer);

  #disposed = false;

  constructor(key: Uint8Array, algorithm: AeadAlgorithm) {
    this.#key = key;
    this.algorithm = algorithm;
  }

  dispose(): void {
    this.#disposed = true;
    this.#key.fill(0);
  }

  seal(
    counter: number,
    associatedData: Uint8Array,
    plaintext: Uint8Array,
    out: Uint8Array,
    outOffset: number,
  ): number {
    checkSealCounter(counter);
    if (this.#disposed) throw new Error("seal with a disposed AEAD key");
    writeCounterNonce(this.#nonceView, counter);
    return sealWithNonce(
      this.algorithm,
      this.#key,
      this.#nonce,
      associatedData,
      plaintext,
      out,
      outOffset,
    );
  }

  open(
    counter: number,
    associatedData: Uint8Array,
    sealed: Uint8Array,
    out: Uint8Array,
    outOffset: number,
  ): number {
    if (!isValidCounter(counter) || this.#disposed) return -1;
    writeCounterNonce(this.#nonceView, counter);
    return openWithNonce(
      this.algorithm,
      this.#key,
      this.#nonce,
      associatedData,
      sealed,
      out,
      outOffset,
    );
  }
}

/**
 * The raw AEAD with an explicit 12-byte nonce, as RFC 8439 / NIST SP 800-38D define it; {@link Aead}
 * uses it with a counter nonce. Exported for known-answer tests. Writes ciphertext then the tag into
 * `out` at `outOffset` and returns the bytes written. Throws `RangeError` for a key that is not 32
 * bytes, a nonce that is not 12 bytes, or an `out` too small. In-place use is safe.
 */
export function sealWithNonce(
  algorithm: AeadAlgorithm,
  key: Uint8Array,
  nonce: Uint8Array,
  associatedData: Uint8Array,
  plaintext: Uint8Array,
  out: Uint8Array,
  outOffset: number,
): number {
  checkKeyAndNonce(key, nonce);
  const sealedBytes = plaintext.length + TAG_BYTES;
  checkSealOutput(sealedBytes, out, outOffset);
  // Two identical-looking calls so TypeScript picks each algorithm's overload (with setAAD).
  const cipher = algorithm === "chacha20-poly1305"
    ? createCipheriv(algorithm, key, nonce, TAG_OPTIONS)
    : createCipheriv(algorithm, key, nonce, TAG_OPTIONS);
  cipher.setAAD(associatedData, { plaintextLength: plaintext.length });
  // node:crypto has no "encrypt into this buffer" call: update returns a new Buffer, which we copy.
  const ciphertext = cipher.update(plaintext);
  cipher.final();
  out.set(ciphertext, outOffset);
  out.set(cipher.getAuthTag(), outOffset + plaintext.length);
  return sealedBytes;
}

/**
 * The raw AEAD open with an explicit 12-byte nonce (see {@link sealWithNonce}). Returns the plaintext
 * length written into `out` at `outOffset`, or -1 when `sealed` is shorter than the tag, the tag does
 * not verify, or `out` has no room; `out` is untouched on -1. Throws `RangeError` only for a key or
 * nonce of the wrong length (chosen by our code, never by a peer).
 */
export function openWithNonce(
  algorithm: AeadAlgorithm,
  key: Uint8Array,
  nonce: Uint8Array,
  associatedData: Uint8Array,
  sealed: Uint8Array,
  out: Uint8Array,
  outOffset: number,
): number {
  checkKeyAndNonce(key, nonce);
  const plaintextBytes = sealed.length - TAG_BYTES;
  if (plaintextBytes < 0) return -1;
  if (!fitsOutput(plaintextBytes, out, outOffset)) return -1;
  // As in sealWithNonce: one call per algorithm for the typed overloads.
  const decipher = algorithm === "chacha20-poly1305"
    ? createDecipheriv(algorithm, key, nonce, TAG_OPTIONS)
    : createDecipheriv(algorithm, key, nonce, TAG_OPTIONS);
  let plaintext: Uint8Array;
  try {
    decipher.setAuthTag(sealed.subarray(plaintextBytes));
    decipher.setAAD(associatedData, { plaintextLength: plaintextBytes });
    // update hands back plaintext before the tag is checked; it stays in this private Buffer until
    // final() has verified the tag, and only then is it copied into `out`.
    plaintext = decipher.update(sealed.subarray(0, plaintextBytes));
    decipher.final();
  } catch {
    return -1;
  }
  out.set(plaintext, outOffset);
  return plaintextBytes;
}

function checkKeyAndNonce(key: Uint8Array, nonce: Uint8Array): void {
  if (key.length !== KEY_BYTES) {
    throw new RangeError(`an AEAD key is ${KEY_BYTES} bytes, got ${key.length}`);
  }
  if (nonce.length !== NONCE_BYTES) {
    throw new RangeError(`an AEAD nonce is ${NONCE_BYTES} bytes, got ${nonce.length}`);
  }
}

function rawPublicKey(publicKey: KeyObject): Uint8Array {
  const spki = publicKey.export({ type: "spki", format: "der" });
  return new Uint8Array(spki.subarray(spki.length - PUBLIC_KEY_BYTES));
}
