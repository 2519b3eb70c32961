/**
 * The {@link Aead} on `node:crypto`: the portable fallback, and the reference the OpenSSL
 * implementation is checked against byte for byte. It creates one cipher object per datagram, since
 * `node:crypto` cannot re-key a cipher with a new nonce (costs in `primitives.ts`).
 */

import { createCipheriv, createDecipheriv } from "node:crypto";
import { type Aead, type AeadAlgorithm, DEFAULT_AEAD } from "./aead.ts";
import {
  checkSealCounter,
  checkSealOutput,
  fitsOutput,
  isValidCounter,
  KEY_BYTES,
  NONCE_BYTES,
  TAG_BYTES,
  writeCounterNonce,
} from "./aead_nonce.ts";

const TAG_OPTIONS = { authTagLength: TAG_BYTES } as const;

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
