/**
 * Session ids: the 32-bit number at offset 4 of every datagram (docs/PROTOCOL.md), which the server
 * keys its sessions on and a kernel balancer may hash. Shown to people as 8 hex digits.
 */

import type { Random } from "../base/rng.ts";

/** A session id as logs show it: 8 hex digits. */
export function formatSessionId(sessionId: number): string {
  return sessionId.toString(16).padStart(8, "0");
}

/**
 * A random non-zero 32-bit session id from `random` (the drivers pass the system's CSPRNG; tests
 * may pass a seeded generator for a repeatable run).
 *
 * @example
 * ```ts
 * import { seededRandom } from "../base/rng.ts";
 * import { randomSessionId } from "./session_id.ts";
 * const sessionId = randomSessionId(seededRandom(7)); // the same id for the same seed
 * ```
 */
export function randomSessionId(random: Random): number {
  let value: number;
  do value = random.below(0x1_0000_0000); while (value === 0);
  return value;
}
