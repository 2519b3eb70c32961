/**
 * Many mpclient sessions in one process, for the benchmark's memory figures: runs COUNT client
 * protocol engines ({@link ClientCore}) against one mpserver, over one socket (the server keys
 * sessions by id, not by address), and optionally has each send datagrams at RATE per second.
 * Idle sessions still probe every 500 ms, as a real mpclient does.
 *
 *     deno run --allow-net --allow-env bench/sessions.ts SERVER_PORT COUNT [RATE_PPS]
 *
 * The secret, if any, comes from `MPTUNNEL_SECRET`. Handshakes start at a pace below the server's
 * handshake rate limit. Prints one JSON line to stdout once every session is established (or after
 * {@link ESTABLISH_TIMEOUT_MS}): `{"established":1000,"count":1000,"ms":5400}`. Runs until killed.
 */

import { ClientCore, type ClientOutbox } from "../lib/session/client_core.ts";
import { deriveSecretKeys } from "../lib/crypto/handshake.ts";
import { createAead } from "../lib/crypto/aead_factory.ts";
import { secureRandom } from "../lib/session/secure_random.ts";
import { silentLogger } from "../lib/base/log.ts";
import { bindUdp, classifySendError } from "../lib/io/udp.ts";
import type { UdpAddress } from "../lib/io/transport.ts";

/** Sessions started per {@link START_INTERVAL_MS}: 150 a second, under the server's 200/s limit. */
const STARTS_PER_INTERVAL = 15;
const START_INTERVAL_MS = 100;
/** How often the engines' timers are checked. */
const TIMER_INTERVAL_MS = 20;
const ESTABLISH_TIMEOUT_MS = 30_000;
const PAYLOAD_BYTES = 100;

const [portText, countText, rateText] = Deno.args;
const server: UdpAddress = { transport: "udp", hostname: "127.0.0.1", port: Number(portText) };
const count = Number(countText);
const ratePps = Number(rateText ?? 0);
const secretText = Deno.env.get("MPTUNNEL_SECRET");
const secret = secretText === undefined ? undefined : deriveSecretKeys(secretText);

const socket = bindUdp({ hostname: "127.0.0.1", port: 0 });
const cores = new Map<number, ClientCore>();
const started: ClientCore[] = [];
const outbox: ClientOutbox = {
  scratch: new Uint8Array(65536),
  // A copy: the scratch buffer is reused before Deno runs the send.
  sendOnPath: (_pathIndex, datagram) => {
    socket.send(datagram.slice(), server).catch((error) => {
      if (classifySendError(error) === undefined) throw error;
    });
  },
  deliverToApp: () => {},
};

async function receiveLoop(): Promise<void> {
  const buffer = new Uint8Array(65536);
  while (true) {
    let datagram: Uint8Array;
    try {
      [datagram] = await socket.receive(buffer);
    } catch (error) {
      if (error instanceof Deno.errors.BadResource) return;
      continue;
    }
    if (datagram.length < 8) continue;
    const sessionId = new DataView(datagram.buffer, datagram.byteOffset).getUint32(4);
    cores.get(sessionId)?.receiveFromPath(0, datagram, performance.now(), outbox);
  }
}

const startedAt = performance.now();
let reported = false;
const payload = new Uint8Array(PAYLOAD_BYTES);

const starter = setInterval(() => {
  for (let index = 0; index < STARTS_PER_INTERVAL && cores.size < count; index++) {
    const core = new ClientCore({
      pathLabels: ["server"],
      secret,
      logger: silentLogger,
      aead: createAead,
      random: secureRandom,
    });
    cores.set(core.sessionId, core);
    started.push(core);
    core.onTimer(performance.now(), outbox);
  }
  if (cores.size >= count) clearInterval(starter);
}, START_INTERVAL_MS);

let sendCredit = 0;
let lastTickMs = performance.now();
setInterval(() => {
  const now = performance.now();
  let established = 0;
  for (const core of started) {
    if ((core.nextDeadlineMs() ?? Infinity) <= now) core.onTimer(now, outbox);
    if (core.state === "established") established++;
  }
  if (ratePps > 0) {
    sendCredit += ratePps * (now - lastTickMs) / 1000;
    for (; sendCredit >= 1; sendCredit--) {
      for (const core of started) {
        if (core.state === "established") core.sendFromApp(1, payload, now, outbox);
      }
    }
  }
  lastTickMs = now;
  const elapsedMs = now - startedAt;
  if (!reported && (established === count || elapsedMs > ESTABLISH_TIMEOUT_MS)) {
    reported = true;
    console.log(JSON.stringify({ established, count, ms: Math.round(elapsedMs) }));
  }
}, TIMER_INTERVAL_MS);

await receiveLoop();
