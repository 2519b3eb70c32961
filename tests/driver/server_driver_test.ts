/**
 * mpserver's driver on the in-memory network: the limits on target sockets (each is a file
 * descriptor) refuse new flows without harming the server or the flows it has.
 */
import assert from "node:assert/strict";
import { ClientDriver } from "../../lib/driver/client_driver.ts";
import { createInit } from "../../lib/crypto/handshake.ts";
import { silentLogger } from "../../lib/base/log.ts";
import { ServerDriver } from "../../lib/driver/server_driver.ts";
import { runUdpEcho } from "../../tools/traffic.ts";
import { MemoryNetwork } from "../../lib/io/memory_transport.ts";
import type { DatagramTransport } from "../../lib/io/transport.ts";

const LOCALHOST = "127.0.0.1";

Deno.test("target sockets beyond the server-wide limit are refused and counted; the rest work", async () => {
  const network = new MemoryNetwork();
  const echo = runUdpEcho({
    listen: { hostname: LOCALHOST, port: 0 },
    transport: network.bind({ hostname: LOCALHOST, port: 0 }),
  });
  const server = await ServerDriver.start({
    listen: [{ hostname: LOCALHOST, port: 0 }],
    target: { hostname: LOCALHOST, port: echo.address.port },
    logger: silentLogger,
    bind: network.bind,
    maxTargetSockets: 4,
  });
  const client = await ClientDriver.start({
    listen: { hostname: LOCALHOST, port: 0 },
    paths: [{ host: LOCALHOST, port: server.listeners[0].localAddress.port }],
    logger: silentLogger,
    bind: network.bind,
  });
  const applications: DatagramTransport[] = [];
  try {
    // Six applications: six flows, six target sockets wanted, four allowed.
    for (let index = 0; index < 6; index++) {
      applications.push(network.bind({ hostname: LOCALHOST, port: 0 }));
    }
    const echoed: number[] = [];
    const receivers = applications.map(async (application, index) => {
      const buffer = new Uint8Array(2048);
      try {
        await application.receive(buffer);
        echoed.push(index);
      } catch { /* closed: this one got no echo */ }
    });
    for (const application of applications) {
      await application.send(new TextEncoder().encode("hello"), client.listenAddress);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(server.flowCount, 4);
    assert.equal(server.targetCounters.flowLimit, 2);
    assert.deepEqual(echoed.sort(), [0, 1, 2, 3]);
    for (const application of applications) application.close();
    await Promise.all(receivers);
  } finally {
    for (const application of applications) application.close();
    await client.stop();
    await server.stop();
    await echo.stop();
  }
});

Deno.test("with several listening sockets, the answer leaves from the one the client sent to", async () => {
  const network = new MemoryNetwork();
  const server = await ServerDriver.start({
    listen: [{ hostname: "127.0.0.1", port: 0 }, { hostname: "127.0.0.1", port: 0 }],
    target: { hostname: "127.0.0.1", port: 9 },
    logger: silentLogger,
    bind: network.bind,
  });
  const client = network.bind({ hostname: "127.0.0.1", port: 0 });
  try {
    for (const [index, listener] of server.listeners.entries()) {
      const init = createInit(undefined, 0x1234 + index, 0, 1000 + index).init;
      await client.send(init, listener.localAddress);
      const [, from] = await client.receive(new Uint8Array(2048));
      assert.equal(from.port, listener.localAddress.port, `answer to listener ${index}`);
    }
  } finally {
    client.close();
    await server.stop();
  }
});
