/**
 * How a keyword is declared (one row: its words, its `--help` summary, its parser) and how a file's
 * lines are applied through the rows: word counts checked, a keyword given twice refused, every
 * mistake a {@link ConfigError} naming the file and line.
 */

import type { Parsed } from "../../base/address.ts";
import type { Mutable } from "./settings.ts";
import { ConfigError, wordLines } from "./reader.ts";

/** Where the words being applied came from: a line of a file, or a flag (line 0). */
export interface Origin {
  readonly line: number;
  /** First line (0 for a flag) of each thing that must be unique, keyed like `target:dns`. */
  readonly firstLines: Map<string, number>;
}

/** Where a thing was first given, for "already given …" messages. */
export function earlier(line: number): string {
  return line > 0 ? `on line ${line}` : "earlier on the command line";
}

/** One keyword: its words, what it means, and how it changes the configuration being built. */
export interface KeywordRule<Config> {
  readonly keyword: string;
  /** The words after the keyword, for messages and `--help` (`HOST:PORT`). */
  readonly valueWords: string;
  readonly summary: string;
  /** The configuration field this keyword sets, which a flag of the same name replaces. */
  readonly field: keyof Config & string;
  readonly repeatable: boolean;
  readonly minWords: number;
  readonly maxWords: number;
  /** Applies the words after the keyword; returns what was wrong, or undefined. */
  readonly apply: (
    config: Mutable<Config>,
    words: readonly string[],
    origin: Origin,
  ) => string | undefined;
}

/** A keyword that sets one field once, from `wordCount` words. */
export function setting<Config, Field extends keyof Config & string>(
  keyword: string,
  field: Field,
  valueWords: string,
  summary: string,
  parse: (words: readonly string[]) => Parsed<NonNullable<Config[Field]>>,
  wordCount = 1,
): KeywordRule<Config> {
  return {
    keyword,
    valueWords,
    summary,
    field,
    repeatable: false,
    minWords: wordCount,
    maxWords: wordCount,
    apply(config, words) {
      const parsed = parse(words);
      if (!parsed.ok) return parsed.error;
      config[field] = parsed.value;
    },
  };
}

/** A keyword that may repeat, each line adding one entry. */
export function repeated<Config>(
  rule: Omit<KeywordRule<Config>, "repeatable" | "maxWords"> & { readonly maxWords?: number },
): KeywordRule<Config> {
  return { ...rule, repeatable: true, maxWords: rule.maxWords ?? rule.minWords };
}

/** The rows indexed by their keyword, for looking up a line's first word. */
export function byKeyword<Config>(
  rules: readonly KeywordRule<Config>[],
): ReadonlyMap<string, KeywordRule<Config>> {
  return new Map(rules.map((rule) => [rule.keyword, rule]));
}

/** Checks the number of words after a keyword; a flag's message does not repeat the keyword. */
export function checkWordCount<Config>(
  rule: KeywordRule<Config>,
  words: readonly string[],
  usage: string,
  isFlag: boolean,
): string | undefined {
  const expected = `expected "${usage}"`;
  if (words.length === 0 && rule.minWords > 0) {
    return isFlag ? `missing value; ${expected}` : `${rule.keyword} needs a value; ${expected}`;
  }
  if (words.length < rule.minWords) {
    return isFlag
      ? `incomplete value "${words.join(" ")}"; ${expected}`
      : `${rule.keyword} is incomplete; ${expected}`;
  }
  if (words.length > rule.maxWords) {
    const accepted = [...(isFlag ? [] : [rule.keyword]), ...words.slice(0, rule.maxWords)];
    return `unexpected "${words[rule.maxWords]}" after "${accepted.join(" ")}"; ${expected}`;
  }
}

/**
 * Applies every line of a file's text to `config`: keyword lines through their rows, any other line
 * through `otherLine`. Throws a {@link ConfigError} (`FILE:LINE: …`) at the first mistake; returns
 * the first line of each keyword and unique thing, for checks made after the whole file.
 */
export function parseFile<Config>(
  text: string,
  fileName: string,
  rules: ReadonlyMap<string, KeywordRule<Config>>,
  config: Mutable<Config>,
  otherLine: (words: readonly string[], origin: Origin) => string | undefined,
): Map<string, number> {
  const firstLines = new Map<string, number>();
  for (const { line, words } of wordLines(text)) {
    const origin: Origin = { line, firstLines };
    const fail = (problem: string) => new ConfigError(`${fileName}:${line}: ${problem}`);
    const rule = rules.get(words[0]);
    if (rule === undefined) {
      const problem = otherLine(words, origin);
      if (problem !== undefined) throw fail(problem);
      continue;
    }
    const valueWords = words.slice(1);
    const usage = `${rule.keyword} ${rule.valueWords}`;
    const problem = checkWordCount(rule, valueWords, usage, false);
    if (problem !== undefined) throw fail(problem);
    const firstLine = firstLines.get(rule.keyword);
    if (!rule.repeatable && firstLine !== undefined) {
      throw fail(`${rule.keyword} is already set on line ${firstLine}; give it once`);
    }
    if (firstLine === undefined) firstLines.set(rule.keyword, line);
    const applyProblem = rule.apply(config, valueWords, origin);
    if (applyProblem !== undefined) throw fail(applyProblem);
  }
  return firstLines;
}
