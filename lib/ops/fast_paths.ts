/**
 * Which of the two fast paths this process runs, for the programs' start lines: kept apart from
 * `lib/cli/program.ts` so that mpbridge, which encrypts nothing, does not load the cipher library.
 */

import { aeadImplementation } from "../crypto/aead_factory.ts";
import { DEFAULT_AEAD } from "../crypto/aead.ts";
import { udpIo } from "../io/udp.ts";

/**
 * The start line's account of the two fast paths (see README "Permissions"): which socket layer
 * this process runs (`batched` or `deno`) and, with a secret, which cipher on which implementation
 * (`chacha20-poly1305/openssl` or `…/node`), so an operator sees at once when a fallback is in use.
 */
export function fastPathFields(encrypted: boolean): { io: string; cipher: string } {
  return {
    io: udpIo(),
    cipher: encrypted ? `${DEFAULT_AEAD}/${aeadImplementation()}` : "none",
  };
}
