/**
 * The local-interface watcher: which addresses are usable for `uplinks auto` and `dev INTERFACE`,
 * what changes between snapshots, and the poller that reports them (driven by injected lists).
 */
import assert from "node:assert/strict";
import { interfaceEntry as entry } from "./interface_fixtures.ts";
import {
  addressOfInterface,
  type InterfaceChange,
  InterfaceTracker,
  usableAddresses,
  watchInterfaces,
} from "../../lib/uplink/interfaces.ts";

/** What a typical laptop lists: loopback, Wi-Fi with both families, and link-local addresses. */
const LAPTOP: readonly Deno.NetworkInterfaceInfo[] = [
  entry("lo", "127.0.0.1"),
  entry("wlan0", "192.168.1.20"),
  entry("lo", "::1"),
  entry("wlan0", "2001:db8::20"),
  entry("wlan0", "fe80::1:2"),
  entry("usb0", "169.254.10.3"),
];

// ---------------------------------------------------------------------------------------------------
// usableAddresses

Deno.test("usableAddresses keeps routable IPv4 and IPv6 addresses in list order", () => {
  assert.deepEqual(usableAddresses(LAPTOP), [
    { interfaceName: "wlan0", address: "192.168.1.20", family: 4 },
    { interfaceName: "wlan0", address: "2001:db8::20", family: 6 },
  ]);
});

Deno.test("usableAddresses leaves out loopback and link-local addresses on any interface", () => {
  const list = [
    entry("eth0", "127.0.0.2"),
    entry("eth0", "::1"),
    entry("eth0", "169.254.0.1"),
    entry("eth0", "fe80::1"),
    entry("eth0", "FEBF::1"), // still fe80::/10
    entry("eth0", "0.0.0.0"),
    entry("eth0", "fec0::1"), // just past fe80::/10: not link-local
  ];
  assert.deepEqual(usableAddresses(list), [
    { interfaceName: "eth0", address: "fec0::1", family: 6 },
  ]);
});

Deno.test("usableAddresses leaves out the interface named lo even with a routable address", () => {
  assert.deepEqual(usableAddresses([entry("lo", "10.201.9.1"), entry("eth0", "10.0.0.2")]), [
    { interfaceName: "eth0", address: "10.0.0.2", family: 4 },
  ]);
});

Deno.test("usableAddresses leaves out the excluded interfaces", () => {
  const list = [entry("eth0", "10.0.0.2"), entry("docker0", "172.17.0.1"), entry("wg0", "fd00::2")];
  assert.deepEqual(usableAddresses(list, ["docker0", "wg0"]), [
    { interfaceName: "eth0", address: "10.0.0.2", family: 4 },
  ]);
});

Deno.test("usableAddresses lists every usable address of an interface, not only the first", () => {
  const list = [entry("eth0", "10.0.0.2"), entry("eth0", "10.0.0.3")];
  assert.deepEqual(usableAddresses(list).map((usable) => usable.address), [
    "10.0.0.2",
    "10.0.0.3",
  ]);
});

// ---------------------------------------------------------------------------------------------------
// addressOfInterface

Deno.test("addressOfInterface gives the interface's first usable address of the family", () => {
  const list = [
    entry("wlan0", "fe80::1:2"),
    entry("wlan0", "2001:db8::20"),
    entry("wlan0", "2001:db8::21"),
    entry("wlan0", "192.168.1.20"),
  ];
  assert.equal(addressOfInterface(list, "wlan0", 6), "2001:db8::20");
  assert.equal(addressOfInterface(list, "wlan0", 4), "192.168.1.20");
});

Deno.test("addressOfInterface is undefined for a missing family or interface", () => {
  const list = [entry("wwan0", "10.64.0.7"), entry("wwan0", "fe80::7")];
  assert.equal(addressOfInterface(list, "wwan0", 6), undefined);
  assert.equal(addressOfInterface(list, "eth9", 4), undefined);
});

// ---------------------------------------------------------------------------------------------------
// InterfaceTracker

Deno.test("InterfaceTracker reports every usable address as added on the first snapshot", () => {
  const tracker = new InterfaceTracker();
  assert.deepEqual(tracker.update(LAPTOP), [
    { kind: "added", entry: { interfaceName: "wlan0", address: "192.168.1.20", family: 4 } },
    { kind: "added", entry: { interfaceName: "wlan0", address: "2001:db8::20", family: 6 } },
  ]);
});

Deno.test("InterfaceTracker reports nothing when the snapshot is unchanged", () => {
  const tracker = new InterfaceTracker();
  tracker.update(LAPTOP);
  assert.deepEqual(tracker.update([...LAPTOP].reverse()), []);
});

Deno.test("InterfaceTracker reports an interface that appears as added", () => {
  const tracker = new InterfaceTracker();
  tracker.update([entry("eth0", "10.0.0.2")]);
  assert.deepEqual(tracker.update([entry("eth0", "10.0.0.2"), entry("wwan0", "10.64.0.7")]), [
    { kind: "added", entry: { interfaceName: "wwan0", address: "10.64.0.7", family: 4 } },
  ]);
});

Deno.test("InterfaceTracker reports an interface that disappears as removed", () => {
  const tracker = new InterfaceTracker();
  tracker.update([entry("eth0", "10.0.0.2"), entry("wwan0", "10.64.0.7")]);
  assert.deepEqual(tracker.update([entry("eth0", "10.0.0.2")]), [
    { kind: "removed", entry: { interfaceName: "wwan0", address: "10.64.0.7", family: 4 } },
  ]);
  assert.deepEqual(tracker.current(), [
    { interfaceName: "eth0", address: "10.0.0.2", family: 4 },
  ]);
});

Deno.test("InterfaceTracker reports a changed address as one readdressed", () => {
  const tracker = new InterfaceTracker();
  tracker.update([entry("wwan0", "10.64.0.7")]);
  assert.deepEqual(tracker.update([entry("wwan0", "10.64.3.9")]), [
    { kind: "readdressed", interfaceName: "wwan0", family: 4, from: "10.64.0.7", to: "10.64.3.9" },
  ]);
  assert.deepEqual(tracker.current(), [
    { interfaceName: "wwan0", address: "10.64.3.9", family: 4 },
  ]);
});

Deno.test("InterfaceTracker readdresses IPv6 alone when only the IPv6 address of an interface changes", () => {
  const tracker = new InterfaceTracker();
  tracker.update([entry("eth0", "10.0.0.2"), entry("eth0", "2001:db8::2")]);
  assert.deepEqual(tracker.update([entry("eth0", "10.0.0.2"), entry("eth0", "2001:db8:1::2")]), [
    {
      kind: "readdressed",
      interfaceName: "eth0",
      family: 6,
      from: "2001:db8::2",
      to: "2001:db8:1::2",
    },
  ]);
});

Deno.test("InterfaceTracker tracks both families of one interface apart", () => {
  const tracker = new InterfaceTracker();
  tracker.update([entry("eth0", "10.0.0.2"), entry("eth0", "2001:db8::2")]);
  assert.deepEqual(tracker.update([entry("eth0", "2001:db8::2")]), [
    { kind: "removed", entry: { interfaceName: "eth0", address: "10.0.0.2", family: 4 } },
  ]);
  assert.deepEqual(tracker.current(), [
    { interfaceName: "eth0", address: "2001:db8::2", family: 6 },
  ]);
});

Deno.test("InterfaceTracker keeps its address while a second one appears on the same interface", () => {
  const tracker = new InterfaceTracker();
  tracker.update([entry("eth0", "10.0.0.2")]);
  assert.deepEqual(tracker.update([entry("eth0", "10.0.0.9"), entry("eth0", "10.0.0.2")]), []);
  assert.deepEqual(tracker.update([entry("eth0", "10.0.0.9")]), [
    { kind: "readdressed", interfaceName: "eth0", family: 4, from: "10.0.0.2", to: "10.0.0.9" },
  ]);
});

Deno.test("InterfaceTracker never reports an excluded interface", () => {
  const tracker = new InterfaceTracker(["docker0"]);
  assert.deepEqual(tracker.update([entry("docker0", "172.17.0.1")]), []);
  assert.deepEqual(tracker.update([entry("docker0", "172.18.0.1")]), []);
  assert.deepEqual(tracker.current(), []);
});

Deno.test("InterfaceTracker ignores an interface left with only link-local and loopback addresses", () => {
  const tracker = new InterfaceTracker();
  tracker.update([entry("usb0", "169.254.3.3"), entry("usb0", "fe80::3"), entry("lo", "::1")]);
  assert.deepEqual(tracker.current(), []);
  tracker.update([entry("usb0", "192.168.42.3")]);
  assert.deepEqual(tracker.update([entry("usb0", "169.254.3.3")]), [
    { kind: "removed", entry: { interfaceName: "usb0", address: "192.168.42.3", family: 4 } },
  ]);
});

Deno.test("InterfaceTracker lists removals before readdressings and additions", () => {
  const tracker = new InterfaceTracker();
  tracker.update([entry("eth0", "10.0.0.2"), entry("wlan0", "192.168.1.20")]);
  const changes = tracker.update([entry("wwan0", "10.64.0.7"), entry("eth0", "10.0.0.3")]);
  assert.deepEqual(changes.map((change) => change.kind), ["removed", "added", "readdressed"]);
});

// ---------------------------------------------------------------------------------------------------
// watchInterfaces

/** Resolves once `condition()` holds, checking every few milliseconds (rejects after 2 s). */
async function eventually(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 2000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

Deno.test("watchInterfaces reports the first look, then only what changed", async () => {
  let snapshot = [entry("eth0", "10.0.0.2")];
  const reported: InterfaceChange[][] = [];
  const watcher = watchInterfaces({
    intervalMs: 5,
    read: () => snapshot,
    onChanges: (changes) => reported.push(changes),
  });
  try {
    await eventually(() => reported.length === 1, "the first look");
    snapshot = [entry("eth0", "10.0.0.2"), entry("wwan0", "10.64.0.7")];
    await eventually(() => reported.length === 2, "the added interface");
    await new Promise((resolve) => setTimeout(resolve, 30)); // several unchanged looks
    assert.deepEqual(reported, [
      [{ kind: "added", entry: { interfaceName: "eth0", address: "10.0.0.2", family: 4 } }],
      [{ kind: "added", entry: { interfaceName: "wwan0", address: "10.64.0.7", family: 4 } }],
    ]);
  } finally {
    watcher.stop();
  }
});

Deno.test("watchInterfaces leaves out the excluded interfaces", async () => {
  const reported: InterfaceChange[][] = [];
  const watcher = watchInterfaces({
    intervalMs: 5,
    excluded: ["docker0"],
    read: () => [entry("docker0", "172.17.0.1"), entry("eth0", "10.0.0.2")],
    onChanges: (changes) => reported.push(changes),
  });
  try {
    await eventually(() => reported.length === 1, "the first look");
    assert.deepEqual(reported[0].map((change) => change.kind === "added" && change.entry), [
      { interfaceName: "eth0", address: "10.0.0.2", family: 4 },
    ]);
  } finally {
    watcher.stop();
  }
});

Deno.test("watchInterfaces reports a failing read through onError and keeps watching", async () => {
  let reads = 0;
  const errors: unknown[] = [];
  const reported: InterfaceChange[][] = [];
  const watcher = watchInterfaces({
    intervalMs: 5,
    read: () => {
      reads++;
      if (reads <= 2) throw new Error(`read ${reads} failed`);
      return [entry("eth0", "10.0.0.2")];
    },
    onChanges: (changes) => reported.push(changes),
    onError: (error) => errors.push(error),
  });
  try {
    await eventually(() => reported.length === 1, "a look after the failures");
    assert.deepEqual(errors.map((error) => (error as Error).message), [
      "read 1 failed",
      "read 2 failed",
    ]);
  } finally {
    watcher.stop();
  }
});

Deno.test("watchInterfaces passes an error thrown by onChanges to onError and keeps watching", async () => {
  let snapshot = [entry("eth0", "10.0.0.2")];
  const errors: unknown[] = [];
  let calls = 0;
  const watcher = watchInterfaces({
    intervalMs: 5,
    read: () => snapshot,
    onChanges: () => {
      calls++;
      if (calls === 1) throw new Error("consumer failed");
    },
    onError: (error) => errors.push(error),
  });
  try {
    await eventually(() => errors.length === 1, "the consumer's error");
    snapshot = [entry("eth0", "10.0.0.3")];
    await eventually(() => calls === 2, "the next change");
    assert.equal((errors[0] as Error).message, "consumer failed");
  } finally {
    watcher.stop();
  }
});

Deno.test("watchInterfaces reads no more once stopped, even when stopped from onChanges", async () => {
  let reads = 0;
  const watcher = watchInterfaces({
    intervalMs: 5,
    read: () => {
      reads++;
      return [entry("eth0", `10.0.0.${reads}`)];
    },
    onChanges: () => watcher.stop(),
  });
  try {
    await eventually(() => reads === 1, "the first look");
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(reads, 1);
  } finally {
    watcher.stop();
  }
});

Deno.test("watchInterfaces stopped at once never reads", async () => {
  let reads = 0;
  const watcher = watchInterfaces({
    read: () => {
      reads++;
      return [];
    },
    onChanges: () => {},
  });
  watcher.stop();
  watcher.stop();
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(reads, 0);
});
