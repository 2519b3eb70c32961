/**
 * Chooses, once per process, which library implements the {@link Aead} keys: OpenSSL's libcrypto
 * through FFI where it loads and passes its self-test, else `node:crypto` (why, in `primitives.ts`).
 */

import { chooseImplementation } from "../base/implementation_choice.ts";
import { type Aead, type AeadAlgorithm, DEFAULT_AEAD } from "./aead.ts";
import { KEY_BYTES } from "./aead_nonce.ts";
import { createNodeAead } from "./aead_node.ts";
import { createOpensslAead, opensslAeadUnavailable } from "./aead_openssl.ts";

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
    : createNodeAead(key, algorithm);
}
