/**
 * mpclient's SOCKS5 front end (RFC 1928 UDP ASSOCIATE, optionally RFC 1929 username/password): a
 * TCP listener for control connections, each driven by {@link Socks5Session}. A UDP ASSOCIATE
 * gets a relay socket of its own, bound on the listener's address; every datagram the client sends
 * there names its destination, and each distinct destination of one association is a declared flow
 * of the tunnel (`{ kind: "address", host, port }`; domain names are passed through for the server
 * to resolve). Replies go back to the client wrapped in the UDP request header, naming the flow's
 * destination as their source. Closing the control connection ends the association: its relay
 * socket and its flows are closed.
 *
 * The front end knows nothing of the tunnel's session: it talks to it through {@link Socks5Tunnel},
 * so tests can drive it with a fake one over real loopback sockets.
 *
 * Only the control connection's host may send to a relay (and only the port it announced, when it
 * announced one); once the first datagram is accepted, only that host and port (RFC 1928 section
 * 7). Fragments (FRAG ≠ 0) and malformed datagrams are dropped and counted.
 */

import { formatHostPort, type HostPort, isIPv4Literal } from "../base/address.ts";
import type { Logger } from "../base/log.ts";
import { MAX_FIELD_BYTES, type Socks5Address } from "./address.ts";
import { type Socks5Credentials, Socks5Session } from "./session.ts";
import { decodeUdpDatagram, encodeUdpDatagram, type UdpDatagramFailure } from "./udp_header.ts";
import { LogThrottle } from "../base/throttle.ts";
import { bindUdp, classifySendError } from "../io/udp.ts";
import type { DatagramTransport, UdpAddress } from "../io/transport.ts";
import { type FlowTarget, MAX_FLOW_TARGET_NAME_BYTES } from "../wire/messages.ts";

/** The environment variable holding the SOCKS5 user name (RFC 1929), never a flag. */
export const SOCKS5_USER_ENV_VAR = "MPTUNNEL_SOCKS5_USER";
/** The environment variable holding the SOCKS5 password (RFC 1929), never a flag. */
export const SOCKS5_PASSWORD_ENV_VAR = "MPTUNNEL_SOCKS5_PASSWORD";

/** Control connections (and so associations) open at once, by default. */
export const DEFAULT_MAX_ASSOCIATIONS = 64;
/** Distinct destinations one association may talk to at once, by default. */
export const DEFAULT_MAX_FLOWS_PER_ASSOCIATION = 256;
/** A control connection that has not associated within this long is closed, by default. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

const RECEIVE_BUFFER_BYTES = 65536;
const CONTROL_READ_BYTES = 1024;
const LOG_INTERVAL_MS = 10_000;

/** How the front end hears about one of its flows from the tunnel. */
export interface TunnelFlowHandlers {
  /** How logs name the flow. */
  readonly label: string;
  /**
   * A reply from the flow's destination. `payload` may be a view into a buffer the tunnel reuses
   * once the returned promise settles.
   */
  deliver(payload: Uint8Array): Promise<unknown>;
  /** The tunnel forgot the flow on its own (it was idle): the front end forgets it too. */
  expired(): void;
}

/** One receive loop's way into the tunnel: its sends settle before the loop receives again. */
export interface TunnelChannel {
  /** Declares a flow to `target`; its id, or undefined when no flow id is free. */
  openFlow(target: FlowTarget, handlers: TunnelFlowHandlers): number | undefined;
  /** Sends one datagram on flow `flowId`; `payload` may be reused once the promise settles. */
  send(flowId: number, payload: Uint8Array): Promise<void>;
}

/** What the SOCKS5 front end needs from the tunnel (mpclient's driver is one). */
export interface Socks5Tunnel {
  /** A channel for one receive loop (each owns its buffers). */
  channel(): TunnelChannel;
  /** Forgets flow `flowId` (its association ended). */
  closeFlow(flowId: number): void;
}

/** Why a datagram to a relay was dropped; each is a counter. */
export type Socks5DropReason =
  | UdpDatagramFailure
  /** Not from the control connection's client (host, or host and port once pinned). */
  | "foreign-source"
  /** A destination the tunnel cannot carry: port 0, or a name longer than a flow target may be. */
  | "bad-destination"
  /** The association already talks to as many destinations as it may. */
  | "flow-limit"
  /** The tunnel had no free flow id. */
  | "no-flow-id";

/** Every {@link Socks5DropReason}, in the order status output lists them. */
export const SOCKS5_DROP_REASONS: readonly Socks5DropReason[] = [
  "truncated",
  "bad-reserved",
  "bad-address-type",
  "fragmented",
  "bad-domain",
  "foreign-source",
  "bad-destination",
  "flow-limit",
  "no-flow-id",
];

/** Counters of a {@link Socks5Front}. */
export interface Socks5Counters {
  /** Control connections accepted. */
  connections: number;
  /** Control connections closed at once: {@link Socks5FrontOptions.maxAssociations} were open. */
  connectionsOverLimit: number;
  /** Control connections that ended before associating (bad greeting, credentials, command…). */
  handshakeFailures: number;
  associations: number;
  /** Datagrams from clients passed into the tunnel. */
  toTunnel: number;
  /** Replies sent back to clients. */
  toClients: number;
  readonly drops: Record<Socks5DropReason, number>;
}

/** What starts a {@link Socks5Front}. */
export interface Socks5FrontOptions {
  /** The TCP address of the control listener; relays bind on its host. */
  readonly listen: HostPort;
  /** When set, clients must authenticate with these (RFC 1929). */
  readonly credentials?: Socks5Credentials;
  readonly tunnel: Socks5Tunnel;
  readonly logger: Logger;
  /** {@link DEFAULT_MAX_ASSOCIATIONS} when omitted. */
  readonly maxAssociations?: number;
  /** {@link DEFAULT_MAX_FLOWS_PER_ASSOCIATION} when omitted. */
  readonly maxFlowsPerAssociation?: number;
  /** {@link DEFAULT_HANDSHAKE_TIMEOUT_MS} when omitted. */
  readonly handshakeTimeoutMs?: number;
}

/** One SOCKS5 association (it lives as long as its control connection). */
interface Association {
  readonly number: number;
  readonly relay: DatagramTransport;
  /** The host datagrams must come from (the control connection's, or the one it announced). */
  clientHost: string;
  /** The port datagrams must come from, when the client announced one. */
  clientPort: number | undefined;
  /** Where the first accepted datagram came from: only it may send from then on. */
  client: UdpAddress | undefined;
  /** Flow ids by destination (`kind host port`). */
  readonly flows: Map<string, number>;
  /** Set once the client was told the relay's address and relaying began. */
  started: boolean;
  closed: boolean;
}

/** One open control connection. */
interface ControlConnection {
  readonly connection: Deno.TcpConn;
  closed: boolean;
}

/**
 * Reads the RFC 1929 credentials from {@link SOCKS5_USER_ENV_VAR} and
 * {@link SOCKS5_PASSWORD_ENV_VAR}: both set, neither set (undefined: no authentication), or a
 * message saying what is wrong.
 */
export function socks5CredentialsFrom(
  environment: (name: string) => string | undefined,
): { readonly ok: true; readonly value: Socks5Credentials | undefined } | {
  readonly ok: false;
  readonly error: string;
} {
  const username = environment(SOCKS5_USER_ENV_VAR);
  const password = environment(SOCKS5_PASSWORD_ENV_VAR);
  if (username === undefined && password === undefined) return { ok: true, value: undefined };
  if (username === undefined || password === undefined) {
    const missing = username === undefined ? SOCKS5_USER_ENV_VAR : SOCKS5_PASSWORD_ENV_VAR;
    return { ok: false, error: `set ${missing} too, or neither of the SOCKS5 credentials` };
  }
  for (
    const [name, value] of [[SOCKS5_USER_ENV_VAR, username], [SOCKS5_PASSWORD_ENV_VAR, password]]
  ) {
    const length = new TextEncoder().encode(value).length;
    if (length < 1 || length > MAX_FIELD_BYTES) {
      return { ok: false, error: `${name} must be 1 to ${MAX_FIELD_BYTES} bytes, not ${length}` };
    }
  }
  return { ok: true, value: { username, password } };
}

/** `::ffff:192.0.2.1` → `192.0.2.1`; any other address unchanged. */
function unmapIPv4(hostname: string): string {
  return hostname.startsWith("::ffff:") && hostname.includes(".") ? hostname.slice(7) : hostname;
}

/** True for the wildcard addresses, which a client cannot send to. */
function isWildcard(hostname: string): boolean {
  return hostname === "0.0.0.0" || hostname === "::";
}

/** An IP literal as a SOCKS5 address (a zone is dropped: SOCKS5 cannot carry one). */
function socks5AddressOf(hostname: string, port: number): Socks5Address {
  const host = unmapIPv4(hostname);
  return isIPv4Literal(host)
    ? { kind: "ipv4", host, port }
    : { kind: "ipv6", host: host.split("%")[0], port };
}

/** Can the tunnel carry a flow to this destination? */
function tunnelable(destination: Socks5Address): boolean {
  return destination.port !== 0 &&
    (destination.kind !== "domain" ||
      new TextEncoder().encode(destination.host).length <= MAX_FLOW_TARGET_NAME_BYTES);
}

/** How logs write a SOCKS5 address. */
function formatSocks5Address(address: Socks5Address): string {
  return formatHostPort({ hostname: address.host, port: address.port });
}

/**
 * A running SOCKS5 front end.
 *
 * @example
 * ```ts ignore
 * const listen = { hostname: "127.0.0.1", port: 1080 };
 * const front = Socks5Front.start({ listen, tunnel, logger });
 * console.log(`SOCKS5 on ${front.address.port}`);
 * await front.stop();
 * ```
 */
export class Socks5Front {
  readonly counters: Socks5Counters = {
    connections: 0,
    connectionsOverLimit: 0,
    handshakeFailures: 0,
    associations: 0,
    toTunnel: 0,
    toClients: 0,
    drops: Object.fromEntries(SOCKS5_DROP_REASONS.map((reason) => [reason, 0])) as Record<
      Socks5DropReason,
      number
    >,
  };
  readonly #listener: Deno.TcpListener;
  readonly #options: Socks5FrontOptions;
  readonly #logger: Logger;
  readonly #maxAssociations: number;
  readonly #maxFlowsPerAssociation: number;
  readonly #connections = new Set<ControlConnection>();
  readonly #associations = new Set<Association>();
  readonly #loops = new Set<Promise<void>>();
  readonly #logThrottle = new LogThrottle(LOG_INTERVAL_MS);
  #associationNumber = 0;
  #stopping = false;

  private constructor(options: Socks5FrontOptions, listener: Deno.TcpListener) {
    this.#options = options;
    this.#listener = listener;
    this.#logger = options.logger;
    this.#maxAssociations = options.maxAssociations ?? DEFAULT_MAX_ASSOCIATIONS;
    this.#maxFlowsPerAssociation = options.maxFlowsPerAssociation ??
      DEFAULT_MAX_FLOWS_PER_ASSOCIATION;
  }

  /**
   * Listens for control connections (throws when the address cannot be bound) and starts
   * accepting. Credentials RFC 1929 cannot carry throw a `RangeError`.
   */
  static start(options: Socks5FrontOptions): Socks5Front {
    // Fail on bad credentials before a socket is opened.
    if (options.credentials !== undefined) {
      new Socks5Session({ credentials: options.credentials, resolveUdpRelay: () => undefined });
    }
    const listener = Deno.listen({
      transport: "tcp",
      hostname: options.listen.hostname,
      port: options.listen.port,
    });
    const front = new Socks5Front(options, listener);
    front.#track(front.#acceptLoop());
    return front;
  }

  /** The control listener's address (port resolved when 0 was asked for). */
  get address(): Deno.NetAddr {
    return this.#listener.addr;
  }

  /** Associations open now. */
  get associationCount(): number {
    return this.#associations.size;
  }

  /** Flows of all associations open now. */
  get flowCount(): number {
    let count = 0;
    for (const association of this.#associations) count += association.flows.size;
    return count;
  }

  /** Closes the listener, every control connection, relay and flow, and waits for the loops. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    closeQuietly(this.#listener);
    for (const control of this.#connections) this.#closeControl(control);
    while (this.#loops.size > 0) await Promise.allSettled([...this.#loops]);
  }

  #track(loop: Promise<void>): void {
    this.#loops.add(loop);
    loop.finally(() => this.#loops.delete(loop));
  }

  async #acceptLoop(): Promise<void> {
    while (!this.#stopping) {
      let connection: Deno.TcpConn;
      try {
        connection = await this.#listener.accept();
      } catch (error) {
        if (this.#stopping) return;
        this.#logger.warning("SOCKS5 accept failed", { error: String(error) });
        continue;
      }
      this.counters.connections++;
      if (this.#connections.size >= this.#maxAssociations) {
        this.counters.connectionsOverLimit++;
        this.#logLimited("too many SOCKS5 control connections; closed a new one", "limit", {
          limit: this.#maxAssociations,
        });
        closeQuietly(connection);
        continue;
      }
      const control: ControlConnection = { connection, closed: false };
      this.#connections.add(control);
      this.#track(this.#serve(control));
    }
  }

  /** Drives one control connection until it closes; then ends its association. */
  async #serve(control: ControlConnection): Promise<void> {
    const { connection } = control;
    const peer = connection.remoteAddr as Deno.NetAddr;
    const peerText = formatHostPort({ hostname: unmapIPv4(peer.hostname), port: peer.port });
    let association: Association | undefined;
    let relayFailure: string | undefined;
    const session = new Socks5Session({
      credentials: this.#options.credentials,
      resolveUdpRelay: () => {
        try {
          association = this.#openRelay(connection);
        } catch (error) {
          relayFailure = (error as Error).message;
          return undefined;
        }
        const relay = association.relay.localAddress;
        const local = connection.localAddr as Deno.NetAddr;
        return socks5AddressOf(
          isWildcard(relay.hostname) ? local.hostname : relay.hostname,
          relay.port,
        );
      },
    });
    const timeout = setTimeout(() => {
      if (association !== undefined) return;
      this.counters.handshakeFailures++;
      this.#logLimited("SOCKS5 client did not associate in time; closed", "timeout", {
        client: peerText,
      });
      this.#closeControl(control);
    }, this.#options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS);
    const buffer = new Uint8Array(CONTROL_READ_BYTES);
    try {
      while (!control.closed) {
        const byteCount = await connection.read(buffer);
        if (byteCount === null) break;
        // Once associated, the connection only says by closing that the association ends.
        if (session.state === "associated") continue;
        const step = session.receive(buffer.subarray(0, byteCount));
        if (step.reply.length > 0) await writeAll(connection, step.reply);
        if (step.event?.kind === "associate" && association !== undefined) {
          this.#startAssociation(association, step.event.clientHint, peerText);
        }
        if (step.close) {
          this.counters.handshakeFailures++;
          this.#logLimited("SOCKS5 client refused", step.error ?? relayFailure ?? "refused", {
            client: peerText,
            reason: relayFailure ?? step.error ?? "",
          });
          break;
        }
      }
    } catch (error) {
      // A reset or a close from our side (stop, timeout) ends the read; anything else is news.
      if (!control.closed && !isConnectionEnd(error)) throw error;
    } finally {
      clearTimeout(timeout);
      this.#closeControl(control);
      if (association !== undefined) this.#endAssociation(association, peerText);
    }
  }

  /** Binds a relay socket on the listener's host for one association (throws when it cannot). */
  #openRelay(connection: Deno.TcpConn): Association {
    if (this.#stopping) throw new Error("stopping");
    const listenHost = this.#listener.addr.hostname;
    const peer = connection.remoteAddr as Deno.NetAddr;
    const relay = bindUdp({ hostname: listenHost, port: 0 });
    return {
      number: ++this.#associationNumber,
      relay,
      clientHost: unmapIPv4(peer.hostname),
      clientPort: undefined,
      client: undefined,
      flows: new Map(),
      started: false,
      closed: false,
    };
  }

  /** The association is made: honour the client's hint and start relaying. */
  #startAssociation(
    association: Association,
    hint: Socks5Address,
    peerText: string,
  ): void {
    if (this.#stopping) return; // #serve's clean-up closes the relay
    // A client that knows where it will send from says so (RFC 1928 section 7); all zeros means
    // "not known yet", and then only the control connection's host may send.
    const hintedHost = hint.kind !== "domain" && hint.host !== "0.0.0.0" && hint.host !== "::"
      ? unmapIPv4(hint.host)
      : undefined;
    if (hintedHost !== undefined) association.clientHost = hintedHost;
    if (hint.port !== 0) association.clientPort = hint.port;
    association.started = true;
    this.#associations.add(association);
    this.counters.associations++;
    this.#logger.info("SOCKS5 association opened", {
      client: peerText,
      relay: formatHostPort(association.relay.localAddress),
      ...(hintedHost !== undefined || hint.port !== 0
        ? { announced: formatSocks5Address(hint) }
        : {}),
    });
    this.#track(this.#relayLoop(association));
  }

  /** Ends an association: its relay socket and its flows. */
  #endAssociation(association: Association, peerText: string): void {
    if (association.closed) return;
    association.closed = true;
    association.relay.close();
    if (!association.started) return; // refused, or the front end stopped before it started
    const flowCount = association.flows.size;
    for (const flowId of association.flows.values()) this.#options.tunnel.closeFlow(flowId);
    association.flows.clear();
    this.#associations.delete(association);
    this.#logger.info("SOCKS5 association closed", { client: peerText, flows: flowCount });
  }

  #closeControl(control: ControlConnection): void {
    if (control.closed) return;
    control.closed = true;
    this.#connections.delete(control);
    closeQuietly(control.connection);
  }

  /** Relays the client's datagrams into the tunnel until the association ends. */
  async #relayLoop(association: Association): Promise<void> {
    const channel = this.#options.tunnel.channel();
    const buffer = new Uint8Array(RECEIVE_BUFFER_BYTES);
    const drops = this.counters.drops;
    while (!association.closed) {
      let received: [Uint8Array, UdpAddress];
      try {
        received = await association.relay.receive(buffer);
      } catch (error) {
        if (association.closed) return;
        this.#logger.debug("receive failed on a SOCKS5 relay", { error: String(error) });
        continue;
      }
      if (association.closed) return;
      const [datagram, from] = received;
      const fromHost = unmapIPv4(from.hostname);
      const pinned = association.client;
      if (
        pinned !== undefined
          ? from.port !== pinned.port || fromHost !== pinned.hostname
          : fromHost !== association.clientHost ||
            (association.clientPort !== undefined && from.port !== association.clientPort)
      ) {
        drops["foreign-source"]++;
        continue;
      }
      const decoded = decodeUdpDatagram(datagram);
      if (!decoded.ok) {
        drops[decoded.reason]++;
        continue;
      }
      association.client ??= { transport: "udp", hostname: from.hostname, port: from.port };
      const destination = decoded.destination;
      if (!tunnelable(destination)) {
        drops["bad-destination"]++;
        continue;
      }
      const flowId = this.#flowFor(association, destination, channel);
      if (flowId === undefined) continue;
      this.counters.toTunnel++;
      await channel.send(flowId, decoded.payload);
    }
  }

  /** The flow of `destination` in `association`, declared on first use; undefined when dropped. */
  #flowFor(
    association: Association,
    destination: Socks5Address,
    channel: TunnelChannel,
  ): number | undefined {
    const key = `${destination.kind} ${destination.host} ${destination.port}`;
    const known = association.flows.get(key);
    if (known !== undefined) return known;
    if (association.flows.size >= this.#maxFlowsPerAssociation) {
      this.counters.drops["flow-limit"]++;
      this.#logLimited("a SOCKS5 association reached its flow limit", "flow-limit", {
        limit: this.#maxFlowsPerAssociation,
      });
      return undefined;
    }
    const label = `socks5 #${association.number} → ${formatSocks5Address(destination)}`;
    const flowId = channel.openFlow(
      { kind: "address", host: destination.host, port: destination.port },
      {
        label,
        deliver: (payload) => this.#reply(association, destination, payload),
        expired: () => {
          if (association.flows.get(key) === flowId) association.flows.delete(key);
        },
      },
    );
    if (flowId === undefined) {
      this.counters.drops["no-flow-id"]++;
      return undefined;
    }
    association.flows.set(key, flowId);
    this.#logger.debug("new SOCKS5 flow", { flow: flowId, destination: label });
    return flowId;
  }

  /** Sends a reply of `destination` back to the association's client, wrapped. */
  #reply(
    association: Association,
    destination: Socks5Address,
    payload: Uint8Array,
  ): Promise<unknown> {
    const client = association.client;
    if (association.closed || client === undefined) return Promise.resolve();
    this.counters.toClients++;
    // encodeUdpDatagram copies the payload: the tunnel may reuse its buffer at once.
    return association.relay.send(encodeUdpDatagram(destination, payload), client).catch(
      (error) => {
        if (association.closed || classifySendError(error) !== undefined) return;
        throw error;
      },
    );
  }

  #logLimited(message: string, key: string, properties: Record<string, unknown>): void {
    const held = this.#logThrottle.allow(key, performance.now());
    if (held !== undefined) this.#logger.info(message, { ...properties, repeats: held });
  }
}

/** Writes every byte (a TCP write may take only part of them). */
async function writeAll(connection: Deno.TcpConn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await connection.write(bytes.subarray(offset));
}

/** Closes a connection or listener that may be closed already. */
function closeQuietly(closable: { close(): void }): void {
  try {
    closable.close();
  } catch (error) {
    if (!(error instanceof Deno.errors.BadResource)) throw error;
  }
}

/** True for the errors a read or write gets when the peer or we ended the connection. */
function isConnectionEnd(error: unknown): boolean {
  return error instanceof Deno.errors.BadResource ||
    error instanceof Deno.errors.Interrupted ||
    error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.NotConnected;
}
