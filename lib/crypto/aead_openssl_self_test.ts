/**
 * The OpenSSL AEAD's self-test: known answers (RFC 8439 §2.8.2 for ChaCha20-Poly1305, the GCM
 * specification's test case 16 for AES-256-GCM) run through the very calls the datagrams take, and
 * forgeries that must be refused. `aead_openssl.ts` runs it on each libcrypto it finds before using
 * one: a library that passes the known answers but mishandles what the data path relies on (a new
 * nonce on a keyed context) must not be used.
 */

import type { AeadAlgorithm } from "./aead.ts";
import { KEY_BYTES } from "./aead_nonce.ts";
import {
  type Context,
  freeContext,
  type Libcrypto,
  newKeyedContext,
  openWithContext,
  sealWithContext,
} from "./libcrypto.ts";

/** RFC 8439 §2.8.2: key 80..9f, this nonce and AAD, the "sunscreen" plaintext. */
const RFC8439_NONCE = "070000004041424344454647";
const RFC8439_AAD = "50515253c0c1c2c3c4c5c6c7";
const RFC8439_PLAINTEXT =
  "Ladies and Gentlemen of the class of '99: If I could offer you only one " +
  "tip for the future, sunscreen would be it.";
const RFC8439_SEALED = "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6" +
  "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36" +
  "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc" +
  "3ff4def08e4b7a9de576d26586cec64b6116" + "1ae10b594f09e26a7e902ecbd0600691";
/** The GCM specification (McGrew & Viega), test case 16: AES-256, 60 B plaintext, 20 B AAD. */
const GCM16_KEY = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308";
const GCM16_NONCE = "cafebabefacedbaddecaf888";
const GCM16_AAD = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
const GCM16_PLAINTEXT = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72" +
  "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
const GCM16_SEALED = "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa" +
  "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662" + "76fc6ece0f4e1768cddf8853bb2d551b";

interface KnownAnswer {
  readonly algorithm: AeadAlgorithm;
  readonly cipher: Context | null;
  readonly key: Uint8Array;
  readonly nonce: Uint8Array;
  readonly associatedData: Uint8Array;
  readonly plaintext: Uint8Array;
  readonly sealed: Uint8Array;
}

/**
 * Checks a libcrypto against known answers (sealing and opening twice on one context, each time
 * also under another nonce, and forgeries): undefined when it passes, else what went wrong. Run at
 * load on each candidate library, which passes `verifiedCiphers` to learn the ciphers that passed;
 * exported for tests.
 */
export function selfTest(
  symbols: Libcrypto,
  verifiedCiphers?: Map<AeadAlgorithm, Context>,
): string | undefined {
  const answers: KnownAnswer[] = [
    {
      algorithm: "chacha20-poly1305",
      cipher: symbols.EVP_chacha20_poly1305(),
      key: Uint8Array.from({ length: KEY_BYTES }, (_, index) => 0x80 + index),
      nonce: fromHex(RFC8439_NONCE),
      associatedData: fromHex(RFC8439_AAD),
      plaintext: new TextEncoder().encode(RFC8439_PLAINTEXT),
      sealed: fromHex(RFC8439_SEALED),
    },
    {
      algorithm: "aes-256-gcm",
      cipher: symbols.EVP_aes_256_gcm(),
      key: fromHex(GCM16_KEY),
      nonce: fromHex(GCM16_NONCE),
      associatedData: fromHex(GCM16_AAD),
      plaintext: fromHex(GCM16_PLAINTEXT),
      sealed: fromHex(GCM16_SEALED),
    },
  ];
  for (const answer of answers) {
    if (answer.cipher === null) return `${answer.algorithm}: no such cipher`;
    let sealContext: Context | undefined;
    let openContext: Context | undefined;
    try {
      sealContext = newKeyedContext(symbols, answer.cipher, answer.key, true);
      openContext = newKeyedContext(symbols, answer.cipher, answer.key, false);
      const failure = checkKnownAnswer(symbols, sealContext, openContext, answer);
      if (failure !== undefined) return `${answer.algorithm}: ${failure}`;
    } catch (error) {
      return `${answer.algorithm}: ${error instanceof Error ? error.message : String(error)}`;
    } finally {
      if (sealContext !== undefined) freeContext(symbols, sealContext);
      if (openContext !== undefined) freeContext(symbols, openContext);
    }
    verifiedCiphers?.set(answer.algorithm, answer.cipher);
  }
  return undefined;
}

/**
 * Seals the vector twice on one context (the second time through the nonce-only re-init the data
 * path relies on), opens it, and checks that a flipped bit in the ciphertext or the tag is refused
 * without touching `out` and that the context opens correctly again afterwards. Returns what went
 * wrong, or undefined.
 */
function checkKnownAnswer(
  symbols: Libcrypto,
  sealContext: Context,
  openContext: Context,
  answer: KnownAnswer,
): string | undefined {
  const { nonce, associatedData, plaintext, sealed } = answer;
  // Another nonce, used between the known-answer runs: a library that kept a context's first nonce
  // when only the nonce is set again (what every datagram does) would pass the known answer twice
  // and then seal every datagram with one keystream. Its seal must differ, and must not open under
  // the known nonce.
  const otherNonce = nonce.slice();
  otherNonce[otherNonce.length - 1] ^= 1;
  const out = new Uint8Array(sealed.length);
  const opened = new Uint8Array(plaintext.length);
  const open = (input: Uint8Array, withNonce = nonce) =>
    openWithContext(symbols, openContext, withNonce, associatedData, input, opened, 0);
  for (const attempt of ["first", "second"]) {
    out.fill(0);
    sealWithContext(symbols, sealContext, nonce, associatedData, plaintext, out, 0);
    if (!equalBytes(out, sealed)) return `${attempt} seal differs from the known answer`;
    if (open(sealed) !== plaintext.length || !equalBytes(opened, plaintext)) {
      return `${attempt} open does not recover the known plaintext`;
    }
    out.fill(0);
    sealWithContext(symbols, sealContext, otherNonce, associatedData, plaintext, out, 0);
    if (equalBytes(out, sealed)) return "a new nonce was ignored when sealing";
    if (open(out) !== -1) return "a datagram sealed under another nonce opened under this one";
    if (open(out, otherNonce) !== plaintext.length || !equalBytes(opened, plaintext)) {
      return "open under a new nonce does not recover the plaintext";
    }
    if (open(sealed, otherNonce) !== -1) return "a new nonce was ignored when opening";
  }
  for (const bit of [0, sealed.length * 8 - 1]) {
    const forged = sealed.slice();
    forged[bit >> 3] ^= 1 << (bit & 7);
    opened.fill(0);
    if (open(forged) !== -1) return `a flipped bit ${bit} was accepted`;
    if (opened.some((byte) => byte !== 0)) return "a forgery wrote into out";
  }
  if (open(sealed) !== plaintext.length || !equalBytes(opened, plaintext)) {
    return "open after a forgery does not recover the known plaintext";
  }
  return undefined;
}

function fromHex(hex: string): Uint8Array {
  const bytes = new Uint8Array(hex.length / 2);
  for (let index = 0; index < bytes.length; index++) {
    bytes[index] = parseInt(hex.slice(index * 2, index * 2 + 2), 16);
  }
  return bytes;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let index = 0; index < a.length; index++) if (a[index] !== b[index]) return false;
  return true;
}
