/**
 * A path line of the client file, `HOST PORT [option…]`: a bridge or the server itself, with its
 * name, weight, backup flag, source address or device, and rate.
 */

import { isIPv4Literal, isIPv6Literal, type Parsed, parseHost } from "../../base/address.ts";
import { parseRate } from "../../base/units.ts";
import type { Mutable, PathSpec } from "./settings.ts";
import { accept, parseHostAndPort, parseName, refuse } from "./values.ts";

const MIN_PATH_WEIGHT = 1;
const MAX_PATH_WEIGHT = 1000;

/** What a path option reads: its value word (absent for `backup`) into the path being built. */
interface PathOption {
  readonly valueName?: string;
  readonly apply: (path: Mutable<PathSpec>, value: string) => string | undefined;
}

const PATH_OPTIONS: ReadonlyMap<string, PathOption> = new Map<string, PathOption>([
  ["name", {
    valueName: "NAME",
    apply(path, value) {
      const name = parseName(value, "path name");
      if (!name.ok) return name.error;
      path.name = name.value;
    },
  }],
  ["weight", {
    valueName: "N",
    apply(path, value) {
      const weight = Number(value);
      if (!/^\d+$/.test(value) || weight < MIN_PATH_WEIGHT || weight > MAX_PATH_WEIGHT) {
        return `expected a weight from ${MIN_PATH_WEIGHT} to ${MAX_PATH_WEIGHT}, got "${value}"`;
      }
      path.weight = weight;
    },
  }],
  ["backup", {
    apply(path) {
      path.backup = true;
    },
  }],
  ["from", {
    valueName: "ADDRESS",
    apply(path, value) {
      const address = parseHost(value);
      if (!address.ok || !(isIPv4Literal(address.value) || isIPv6Literal(address.value))) {
        return `expected a local IP address after from, got "${value}"`;
      }
      path.fromAddress = address.value;
    },
  }],
  ["dev", {
    valueName: "INTERFACE",
    apply(path, value) {
      path.device = value;
    },
  }],
  ["rate", {
    valueName: "RATE",
    apply(path, value) {
      const rate = parseRate(value);
      if (!rate.ok) return rate.error;
      path.rateBitsPerSecond = rate.value;
    },
  }],
]);

const PATH_OPTION_LIST = [...PATH_OPTIONS.keys()].join(", ").replace(/, (\w+)$/, " or $1");

/**
 * Parses the words of a path line, `HOST PORT [option…]`, as the file writes it (and as a program
 * may take it from its positional arguments). `line` is recorded in the result (0 for none).
 *
 * @example
 * ```ts
 * import { parsePathWords } from "./path_line.ts";
 * const parsed = parsePathWords(["[::1]", "4001", "name", "lte", "backup"], 0);
 * if (parsed.ok) console.log(parsed.value.host, parsed.value.backup); // ::1 true
 * ```
 */
export function parsePathWords(words: readonly string[], line: number): Parsed<PathSpec> {
  if (words.length === 0) return refuse(`expected a path "HOST PORT [option…]"`);
  const address = parseHostAndPort(words[0], words[1]);
  if (!address.ok) return address;
  const path: Mutable<PathSpec> = {
    host: address.value.hostname,
    port: address.value.port,
    weight: 1,
    backup: false,
    line,
  };
  const given = new Set<string>();
  for (let index = 2; index < words.length; index++) {
    const optionName = words[index];
    const option = PATH_OPTIONS.get(optionName);
    if (option === undefined) {
      return refuse(`unknown path option "${optionName}"; expected ${PATH_OPTION_LIST}`);
    }
    if (given.has(optionName)) return refuse(`${optionName} is given twice on this path`);
    given.add(optionName);
    let value = "";
    if (option.valueName !== undefined) {
      if (index + 1 >= words.length) {
        return refuse(`${optionName} needs a value; expected "${optionName} ${option.valueName}"`);
      }
      value = words[++index];
    }
    const problem = option.apply(path, value);
    if (problem !== undefined) return refuse(problem);
  }
  if (path.fromAddress !== undefined && path.device !== undefined) {
    return refuse(`a path takes from or dev, not both`);
  }
  return accept(path);
}
