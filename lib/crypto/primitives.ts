/**
 * The cryptographic primitives mptunnel's handshake and data path use, as pure functions over
 * `Uint8Array` (no I/O, no clocks): X25519 key agreement, HKDF-SHA256, truncated HMAC-SHA256 (all on
 * `node:crypto`). The AEAD (`aead.ts`), keyed once per direction with a 64-bit packet counter as
 * nonce, runs on OpenSSL's libcrypto through FFI (`aead_openssl.ts`) wherever it can, else on
 * `node:crypto` (`aead_node.ts`); both write the same bytes (`aead_factory.ts` chooses). The
 * measurements behind those choices are kept here.
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
 * ChaCha20-Poly1305 is `DEFAULT_AEAD` (`aead.ts`). It was chosen on `node:crypto`, where it is about even
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
 * `aead_openssl.ts` keeps one keyed context per direction and per datagram only re-sets the
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
 * drop what they can (unknown session, replayed or stale counter) before calling `Aead.open`.
 */

import { Buffer } from "node:buffer";
import {
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
import { KEY_BYTES } from "./aead_nonce.ts";

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
 * import { generateKeyPair, x25519 } from "./primitives.ts";
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

function rawPublicKey(publicKey: KeyObject): Uint8Array {
  const spki = publicKey.export({ type: "spki", format: "der" });
  return new Uint8Array(spki.subarray(spki.length - PUBLIC_KEY_BYTES));
}
