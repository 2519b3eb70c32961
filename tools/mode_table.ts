/**
 * `deno task modes`: runs every scheduling mode under every path condition of
 * `tests/sim/mode_scenarios.ts` in the seeded simulator and prints the table README shows (Markdown).
 * With `--write FILE` it also writes the table there (README's copy comes from `docs/MODES.md`).
 *
 *     deno task modes [--seed N] [--count DATAGRAMS] [--write docs/MODES.md]
 */

import { parseArgs } from "node:util";
import {
  MODE_CONDITIONS,
  type ModeResult,
  runModeScenario,
  TABLE_MODES,
} from "../tests/sim/mode_scenarios.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    seed: { type: "string", default: "1" },
    count: { type: "string", default: "8000" },
    write: { type: "string" },
  },
});
const seed = Number(values.seed);
const count = Number(values.count);
if (!Number.isInteger(seed) || !Number.isInteger(count) || count < 100) {
  console.error("usage: deno task modes [--seed N] [--count DATAGRAMS ≥ 100] [--write FILE]");
  Deno.exit(2);
}

const percent = (ratio: number) =>
  ratio === 0 ? "0" : ratio < 0.0001 ? "<0.01" : (ratio * 100).toFixed(2);
const rows: string[] = [];
for (const condition of MODE_CONDITIONS) {
  for (const mode of TABLE_MODES) {
    const result: ModeResult = runModeScenario({ mode, condition, seed, count });
    rows.push(
      `| ${condition.name} | ${mode} | ${percent(result.lossRatio)} | ` +
        `${result.wireBytesPerAppByte.toFixed(2)} | ${result.latencyP50Ms.toFixed(1)} / ` +
        `${result.latencyP99Ms.toFixed(1)} | ${Math.round(result.longestSilenceMs)} | ` +
        `${percent(result.reorderedRatio)} |`,
    );
    console.error(`${condition.name} · ${mode}: done`);
  }
}

const table = [
  `Simulated with \`deno task modes --seed ${seed} --count ${count}\`: three paths, one 1000-byte datagram`,
  `per ms for ${
    count / 1000
  } s toward the target, paths 5 ms ± 1 ms one way unless the condition says`,
  "otherwise; adaptive aims at 0.1 % (`--target-loss 0.1`), fec chooses its groups from the measured loss.",
  "",
  "| condition | mode | loss % | wire bytes per app byte | latency p50 / p99 ms | longest silence ms | overtaken % |",
  "|---|---|---|---|---|---|---|",
  ...rows,
  "",
  "Conditions: " +
  MODE_CONDITIONS.map((condition) => `**${condition.name}**: ${condition.summary}`).join("; ") +
  ".",
  "",
].join("\n");
console.log(table);
if (values.write) await Deno.writeTextFile(values.write, table);
