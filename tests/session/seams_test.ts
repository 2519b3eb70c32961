/** What the engines take from outside instead of reaching for it: the AEAD factory and randomness. */
import { clientSeams, serverSeams } from "./engine_seams.ts";
import assert from "node:assert/strict";
import { silentLogger } from "../../lib/base/log.ts";
import { seededRandom } from "../../lib/base/rng.ts";
import type { AeadFactory } from "../../lib/crypto/aead.ts";
import { createAead } from "../../lib/crypto/aead_factory.ts";
import { deriveSecretKeys } from "../../lib/crypto/handshake.ts";
import type { UdpEndpoint } from "../../lib/base/address.ts";
import { ClientCore, type ClientOutbox } from "../../lib/session/client_core.ts";
import { ServerCore, type ServerOutbox } from "../../lib/session/server_core.ts";

const SECRET = deriveSecretKeys("seams test secret, long enough");
const CLIENT_ADDRESS: UdpEndpoint = { transport: "udp", hostname: "127.0.0.1", port: 4000 };

/** An AEAD factory that counts the keys it makes. */
function countingFactory(): { factory: AeadFactory; made: () => number } {
  let made = 0;
  return {
    factory: (key) => {
      made++;
      return createAead(key);
    },
    made: () => made,
  };
}

Deno.test("the engines key their sessions with the AEAD factory they were given", () => {
  const clientKeys = countingFactory();
  const serverKeys = countingFactory();
  const client = new ClientCore({
    ...clientSeams,
    pathLabels: ["only"],
    secret: SECRET,
    logger: silentLogger,
    aead: clientKeys.factory,
    random: seededRandom(1),
  });
  const server = new ServerCore({
    ...serverSeams,
    secret: SECRET,
    logger: silentLogger,
    aead: serverKeys.factory,
  });
  const toServer: Uint8Array[] = [];
  const toClient: Uint8Array[] = [];
  const clientOutbox: ClientOutbox = {
    scratch: new Uint8Array(65536),
    sendOnPath: (_pathIndex, datagram) => toServer.push(datagram.slice()),
    deliverToApp: () => {},
  };
  const serverOutbox: ServerOutbox = {
    scratch: new Uint8Array(65536),
    sendTo: (_address, datagram) => toClient.push(datagram.slice()),
    deliverToTarget: () => {},
  };
  client.onTimer(0, clientOutbox); // INIT
  for (const datagram of toServer.splice(0)) {
    server.receive(CLIENT_ADDRESS, datagram, 1, serverOutbox);
  }
  for (const datagram of toClient.splice(0)) client.receiveFromPath(0, datagram, 2, clientOutbox);
  assert.equal(client.state, "established");
  assert.equal(clientKeys.made(), 2); // one key each way
  assert.equal(serverKeys.made(), 2);
});

Deno.test("a client's session id comes from the random source it was given", () => {
  const make = (seed: number) =>
    new ClientCore({
      ...clientSeams,
      pathLabels: ["only"],
      logger: silentLogger,
      random: seededRandom(seed),
    })
      .sessionId;
  assert.equal(make(42), make(42));
  assert.notEqual(make(42), make(43));
  assert.equal(make(42), seededRandom(42).below(2 ** 32));
});
