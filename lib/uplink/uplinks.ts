/**
 * Which local address each interface-bound path sends from, as the interfaces change: the paths of
 * `dev INTERFACE` lines, and the paths `uplinks auto HOST PORT` makes, one per usable interface.
 *
 * Sans-I/O: {@link UplinkManager} takes the changes {@link InterfaceTracker} (or
 * {@link watchInterfaces}) reports and returns what the driver must do — bind a path's socket to a
 * new address, make a path for a new interface, drop the path of a vanished one. The driver owns the
 * sockets, the timer and the core's paths.
 */

import { type InterfaceChange, InterfaceTracker } from "./interfaces.ts";

/** What `uplinks auto` asks for: a path per usable interface with an address of `family`. */
export interface UplinksAutoSpec {
  /** The family of the server's address: an interface is an uplink when it has one of this family. */
  readonly family: 4 | 6;
  /** Interfaces never made into paths (`exclude` lines, and those explicit `dev` paths use). */
  readonly excluded: readonly string[];
}

/** What the driver must do after a change of the interfaces; see {@link UplinkManager.apply}. */
export type UplinkAction =
  /** Re-open path `pathIndex`'s socket on `address`; undefined: the interface has none, wait. */
  | { readonly kind: "bind"; readonly pathIndex: number; readonly address: string | undefined }
  /** `uplinks auto`: a new interface; make a path on it (then {@link UplinkManager.addDevice}). */
  | { readonly kind: "add-uplink"; readonly interfaceName: string }
  /** `uplinks auto`: the interface has no usable address any more; remove its path. */
  | { readonly kind: "remove-uplink"; readonly interfaceName: string };

/** A path bound to an interface, and the address it was last told to use. */
interface DeviceBinding {
  readonly interfaceName: string;
  readonly family: 4 | 6;
  address: string | undefined;
}

/**
 * Follows the interfaces for the paths bound to them. Every state change is idempotent: the same
 * interfaces reported twice produce no second action, so a first look can be replayed safely.
 *
 * @example
 * ```ts
 * import { InterfaceTracker } from "./interfaces.ts";
 * import { UplinkManager } from "./uplinks.ts";
 * const manager = new UplinkManager({ family: 4, excluded: ["docker0"] });
 * const tracker = new InterfaceTracker();
 * const list: Deno.NetworkInterfaceInfo[] = [{
 *   family: "IPv4", name: "wwan0", address: "192.0.2.10", netmask: "255.255.255.0",
 *   scopeid: null, cidr: "192.0.2.10/24", mac: "00:00:00:00:00:00",
 * }];
 * console.log(manager.apply(tracker.update(list))); // [{ kind: "add-uplink", interfaceName: "wwan0" }]
 * console.log(manager.addDevice(0, "wwan0", 4)); // 192.0.2.10
 * ```
 */
export class UplinkManager {
  readonly #auto: UplinksAutoSpec | undefined;
  /** The tracked address of each interface and family, keyed `FAMILY NAME`. */
  readonly #addresses = new Map<string, string>();
  readonly #devices = new Map<number, DeviceBinding>();
  /** Interfaces `uplinks auto` has announced with `add-uplink` and not yet removed. */
  readonly #uplinks = new Set<string>();

  /** `auto` undefined: only `dev` paths are followed. */
  constructor(auto?: UplinksAutoSpec) {
    this.#auto = auto;
  }

  /** True when `uplinks auto` is on. */
  get auto(): boolean {
    return this.#auto !== undefined;
  }

  /** The interfaces `uplinks auto` uses now. */
  get uplinks(): readonly string[] {
    return [...this.#uplinks];
  }

  /**
   * Takes in changes of the interfaces and returns what to do: removed uplinks first, then the
   * paths whose address changed, then new uplinks (in the order the interfaces were reported).
   */
  apply(changes: readonly InterfaceChange[]): UplinkAction[] {
    for (const change of changes) {
      switch (change.kind) {
        case "added":
          this.#addresses.set(
            key(change.entry.interfaceName, change.entry.family),
            change.entry.address,
          );
          break;
        case "removed":
          this.#addresses.delete(key(change.entry.interfaceName, change.entry.family));
          break;
        case "readdressed":
          this.#addresses.set(key(change.interfaceName, change.family), change.to);
          break;
      }
    }
    const actions: UplinkAction[] = [];
    const wanted = this.#wantedUplinks();
    for (const name of this.#uplinks) {
      if (wanted.includes(name)) continue;
      this.#uplinks.delete(name);
      actions.push({ kind: "remove-uplink", interfaceName: name });
    }
    for (const [pathIndex, device] of this.#devices) {
      const address = this.#addresses.get(key(device.interfaceName, device.family));
      if (address === device.address) continue;
      device.address = address;
      actions.push({ kind: "bind", pathIndex, address });
    }
    for (const name of wanted) {
      if (this.#uplinks.has(name)) continue;
      this.#uplinks.add(name);
      actions.push({ kind: "add-uplink", interfaceName: name });
    }
    return actions;
  }

  /**
   * Binds path `pathIndex` to interface `interfaceName`: returns the address to bind now (undefined
   * when the interface has none of `family` yet); later changes come as `bind` actions.
   */
  addDevice(pathIndex: number, interfaceName: string, family: 4 | 6): string | undefined {
    const address = this.#addresses.get(key(interfaceName, family));
    this.#devices.set(pathIndex, { interfaceName, family, address });
    return address;
  }

  /** Forgets path `pathIndex` (removed by a reload, or its uplink vanished). */
  removeDevice(pathIndex: number): void {
    this.#devices.delete(pathIndex);
  }

  /** The interface path `pathIndex` is bound to, if it is. */
  interfaceOf(pathIndex: number): string | undefined {
    return this.#devices.get(pathIndex)?.interfaceName;
  }

  /** The interfaces `uplinks auto` wants now, in the order they were first seen. */
  #wantedUplinks(): string[] {
    const auto = this.#auto;
    if (auto === undefined) return [];
    const names: string[] = [];
    for (const tracked of this.#addresses.keys()) {
      const [family, name] = [Number(tracked.slice(0, 1)), tracked.slice(2)];
      if (family === auto.family && !auto.excluded.includes(name)) names.push(name);
    }
    return names;
  }
}

/**
 * Changes for a manager from a whole list of interfaces, as a first look: what a driver applies at
 * start, before its watcher's first report (which then changes nothing).
 */
export function firstLook(list: readonly Deno.NetworkInterfaceInfo[]): InterfaceChange[] {
  return new InterfaceTracker().update(list);
}

function key(interfaceName: string, family: 4 | 6): string {
  return `${family} ${interfaceName}`;
}
