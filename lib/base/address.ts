/**
 * Network addresses as the configuration language writes them: `HOST:PORT` in one word (IPv6 literals
 * in brackets, `[::1]:1080`), or `HOST` and `PORT` as two words on path lines.
 *
 * Parsing never throws: it returns the address or a message saying what was expected, so that callers
 * can name the file and line of a mistake.
 */

/** A host (name or literal, without brackets) and a UDP port. */
export interface HostPort {
  readonly hostname: string;
  readonly port: number;
}

/**
 * A UDP peer as the engines and sockets pass it around: Deno's `NetAddr` for UDP has this shape, so
 * the engines need no socket type to name one.
 */
export interface UdpEndpoint extends HostPort {
  readonly transport: "udp";
}

/** A parse outcome: the value, or a human-readable reason it was refused. */
export type Parsed<T> = { readonly ok: true; readonly value: T } | {
  readonly ok: false;
  readonly error: string;
};

const HOSTNAME_PATTERN =
  /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_-]{1,63})*\.?$/;
const IPV4_PATTERN = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Parses a port number in 1..65535 (0 too when `allowZero`, meaning "any free port"). */
export function parsePort(text: string, allowZero = false): Parsed<number> {
  if (!/^\d{1,5}$/.test(text)) return { ok: false, error: `expected a port number, got "${text}"` };
  const port = Number(text);
  if (port > 65535 || (port === 0 && !allowZero)) {
    return { ok: false, error: `port ${text} is out of range (1-65535)` };
  }
  return { ok: true, value: port };
}

/** True for a dotted-quad IPv4 literal with every part in 0..255. */
export function isIPv4Literal(text: string): boolean {
  const match = IPV4_PATTERN.exec(text);
  return match !== null && match.slice(1).every((part) => Number(part) <= 255);
}

/** True for an IPv6 literal (without brackets; a zone such as `%eth0` is allowed). */
export function isIPv6Literal(text: string): boolean {
  const [address, zone] = text.split("%", 2);
  if (zone !== undefined && !/^[A-Za-z0-9_.-]+$/.test(zone)) return false;
  if (!/^[0-9A-Fa-f:.]+$/.test(address) || !address.includes(":")) return false;
  let head = address;
  const groupsNeeded = 8;
  const lastColon = address.lastIndexOf(":");
  const tail = address.slice(lastColon + 1);
  if (tail.includes(".")) {
    if (!isIPv4Literal(tail)) return false;
    head = address.slice(0, lastColon + 1) + "0:0";
  }
  const halves = head.split("::");
  if (halves.length > 2) return false;
  const groupsOf = (part: string) => (part === "" ? [] : part.split(":"));
  const groups = halves.flatMap(groupsOf);
  if (!groups.every((group) => /^[0-9A-Fa-f]{1,4}$/.test(group))) return false;
  return halves.length === 2 ? groups.length < groupsNeeded : groups.length === groupsNeeded;
}

/** Parses a host: an IPv4 or IPv6 literal (brackets optional) or a DNS name. */
export function parseHost(text: string): Parsed<string> {
  const unbracketed = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  if (isIPv4Literal(unbracketed) || isIPv6Literal(unbracketed)) {
    return { ok: true, value: unbracketed };
  }
  if (unbracketed === text && HOSTNAME_PATTERN.test(text) && !/^[\d.]+$/.test(text)) {
    return { ok: true, value: text };
  }
  return { ok: false, error: `expected a host name or IP address, got "${text}"` };
}

/**
 * Parses `HOST:PORT`, `[IPV6]:PORT` or, when `defaultHost` is given, a bare `PORT`.
 *
 * @example
 * ```ts
 * import { parseHostPort } from "./address.ts";
 * const parsed = parseHostPort("[::1]:1080");
 * if (parsed.ok) console.log(parsed.value.hostname, parsed.value.port); // ::1 1080
 * ```
 */
export function parseHostPort(
  text: string,
  defaultHost?: string,
  allowZeroPort = false,
): Parsed<HostPort> {
  if (defaultHost !== undefined && /^\d+$/.test(text)) {
    const port = parsePort(text, allowZeroPort);
    return port.ok ? { ok: true, value: { hostname: defaultHost, port: port.value } } : port;
  }
  let hostText: string;
  let portText: string;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0 || text[close + 1] !== ":") {
      return { ok: false, error: `expected [IPV6]:PORT, got "${text}"` };
    }
    hostText = text.slice(1, close);
    portText = text.slice(close + 2);
    if (!isIPv6Literal(hostText)) {
      return { ok: false, error: `"${hostText}" is not an IPv6 address` };
    }
  } else {
    const colon = text.lastIndexOf(":");
    if (colon < 0) return { ok: false, error: `expected HOST:PORT, got "${text}"` };
    hostText = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (hostText.includes(":")) {
      return {
        ok: false,
        error: `IPv6 addresses need brackets before a port: "[${hostText}]:${portText}"`,
      };
    }
  }
  const host = parseHost(hostText);
  if (!host.ok) return host;
  const port = parsePort(portText, allowZeroPort);
  if (!port.ok) return port;
  return { ok: true, value: { hostname: host.value, port: port.value } };
}

/** Formats an address the way the configuration language writes it (`[::1]:1080`, `1.2.3.4:5`). */
export function formatHostPort(address: HostPort): string {
  return address.hostname.includes(":")
    ? `[${address.hostname}]:${address.port}`
    : `${address.hostname}:${address.port}`;
}
