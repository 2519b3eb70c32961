/**
 * mpclient: takes datagrams from local applications and sends each over every path (bridge relays, or
 * the server itself) to mpserver; passes the first copy of each reply back. Applications reach it
 * on the classic listener (to the server's default target), on `forward` listeners (each to a
 * target of its own) or through its SOCKS5 front end (a destination per datagram).
 *
 *     mpclient [OPTIONS] [[HOST:]PORT] CONFIG_FILE
 */

import { runMain } from "./lib/cli/run_main.ts";
import { type Program, runProgram } from "./lib/cli/program_runner.ts";
import { type ClientStart, readClientStart, startClient } from "./lib/cli/client_program.ts";
import { loadClientConfigFile } from "./lib/ops/config.ts";
import { bindUdp } from "./lib/io/udp.ts";

/** mpclient, as the program runner runs it. */
export const mpclient: Program<ClientStart> = {
  name: "mpclient",
  component: "client",
  status: {
    program: "mpclient",
    controlFromFile: async (file) => (await loadClientConfigFile(file)).control,
  },
  // Parse: the arguments and the file (lib/cli/client_settings.ts), the secret, the SOCKS5 login.
  read: readClientStart,
  logging: ({ config }) => ({
    level: config.logLevel ?? "info",
    format: config.logFormat ?? "text",
  }),
  // Build: the driver on real UDP sockets, and the control endpoint beside it.
  start: (settings, logger) => startClient(settings, logger, bindUdp),
};

/** Runs mpclient with these arguments until SIGINT or SIGTERM. */
export function main(args: readonly string[]): Promise<void> {
  return runProgram(mpclient, args);
}

if (import.meta.main) await runMain("mpclient", () => main(Deno.args));
