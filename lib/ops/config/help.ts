/** The keywords as `--help` lists them: each one's words, summary and whether it repeats. */

import type { KeywordRule } from "./keyword_rule.ts";

/** One keyword (and flag) as `--help` describes it. */
export interface KeywordHelp {
  readonly keyword: string;
  /** The words after the keyword, such as `[HOST:]PORT`. */
  readonly valueWords: string;
  readonly summary: string;
  /** Whether the keyword may be given more than once (each adds an entry). */
  readonly repeatable: boolean;
}

/** The `--help` view of keyword rows, in their order, frozen. */
export function helpOf<Config>(rules: readonly KeywordRule<Config>[]): readonly KeywordHelp[] {
  return Object.freeze(
    rules.map(({ keyword, valueWords, summary, repeatable }) =>
      Object.freeze({ keyword, valueWords, summary, repeatable })
    ),
  );
}
