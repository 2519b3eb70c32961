/**
 * SOCKS5 for the UDP ASSOCIATE front end: the UDP request header against byte vectors written out
 * from RFC 1928 section 7, addresses in all three types (IPv6 decoded to RFC 5952 text), and the
 * control connection (RFC 1928 sections 3–6, RFC 1929) driven through every split of its byte
 * stream, pipelined messages, refusals, and seeded hostile input.
 */
import assert from "node:assert/strict";
import { type Random, seededRandom } from "../../lib/base/rng.ts";
import {
  decodeSocks5Address,
  decodeUdpDatagram,
  DEFAULT_MAX_BUFFERED_BYTES,
  encodeSocks5Address,
  encodeSocks5Reply,
  encodeUdpDatagram,
  encodeUdpRequestHeader,
  type Socks5Address,
  Socks5ReplyCode,
  Socks5Session,
  type Socks5SessionOptions,
  type Socks5Step,
  udpRequestHeaderBytes,
} from "../../lib/socks5/messages.ts";

/** Bytes from hex pairs and quoted ASCII strings: `bytes("01 04", "'user'")`. */
function bytes(...parts: string[]): Uint8Array {
  const out: number[] = [];
  for (const part of parts) {
    if (part.startsWith("'")) {
      out.push(...new TextEncoder().encode(part.slice(1, -1)));
    } else {
      for (const pair of part.split(/\s+/).filter((text) => text !== "")) {
        out.push(parseInt(pair, 16));
      }
    }
  }
  return Uint8Array.from(out);
}

function hex(data: Uint8Array): string {
  return Array.from(data, (byte) => byte.toString(16).padStart(2, "0")).join(" ");
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Runs `body` with a seeded generator and names the seed in any failure. */
function withSeed(seed: number, body: (random: Random) => void): void {
  try {
    body(seededRandom(seed));
  } catch (error) {
    if (error instanceof Error) error.message = `[seed ${seed}] ${error.message}`;
    throw error;
  }
}

function randomBytes(random: Random, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let index = 0; index < length; index++) out[index] = random.below(256);
  return out;
}

const RELAY: Socks5Address = { kind: "ipv4", host: "127.0.0.1", port: 40000 };
const CREDENTIALS = { username: "user", password: "pass" };

// RFC 1928 and RFC 1929 messages used throughout.
const GREETING_NO_AUTH = bytes("05 01 00");
const GREETING_BOTH = bytes("05 02 00 02");
const USER_PASS = bytes("01 04", "'user'", "04", "'pass'");
const ASSOCIATE_ANY = bytes("05 03 00 01 00 00 00 00 00 00");
const ASSOCIATE_REPLY = bytes("05 00 00 01 7f 00 00 01 9c 40"); // 127.0.0.1:40000
const REFUSED_UNBOUND_TAIL = "00 01 00 00 00 00 00 00"; // RSV, ATYP 1, 0.0.0.0, port 0

function session(
  overrides: Partial<Socks5SessionOptions> = {},
): { session: Socks5Session; relayCalls: () => number } {
  let calls = 0;
  const created = new Socks5Session({
    resolveUdpRelay: () => {
      calls++;
      return RELAY;
    },
    ...overrides,
  });
  return { session: created, relayCalls: () => calls };
}

/** Feeds chunks one by one; returns the concatenated replies, the events and the last step. */
function feed(target: Socks5Session, chunks: Uint8Array[]) {
  const replies: Uint8Array[] = [];
  const events: NonNullable<Socks5Step["event"]>[] = [];
  const errors: string[] = [];
  let last: Socks5Step = { reply: new Uint8Array(0), close: false };
  for (const chunk of chunks) {
    last = target.receive(chunk);
    replies.push(last.reply);
    if (last.event) events.push(last.event);
    if (last.error !== undefined) errors.push(last.error);
  }
  return { reply: concat(...replies), events, errors, last };
}

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

// ---------------------------------------------------------------------------------------------------
// Control connection: the happy paths

Deno.test("greeting 05 01 00 without credentials is answered 05 00", () => {
  const { session: target } = session();
  const step = target.receive(GREETING_NO_AUTH);
  assert.deepEqual(step, { reply: bytes("05 00"), close: false });
  assert.equal(target.state, "request");
});

Deno.test("greeting 05 02 00 02 with credentials configured is answered 05 02", () => {
  const { session: target } = session({ credentials: CREDENTIALS });
  assert.deepEqual(target.receive(GREETING_BOTH), { reply: bytes("05 02"), close: false });
  assert.equal(target.state, "authenticating");
});

Deno.test("credentials 01 04 'user' 04 'pass' are accepted with 01 00", () => {
  const { session: target } = session({ credentials: CREDENTIALS });
  target.receive(GREETING_BOTH);
  assert.deepEqual(target.receive(USER_PASS), { reply: bytes("01 00"), close: false });
  assert.equal(target.state, "request");
});

Deno.test("UDP ASSOCIATE from 0.0.0.0:0 is answered 05 00 00 01 7f 00 00 01 9c 40", () => {
  const { session: target, relayCalls } = session();
  target.receive(GREETING_NO_AUTH);
  const step = target.receive(ASSOCIATE_ANY);
  assert.deepEqual(step, {
    reply: ASSOCIATE_REPLY,
    close: false,
    event: { kind: "associate", clientHint: { kind: "ipv4", host: "0.0.0.0", port: 0 } },
  });
  assert.equal(relayCalls(), 1);
  assert.equal(target.state, "associated");
});

Deno.test("UDP ASSOCIATE passes a domain client hint through and replies with an IPv6 relay", () => {
  const { session: target } = session({
    resolveUdpRelay: () => ({ kind: "ipv6", host: "::1", port: 40000 }),
  });
  target.receive(GREETING_NO_AUTH);
  const step = target.receive(bytes("05 03 00 03 09", "'localhost'", "13 88"));
  assert.equal(hex(step.reply), "05 00 00 04 " + "00 ".repeat(15) + "01 9c 40");
  assert.deepEqual(step.event?.clientHint, { kind: "domain", host: "localhost", port: 5000 });
});

Deno.test("UDP ASSOCIATE with a non-zero RSV byte is still accepted", () => {
  const { session: target } = session();
  target.receive(GREETING_NO_AUTH);
  const step = target.receive(bytes("05 03 01 01 00 00 00 00 00 00"));
  assert.equal(step.event?.kind, "associate");
});

Deno.test("the full exchange with credentials gives the same bytes split at every boundary", () => {
  const stream = concat(GREETING_BOTH, USER_PASS, ASSOCIATE_ANY);
  const expected = concat(bytes("05 02"), bytes("01 00"), ASSOCIATE_REPLY);
  for (let split = 0; split <= stream.length; split++) {
    const { session: target, relayCalls } = session({ credentials: CREDENTIALS });
    const result = feed(target, [stream.subarray(0, split), stream.subarray(split)]);
    assert.deepEqual(result.reply, expected, `split at ${split}`);
    assert.equal(result.events.length, 1, `split at ${split}`);
    assert.equal(result.last.close, false);
    assert.equal(relayCalls(), 1);
  }
});

Deno.test("the full exchange fed one byte at a time answers each message when it completes", () => {
  const stream = concat(GREETING_BOTH, USER_PASS, ASSOCIATE_ANY);
  const { session: target } = session({ credentials: CREDENTIALS });
  const replyAt: number[] = [];
  for (let index = 0; index < stream.length; index++) {
    const step = target.receive(stream.subarray(index, index + 1));
    if (step.reply.length > 0) replyAt.push(index);
    assert.equal(step.close, false);
  }
  const greetingEnd = GREETING_BOTH.length - 1;
  const credentialsEnd = greetingEnd + USER_PASS.length;
  assert.deepEqual(replyAt, [greetingEnd, credentialsEnd, stream.length - 1]);
  assert.equal(target.state, "associated");
});

Deno.test("a domain request split at every pair of boundaries gives the same reply", () => {
  const stream = concat(GREETING_NO_AUTH, bytes("05 03 00 03 0b", "'example.com'", "00 35"));
  for (let first = 0; first <= stream.length; first++) {
    for (let second = first; second <= stream.length; second++) {
      const { session: target } = session();
      const result = feed(target, [
        stream.subarray(0, first),
        stream.subarray(first, second),
        stream.subarray(second),
      ]);
      assert.deepEqual(result.reply, concat(bytes("05 00"), ASSOCIATE_REPLY));
      assert.deepEqual(result.events.map((event) => event.clientHint.host), ["example.com"]);
    }
  }
});

Deno.test("greeting, credentials and request in one chunk are answered in one reply", () => {
  const { session: target } = session({ credentials: CREDENTIALS });
  const step = target.receive(concat(GREETING_BOTH, USER_PASS, ASSOCIATE_ANY));
  assert.deepEqual(step.reply, concat(bytes("05 02 01 00"), ASSOCIATE_REPLY));
  assert.equal(step.event?.kind, "associate");
  assert.equal(step.close, false);
});

Deno.test("the longest pipelined exchange (1 032 bytes) fits in one chunk", () => {
  const username = "u".repeat(255);
  const password = "p".repeat(255);
  const methods = Array.from({ length: 255 }, (_, index) => index.toString(16)).join(" ");
  const stream = concat(
    bytes("05 ff", methods),
    bytes("01 ff", `'${username}'`, "ff", `'${password}'`),
    bytes("05 03 00 03 ff", `'${"d".repeat(255)}'`, "00 00"),
  );
  assert.ok(stream.length > DEFAULT_MAX_BUFFERED_BYTES);
  const { session: target } = session({ credentials: { username, password } });
  const step = target.receive(stream);
  assert.deepEqual(step.reply, concat(bytes("05 02 01 00"), ASSOCIATE_REPLY));
  assert.equal(step.close, false);
});

Deno.test("bytes after the association are ignored and the connection stays open", () => {
  const { session: target, relayCalls } = session();
  const first = target.receive(concat(GREETING_NO_AUTH, ASSOCIATE_ANY, ASSOCIATE_ANY));
  assert.deepEqual(first.reply, concat(bytes("05 00"), ASSOCIATE_REPLY));
  assert.deepEqual(target.receive(ASSOCIATE_ANY), { reply: new Uint8Array(0), close: false });
  assert.deepEqual(target.receive(bytes("ff ff ff")), { reply: new Uint8Array(0), close: false });
  assert.equal(relayCalls(), 1);
  assert.equal(target.bufferedBytes, 0);
});

// ---------------------------------------------------------------------------------------------------
// Control connection: refusals

Deno.test("wrong credentials are refused with 01 01 and close", () => {
  const wrong = [
    bytes("01 04", "'user'", "04", "'pasS'"),
    bytes("01 04", "'User'", "04", "'pass'"),
    bytes("01 03", "'use'", "04", "'pass'"),
    bytes("01 04", "'user'", "05", "'passs'"),
    bytes("01 04", "'pass'", "04", "'user'"),
    bytes("01 00 00"), // empty fields, outside RFC 1929 but parseable
  ];
  for (const message of wrong) {
    const { session: target, relayCalls } = session({ credentials: CREDENTIALS });
    target.receive(GREETING_BOTH);
    const step = target.receive(message);
    assert.deepEqual(step.reply, bytes("01 01"), hex(message));
    assert.equal(step.close, true);
    assert.equal(step.error, "wrong username or password");
    assert.equal(target.receive(ASSOCIATE_ANY).reply.length, 0, "nothing more is answered");
    assert.equal(relayCalls(), 0);
  }
});

Deno.test("credentials configured but only 'no authentication' offered: 05 ff and close", () => {
  const { session: target } = session({ credentials: CREDENTIALS });
  const step = target.receive(GREETING_NO_AUTH);
  assert.deepEqual(step.reply, bytes("05 ff"));
  assert.equal(step.close, true);
  assert.equal(step.error, "client does not offer username/password authentication");
});

Deno.test("no credentials configured but only username/password offered: 05 ff and close", () => {
  const { session: target } = session();
  const step = target.receive(bytes("05 01 02"));
  assert.deepEqual(step.reply, bytes("05 ff"));
  assert.equal(step.close, true);
  assert.equal(step.error, "client does not offer to go without authentication");
});

Deno.test("a greeting offering no methods at all is answered 05 ff", () => {
  const { session: target } = session();
  const step = target.receive(bytes("05 00"));
  assert.deepEqual(step.reply, bytes("05 ff"));
  assert.equal(step.close, true);
});

Deno.test("a refused greeting leaves the rest of the chunk unanswered", () => {
  const { session: target, relayCalls } = session({ credentials: CREDENTIALS });
  const step = target.receive(concat(GREETING_NO_AUTH, ASSOCIATE_ANY));
  assert.deepEqual(step.reply, bytes("05 ff"));
  assert.equal(relayCalls(), 0);
});

Deno.test("CONNECT, BIND and unknown commands get REP 07 with an unbound address and close", () => {
  const cases: [string, string][] = [
    ["01", "CONNECT is not supported"],
    ["02", "BIND is not supported"],
    ["09", "command 9 is not supported"],
  ];
  for (const [command, error] of cases) {
    const { session: target, relayCalls } = session();
    target.receive(GREETING_NO_AUTH);
    const step = target.receive(bytes("05", command, "00 01 5d b8 d8 22 00 50"));
    assert.equal(hex(step.reply), "05 07 " + REFUSED_UNBOUND_TAIL);
    assert.equal(step.close, true);
    assert.equal(step.error, error);
    assert.equal(step.event, undefined);
    assert.equal(relayCalls(), 0);
  }
});

Deno.test("CONNECT is refused only once the whole request has arrived", () => {
  const { session: target } = session();
  target.receive(GREETING_NO_AUTH);
  const request = bytes("05 01 00 03 0b", "'example.com'", "00 50");
  const early = target.receive(request.subarray(0, request.length - 1));
  assert.deepEqual(early, { reply: new Uint8Array(0), close: false });
  const late = target.receive(request.subarray(request.length - 1));
  assert.equal(hex(late.reply), "05 07 " + REFUSED_UNBOUND_TAIL);
});

Deno.test("an unknown address type gets REP 08 and close", () => {
  const { session: target } = session();
  target.receive(GREETING_NO_AUTH);
  const step = target.receive(bytes("05 03 00 05"));
  assert.equal(hex(step.reply), "05 08 " + REFUSED_UNBOUND_TAIL);
  assert.equal(step.close, true);
  assert.equal(step.error, "request has address type 5");
});

Deno.test("a request with a malformed domain name gets REP 01 and close", () => {
  const { session: target } = session();
  target.receive(GREETING_NO_AUTH);
  const step = target.receive(bytes("05 03 00 03 00 00 00"));
  assert.equal(hex(step.reply), "05 01 " + REFUSED_UNBOUND_TAIL);
  assert.equal(step.close, true);
});

Deno.test("no UDP relay available gets REP 01 and close", () => {
  const { session: target } = session({ resolveUdpRelay: () => undefined });
  target.receive(GREETING_NO_AUTH);
  const step = target.receive(ASSOCIATE_ANY);
  assert.equal(hex(step.reply), "05 01 " + REFUSED_UNBOUND_TAIL);
  assert.equal(step.close, true);
  assert.equal(step.error, "no UDP relay available");
});

Deno.test("a wrong version closes without a reply at every stage", () => {
  const greeting = session().session.receive(bytes("04 01 00 50 00 00 00 00"));
  assert.deepEqual(greeting, {
    reply: new Uint8Array(0),
    close: true,
    error: "greeting has version 4, not 5",
  });

  const { session: authenticating } = session({ credentials: CREDENTIALS });
  authenticating.receive(GREETING_BOTH);
  const credentials = authenticating.receive(bytes("05 04", "'user'", "04", "'pass'"));
  assert.deepEqual(credentials.reply.length, 0);
  assert.equal(credentials.close, true);
  assert.equal(credentials.error, "credentials have version 5, not 1");

  const { session: requesting } = session();
  requesting.receive(GREETING_NO_AUTH);
  const request = requesting.receive(bytes("04 03 00 01 00 00 00 00 00 00"));
  assert.deepEqual(request.reply.length, 0);
  assert.equal(request.close, true);
  assert.equal(request.error, "request has version 4, not 5");
});

Deno.test("a closed session answers nothing and keeps asking to close", () => {
  const { session: target } = session({ credentials: CREDENTIALS });
  target.receive(GREETING_NO_AUTH);
  assert.equal(target.state, "closed");
  assert.deepEqual(target.receive(GREETING_BOTH), { reply: new Uint8Array(0), close: true });
});

Deno.test("more than maxBufferedBytes of an incomplete message closes the session", () => {
  const { session: target } = session({ credentials: CREDENTIALS, maxBufferedBytes: 16 });
  target.receive(GREETING_BOTH);
  const partial = bytes("01 ff", "'" + "u".repeat(15) + "'"); // 17 bytes of a 513-byte message
  const step = target.receive(partial);
  assert.deepEqual(step, {
    reply: new Uint8Array(0),
    close: true,
    error: "more than 16 bytes buffered for one message",
  });
  assert.equal(target.bufferedBytes, 0);
});

Deno.test("an incomplete message just under the bound is held, not refused", () => {
  const { session: target } = session({ credentials: CREDENTIALS, maxBufferedBytes: 16 });
  target.receive(GREETING_BOTH);
  const step = target.receive(bytes("01 ff", "'" + "u".repeat(14) + "'"));
  assert.deepEqual(step, { reply: new Uint8Array(0), close: false });
  assert.equal(target.bufferedBytes, 16);
});

Deno.test("the session copies held bytes, so the caller may reuse its read buffer", () => {
  const { session: target } = session({ credentials: CREDENTIALS });
  target.receive(GREETING_BOTH);
  const readBuffer = USER_PASS.slice();
  target.receive(readBuffer.subarray(0, 5));
  readBuffer.fill(0);
  assert.deepEqual(target.receive(USER_PASS.subarray(5)).reply, bytes("01 00"));
});

Deno.test("credentials RFC 1929 cannot carry are refused when the session is built", () => {
  const resolveUdpRelay = () => RELAY;
  for (
    const credentials of [
      { username: "", password: "pass" },
      { username: "user", password: "" },
      { username: "user", password: "p".repeat(256) },
      { username: "ü".repeat(128), password: "pass" }, // 256 bytes of UTF-8
    ]
  ) {
    assert.throws(() => new Socks5Session({ credentials, resolveUdpRelay }), RangeError);
  }
});

Deno.test("encodeSocks5Reply writes VER, REP, RSV and the bound address", () => {
  assert.deepEqual(encodeSocks5Reply(Socks5ReplyCode.succeeded, RELAY), ASSOCIATE_REPLY);
  assert.equal(Socks5ReplyCode.commandNotSupported, 0x07);
  assert.equal(Socks5ReplyCode.addressTypeNotSupported, 0x08);
});

// ---------------------------------------------------------------------------------------------------
// Control connection: hostile input

Deno.test("random bytes in random chunks never throw and never exceed the buffer bound", () => {
  const seed = 0x5eed5;
  withSeed(seed, (random) => {
    const prefixes = [
      new Uint8Array(0),
      GREETING_BOTH,
      concat(GREETING_BOTH, USER_PASS),
      GREETING_NO_AUTH,
      bytes("05"),
      bytes("05 02 00 02 01"),
    ];
    for (let round = 0; round < 3000; round++) {
      const withCredentials = random.next() < 0.5;
      const { session: target, relayCalls } = session(
        withCredentials ? { credentials: CREDENTIALS } : {},
      );
      const prefix = prefixes[random.below(prefixes.length)];
      const noise = randomBytes(random, random.below(1500));
      const stream = concat(prefix, noise);
      let closed = false;
      let associated = 0;
      for (let offset = 0; offset < stream.length;) {
        const length = 1 + random.below(random.next() < 0.5 ? 8 : 600);
        const step = target.receive(stream.subarray(offset, offset + length));
        offset += length;
        if (step.event) associated++;
        assert.ok(target.bufferedBytes <= DEFAULT_MAX_BUFFERED_BYTES);
        if (closed) {
          assert.deepEqual(step, { reply: new Uint8Array(0), close: true });
        } else if (step.close) {
          assert.ok(step.error !== undefined, "every refusal says why");
          closed = true;
        }
      }
      assert.ok(associated <= 1);
      assert.equal(relayCalls(), associated);
    }
  });
});

Deno.test("a random stream gives the same replies however it is split", () => {
  const seed = 0x5b117;
  withSeed(seed, (random) => {
    for (let round = 0; round < 500; round++) {
      const stream = concat(GREETING_NO_AUTH, bytes("05"), randomBytes(random, random.below(300)));
      const whole = feed(session().session, [stream]);
      const chunks: Uint8Array[] = [];
      for (let offset = 0; offset < stream.length;) {
        const length = 1 + random.below(20);
        chunks.push(stream.subarray(offset, offset + length));
        offset += length;
      }
      const split = feed(session().session, chunks);
      assert.deepEqual(split.reply, whole.reply, hex(stream));
      assert.deepEqual(split.events, whole.events);
      assert.deepEqual(split.errors, whole.errors);
    }
  });
});
