/**
 * mpclient's path sockets: one per path (its own source port, so bridges and NATs see one mapping
 * per path), and what keeps them working. A path's socket is not forever: a path bound to an
 * interface (`dev`, `uplinks auto`) is re-opened on the interface's new address when it changes,
 * and a path that stays silent is re-opened on a fresh source port (a stale NAT mapping is the usual
 * cause) and has its host name resolved again. The core keeps the path's index and state, and the
 * server follows the path to its new address.
 *
 * The receive loop of each socket is the driver's: {@link ClientPaths} asks for one through
 * `startLoop` whenever it opens a socket, and a loop ends when its socket is replaced or closed.
 */

import { formatHostPort, type HostPort, isIPv6Literal } from "../base/address.ts";
import { assertNever } from "../base/assert.ts";
import type { ClientCore } from "../session/client_core.ts";
import type { Logger } from "../base/log.ts";
import { type InterfaceChange, watchInterfaces } from "../uplink/interfaces.ts";
import { isHostName, resolveHost, wildcardFor } from "../io/resolve.ts";
import { firstLook, type UplinkAction, UplinkManager } from "../uplink/uplinks.ts";
import { classifySendError } from "../io/udp.ts";
import type { BindTransport, DatagramTransport, UdpAddress } from "../io/transport.ts";
import type { ClientDriverOptions, ClientPathTarget } from "./client_options.ts";

const DEFAULT_RERESOLVE_AFTER_MS = 5000;
const DEFAULT_REOPEN_AFTER_MS = 5000;

/** A path's socket and where it sends. */
export interface PathSocket {
  readonly target: ClientPathTarget;
  /** Undefined while the path waits for its interface to have an address (or its bind failed). */
  transport: DatagramTransport | undefined;
  /** What the socket binds: undefined while a `dev` path's interface has no address. */
  bindAddress: string | undefined;
  destination: UdpAddress;
  lastResolvedMs: number;
  /** When the socket was last (re-)opened, or a bind last tried. */
  lastOpenedMs: number;
  /** Made by `uplinks auto` (a reload leaves it alone). */
  readonly auto: boolean;
  /** Set when a reload removed the path: its loop ends. */
  closed: boolean;
  /** Counts a failed send on this path (made once, not per datagram). */
  onSendError: (error: unknown) => void;
  /**
   * What a send on `transport` does when it fails: {@link onSendError}, unless the socket has been
   * replaced meanwhile (the error is not the path's then). Made once per socket, not per datagram.
   */
  sendFailed?: { readonly transport: DatagramTransport; readonly handle: (error: unknown) => void };
}

/** What {@link ClientPaths} needs from the driver around it. */
export interface ClientPathsHost {
  readonly core: ClientCore;
  readonly options: ClientDriverOptions;
  /** Starts the receive loop of a socket just opened for path `index`. */
  startLoop(index: number, path: PathSocket, transport: DatagramTransport): void;
  /** True once the driver is stopping: nothing is opened any more. */
  stopping(): boolean;
  /** Re-arms the core's timer after the paths changed. */
  armTimer(): void;
}

/** The path sockets of one client, by the core's path index (a removed path leaves a hole). */
export class ClientPaths {
  readonly #paths: (PathSocket | undefined)[];
  readonly #host: ClientPathsHost;
  readonly #core: ClientCore;
  readonly #options: ClientDriverOptions;
  readonly #logger: Logger;
  readonly #bind: BindTransport;
  readonly #reresolveAfterMs: number;
  readonly #reopenAfterMs: number;
  /** Follows the interfaces for `dev` paths and `uplinks auto`; made when first needed. */
  #uplinks: UplinkManager | undefined;
  #watcher: { stop(): void } | undefined;
  /** `uplinks auto`'s destination, resolved once at start. */
  #autoDestination: { host: string; port: number } | undefined;
  /** Interface changes are applied one at a time (adding a path awaits its resolution). */
  #interfaceWork: Promise<void> = Promise.resolve();
  /** Set once the driver runs: until then, {@link open} opens the sockets itself. */
  #running = false;

  /** `paths` are the configured paths, prepared ({@link preparePath}), in the core's order. */
  constructor(host: ClientPathsHost, paths: PathSocket[]) {
    this.#paths = paths;
    this.#host = host;
    this.#core = host.core;
    this.#options = host.options;
    this.#logger = host.options.logger;
    this.#bind = host.options.bind;
    this.#reresolveAfterMs = host.options.reresolveAfterMs ?? DEFAULT_RERESOLVE_AFTER_MS;
    this.#reopenAfterMs = host.options.reopenAfterMs ?? DEFAULT_REOPEN_AFTER_MS;
  }

  /**
   * Binds every path's socket (a `dev` path whose interface has no address yet waits for one) and
   * makes the `uplinks auto` paths. A `from` address that cannot be bound throws.
   */
  async open(): Promise<void> {
    const paths = this.#paths as PathSocket[];
    const options = this.#options;
    paths.forEach((path, index) => {
      path.onSendError = (error) => this.#sendFailed(index, error);
    });
    if (options.uplinksAuto !== undefined) {
      const { host, port } = options.uplinksAuto;
      const address = await resolveHost(host).catch(() => undefined);
      this.#autoDestination = { host: address ?? host, port };
      this.#uplinks = new UplinkManager({
        family: familyOf(address ?? host),
        excluded: options.uplinksAuto.excluded ?? [],
      });
    } else if (paths.some((path) => path.target.device !== undefined)) {
      this.#uplinks = new UplinkManager();
    }
    if (this.#uplinks !== undefined) {
      // The first look is synchronous, so the paths exist before the first datagram; the
      // watcher's own first look then changes nothing. (It adds the `uplinks auto` paths.)
      await this.#applyInterfaceChanges(firstLook(this.#readInterfaces()));
    }
    options.paths.forEach((target, index) => {
      if (target.device !== undefined) {
        paths[index].bindAddress = this.#watchDevice(index, paths[index]);
      }
    });
    // The `uplinks auto` paths the first look added are in `paths` too.
    for (let index = 0; index < paths.length; index++) {
      // A `from` address that cannot be bound is a configuration mistake: it throws.
      if (paths[index].bindAddress !== undefined) {
        this.#openSocket(index, paths[index], paths[index].target.device === undefined);
      } else this.#logWaiting(paths[index]);
    }
  }

  /** From now on sockets are opened as paths appear; starts the interface watcher if needed. */
  run(): void {
    this.#running = true;
    if (this.#uplinks !== undefined) this.#ensureWatching();
  }

  /** Sends `datagram` on path `pathIndex`, adding the send to `pending`. */
  send(pathIndex: number, datagram: Uint8Array, pending: Promise<unknown>[]): void {
    const path = this.#paths[pathIndex];
    const transport = path?.transport;
    if (transport) {
      pending.push(
        transport.send(datagram, path.destination).catch(sendFailedHandler(path, transport)),
      );
    } else if (path) {
      // The path waits for an address on its interface: the send could not happen.
      this.#core.recordSendError(pathIndex, "no-address", performance.now());
    }
  }

  /**
   * Makes the paths those of `targets` (on a configuration reload): paths that stay keep their
   * socket and state, removed ones are closed, new ones are opened and probed.
   */
  async reconfigure(
    targets: readonly ClientPathTarget[],
  ): Promise<{ added: number; removed: number }> {
    const current = this.#paths.flatMap((path, index) =>
      path && !path.auto ? [{ path, index }] : []
    );
    const removed = current.filter(({ path }) =>
      !targets.some((target) => samePath(target, path.target))
    );
    const added = targets.filter((target) =>
      !current.some(({ path }) => samePath(target, path.target))
    );
    // Open the new paths first, so a mistake leaves everything as it was.
    const opened: PathSocket[] = [];
    try {
      for (const target of added) {
        const path = await preparePath(target, this.#logger);
        opened.push(path);
        if (path.bindAddress !== undefined) path.transport = this.#bind(udpBind(path.bindAddress));
      }
    } catch (error) {
      for (const path of opened) path.transport?.close();
      throw error;
    }
    if (opened.some((path) => path.target.device !== undefined)) this.#ensureWatching();
    for (const path of opened) {
      const index = this.#core.addPath(
        pathLabel(path.target),
        path.target.backup ?? false,
        path.target.weight ?? 1,
      );
      path.onSendError = (error) => this.#sendFailed(index, error);
      this.#paths[index] = path;
      if (path.target.device !== undefined) {
        path.bindAddress = this.#watchDevice(index, path);
        this.#openSocket(index, path, false);
      } else this.#host.startLoop(index, path, path.transport!);
    }
    for (const { index } of removed) this.#closePath(index);
    return { added: opened.length, removed: removed.length };
  }

  /**
   * Where each path sends from and to, in the core's path order: `local` is undefined while a path
   * waits for an address, `interfaceName` set for `dev` and `uplinks auto` paths.
   */
  addresses(): {
    readonly local: UdpAddress | undefined;
    readonly remote: UdpAddress;
    readonly interfaceName: string | undefined;
  }[] {
    return this.#core.paths.map((state) => {
      const path = this.#paths[state.index]!;
      return {
        local: path.transport?.localAddress,
        remote: path.destination,
        interfaceName: path.target.device,
      };
    });
  }

  /**
   * Once a second: re-opens the sockets of dead paths on fresh source ports and resolves their host
   * names again.
   */
  maintain(nowMs: number): void {
    this.#paths.forEach((path, index) => {
      const state = this.#core.paths.find((known) => known.index === index);
      if (!path || !state) return;
      if (
        state.state !== "up" && path.bindAddress !== undefined &&
        nowMs - Math.max(state.lastHeardMs, path.lastOpenedMs) >= this.#reopenAfterMs
      ) {
        const wasPort = path.transport?.localAddress.port;
        if (this.#openSocket(index, path, false)) {
          this.#logger.info("silent path re-opened on a fresh source port", {
            path: state.label,
            from: wasPort === undefined ? "none" : String(wasPort),
            to: String(path.transport!.localAddress.port),
          });
        }
      }
      const silentMs = nowMs - Math.max(state.lastHeardMs, path.lastResolvedMs);
      if (
        state.state === "up" || !isHostName(path.target.host) || silentMs < this.#reresolveAfterMs
      ) return;
      path.lastResolvedMs = nowMs;
      resolveHost(path.target.host).then((address) => {
        if (this.#host.stopping() || address === path.destination.hostname) return;
        this.#logger.info("path host resolved to a new address", { path: state.label, address });
        path.destination = { transport: "udp", hostname: address, port: path.target.port };
      }, (error) => {
        this.#logger.debug("cannot resolve a path's host", {
          path: state.label,
          error: String(error),
        });
      });
    });
  }

  /** Stops following the interfaces and closes every socket; resolves when pending work is done. */
  close(): Promise<void> {
    this.#watcher?.stop();
    for (const path of this.#paths) path?.transport?.close();
    return this.#interfaceWork;
  }

  #sendFailed(pathIndex: number, error: unknown): void {
    const kind = classifySendError(error);
    if (kind === undefined) {
      if (this.#host.stopping()) return;
      throw error;
    }
    this.#core.recordSendError(pathIndex, kind, performance.now());
  }

  /**
   * (Re-)opens path `index`'s socket on its bind address with a fresh port, closes the old one and
   * starts the new one's receive loop. A bind that fails is logged and the path waits (the next
   * change of its interface, or the silent-path re-open, tries again) — unless `throwOnFailure`.
   * Returns true when a socket is open.
   */
  #openSocket(index: number, path: PathSocket, throwOnFailure: boolean): boolean {
    path.lastOpenedMs = performance.now();
    const old = path.transport;
    path.transport = undefined;
    old?.close();
    if (path.bindAddress === undefined || path.closed || this.#host.stopping()) return false;
    try {
      path.transport = this.#bind(udpBind(path.bindAddress));
    } catch (error) {
      if (throwOnFailure) throw error;
      this.#logger.warning("cannot open a path's socket; will retry", {
        path: pathLabel(path.target),
        address: path.bindAddress,
        error: (error as Error).message,
      });
      return false;
    }
    this.#host.startLoop(index, path, path.transport);
    return true;
  }

  /** Removes path `index`: from the core, the interface manager and its socket. */
  #closePath(index: number): void {
    const path = this.#paths[index];
    if (!path) return;
    this.#core.removePath(index);
    this.#uplinks?.removeDevice(index);
    this.#paths[index] = undefined;
    path.closed = true;
    path.transport?.close();
  }

  /** Binds path `index` to its interface in the manager; returns the address to bind now. */
  #watchDevice(index: number, path: PathSocket): string | undefined {
    this.#uplinks ??= new UplinkManager();
    return this.#uplinks.addDevice(
      index,
      path.target.device!,
      familyOf(path.destination.hostname),
    );
  }

  #logWaiting(path: PathSocket): void {
    this.#logger.warning("path waits for an address on its interface", {
      path: pathLabel(path.target),
      interface: path.target.device ?? "",
    });
  }

  #readInterfaces(): Deno.NetworkInterfaceInfo[] {
    const read = this.#options.interfaces?.read ?? (() => Deno.networkInterfaces());
    return read();
  }

  /** Starts the interface watcher if it is not running (dev paths or `uplinks auto` need it). */
  #ensureWatching(): void {
    this.#uplinks ??= new UplinkManager();
    if (this.#watcher !== undefined || this.#host.stopping()) return;
    this.#watcher = watchInterfaces({
      intervalMs: this.#options.interfaces?.intervalMs,
      read: () => this.#readInterfaces(),
      onChanges: (changes) => {
        this.#interfaceWork = this.#interfaceWork.then(() => this.#applyInterfaceChanges(changes));
      },
      onError: (error) => {
        this.#logger.warning("cannot read the network interfaces", { error: String(error) });
      },
    });
  }

  /** Applies what changed in the interfaces: re-opens, adds and removes paths. */
  async #applyInterfaceChanges(changes: readonly InterfaceChange[]): Promise<void> {
    const manager = this.#uplinks;
    if (manager === undefined || this.#host.stopping()) return;
    for (const action of manager.apply(changes)) await this.#applyUplinkAction(action);
    this.#host.armTimer();
  }

  async #applyUplinkAction(action: UplinkAction): Promise<void> {
    if (this.#host.stopping()) return;
    switch (action.kind) {
      case "bind": {
        const path = this.#paths[action.pathIndex];
        if (!path) return;
        const from = path.bindAddress;
        path.bindAddress = action.address;
        if (action.address === undefined) {
          path.transport?.close();
          path.transport = undefined;
          this.#logWaiting(path);
          return;
        }
        if (this.#openSocket(action.pathIndex, path, false)) {
          this.#logger.info("path re-opened on its interface's new address", {
            path: pathLabel(path.target),
            interface: path.target.device ?? "",
            from: from ?? "none",
            to: action.address,
          });
        }
        return;
      }
      case "add-uplink": {
        const destination = this.#autoDestination!;
        const path = await preparePath(
          { ...destination, label: action.interfaceName, device: action.interfaceName },
          this.#logger,
          true,
        );
        if (this.#host.stopping()) return;
        const index = this.#core.addPath(action.interfaceName);
        path.onSendError = (error) => this.#sendFailed(index, error);
        this.#paths[index] = path;
        path.bindAddress = this.#watchDevice(index, path);
        this.#logger.info("uplink found: path added", {
          interface: action.interfaceName,
          address: path.bindAddress ?? "none",
        });
        // Until run(), open() opens the sockets itself.
        if (this.#running) this.#openSocket(index, path, false);
        return;
      }
      case "remove-uplink": {
        const index = this.#paths.findIndex((path) =>
          path?.auto === true && path.target.device === action.interfaceName
        );
        if (index < 0) return;
        this.#logger.info("uplink gone: path removed", { interface: action.interfaceName });
        this.#closePath(index);
        return;
      }
      default:
        return assertNever(action);
    }
  }
}

/**
 * Resolves a path's host; its socket is bound by {@link ClientPaths}, which knows the interfaces
 * (its send-error handler is set there too).
 */
export async function preparePath(
  target: ClientPathTarget,
  logger: Logger,
  auto = false,
): Promise<PathSocket> {
  const address = await resolveHost(target.host).catch((error) => {
    logger.warning("cannot resolve a path's host yet; will retry", {
      host: target.host,
      error: (error as Error).message,
    });
    return undefined;
  });
  return {
    target,
    transport: undefined,
    bindAddress: target.device !== undefined
      ? undefined
      : target.fromAddress ?? wildcardFor(address ?? "0.0.0.0"),
    destination: { transport: "udp", hostname: address ?? target.host, port: target.port },
    lastResolvedMs: performance.now(),
    lastOpenedMs: performance.now(),
    auto,
    closed: false,
    onSendError: () => {},
  };
}

/** A path's label: its name, or HOST:PORT. */
export function pathLabel(target: ClientPathTarget): string {
  return target.label ?? formatHostPort({ hostname: target.host, port: target.port });
}

/** `::ffff:192.0.2.1` → `192.0.2.1`; any other address unchanged. */
export function unmapIPv4(hostname: string): string {
  return hostname.startsWith("::ffff:") && hostname.includes(".") ? hostname.slice(7) : hostname;
}

/** The failed-send handler of `path` for sends on `transport` (see `PathSocket.sendFailed`). */
function sendFailedHandler(
  path: PathSocket,
  transport: DatagramTransport,
): (error: unknown) => void {
  if (path.sendFailed?.transport !== transport) {
    path.sendFailed = {
      transport,
      handle: (error) => {
        if (path.transport === transport) path.onSendError(error);
      },
    };
  }
  return path.sendFailed.handle;
}

/** Two path lines name the same path when everything about them is the same. */
function samePath(a: ClientPathTarget, b: ClientPathTarget): boolean {
  return a.host === b.host && a.port === b.port && a.label === b.label &&
    a.fromAddress === b.fromAddress && a.device === b.device &&
    (a.backup ?? false) === (b.backup ?? false);
}

/** The family of an IP literal (4 when it is not one, e.g. an unresolved name). */
function familyOf(address: string): 4 | 6 {
  return isIPv6Literal(address) ? 6 : 4;
}

/** What to bind for sending from `address` (any free port). */
function udpBind(address: string): HostPort {
  return { hostname: address, port: 0 };
}
