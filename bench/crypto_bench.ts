/**
 * Speed of lib/crypto/aead_factory.ts: the per-datagram AEAD (both algorithms, a small and a full-MTU payload,
 * each with both implementations: OpenSSL through FFI and the `node:crypto` fallback) and the
 * per-handshake X25519 and HKDF. Run with `deno bench --allow-ffi bench/crypto_bench.ts` (without
 * FFI only the `node:crypto` rows run); the numbers behind DEFAULT_AEAD and the default
 * implementation are recorded at the top of lib/crypto/aead_factory.ts.
 */

import { createCipheriv } from "node:crypto";
import { createOpensslAead, opensslAeadUnavailable } from "../lib/crypto/aead_openssl.ts";
import { type Aead, type AeadAlgorithm, TAG_BYTES } from "../lib/crypto/aead.ts";
import type { AeadImplementation } from "../lib/crypto/aead_factory.ts";
import { createNodeAead } from "../lib/crypto/aead_node.ts";
import { generateKeyPair, hkdf, hmac16, randomBytes, x25519 } from "../lib/crypto/primitives.ts";

const ALGORITHMS: readonly AeadAlgorithm[] = ["chacha20-poly1305", "aes-256-gcm"];
const PAYLOAD_SIZES_BYTES = [64, 1200] as const;
const HEADER_BYTES = 16;

const opensslUnavailable = opensslAeadUnavailable();
if (opensslUnavailable !== undefined) {
  console.warn(`OpenSSL AEAD unavailable (${opensslUnavailable}); benching node:crypto only`);
}
const IMPLEMENTATIONS: readonly AeadImplementation[] = opensslUnavailable === undefined
  ? ["openssl", "node"]
  : ["node"];
const MAKERS: Record<AeadImplementation, (key: Uint8Array, algorithm: AeadAlgorithm) => Aead> = {
  openssl: createOpensslAead,
  node: createNodeAead,
};

// Each group holds one algorithm, size and operation, so the summary compares the implementations.
for (const payloadBytes of PAYLOAD_SIZES_BYTES) {
  for (const algorithm of ALGORITHMS) {
    for (const implementation of IMPLEMENTATIONS) {
      const key = randomBytes(32);
      const sender = MAKERS[implementation](key, algorithm);
      const receiver = MAKERS[implementation](key, algorithm);
      const header = randomBytes(HEADER_BYTES);
      const payload = randomBytes(payloadBytes);
      const datagram = new Uint8Array(payloadBytes + TAG_BYTES);
      const delivered = new Uint8Array(payloadBytes);
      const baseline = implementation === "node";
      let counter = 0;

      Deno.bench({
        name: `${implementation} ${algorithm} seal+open ${payloadBytes} B`,
        group: `${algorithm} seal+open ${payloadBytes} B`,
        baseline,
        fn() {
          counter++;
          const sealedBytes = sender.seal(counter, header, payload, datagram, 0);
          if (receiver.open(counter, header, datagram.subarray(0, sealedBytes), delivered, 0) < 0) {
            throw new Error("open failed");
          }
        },
      });

      Deno.bench({
        name: `${implementation} ${algorithm} seal ${payloadBytes} B`,
        group: `${algorithm} seal ${payloadBytes} B`,
        baseline,
        fn() {
          sender.seal(++counter, header, payload, datagram, 0);
        },
      });

      // Open one fixed datagram over and over: the same work per call as fresh ones.
      const fixedDatagram = new Uint8Array(payloadBytes + TAG_BYTES);
      sender.seal(1, header, payload, fixedDatagram, 0);
      Deno.bench({
        name: `${implementation} ${algorithm} open ${payloadBytes} B`,
        group: `${algorithm} open ${payloadBytes} B`,
        baseline,
        fn() {
          if (receiver.open(1, header, fixedDatagram, delivered, 0) < 0) {
            throw new Error("open failed");
          }
        },
      });

      const forged = fixedDatagram.slice();
      forged[0] ^= 1;
      Deno.bench({
        name: `${implementation} ${algorithm} open forged ${payloadBytes} B`,
        group: `${algorithm} open forged ${payloadBytes} B`,
        baseline,
        fn() {
          if (receiver.open(1, header, forged, delivered, 0) !== -1) {
            throw new Error("forgery accepted");
          }
        },
      });
    }
  }
}

// Making a key: the OpenSSL one allocates its native contexts on first use, so seal once as well.
for (const implementation of IMPLEMENTATIONS) {
  const key = randomBytes(32), header = randomBytes(HEADER_BYTES), payload = randomBytes(64);
  const datagram = new Uint8Array(payload.length + TAG_BYTES);
  Deno.bench({
    name: `${implementation} createAead + first seal 64 B`,
    group: "createAead + first seal",
    baseline: implementation === "node",
    fn() {
      MAKERS[implementation](key, "chacha20-poly1305").seal(0, header, payload, datagram, 0);
    },
  });
}

// Where a seal's time goes: creating the cipher object alone, before any byte is encrypted.
for (const algorithm of ALGORITHMS) {
  const key = randomBytes(32), nonce = new Uint8Array(12);
  Deno.bench({
    name: `${algorithm} createCipheriv only`,
    group: "createCipheriv only",
    fn() {
      createCipheriv(algorithm as "aes-256-gcm", key, nonce, { authTagLength: TAG_BYTES });
    },
  });
}

const peer = generateKeyPair();
const local = generateKeyPair();
Deno.bench({
  name: "X25519 generateKeyPair + x25519",
  group: "handshake",
  fn() {
    const ephemeral = generateKeyPair();
    if (x25519(ephemeral.privateKey, peer.publicKey) === undefined) throw new Error("DH failed");
  },
});
Deno.bench({
  name: "X25519 x25519 only",
  group: "handshake",
  fn() {
    if (x25519(local.privateKey, peer.publicKey) === undefined) throw new Error("DH failed");
  },
});

const ikm = randomBytes(32), salt = randomBytes(32), info = new TextEncoder().encode("mptunnel");
Deno.bench({
  name: "hkdf 32 B ikm -> 64 B",
  group: "handshake",
  fn() {
    hkdf(ikm, salt, info, 64);
  },
});

const macKey = randomBytes(32), part1 = randomBytes(12), part2 = randomBytes(32);
const part3 = randomBytes(16);
Deno.bench({
  name: "hmac16 3 parts 60 B",
  group: "handshake",
  fn() {
    hmac16(macKey, part1, part2, part3);
  },
});
