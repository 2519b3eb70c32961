/**
 * `deno task compile`: builds the release binaries — mpclient, mpserver and mpbridge as standalone
 * executables for each release target — into `dist/`, with each program's permissions baked in, and
 * writes `dist/SHA256SUMS`. Prints one row per build and exits 1 if any build failed, saying why.
 *
 *     deno task compile [--target TARGET]... [--program NAME]...
 *
 * `deno compile` joins the program to a Deno runtime built for the target (`denort`), which it
 * downloads from Deno's release site the first time; without that network access every build fails,
 * and the reason says so.
 */

import { createHash } from "node:crypto";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { runMain } from "../lib/cli/run_main.ts";
import { UsageError, VERSION } from "../lib/base/usage_error.ts";

const REPOSITORY_ROOT = fileURLToPath(new URL("../", import.meta.url));
/** Where the release binaries and SHA256SUMS go, relative to the repository root. */
const DIST_DIRECTORY = "dist";
const CHECKSUMS_FILE = "SHA256SUMS";

/** The targets a release is built for, as `deno compile --target` names them. */
export const RELEASE_TARGETS = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
] as const;

/** One release target. */
export type ReleaseTarget = typeof RELEASE_TARGETS[number];

/** A program of the release: its name, its entry point and the permissions it runs with. */
export interface ReleaseProgram {
  readonly name: "mpclient" | "mpserver" | "mpbridge";
  /** Relative to the repository root. */
  readonly entry: string;
  /** The narrowest flags that work, the same as the `deno task` of the same program. */
  readonly permissions: readonly string[];
}

/** The programs a release contains. */
export const RELEASE_PROGRAMS: readonly ReleaseProgram[] = [
  {
    name: "mpclient",
    entry: "client.ts",
    permissions: [
      "--allow-net",
      "--allow-read",
      "--allow-env=MPTUNNEL_SECRET,MPTUNNEL_SOCKS5_USER,MPTUNNEL_SOCKS5_PASSWORD,MPTUNNEL_IO,MPTUNNEL_CRYPTO",
      "--allow-sys=networkInterfaces",
      "--allow-ffi",
    ],
  },
  {
    name: "mpserver",
    entry: "server.ts",
    permissions: [
      "--allow-net",
      "--allow-read",
      "--allow-env=MPTUNNEL_SECRET,MPTUNNEL_IO,MPTUNNEL_CRYPTO",
      "--allow-ffi",
    ],
  },
  {
    name: "mpbridge",
    entry: "bridge.ts",
    permissions: ["--allow-net", "--allow-env=MPTUNNEL_IO", "--allow-ffi"],
  },
];

/** The release target this machine runs, if it is one. */
export function hostTarget(): ReleaseTarget | undefined {
  return RELEASE_TARGETS.find((target) => target === Deno.build.target);
}

/** `mpbridge-0.1.0-x86_64-unknown-linux-gnu`, with `.exe` for Windows. */
export function binaryName(program: ReleaseProgram, target: ReleaseTarget): string {
  const extension = target.includes("windows") ? ".exe" : "";
  return `${program.name}-${VERSION}-${target}${extension}`;
}

/**
 * The `deno compile` arguments for one program and target. Type checking stays on. `--no-prompt`
 * makes a permission outside the baked-in set an error rather than a question (a service has no one
 * to answer). `--exclude-unused-npm` embeds only the npm packages the program imports, not every
 * package in deno.lock (the test tools' would add megabytes to each binary). The unstable `net` feature (`Deno.listenDatagram`) comes from deno.json's `"unstable"`
 * list, which `deno compile` embeds in the binary's metadata, so it needs no flag here.
 */
export function compileArguments(
  program: ReleaseProgram,
  target: ReleaseTarget,
  outputPath: string,
): string[] {
  return [
    "compile",
    "--target",
    target,
    "--output",
    outputPath,
    "--no-prompt",
    "--exclude-unused-npm",
    ...program.permissions,
    "--config",
    join(REPOSITORY_ROOT, "deno.json"),
    join(REPOSITORY_ROOT, program.entry),
  ];
}

/** How one build ended. */
export type BuildOutcome =
  | { readonly ok: true; readonly path: string; readonly sizeBytes: number }
  | {
    readonly ok: false;
    /** One line: why it failed. */
    readonly reason: string;
    /** The runtime for the target could not be downloaded (the program itself may be fine). */
    readonly runtimeUnavailable: boolean;
    /** What `deno compile` printed. */
    readonly output: string;
  };

/** Builds one program for one target into `directory`, replacing any earlier build of it. */
export async function compileProgram(
  program: ReleaseProgram,
  target: ReleaseTarget,
  directory: string,
): Promise<BuildOutcome> {
  const path = join(directory, binaryName(program, target));
  // A failed build must not leave last time's binary behind to be checksummed and shipped.
  await Deno.remove(path).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
  const { success, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: compileArguments(program, target, path),
    cwd: REPOSITORY_ROOT,
    env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  const output = decoder.decode(stdout) + decoder.decode(stderr);
  if (success) return { ok: true, path, sizeBytes: (await Deno.stat(path)).size };
  return { ok: false, output, ...explainCompileFailure(target, output) };
}

// What `deno compile` prints when it cannot fetch the runtime:
//   error: Writing deno compile executable to temporary file '…'
//   Caused by:
//       0: Setting up base binary.
//       1: error sending request for url (https://dl.deno.land/release/v2.9.6/denort-….zip): …
//       …
//       4: failed to lookup address information: Name or service not known
const RUNTIME_URL = /https:\/\/dl\.deno\.land\/\S+?\.zip/;
const NO_NETWORK =
  /dns error|failed to lookup address|Temporary failure in name resolution|Network is unreachable|Connection refused|client error \(Connect\)|timed out/i;

/** Says in one line why a build failed, and whether it was the runtime download. */
export function explainCompileFailure(
  target: string,
  output: string,
): { reason: string; runtimeUnavailable: boolean } {
  // "Download https://dl.deno.land/…" is printed on success too: only the error part counts.
  const errorStart = output.search(/^error:/m);
  const error = (errorStart === -1 ? output : output.slice(errorStart)).trim();
  const url = RUNTIME_URL.exec(error)?.[0];
  if (url !== undefined) {
    const causes = [...error.matchAll(/^\s*\d+: (.+)$/gm)].map((match) => match[1].trim())
      .filter((cause) => cause !== "<unknown>");
    const why = NO_NETWORK.test(error) ? "no network" : "the download failed";
    return {
      reason: `cannot download the Deno runtime for ${target}: ${why} (${url}: ${causes.at(-1)})`,
      runtimeUnavailable: true,
    };
  }
  const firstLine = error.split("\n").find((line) => line.trim() !== "") ?? "no output";
  return { reason: firstLine.trim(), runtimeUnavailable: false };
}

/** The SHA-256 of a file, in hex, read in chunks (a binary is tens of megabytes). */
export async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  for await (const chunk of file.readable) hash.update(chunk);
  return hash.digest("hex");
}

/**
 * Writes `SHA256SUMS` in `sha256sum`'s format for every release binary of this version in
 * `directory` (including ones built by an earlier run for other targets); removes it when there is
 * none. Returns the names listed.
 */
export async function writeChecksums(directory: string): Promise<string[]> {
  const names = new Set(
    RELEASE_PROGRAMS.flatMap((program) =>
      RELEASE_TARGETS.map((target) => binaryName(program, target))
    ),
  );
  const present: string[] = [];
  for await (const entry of Deno.readDir(directory)) {
    if (entry.isFile && names.has(entry.name)) present.push(entry.name);
  }
  present.sort();
  const checksumsPath = join(directory, CHECKSUMS_FILE);
  if (present.length === 0) {
    await Deno.remove(checksumsPath).catch(() => {});
    return [];
  }
  const lines: string[] = [];
  for (const name of present) lines.push(`${await sha256OfFile(join(directory, name))}  ${name}\n`);
  await Deno.writeTextFile(checksumsPath, lines.join(""));
  return present;
}

const PROGRAM_NAMES = RELEASE_PROGRAMS.map((program) => program.name).join(", ");
const USAGE = `Usage: deno task compile [--target TARGET]... [--program NAME]...

Builds standalone ${PROGRAM_NAMES} ${VERSION} into ${DIST_DIRECTORY}/ as NAME-${VERSION}-TARGET[.exe],
with their permissions baked in, and writes ${DIST_DIRECTORY}/${CHECKSUMS_FILE}. Without options,
builds every program for every target.

Options:
  --target TARGET   build only for this target (may repeat), one of:
${RELEASE_TARGETS.map((target) => `                      ${target}`).join("\n")}
  --program NAME    build only this program (may repeat): ${PROGRAM_NAMES}
  -h, --help        show this help

deno compile downloads the Deno runtime for each target from Deno's release site the first time
that target is built: without network access every build fails, and says so.`;

/** What the command line asks for. */
export interface CompileRequest {
  readonly programs: readonly ReleaseProgram[];
  readonly targets: readonly ReleaseTarget[];
}

/** Reads the options; a mistake throws {@link UsageError}. */
export function parseCompileArgs(args: readonly string[]): CompileRequest | "help" {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...args],
      options: {
        target: { type: "string", multiple: true },
        program: { type: "string", multiple: true },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    if (error instanceof TypeError) throw new UsageError(error.message.replaceAll("\n", " "));
    throw error;
  }
  if (values.help) return "help";
  const targets = (values.target ?? [...RELEASE_TARGETS]).map((name) => {
    const target = RELEASE_TARGETS.find((known) => known === name);
    if (target === undefined) {
      throw new UsageError(
        `--target: expected one of ${RELEASE_TARGETS.join(", ")}; got "${name}"`,
      );
    }
    return target;
  });
  const programs = (values.program ?? RELEASE_PROGRAMS.map((program) => program.name)).map(
    (name) => {
      const program = RELEASE_PROGRAMS.find((known) => known.name === name);
      if (program === undefined) {
        throw new UsageError(`--program: expected one of ${PROGRAM_NAMES}; got "${name}"`);
      }
      return program;
    },
  );
  return { programs: [...new Set(programs)], targets: [...new Set(targets)] };
}

/** The release version must be the same in deno.json and in what `--version` prints. */
async function checkVersionsAgree(): Promise<void> {
  const manifest = JSON.parse(await Deno.readTextFile(join(REPOSITORY_ROOT, "deno.json")));
  if (manifest.version !== VERSION) {
    throw new UsageError(
      `deno.json has version ${manifest.version} but lib/base/usage_error.ts has ${VERSION}; make them agree`,
    );
  }
}

function formatMegabytes(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function printTable(rows: readonly (readonly string[])[]): void {
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
  for (const row of rows) {
    console.log(row.map((cell, column) => cell.padEnd(widths[column])).join("  ").trimEnd());
  }
}

/** Builds what `args` ask for; exits 1 if any build failed. */
export async function main(args: readonly string[]): Promise<void> {
  const request = parseCompileArgs(args);
  if (request === "help") return console.log(USAGE);
  await checkVersionsAgree();
  const directory = join(REPOSITORY_ROOT, DIST_DIRECTORY);
  await Deno.mkdir(directory, { recursive: true });
  const rows: string[][] = [["program", "target", "result", "size or reason"]];
  let failures = 0;
  for (const target of request.targets) {
    for (const program of request.programs) {
      console.log(`compiling ${binaryName(program, target)} …`);
      const outcome = await compileProgram(program, target, directory);
      if (outcome.ok) {
        rows.push([program.name, target, "ok", formatMegabytes(outcome.sizeBytes)]);
        continue;
      }
      failures++;
      rows.push([program.name, target, "FAILED", outcome.reason]);
      // A type error or the like is worth reading whole; a missing runtime is said in one line.
      if (!outcome.runtimeUnavailable) console.error(outcome.output.trimEnd());
    }
  }
  const listed = await writeChecksums(directory);
  console.log("");
  printTable(rows);
  console.log("");
  console.log(
    listed.length === 0
      ? `no binaries in ${DIST_DIRECTORY}/, so no ${CHECKSUMS_FILE}`
      : `${DIST_DIRECTORY}/${CHECKSUMS_FILE} lists ${listed.length} binaries`,
  );
  const built = rows.length - 1 - failures;
  console.log(`compile: ${built} built, ${failures} failed`);
  if (failures > 0) Deno.exit(1);
}

if (import.meta.main) await runMain("compile", () => main(Deno.args));
