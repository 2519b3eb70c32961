/**
 * `deno task test`: every test, in two runs — the unit and simulator tests in parallel, then the
 * end-to-end tests one file at a time (they start real processes, and on a two-core machine two such
 * files at once would measure each other's load). Prints the combined totals last, as
 * `tests: N passed, N failed`, and exits non-zero when anything failed.
 *
 * Extra arguments go to both `deno test` runs (e.g. `--filter restart`).
 */

const extraArguments = Deno.args;
const runs: { label: string; args: string[] }[] = [
  {
    label: "unit and simulator tests",
    args: ["test", "--allow-all", "--parallel", "--ignore=tests/e2e", ...extraArguments, "tests/"],
  },
  { label: "end-to-end tests", args: ["test", "--allow-all", ...extraArguments, "tests/e2e/"] },
];

const SUMMARY =
  /^(?:ok|FAILED) \| (\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed(?: \(\d+ steps?\))?(?: \| (\d+) ignored(?: \((\d+) steps?\))?)?/;
let passed = 0;
let failed = 0;
let ignored = 0;
let anyRunFailed = false;

for (const run of runs) {
  console.log(`\n=== ${run.label}: deno ${run.args.join(" ")}\n`);
  const child = new Deno.Command(Deno.execPath(), {
    args: run.args,
    env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let summary: RegExpExecArray | null = null;
  let pending = "";
  const decoder = new TextDecoder();
  for await (const chunk of child.stdout) {
    await Deno.stdout.write(chunk);
    pending += decoder.decode(chunk, { stream: true });
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) summary = SUMMARY.exec(line) ?? summary;
  }
  const status = await child.status;
  if (summary) {
    passed += Number(summary[1]);
    failed += Number(summary[2]);
    // A test ignored outside CI for a missing tool counts as skipped, and so does such a step.
    ignored += Number(summary[3] ?? 0) + Number(summary[4] ?? 0);
  }
  if (!status.success) {
    anyRunFailed = true;
    if (!summary || Number(summary[2]) === 0) failed++; // the run failed without counting a test
  }
}

// Ignored tests and steps are those that cannot run here and say why (a tool that is not installed
// outside CI, `deno compile` without network): they are reported as skipped, never as passed.
console.log(
  `\ntests: ${passed} passed, ${failed} failed${ignored > 0 ? `, ${ignored} skipped` : ""}`,
);
Deno.exit(anyRunFailed || failed > 0 ? 1 : 0);
