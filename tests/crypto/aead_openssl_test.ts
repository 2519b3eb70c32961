import assert from "node:assert/strict";
import {
  createOpensslAead,
  loadedLibcrypto,
  opensslAeadUnavailable,
  opensslLibraryPath,
  opensslLiveContexts,
} from "../../lib/crypto/aead_openssl.ts";
import { selfTest } from "../../lib/crypto/aead_openssl_self_test.ts";
import type { Libcrypto } from "../../lib/crypto/libcrypto.ts";
import { type Aead, type AeadAlgorithm, MAX_COUNTER, TAG_BYTES } from "../../lib/crypto/aead.ts";
import { AEAD_IMPLEMENTATION_ENV_VAR } from "../../lib/crypto/aead_factory.ts";
import { createNodeAead } from "../../lib/crypto/aead_node.ts";
import { seededRandom } from "../../lib/base/rng.ts";

const ALGORITHMS: readonly AeadAlgorithm[] = ["chacha20-poly1305", "aes-256-gcm"];
const CRYPTO_MODULE_URL = new URL("../../lib/crypto/aead_factory.ts", import.meta.url).href;
const OPENSSL_MODULE_URL = new URL("../../lib/crypto/aead_openssl.ts", import.meta.url).href;
const REPOSITORY_ROOT = new URL("../..", import.meta.url);

const unavailable = opensslAeadUnavailable();
if (unavailable !== undefined) {
  console.warn(
    `aead_openssl_test: skipping the OpenSSL tests, FFI path unavailable: ${unavailable}`,
  );
}
const ignore = unavailable !== undefined;

/** Where a distribution puts libcrypto 3; where one of these exists, the tests must not skip. */
const KNOWN_LIBCRYPTO_PATHS = [
  "/usr/lib/x86_64-linux-gnu/libcrypto.so.3",
  "/usr/lib/aarch64-linux-gnu/libcrypto.so.3",
  "/usr/lib64/libcrypto.so.3",
  "/usr/lib/libcrypto.so.3",
];

function pattern(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let index = 0; index < length; index++) bytes[index] = (index * 31 + seed * 7 + 3) & 0xff;
  return bytes;
}

function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** Seals with `aead` into a fresh buffer at `outOffset`; returns the sealed bytes alone. */
function sealed(
  aead: Aead,
  counter: number,
  header: Uint8Array,
  plaintext: Uint8Array,
  outOffset = 0,
): Uint8Array {
  const out = new Uint8Array(outOffset + plaintext.length + TAG_BYTES).fill(0xee);
  assert.equal(aead.seal(counter, header, plaintext, out, outOffset), plaintext.length + TAG_BYTES);
  assert.ok(out.subarray(0, outOffset).every((byte) => byte === 0xee), "bytes before outOffset");
  return out.subarray(outOffset);
}

/** Opens with `aead` into a fresh buffer at `outOffset`; returns the plaintext, or undefined. */
function opened(
  aead: Aead,
  counter: number,
  header: Uint8Array,
  datagram: Uint8Array,
  outOffset = 0,
): Uint8Array | undefined {
  const out = new Uint8Array(outOffset + datagram.length).fill(0xdd);
  const read = aead.open(counter, header, datagram, out, outOffset);
  if (read < 0) {
    assert.ok(out.every((byte) => byte === 0xdd), "a failed open wrote into out");
    return undefined;
  }
  return out.subarray(outOffset, outOffset + read);
}

/** Runs a Deno script given on standard input; returns its exit code, stdout and stderr. */
async function runScript(
  script: string,
  permissions: string[],
  environment: Record<string, string>,
  v8Flags: string[] = [],
) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-check", ...v8Flags, ...permissions, "-"],
    cwd: REPOSITORY_ROOT,
    env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1", ...environment },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(script));
  await writer.close();
  const output = await child.output();
  return {
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout).trim(),
    stderr: new TextDecoder().decode(output.stderr),
  };
}

// --- Availability -------------------------------------------------------------------------------

Deno.test("the OpenSSL AEAD loads where FFI is allowed and a libcrypto 3 is installed", () => {
  const ffiGranted = Deno.permissions.querySync({ name: "ffi" }).state === "granted";
  const installed = KNOWN_LIBCRYPTO_PATHS.some((path) => {
    try {
      return Deno.statSync(path).isFile;
    } catch {
      return false;
    }
  });
  if (!ffiGranted || !installed) {
    console.warn(`no FFI permission or no libcrypto 3 here; availability: ${unavailable ?? "yes"}`);
    return;
  }
  assert.equal(unavailable, undefined);
  assert.ok(opensslLibraryPath() !== undefined);
});

// --- Same bytes as node:crypto ------------------------------------------------------------------

const PLAINTEXT_LENGTHS = [0, 1, 15, 16, 17, 63, 64, 1200, 1500, 65_000];
const HEADER_LENGTHS = [0, 1, 13, 16, 40];
const COUNTERS = [0, 1, 2 ** 32, MAX_COUNTER];

Deno.test({
  name: "seal writes the same bytes as node:crypto, and each opens what the other sealed",
  ignore,
  fn() {
    for (const algorithm of ALGORITHMS) {
      const key = pattern(32, 1);
      const native = createOpensslAead(key, algorithm), node = createNodeAead(key, algorithm);
      let round = 0;
      for (const plaintextBytes of PLAINTEXT_LENGTHS) {
        for (const counter of COUNTERS) {
          const headerBytes = HEADER_LENGTHS[round % HEADER_LENGTHS.length];
          const outOffset = [0, 3, 16][round % 3];
          round++;
          const what = `${algorithm} ${plaintextBytes} B, header ${headerBytes} B, ` +
            `counter ${counter}, offset ${outOffset}`;
          const header = pattern(headerBytes, round), plaintext = pattern(plaintextBytes, counter);
          const byNative = sealed(native, counter, header, plaintext, outOffset);
          const byNode = sealed(node, counter, header, plaintext, outOffset);
          assert.equal(toHex(byNative), toHex(byNode), what);
          assert.deepEqual(opened(native, counter, header, byNode, outOffset), plaintext, what);
          assert.deepEqual(opened(node, counter, header, byNative, 5), plaintext, what);
        }
      }
    }
  },
});

Deno.test({
  name: "one key seals and opens 2 000 datagrams in a row, interleaved, as node:crypto does",
  ignore,
  fn() {
    const seed = 0x0a3ad;
    const random = seededRandom(seed);
    for (const algorithm of ALGORITHMS) {
      const key = pattern(32, 9);
      // One OpenSSL key does both directions, so its seal and open contexts interleave.
      const native = createOpensslAead(key, algorithm), node = createNodeAead(key, algorithm);
      for (let index = 0; index < 2_000; index++) {
        const what = `seed ${seed}, ${algorithm}, datagram ${index}`;
        const counter = random.below(3) === 0 ? index : random.below(2 ** 21) * 2 ** 32 + index;
        const header = pattern(random.below(24), index);
        const plaintext = pattern(random.below(1400), index + 1);
        const byNative = sealed(native, counter, header, plaintext);
        const byNode = sealed(node, counter, header, plaintext);
        assert.equal(toHex(byNative), toHex(byNode), what);
        assert.deepEqual(opened(native, counter, header, byNode), plaintext, what);
        if (index % 7 === 0) {
          const forged = byNode.slice();
          forged[random.below(forged.length)] ^= 1 << random.below(8);
          assert.equal(opened(native, counter, header, forged), undefined, what);
        }
      }
    }
  },
});

Deno.test({
  name: "seal and open use a Uint8Array's byteOffset (views into a larger buffer)",
  ignore,
  fn() {
    for (const algorithm of ALGORITHMS) {
      const key = pattern(32, 2), header = pattern(9, 3), plaintext = pattern(300, 4);
      const native = createOpensslAead(key, algorithm), node = createNodeAead(key, algorithm);
      const expected = sealed(node, 77, header, plaintext);

      // Inputs and output are all views at odd offsets into one larger buffer.
      const arena = new Uint8Array(2_000).fill(0x55);
      const headerView = arena.subarray(1, 1 + header.length);
      headerView.set(header);
      const plaintextView = arena.subarray(101, 101 + plaintext.length);
      plaintextView.set(plaintext);
      const outView = arena.subarray(601, 601 + 10 + expected.length + 5);
      const written = native.seal(77, headerView, plaintextView, outView, 10);
      assert.equal(written, expected.length);
      assert.deepEqual(outView.subarray(10, 10 + written), expected, algorithm);
      assert.ok(arena.subarray(601, 611).every((byte) => byte === 0x55), "before the output");
      assert.ok(arena.subarray(611 + written).every((byte) => byte === 0x55), "after the output");

      const plainView = arena.subarray(1_201, 1_201 + 7 + plaintext.length);
      const read = native.open(77, headerView, outView.subarray(10, 10 + written), plainView, 7);
      assert.equal(read, plaintext.length);
      assert.deepEqual(plainView.subarray(7), plaintext, algorithm);
      assert.ok(
        arena.subarray(1_201, 1_208).every((byte) => byte === 0x55),
        "before the plaintext",
      );
    }
  },
});

Deno.test({
  name: "seal gives node:crypto's bytes when out overlaps the plaintext at another start",
  ignore,
  fn() {
    for (const algorithm of ALGORITHMS) {
      const key = pattern(32, 5), header = pattern(12, 6), plaintext = pattern(1000, 7);
      const native = createOpensslAead(key, algorithm), node = createNodeAead(key, algorithm);
      const expected = sealed(node, 3, header, plaintext);
      // Output 5 bytes after the plaintext's start, then 5 bytes before it, then at the same start.
      for (const [plaintextAt, outAt] of [[0, 5], [5, 0], [8, 8]]) {
        const buffer = new Uint8Array(16 + plaintext.length + TAG_BYTES);
        buffer.set(plaintext, plaintextAt);
        const view = buffer.subarray(plaintextAt, plaintextAt + plaintext.length);
        native.seal(3, header, view, buffer, outAt);
        assert.deepEqual(
          buffer.subarray(outAt, outAt + expected.length),
          expected,
          `${algorithm}, plaintext at ${plaintextAt}, out at ${outAt}`,
        );
      }
      // And open in place, the tunnel's receive path: header, ciphertext and tag in one buffer.
      const packet = new Uint8Array(header.length + expected.length);
      packet.set(header);
      packet.set(expected, header.length);
      const read = native.open(
        3,
        packet.subarray(0, header.length),
        packet.subarray(header.length),
        packet,
        header.length,
      );
      assert.equal(read, plaintext.length);
      assert.deepEqual(packet.subarray(header.length, header.length + read), plaintext);
    }
  },
});

Deno.test({
  name: "open handles datagrams larger than its first scratch buffer, then small ones again",
  ignore,
  fn() {
    for (const algorithm of ALGORITHMS) {
      const key = pattern(32, 8), header = pattern(4, 1);
      const native = createOpensslAead(key, algorithm), node = createNodeAead(key, algorithm);
      for (const plaintextBytes of [100, 65_400, 3_000, 70_000, 10]) {
        const plaintext = pattern(plaintextBytes, plaintextBytes);
        const datagram = sealed(node, plaintextBytes, header, plaintext);
        assert.deepEqual(opened(native, plaintextBytes, header, datagram, 2), plaintext);
      }
    }
  },
});

// --- Tampering ----------------------------------------------------------------------------------

Deno.test({
  name: "open refuses a tampered tag, ciphertext, header or counter and leaves out untouched",
  ignore,
  fn() {
    for (const algorithm of ALGORITHMS) {
      for (const plaintextBytes of [0, 1, 64, 1200]) {
        const key = pattern(32, 11), header = pattern(16, 12);
        const plaintext = pattern(plaintextBytes, 13);
        const native = createOpensslAead(key, algorithm);
        const datagram = sealed(createNodeAead(key, algorithm), 1_000, header, plaintext);
        const what = `${algorithm} ${plaintextBytes} B`;
        // `opened` checks that out keeps its fill whenever open fails.
        for (let bit = 0; bit < datagram.length * 8; bit += plaintextBytes > 64 ? 97 : 5) {
          const forged = datagram.slice();
          forged[bit >> 3] ^= 1 << (bit & 7);
          assert.equal(opened(native, 1_000, header, forged), undefined, `${what} bit ${bit}`);
        }
        for (let bit = 0; bit < header.length * 8; bit += 11) {
          const forgedHeader = header.slice();
          forgedHeader[bit >> 3] ^= 1 << (bit & 7);
          assert.equal(opened(native, 1_000, forgedHeader, datagram), undefined, `${what} header`);
        }
        assert.equal(opened(native, 1_000, new Uint8Array(0), datagram), undefined, what);
        for (const counter of [999, 1_001, 1_000 + 2 ** 32, 0]) {
          assert.equal(opened(native, counter, header, datagram), undefined, `${what} ${counter}`);
        }
        // The key still works after all those failures.
        assert.deepEqual(opened(native, 1_000, header, datagram), plaintext, what);
      }
    }
  },
});

Deno.test({
  name: "open never throws on hostile arguments and returns -1",
  ignore,
  fn() {
    const native = createOpensslAead(pattern(32, 1), "chacha20-poly1305");
    const out = new Uint8Array(64);
    const datagram = new Uint8Array(40);
    for (const counter of [-1, 0.5, 2 ** 53, Number.NaN, Number.NEGATIVE_INFINITY]) {
      assert.equal(native.open(counter, new Uint8Array(0), datagram, out, 0), -1, `${counter}`);
    }
    for (const outOffset of [-1, 0.5, 41, 64, Number.NaN]) {
      assert.equal(native.open(1, new Uint8Array(0), datagram, out, outOffset), -1, `${outOffset}`);
    }
    for (let length = 0; length < TAG_BYTES; length++) {
      assert.equal(native.open(1, new Uint8Array(0), datagram.subarray(0, length), out, 0), -1);
    }
  },
});

Deno.test({
  name:
    "seal throws RangeError for a bad counter or an out buffer too small, as node:crypto's does",
  ignore,
  fn() {
    for (
      const aead of [
        createOpensslAead(pattern(32, 1), "aes-256-gcm"),
        createNodeAead(new Uint8Array(32)),
      ]
    ) {
      const header = new Uint8Array(4), plaintext = new Uint8Array(10);
      for (const counter of [-1, 0.5, 2 ** 53, Number.NaN]) {
        assert.throws(
          () => aead.seal(counter, header, plaintext, new Uint8Array(26), 0),
          RangeError,
        );
      }
      for (const [outBytes, outOffset] of [[25, 0], [26, 1], [26, -1], [30, 0.5]]) {
        assert.throws(
          () => aead.seal(0, header, plaintext, new Uint8Array(outBytes), outOffset),
          RangeError,
          `${outBytes} ${outOffset}`,
        );
      }
    }
  },
});

Deno.test({
  name: "createOpensslAead rejects a key that is not 32 bytes and copies the one it is given",
  ignore,
  fn() {
    assert.throws(() => createOpensslAead(new Uint8Array(16), "chacha20-poly1305"), RangeError);
    const key = pattern(32, 4);
    const native = createOpensslAead(key, "chacha20-poly1305");
    const expected = sealed(createNodeAead(pattern(32, 4), "chacha20-poly1305"), 1, key, key);
    key.fill(0); // before the native contexts are made: the Aead must have its own copy
    assert.equal(toHex(sealed(native, 1, pattern(32, 4), pattern(32, 4))), toHex(expected));
  },
});

// --- Native memory ------------------------------------------------------------------------------

Deno.test({
  name: "a key makes its native contexts on first use, one per direction",
  ignore,
  fn() {
    const before = opensslLiveContexts();
    const native = createOpensslAead(pattern(32, 1), "chacha20-poly1305");
    assert.equal(opensslLiveContexts(), before);
    const datagram = sealed(native, 1, new Uint8Array(0), pattern(10, 1));
    sealed(native, 2, new Uint8Array(0), pattern(10, 1));
    assert.equal(opensslLiveContexts(), before + 1);
    opened(native, 1, new Uint8Array(0), datagram);
    assert.equal(opensslLiveContexts(), before + 2);
  },
});

Deno.test({
  name: "native contexts are freed when their keys are garbage-collected (3 000 sessions)",
  ignore,
  async fn() {
    const script = `
      import { createOpensslAead, opensslLiveContexts } from "${OPENSSL_MODULE_URL}";
      const header = new Uint8Array(8), plaintext = new Uint8Array(100);
      const datagram = new Uint8Array(116), out = new Uint8Array(100);
      let peak = 0;
      for (let session = 0; session < 3000; session++) {
        const key = new Uint8Array(32).fill(session & 0xff);
        const aead = createOpensslAead(key, session % 2 ? "aes-256-gcm" : "chacha20-poly1305");
        aead.seal(session, header, plaintext, datagram, 0);
        if (aead.open(session, header, datagram, out, 0) !== 100) throw new Error("open failed");
        peak = Math.max(peak, opensslLiveContexts());
      }
      for (let round = 0; round < 10 && opensslLiveContexts() > 0; round++) {
        globalThis.gc();
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      console.log(peak, opensslLiveContexts());
    `;
    const result = await runScript(script, ["--allow-ffi"], {}, ["--v8-flags=--expose-gc"]);
    assert.equal(result.code, 0, result.stderr);
    const [peak, left] = result.stdout.split(" ").map(Number);
    assert.ok(peak >= 2, `peak ${peak}`);
    assert.equal(left, 0, `contexts left after GC: ${left} (peak ${peak})`);
  },
});

Deno.test({
  name: "dispose frees the native contexts at once; the key then seals nothing and opens nothing",
  ignore,
  fn() {
    for (const make of [createOpensslAead, createNodeAead]) {
      const aead = make(new Uint8Array(32).fill(9), "chacha20-poly1305");
      const header = new Uint8Array(8), plaintext = new Uint8Array(64).fill(3);
      const datagram = new Uint8Array(64 + TAG_BYTES), out = new Uint8Array(64);
      aead.seal(1, header, plaintext, datagram, 0);
      assert.equal(aead.open(1, header, datagram, out, 0), 64);
      const before = opensslLiveContexts();
      aead.dispose();
      if (make === createOpensslAead) assert.equal(opensslLiveContexts(), before - 2, make.name);
      assert.throws(() => aead.seal(2, header, plaintext, datagram, 0), /disposed/);
      out.fill(0);
      assert.equal(aead.open(1, header, datagram, out, 0), -1, make.name);
      assert.ok(out.every((byte) => byte === 0));
      aead.dispose(); // a second time does nothing
      assert.equal(opensslLiveContexts(), before - (make === createOpensslAead ? 2 : 0));
    }
  },
});

/**
 * `symbols` with a flaw: a context keeps the first nonce it was given when only the nonce is set
 * again, as a broken or unusual libcrypto might. Every datagram would then reuse one keystream.
 */
function nonceStickyLibcrypto(symbols: Libcrypto): Libcrypto {
  const firstNonce = new Map<bigint, Uint8Array>();
  const sticky =
    (init: Libcrypto["EVP_EncryptInit_ex"]): Libcrypto["EVP_EncryptInit_ex"] =>
    (context, cipher, engine, key, nonce) => {
      const id = BigInt(Deno.UnsafePointer.value(context));
      if (cipher === null && key === null && nonce !== null) {
        const kept = firstNonce.get(id) ?? new Uint8Array(nonce as ArrayBuffer).slice();
        firstNonce.set(id, kept);
        return init(context, cipher, engine, key, kept);
      }
      firstNonce.delete(id);
      return init(context, cipher, engine, key, nonce);
    };
  return {
    ...symbols,
    EVP_EncryptInit_ex: sticky(symbols.EVP_EncryptInit_ex),
    EVP_DecryptInit_ex: sticky(symbols.EVP_DecryptInit_ex),
  };
}

Deno.test({
  name: "the load-time self-test refuses a libcrypto that ignores a new nonce",
  ignore,
  fn() {
    const symbols = loadedLibcrypto()!;
    assert.equal(selfTest(symbols), undefined);
    assert.match(selfTest(nonceStickyLibcrypto(symbols)) ?? "passed", /nonce/);
  },
});

// --- Which implementation createAead uses -------------------------------------------------------

/** Prints aeadImplementation() and whether createAead made an OpensslAead. */
const CHOICE_SCRIPT = `
  import { aeadImplementation, createAead } from "${CRYPTO_MODULE_URL}";
  import { OpensslAead } from "${OPENSSL_MODULE_URL}";
  console.log(aeadImplementation(), createAead(new Uint8Array(32)) instanceof OpensslAead);
`;
const ENV_PERMISSION = `--allow-env=${AEAD_IMPLEMENTATION_ENV_VAR}`;

Deno.test({
  name: "createAead uses OpenSSL by default where it is available",
  ignore,
  async fn() {
    const result = await runScript(CHOICE_SCRIPT, ["--allow-ffi", ENV_PERMISSION], {
      [AEAD_IMPLEMENTATION_ENV_VAR]: "",
    });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "openssl true");
    assert.equal(result.stderr, "");
  },
});

Deno.test("MPTUNNEL_CRYPTO=node makes createAead use node:crypto even with FFI", async () => {
  const result = await runScript(CHOICE_SCRIPT, ["--allow-ffi", ENV_PERMISSION], {
    [AEAD_IMPLEMENTATION_ENV_VAR]: "node",
  });
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, "node false");
  assert.equal(result.stderr, "");
});

Deno.test("without --allow-ffi createAead falls back to node:crypto silently", async () => {
  const result = await runScript(CHOICE_SCRIPT, [ENV_PERMISSION], {
    [AEAD_IMPLEMENTATION_ENV_VAR]: "",
  });
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, "node false");
  assert.equal(result.stderr, "");
});

Deno.test("MPTUNNEL_CRYPTO=openssl without --allow-ffi falls back with a warning saying why", async () => {
  const result = await runScript(CHOICE_SCRIPT, [ENV_PERMISSION], {
    [AEAD_IMPLEMENTATION_ENV_VAR]: "openssl",
  });
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, "node false");
  assert.match(result.stderr, /MPTUNNEL_CRYPTO=openssl: unavailable \(no --allow-ffi\)/);
});

Deno.test("MPTUNNEL_CRYPTO is not read without permission for it, and nothing prompts", async () => {
  const result = await runScript(CHOICE_SCRIPT, ["--no-prompt"], {
    [AEAD_IMPLEMENTATION_ENV_VAR]: "openssl",
  });
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, "node false");
  assert.equal(result.stderr, "");
});

Deno.test("an unknown MPTUNNEL_CRYPTO value is ignored with a warning", async () => {
  const result = await runScript(CHOICE_SCRIPT, [ENV_PERMISSION], {
    [AEAD_IMPLEMENTATION_ENV_VAR]: "wolfssl",
  });
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, "node false");
  assert.match(result.stderr, /MPTUNNEL_CRYPTO=wolfssl is not "openssl" or "node"; ignored/);
});
