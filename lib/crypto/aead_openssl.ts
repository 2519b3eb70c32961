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

/** OpenSSL's `EVP_CTRL_AEAD_GET_TAG` and `EVP_CTRL_AEAD_SET_TAG`. */
const EVP_CTRL_AEAD_GET_TAG = 0x10;
const EVP_CTRL_AEAD_SET_TAG = 0x11;
/** OpenSSL takes lengths as C `int`. */
const MAX_INPUT_BYTES = 0x7fff_ffff;
/** The open scratch buffer's first size: a full-MTU datagram fits; it grows for larger ones. */
const INITIAL_SCRATCH_BYTES = 2048;

/** Where libcrypto may be, tried in order; the first that loads with every symbol is used. */
function libraryCandidates(): readonly string[] {
  switch (Deno.build.os) {
    case "darwin":
      return [
        "libcrypto.3.dylib",
        "/opt/homebrew/opt/openssl@3/lib/libcrypto.3.dylib",
        "/usr/local/opt/openssl@3/lib/libcrypto.3.dylib",
      ];
    case "windows":
      return [Deno.build.arch === "aarch64" ? "libcrypto-3-arm64.dll" : "libcrypto-3-x64.dll"];
    default:
      return ["libcrypto.so.3", "libcrypto.so"];
  }
}

// Every call is synchronous on the JavaScript thread: each takes well under a microsecond, far less
// than handing it to another thread would cost, and the shared buffers below rely on it.
const SYMBOLS = {
  EVP_CIPHER_CTX_new: { parameters: [], result: "pointer" },
  EVP_CIPHER_CTX_free: { parameters: ["pointer"], result: "void" },
  EVP_chacha20_poly1305: { parameters: [], result: "pointer" },
  EVP_aes_256_gcm: { parameters: [], result: "pointer" },
  // (ctx, cipher, engine, key, iv)
  EVP_EncryptInit_ex: {
    parameters: ["pointer", "pointer", "pointer", "buffer", "buffer"],
    result: "i32",
  },
  EVP_DecryptInit_ex: {
    parameters: ["pointer", "pointer", "pointer", "buffer", "buffer"],
    result: "i32",
  },
  // (ctx, out, int *outl, in, inl); out NULL means `in` is associated data.
  EVP_EncryptUpdate: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  EVP_DecryptUpdate: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  // (ctx, out, int *outl); returns 0 from decryption when the tag does not verify.
  EVP_EncryptFinal_ex: {
    parameters: ["pointer", "buffer", "buffer"],
    result: "i32",
  },
  EVP_DecryptFinal_ex: {
    parameters: ["pointer", "buffer", "buffer"],
    result: "i32",
  },
  // (ctx, type, arg, ptr)
  EVP_CIPHER_CTX_ctrl: {
    parameters: ["pointer", "i32", "i32", "buffer"],
    result: "i32",
  },
} as const;

/** The libcrypto functions this module calls. */
export type Libcrypto = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
type Context = NonNullable<Deno.PointerValue>;

let libcrypto: Libcrypto | undefined;
let libraryPath: string | undefined;
let unavailableReason: string | undefined;
const ciphers = new Map<AeadAlgorithm, Context>();

// Shared by every key: all calls are synchronous, so no two operations ever use them at once.
/** The `int *outl` out-parameter of the update and final calls. */
const outLength = new Int32Array(1);
/** Where `EVP_*Final_ex` may write (these AEADs write nothing there). */
const finalBlock = new Uint8Array(32);
/** The tag on its way out of (seal) or into (open) a context. */
const tagBytes = new Uint8Array(TAG_BYTES);
/** The nonce `0x00000000 || counter as 64-bit big-endian`; OpenSSL copies it at each init. */
const counterNonce = new Uint8Array(NONCE_BYTES);
const counterNonceView = new DataView(counterNonce.buffer);
/** Unverified plaintext stays here until the tag has verified; also a seal's input when it overlaps. */
let scratch = new Uint8Array(INITIAL_SCRATCH_BYTES);
/** Native contexts alive now (made and not yet freed), for tests that look for leaks. */
let liveContextCount = 0;

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
    let library: Deno.DynamicLibrary<typeof SYMBOLS>;
    try {
      library = Deno.dlopen(candidate, SYMBOLS);
    } catch (error) {
      failures.push(`${candidate}: ${error instanceof Error ? error.message : String(error)}`);
      continue;
    }
    const selfTestFailure = selfTest(library.symbols);
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
  return liveContextCount;
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

function newKeyedContext(
  symbols: Libcrypto,
  cipher: Context,
  key: Uint8Array,
  forSealing: boolean,
): Context {
  const context = symbols.EVP_CIPHER_CTX_new();
  if (context === null) throw new Error("EVP_CIPHER_CTX_new failed (out of memory?)");
  liveContextCount++;
  const init = forSealing ? symbols.EVP_EncryptInit_ex : symbols.EVP_DecryptInit_ex;
  if (init(context, cipher, null, asBuffer(key), null) !== 1) {
    freeContext(symbols, context);
    throw new Error("OpenSSL refused to key an AEAD context");
  }
  return context;
}

function freeContext(symbols: Libcrypto, context: Context): void {
  symbols.EVP_CIPHER_CTX_free(context);
  liveContextCount--;
}

/**
 * Seals with a context keyed for encryption and a 12-byte nonce; `out` has been checked to have
 * room. Throws only if OpenSSL fails, which would be a bug (ours or its).
 */
function sealWithContext(
  symbols: Libcrypto,
  context: Context,
  nonce: Uint8Array,
  associatedData: Uint8Array,
  plaintext: Uint8Array,
  out: Uint8Array,
  outOffset: number,
): void {
  const plaintextBytes = plaintext.length;
  let ok = symbols.EVP_EncryptInit_ex(context, null, null, null, asBuffer(nonce)) === 1;
  // The associated data is consumed here, before anything is written: `out` may overlap it.
  if (ok && associatedData.length > 0) {
    ok = symbols.EVP_EncryptUpdate(
      context,
      null,
      asBuffer(outLength),
      asBuffer(associatedData),
      associatedData.length,
    ) === 1;
  }
  if (ok && plaintextBytes > 0) {
    // OpenSSL encrypts in place when `out` starts where `plaintext` does, but not when the two
    // overlap at different starts; that (rare) input is copied aside first.
    const input = overlapsShifted(plaintext, out, outOffset) ? copyToScratch(plaintext) : plaintext;
    ok = symbols.EVP_EncryptUpdate(
          context,
          asBuffer(outOffset === 0 ? out : out.subarray(outOffset)),
          asBuffer(outLength),
          asBuffer(input),
          plaintextBytes,
        ) === 1 && outLength[0] === plaintextBytes;
  }
  ok = ok &&
    symbols.EVP_EncryptFinal_ex(context, asBuffer(finalBlock), asBuffer(outLength)) === 1 &&
    outLength[0] === 0 &&
    symbols.EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_GET_TAG, TAG_BYTES, asBuffer(tagBytes)) ===
      1;
  if (!ok) throw new Error("OpenSSL failed to seal a datagram");
  out.set(tagBytes, outOffset + plaintextBytes);
}

/**
 * Opens with a context keyed for decryption and a 12-byte nonce; `sealed` holds at least the tag and
 * `out` has been checked to have room. Returns the plaintext length, or -1 (and leaves `out` alone)
 * when anything fails, above all the tag.
 */
function openWithContext(
  symbols: Libcrypto,
  context: Context,
  nonce: Uint8Array,
  associatedData: Uint8Array,
  sealed: Uint8Array,
  out: Uint8Array,
  outOffset: number,
): number {
  const plaintextBytes = sealed.length - TAG_BYTES;
  if (scratch.length < plaintextBytes) scratch = new Uint8Array(nextPowerOfTwo(plaintextBytes));
  // Copied byte by byte: cheaper than the view a `subarray` would allocate, for 16 bytes.
  for (let index = 0; index < TAG_BYTES; index++) tagBytes[index] = sealed[plaintextBytes + index];
  if (symbols.EVP_DecryptInit_ex(context, null, null, null, asBuffer(nonce)) !== 1) return -1;
  if (
    symbols.EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_SET_TAG, TAG_BYTES, asBuffer(tagBytes)) !== 1
  ) return -1;
  if (
    associatedData.length > 0 &&
    symbols.EVP_DecryptUpdate(
        context,
        null,
        asBuffer(outLength),
        asBuffer(associatedData),
        associatedData.length,
      ) !== 1
  ) return -1;
  if (
    plaintextBytes > 0 &&
    (symbols.EVP_DecryptUpdate(
          context,
          asBuffer(scratch),
          asBuffer(outLength),
          asBuffer(sealed), // only its first plaintextBytes bytes are read
          plaintextBytes,
        ) !== 1 || outLength[0] !== plaintextBytes)
  ) return -1;
  // The tag is checked here, in constant time; until it passes the plaintext stays in `scratch`.
  if (symbols.EVP_DecryptFinal_ex(context, asBuffer(finalBlock), asBuffer(outLength)) !== 1) {
    return -1;
  }
  if (plaintextBytes > 0) out.set(scratch.subarray(0, plaintextBytes), outOffset);
  return plaintextBytes;
}

/** True when `out[outOffset..]` and `input` share bytes but do not start at the same byte. */
function overlapsShifted(input: Uint8Array, out: Uint8Array, outOffset: number): boolean {
  if (input.buffer !== out.buffer) return false;
  const inputStart = input.byteOffset;
  const outStart = out.byteOffset + outOffset;
  return outStart !== inputStart && outStart < inputStart + input.length &&
    inputStart < outStart + input.length;
}

function copyToScratch(input: Uint8Array): Uint8Array {
  if (scratch.length < input.length) scratch = new Uint8Array(nextPowerOfTwo(input.length));
  scratch.set(input);
  return scratch;
}

function nextPowerOfTwo(value: number): number {
  let size = INITIAL_SCRATCH_BYTES;
  while (size < value) size *= 2;
  return size;
}

/** Deno's FFI types want views of an `ArrayBuffer`; ours may be typed more loosely. */
function asBuffer(bytes: ArrayBufferView): Uint8Array<ArrayBuffer> {
  return bytes as Uint8Array<ArrayBuffer>;
}

// -------------------------------------------------------------------------------------------------
// Self-test: known answers through the very code the datagrams take.

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
 * Seals each vector twice on one context (the second time through the nonce-only re-init the data
 * path relies on), opens it, and checks that a flipped bit in the ciphertext or the tag is refused
 * without touching `out` and that the context opens correctly again afterwards. Returns what went
 * wrong, or undefined; fills {@link ciphers} on success.
 */
/**
 * The libcrypto in use, if one loaded and passed its self-test; for tests that check the self-test
 * against a library that misbehaves (by wrapping these).
 */
export function loadedLibcrypto(): Libcrypto | undefined {
  return libcrypto;
}

/**
 * Checks a libcrypto against known answers (sealing and opening twice on one context, each time
 * also under another nonce, and forgeries): undefined when it passes, else what went wrong. Run at
 * load on each candidate library; exported for tests.
 */
export function selfTest(symbols: Libcrypto): string | undefined {
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
    ciphers.set(answer.algorithm, answer.cipher);
  }
  return undefined;
}

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

opensslAeadUnavailable();
