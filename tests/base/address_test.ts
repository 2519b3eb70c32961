/**
 * Addresses as the configuration language writes them: ports, hosts, IPv6 literals (with brackets,
 * zones and embedded IPv4) and HOST:PORT words, and the messages that explain a mistake.
 */
import assert from "node:assert/strict";
import {
  formatHostPort,
  type HostPort,
  isIPv4Literal,
  isIPv6Literal,
  type Parsed,
  parseHost,
  parseHostPort,
  parsePort,
} from "../../lib/base/address.ts";

function value<T>(parsed: Parsed<T>): T {
  assert.ok(parsed.ok, `expected success, got ${JSON.stringify(parsed)}`);
  return parsed.value;
}

function error<T>(parsed: Parsed<T>): string {
  assert.ok(!parsed.ok, `expected an error, got ${JSON.stringify(parsed)}`);
  return parsed.error;
}

// ---------------------------------------------------------------------------------------------------
// parsePort

Deno.test("parsePort accepts 1 and 65535", () => {
  assert.equal(value(parsePort("1")), 1);
  assert.equal(value(parsePort("65535")), 65535);
});

Deno.test("parsePort refuses 65536 as out of range", () => {
  assert.equal(error(parsePort("65536")), "port 65536 is out of range (1-65535)");
});

Deno.test("parsePort refuses 0 unless zero is allowed", () => {
  assert.equal(error(parsePort("0")), "port 0 is out of range (1-65535)");
  assert.equal(value(parsePort("0", true)), 0);
});

Deno.test("parsePort refuses text that is not a decimal number", () => {
  for (
    const text of ["", "abc", "-1", "+80", " 80", "80 ", "8o", "0x50", "1e3", "123456", "８０"]
  ) {
    assert.equal(error(parsePort(text)), `expected a port number, got "${text}"`, text);
  }
});

// ---------------------------------------------------------------------------------------------------
// isIPv4Literal / isIPv6Literal

Deno.test("isIPv4Literal accepts dotted quads up to 255 and refuses the rest", () => {
  assert.equal(isIPv4Literal("0.0.0.0"), true);
  assert.equal(isIPv4Literal("255.255.255.255"), true);
  assert.equal(isIPv4Literal("256.1.1.1"), false);
  assert.equal(isIPv4Literal("1.2.3"), false);
  assert.equal(isIPv4Literal("1.2.3.4.5"), false);
  assert.equal(isIPv4Literal("1.2.3.x"), false);
});

Deno.test("isIPv6Literal accepts full, compressed and loopback forms", () => {
  for (
    const text of [
      "::",
      "::1",
      "1::",
      "2001:db8::1",
      "2001:DB8:0:0:8:800:200C:417A",
      "1:2:3:4:5:6:7:8",
      "1:2:3:4:5:6:7::",
      "fe80::abcd:ef01",
    ]
  ) {
    assert.equal(isIPv6Literal(text), true, text);
  }
});

Deno.test("isIPv6Literal accepts an IPv4-mapped and an embedded IPv4 address", () => {
  assert.equal(isIPv6Literal("::ffff:192.0.2.1"), true);
  assert.equal(isIPv6Literal("::192.0.2.1"), true);
  assert.equal(isIPv6Literal("1:2:3:4:5:6:192.0.2.1"), true);
});

Deno.test("isIPv6Literal refuses an embedded IPv4 address that is out of range or too many groups", () => {
  assert.equal(isIPv6Literal("::ffff:192.0.2.256"), false);
  assert.equal(isIPv6Literal("::ffff:192.0.2"), false);
  assert.equal(isIPv6Literal("1:2:3:4:5:6:7:192.0.2.1"), false);
  assert.equal(isIPv6Literal("192.0.2.1::"), false);
});

Deno.test("isIPv6Literal accepts a zone after %", () => {
  assert.equal(isIPv6Literal("fe80::1%eth0"), true);
  assert.equal(isIPv6Literal("fe80::1%en0.100"), true);
});

Deno.test("isIPv6Literal refuses an empty zone or a zone with spaces", () => {
  assert.equal(isIPv6Literal("fe80::1%"), false);
  assert.equal(isIPv6Literal("fe80::1%eth 0"), false);
});

Deno.test("isIPv6Literal refuses malformed addresses", () => {
  for (
    const text of [
      "",
      ":",
      ":::",
      ":1",
      "1:",
      "1::2::3",
      "12345::",
      "g::1",
      "1:2:3:4:5:6:7",
      "1:2:3:4:5:6:7:8:9",
      "1:2:3:4:5:6:7::8",
      "1.2.3.4",
      "[::1]",
      "example.com",
    ]
  ) {
    assert.equal(isIPv6Literal(text), false, JSON.stringify(text));
  }
});

// ---------------------------------------------------------------------------------------------------
// parseHost

Deno.test("parseHost accepts IPv4 literals and DNS names", () => {
  assert.equal(value(parseHost("192.0.2.7")), "192.0.2.7");
  assert.equal(value(parseHost("localhost")), "localhost");
  assert.equal(value(parseHost("relay-1.example.net")), "relay-1.example.net");
  assert.equal(value(parseHost("example.net.")), "example.net.");
  assert.equal(value(parseHost("_service.example")), "_service.example");
});

Deno.test("parseHost accepts an IPv6 literal with or without brackets and strips them", () => {
  assert.equal(value(parseHost("::1")), "::1");
  assert.equal(value(parseHost("[::1]")), "::1");
  assert.equal(value(parseHost("[fe80::1%eth0]")), "fe80::1%eth0");
});

Deno.test("parseHost refuses a name in brackets", () => {
  assert.equal(
    error(parseHost("[example.com]")),
    `expected a host name or IP address, got "[example.com]"`,
  );
});

Deno.test("parseHost refuses an all-numeric name that is not a valid IPv4 address", () => {
  for (const text of ["256.1.1.1", "1.2.3", "1234", "1.2.3.4.5"]) {
    assert.equal(error(parseHost(text)), `expected a host name or IP address, got "${text}"`);
  }
});

Deno.test("parseHost refuses names with bad characters, labels or lengths", () => {
  const longLabel = "a".repeat(64);
  const longName = Array.from({ length: 64 }, () => "abc").join("."); // 255 characters
  for (const text of ["", "-leading.example", "two words", "a..b", longLabel, longName, "a/b"]) {
    assert.equal(parseHost(text).ok, false, text);
  }
  assert.equal(value(parseHost("a".repeat(63))), "a".repeat(63));
});

// ---------------------------------------------------------------------------------------------------
// parseHostPort

Deno.test("parseHostPort reads IPV4:PORT", () => {
  assert.deepEqual(value(parseHostPort("192.0.2.7:1080")), { hostname: "192.0.2.7", port: 1080 });
});

Deno.test("parseHostPort reads NAME:PORT", () => {
  assert.deepEqual(value(parseHostPort("relay.example:53")), {
    hostname: "relay.example",
    port: 53,
  });
});

Deno.test("parseHostPort reads [IPV6]:PORT without the brackets", () => {
  assert.deepEqual(value(parseHostPort("[::1]:1080")), { hostname: "::1", port: 1080 });
  assert.deepEqual(value(parseHostPort("[2001:db8::5]:65535")), {
    hostname: "2001:db8::5",
    port: 65535,
  });
});

Deno.test("parseHostPort reads an IPv6 address with a zone", () => {
  assert.deepEqual(value(parseHostPort("[fe80::1%eth0]:5000")), {
    hostname: "fe80::1%eth0",
    port: 5000,
  });
});

Deno.test("parseHostPort reads an IPv4-mapped IPv6 address", () => {
  assert.deepEqual(value(parseHostPort("[::ffff:192.0.2.1]:80")), {
    hostname: "::ffff:192.0.2.1",
    port: 80,
  });
});

Deno.test("parseHostPort says an IPv6 address needs brackets and shows how", () => {
  assert.equal(
    error(parseHostPort("::1:1080")),
    `IPv6 addresses need brackets before a port: "[::1]:1080"`,
  );
  assert.equal(
    error(parseHostPort("2001:db8::5:53")),
    `IPv6 addresses need brackets before a port: "[2001:db8::5]:53"`,
  );
});

Deno.test("parseHostPort refuses a bracket that is not closed or not followed by a colon", () => {
  for (const text of ["[::1", "[::1]1080", "[::1]", "[::1] :80"]) {
    assert.equal(error(parseHostPort(text)), `expected [IPV6]:PORT, got "${text}"`, text);
  }
});

Deno.test("parseHostPort refuses something that is not IPv6 inside brackets", () => {
  assert.equal(error(parseHostPort("[192.0.2.1]:80")), `"192.0.2.1" is not an IPv6 address`);
  assert.equal(error(parseHostPort("[example.com]:80")), `"example.com" is not an IPv6 address`);
});

Deno.test("parseHostPort refuses a word without a port", () => {
  assert.equal(error(parseHostPort("relay.example")), `expected HOST:PORT, got "relay.example"`);
});

Deno.test("parseHostPort refuses a bad port after a good host", () => {
  assert.equal(error(parseHostPort("192.0.2.7:0")), "port 0 is out of range (1-65535)");
  assert.equal(error(parseHostPort("192.0.2.7:65536")), "port 65536 is out of range (1-65535)");
  assert.equal(error(parseHostPort("192.0.2.7:")), `expected a port number, got ""`);
  assert.equal(error(parseHostPort("[::1]:http")), `expected a port number, got "http"`);
});

Deno.test("parseHostPort refuses a bad host before a good port", () => {
  assert.equal(error(parseHostPort(":80")), `expected a host name or IP address, got ""`);
  assert.equal(
    error(parseHostPort("300.1.1.1:80")),
    `expected a host name or IP address, got "300.1.1.1"`,
  );
});

Deno.test("parseHostPort accepts port 0 when allowed", () => {
  assert.deepEqual(value(parseHostPort("0.0.0.0:0", undefined, true)), {
    hostname: "0.0.0.0",
    port: 0,
  });
});

Deno.test("parseHostPort reads a bare port as the default host", () => {
  assert.deepEqual(value(parseHostPort("1080", "127.0.0.1")), {
    hostname: "127.0.0.1",
    port: 1080,
  });
});

Deno.test("parseHostPort checks the range of a bare port", () => {
  assert.equal(error(parseHostPort("70000", "127.0.0.1")), "port 70000 is out of range (1-65535)");
  assert.equal(error(parseHostPort("0", "127.0.0.1")), "port 0 is out of range (1-65535)");
  assert.deepEqual(value(parseHostPort("0", "::", true)), { hostname: "::", port: 0 });
});

Deno.test("parseHostPort refuses a bare port when there is no default host", () => {
  assert.equal(error(parseHostPort("1080")), `expected HOST:PORT, got "1080"`);
});

Deno.test("parseHostPort with a default host still reads HOST:PORT", () => {
  assert.deepEqual(value(parseHostPort("[::1]:9", "127.0.0.1")), { hostname: "::1", port: 9 });
});

// ---------------------------------------------------------------------------------------------------
// formatHostPort

Deno.test("formatHostPort writes IPv4 and names as HOST:PORT", () => {
  assert.equal(formatHostPort({ hostname: "192.0.2.7", port: 5 }), "192.0.2.7:5");
  assert.equal(formatHostPort({ hostname: "relay.example", port: 53 }), "relay.example:53");
});

Deno.test("formatHostPort writes IPv6 in brackets, zone included", () => {
  assert.equal(formatHostPort({ hostname: "::1", port: 1080 }), "[::1]:1080");
  assert.equal(formatHostPort({ hostname: "fe80::1%eth0", port: 80 }), "[fe80::1%eth0]:80");
});

Deno.test("formatHostPort and parseHostPort round-trip every kind of host", () => {
  const addresses: HostPort[] = [
    { hostname: "192.0.2.7", port: 1 },
    { hostname: "relay.example", port: 65535 },
    { hostname: "::", port: 443 },
    { hostname: "2001:db8::5", port: 1080 },
    { hostname: "fe80::1%eth0", port: 5000 },
    { hostname: "::ffff:192.0.2.1", port: 80 },
  ];
  for (const address of addresses) {
    assert.deepEqual(value(parseHostPort(formatHostPort(address))), address);
  }
});
