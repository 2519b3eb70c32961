/**
 * A UDP echo target for the demo and for checking a tunnel by hand: every datagram goes back,
 * unchanged, to its sender. Put it behind mpserver and point a traffic stream at mpclient.
 *
 *     deno run --allow-net tools/udp_echo.ts [HOST:]PORT
 *
 * A bare PORT listens on 127.0.0.1; give `0.0.0.0:PORT` or `[::]:PORT` to listen on all addresses,
 * and port 0 for any free port (the one chosen is printed). Prints `listening on HOST:PORT` to
 * stderr once ready, and the counts on SIGINT or SIGTERM.
 */

import { formatHostPort, type HostPort, parseHostPort } from "../lib/base/address.ts";
import { runMain } from "../lib/cli/run_main.ts";
import { UsageError } from "../lib/base/usage_error.ts";
import { runUdpEcho } from "./traffic.ts";

const PROGRAM = "udp_echo";
const USAGE = `Usage: deno run --allow-net tools/udp_echo.ts [HOST:]PORT

Echoes every UDP datagram back to its sender.
  PORT        listen on 127.0.0.1:PORT (0 for any free port)
  HOST:PORT   listen on HOST (0.0.0.0 or [::] for all addresses)`;

/** Reads the listen address from the arguments. */
export function parseEchoArguments(args: readonly string[]): HostPort {
  if (args.length !== 1) throw new UsageError("expected one argument, [HOST:]PORT");
  const parsed = parseHostPort(args[0], "127.0.0.1", true);
  if (!parsed.ok) throw new UsageError(parsed.error);
  return parsed.value;
}

async function main(): Promise<void> {
  if (Deno.args.includes("--help") || Deno.args.includes("-h")) {
    console.log(USAGE);
    return;
  }
  const listen = parseEchoArguments(Deno.args);
  let echo;
  try {
    echo = runUdpEcho({ listen });
  } catch (error) {
    if (
      !(error instanceof Deno.errors.AddrInUse || error instanceof Deno.errors.AddrNotAvailable)
    ) {
      throw error;
    }
    console.error(`${PROGRAM}: cannot listen on ${formatHostPort(listen)}: ${error.message}`);
    Deno.exit(1);
  }
  console.error(`listening on ${formatHostPort(echo.address)}`);
  const stopped = new Promise<void>((resolve) => {
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      Deno.addSignalListener(signal, () => resolve());
    }
  });
  await stopped;
  await echo.stop();
  const { datagrams, bytes, senders, sendErrors } = echo.counters;
  console.error(
    `echoed ${datagrams} datagrams (${bytes} bytes) from ${senders} senders` +
      (sendErrors > 0 ? `, ${sendErrors} replies failed` : ""),
  );
  Deno.exit(0);
}

if (import.meta.main) {
  await runMain(PROGRAM, main);
}
