/**
 * Paths bound to interfaces: the uplink manager driven by injected interface lists (added, removed,
 * readdressed, excluded), and the client driver following an injected list on the in-memory
 * network.
 */
import assert from "node:assert/strict";
import { interfaceEntry as entry } from "./interface_fixtures.ts";
import { ClientDriver } from "../../lib/driver/client_driver.ts";
import { InterfaceTracker } from "../../lib/uplink/interfaces.ts";
import { recordingLogger } from "../../lib/base/log.ts";
import { type UplinkAction, UplinkManager } from "../../lib/uplink/uplinks.ts";
import { clientStatus } from "../../lib/ops/status.ts";
import { MemoryNetwork } from "../../lib/io/memory_transport.ts";

/** A manager and its tracker, fed whole lists as the watcher would. */
function managerWith(
  manager: UplinkManager,
): (list: Deno.NetworkInterfaceInfo[]) => UplinkAction[] {
  const tracker = new InterfaceTracker();
  return (list) => manager.apply(tracker.update(list));
}

// ---------------------------------------------------------------------------------------------------
// uplinks auto

Deno.test("uplinks auto adds a path per interface with an address of the server's family", () => {
  const look = managerWith(new UplinkManager({ family: 4, excluded: [] }));
  const actions = look([
    entry("lo", "127.0.0.1"),
    entry("eth0", "192.0.2.10"),
    entry("wwan0", "198.51.100.7"),
    entry("only6", "2001:db8::1"),
    entry("usb0", "169.254.3.3"),
  ]);
  assert.deepEqual(actions, [
    { kind: "add-uplink", interfaceName: "eth0" },
    { kind: "add-uplink", interfaceName: "wwan0" },
  ]);
});

Deno.test("uplinks auto leaves out excluded interfaces", () => {
  const manager = new UplinkManager({ family: 4, excluded: ["docker0"] });
  const look = managerWith(manager);
  const actions = look([entry("docker0", "172.17.0.1"), entry("eth0", "192.0.2.10")]);
  assert.deepEqual(actions, [{ kind: "add-uplink", interfaceName: "eth0" }]);
  assert.deepEqual(manager.uplinks, ["eth0"]);
});

Deno.test("uplinks auto adds an interface that appears and removes one that vanishes", () => {
  const look = managerWith(new UplinkManager({ family: 4, excluded: [] }));
  look([entry("eth0", "192.0.2.10")]);
  assert.deepEqual(look([entry("eth0", "192.0.2.10"), entry("wwan0", "198.51.100.7")]), [
    { kind: "add-uplink", interfaceName: "wwan0" },
  ]);
  assert.deepEqual(look([entry("wwan0", "198.51.100.7")]), [
    { kind: "remove-uplink", interfaceName: "eth0" },
  ]);
});

Deno.test("uplinks auto rebinds a readdressed interface's path instead of replacing it", () => {
  const manager = new UplinkManager({ family: 4, excluded: [] });
  const look = managerWith(manager);
  look([entry("wwan0", "198.51.100.7")]);
  assert.equal(manager.addDevice(3, "wwan0", 4), "198.51.100.7");
  assert.deepEqual(look([entry("wwan0", "198.51.100.99")]), [
    { kind: "bind", pathIndex: 3, address: "198.51.100.99" },
  ]);
});

Deno.test("uplinks auto for an IPv6 server uses interfaces with an IPv6 address", () => {
  const look = managerWith(new UplinkManager({ family: 6, excluded: [] }));
  assert.deepEqual(
    look([entry("eth0", "192.0.2.10"), entry("wwan0", "2001:db8::7"), entry("wwan0", "fe80::7")]),
    [{ kind: "add-uplink", interfaceName: "wwan0" }],
  );
});

Deno.test("a first look replayed changes nothing", () => {
  const manager = new UplinkManager({ family: 4, excluded: [] });
  const list = [entry("eth0", "192.0.2.10")];
  managerWith(manager)(list);
  manager.addDevice(0, "eth0", 4);
  assert.deepEqual(managerWith(manager)(list), []);
});

// ---------------------------------------------------------------------------------------------------
// dev INTERFACE

Deno.test("a dev path's interface without an address waits, then binds when one appears", () => {
  const manager = new UplinkManager();
  const look = managerWith(manager);
  look([entry("eth0", "192.0.2.10")]);
  assert.equal(manager.addDevice(0, "wwan0", 4), undefined);
  assert.deepEqual(look([entry("eth0", "192.0.2.10"), entry("wwan0", "198.51.100.7")]), [
    { kind: "bind", pathIndex: 0, address: "198.51.100.7" },
  ]);
});

Deno.test("a dev path follows its interface's address of the destination's family only", () => {
  const manager = new UplinkManager();
  const look = managerWith(manager);
  look([entry("wwan0", "198.51.100.7"), entry("wwan0", "2001:db8::7")]);
  assert.equal(manager.addDevice(0, "wwan0", 6), "2001:db8::7");
  assert.deepEqual(look([entry("wwan0", "198.51.100.8"), entry("wwan0", "2001:db8::7")]), []);
  assert.deepEqual(look([entry("wwan0", "198.51.100.8"), entry("wwan0", "2001:db8::8")]), [
    { kind: "bind", pathIndex: 0, address: "2001:db8::8" },
  ]);
});

Deno.test("a dev path whose interface loses its address is told to wait", () => {
  const manager = new UplinkManager();
  const look = managerWith(manager);
  look([entry("wwan0", "198.51.100.7")]);
  manager.addDevice(0, "wwan0", 4);
  assert.deepEqual(look([]), [{ kind: "bind", pathIndex: 0, address: undefined }]);
});

Deno.test("exclude does not apply to an explicit dev path", () => {
  const manager = new UplinkManager({ family: 4, excluded: ["wwan0"] });
  const look = managerWith(manager);
  assert.deepEqual(look([entry("wwan0", "198.51.100.7")]), []);
  assert.equal(manager.addDevice(0, "wwan0", 4), "198.51.100.7");
});

Deno.test("a removed dev path is no longer followed", () => {
  const manager = new UplinkManager();
  const look = managerWith(manager);
  look([entry("wwan0", "198.51.100.7")]);
  manager.addDevice(0, "wwan0", 4);
  manager.removeDevice(0);
  assert.deepEqual(look([entry("wwan0", "198.51.100.8")]), []);
});

// ---------------------------------------------------------------------------------------------------
// The driver, on the in-memory network

/** The address the fake interfaces carry (the in-memory network binds any address). */
const address = "192.0.2.7";

/** Resolves once `condition()` holds, checking every few milliseconds (rejects after 3 s). */
async function eventually(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 3000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A socket on 127.0.0.1 of `network` that records the source address of everything it receives. */
function sink(
  network: MemoryNetwork,
): { port: number; sources: Set<string>; close(): Promise<void> } {
  const socket = network.bind({ hostname: "127.0.0.1", port: 0 });
  const sources = new Set<string>();
  const loop = (async () => {
    const buffer = new Uint8Array(65536);
    try {
      for (;;) sources.add((await socket.receive(buffer))[1].hostname);
    } catch {
      // closed
    }
  })();
  return {
    port: socket.localAddress.port,
    sources,
    close: async () => {
      socket.close();
      await loop;
    },
  };
}

Deno.test({
  name: "the driver binds a dev path when its interface gets an address, and unbinds it after",
  async fn() {
    const network = new MemoryNetwork();
    const server = sink(network);
    let list: Deno.NetworkInterfaceInfo[] = [];
    const logger = recordingLogger();
    const driver = await ClientDriver.start({
      listen: { hostname: "127.0.0.1", port: 0 },
      paths: [{ host: "127.0.0.1", port: server.port, label: "via-fake0", device: "fake0" }],
      logger,
      bind: network.bind,
      interfaces: { read: () => list, intervalMs: 20 },
    });
    try {
      const path = () => clientStatus(driver, performance.now()).paths[0];
      assert.equal(path().local, "");
      assert.equal(path().interface, "fake0");
      assert.ok(logger.records.some((record) => record.message.includes("waits for an address")));
      list = [entry("fake0", address)];
      await eventually(() => server.sources.has(address), "a datagram from the new address");
      assert.match(path().local, new RegExp(`^${address.replaceAll(".", "\\.")}:\\d+$`));
      list = [];
      await eventually(() => path().local === "", "the path to wait again");
      await eventually(() => (path().sendErrors["no-address"] ?? 0) > 0, "a send counted");
    } finally {
      await driver.stop();
      await server.close();
    }
  },
});

Deno.test({
  name: "the driver makes a path per interface for uplinks auto, named after it, and drops it",
  async fn() {
    const network = new MemoryNetwork();
    const server = sink(network);
    let list = [entry("lo", "127.0.0.1"), entry("fake0", address)];
    const driver = await ClientDriver.start({
      listen: { hostname: "127.0.0.1", port: 0 },
      paths: [],
      logger: recordingLogger(),
      bind: network.bind,
      uplinksAuto: { host: "127.0.0.1", port: server.port, excluded: ["fake9"] },
      interfaces: { read: () => list, intervalMs: 20 },
    });
    try {
      const names = () => clientStatus(driver, performance.now()).paths.map((path) => path.name);
      assert.deepEqual(names(), ["fake0"]);
      await eventually(() => server.sources.has(address), "a datagram from the uplink");
      list = [...list, entry("fake1", address), entry("fake9", address)];
      await eventually(() => names().length === 2, "the new uplink's path");
      assert.deepEqual(names(), ["fake0", "fake1"]);
      list = [entry("fake1", address)];
      await eventually(() => names().length === 1, "the vanished uplink's path to go");
      assert.deepEqual(names(), ["fake1"]);
      assert.equal(clientStatus(driver, performance.now()).paths[0].interface, "fake1");
    } finally {
      await driver.stop();
      await server.close();
    }
  },
});

Deno.test({
  name: "the driver re-opens a silent path on a fresh source port",
  async fn() {
    const network = new MemoryNetwork();
    const server = sink(network);
    const logger = recordingLogger();
    const driver = await ClientDriver.start({
      listen: { hostname: "127.0.0.1", port: 0 },
      paths: [{ host: "127.0.0.1", port: server.port }],
      logger,
      bind: network.bind,
      reopenAfterMs: 300,
    });
    try {
      const local = () => clientStatus(driver, performance.now()).paths[0].local;
      const first = local();
      await eventually(() => local() !== first, "a new source port");
      assert.ok(logger.records.some((record) => record.message.includes("fresh source port")));
    } finally {
      await driver.stop();
      await server.close();
    }
  },
});

Deno.test("the driver takes a path out of service by name or index, and says when there is none", async () => {
  const driver = await ClientDriver.start({
    listen: { hostname: "127.0.0.1", port: 0 },
    paths: [{ host: "127.0.0.1", port: 9, label: "one" }],
    logger: recordingLogger(),
    bind: new MemoryNetwork().bind,
  });
  try {
    const inService = () => clientStatus(driver, performance.now()).paths[0].inService;
    const supported = "setPathInService" in driver.core;
    assert.equal(driver.setPathInService("one", false), supported ? "ok" : "unsupported");
    if (supported) assert.equal(inService(), false);
    assert.equal(driver.setPathInService("0", true), supported ? "ok" : "unsupported");
    assert.equal(inService(), true);
    assert.equal(driver.setPathInService("two", false), "no-such-path");
  } finally {
    await driver.stop();
  }
});
