import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import {
  type Aead,
  type AeadAlgorithm,
  DEFAULT_AEAD,
  MAX_COUNTER,
  TAG_BYTES,
} from "../../lib/crypto/aead.ts";
import { aeadImplementation, createAead } from "../../lib/crypto/aead_factory.ts";
import {
  constantTimeEqual,
  generateKeyPair,
  hkdf,
  hmac16,
  keyPairFromPrivate,
  MAC_BYTES,
  PUBLIC_KEY_BYTES,
  randomBytes,
  x25519,
} from "../../lib/crypto/primitives.ts";
import { createNodeAead, openWithNonce, sealWithNonce } from "../../lib/crypto/aead_node.ts";
import { seededRandom } from "../../lib/base/rng.ts";

const ALGORITHMS: readonly AeadAlgorithm[] = ["chacha20-poly1305", "aes-256-gcm"];

/**
 * The AEAD behaviour tests run against each way of making a key: `createAead` (OpenSSL wherever it
 * can run, see aeadImplementation) and the `node:crypto` fallback, which must behave alike.
 */
const AEAD_MAKERS: readonly {
  label: string;
  make: (key: Uint8Array, algorithm?: AeadAlgorithm) => Aead;
}[] = [
  { label: `createAead (${aeadImplementation()})`, make: createAead },
  { label: "createNodeAead", make: createNodeAead },
];

function fromHex(hex: string): Uint8Array {
  const bytes = new Uint8Array(hex.length / 2);
  for (let index = 0; index < bytes.length; index++) {
    bytes[index] = parseInt(hex.slice(index * 2, index * 2 + 2), 16);
  }
  return bytes;
}

function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** The bytes start, start+1, …, end (inclusive), as RFC 5869 and RFC 8439 write their inputs. */
function byteRange(start: number, end: number): Uint8Array {
  return Uint8Array.from({ length: end - start + 1 }, (_, index) => start + index);
}

// RFC 7748 §6.1.
const ALICE_PRIVATE = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
const ALICE_PUBLIC = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
const BOB_PRIVATE = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb";
const BOB_PUBLIC = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f";
const ALICE_BOB_SHARED = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";

// RFC 8439 §2.8.2.
const RFC8439_KEY = byteRange(0x80, 0x9f);
const RFC8439_NONCE = fromHex("070000004041424344454647");
const RFC8439_AAD = fromHex("50515253c0c1c2c3c4c5c6c7");
const RFC8439_PLAINTEXT = new TextEncoder().encode(
  "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, " +
    "sunscreen would be it.",
);
const RFC8439_SEALED = "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6" +
  "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36" +
  "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc" +
  "3ff4def08e4b7a9de576d26586cec64b6116" +
  "1ae10b594f09e26a7e902ecbd0600691";

// The GCM specification (McGrew & Viega), test case 16: AES-256, 60-byte plaintext, 20-byte AAD.
const GCM16_KEY = fromHex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
const GCM16_NONCE = fromHex("cafebabefacedbaddecaf888");
const GCM16_AAD = fromHex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
const GCM16_PLAINTEXT = fromHex(
  "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72" +
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
);
const GCM16_SEALED = "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa" +
  "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662" +
  "76fc6ece0f4e1768cddf8853bb2d551b";

/** Seals a fixed message under a fixed key and counter, for the tampering tests. */
function sealedFixture(
  make: (key: Uint8Array, algorithm: AeadAlgorithm) => Aead,
  algorithm: AeadAlgorithm,
) {
  const key = byteRange(1, 32);
  const counter = 41;
  const header = fromHex("0102030405060708");
  const plaintext = new TextEncoder().encode("a datagram travelling through the tunnel");
  const sealed = new Uint8Array(plaintext.length + TAG_BYTES);
  make(key, algorithm).seal(counter, header, plaintext, sealed, 0);
  return { aead: make(key, algorithm), counter, header, plaintext, sealed };
}

// --- X25519 -------------------------------------------------------------------------------------

Deno.test("x25519 derives the RFC 7748 §6.1 public keys from Alice's and Bob's private keys", () => {
  assert.equal(toHex(keyPairFromPrivate(fromHex(ALICE_PRIVATE)).publicKey), ALICE_PUBLIC);
  assert.equal(toHex(keyPairFromPrivate(fromHex(BOB_PRIVATE)).publicKey), BOB_PUBLIC);
});

Deno.test("x25519 gives Alice and Bob the RFC 7748 §6.1 shared secret", () => {
  const alice = keyPairFromPrivate(fromHex(ALICE_PRIVATE));
  const bob = keyPairFromPrivate(fromHex(BOB_PRIVATE));
  assert.equal(toHex(x25519(alice.privateKey, fromHex(BOB_PUBLIC))!), ALICE_BOB_SHARED);
  assert.equal(toHex(x25519(bob.privateKey, fromHex(ALICE_PUBLIC))!), ALICE_BOB_SHARED);
});

Deno.test("x25519 matches the RFC 7748 §5.2 scalar-multiplication vectors", () => {
  const vectors = [
    {
      scalar: "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
      u: "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
      output: "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
    },
    {
      // The top bit of this u is set; X25519 must ignore it (RFC 7748 §5).
      scalar: "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
      u: "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
      output: "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
    },
  ];
  for (const { scalar, u, output } of vectors) {
    assert.equal(
      toHex(x25519(keyPairFromPrivate(fromHex(scalar)).privateKey, fromHex(u))!),
      output,
    );
  }
});

Deno.test("x25519 agrees on one secret for two generated key pairs", () => {
  const alice = generateKeyPair(), bob = generateKeyPair();
  assert.equal(alice.publicKey.length, PUBLIC_KEY_BYTES);
  const aliceSecret = x25519(alice.privateKey, bob.publicKey);
  assert.ok(aliceSecret !== undefined);
  assert.deepEqual(x25519(bob.privateKey, alice.publicKey), aliceSecret);
});

Deno.test("x25519 returns undefined for an all-zero (low-order) public key", () => {
  const alice = keyPairFromPrivate(fromHex(ALICE_PRIVATE));
  assert.equal(x25519(alice.privateKey, new Uint8Array(32)), undefined);
});

Deno.test("x25519 returns undefined for the other low-order public keys", () => {
  const alice = generateKeyPair();
  const lowOrderPoints = [
    "0100000000000000000000000000000000000000000000000000000000000000", // u = 1
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800", // order 8
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157", // order 8
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // u = p − 1
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // u = p ≡ 0
  ];
  for (const point of lowOrderPoints) {
    assert.equal(x25519(alice.privateKey, fromHex(point)), undefined, point);
  }
});

Deno.test("x25519 returns undefined for a public key that is not 32 bytes", () => {
  const alice = generateKeyPair();
  for (const length of [0, 1, 31, 33, 64]) {
    assert.equal(x25519(alice.privateKey, randomBytes(length)), undefined, `length ${length}`);
  }
});

Deno.test("keyPairFromPrivate rejects a private key that is not 32 bytes", () => {
  assert.throws(() => keyPairFromPrivate(new Uint8Array(31)), RangeError);
});

// --- HKDF, HMAC, comparison ---------------------------------------------------------------------

Deno.test("hkdf matches RFC 5869 test case 1", () => {
  const okm = hkdf(
    new Uint8Array(22).fill(0x0b),
    byteRange(0x00, 0x0c),
    byteRange(0xf0, 0xf9),
    42,
  );
  assert.equal(
    toHex(okm),
    "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
  );
});

Deno.test("hkdf matches RFC 5869 test case 2 (long inputs and output)", () => {
  const okm = hkdf(byteRange(0x00, 0x4f), byteRange(0x60, 0xaf), byteRange(0xb0, 0xff), 82);
  assert.equal(
    toHex(okm),
    "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c" +
      "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71" +
      "cc30c58179ec3e87c14c01d5c1f3434f1d87",
  );
});

Deno.test("hkdf matches RFC 5869 test case 3 (empty salt and info)", () => {
  const okm = hkdf(new Uint8Array(22).fill(0x0b), new Uint8Array(0), new Uint8Array(0), 42);
  assert.equal(
    toHex(okm),
    "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
  );
});

Deno.test("hkdf rejects an output length outside 1..8160 bytes", () => {
  const ikm = new Uint8Array(32);
  for (const lengthBytes of [0, -1, 1.5, 8161]) {
    assert.throws(() => hkdf(ikm, ikm, ikm, lengthBytes), RangeError, `length ${lengthBytes}`);
  }
});

Deno.test("hmac16 is the first 16 bytes of RFC 4231 test case 2's HMAC-SHA256", () => {
  const encoder = new TextEncoder();
  const mac = hmac16(encoder.encode("Jefe"), encoder.encode("what do ya want for nothing?"));
  assert.equal(mac.length, MAC_BYTES);
  assert.equal(toHex(mac), "5bdcc146bf60754e6a042426089575c7");
});

Deno.test("hmac16 over several parts equals hmac16 over their concatenation", () => {
  const key = byteRange(0, 31);
  const whole = byteRange(100, 160);
  assert.deepEqual(
    hmac16(key, whole.subarray(0, 7), whole.subarray(7, 7), whole.subarray(7)),
    hmac16(key, whole),
  );
  assert.deepEqual(
    hmac16(key, whole),
    new Uint8Array(createHmac("sha256", key).update(whole).digest().subarray(0, 16)),
  );
});

Deno.test("constantTimeEqual is true only for equal bytes of equal length", () => {
  assert.equal(constantTimeEqual(fromHex("00ff10"), fromHex("00ff10")), true);
  assert.equal(constantTimeEqual(fromHex("00ff10"), fromHex("00ff11")), false);
  assert.equal(constantTimeEqual(fromHex("00ff10"), fromHex("00ff")), false);
  assert.equal(constantTimeEqual(new Uint8Array(0), new Uint8Array(0)), true);
});

Deno.test("randomBytes returns the number of bytes asked for", () => {
  assert.equal(randomBytes(0).length, 0);
  assert.equal(randomBytes(70_000).length, 70_000);
  assert.notDeepEqual(randomBytes(32), randomBytes(32));
});

// --- AEAD known answers -------------------------------------------------------------------------

Deno.test("sealWithNonce matches the RFC 8439 §2.8.2 ChaCha20-Poly1305 vector", () => {
  const out = new Uint8Array(RFC8439_PLAINTEXT.length + TAG_BYTES);
  const written = sealWithNonce(
    "chacha20-poly1305",
    RFC8439_KEY,
    RFC8439_NONCE,
    RFC8439_AAD,
    RFC8439_PLAINTEXT,
    out,
    0,
  );
  assert.equal(written, RFC8439_PLAINTEXT.length + TAG_BYTES);
  assert.equal(toHex(out), RFC8439_SEALED);
});

Deno.test("openWithNonce recovers the RFC 8439 §2.8.2 plaintext", () => {
  const out = new Uint8Array(RFC8439_PLAINTEXT.length);
  const sealed = fromHex(RFC8439_SEALED);
  const read = openWithNonce(
    "chacha20-poly1305",
    RFC8439_KEY,
    RFC8439_NONCE,
    RFC8439_AAD,
    sealed,
    out,
    0,
  );
  assert.equal(read, RFC8439_PLAINTEXT.length);
  assert.deepEqual(out, RFC8439_PLAINTEXT);
});

Deno.test("sealWithNonce and openWithNonce match GCM test case 16 for AES-256-GCM", () => {
  const out = new Uint8Array(GCM16_PLAINTEXT.length + TAG_BYTES);
  sealWithNonce("aes-256-gcm", GCM16_KEY, GCM16_NONCE, GCM16_AAD, GCM16_PLAINTEXT, out, 0);
  assert.equal(toHex(out), GCM16_SEALED);
  const plain = new Uint8Array(GCM16_PLAINTEXT.length);
  assert.equal(
    openWithNonce("aes-256-gcm", GCM16_KEY, GCM16_NONCE, GCM16_AAD, out, plain, 0),
    GCM16_PLAINTEXT.length,
  );
  assert.deepEqual(plain, GCM16_PLAINTEXT);
});

Deno.test("seal uses the nonce 00000000 || counter as 64-bit big-endian", () => {
  const counter = 0x0102_0304_0506; // > 2^32, so both halves of the 64-bit counter matter
  const nonce = fromHex("00000000" + "0000010203040506");
  for (const { label, make } of AEAD_MAKERS) {
    for (const algorithm of ALGORITHMS) {
      const plaintext = byteRange(0, 99), header = byteRange(200, 209);
      const viaCounter = new Uint8Array(plaintext.length + TAG_BYTES);
      const viaNonce = new Uint8Array(plaintext.length + TAG_BYTES);
      make(RFC8439_KEY, algorithm).seal(counter, header, plaintext, viaCounter, 0);
      sealWithNonce(algorithm, RFC8439_KEY, nonce, header, plaintext, viaNonce, 0);
      assert.deepEqual(viaCounter, viaNonce, `${label} ${algorithm}`);
    }
  }
});

// --- AEAD behaviour -----------------------------------------------------------------------------

Deno.test("DEFAULT_AEAD is the algorithm createAead uses without one", () => {
  assert.equal(createAead(new Uint8Array(32)).algorithm, DEFAULT_AEAD);
});

for (const { label, make } of AEAD_MAKERS) {
  Deno.test(`${label}: open recovers what seal wrote, at offsets, for both algorithms`, () => {
    for (const algorithm of ALGORITHMS) {
      const key = randomBytes(32);
      const header = byteRange(1, 12);
      const plaintext = byteRange(0, 255);
      const datagram = new Uint8Array(8 + plaintext.length + TAG_BYTES);
      const written = make(key, algorithm).seal(MAX_COUNTER, header, plaintext, datagram, 8);
      assert.equal(written, plaintext.length + TAG_BYTES);
      const out = new Uint8Array(3 + plaintext.length);
      const read = make(key, algorithm).open(
        MAX_COUNTER,
        header,
        datagram.subarray(8),
        out,
        3,
      );
      assert.equal(read, plaintext.length, algorithm);
      assert.deepEqual(out.subarray(3), plaintext, algorithm);
    }
  });

  Deno.test(`${label}: seal and open handle an empty plaintext`, () => {
    for (const algorithm of ALGORITHMS) {
      const key = randomBytes(32), header = byteRange(1, 4);
      const sealed = new Uint8Array(TAG_BYTES);
      assert.equal(make(key, algorithm).seal(0, header, new Uint8Array(0), sealed, 0), 16);
      assert.equal(make(key, algorithm).open(0, header, sealed, new Uint8Array(0), 0), 0);
    }
  });

  Deno.test(`${label}: seal and open work in place, with header, payload and tag in one buffer`, () => {
    for (const algorithm of ALGORITHMS) {
      const key = randomBytes(32);
      const headerBytes = 12, payload = byteRange(0, 199);
      const packet = new Uint8Array(headerBytes + payload.length + TAG_BYTES);
      packet.set(byteRange(50, 61), 0);
      packet.set(payload, headerBytes);
      const header = packet.subarray(0, headerBytes);
      const body = packet.subarray(headerBytes);

      make(key, algorithm).seal(
        9,
        header,
        body.subarray(0, payload.length),
        packet,
        headerBytes,
      );
      assert.notDeepEqual(body.subarray(0, payload.length), payload);

      const read = make(key, algorithm).open(9, header, body, packet, headerBytes);
      assert.equal(read, payload.length, algorithm);
      assert.deepEqual(packet.subarray(headerBytes, headerBytes + payload.length), payload);
    }
  });

  Deno.test(`${label}: open rejects a flipped bit in the ciphertext`, () => {
    for (const algorithm of ALGORITHMS) {
      const { aead, counter, header, sealed } = sealedFixture(make, algorithm);
      for (const bit of [0, 7, 100, (sealed.length - TAG_BYTES) * 8 - 1]) {
        const forged = sealed.slice();
        forged[bit >> 3] ^= 1 << (bit & 7);
        const out = new Uint8Array(sealed.length);
        assert.equal(aead.open(counter, header, forged, out, 0), -1, `${algorithm} bit ${bit}`);
      }
    }
  });

  Deno.test(`${label}: open rejects a flipped bit in the tag`, () => {
    for (const algorithm of ALGORITHMS) {
      const { aead, counter, header, sealed } = sealedFixture(make, algorithm);
      for (let bit = (sealed.length - TAG_BYTES) * 8; bit < sealed.length * 8; bit += 9) {
        const forged = sealed.slice();
        forged[bit >> 3] ^= 1 << (bit & 7);
        const out = new Uint8Array(sealed.length);
        assert.equal(aead.open(counter, header, forged, out, 0), -1, `${algorithm} bit ${bit}`);
      }
    }
  });

  Deno.test(`${label}: open rejects a flipped bit in the associated data`, () => {
    for (const algorithm of ALGORITHMS) {
      const { aead, counter, header, sealed } = sealedFixture(make, algorithm);
      for (let bit = 0; bit < header.length * 8; bit += 5) {
        const forgedHeader = header.slice();
        forgedHeader[bit >> 3] ^= 1 << (bit & 7);
        const out = new Uint8Array(sealed.length);
        assert.equal(
          aead.open(counter, forgedHeader, sealed, out, 0),
          -1,
          `${algorithm} bit ${bit}`,
        );
      }
      const out = new Uint8Array(sealed.length);
      assert.equal(aead.open(counter, header.subarray(1), sealed, out, 0), -1, "shortened header");
    }
  });

  Deno.test(`${label}: open rejects the right datagram under the wrong counter`, () => {
    for (const algorithm of ALGORITHMS) {
      const { aead, counter, header, sealed } = sealedFixture(make, algorithm);
      for (const wrongCounter of [counter + 1, counter - 1, counter + 2 ** 32, 0]) {
        const out = new Uint8Array(sealed.length);
        assert.equal(aead.open(wrongCounter, header, sealed, out, 0), -1, `${wrongCounter}`);
      }
    }
  });

  Deno.test(`${label}: open rejects the right datagram under another key`, () => {
    for (const algorithm of ALGORITHMS) {
      const { counter, header, sealed } = sealedFixture(make, algorithm);
      const other = make(byteRange(2, 33), algorithm);
      assert.equal(other.open(counter, header, sealed, new Uint8Array(sealed.length), 0), -1);
    }
  });

  Deno.test(`${label}: open rejects input shorter than the tag (0 to 15 bytes)`, () => {
    for (const algorithm of ALGORITHMS) {
      const { aead, counter, header, sealed } = sealedFixture(make, algorithm);
      for (let length = 0; length < TAG_BYTES; length++) {
        const out = new Uint8Array(64);
        assert.equal(
          aead.open(counter, header, sealed.subarray(0, length), out, 0),
          -1,
          `${length}`,
        );
        assert.equal(
          aead.open(counter, header, sealed.subarray(sealed.length - length), out, 0),
          -1,
          `tail ${length}`,
        );
      }
    }
  });

  Deno.test(`${label}: open rejects a datagram truncated anywhere`, () => {
    for (const algorithm of ALGORITHMS) {
      const { aead, counter, header, sealed } = sealedFixture(make, algorithm);
      for (let length = TAG_BYTES; length < sealed.length; length++) {
        const out = new Uint8Array(sealed.length);
        assert.equal(
          aead.open(counter, header, sealed.subarray(0, length), out, 0),
          -1,
          `${length}`,
        );
      }
    }
  });

  Deno.test(`${label}: open leaves out untouched when authentication fails`, () => {
    for (const algorithm of ALGORITHMS) {
      const { aead, counter, header, sealed } = sealedFixture(make, algorithm);
      const forged = sealed.slice();
      forged[sealed.length - 1] ^= 0x80;
      const out = new Uint8Array(sealed.length).fill(0xaa);
      assert.equal(aead.open(counter, header, forged, out, 0), -1);
      assert.deepEqual(out, new Uint8Array(sealed.length).fill(0xaa), algorithm);
    }
  });

  Deno.test(`${label}: open returns -1 when out has no room for the plaintext`, () => {
    for (const algorithm of ALGORITHMS) {
      const { aead, counter, header, plaintext, sealed } = sealedFixture(make, algorithm);
      const out = new Uint8Array(plaintext.length);
      assert.equal(aead.open(counter, header, sealed, out, 1), -1);
      assert.equal(aead.open(counter, header, sealed, out, -1), -1);
      assert.equal(aead.open(counter, header, sealed, out, 0), plaintext.length);
    }
  });

  Deno.test(`${label}: open returns -1 for a counter that is not an integer 0..2^53-1`, () => {
    const { aead, header, sealed } = sealedFixture(make, DEFAULT_AEAD);
    for (const counter of [-1, 0.5, 2 ** 53, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.equal(aead.open(counter, header, sealed, new Uint8Array(64), 0), -1, `${counter}`);
    }
  });

  Deno.test(`${label}: seal throws RangeError for a bad counter or an out buffer too small`, () => {
    const aead = make(new Uint8Array(32));
    const plaintext = new Uint8Array(10), header = new Uint8Array(4);
    for (const counter of [-1, 0.5, 2 ** 53, Number.NaN]) {
      assert.throws(() => aead.seal(counter, header, plaintext, new Uint8Array(26), 0), RangeError);
    }
    assert.throws(() => aead.seal(0, header, plaintext, new Uint8Array(25), 0), RangeError);
    assert.throws(() => aead.seal(0, header, plaintext, new Uint8Array(26), 1), RangeError);
  });

  Deno.test(`${label}: rejects a key that is not 32 bytes`, () => {
    assert.throws(() => make(new Uint8Array(16)), RangeError);
  });

  Deno.test(`${label}: copies the key, so later changes to the caller's bytes do not matter`, () => {
    const key = byteRange(1, 32);
    const aead = make(key);
    const sealed = new Uint8Array(TAG_BYTES + 3);
    aead.seal(1, new Uint8Array(0), fromHex("010203"), sealed, 0);
    key.fill(0);
    const out = new Uint8Array(3);
    assert.equal(make(byteRange(1, 32)).open(1, new Uint8Array(0), sealed, out, 0), 3);
    assert.equal(aead.open(1, new Uint8Array(0), sealed, out, 0), 3);
  });

  Deno.test(`${label}: open never throws and returns -1 on 10 000 random byte strings`, () => {
    const seed = 0x5eed_c0de;
    const random = seededRandom(seed);
    const randomBuffer = (length: number) => {
      const bytes = new Uint8Array(length);
      for (let index = 0; index < length; index++) bytes[index] = random.below(256);
      return bytes;
    };
    for (const algorithm of ALGORITHMS) {
      const aead = make(randomBuffer(32), algorithm);
      const out = new Uint8Array(2048);
      for (let trial = 0; trial < 10_000; trial++) {
        const sealed = randomBuffer(random.below(100));
        const header = randomBuffer(random.below(24));
        const counter = random.below(2 ** 32) * 2 ** 21 + random.below(2 ** 21);
        let result: number;
        try {
          result = aead.open(counter, header, sealed, out, random.below(out.length));
        } catch (error) {
          assert.fail(`seed ${seed}, ${algorithm}, trial ${trial}: open threw ${error}`);
        }
        assert.equal(result, -1, `seed ${seed}, ${algorithm}, trial ${trial}`);
      }
    }
  });
}
