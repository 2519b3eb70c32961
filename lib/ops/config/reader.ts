/**
 * Reading a configuration file's text: UTF-8 from disk, comments dropped, lines split into words
 * with their line numbers; and reporting a mistake: {@link ConfigError}, with a "did you mean"
 * for a misspelt keyword.
 */

import { UsageError } from "../../base/usage_error.ts";

const BYTE_ORDER_MARK = "\uFEFF";

/** A mistake in a configuration file or flag: `FILE:LINE: message` or `--flag: message`, exit 2. */
export class ConfigError extends UsageError {
  override name = "ConfigError";
}

/** The words of a line: runs of anything but spaces, tabs and carriage returns. */
export function splitWords(text: string): string[] {
  return text.split(/[ \t\r]+/).filter((word) => word !== "");
}

/** The non-blank lines of a file, comments removed, split into words, with 1-based line numbers. */
export function* wordLines(text: string): Generator<{ line: number; words: string[] }> {
  const body = text.startsWith(BYTE_ORDER_MARK) ? text.slice(1) : text;
  const lines = body.split("\n");
  for (let index = 0; index < lines.length; index++) {
    const hash = lines[index].indexOf("#");
    const words = splitWords(hash < 0 ? lines[index] : lines[index].slice(0, hash));
    if (words.length > 0) yield { line: index + 1, words };
  }
}

/** Optimal string alignment distance: edits, counting a swap of neighbours as one. */
function editDistance(a: string, b: string): number {
  const rows = Array.from(
    { length: a.length + 1 },
    (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      rows[i][j] = Math.min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        rows[i][j] = Math.min(rows[i][j], rows[i - 2][j - 2] + 1);
      }
    }
  }
  return rows[a.length][b.length];
}

/** The keyword `word` is most likely a misspelling of, if any is within `maxDistance` edits. */
export function closestKeyword(
  word: string,
  keywords: readonly string[],
  maxDistance: number,
): string | undefined {
  let best: string | undefined;
  let bestDistance = maxDistance + 1;
  for (const keyword of keywords) {
    const distance = editDistance(word.toLowerCase(), keyword);
    if (distance < bestDistance) [best, bestDistance] = [keyword, distance];
  }
  return best;
}

/** The message for a first word that is no keyword, with a suggestion when one is close. */
export function unknownKeyword(
  word: string,
  keywords: readonly string[],
  alternative: string,
): string {
  const suggestion = closestKeyword(word, keywords, 2);
  const hint = suggestion === undefined ? "" : ` (did you mean "${suggestion}"?)`;
  return `unknown keyword "${word}"${hint}; expected ${keywords.join(", ")}${alternative}`;
}

function describeReadError(error: unknown): string {
  if (error instanceof Deno.errors.NotFound) return "no such file";
  if (error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotCapable) {
    return "permission denied";
  }
  if (error instanceof Deno.errors.IsADirectory) return "it is a directory";
  return error instanceof Error ? error.message : String(error);
}

/** Reads a configuration file as UTF-8; a failure names the file (and the line, for bad UTF-8). */
export async function readConfigText(path: string): Promise<string> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    throw new ConfigError(
      `${path}: cannot read the configuration file (${describeReadError(error)})`,
    );
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    // Decode line by line to say where the bad bytes are.
    const decoder = new TextDecoder("utf-8", { fatal: true });
    let line = 1;
    let start = 0;
    for (let index = 0; index <= bytes.length; index++) {
      if (index < bytes.length && bytes[index] !== 0x0a) continue;
      try {
        decoder.decode(bytes.subarray(start, index));
      } catch {
        break;
      }
      line++;
      start = index + 1;
    }
    throw new ConfigError(`${path}:${line}: not valid UTF-8; save the file as UTF-8`);
  }
}
