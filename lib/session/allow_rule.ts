/**
 * An `allow` rule of mpserver (a network and a port range that explicit `HOST:PORT` requests may
 * reach) and the test of an address against it. The configuration parser builds these rules; the
 * target policy and the driver only read them, so the rule lives here, beside its user, and the
 * runtime never imports the parser.
 */

import { type IPBytes, parseIPBytes, prefixMatches } from "../base/ip_network.ts";

/** One `allow` line: explicit `HOST:PORT` requests to this network and port range may pass. */
export interface AllowRule {
  /** The network address, canonical (`10.0.0.0`, `2001:db8::`). */
  readonly network: string;
  readonly prefixLength: number;
  readonly family: 4 | 6;
  readonly portLow: number;
  readonly portHigh: number;
  /** The line of the file, or 0 when it came from the command line. */
  readonly line: number;
}

/** Compiled rule bytes, so a rule's text is parsed once however many requests it judges. */
const ruleBytesCache = new WeakMap<AllowRule, IPBytes | undefined>();

/**
 * True when an allow rule lets a request reach `address` (an IPv4 or IPv6 literal) on `port`.
 * IPv4-mapped IPv6 addresses are IPv4: `::ffff:10.1.2.3` matches `allow 10.0.0.0/8 …`.
 *
 * @example
 * ```ts
 * import { type AllowRule, allowRuleMatches } from "./allow_rule.ts";
 * const rule: AllowRule = {
 *   network: "10.0.0.0",
 *   prefixLength: 8,
 *   family: 4,
 *   portLow: 53,
 *   portHigh: 53,
 *   line: 0,
 * };
 * console.log(allowRuleMatches(rule, "10.9.8.7", 53)); // true
 * ```
 */
export function allowRuleMatches(rule: AllowRule, address: string, port: number): boolean {
  if (port < rule.portLow || port > rule.portHigh) return false;
  if (!ruleBytesCache.has(rule)) ruleBytesCache.set(rule, parseIPBytes(rule.network));
  const network = ruleBytesCache.get(rule);
  const candidate = parseIPBytes(address);
  if (network === undefined || candidate === undefined) return false;
  if (candidate.family !== rule.family) return false;
  return prefixMatches(network.bytes, candidate.bytes, rule.prefixLength);
}
