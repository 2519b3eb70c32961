/**
 * The local network interfaces, for `uplinks auto` (one path per usable interface) and `dev INTERFACE`
 * (a path that leaves through a named interface): which addresses are usable, and what changed
 * between two looks.
 *
 * The core is sans-I/O: {@link usableAddresses}, {@link addressOfInterface} and
 * {@link InterfaceTracker} take lists shaped as `Deno.networkInterfaces()` returns them (one entry
 * per address, so an interface with an IPv4 and an IPv6 address appears twice). Only
 * {@link watchInterfaces} reads the system, on a timer.
 *
 * `Deno.networkInterfaces()` needs `--allow-sys=networkInterfaces`, and it lists the addresses of an
 * interface whose link is down as if it were up: a downed link is seen as a path failing, not here.
 */

/** How often {@link watchInterfaces} looks at the interfaces unless told otherwise. */
export const DEFAULT_WATCH_INTERVAL_MS = 1000;

/** The name Linux gives the loopback interface, which is never an uplink. */
const LOOPBACK_INTERFACE_NAME = "lo";

/** One usable address of one local interface. */
export interface InterfaceAddress {
  readonly interfaceName: string;
  /** The address as `Deno.networkInterfaces()` writes it (IPv6 without a zone). */
  readonly address: string;
  readonly family: 4 | 6;
}

/**
 * What changed between two looks at the interfaces, per interface and family. An interface whose
 * address of a family changed is one `readdressed`, not a `removed` and an `added`.
 */
export type InterfaceChange =
  | { readonly kind: "added"; readonly entry: InterfaceAddress }
  | { readonly kind: "removed"; readonly entry: InterfaceAddress }
  | {
    readonly kind: "readdressed";
    readonly interfaceName: string;
    readonly family: 4 | 6;
    readonly from: string;
    readonly to: string;
  };

/**
 * Per interface, its usable addresses, in list order: loopback (127/8, ::1), link-local (169.254/16,
 * fe80::/10) and unspecified addresses are left out, and so are the interface named "lo" and the
 * names in `excluded`.
 *
 * @example
 * ```ts
 * import { usableAddresses } from "./interfaces.ts";
 * const uplinks = usableAddresses(Deno.networkInterfaces(), ["docker0"]);
 * ```
 */
export function usableAddresses(
  list: readonly Deno.NetworkInterfaceInfo[],
  excluded: readonly string[] = [],
): InterfaceAddress[] {
  const usable: InterfaceAddress[] = [];
  for (const info of list) {
    if (info.name === LOOPBACK_INTERFACE_NAME || excluded.includes(info.name)) continue;
    const family = info.family === "IPv4" ? 4 : 6;
    if (!isUsableAddress(info.address, family)) continue;
    usable.push({ interfaceName: info.name, address: info.address, family });
  }
  return usable;
}

/**
 * The address of interface `name` to use toward a destination of `family`: the first usable one of
 * that family, in list order, or undefined when it has none (or does not exist).
 */
export function addressOfInterface(
  list: readonly Deno.NetworkInterfaceInfo[],
  name: string,
  family: 4 | 6,
): string | undefined {
  return usableAddresses(list).find((entry) =>
    entry.interfaceName === name && entry.family === family
  )?.address;
}

/**
 * Follows the interfaces across successive snapshots and says what changed. It tracks one address
 * per interface and family: the first usable one, kept for as long as it stays on the interface (a
 * second address appearing beside it changes nothing; when it goes, the first remaining one takes
 * over as a `readdressed`). The first snapshot reports everything as `added`.
 *
 * @example
 * ```ts
 * import { InterfaceTracker } from "./interfaces.ts";
 * const tracker = new InterfaceTracker(["docker0"]);
 * const firstLook = tracker.update(Deno.networkInterfaces()); // everything usable, as "added"
 * const changes = tracker.update(Deno.networkInterfaces()); // what changed since: here nothing
 * ```
 */
export class InterfaceTracker {
  readonly #excluded: readonly string[];
  /** By {@link trackingKey}, in the order of the last snapshot. */
  #tracked = new Map<string, InterfaceAddress>();

  constructor(excluded: readonly string[] = []) {
    this.#excluded = [...excluded];
  }

  /**
   * Takes the next snapshot and returns the changes since the previous one: the removals first,
   * then readdressings and additions in the snapshot's order.
   */
  update(list: readonly Deno.NetworkInterfaceInfo[]): InterfaceChange[] {
    const candidates = new Map<string, InterfaceAddress[]>();
    for (const entry of usableAddresses(list, this.#excluded)) {
      const key = trackingKey(entry.interfaceName, entry.family);
      const addresses = candidates.get(key);
      if (addresses === undefined) candidates.set(key, [entry]);
      else addresses.push(entry);
    }

    const removed: InterfaceChange[] = [];
    for (const [key, entry] of this.#tracked) {
      if (!candidates.has(key)) removed.push({ kind: "removed", entry });
    }
    const changes: InterfaceChange[] = [];
    const next = new Map<string, InterfaceAddress>();
    for (const [key, addresses] of candidates) {
      const previous = this.#tracked.get(key);
      const kept = previous === undefined
        ? undefined
        : addresses.find((entry) => entry.address === previous.address);
      const chosen = kept ?? addresses[0];
      next.set(key, chosen);
      if (previous === undefined) {
        changes.push({ kind: "added", entry: chosen });
      } else if (kept === undefined) {
        changes.push({
          kind: "readdressed",
          interfaceName: chosen.interfaceName,
          family: chosen.family,
          from: previous.address,
          to: chosen.address,
        });
      }
    }
    this.#tracked = next;
    return [...removed, ...changes];
  }

  /** The tracked address of each interface and family, in the order of the last snapshot. */
  current(): InterfaceAddress[] {
    return [...this.#tracked.values()];
  }
}

/** Options of {@link watchInterfaces}. */
export interface WatchInterfacesOptions {
  /** Time between two looks (default 1000 ms). */
  readonly intervalMs?: number;
  /** Interfaces never reported (the `exclude` lines of the configuration). */
  readonly excluded?: readonly string[];
  /** Reads the interfaces (default `Deno.networkInterfaces`). */
  readonly read?: () => Deno.NetworkInterfaceInfo[];
  /** Called with each non-empty list of changes; the first look reports every address as added. */
  readonly onChanges: (changes: InterfaceChange[]) => void;
  /**
   * Called when `read` or `onChanges` throws; watching goes on (the next look retries). Without it,
   * such errors are written to standard error, as the watcher must not throw out of its timer.
   */
  readonly onError?: (error: unknown) => void;
}

/**
 * Looks at the interfaces right away, then every `intervalMs`, and reports what changed through
 * `onChanges`, until `stop()` (which may be called more than once, and from `onChanges`).
 *
 * @example
 * ```ts
 * import { watchInterfaces } from "./interfaces.ts";
 * const watcher = watchInterfaces({ onChanges: (changes) => console.log(changes) });
 * watcher.stop();
 * ```
 */
export function watchInterfaces(options: WatchInterfacesOptions): { stop(): void } {
  const intervalMs = options.intervalMs ?? DEFAULT_WATCH_INTERVAL_MS;
  const read = options.read ?? (() => Deno.networkInterfaces());
  const onError = options.onError ??
    ((error: unknown) => console.error("mptunnel: watching the network interfaces:", error));
  const tracker = new InterfaceTracker(options.excluded);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;

  const look = () => {
    timer = undefined;
    try {
      const changes = tracker.update(read());
      if (changes.length > 0) options.onChanges(changes);
    } catch (error) {
      try {
        onError(error);
      } catch {
        // The error handler failed too; there is nobody left to tell, and the timer must not throw.
      }
    }
    if (!stopped) timer = setTimeout(look, intervalMs);
  };
  timer = setTimeout(look, 0);

  return {
    stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
    },
  };
}

/** The key under which the tracker keeps an interface's address of one family. */
function trackingKey(interfaceName: string, family: 4 | 6): string {
  return `${family} ${interfaceName}`;
}

/** False for loopback, link-local and unspecified addresses, which no path can use. */
function isUsableAddress(address: string, family: 4 | 6): boolean {
  if (family === 4) {
    const [first, second] = address.split(".").map(Number);
    if (first === 127 || first === 0) return false;
    return !(first === 169 && second === 254);
  }
  const lower = address.toLowerCase().split("%")[0];
  if (lower === "::1" || lower === "::") return false;
  const firstGroup = lower.startsWith("::") ? 0 : parseInt(lower.split(":")[0], 16);
  return (firstGroup & 0xffc0) !== 0xfe80;
}
