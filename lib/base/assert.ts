/** Exhaustiveness checks for switches over unions. */

/** Marks a branch the type checker proves unreachable; throws if it is reached anyway (a bug). */
export function assertNever(value: never): never {
  throw new Error(`unhandled case: ${JSON.stringify(value)}`);
}
