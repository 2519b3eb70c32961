/**
 * Loading the shared secret from a file or the environment, the errors a user sees when it is missing
 * or weak, and `keygen`'s secrets.
 */
import assert from "node:assert/strict";
import { UsageError } from "../../lib/base/usage_error.ts";
import { deriveSecretKeys, type SecretKeys } from "../../lib/crypto/handshake.ts";
import { generateSecret, loadSecret, SECRET_ENV_VAR } from "../../lib/crypto/secret.ts";

const GOOD_SECRET = "9vQmT2xKpL4rWz7bNc1dFh8jSg5aYe3u";

/** An environment that holds only `MPTUNNEL_SECRET` = `secret`. */
function environmentWith(secret: string | undefined) {
  return (name: string) => (name === SECRET_ENV_VAR ? secret : undefined);
}

/** Runs `body` with a temporary file holding `text`, removed afterwards. */
async function withSecretFile(text: string, body: (path: string) => Promise<void>): Promise<void> {
  const path = await Deno.makeTempFile({ prefix: "mptunnel-secret-" });
  try {
    await Deno.writeTextFile(path, text);
    await body(path);
  } finally {
    await Deno.remove(path);
  }
}

function assertSameKeys(actual: SecretKeys, expected: SecretKeys): void {
  assert.deepEqual(actual.macKey, expected.macKey);
  assert.deepEqual(actual.keySalt, expected.keySalt);
}

/** The UsageError `promise` rejects with. */
async function usageError(promise: Promise<unknown>): Promise<UsageError> {
  const error = await promise.then(() => undefined, (error: unknown) => error);
  assert.ok(error instanceof UsageError, `expected a UsageError, got ${error}`);
  return error;
}

// ---------------------------------------------------------------------------------------------------
// loadSecret

Deno.test("loadSecret reads a secret file, trailing newline and all", async () => {
  await withSecretFile(`${GOOD_SECRET}\n`, async (path) => {
    const loaded = await loadSecret(path, environmentWith(undefined));
    assert.equal(loaded?.source, "file");
    assertSameKeys(loaded!.keys, deriveSecretKeys(GOOD_SECRET));
  });
});

Deno.test("loadSecret prefers the file to the environment", async () => {
  await withSecretFile(GOOD_SECRET, async (path) => {
    const loaded = await loadSecret(path, environmentWith("a different but strong secret 123"));
    assert.equal(loaded?.source, "file");
    assertSameKeys(loaded!.keys, deriveSecretKeys(GOOD_SECRET));
  });
});

Deno.test("loadSecret reads MPTUNNEL_SECRET from the environment it is given", async () => {
  const loaded = await loadSecret(undefined, environmentWith(GOOD_SECRET));
  assert.equal(loaded?.source, "environment");
  assertSameKeys(loaded!.keys, deriveSecretKeys(GOOD_SECRET));
});

Deno.test("loadSecret asks the environment for MPTUNNEL_SECRET and nothing else", async () => {
  const asked: string[] = [];
  await loadSecret(undefined, (name) => {
    asked.push(name);
    return undefined;
  });
  assert.deepEqual(asked, ["MPTUNNEL_SECRET"]);
});

Deno.test("loadSecret gives undefined when neither a file nor the environment has a secret", async () => {
  assert.equal(await loadSecret(undefined, environmentWith(undefined)), undefined);
});

Deno.test("loadSecret names a missing secret file in its error", async () => {
  const path = `${await Deno.makeTempDir({ prefix: "mptunnel-secret-" })}`;
  try {
    const missing = `${path}/no-such-secret`;
    const error = await usageError(loadSecret(missing, environmentWith(GOOD_SECRET)));
    assert.ok(
      error.message.startsWith(`cannot read the secret file ${missing}: `),
      error.message,
    );
  } finally {
    await Deno.remove(path, { recursive: true });
  }
});

Deno.test("loadSecret names the file a weak secret came from", async () => {
  await withSecretFile("hunter2\n", async (path) => {
    const error = await usageError(loadSecret(path, environmentWith(undefined)));
    assert.ok(error.message.startsWith(`${path}: the secret is 7 characters long`), error.message);
  });
});

Deno.test("loadSecret names MPTUNNEL_SECRET when the weak secret came from the environment", async () => {
  const error = await usageError(loadSecret(undefined, environmentWith("aaaaaaaaaaaaaaaaaaaa")));
  assert.ok(error.message.startsWith("MPTUNNEL_SECRET: "), error.message);
  assert.ok(error.message.includes("distinct characters"), error.message);
});

Deno.test("loadSecret refuses an empty secret file", async () => {
  await withSecretFile("\n", async (path) => {
    const error = await usageError(loadSecret(path, environmentWith(undefined)));
    assert.equal(error.message, `${path}: the secret is empty`);
  });
});

Deno.test("loadSecret refuses an empty MPTUNNEL_SECRET rather than running without a secret", async () => {
  const error = await usageError(loadSecret(undefined, environmentWith("")));
  assert.equal(error.message, "MPTUNNEL_SECRET: the secret is empty");
});

// ---------------------------------------------------------------------------------------------------
// generateSecret

Deno.test("generateSecret gives 43 base64url characters", () => {
  const secret = generateSecret();
  assert.match(secret, /^[A-Za-z0-9_-]{43}$/);
});

Deno.test("generateSecret encodes 32 bytes", () => {
  const base64 = generateSecret().replaceAll("-", "+").replaceAll("_", "/") + "=";
  assert.equal(atob(base64).length, 32);
});

Deno.test("generateSecret differs each call", () => {
  const secrets = new Set(Array.from({ length: 100 }, () => generateSecret()));
  assert.equal(secrets.size, 100);
});
