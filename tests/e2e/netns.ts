/**
 * A two-uplink network in Linux network namespaces, for end-to-end tests of multipath behaviour: a
 * client host and a server host joined by two veth pairs (uplinks a and b), with source policy
 * routing on the client so that a socket bound to an uplink's address leaves through that uplink.
 *
 * ```text
 *  client host  mpc-XXXX                                 server host  mps-XXXX
 *  ┌──────────────────────────────┐                     ┌──────────────────────────────────┐
 *  │ upa 10.N.1.2/24 ─────────────┼──── uplink a ───────┼─ upa 10.N.1.1/24                 │
 *  │ upb 10.N.2.2/24 ─────────────┼──── uplink b ───────┼─ upb 10.N.2.1/24                 │
 *  │ (upc 10.N.3.2/24, on demand) │                     │ lo  10.N.9.1/32 (the service)    │
 *  └──────────────────────────────┘                     └──────────────────────────────────┘
 * ```
 *
 * N is drawn per network in 200..254 and the names carry a random suffix, so that networks of
 * concurrent runs never meet. On the client, the main table's default route goes through uplink a;
 * `from <uplink address>` rules send each uplink's own traffic to its own table (101, 102, 103),
 * which holds a default route through that uplink and, behind it, an `unreachable` default: when an
 * uplink's link is down its traffic fails to send instead of leaking out through another uplink with
 * the wrong source. The server needs no routes of its own: both client /24s are on its links.
 *
 * ```ts ignore
 * if (!(await netnsAvailable())) return;
 * await using network = await createUplinkNetwork();
 * const server = network.start("server", [Deno.execPath(), "run", "--allow-all", "server.ts"]);
 * await network.blackhole("a");
 * ```
 *
 * Every method needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN): see {@link netnsAvailable}.
 */

import {
  commandExists,
  IN_CI,
  KILL_GRACE_MS,
  type ProcessHandle,
  spawnCommand,
} from "./harness.ts";
import type { SpawnOptions } from "./harness.ts";

/** Which end of the network a command runs in. */
export type Host = "client" | "server";
/** The uplinks: a and b exist from the start, c is added by {@link UplinkNetwork.addUplink}. */
export type UplinkName = "a" | "b" | "c";
/** The administrative state of a client-side uplink interface. */
export type LinkState = "up" | "down";

/** One uplink: a veth pair between the hosts, and the client's routing for its address. */
export interface Uplink {
  readonly name: UplinkName;
  /** The interface's name, the same on both hosts (`upa`, `upb`, `upc`). */
  readonly interfaceName: string;
  /** The client host's address on this uplink (what the server sees as the source). */
  readonly clientAddress: string;
  /** The server host's address on this uplink: the client's gateway through it. */
  readonly serverAddress: string;
  /** The uplink's /24, as `10.N.M.0/24`. */
  readonly subnet: string;
  /** The client's routing table for traffic from `clientAddress`. */
  readonly routingTable: number;
}

/** What {@link UplinkNetwork.run} returns. */
export interface CommandResult {
  readonly code: number;
  readonly success: boolean;
  readonly stdout: string;
  readonly stderr: string;
}

/** Options of {@link UplinkNetwork.run}. */
export interface RunOptions {
  /** Text written to the command's standard input (default: none, stdin is /dev/null). */
  readonly stdin?: string;
  /** Return a non-zero exit as a result instead of throwing (default false). */
  readonly allowFailure?: boolean;
}

/** Options of {@link createUplinkNetwork}. */
export interface UplinkNetworkOptions {
  /** The second octet of every address (default: random in 200..254). */
  readonly secondOctet?: number;
}

const PREFIX_LENGTH = 24;
/** The third octet of each uplink's /24, and of the server's service address. */
const UPLINK_THIRD_OCTET: Readonly<Record<UplinkName, number>> = { a: 1, b: 2, c: 3 };
const SERVICE_THIRD_OCTET = 9;
const CLIENT_HOST_PART = 2;
const SERVER_HOST_PART = 1;
/** The routing table (and rule priority) of uplink a; b and c follow. */
const FIRST_ROUTING_TABLE = 101;
/** Metric of the `unreachable` fallback behind each uplink table's default route. */
const FALLBACK_ROUTE_METRIC = 4096;
const SECOND_OCTET_MIN = 200;
const SECOND_OCTET_MAX = 254;
/** Tries at a fresh random suffix when a namespace of that name exists already. */
const NAME_ATTEMPTS = 5;
/** How often disposal looks whether the started processes have exited. */
const PROCESS_POLL_INTERVAL_MS = 25;

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/**
 * Builds the network (about 25 `ip` commands: 150 ms here; disposal 40 ms). When building fails
 * half-way, what was made is removed before the error is thrown.
 */
export async function createUplinkNetwork(
  options: UplinkNetworkOptions = {},
): Promise<UplinkNetwork> {
  // In CI the tests run even where this machine cannot build the network: they fail here, saying why.
  const unavailable = await uplinkNetworkUnavailableReason();
  if (unavailable !== undefined) {
    throw new Error(`the uplink network cannot be built here: ${unavailable} (CI must provide it)`);
  }
  return NamespaceNetwork.create(options);
}

/**
 * Why the tests that build an {@link UplinkNetwork} are ignored here, printed once as
 * `FILE: ignored: REASON`; undefined where they can run, and always in CI (`CI=true`), where they
 * must run and fail, in {@link createUplinkNetwork}, on what is missing.
 */
export async function uplinkNetworkIgnoreReason(file: string): Promise<string | undefined> {
  const reason = await uplinkNetworkUnavailableReason();
  if (reason === undefined || IN_CI) return undefined;
  console.log(`${file}: ignored: ${reason}`);
  return reason;
}

/** {@link netnsUnavailableReason}, or the blackhole's nft missing. */
async function uplinkNetworkUnavailableReason(): Promise<string | undefined> {
  return (await netnsUnavailableReason()) ??
    (commandExists("nft") ? undefined : "nft (nftables) is not on PATH");
}

/** A client host and a server host joined by uplinks, made by {@link createUplinkNetwork}. */
export interface UplinkNetwork extends AsyncDisposable {
  /** The random part of every name. */
  readonly suffix: string;
  readonly clientNamespace: string;
  readonly serverNamespace: string;
  /** The server host's address on its loopback, reachable through any uplink: where mpserver listens. */
  readonly serviceAddress: string;
  /** The uplinks as they are now (an uplink's record is replaced when it is readdressed). */
  readonly uplinks: { readonly a: Uplink; readonly b: Uplink; readonly c?: Uplink };
  /** The namespace of `host`. */
  namespace(host: Host): string;
  /**
   * Runs `argv` in `host` (`ip netns exec`) to its end and returns its output; throws, quoting it,
   * when it exits non-zero unless `allowFailure`.
   */
  run(host: Host, argv: readonly string[], options?: RunOptions): Promise<CommandResult>;
  /**
   * Starts `argv` in `host` (`ip netns exec`, which becomes the process: `pid` is the program's).
   * Stdin defaults to null and stdout and stderr to piped: read them, or pass "null", as a full pipe
   * blocks the child. Disposal kills it (SIGTERM, then SIGKILL), waits for it and cancels the
   * streams nobody took.
   */
  spawn(
    host: Host,
    argv: readonly string[],
    options?: Omit<Deno.CommandOptions, "args">,
  ): Deno.ChildProcess;
  /**
   * Starts `argv` in `host` as the harness's {@link spawnCommand} does, for its `waitForLine`;
   * disposal of the network disposes of the handle too.
   */
  start(host: Host, argv: readonly string[], options?: SpawnOptions): ProcessHandle;
  /**
   * Drops, silently, everything that enters or leaves the client's interface of `uplink`: sends
   * through it still succeed and nothing arrives, as when a path dies somewhere beyond the first
   * hop. An nftables netdev table on the interface's ingress and egress hooks (in the output hook, a
   * drop would fail the send with EPERM instead). Blackholing twice is blackholing once.
   */
  blackhole(uplink: UplinkName): Promise<void>;
  /** Undoes {@link blackhole} (nothing happens when the uplink is not blackholed). */
  restore(uplink: UplinkName): Promise<void>;
  /**
   * Sets the client's interface of `uplink` administratively up or down. Down, the kernel removes
   * its routes and sends from its address fail at once with EHOSTUNREACH ("No route to host", from
   * the uplink table's `unreachable` default); up again, its routes are put back.
   */
  setLink(uplink: UplinkName, state: LinkState): Promise<void>;
  /**
   * Gives the client's side of `uplink` a new address within its /24 (as a DHCP renewal or a mobile
   * reconnection would) and moves its policy rule and routes to it; returns the new record. Sockets
   * bound to the old address stop working. Throws a RangeError for an address outside the /24.
   */
  readdress(uplink: UplinkName, newAddress: string): Promise<Uplink>;
  /** Adds uplink c while the network runs (a new interface appearing on the client). */
  addUplink(uplink: "c"): Promise<Uplink>;
  /**
   * Kills every process started in the network and deletes both namespaces (which deletes the veth
   * pairs and the nftables tables in them). Safe to call more than once; never throws (a failure is
   * written to standard error). Also done, synchronously, if the test process exits first.
   */
  dispose(): Promise<void>;
}

/** The {@link UplinkNetwork}, with what building and disposal need. */
class NamespaceNetwork implements UplinkNetwork {
  /** Builds a network; what was made is removed again when building fails half-way. */
  static async create(options: UplinkNetworkOptions): Promise<NamespaceNetwork> {
    const secondOctet = options.secondOctet ??
      randomInteger(SECOND_OCTET_MIN, SECOND_OCTET_MAX);
    if (!Number.isInteger(secondOctet) || secondOctet < 0 || secondOctet > 255) {
      throw new RangeError(`secondOctet must be an integer in 0..255, got ${secondOctet}`);
    }
    for (let attempt = 1;; attempt++) {
      const network = new NamespaceNetwork(randomSuffix(), secondOctet);
      const created = await ip(["netns", "add", network.clientNamespace], true);
      if (!created.success) {
        if (/exists/i.test(created.stderr) && attempt < NAME_ATTEMPTS) continue;
        throw new Error(`ip netns add ${network.clientNamespace}: ${created.stderr.trim()}`);
      }
      network.#registerNamespace(network.clientNamespace);
      try {
        await network.#build();
      } catch (error) {
        await network.dispose();
        throw error;
      }
      return network;
    }
  }

  readonly suffix: string;
  readonly clientNamespace: string;
  readonly serverNamespace: string;
  readonly serviceAddress: string;
  readonly #secondOctet: number;
  #uplinks = new Map<UplinkName, Uplink>();
  readonly #linkStates = new Map<UplinkName, LinkState>();
  readonly #blackholed = new Set<UplinkName>();
  /** Namespaces made so far, deleted on disposal. */
  readonly #namespaces: string[] = [];
  /** Stops each process started in the network, and waits for it. */
  readonly #processes = new Map<number, () => Promise<void>>();
  #disposal: Promise<void> | undefined;
  readonly #onUnload = () => this.#disposeSynchronously();

  private constructor(suffix: string, secondOctet: number) {
    this.suffix = suffix;
    this.clientNamespace = `mpc-${suffix}`;
    this.serverNamespace = `mps-${suffix}`;
    this.#secondOctet = secondOctet;
    this.serviceAddress = `10.${secondOctet}.${SERVICE_THIRD_OCTET}.1`;
  }

  get uplinks(): { readonly a: Uplink; readonly b: Uplink; readonly c?: Uplink } {
    const c = this.#uplinks.get("c");
    return {
      a: this.#uplinks.get("a")!,
      b: this.#uplinks.get("b")!,
      ...(c === undefined ? {} : { c }),
    };
  }

  namespace(host: Host): string {
    return host === "client" ? this.clientNamespace : this.serverNamespace;
  }

  async run(host: Host, argv: readonly string[], options: RunOptions = {}): Promise<CommandResult> {
    this.#assertOpen();
    const ipArguments = ["netns", "exec", this.namespace(host), ...argv];
    const result = await runCommand("ip", ipArguments, options.stdin);
    if (!result.success && !options.allowFailure) {
      throw new Error(
        `${argv.join(" ")} in the ${host} host exited with ${result.code}: ` +
          `${(result.stderr || result.stdout).trim()}`,
      );
    }
    return result;
  }

  spawn(
    host: Host,
    argv: readonly string[],
    options: Omit<Deno.CommandOptions, "args"> = {},
  ): Deno.ChildProcess {
    this.#assertOpen();
    const stdio = {
      stdin: options.stdin ?? "null",
      stdout: options.stdout ?? "piped",
      stderr: options.stderr ?? "piped",
    } as const;
    const child = new Deno.Command("ip", {
      ...options,
      ...stdio,
      args: ["netns", "exec", this.namespace(host), ...argv],
    }).spawn();
    this.#processes.set(child.pid, () => stopChild(child, stdio));
    return child;
  }

  start(host: Host, argv: readonly string[], options: SpawnOptions = {}): ProcessHandle {
    this.#assertOpen();
    const handle = spawnCommand("ip", ["netns", "exec", this.namespace(host), ...argv], {
      ...options,
      name: options.name ?? `${argv[0]} in the ${host} host`,
    });
    this.#processes.set(handle.pid, async () => await handle[Symbol.asyncDispose]());
    return handle;
  }

  async blackhole(uplink: UplinkName): Promise<void> {
    const { interfaceName } = this.#uplink(uplink);
    if (this.#blackholed.has(uplink)) return;
    const table = blackholeTable(uplink);
    const ruleset = `table netdev ${table} {
  chain ingress {
    type filter hook ingress device "${interfaceName}" priority 0; policy drop;
  }
  chain egress {
    type filter hook egress device "${interfaceName}" priority 0; policy drop;
  }
}
`;
    await this.run("client", ["nft", "-f", "-"], { stdin: ruleset });
    this.#blackholed.add(uplink);
  }

  async restore(uplink: UplinkName): Promise<void> {
    this.#uplink(uplink);
    if (!this.#blackholed.has(uplink)) return;
    await this.run("client", ["nft", "delete", "table", "netdev", blackholeTable(uplink)]);
    this.#blackholed.delete(uplink);
  }

  async setLink(uplink: UplinkName, state: LinkState): Promise<void> {
    const { interfaceName } = this.#uplink(uplink);
    await this.#client(["link", "set", interfaceName, state]);
    this.#linkStates.set(uplink, state);
    if (state === "up") await this.#addRoutes(this.#uplink(uplink));
  }

  async readdress(uplink: UplinkName, newAddress: string): Promise<Uplink> {
    const current = this.#uplink(uplink);
    const network = current.subnet.slice(0, current.subnet.lastIndexOf(".") + 1);
    const hostPart = Number(newAddress.slice(network.length));
    if (
      !newAddress.startsWith(network) || !/^\d{1,3}$/.test(newAddress.slice(network.length)) ||
      hostPart < 1 || hostPart > 254 || newAddress === current.serverAddress
    ) {
      throw new RangeError(
        `readdress(${uplink}): ${newAddress} is not a free host address in ${current.subnet}`,
      );
    }
    if (newAddress === current.clientAddress) return current;
    const { interfaceName, routingTable } = current;
    const priority = String(routingTable);
    await this.#client(
      ["rule", "del", "from", current.clientAddress, "table", priority, "priority", priority],
    );
    await this.#client(
      ["address", "del", `${current.clientAddress}/${PREFIX_LENGTH}`, "dev", interfaceName],
    );
    await this.#client(["address", "add", `${newAddress}/${PREFIX_LENGTH}`, "dev", interfaceName]);
    await this.#client(
      ["rule", "add", "from", newAddress, "table", priority, "priority", priority],
    );
    const readdressed = { ...current, clientAddress: newAddress };
    this.#uplinks.set(uplink, readdressed);
    if (this.#linkStates.get(uplink) === "up") await this.#addRoutes(readdressed);
    return readdressed;
  }

  async addUplink(uplink: "c"): Promise<Uplink> {
    this.#assertOpen();
    if (this.#uplinks.has(uplink)) throw new Error(`uplink ${uplink} exists already`);
    return await this.#buildUplink(uplink);
  }

  dispose(): Promise<void> {
    this.#disposal ??= this.#dispose();
    return this.#disposal;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }

  /** Records a namespace as made, so that disposal deletes it. */
  #registerNamespace(name: string): void {
    if (this.#namespaces.length === 0) globalThis.addEventListener("unload", this.#onUnload);
    this.#namespaces.push(name);
  }

  /** The rest of {@link NamespaceNetwork.create}, after the client namespace. */
  async #build(): Promise<void> {
    await ip(["netns", "add", this.serverNamespace]);
    this.#registerNamespace(this.serverNamespace);
    await this.#client(["link", "set", "lo", "up"]);
    await this.#server(["link", "set", "lo", "up"]);
    await this.#server(["address", "add", `${this.serviceAddress}/32`, "dev", "lo"]);
    await this.#buildUplink("a");
    await this.#buildUplink("b");
  }

  async #buildUplink(name: UplinkName): Promise<Uplink> {
    const thirdOctet = UPLINK_THIRD_OCTET[name];
    const network = `10.${this.#secondOctet}.${thirdOctet}.`;
    const uplink: Uplink = {
      name,
      interfaceName: `up${name}`,
      clientAddress: network + CLIENT_HOST_PART,
      serverAddress: network + SERVER_HOST_PART,
      subnet: `${network}0/${PREFIX_LENGTH}`,
      routingTable: FIRST_ROUTING_TABLE + thirdOctet - 1,
    };
    const { interfaceName, routingTable } = uplink;
    const table = String(routingTable);
    // Made inside the client namespace with its peer put straight into the server's: no name is
    // ever taken in the namespace the tests run in.
    await this.#client([
      "link",
      "add",
      interfaceName,
      "type",
      "veth",
      "peer",
      "name",
      interfaceName,
      "netns",
      this.serverNamespace,
    ]);
    this.#uplinks.set(name, uplink);
    await this.#client(
      ["address", "add", `${uplink.clientAddress}/${PREFIX_LENGTH}`, "dev", interfaceName],
    );
    await this.#server(
      ["address", "add", `${uplink.serverAddress}/${PREFIX_LENGTH}`, "dev", interfaceName],
    );
    await this.#server(["link", "set", interfaceName, "up"]);
    await this.#client(["link", "set", interfaceName, "up"]);
    this.#linkStates.set(name, "up");
    await this.#client([
      "route",
      "add",
      "unreachable",
      "default",
      "table",
      table,
      "metric",
      String(FALLBACK_ROUTE_METRIC),
    ]);
    await this.#client(
      ["rule", "add", "from", uplink.clientAddress, "table", table, "priority", table],
    );
    await this.#addRoutes(uplink);
    return uplink;
  }

  /** The uplink's default route in its own table (and in the main table for uplink a). */
  async #addRoutes(uplink: Uplink): Promise<void> {
    const via = ["default", "via", uplink.serverAddress, "dev", uplink.interfaceName];
    await this.#client(["route", "replace", ...via, "table", String(uplink.routingTable)]);
    if (uplink.name === "a") await this.#client(["route", "replace", ...via]);
  }

  #uplink(name: UplinkName): Uplink {
    this.#assertOpen();
    const uplink = this.#uplinks.get(name);
    if (uplink === undefined) throw new Error(`there is no uplink ${name} (addUplink adds c)`);
    return uplink;
  }

  #client(args: readonly string[]): Promise<CommandResult> {
    return ip(["-n", this.clientNamespace, ...args]);
  }

  #server(args: readonly string[]): Promise<CommandResult> {
    return ip(["-n", this.serverNamespace, ...args]);
  }

  #assertOpen(): void {
    if (this.#disposal !== undefined) throw new Error("the uplink network has been disposed");
  }

  async #dispose(): Promise<void> {
    const problems: string[] = [];
    const note = (what: string) => (error: unknown) =>
      problems.push(`${what}: ${error instanceof Error ? error.message : String(error)}`);

    // Each started process gets SIGTERM and its grace. What is left in our namespaces once they
    // have gone (a background child of a shell, holding the shell's stdout open) is killed, or
    // waiting for their output to end would wait for it.
    const trackedPids = new Set(this.#processes.keys());
    const stopping = Promise.all(
      [...this.#processes].map(([pid, stop]) => stop().catch(note(`stopping pid ${pid}`))),
    );
    this.#processes.clear();
    const deadline = Date.now() + KILL_GRACE_MS;
    try {
      while (Date.now() < deadline) {
        const remaining = await processesIn(this.#namespaces);
        if (!remaining.some((pid) => trackedPids.has(pid))) break;
        await new Promise((resolve) => setTimeout(resolve, PROCESS_POLL_INTERVAL_MS));
      }
      for (const pid of await processesIn(this.#namespaces)) killQuietly(pid);
    } catch (error) {
      note("killing what runs in the namespaces")(error);
    }
    await stopping;
    for (const namespace of this.#namespaces) {
      const deleted = await ip(["netns", "delete", namespace], true).catch((error) => {
        note(`ip netns delete ${namespace}`)(error);
        return undefined;
      });
      if (deleted !== undefined && !deleted.success && !/No such file/.test(deleted.stderr)) {
        problems.push(`ip netns delete ${namespace}: ${deleted.stderr.trim()}`);
      }
    }
    globalThis.removeEventListener("unload", this.#onUnload);
    if (problems.length > 0) {
      console.error(
        `uplink network ${this.suffix}: cleaning up failed:\n  ${problems.join("\n  ")}`,
      );
    }
  }

  /** The last resort when the process exits without disposal: no awaiting is possible there. */
  #disposeSynchronously(): void {
    for (const pid of this.#processes.keys()) killQuietly(pid);
    for (const namespace of this.#namespaces) {
      try {
        new Deno.Command("ip", {
          args: ["netns", "delete", namespace],
          stdout: "null",
          stderr: "null",
        })
          .outputSync();
      } catch {
        // Nothing more can be done while the process exits.
      }
    }
  }
}

/**
 * Why this machine cannot build an {@link UplinkNetwork} (no `ip`, no permission for namespaces or
 * veth pairs), or undefined when it can. Probed once, with a namespace made and deleted.
 */
export function netnsUnavailableReason(): Promise<string | undefined> {
  probe ??= probeNetns();
  return probe;
}

/** True when this machine can build an {@link UplinkNetwork}; see {@link netnsUnavailableReason}. */
export async function netnsAvailable(): Promise<boolean> {
  return (await netnsUnavailableReason()) === undefined;
}

let probe: Promise<string | undefined> | undefined;

async function probeNetns(): Promise<string | undefined> {
  if (Deno.build.os !== "linux") return `network namespaces need Linux, not ${Deno.build.os}`;
  if (!commandExists("ip")) return "ip (iproute2) is not on PATH";
  const namespace = `mpt-probe-${randomSuffix()}`;
  const added = await ip(["netns", "add", namespace], true);
  if (!added.success) {
    return `ip netns add is not permitted here (root is needed): ${added.stderr.trim()}`;
  }
  try {
    const veth = await ip(
      ["-n", namespace, "link", "add", "probe0", "type", "veth", "peer", "name", "probe1"],
      true,
    );
    if (!veth.success) return `veth pairs cannot be made here: ${veth.stderr.trim()}`;
    return undefined;
  } finally {
    await ip(["netns", "delete", namespace], true);
  }
}

/** Runs `ip` with `args`; throws, quoting stderr, on failure unless `allowFailure`. */
async function ip(args: readonly string[], allowFailure = false): Promise<CommandResult> {
  const result = await runCommand("ip", args);
  if (!result.success && !allowFailure) {
    throw new Error(`ip ${args.join(" ")}: ${result.stderr.trim()}`);
  }
  return result;
}

async function runCommand(
  command: string,
  args: readonly string[],
  stdin?: string,
): Promise<CommandResult> {
  const child = new Deno.Command(command, {
    args: [...args],
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    try {
      await writer.write(encoder.encode(stdin));
      await writer.close();
    } catch {
      // The command exited without reading its input; its exit status says why.
    }
  }
  const output = await child.output();
  return {
    code: output.code,
    success: output.success,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** SIGTERM, then SIGKILL after the harness's grace; then cancels the piped streams nobody took. */
async function stopChild(
  child: Deno.ChildProcess,
  stdio: {
    stdin: Deno.CommandOptions["stdin"];
    stdout: Deno.CommandOptions["stdout"];
    stderr: Deno.CommandOptions["stderr"];
  },
): Promise<void> {
  const kill = (signal: Deno.Signal) => {
    try {
      child.kill(signal);
    } catch {
      // It has exited already.
    }
  };
  kill("SIGTERM");
  const killTimer = setTimeout(() => kill("SIGKILL"), KILL_GRACE_MS);
  try {
    await child.status;
  } finally {
    clearTimeout(killTimer);
  }
  if (stdio.stdin === "piped" && !child.stdin.locked) await child.stdin.abort().catch(() => {});
  if (stdio.stdout === "piped" && !child.stdout.locked) await child.stdout.cancel();
  if (stdio.stderr === "piped" && !child.stderr.locked) await child.stderr.cancel();
}

/** The processes in `namespaces` (in namespaces we made, all of them are ours). */
async function processesIn(namespaces: readonly string[]): Promise<number[]> {
  const pids: number[] = [];
  for (const namespace of namespaces) {
    const listed = await ip(["netns", "pids", namespace], true);
    if (!listed.success) continue;
    pids.push(...listed.stdout.split(/\s+/).filter((word) => /^\d+$/.test(word)).map(Number));
  }
  return pids;
}

function killQuietly(pid: number): void {
  try {
    Deno.kill(pid, "SIGKILL");
  } catch {
    // It exited meanwhile.
  }
}

function blackholeTable(uplink: UplinkName): string {
  return `mptunnel_blackhole_${uplink}`;
}

/** Four hex digits, which keep `mpc-XXXX` well within the 15 characters of a name. */
function randomSuffix(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(2));
  return [...bytes].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

function randomInteger(min: number, max: number): number {
  return min + (crypto.getRandomValues(new Uint32Array(1))[0] % (max - min + 1));
}
