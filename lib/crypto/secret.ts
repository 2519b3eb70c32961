/**
 * Where the shared secret comes from: a file (`--secret-file`) or the `MPTUNNEL_SECRET` environment
 * variable, never a command-line argument (which `ps` shows to everyone). And `keygen`.
 */

import { UsageError } from "../base/usage_error.ts";
import { randomBytes } from "./primitives.ts";
import { deriveSecretKeys, type SecretKeys, secretWeakness } from "./handshake.ts";

/** The environment variable that may hold the secret. */
export const SECRET_ENV_VAR = "MPTUNNEL_SECRET";

/** Where the secret was found, for the start-up log line. */
export type SecretSource = "file" | "environment";

/**
 * Loads the secret from `secretFile` or the environment; undefined when neither is set. A weak,
 * empty or unreadable secret is a {@link UsageError}.
 */
export async function loadSecret(
  secretFile: string | undefined,
  environment: (name: string) => string | undefined = (name) => Deno.env.get(name),
): Promise<{ keys: SecretKeys; source: SecretSource } | undefined> {
  let text: string;
  let source: SecretSource;
  if (secretFile !== undefined) {
    try {
      text = await Deno.readTextFile(secretFile);
    } catch (error) {
      throw new UsageError(
        `cannot read the secret file ${secretFile}: ${(error as Error).message}`,
      );
    }
    source = "file";
  } else {
    const fromEnvironment = environment(SECRET_ENV_VAR);
    if (fromEnvironment === undefined) return undefined;
    text = fromEnvironment;
    source = "environment";
  }
  const weakness = secretWeakness(text);
  if (weakness) {
    throw new UsageError(`${source === "file" ? secretFile : SECRET_ENV_VAR}: ${weakness}`);
  }
  return { keys: deriveSecretKeys(text), source };
}

/** A fresh random secret: 32 bytes, base64url (43 characters). */
export function generateSecret(): string {
  const bytes = randomBytes(32);
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_").replace(
    /=+$/,
    "",
  );
}
