/** Byte helpers and seeded randomness shared by the SOCKS5 codec tests. */
import { type Random, seededRandom } from "../../lib/base/rng.ts";

/** Bytes from hex pairs and quoted ASCII strings: `bytes("01 04", "'user'")`. */
export function bytes(...parts: string[]): Uint8Array {
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

/** Bytes as space-separated hex pairs, for messages. */
export function hex(data: Uint8Array): string {
  return Array.from(data, (byte) => byte.toString(16).padStart(2, "0")).join(" ");
}

/** The parts one after another, in a new array. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Runs `body` with a seeded generator and names the seed in any failure. */
export function withSeed(seed: number, body: (random: Random) => void): void {
  try {
    body(seededRandom(seed));
  } catch (error) {
    if (error instanceof Error) error.message = `[seed ${seed}] ${error.message}`;
    throw error;
  }
}

/** `length` bytes from `random`. */
export function randomBytes(random: Random, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let index = 0; index < length; index++) out[index] = random.below(256);
  return out;
}
