/**
 * Session ids: the 32-bit number at offset 4 of every datagram (docs/PROTOCOL.md), which the server
 * keys its sessions on and a kernel balancer may hash. Shown to people as 8 hex digits.
 */

/** A session id as logs show it: 8 hex digits. */
export function formatSessionId(sessionId: number): string {
  return sessionId.toString(16).padStart(8, "0");
}
