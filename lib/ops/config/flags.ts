/**
 * Keywords as command-line flags: each keyword is a `--keyword` string option of `parseArgs`, and the
 * flags given are applied over the file's settings by the same row that reads the file's line.
 */

import type { Mutable } from "./settings.ts";
import { checkWordCount, type KeywordRule } from "./keyword_rule.ts";
import { ConfigError, splitWords } from "./reader.ts";

/** Option declarations for `node:util` `parseArgs`, one string flag per keyword. */
export type FlagOptions = Readonly<
  Record<string, { readonly type: "string"; readonly multiple: boolean }>
>;

/** One `parseArgs` string option per keyword; a repeatable keyword may be given many times. */
export function flagOptionsOf<Config>(rules: readonly KeywordRule<Config>[]): FlagOptions {
  return Object.freeze(Object.fromEntries(
    rules.map((rule) => [rule.keyword, { type: "string", multiple: rule.repeatable }] as const),
  ));
}

/** What `parseArgs` gives for options; only keyword flags are read, the rest are ignored. */
export type FlagValues = Readonly<
  Record<string, string | boolean | readonly (string | boolean)[] | undefined>
>;

/**
 * Applies the keyword flags in `flags` over `config`: each is checked and applied by its keyword's
 * row, and a flag's value (a repeatable keyword's whole list) replaces the file's.
 */
export function applyFlags<Config>(
  config: Config,
  flags: FlagValues,
  rules: readonly KeywordRule<Config>[],
  empty: Config,
): Mutable<Config> {
  const merged: Mutable<Config> = { ...config };
  const fromFlags: Mutable<Config> = { ...empty };
  const firstLines = new Map<string, number>();
  for (const rule of rules) {
    const given = flags[rule.keyword];
    if (given === undefined) continue;
    const values = typeof given === "object" ? given : [given];
    if (values.length === 0) continue;
    const flag = `--${rule.keyword}`;
    if (!rule.repeatable && values.length > 1) {
      throw new ConfigError(`${flag}: given more than once; give it once`);
    }
    for (const value of values) {
      if (typeof value !== "string") {
        throw new TypeError(`${flag} must be declared as a string option, got ${typeof value}`);
      }
      const words = splitWords(value);
      const problem = checkWordCount(rule, words, `${flag} ${rule.valueWords}`, true) ??
        rule.apply(fromFlags, words, { line: 0, firstLines });
      if (problem !== undefined) throw new ConfigError(`${flag}: ${problem}`);
    }
    // The command line wins: its value (its whole list, if repeatable) replaces the file's.
    merged[rule.field] = fromFlags[rule.field];
  }
  return merged;
}
