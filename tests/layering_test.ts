/**
 * The house rules of `lib/`, read from the source: every import points down the layers (or stays
 * in its folder), the engines stay free of I/O and of the config parser, the client's and the
 * server's engines never lean on each other, nothing imports in a circle, and a file past 600 lines
 * says why it reads best whole. Each rule is a pure checker over `{ path, text }` modules, so each
 * test first plants a violation in made-up modules and asserts the checker catches it — a checker
 * that can no longer fail fails its own test.
 *
 * Imports are found by pattern, not by a parser: static `import … from`, `import "…"`,
 * `export … from` at the start of a line, `import("…")`, and `new URL("…", import.meta.url)`,
 * with comments removed first (so a JSDoc `@example` import does not count).
 */

import assert from "node:assert/strict";

/** Layers, bottom to top: a module may import only from a lower rank, or from its own folder. */
const LAYER_RANKS: ReadonlyMap<string, number> = new Map([
  ["base", 0],
  ["wire", 1],
  ["crypto", 2],
  ["fec", 2],
  ["path", 3],
  ["session", 4],
  ["io", 5],
  ["uplink", 5],
  ["driver", 6],
  ["bridge", 6],
  // The SOCKS5 front end is one of the client driver's listeners, built on io only: above io, below the drivers.
  ["socks5", 5.5],
  ["ops", 7],
  ["cli", 8],
]);
/** The sans-I/O protocol core: no `Deno.*`, no sockets, no config parser. */
const ENGINE_FOLDERS: ReadonlySet<string> = new Set(["wire", "fec", "path", "session"]);
/** Modules that are sockets, which an engine never touches. */
const SOCKET_MODULES: ReadonlySet<string> = new Set(["node:dgram", "node:net", "node:http"]);
const MAX_LINES = 600;
/** The phrase a long file's top comment uses to say why it is not split. */
const WHOLE_FILE_MARKER = "reads best whole:";

/** A source file: its path from the repository root (`lib/wire/messages.ts`) and its text. */
interface Module {
  readonly path: string;
  readonly text: string;
}

/** One import of a module: what it wrote, and the repository path it names (if relative). */
interface Import {
  readonly from: string;
  readonly specifier: string;
  /** `lib/base/log.ts`, `client.ts`…; undefined for `node:`, `npm:` and bare specifiers. */
  readonly target?: string;
}

/** The text without comments; strings that merely contain `//` (URLs) are kept. */
function withoutComments(text: string): string {
  return text
    .replace(/\/\*[\s\S]*?\*\//g, (comment) => comment.replace(/[^\n]/g, " "))
    .replace(/(^|[\s;{}])\/\/.*$/gm, "$1");
}

const STATIC_IMPORT = /^[ \t]*(?:import|export)\b[^;"'`()=]*?\bfrom\s*["']([^"']+)["']/gm;
const SIDE_EFFECT_IMPORT = /^[ \t]*import\s*["']([^"']+)["']/gm;
const DYNAMIC_IMPORT = /\bimport\(\s*["']([^"']+)["']\s*\)/g;
const MODULE_URL = /\bnew URL\(\s*["']([^"']+)["']\s*,\s*import\.meta\.url\s*\)/g;

/** The repository path a relative specifier names from `from`, or undefined for a package. */
function resolve(from: string, specifier: string): string | undefined {
  if (!specifier.startsWith("./") && !specifier.startsWith("../")) return undefined;
  const root = "file:///repository/";
  const url = new URL(specifier, root + from).href;
  return url.startsWith(root) ? url.slice(root.length) : `(outside the repository) ${specifier}`;
}

/** Every import of a module, in the order written. */
function importsOf(module: Module): Import[] {
  const code = withoutComments(module.text);
  const found: Import[] = [];
  for (const pattern of [STATIC_IMPORT, SIDE_EFFECT_IMPORT, DYNAMIC_IMPORT, MODULE_URL]) {
    for (const match of code.matchAll(pattern)) {
      found.push({
        from: module.path,
        specifier: match[1],
        target: resolve(module.path, match[1]),
      });
    }
  }
  return found;
}

/** `ops` for `lib/ops/config/values.ts`; undefined outside `lib/`. */
function folderOf(path: string): string | undefined {
  const parts = path.split("/");
  return parts[0] === "lib" && parts.length > 2 ? parts[1] : undefined;
}

function describe(entry: Import): string {
  return `${entry.from}: import "${entry.specifier}"`;
}

/** Imports that point up the layers, sideways to another folder of the same rank, or out of lib/. */
function findLayerViolations(modules: readonly Module[]): string[] {
  const problems: string[] = [];
  for (const module of modules) {
    const folder = folderOf(module.path);
    if (folder === undefined) continue;
    const rank = LAYER_RANKS.get(folder);
    if (rank === undefined) {
      problems.push(`${module.path}: lib/${folder}/ is not in the layer table`);
      continue;
    }
    for (const entry of importsOf(module)) {
      if (entry.target === undefined) continue;
      const targetFolder = folderOf(entry.target);
      if (targetFolder === undefined) {
        problems.push(`${describe(entry)}: lib/ never imports from outside lib/ (${entry.target})`);
        continue;
      }
      if (targetFolder === folder) continue;
      const targetRank = LAYER_RANKS.get(targetFolder);
      if (targetRank === undefined || targetRank >= rank) {
        problems.push(
          `${describe(entry)}: ${folder} (rank ${rank}) may not import ${targetFolder} ` +
            `(rank ${targetRank ?? "unknown"}); only lower ranks or its own folder`,
        );
      }
    }
  }
  return problems;
}

/** Engine files that touch `Deno.*`, a socket module, lib/io or the config parser. */
function findEngineViolations(modules: readonly Module[]): string[] {
  const problems: string[] = [];
  for (const module of modules) {
    const folder = folderOf(module.path);
    if (folder === undefined || !ENGINE_FOLDERS.has(folder)) continue;
    const code = withoutComments(module.text);
    code.split("\n").forEach((line, index) => {
      if (/(^|[^\w.$])Deno\./.test(line)) {
        problems.push(`${module.path}:${index + 1}: an engine references Deno.*: ${line.trim()}`);
      }
    });
    for (const entry of importsOf(module)) {
      const target = entry.target ?? "";
      if (SOCKET_MODULES.has(entry.specifier)) {
        problems.push(`${describe(entry)}: an engine imports a socket module`);
      } else if (target.startsWith("lib/io/")) {
        problems.push(`${describe(entry)}: an engine imports lib/io`);
      } else if (target === "lib/ops/config.ts" || target.startsWith("lib/ops/config/")) {
        problems.push(`${describe(entry)}: an engine imports the config parser`);
      }
    }
  }
  return problems;
}

/** `client` or `server` for a session file of that end, else undefined. */
function sessionEndOf(path: string): "client" | "server" | undefined {
  const match = /^lib\/session\/(client|server)/.exec(path);
  return match === null ? undefined : match[1] as "client" | "server";
}

/** Session files of one end that import a session file of the other end. */
function findCrossEndImports(modules: readonly Module[]): string[] {
  const problems: string[] = [];
  for (const module of modules) {
    const end = sessionEndOf(module.path);
    if (end === undefined) continue;
    for (const entry of importsOf(module)) {
      const otherEnd = entry.target === undefined ? undefined : sessionEndOf(entry.target);
      if (otherEnd !== undefined && otherEnd !== end) {
        problems.push(`${describe(entry)}: the ${end}'s engine imports the ${otherEnd}'s`);
      }
    }
  }
  return problems;
}

/** Every import circle among the modules, each as `a → b → … → a`, each once. */
function findImportCycles(modules: readonly Module[]): string[] {
  const known = new Set(modules.map((module) => module.path));
  const edges = new Map<string, string[]>();
  for (const module of modules) {
    const targets = importsOf(module)
      .map((entry) => entry.target)
      .filter((target): target is string => target !== undefined && known.has(target));
    edges.set(module.path, [...new Set(targets)].sort());
  }
  // Depth-first search; a back edge to a module on the current stack closes a circle.
  const cycles = new Map<string, string>();
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (path: string): void => {
    state.set(path, "open");
    stack.push(path);
    for (const target of edges.get(path) ?? []) {
      const targetState = state.get(target);
      if (targetState === "open") {
        const circle = stack.slice(stack.indexOf(target));
        // The same circle found from another start is one circle: key it by its smallest member.
        const start = circle.indexOf([...circle].sort()[0]);
        const rotated = [...circle.slice(start), ...circle.slice(0, start)];
        cycles.set(rotated.join(" "), [...rotated, rotated[0]].join(" → "));
      } else if (targetState === undefined) {
        visit(target);
      }
    }
    stack.pop();
    state.set(path, "done");
  };
  for (const path of [...known].sort()) if (!state.has(path)) visit(path);
  return [...cycles.values()];
}

/** The comment lines before a module's first code: where it says what it is and why. */
function topComment(text: string): string {
  const match = /^\s*((?:\/\*[\s\S]*?\*\/\s*|\/\/[^\n]*\n\s*)*)/.exec(text);
  return match === null ? "" : match[1];
}

/** Files past MAX_LINES whose top comment does not say why they read best whole. */
function findLongFiles(modules: readonly Module[]): string[] {
  const problems: string[] = [];
  for (const module of modules) {
    const lines = module.text.split("\n").length - (module.text.endsWith("\n") ? 1 : 0);
    if (lines <= MAX_LINES) continue;
    if (topComment(module.text).includes(WHOLE_FILE_MARKER)) continue;
    problems.push(
      `${module.path}: ${lines} lines (over ${MAX_LINES}); split it, or say in its top comment ` +
        `"${WHOLE_FILE_MARKER} <why>"`,
    );
  }
  return problems;
}

/** Every .ts file under lib/, read once for all the tests. */
async function readLib(): Promise<Module[]> {
  const root = new URL("../", import.meta.url);
  const modules: Module[] = [];
  const walk = async (folder: string): Promise<void> => {
    for await (const entry of Deno.readDir(new URL(folder, root))) {
      const path = `${folder}${entry.name}`;
      if (entry.isDirectory) await walk(`${path}/`);
      else if (entry.isFile && entry.name.endsWith(".ts")) {
        modules.push({ path, text: await Deno.readTextFile(new URL(path, root)) });
      }
    }
  };
  await walk("lib/");
  return modules.sort((a, b) => a.path.localeCompare(b.path));
}

const LIB = await readLib();

function assertNone(problems: readonly string[], rule: string): void {
  assert.equal(problems.length, 0, `${rule}:\n  ${problems.join("\n  ")}`);
}

Deno.test("layering: the import finder reads static, re-export, dynamic and URL imports, not comments", () => {
  const module: Module = {
    path: "lib/session/example.ts",
    text: [
      "/**",
      " * @example",
      " * ```ts",
      ' * import { notCounted } from "../io/udp.ts";',
      " * ```",
      " */",
      'import type { A } from "../wire/messages.ts";',
      "import {",
      "  b,",
      "  c,",
      '} from "./scheduler.ts";',
      'export { d } from "../base/log.ts";',
      'import "../base/assert.ts";',
      '// import { alsoNotCounted } from "../ops/config.ts";',
      'const e = await import("../path/path_stats.ts");',
      'const f = new URL("./worker.ts", import.meta.url);',
      'const g = "https://example.com/x"; // a string with // in it',
      'import assert from "node:assert/strict";',
    ].join("\n"),
  };
  assert.deepEqual(importsOf(module).map((entry) => entry.target ?? entry.specifier), [
    "lib/wire/messages.ts",
    "lib/session/scheduler.ts",
    "lib/base/log.ts",
    "node:assert/strict",
    "lib/base/assert.ts",
    "lib/path/path_stats.ts",
    "lib/session/worker.ts",
  ]);
});

Deno.test("layering: every lib/ import points down the layers or stays in its folder", () => {
  const planted = findLayerViolations([
    { path: "lib/wire/messages.ts", text: 'import { x } from "../session/client_core.ts";' },
    { path: "lib/crypto/aead.ts", text: 'import { y } from "../fec/fec.ts";' },
    { path: "lib/ops/status.ts", text: 'import { z } from "../../tools/traffic.ts";' },
    { path: "lib/cli/program.ts", text: 'import { w } from "../../client.ts";' },
    { path: "lib/ops/config/values.ts", text: 'import { v } from "../../base/units.ts";' },
    { path: "lib/ops/config/flags.ts", text: 'import { u } from "../status.ts";' },
  ]);
  assert.deepEqual(planted, [
    'lib/wire/messages.ts: import "../session/client_core.ts": wire (rank 1) may not import ' +
    "session (rank 4); only lower ranks or its own folder",
    'lib/crypto/aead.ts: import "../fec/fec.ts": crypto (rank 2) may not import fec (rank 2); ' +
    "only lower ranks or its own folder",
    'lib/ops/status.ts: import "../../tools/traffic.ts": lib/ never imports from outside lib/ ' +
    "(tools/traffic.ts)",
    'lib/cli/program.ts: import "../../client.ts": lib/ never imports from outside lib/ ' +
    "(client.ts)",
  ]);
  assertNone(findLayerViolations(LIB), "imports that point the wrong way");
});

Deno.test("layering: the engines (wire, fec, path, session) use no Deno.*, socket, lib/io or config parser", () => {
  const planted = findEngineViolations([
    { path: "lib/path/a.ts", text: "// Deno.now is fine in a comment\nconst t = Deno.now();" },
    { path: "lib/fec/b.ts", text: 'import { UdpTransport } from "../io/udp.ts";' },
    { path: "lib/session/c.ts", text: 'import { AllowRule } from "../ops/config.ts";' },
    { path: "lib/session/d.ts", text: 'import { parseFec } from "../ops/config/values.ts";' },
    { path: "lib/wire/e.ts", text: 'import dgram from "node:dgram";' },
    { path: "lib/driver/f.ts", text: 'import { x } from "../io/udp.ts"; Deno.exit(1);' },
  ]);
  assert.deepEqual(planted, [
    "lib/path/a.ts:2: an engine references Deno.*: const t = Deno.now();",
    'lib/fec/b.ts: import "../io/udp.ts": an engine imports lib/io',
    'lib/session/c.ts: import "../ops/config.ts": an engine imports the config parser',
    'lib/session/d.ts: import "../ops/config/values.ts": an engine imports the config parser',
    'lib/wire/e.ts: import "node:dgram": an engine imports a socket module',
  ]);
  assertNone(findEngineViolations(LIB), "engine files that do I/O or read the config parser");
});

Deno.test("layering: the client's session engine and the server's never import each other", () => {
  const planted = findCrossEndImports([
    { path: "lib/session/server_core.ts", text: 'import { x } from "./client_core.ts";' },
    { path: "lib/session/client_flows.ts", text: 'import { y } from "./server_sessions.ts";' },
    { path: "lib/session/client_core.ts", text: 'import { z } from "./client_flows.ts";' },
    { path: "lib/session/scheduler.ts", text: 'import { w } from "./client_core.ts";' },
  ]);
  assert.deepEqual(planted, [
    "lib/session/server_core.ts: import \"./client_core.ts\": the server's engine imports the client's",
    'lib/session/client_flows.ts: import "./server_sessions.ts": the client\'s engine imports the ' +
    "server's",
  ]);
  assertNone(findCrossEndImports(LIB), "session files importing the other end's engine");
});

Deno.test("layering: lib/ has no import circles", () => {
  const planted = findImportCycles([
    { path: "lib/base/a.ts", text: 'import { b } from "./b.ts";' },
    { path: "lib/base/b.ts", text: 'import { c } from "./c.ts";' },
    { path: "lib/base/c.ts", text: 'import { a } from "./a.ts";' },
    { path: "lib/base/d.ts", text: 'import { a } from "./a.ts";' },
    { path: "lib/base/e.ts", text: 'import type { e } from "./e.ts";' },
  ]);
  assert.deepEqual(planted, [
    "lib/base/a.ts → lib/base/b.ts → lib/base/c.ts → lib/base/a.ts",
    "lib/base/e.ts → lib/base/e.ts",
  ]);
  assertNone(findImportCycles(LIB), "import circles");
});

Deno.test(`layering: a lib/ file over ${MAX_LINES} lines says in its top comment why it reads best whole`, () => {
  const long = "const x = 1;\n".repeat(MAX_LINES);
  const planted = findLongFiles([
    { path: "lib/base/long.ts", text: `/** A long file. */\n${long}` },
    {
      path: "lib/base/ok.ts",
      text: `/**\n * One table; ${WHOLE_FILE_MARKER} it is one table.\n */\n${long}`,
    },
    { path: "lib/base/late.ts", text: `/** A long file. */\n${long}// ${WHOLE_FILE_MARKER} no\n` },
    { path: "lib/base/short.ts", text: "const x = 1;\n".repeat(MAX_LINES) },
  ]);
  assert.deepEqual(planted, [
    `lib/base/long.ts: ${MAX_LINES + 1} lines (over ${MAX_LINES}); split it, or say in its top ` +
    `comment "${WHOLE_FILE_MARKER} <why>"`,
    `lib/base/late.ts: ${MAX_LINES + 2} lines (over ${MAX_LINES}); split it, or say in its top ` +
    `comment "${WHOLE_FILE_MARKER} <why>"`,
  ]);
  assertNone(findLongFiles(LIB), "files too long to read");
});
