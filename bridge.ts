/**
 * mpbridge: a UDP relay to put between a client and the server, optionally making the link worse
 * (loss, delay, jitter, a rate limit, blackouts) so that multipath behaviour can be watched and tested.
 *
 * @example
 * ```sh
 * deno task bridge 4001 server.example 4000 --loss 5 --delay 40ms --jitter 10ms --blackout "every 30s for 2s"
 * ```
 */

import { runMain } from "./lib/cli/run_main.ts";
import { type Program, runProgram } from "./lib/cli/program_runner.ts";
import { BRIDGE_USAGE, parseBridgeArgs, PROGRAM } from "./lib/cli/bridge_settings.ts";
import { type BridgeRun, startBridgeProgram } from "./lib/cli/bridge_program.ts";
import { VERSION } from "./lib/base/usage_error.ts";
import { bindUdp } from "./lib/io/udp.ts";

/** mpbridge, as the program runner runs it. */
export const mpbridge: Program<BridgeRun> = {
  name: PROGRAM,
  component: "bridge",
  // Parse: the arguments (lib/cli/bridge_settings.ts); help and version end here.
  read: (args) => {
    const command = parseBridgeArgs(args);
    if (command.kind === "help") console.log(BRIDGE_USAGE);
    if (command.kind === "version") console.log(`${PROGRAM} ${VERSION}`);
    return Promise.resolve(command.kind === "run" ? command : "done");
  },
  logging: (command) => ({ level: command.logLevel, format: command.logFormat }),
  // Build: the relay on real UDP sockets.
  start: (command, logger) => startBridgeProgram(command, logger, bindUdp),
};

/** Runs mpbridge with `args` until SIGINT or SIGTERM (SIGINT or SIGBREAK on Windows). */
export function main(args: readonly string[]): Promise<void> {
  return runProgram(mpbridge, args);
}

if (import.meta.main) await runMain(PROGRAM, () => main(Deno.args));
