/**
 * The bridge's server address: a literal, or a host name looked up with the system resolver, spelt
 * the way received datagrams report their sender so the two compare as strings.
 */

import { lookup } from "node:dns/promises";
import { isIPv4Literal, isIPv6Literal } from "../base/address.ts";

/** The system resolver (getaddrinfo, so `/etc/hosts` and `localhost` work offline). */
export async function resolveWithSystem(hostname: string): Promise<string> {
  const { address } = await lookup(hostname);
  return address;
}

/** The server's address: `hostname` itself when a literal, else what `resolveHost` answers. */
export async function resolveServer(
  hostname: string,
  resolveHost: (hostname: string) => Promise<string>,
): Promise<string> {
  return canonicalAddress(isIPLiteral(hostname) ? hostname : await resolveHost(hostname));
}

/** True for an IPv4 or IPv6 literal (no lookup needed). */
export function isIPLiteral(hostname: string): boolean {
  return isIPv4Literal(hostname) || isIPv6Literal(hostname);
}

/**
 * Spells an address the way received datagrams report their sender, so the two can be compared as
 * strings: IPv6 in its RFC 5952 short form (`0:0::1` becomes `::1`).
 */
function canonicalAddress(address: string): string {
  if (!address.includes(":") || address.includes("%")) return address;
  try {
    return new URL(`http://[${address}]/`).hostname.slice(1, -1);
  } catch {
    return address;
  }
}
