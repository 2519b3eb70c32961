/**
 * Durations, rates and percentages as the configuration language and the flags write them. Durations
 * and rates always carry a unit (`500ms`, `20mbit`), so that `--delay 5` cannot silently mean five
 * milliseconds to one reader and five seconds to another; percentages are plain numbers (`0.1`).
 *
 * Parsing never throws: it returns the value or a message saying what was expected, so that callers
 * can name the file and line, or the flag, of a mistake.
 */

import type { Parsed } from "./address.ts";

/** Milliseconds in one of each duration unit, largest first (the order compound durations use). */
const MS_PER_DURATION_UNIT: ReadonlyArray<readonly [unit: string, ms: number]> = [
  ["h", 3_600_000],
  ["m", 60_000],
  ["s", 1_000],
  ["ms", 1],
];

/**
 * Bits per second in one of each rate unit, spelt as Linux `tc` spells them: `k`, `m`, `g`, `t` are
 * powers of 1000 and `ki`, `mi`, `gi`, `ti` powers of 1024. Largest first, for formatting.
 */
const BITS_PER_SECOND_PER_RATE_UNIT: ReadonlyArray<readonly [unit: string, bits: number]> = [
  ["tbit", 1e12],
  ["gbit", 1e9],
  ["mbit", 1e6],
  ["kbit", 1e3],
  ["bit", 1],
  ["tibit", 2 ** 40],
  ["gibit", 2 ** 30],
  ["mibit", 2 ** 20],
  ["kibit", 2 ** 10],
];

/** The units formatRate writes: decimal ones only, as people usually quote link speeds. */
const DECIMAL_RATE_UNIT_COUNT = 5;

/**
 * `tc` reads `bps` units as BYTES per second, most people read `mbps` as megabits: either reading
 * would surprise someone, so these spellings are refused with the two possible meanings spelt out.
 */
const AMBIGUOUS_BYTE_RATE_UNITS: Readonly<Record<string, string>> = {
  bps: "bit",
  kbps: "kbit",
  mbps: "mbit",
  gbps: "gbit",
  tbps: "tbit",
};

const DECIMAL = String.raw`(?:\d+(?:\.\d+)?|\.\d+)`;
const PLAIN_NUMBER_PATTERN = new RegExp(`^${DECIMAL}$`);
const DURATION_PATTERN = new RegExp(`^(?:${DECIMAL}(?:ms|s|m|h))+$`);
const DURATION_PART_PATTERN = new RegExp(`(${DECIMAL})(ms|s|m|h)`, "g");
const RATE_PATTERN = new RegExp(`^(${DECIMAL})([A-Za-z]+)$`);

const DURATION_EXAMPLES = "such as 500ms, 2s, 1m30s or 1h";
const RATE_EXAMPLES = "such as 500kbit, 20mbit or 1gbit";

/**
 * Parses a duration into milliseconds. Units are `ms`, `s`, `m` (minutes) and `h`; fractions are
 * allowed (`1.5s` is 1500), and parts may be combined from the largest unit down (`1m30s`, `2s250ms`).
 * A bare number is refused because its unit would be a guess.
 *
 * @example
 * ```ts
 * import { parseDuration } from "./units.ts";
 * const parsed = parseDuration("1m30s");
 * if (parsed.ok) console.log(parsed.value); // 90000
 * ```
 */
export function parseDuration(text: string): Parsed<number> {
  if (PLAIN_NUMBER_PATTERN.test(text)) {
    return { ok: false, error: `"${text}" needs a unit: write "${text}ms" or "${text}s"` };
  }
  const refused: Parsed<number> = {
    ok: false,
    error: `expected a duration ${DURATION_EXAMPLES}, got "${text}"`,
  };
  if (!DURATION_PATTERN.test(text)) return refused;
  let totalMs = 0;
  let smallestUnitSoFar = -1;
  for (const [, amount, unit] of text.matchAll(DURATION_PART_PATTERN)) {
    const unitIndex = MS_PER_DURATION_UNIT.findIndex(([name]) => name === unit);
    // Each unit once, largest first: "30s1m" and "1s1s" are more likely slips than intentions.
    if (unitIndex <= smallestUnitSoFar) return refused;
    smallestUnitSoFar = unitIndex;
    totalMs += Number(amount) * MS_PER_DURATION_UNIT[unitIndex][1];
  }
  return { ok: true, value: totalMs };
}

/**
 * Formats milliseconds in the largest unit that holds them whole (`2s`, `1500ms`, `1m`), so that
 * {@link parseDuration} reads the result back to the same value.
 */
export function formatDuration(ms: number): string {
  for (const [unit, msPerUnit] of MS_PER_DURATION_UNIT) {
    if (ms !== 0 && ms % msPerUnit === 0) return `${ms / msPerUnit}${unit}`;
  }
  return `${ms}ms`;
}

/**
 * Parses a rate into bits per second, in the spelling of Linux `tc`: `bit`, `kbit`, `mbit`, `gbit`,
 * `tbit` (powers of 1000) and `kibit`, `mibit`, `gibit`, `tibit` (powers of 1024), case-insensitive
 * (`20Mbit`). The byte spellings `kbps`, `mbps`… are refused as ambiguous: `tc` reads them as BYTES
 * per second, most people as bits. The rate must be above zero.
 *
 * @example
 * ```ts
 * import { parseRate } from "./units.ts";
 * const parsed = parseRate("20mbit");
 * if (parsed.ok) console.log(parsed.value); // 20000000
 * ```
 */
export function parseRate(text: string): Parsed<number> {
  if (PLAIN_NUMBER_PATTERN.test(text)) {
    return { ok: false, error: `"${text}" needs a unit: write "${text}mbit" or "${text}kbit"` };
  }
  const match = RATE_PATTERN.exec(text);
  if (match === null) {
    return { ok: false, error: `expected a rate ${RATE_EXAMPLES}, got "${text}"` };
  }
  const [, amount, unitAsWritten] = match;
  const unit = unitAsWritten.toLowerCase();
  const bitUnit = AMBIGUOUS_BYTE_RATE_UNITS[unit];
  if (bitUnit !== undefined) {
    return {
      ok: false,
      error: `"${text}" is ambiguous (tc reads ${unitAsWritten} as bytes per second, most people ` +
        `as bits): write "${amount}${bitUnit}" or "${Number(amount) * 8}${bitUnit}"`,
    };
  }
  const entry = BITS_PER_SECOND_PER_RATE_UNIT.find(([name]) => name === unit);
  if (entry === undefined) {
    return { ok: false, error: `expected a rate ${RATE_EXAMPLES}, got "${text}"` };
  }
  const bitsPerSecond = Number(amount) * entry[1];
  if (bitsPerSecond <= 0) return { ok: false, error: `a rate must be above zero, got "${text}"` };
  return { ok: true, value: bitsPerSecond };
}

/**
 * Formats bits per second in the largest decimal unit that keeps the number at least 1 (`20mbit`,
 * `1.5mbit`, `800bit`), so that {@link parseRate} reads the result back to the same value.
 */
export function formatRate(bitsPerSecond: number): string {
  const decimalUnits = BITS_PER_SECOND_PER_RATE_UNIT.slice(0, DECIMAL_RATE_UNIT_COUNT);
  const [unit, bitsPerUnit] = decimalUnits.find(([, bits]) => bitsPerSecond >= bits) ??
    ["bit", 1];
  // toPrecision trims float noise such as 1.5000000000000002 without rounding real digits away.
  return `${Number((bitsPerSecond / bitsPerUnit).toPrecision(15))}${unit}`;
}

/**
 * Parses a percentage written as a plain number from 0 to 100 inclusive (`0.1`, `5`, `100`). A `%`
 * sign is refused with a hint, so that every percentage is written the same way.
 *
 * @example
 * ```ts
 * import { parsePercent } from "./units.ts";
 * const parsed = parsePercent("0.5");
 * if (parsed.ok) console.log(parsed.value); // 0.5
 * ```
 */
export function parsePercent(text: string): Parsed<number> {
  if (text.endsWith("%") && PLAIN_NUMBER_PATTERN.test(text.slice(0, -1))) {
    return { ok: false, error: `write percentages without "%": ${text.slice(0, -1)}` };
  }
  if (!PLAIN_NUMBER_PATTERN.test(text)) {
    return { ok: false, error: `expected a percentage such as 0.1 or 5, got "${text}"` };
  }
  const percent = Number(text);
  if (percent > 100) {
    return { ok: false, error: `a percentage must be from 0 to 100, got "${text}"` };
  }
  return { ok: true, value: percent };
}
