/**
 * OpenSSL's libcrypto through Deno's FFI, as the OpenSSL AEAD (`aead_openssl.ts`) uses it: where the
 * library may be, the symbols called, and the calls one datagram takes — key a cipher context once,
 * then per datagram set only the nonce again and run the associated data, the payload, the final
 * step and the tag through it.
 *
 * Opening decrypts into a private scratch buffer and copies into the caller's `out` only after
 * `EVP_DecryptFinal_ex` has verified the tag (in constant time, `CRYPTO_memcmp`), so a forged
 * datagram never shows its would-be plaintext.
 */

import { TAG_BYTES } from "./aead_nonce.ts";

/** OpenSSL's `EVP_CTRL_AEAD_GET_TAG` and `EVP_CTRL_AEAD_SET_TAG`. */
const EVP_CTRL_AEAD_GET_TAG = 0x10;
const EVP_CTRL_AEAD_SET_TAG = 0x11;
/** The open scratch buffer's first size: a full-MTU datagram fits; it grows for larger ones. */
const INITIAL_SCRATCH_BYTES = 2048;

/** Where libcrypto may be, tried in order; the first that loads with every symbol is used. */
export function libraryCandidates(): readonly string[] {
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
/** A native OpenSSL object (a cipher, or a cipher context), never null. */
export type Context = NonNullable<Deno.PointerValue>;

/** Opens the libcrypto at `path` with every symbol this module calls; throws when it cannot. */
export function openLibcrypto(path: string): Deno.DynamicLibrary<typeof SYMBOLS> {
  return Deno.dlopen(path, SYMBOLS);
}

// Shared by every key: all calls are synchronous, so no two operations ever use them at once.
/** The `int *outl` out-parameter of the update and final calls. */
const outLength = new Int32Array(1);
/** Where `EVP_*Final_ex` may write (these AEADs write nothing there). */
const finalBlock = new Uint8Array(32);
/** The tag on its way out of (seal) or into (open) a context. */
const tagBytes = new Uint8Array(TAG_BYTES);
/** Unverified plaintext stays here until the tag has verified; also a seal's input when it overlaps. */
let scratch = new Uint8Array(INITIAL_SCRATCH_BYTES);
/** Native contexts alive now (made and not yet freed), for tests that look for leaks. */
let liveContextCount = 0;

/** How many native cipher contexts exist now; for tests that check keys are freed. */
export function liveContexts(): number {
  return liveContextCount;
}

/** A new cipher context of `cipher`, keyed with `key` to seal or to open; throws when OpenSSL fails. */
export function newKeyedContext(
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

/** Frees a context made by {@link newKeyedContext} (OpenSSL wipes the key it holds). */
export function freeContext(symbols: Libcrypto, context: Context): void {
  symbols.EVP_CIPHER_CTX_free(context);
  liveContextCount--;
}

/**
 * Seals with a context keyed for encryption and a 12-byte nonce; `out` has been checked to have
 * room. Throws only if OpenSSL fails, which would be a bug (ours or its).
 */
export function sealWithContext(
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
export function openWithContext(
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
