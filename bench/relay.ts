/**
 * The benchmark's baseline: a plain UDP relay, the least any Deno program carrying datagrams must
 * do — one socket in, one socket out, one receive and one send per datagram, nothing else. Like a
 * `socat` relay it also carries replies back to the last client address, so the latency test can
 * go through it too.
 *
 *     deno run --allow-net bench/relay.ts LISTEN_PORT TARGET_HOST TARGET_PORT
 *
 * Prints `listening on PORT` to stderr once ready; runs until SIGINT or SIGTERM, then closes its
 * sockets and exits normally (so `deno run --cpu-prof` can write its profile).
 *
 * It opens its sockets with `Deno.listenDatagram` itself, not through `lib/io/udp.ts`, so that the
 * yardstick stays a plain Deno socket whatever the tunnel's own socket layer learns later (larger
 * buffers, batching).
 */

import { classifySendError } from "../lib/io/udp.ts";
import { MAX_UDP_PAYLOAD_BYTES, type UdpAddress } from "../lib/io/transport.ts";

/** A plain Deno UDP socket on loopback. */
function plainSocket(port: number): Deno.DatagramConn {
  return Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port });
}

const [listenPortText, targetHost, targetPortText] = Deno.args;
if (targetPortText === undefined) {
  console.error("usage: relay.ts LISTEN_PORT TARGET_HOST TARGET_PORT");
  Deno.exit(2);
}
const target: UdpAddress = { transport: "udp", hostname: targetHost, port: Number(targetPortText) };
const inbound = plainSocket(Number(listenPortText));
const outbound = plainSocket(0);
let client: UdpAddress | undefined;

/** Receives on `from` and sends each datagram on `to`, one at a time (the buffer is reused). */
async function relay(
  from: typeof inbound,
  to: typeof outbound,
  destination: () => UdpAddress | undefined,
  onReceived?: (sender: UdpAddress) => void,
): Promise<void> {
  const buffer = new Uint8Array(MAX_UDP_PAYLOAD_BYTES);
  while (true) {
    let datagram: Uint8Array;
    let sender: UdpAddress;
    try {
      [datagram, sender] = await from.receive(buffer) as [Uint8Array, UdpAddress];
    } catch (error) {
      if (error instanceof Deno.errors.BadResource) return;
      continue;
    }
    onReceived?.(sender);
    const address = destination();
    if (address === undefined) continue;
    try {
      await to.send(datagram, address);
    } catch (error) {
      if (classifySendError(error) === undefined) throw error;
    }
  }
}

const closeSockets = () => {
  for (const socket of [inbound, outbound]) {
    try {
      socket.close();
    } catch (error) {
      if (!(error instanceof Deno.errors.BadResource)) throw error; // closed by an earlier signal
    }
  }
};
for (const signal of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(signal, closeSockets);
console.error(`listening on ${(inbound.addr as Deno.NetAddr).port}`);
await Promise.all([
  relay(inbound, outbound, () => target, (sender) => {
    if (client?.port !== sender.port || client.hostname !== sender.hostname) client = sender;
  }),
  relay(outbound, inbound, () => client),
]);
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.removeSignalListener(signal, closeSockets);
}
