/**
 * What both AEAD implementations (`lib/crypto/aead_factory.ts` on `node:crypto`, `lib/crypto/aead_openssl.ts` on
 * OpenSSL) share: the sizes, and the nonce made from a datagram's 64-bit counter. A leaf module, so
 * that `lib/crypto/aead_openssl.ts` can use it while it loads, before `lib/crypto/aead_factory.ts` (which imports it)
 * has run.
 */

/** Length of an AEAD key. */
export const KEY_BYTES = 32;
/** Length of the authentication tag the AEAD appends. */
export const TAG_BYTES = 16;
/** Length of an AEAD nonce: 4 zero bytes then the 64-bit big-endian counter. */
export const NONCE_BYTES = 12;
/** The largest counter a seal accepts (2^53 − 1, the largest exact integer in a number). */
export const MAX_COUNTER = Number.MAX_SAFE_INTEGER;

/** True for a counter a nonce can be made from: an integer 0..{@link MAX_COUNTER}. */
export function isValidCounter(counter: number): boolean {
  return Number.isInteger(counter) && counter >= 0 && counter <= MAX_COUNTER;
}

/** Throws the RangeError a seal gives for a counter {@link isValidCounter} refuses. */
export function checkSealCounter(counter: number): void {
  if (!isValidCounter(counter)) {
    throw new RangeError(`AEAD counter must be an integer 0..${MAX_COUNTER}, got ${counter}`);
  }
}

/** True when `out` has `bytes` bytes of room from `outOffset` (an integer offset, not negative). */
export function fitsOutput(bytes: number, out: Uint8Array, outOffset: number): boolean {
  return Number.isInteger(outOffset) && outOffset >= 0 && outOffset + bytes <= out.length;
}

/** Throws the RangeError a seal gives when `out` has no room for the `sealedBytes` it writes. */
export function checkSealOutput(sealedBytes: number, out: Uint8Array, outOffset: number): void {
  if (!fitsOutput(sealedBytes, out, outOffset)) {
    throw new RangeError(
      `seal needs ${sealedBytes} bytes at offset ${outOffset} of a ${out.length}-byte buffer`,
    );
  }
}

/** Writes the nonce for `counter` into the 12 bytes `nonce` views (bytes 0..3 must be zero). */
export function writeCounterNonce(nonce: DataView, counter: number): void {
  // `>>> 0` keeps the low 32 bits exactly for any integer below 2^53.
  nonce.setUint32(4, Math.floor(counter / 0x1_0000_0000));
  nonce.setUint32(8, counter >>> 0);
}
