/**
 * mpserver: receives what mpclient sends over every path, keeps the first copy of each datagram and
 * hands it to the target service; sends the target's replies back over the session's paths. Serves
 * any number of clients at once.
 *
 *     mpserver [OPTIONS] [HOST:]PORT TARGET_HOST TARGET_PORT
 *     mpserver [OPTIONS] --config FILE
 *     mpserver keygen
 */

import { runMain } from "./lib/cli/run_main.ts";
import { type Program, runProgram } from "./lib/cli/program_runner.ts";
import { readServerStart, type ServerStart, startServer } from "./lib/cli/server_program.ts";
import { loadServerConfigFile } from "./lib/ops/config.ts";
import { bindUdp } from "./lib/io/udp.ts";

/** mpserver, as the program runner runs it. */
export const mpserver: Program<ServerStart> = {
  name: "mpserver",
  component: "server",
  status: {
    program: "mpserver",
    controlFromFile: async (file) => (await loadServerConfigFile(file)).control,
  },
  // Parse: the arguments and the file (lib/cli/server_settings.ts), then the secret.
  read: readServerStart,
  logging: ({ settings: { config } }) => ({
    level: config.logLevel ?? "info",
    format: config.logFormat ?? "text",
  }),
  // Build: the driver on real UDP sockets, and the control endpoint beside it.
  start: (settings, logger) => startServer(settings, logger, bindUdp),
};

/** Runs mpserver with these arguments until SIGINT or SIGTERM. */
export function main(args: readonly string[]): Promise<void> {
  return runProgram(mpserver, args);
}

if (import.meta.main) await runMain("mpserver", () => main(Deno.args));
