/**
 * The AEAD mptunnel seals every datagram with: one key per direction and key phase, its nonce a 64-bit
 * packet counter. This module holds the interface and the algorithm names; `aead_factory.ts` picks the
 * implementation (OpenSSL through FFI in `aead_openssl.ts`, or `node:crypto` in `aead_node.ts`), and
 * `primitives.ts` keeps the measurements that chose them.
 */

export { KEY_BYTES, MAX_COUNTER, NONCE_BYTES, TAG_BYTES } from "./aead_nonce.ts";

/**
 * Makes an {@link Aead} from a 32-byte key: what the handshake calls to key a session. The engines
 * take one in their options (the drivers pass `createAead` from `aead_factory.ts`), so tests may
 * count or fake keys.
 */
export type AeadFactory = (key: Uint8Array) => Aead;

/** The AEAD algorithms a session may use. */
export type AeadAlgorithm = "chacha20-poly1305" | "aes-256-gcm";

/** The AEAD sessions use (the handshake does not negotiate one); why, at the top of this module. */
export const DEFAULT_AEAD: AeadAlgorithm = "chacha20-poly1305";

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
 * import { createAead } from "./aead_factory.ts";
 * import { randomBytes } from "./primitives.ts";
 * import { TAG_BYTES } from "./aead.ts";
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
