/**
 * The words of a server `allow` line, `CIDR PORT[-PORT]`: a network (host bits must be clear;
 * an IPv4-mapped network means the IPv4 one) and a port or port range.
 */

import { type Parsed, parsePort } from "../../base/address.ts";
import { formatIPBytes, type IPBytes, maskedBytes, parseIPBytes } from "../../base/ip_network.ts";
import type { AllowRule } from "../../session/allow_rule.ts";
import { accept, refuse } from "./values.ts";

/** The network part of an allow rule: canonical address, prefix length and family. */
export type Network = Pick<AllowRule, "network" | "prefixLength" | "family">;

/** Parses `ADDRESS[/PREFIX]`; a bare address is one host. */
export function parseNetwork(word: string): Parsed<Network> {
  const [addressText, prefixText, ...rest] = word.split("/");
  const address = rest.length === 0 && !addressText.includes("%")
    ? parseIPBytes(addressText)
    : undefined;
  if (address === undefined) {
    return refuse(
      `expected an IP address or network such as 10.0.0.0/8 or 2001:db8::/32, got "${word}"`,
    );
  }
  const maxPrefixLength = address.bytes.length * 8;
  // A mapped IPv6 network ::ffff:a.b.c.d/N is the IPv4 network a.b.c.d/(N-96).
  const writtenAsMapped = address.family === 4 && addressText.includes(":");
  const writtenMaxPrefixLength = writtenAsMapped ? 128 : maxPrefixLength;
  let prefixLength = maxPrefixLength;
  if (prefixText !== undefined) {
    const writtenPrefixLength = Number(prefixText);
    const lowest = writtenAsMapped ? 96 : 0;
    if (
      !/^\d{1,3}$/.test(prefixText) || writtenPrefixLength > writtenMaxPrefixLength ||
      writtenPrefixLength < lowest
    ) {
      return refuse(
        `expected a prefix length from ${lowest} to ${writtenMaxPrefixLength} after "/", ` +
          `got "${prefixText}" in "${word}"`,
      );
    }
    prefixLength = writtenPrefixLength - (writtenAsMapped ? 96 : 0);
  }
  const network: IPBytes = {
    family: address.family,
    bytes: maskedBytes(address.bytes, prefixLength),
  };
  if (!network.bytes.every((byte, index) => byte === address.bytes[index])) {
    const suggestion = `${formatIPBytes(network)}/${prefixLength}`;
    return refuse(`${word} has host bits set; did you mean ${suggestion}?`);
  }
  return accept({ network: formatIPBytes(network), prefixLength, family: address.family });
}

/** Parses `PORT` or `LOW-HIGH` into an inclusive range. */
export function parsePortRange(word: string): Parsed<readonly [number, number]> {
  const match = /^(\d+)(?:-(\d+))?$/.exec(word);
  if (match === null) {
    return refuse(`expected a port or port range such as 53 or 8000-8999, got "${word}"`);
  }
  const low = parsePort(match[1]);
  if (!low.ok) return low;
  const high = match[2] === undefined ? low : parsePort(match[2]);
  if (!high.ok) return high;
  if (low.value > high.value) {
    return refuse(`port range ${word} runs backwards; expected LOW-HIGH with LOW ≤ HIGH`);
  }
  return accept([low.value, high.value]);
}
