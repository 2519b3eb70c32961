/**
 * The fast {@link Aead}: OpenSSL's libcrypto through Deno's FFI. `createAead` in `lib/crypto/aead_factory.ts`
 * picks it wherever it can run (see `aeadImplementation`), and falls back to `node:crypto` elsewhere.
 * Its output is byte for byte what the `node:crypto` implementation produces, so the two ends of a
 * tunnel may use either.
 *
 * Why it is faster: `node:crypto` cannot give a cipher a new nonce, so the fallback builds a cipher
 * object per datagram, and that is most of its cost. Here each key gets one `EVP_CIPHER_CTX` per
 * direction of use (one to seal, one to open, each made on first use), keyed once; per datagram only
 * the nonce is set again (`EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce)`), then the associated
 * data, the payload, the final step and the tag: five or six synchronous FFI calls and no allocation
 * beyond a `subarray` view or two.
 *
 * Security properties kept from the fallback: {@link OpensslAead.open} decrypts into a private
 * scratch buffer and copies into the caller's `out` only after `EVP_DecryptFinal_ex` has verified the
 * tag, so a forged datagram never shows its would-be plaintext; OpenSSL compares the tag in constant
 * time (`CRYPTO_memcmp`) inside `EVP_DecryptFinal_ex`. The native contexts hold the key; they are
 * freed (and wiped by OpenSSL) when their {@link Aead} is garbage-collected, through a
 * `FinalizationRegistry`.
 *
 * The library is loaded, and checked against the RFC 8439 §2.8.2 and GCM test case 16 vectors, once,
 * when this module is evaluated (not inside whatever first makes a key: Deno's resource sanitizer
 * would count the library against that test). When FFI is not permitted, no libcrypto is found, a
 * symbol is missing, or the check fails, {@link opensslAeadUnavailable} says why and nothing here is
 * used.
 *
 * Beside it: the libcrypto symbols and the calls each datagram takes (`libcrypto.ts`), and the
 * self-test (`aead_openssl_self_test.ts`).
 */

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
import type { Aead, AeadAlgorithm } from "./aead.ts";
import {
  type Context,
  freeContext,
  type Libcrypto,
  libraryCandidates,
  liveContexts,
  newKeyedContext,
  openLibcrypto,
  openWithContext,
  sealWithContext,
} from "./libcrypto.ts";
import { selfTest } from "./aead_openssl_self_test.ts";

/** OpenSSL takes lengths as C `int`. */
const MAX_INPUT_BYTES = 0x7fff_ffff;

let libcrypto: Libcrypto | undefined;
let libraryPath: string | undefined;
let unavailableReason: string | undefined;
const ciphers = new Map<AeadAlgorithm, Context>();

/** The nonce `0x00000000 || counter as 64-bit big-endian`; OpenSSL copies it at each init. */
const counterNonce = new Uint8Array(NONCE_BYTES);
const counterNonceView = new DataView(counterNonce.buffer);

/**
 * Why the OpenSSL AEAD cannot be used in this process (no `--allow-ffi`, no libcrypto, a symbol
 * missing, or the known-answer self-test failed), or undefined when it can.
 */
export function opensslAeadUnavailable(): string | undefined {
  if (libcrypto !== undefined) return undefined;
  if (unavailableReason !== undefined) return unavailableReason;
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
    // Not remembered: a test may grant FFI later; asking again is cheap and never prompts.
    return "no --allow-ffi";
  }
  const failures: string[] = [];
  for (const candidate of libraryCandidates()) {
    let library: ReturnType<typeof openLibcrypto>;
    try {
      library = openLibcrypto(candidate);
    } catch (error) {
      failures.push(`${candidate}: ${error instanceof Error ? error.message : String(error)}`);
      continue;
    }
    const selfTestFailure = selfTest(library.symbols, ciphers);
    if (selfTestFailure === undefined) {
      libcrypto = library.symbols;
      libraryPath = candidate;
      return undefined;
    }
    ciphers.clear();
    library.close();
    failures.push(`${candidate}: self-test failed (${selfTestFailure})`);
  }
  unavailableReason = failures.join("; ");
  return unavailableReason;
}

/** The libcrypto the OpenSSL AEAD was loaded from (as passed to `Deno.dlopen`), if it was. */
export function opensslLibraryPath(): string | undefined {
  return libraryPath;
}

/** How many native cipher contexts exist now; for tests that check keys are freed. */
export function opensslLiveContexts(): number {
  return liveContexts();
}

/**
 * Makes an OpenSSL-backed {@link Aead} from a 32-byte key (copied). Throws `RangeError` for a key of
 * another length or an unknown algorithm, and `Error` when {@link opensslAeadUnavailable} says why it
 * cannot run; `createAead` in `lib/crypto/aead_factory.ts` checks that first.
 */
export function createOpensslAead(key: Uint8Array, algorithm: AeadAlgorithm): OpensslAead {
  if (key.length !== KEY_BYTES) {
    throw new RangeError(`an AEAD key is ${KEY_BYTES} bytes, got ${key.length}`);
  }
  const reason = opensslAeadUnavailable();
  if (reason !== undefined) throw new Error(`the OpenSSL AEAD is unavailable: ${reason}`);
  const cipher = ciphers.get(algorithm);
  if (cipher === undefined) throw new RangeError(`unknown AEAD algorithm ${algorithm}`);
  return new OpensslAead(new Uint8Array(key), algorithm, cipher, libcrypto!);
}

/** The native contexts of one key; held by the finalizer, so it must not refer to the key's object. */
interface NativeContexts {
  seal: Context | null;
  open: Context | null;
}

const contextFinalizer = new FinalizationRegistry<NativeContexts>((contexts) => {
  // A finalizer can only run once the library was loaded (a context exists only then).
  if (contexts.seal !== null) freeContext(libcrypto!, contexts.seal);
  if (contexts.open !== null) freeContext(libcrypto!, contexts.open);
  contexts.seal = contexts.open = null;
});

/**
 * An {@link Aead} on OpenSSL: the same contract, argument checks and results as the `node:crypto`
 * one (see {@link Aead.seal} and {@link Aead.open}). Made by {@link createOpensslAead}.
 */
export class OpensslAead implements Aead {
  /** Which cipher this key uses. */
  readonly algorithm: AeadAlgorithm;
  readonly #cipher: Context;
  readonly #symbols: Libcrypto;
  readonly #contexts: NativeContexts = { seal: null, open: null };
  /**
   * Kept while a direction may still need a context (a key is normally used in one direction only,
   * so usually until {@link dispose}); wiped once both are keyed, or at dispose.
   */
  #key: Uint8Array | undefined;
  #disposed = false;

  /** Use {@link createOpensslAead}, which checks the key and that OpenSSL is there. */
  constructor(key: Uint8Array, algorithm: AeadAlgorithm, cipher: Context, symbols: Libcrypto) {
    this.algorithm = algorithm;
    this.#key = key;
    this.#cipher = cipher;
    this.#symbols = symbols;
    contextFinalizer.register(this, this.#contexts, this.#contexts);
  }

  /** See {@link Aead.dispose}: frees both native contexts now and wipes the key. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    contextFinalizer.unregister(this.#contexts);
    const contexts = this.#contexts;
    if (contexts.seal !== null) freeContext(this.#symbols, contexts.seal);
    if (contexts.open !== null) freeContext(this.#symbols, contexts.open);
    contexts.seal = contexts.open = null;
    this.#key?.fill(0);
    this.#key = undefined;
  }

  /** See {@link Aead.seal}. */
  seal(
    counter: number,
    associatedData: Uint8Array,
    plaintext: Uint8Array,
    out: Uint8Array,
    outOffset: number,
  ): number {
    checkSealCounter(counter);
    const sealedBytes = plaintext.length + TAG_BYTES;
    checkSealOutput(sealedBytes, out, outOffset);
    if (plaintext.length > MAX_INPUT_BYTES || associatedData.length > MAX_INPUT_BYTES) {
      throw new RangeError(`the AEAD takes at most ${MAX_INPUT_BYTES} bytes of input`);
    }
    if (this.#disposed) throw new Error("seal with a disposed AEAD key");
    writeCounterNonce(counterNonceView, counter);
    const context = this.#contexts.seal ?? this.#newContext(true);
    sealWithContext(
      this.#symbols,
      context,
      counterNonce,
      associatedData,
      plaintext,
      out,
      outOffset,
    );
    return sealedBytes;
  }

  /** See {@link Aead.open}. */
  open(
    counter: number,
    associatedData: Uint8Array,
    sealed: Uint8Array,
    out: Uint8Array,
    outOffset: number,
  ): number {
    if (!isValidCounter(counter)) return -1;
    const plaintextBytes = sealed.length - TAG_BYTES;
    if (plaintextBytes < 0 || plaintextBytes > MAX_INPUT_BYTES) return -1;
    if (associatedData.length > MAX_INPUT_BYTES) return -1;
    if (!fitsOutput(plaintextBytes, out, outOffset)) return -1;
    if (this.#disposed) return -1;
    let context = this.#contexts.open;
    if (context === null) {
      try {
        context = this.#newContext(false);
      } catch {
        return -1; // out of memory: open never throws on what it is given
      }
    }
    writeCounterNonce(counterNonceView, counter);
    return openWithContext(
      this.#symbols,
      context,
      counterNonce,
      associatedData,
      sealed,
      out,
      outOffset,
    );
  }

  #newContext(forSealing: boolean): Context {
    const context = newKeyedContext(this.#symbols, this.#cipher, this.#key!, forSealing);
    if (forSealing) this.#contexts.seal = context;
    else this.#contexts.open = context;
    if (this.#contexts.seal !== null && this.#contexts.open !== null) {
      // Both contexts hold their own copy now; ours is no longer needed.
      this.#key!.fill(0);
      this.#key = undefined;
    }
    return context;
  }
}

/**
 * The libcrypto in use, if one loaded and passed its self-test; for tests that check the self-test
 * against a library that misbehaves (by wrapping these).
 */
export function loadedLibcrypto(): Libcrypto | undefined {
  return libcrypto;
}

opensslAeadUnavailable();
