/**
 * The seams the engines require, as the drivers fill them: the fastest AEAD available and the
 * system's CSPRNG. Tests that do not test the seams themselves spread these into the options.
 */

import { createAead } from "../../lib/crypto/aead_factory.ts";
import { secureRandom } from "../../lib/session/secure_random.ts";

/** What a `ClientCore` needs besides its own options. */
export const clientSeams = { aead: createAead, random: secureRandom } as const;

/** What a `ServerCore` needs besides its own options. */
export const serverSeams = { aead: createAead } as const;
