/**
 * The SOCKS5 control connection (RFC 1928 sections 3–6, RFC 1929) driven through every split of its
 * byte stream, pipelined messages, refusals, and seeded hostile input.
 */
import assert from "node:assert/strict";
import type { Socks5Address } from "../../lib/socks5/address.ts";
import {
  DEFAULT_MAX_BUFFERED_BYTES,
  encodeSocks5Reply,
  Socks5ReplyCode,
  Socks5Session,
  type Socks5SessionOptions,
  type Socks5Step,
} from "../../lib/socks5/session.ts";
import { bytes, concat, hex, randomBytes, withSeed } from "./socks5_fixtures.ts";

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
