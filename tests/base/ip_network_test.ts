import assert from "node:assert/strict";
import {
  formatIPBytes,
  maskedBytes,
  parseIPBytes,
  prefixMatches,
} from "../../lib/base/ip_network.ts";

Deno.test("parseIPBytes reads IPv4, IPv6 and IPv4-mapped IPv6 (as IPv4)", () => {
  assert.deepEqual(parseIPBytes("10.1.2.3"), { family: 4, bytes: Uint8Array.of(10, 1, 2, 3) });
  assert.deepEqual(parseIPBytes("[::ffff:10.1.2.3]"), {
    family: 4,
    bytes: Uint8Array.of(10, 1, 2, 3),
  });
  const v6 = parseIPBytes("2001:db8::1%eth0");
  assert.equal(v6?.family, 6);
  assert.deepEqual(
    Array.from(v6?.bytes ?? []),
    [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
  );
  assert.equal(parseIPBytes("example.com"), undefined);
});

Deno.test("formatIPBytes writes RFC 5952 form: the longest zero run as ::, never a single group", () => {
  assert.equal(formatIPBytes(parseIPBytes("2001:0DB8:0:0:1:0:0:1")!), "2001:db8::1:0:0:1");
  assert.equal(formatIPBytes(parseIPBytes("2001:db8:0:1:1:1:1:1")!), "2001:db8:0:1:1:1:1:1");
  assert.equal(formatIPBytes(parseIPBytes("192.0.2.7")!), "192.0.2.7");
});

Deno.test("prefixMatches and maskedBytes work bit by bit inside a byte", () => {
  const network = Uint8Array.of(10, 128, 0, 0);
  assert.equal(prefixMatches(network, Uint8Array.of(10, 191, 9, 9), 9), true);
  assert.equal(prefixMatches(network, Uint8Array.of(10, 127, 9, 9), 9), false);
  assert.deepEqual(maskedBytes(Uint8Array.of(10, 255, 255, 255), 9), Uint8Array.of(10, 128, 0, 0));
});
