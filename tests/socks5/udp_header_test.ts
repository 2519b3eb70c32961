/**
 * The SOCKS5 UDP request header against byte vectors written out from RFC 1928 section 7, addresses
 * in all three types (IPv6 decoded to RFC 5952 text), and seeded hostile input.
 */
import assert from "node:assert/strict";
import {
  decodeSocks5Address,
  encodeSocks5Address,
  type Socks5Address,
} from "../../lib/socks5/address.ts";
import {
  decodeUdpDatagram,
  encodeUdpDatagram,
  encodeUdpRequestHeader,
  udpRequestHeaderBytes,
} from "../../lib/socks5/udp_header.ts";
import { bytes, hex, randomBytes, withSeed } from "./socks5_fixtures.ts";

// ---------------------------------------------------------------------------------------------------
// UDP request header: byte vectors

Deno.test("UDP header for 10.0.0.53:53 is 00 00 00 01 0a 00 00 35 00 35", () => {
  const header = encodeUdpRequestHeader({ kind: "ipv4", host: "10.0.0.53", port: 53 });
  assert.equal(hex(header), "00 00 00 01 0a 00 00 35 00 35");
});

Deno.test("UDP header for [::1]:5353 carries ATYP 4, sixteen address bytes and port 14 e9", () => {
  const header = encodeUdpRequestHeader({ kind: "ipv6", host: "::1", port: 5353 });
  assert.equal(hex(header), "00 00 00 04 " + "00 ".repeat(15) + "01 14 e9");
});

Deno.test("UDP header for example.com:53 carries ATYP 3, length 11, the name and the port", () => {
  const header = encodeUdpRequestHeader({ kind: "domain", host: "example.com", port: 53 });
  assert.deepEqual(header, bytes("00 00 00 03 0b", "'example.com'", "00 35"));
});

Deno.test("udpRequestHeaderBytes is 10, 22 and 7 + name length for the three address types", () => {
  assert.equal(udpRequestHeaderBytes({ kind: "ipv4", host: "1.2.3.4", port: 1 }), 10);
  assert.equal(udpRequestHeaderBytes({ kind: "ipv6", host: "::", port: 1 }), 22);
  assert.equal(udpRequestHeaderBytes({ kind: "domain", host: "example.com", port: 1 }), 18);
});

Deno.test("encodeUdpRequestHeader into a buffer returns a view of its start", () => {
  const buffer = new Uint8Array(64).fill(0xee);
  const header = encodeUdpRequestHeader({ kind: "ipv4", host: "10.0.0.53", port: 53 }, buffer);
  assert.equal(header.buffer, buffer.buffer);
  assert.equal(header.byteOffset, 0);
  assert.equal(hex(header), "00 00 00 01 0a 00 00 35 00 35");
  assert.equal(buffer[10], 0xee, "nothing written past the header");
});

Deno.test("encodeUdpRequestHeader throws a RangeError when the buffer is too short", () => {
  assert.throws(
    () => encodeUdpRequestHeader({ kind: "ipv4", host: "10.0.0.53", port: 53 }, new Uint8Array(9)),
    RangeError,
  );
});

Deno.test("encodeUdpDatagram puts the source header and a copy of the payload in a new array", () => {
  const payload = bytes("de ad be ef");
  const datagram = encodeUdpDatagram({ kind: "ipv4", host: "10.0.0.53", port: 53 }, payload);
  assert.equal(hex(datagram), "00 00 00 01 0a 00 00 35 00 35 de ad be ef");
  payload[0] = 0;
  assert.equal(datagram[10], 0xde, "the payload was copied");
});

Deno.test("encoders refuse addresses SOCKS5 cannot carry with a RangeError", () => {
  const refused: Socks5Address[] = [
    { kind: "ipv4", host: "256.0.0.1", port: 53 },
    { kind: "ipv4", host: "10.0.0", port: 53 },
    { kind: "ipv4", host: "::1", port: 53 },
    { kind: "ipv6", host: "1::2::3", port: 53 },
    { kind: "ipv6", host: "fe80::1%eth0", port: 53 },
    { kind: "ipv6", host: "1:2:3:4:5:6:7:8:9", port: 53 },
    { kind: "ipv6", host: "1:2:3:4:5:6:7", port: 53 },
    { kind: "ipv6", host: "[::1]", port: 53 },
    { kind: "domain", host: "", port: 53 },
    { kind: "domain", host: "a".repeat(256), port: 53 },
    { kind: "ipv4", host: "10.0.0.53", port: 65536 },
    { kind: "ipv4", host: "10.0.0.53", port: -1 },
    { kind: "ipv4", host: "10.0.0.53", port: 1.5 },
  ];
  for (const address of refused) {
    assert.throws(() => encodeUdpRequestHeader(address), RangeError, JSON.stringify(address));
  }
});

Deno.test("a 255-byte domain name is the longest that encodes", () => {
  const host = "a".repeat(255);
  const header = encodeUdpRequestHeader({ kind: "domain", host, port: 53 });
  assert.equal(header.length, 3 + 1 + 1 + 255 + 2);
  assert.equal(header[4], 255);
});

// ---------------------------------------------------------------------------------------------------
// UDP request header: decoding

Deno.test("decodeUdpDatagram reads 10.0.0.53:53 and returns the payload as a view", () => {
  const datagram = bytes("00 00 00 01 0a 00 00 35 00 35", "'hello'");
  const decoded = decodeUdpDatagram(datagram);
  assert.ok(decoded.ok);
  assert.equal(decoded.fragment, 0);
  assert.deepEqual(decoded.destination, { kind: "ipv4", host: "10.0.0.53", port: 53 });
  assert.equal(new TextDecoder().decode(decoded.payload), "hello");
  assert.equal(decoded.payload.buffer, datagram.buffer, "a view, not a copy");
  assert.equal(decoded.payload.byteOffset, 10);
});

Deno.test("decodeUdpDatagram reads [::1]:5353 and example.com:53", () => {
  const ipv6 = decodeUdpDatagram(bytes("00 00 00 04", "00 ".repeat(15), "01 14 e9 aa"));
  assert.ok(ipv6.ok);
  assert.deepEqual(ipv6.destination, { kind: "ipv6", host: "::1", port: 5353 });
  assert.deepEqual(ipv6.payload, bytes("aa"));
  const domain = decodeUdpDatagram(bytes("00 00 00 03 0b", "'example.com'", "00 35"));
  assert.ok(domain.ok);
  assert.deepEqual(domain.destination, { kind: "domain", host: "example.com", port: 53 });
  assert.equal(domain.payload.length, 0, "an empty payload is a valid datagram");
});

Deno.test("decodeUdpDatagram reports every strict prefix of a header as truncated", () => {
  const headers = [
    bytes("00 00 00 01 0a 00 00 35 00 35"),
    encodeUdpRequestHeader({ kind: "ipv6", host: "2001:db8::7", port: 5353 }),
    bytes("00 00 00 03 0b", "'example.com'", "00 35"),
  ];
  for (const header of headers) {
    for (let length = 0; length < header.length; length++) {
      assert.deepEqual(
        decodeUdpDatagram(header.subarray(0, length)),
        { ok: false, reason: "truncated" },
        `${hex(header)} cut at ${length}`,
      );
    }
    assert.ok(decodeUdpDatagram(header).ok);
  }
});

Deno.test("decodeUdpDatagram refuses a non-zero RSV as bad-reserved", () => {
  for (const reserved of ["00 01", "01 00", "ff ff"]) {
    assert.deepEqual(
      decodeUdpDatagram(bytes(reserved, "00 01 0a 00 00 35 00 35")),
      { ok: false, reason: "bad-reserved" },
    );
  }
});

Deno.test("decodeUdpDatagram drops any FRAG other than 0 as fragmented", () => {
  for (const fragment of [0x01, 0x7f, 0x80, 0x81, 0xff]) {
    const datagram = bytes("00 00", fragment.toString(16), "01 0a 00 00 35 00 35 aa");
    assert.deepEqual(decodeUdpDatagram(datagram), { ok: false, reason: "fragmented" });
  }
});

Deno.test("decodeUdpDatagram refuses ATYP other than 1, 3, 4 as bad-address-type", () => {
  for (const addressType of [0x00, 0x02, 0x05, 0xff]) {
    const datagram = bytes("00 00 00", addressType.toString(16), "0a 00 00 35 00 35");
    assert.deepEqual(decodeUdpDatagram(datagram), { ok: false, reason: "bad-address-type" });
  }
});

Deno.test("decodeUdpDatagram refuses empty, non-UTF-8 and control-character names as bad-domain", () => {
  const names = [
    bytes(""),
    bytes("ff fe"), // not UTF-8
    bytes("c3"), // a cut multi-byte sequence
    bytes("'exa'", "00", "'mple'"), // NUL
    bytes("'exa'", "0a", "'mple'"), // newline: log injection
    bytes("'exa mple'"),
    bytes("'exa'", "7f"),
  ];
  for (const name of names) {
    const datagram = bytes("00 00 00 03", name.length.toString(16), hex(name), "00 35");
    assert.deepEqual(
      decodeUdpDatagram(datagram),
      { ok: false, reason: "bad-domain" },
      hex(name),
    );
  }
});

Deno.test("decodeUdpDatagram keeps a UTF-8 domain name as sent", () => {
  const name = "bücher.example";
  const datagram = encodeUdpRequestHeader({ kind: "domain", host: name, port: 443 });
  const decoded = decodeUdpDatagram(datagram);
  assert.ok(decoded.ok);
  assert.deepEqual(decoded.destination, { kind: "domain", host: name, port: 443 });
});

Deno.test("IPv6 hosts decode to RFC 5952 text: lower case, longest zero run compressed", () => {
  const cases: [string, string][] = [
    ["::1", "::1"],
    ["::", "::"],
    ["2001:0DB8:0000:0000:0000:0000:0000:0007", "2001:db8::7"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // a tie: the first run wins
    ["1:0:0:2:0:0:0:3", "1:0:0:2::3"], // the longest run wins
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // one zero group stays
    ["fe80::", "fe80::"],
    ["1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"],
    ["::ffff:192.0.2.1", "::ffff:192.0.2.1"], // IPv4-mapped, as Deno writes it
    ["::ffff:c000:0201", "::ffff:192.0.2.1"],
    ["64:ff9b::192.0.2.1", "64:ff9b::c000:201"],
    ["ABCD:EF01:2345:6789:ABCD:EF01:2345:6789", "abcd:ef01:2345:6789:abcd:ef01:2345:6789"],
  ];
  for (const [written, canonical] of cases) {
    const header = encodeUdpRequestHeader({ kind: "ipv6", host: written, port: 1 });
    const decoded = decodeUdpDatagram(header);
    assert.ok(decoded.ok, written);
    assert.equal(decoded.destination.host, canonical, written);
  }
});

Deno.test("decodeSocks5Address reads at an offset and reports where the address ends", () => {
  const buffer = bytes("aa bb 01 c0 00 02 01 01 bb cc");
  assert.deepEqual(decodeSocks5Address(buffer, 2), {
    ok: true,
    address: { kind: "ipv4", host: "192.0.2.1", port: 443 },
    endOffset: 9,
  });
  assert.deepEqual(decodeSocks5Address(buffer, 10), { ok: false, reason: "truncated" });
  const out = new Uint8Array(12);
  assert.equal(encodeSocks5Address({ kind: "ipv4", host: "192.0.2.1", port: 443 }, out, 2), 9);
  assert.deepEqual(out.subarray(2, 9), buffer.subarray(2, 9));
});

Deno.test("decodeUdpDatagram never throws on random bytes, and what it accepts re-encodes exactly", () => {
  const seed = 0x50c45;
  withSeed(seed, (random) => {
    let accepted = 0;
    for (let round = 0; round < 20_000; round++) {
      // Bias towards plausible headers so that every branch is reached, not just "bad-reserved".
      const datagram = randomBytes(random, random.below(40));
      if (random.next() < 0.8 && datagram.length >= 4) {
        datagram[0] = 0;
        datagram[1] = 0;
        if (random.next() < 0.8) datagram[2] = 0;
        if (random.next() < 0.8) datagram[3] = [1, 3, 4][random.below(3)];
        if (datagram[3] === 3 && datagram.length >= 5) datagram[4] = random.below(30);
      }
      const decoded = decodeUdpDatagram(datagram);
      if (!decoded.ok) continue;
      accepted++;
      const header = encodeUdpRequestHeader(decoded.destination);
      assert.deepEqual(header, datagram.subarray(0, header.length), hex(datagram));
      assert.deepEqual(decoded.payload, datagram.subarray(header.length));
    }
    assert.ok(accepted > 1000, `only ${accepted} datagrams accepted`);
  });
});
