/**
 * Host-name resolution for paths and targets. It goes through the system resolver (so `/etc/hosts`
 * and `localhost` work as users expect) once, not on every send: Deno would otherwise resolve a host
 * name on each datagram.
 */

import { lookup } from "node:dns/promises";
import { isIPv4Literal, isIPv6Literal } from "../base/address.ts";

/** Resolves a host to one IP address, preferring `family` when given; literals pass through. */
export async function resolveHost(hostname: string, family?: 4 | 6): Promise<string> {
  if (isIPv4Literal(hostname) || isIPv6Literal(hostname)) return hostname;
  const answer = await lookup(hostname, family ? { family } : {});
  return answer.address;
}

/** True when `hostname` is a name that resolution may map to other addresses over time. */
export function isHostName(hostname: string): boolean {
  return !isIPv4Literal(hostname) && !isIPv6Literal(hostname);
}

/** The wildcard address to bind for talking to `address` (its family). */
export function wildcardFor(address: string): string {
  return isIPv6Literal(address) ? "::" : "0.0.0.0";
}
