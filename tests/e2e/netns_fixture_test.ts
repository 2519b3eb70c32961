/**
 * The two-uplink namespace network (tests/e2e/netns.ts) does what the end-to-end tests rely on:
 * datagrams bound to an uplink's address leave through it and arrive with that source; blackhole,
 * setLink, readdress and addUplink change exactly that; disposal leaves nothing behind.
 *
 * Datagrams are sent by `deno eval` in the client host and received by a `deno eval` listener on
 * the service address in the server host. Where namespaces cannot be made (not root), or nft is
 * missing, the tests are reported as ignored with the reason printed (in CI they run, and fail).
 */

import assert from "node:assert/strict";
import type { ProcessHandle } from "./harness.ts";
import {
  createUplinkNetwork,
  type UplinkName,
  type UplinkNetwork,
  uplinkNetworkIgnoreReason,
} from "./netns.ts";

/** How long a datagram that should arrive may take (it takes well under a millisecond). */
const ARRIVAL_TIMEOUT_MS = 3_000;
/** How long a datagram that should not arrive is given to show up anyway. */
const ABSENCE_WAIT_MS = 300;

const ignore = (await uplinkNetworkIgnoreReason("netns_fixture_test")) !== undefined;

/** Prints `listening PORT`, then `got PAYLOAD from ADDRESS` for each datagram. */
const LISTENER_CODE = `
const socket = Deno.listenDatagram({ transport: "udp", hostname: Deno.args[0], port: 0 });
console.log("listening " + socket.addr.port);
for await (const [data, from] of socket) {
  console.log("got " + new TextDecoder().decode(data) + " from " + from.hostname);
}
`;

/** Sends one datagram from a socket bound to args[0]; prints `sent` or `failed ERROR`. */
const SENDER_CODE = `
const [bindAddress, hostname, port, payload] = Deno.args;
let socket;
try {
  socket = Deno.listenDatagram({ transport: "udp", hostname: bindAddress, port: 0 });
  await socket.send(new TextEncoder().encode(payload), { transport: "udp", hostname, port: Number(port) });
  console.log("sent");
} catch (error) {
  console.log("failed " + error.name + ": " + error.message);
} finally {
  socket?.close();
}
`;

function denoEval(code: string, args: readonly string[]): string[] {
  return [Deno.execPath(), "eval", "--no-config", "--unstable-net", code, ...args];
}

/** A UDP listener on the service address of the server host. */
interface Listener {
  readonly process: ProcessHandle;
  readonly port: number;
}

async function startListener(network: UplinkNetwork): Promise<Listener> {
  const process = network.start("server", denoEval(LISTENER_CODE, [network.serviceAddress]), {
    name: "listener",
    env: { NO_COLOR: "1" },
  });
  const [, port] = await process.waitForLine(/^listening (\d+)$/);
  return { process, port: Number(port) };
}

/** Sends `payload` from a socket bound to `bindAddress` in the client host; "sent" or why not. */
async function send(
  network: UplinkNetwork,
  listener: Listener,
  bindAddress: string,
  payload: string,
): Promise<string> {
  const argv = denoEval(SENDER_CODE, [
    bindAddress,
    network.serviceAddress,
    String(listener.port),
    payload,
  ]);
  const result = await network.run("client", argv);
  return result.stdout.trim();
}

/** Sends `payload` from the uplink's address and returns the source the listener saw. */
async function sendAndReceive(
  network: UplinkNetwork,
  listener: Listener,
  uplink: UplinkName,
  payload: string,
): Promise<string> {
  const address = network.uplinks[uplink]?.clientAddress;
  assert.ok(address !== undefined, `no uplink ${uplink}`);
  assert.equal(await send(network, listener, address, payload), "sent");
  const [, source] = await listener.process.waitForLine(
    new RegExp(`^got ${payload} from (\\S+)$`),
    ARRIVAL_TIMEOUT_MS,
  );
  return source;
}

/** Asserts that `payload` has not arrived, after giving it time to. */
async function assertNotArrived(listener: Listener, payload: string): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ABSENCE_WAIT_MS));
  assert.ok(
    !listener.process.output().includes(`got ${payload} `),
    `${payload} arrived:\n${listener.process.output()}`,
  );
}

async function namespaceList(): Promise<string> {
  const output = await new Deno.Command("ip", { args: ["netns", "list"], stdin: "null" }).output();
  return new TextDecoder().decode(output.stdout);
}

Deno.test({
  name: "datagrams bound to uplink a's and b's addresses arrive with those sources",
  ignore,
  async fn() {
    await using network = await createUplinkNetwork();
    const listener = await startListener(network);
    assert.equal(
      await sendAndReceive(network, listener, "a", "a1"),
      network.uplinks.a.clientAddress,
    );
    assert.equal(
      await sendAndReceive(network, listener, "b", "b1"),
      network.uplinks.b.clientAddress,
    );
  },
});

Deno.test({
  name: "names are short and unique, and the addresses follow the plan",
  ignore,
  async fn() {
    await using first = await createUplinkNetwork();
    await using second = await createUplinkNetwork();
    assert.notEqual(first.suffix, second.suffix);
    for (const name of [first.clientNamespace, first.serverNamespace]) {
      assert.match(name, /^mp[cs]-[0-9a-f]{4}$/);
    }
    const octet = Number(first.serviceAddress.split(".")[1]);
    assert.ok(octet >= 200 && octet <= 254, first.serviceAddress);
    assert.equal(first.serviceAddress, `10.${octet}.9.1`);
    assert.deepEqual(first.uplinks.a, {
      name: "a",
      interfaceName: "upa",
      clientAddress: `10.${octet}.1.2`,
      serverAddress: `10.${octet}.1.1`,
      subnet: `10.${octet}.1.0/24`,
      routingTable: 101,
    });
    assert.equal(first.uplinks.b.clientAddress, `10.${octet}.2.2`);
    assert.equal(first.uplinks.c, undefined);
    const addresses = await first.run("server", ["ip", "-4", "-o", "address", "show", "dev", "lo"]);
    assert.match(
      addresses.stdout,
      new RegExp(`inet ${first.serviceAddress.replaceAll(".", "\\.")}/32`),
    );
  },
});

Deno.test({
  name: "a blackholed uplink drops silently while the other still delivers; restore brings it back",
  ignore,
  async fn() {
    await using network = await createUplinkNetwork();
    const listener = await startListener(network);
    await network.blackhole("a");
    // The send succeeds: the drop happens past the socket, as on a path that died further on.
    assert.equal(await send(network, listener, network.uplinks.a.clientAddress, "a-lost"), "sent");
    assert.equal(
      await sendAndReceive(network, listener, "b", "b-alive"),
      network.uplinks.b.clientAddress,
    );
    await assertNotArrived(listener, "a-lost");

    await network.restore("a");
    assert.equal(
      await sendAndReceive(network, listener, "a", "a-back"),
      network.uplinks.a.clientAddress,
    );
    const tables = await network.run("client", ["nft", "list", "tables"]);
    assert.equal(tables.stdout.trim(), "");
  },
});

Deno.test({
  name: "readdress changes the source the server sees, and the old address is gone",
  ignore,
  async fn() {
    await using network = await createUplinkNetwork();
    const listener = await startListener(network);
    const oldAddress = network.uplinks.b.clientAddress;
    const newAddress = oldAddress.replace(/\.2$/, ".77");
    const readdressed = await network.readdress("b", newAddress);
    assert.equal(readdressed.clientAddress, newAddress);
    assert.equal(network.uplinks.b.clientAddress, newAddress);
    assert.equal(await sendAndReceive(network, listener, "b", "b-new"), newAddress);
    assert.match(await send(network, listener, oldAddress, "b-old"), /^failed AddrNotAvailable/);
    // Uplink a, whose table the main default route shares, survives its own readdressing too.
    const newA = network.uplinks.a.clientAddress.replace(/\.2$/, ".3");
    await network.readdress("a", newA);
    assert.equal(await sendAndReceive(network, listener, "a", "a-new"), newA);
    await assert.rejects(network.readdress("a", "192.0.2.9"), RangeError);
  },
});

Deno.test({
  name: "a downed uplink fails its sends without leaking through the other; up again it delivers",
  ignore,
  async fn() {
    await using network = await createUplinkNetwork();
    const listener = await startListener(network);
    for (const uplink of ["a", "b"] as const) {
      await network.setLink(uplink, "down");
      const address = network.uplinks[uplink].clientAddress;
      assert.match(
        await send(network, listener, address, `${uplink}-down`),
        /^failed .*No route to host/,
      );
      await network.setLink(uplink, "up");
      assert.equal(await sendAndReceive(network, listener, uplink, `${uplink}-up`), address);
      await assertNotArrived(listener, `${uplink}-down`);
    }
    const routes = await network.run("client", ["ip", "route", "show", "default"]);
    assert.equal(routes.stdout.trim(), `default via ${network.uplinks.a.serverAddress} dev upa`);
  },
});

Deno.test({
  name: "addUplink c adds a third working uplink with its own source",
  ignore,
  async fn() {
    await using network = await createUplinkNetwork();
    const listener = await startListener(network);
    const uplink = await network.addUplink("c");
    assert.equal(network.uplinks.c, uplink);
    assert.equal(uplink.interfaceName, "upc");
    assert.equal(uplink.routingTable, 103);
    assert.equal(await sendAndReceive(network, listener, "c", "c1"), uplink.clientAddress);
    await assert.rejects(network.addUplink("c"), /exists already/);
  },
});

Deno.test({
  name: "dispose kills what was started, deletes both namespaces, and may be called twice",
  ignore,
  async fn() {
    const network = await createUplinkNetwork();
    let child: Deno.ChildProcess | undefined;
    let handle: ProcessHandle | undefined;
    let orphanPid = 0;
    try {
      child = network.spawn("client", ["sleep", "60"]);
      handle = network.start("server", ["sh", "-c", "sleep 60 & echo orphan $!; wait"]);
      orphanPid = Number((await handle.waitForLine(/^orphan (\d+)$/))[1]);
      await network.blackhole("b");
      assert.match(await namespaceList(), new RegExp(network.clientNamespace));
    } finally {
      await network.dispose();
    }
    await network.dispose();
    assert.equal((await child!.status).signal, "SIGTERM");
    assert.equal(await handle!.exited, 128 + 15);
    assert.ok(!isRunning(orphanPid), `the sleep left by the shell (pid ${orphanPid}) still runs`);
    const listed = await namespaceList();
    assert.ok(!listed.includes(network.clientNamespace), listed);
    assert.ok(!listed.includes(network.serverNamespace), listed);
    assert.throws(() => network.spawn("client", ["true"]), /disposed/);
  },
});

Deno.test({
  name: "the interface watcher in the client host sees uplink c appear and uplink b readdressed",
  ignore,
  async fn() {
    await using network = await createUplinkNetwork();
    const moduleUrl = new URL("../../lib/uplink/interfaces.ts", import.meta.url).href;
    const watcherCode = `
import { watchInterfaces } from ${JSON.stringify(moduleUrl)};
watchInterfaces({ intervalMs: 50, onChanges: (changes) => {
  for (const change of changes) console.log("change " + JSON.stringify(change));
} });
`;
    const watcher = network.start("client", denoEval(watcherCode, []), { name: "watcher" });
    const { a, b } = network.uplinks;
    const added = (uplink: typeof a) =>
      new RegExp(
        `"added".*"interfaceName":"${uplink.interfaceName}","address":"${uplink.clientAddress}"`,
      );
    await eventually(() => added(a).test(watcher.output()) && added(b).test(watcher.output()));
    const c = await network.addUplink("c");
    await watcher.waitForLine(added(c));
    const newB = b.clientAddress.replace(/\.2$/, ".9");
    await network.readdress("b", newB);
    // One "readdressed", or, when a poll fell between the old address going and the new one coming
    // (as a DHCP renewal may also look), "removed" then "added".
    await watcher.waitForLine(
      new RegExp(
        `"readdressed","interfaceName":"upb","family":4,"from":"${b.clientAddress}","to":"${newB}"|` +
          `"added","entry":\\{"interfaceName":"upb","address":"${newB}"`,
      ),
    );
    // A downed link keeps its address, and Deno lists it: the watcher reports nothing.
    const before = watcher.output().length;
    await network.setLink("a", "down");
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.doesNotMatch(watcher.output().slice(before), /"removed"/);
  },
});

/** Resolves once `condition()` holds (checked every 20 ms), or rejects after the arrival timeout. */
async function eventually(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + ARRIVAL_TIMEOUT_MS;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`not true within ${ARRIVAL_TIMEOUT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** True while `pid` exists and is not a zombie. */
function isRunning(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(Deno.readTextFileSync(`/proc/${pid}/status`));
  } catch {
    return false;
  }
}
