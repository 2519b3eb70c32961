/**
 * Hostile datagrams against the whole receive path of both cores, interleaved with a legitimate
 * stream in both directions: at least 100 000 random, truncated, bit-flipped, replayed, reflected and
 * cross-session datagrams, and forged handshakes, RESETs and NOTICEs. Nothing may throw, nothing
 * hostile may reach the target or the application, the legitimate stream must arrive complete and
 * exactly once, and every hostile datagram must move a drop (or duplicate) counter by exactly one —
 * except the few that are genuine by design (a recorded INIT of another session; a RESET or NOTICE,
 * which are unauthenticated), and those are accounted for one by one.
 *
 * The schedule is seeded (the seed is printed on failure). The keys are not: ephemeral X25519 keys
 * and thus ciphertexts come from the operating system, so a rerun replays the same attack against
 * different bytes — the outcome, not the bytes, is what is asserted.
 */
import { clientSeams, serverSeams } from "./session/engine_seams.ts";
import assert from "node:assert/strict";
import { ClientCore, type ClientOutbox } from "../lib/session/client_core.ts";
import { deriveSecretKeys, type SecretKeys } from "../lib/crypto/handshake.ts";
import { silentLogger } from "../lib/base/log.ts";
import { type Random, seededRandom } from "../lib/base/rng.ts";
import { ServerCore, type ServerOutbox } from "../lib/session/server_core.ts";
import { DROP_REASONS, type DropCounters } from "../lib/base/counters.ts";
import type { UdpAddress } from "../lib/io/transport.ts";
import {
  decodeMessage,
  encodeNotice,
  encodeReset,
  HANDSHAKE_BYTES,
  MessageType,
  type NoticeCodeValue,
  SEALED_HEADER_BYTES,
} from "../lib/wire/messages.ts";

const SECRET = "fuzzing is the art of being rude to parsers 7";
const PATH_COUNT = 2;
const STEP_MS = 10;
const SCRATCH_BYTES = 65536;

// ---------------------------------------------------------------------------------------------------
// Two cores wired together in memory, recording every datagram that crosses

interface InFlight {
  readonly toServer: boolean;
  readonly pathIndex: number;
  readonly datagram: Uint8Array;
}

/** How one hostile datagram moved its receiver's drop and duplicate counters. */
interface Counted {
  readonly dropsAndDuplicates: number;
}

function dropSum(drops: DropCounters): number {
  let sum = 0;
  for (const reason of DROP_REASONS) sum += drops[reason];
  return sum;
}

/** A client and a server joined by {@link PATH_COUNT} instant paths. */
class Wire {
  readonly client: ClientCore;
  readonly server: ServerCore;
  nowMs = 0;
  readonly pathAddresses: UdpAddress[] = Array.from(
    { length: PATH_COUNT },
    (_, index) => ({ transport: "udp", hostname: "192.0.2.1", port: 40000 + index }),
  );
  readonly #queue: InFlight[] = [];
  /** Every datagram that crossed from the client to the server, in order. */
  readonly toServerRecord: Uint8Array[] = [];
  /** Every datagram that crossed from the server to the client, in order. */
  readonly toClientRecord: Uint8Array[] = [];
  /** Payloads handed to the target / the application outside hostile injections, as `flow|text`. */
  readonly deliveredToTarget: string[] = [];
  readonly deliveredToApp: string[] = [];
  /** Anything delivered while a hostile datagram was being processed: must stay empty. */
  readonly hostileDeliveries: string[] = [];
  /** Datagrams the server sent while a hostile datagram was being processed. */
  readonly sentDuringInjection: Uint8Array[] = [];
  /** Deliveries to the target under a session other than the client's. */
  readonly foreignSessionDeliveries: string[] = [];
  injecting = false;
  readonly clientOutbox: ClientOutbox;
  readonly serverOutbox: ServerOutbox;

  constructor(secret: SecretKeys | undefined, sessionId: number, rekeyIntervalMs: number) {
    this.server = new ServerCore({ ...serverSeams, secret, logger: silentLogger });
    this.client = new ClientCore({
      ...clientSeams,
      pathLabels: this.pathAddresses.map((_, index) => `path${index}`),
      secret,
      logger: silentLogger,
      sessionId,
      timing: { rekeyIntervalMs },
    });
    const decoder = new TextDecoder();
    this.clientOutbox = {
      scratch: new Uint8Array(SCRATCH_BYTES),
      sendOnPath: (pathIndex, datagram) => {
        this.#queue.push({ toServer: true, pathIndex, datagram: datagram.slice() });
      },
      deliverToApp: (flowId, payload) => {
        const delivered = `${flowId}|${decoder.decode(payload)}`;
        (this.injecting ? this.hostileDeliveries : this.deliveredToApp).push(delivered);
      },
    };
    this.serverOutbox = {
      scratch: new Uint8Array(SCRATCH_BYTES),
      sendTo: (address, datagram) => {
        if (this.injecting) this.sentDuringInjection.push(datagram.slice());
        const pathIndex = this.pathAddresses.findIndex((known) =>
          known.port === address.port && known.hostname === address.hostname
        );
        // Whatever goes to an attacker's address is lost in the void.
        if (pathIndex >= 0) {
          this.#queue.push({ toServer: false, pathIndex, datagram: datagram.slice() });
        }
      },
      deliverToTarget: (sessionId, flowId, payload) => {
        const delivered = `${flowId}|${decoder.decode(payload)}`;
        if (this.injecting) this.hostileDeliveries.push(`${sessionId}/${delivered}`);
        else if (sessionId !== this.client.sessionId) {
          this.foreignSessionDeliveries.push(`${sessionId}/${delivered}`);
        } else this.deliveredToTarget.push(delivered);
      },
    };
  }

  /** The INIT the client is waiting on, if a handshake is in flight (seen in the queue). */
  pendingInit(): Uint8Array | undefined {
    for (let index = this.#queue.length - 1; index >= 0; index--) {
      const { toServer, datagram } = this.#queue[index];
      if (toServer && datagram[1] === MessageType.init) return datagram;
    }
    return undefined;
  }

  /** Delivers everything in flight, including what the deliveries provoke. */
  pump(): void {
    while (this.#queue.length > 0) {
      const { toServer, pathIndex, datagram } = this.#queue.shift()!;
      if (toServer) {
        this.toServerRecord.push(datagram);
        this.server.receive(this.pathAddresses[pathIndex], datagram, this.nowMs, this.serverOutbox);
      } else {
        this.toClientRecord.push(datagram);
        this.client.receiveFromPath(pathIndex, datagram, this.nowMs, this.clientOutbox);
      }
    }
  }

  /** Advances the clock by one step, runs what is due and delivers what is in flight. */
  step(): void {
    this.nowMs += STEP_MS;
    if ((this.client.nextDeadlineMs() ?? Infinity) <= this.nowMs) {
      this.client.onTimer(this.nowMs, this.clientOutbox);
    }
    this.server.onTimer(this.nowMs);
    this.pump();
  }

  sendFromApp(flowId: number, text: string): void {
    this.client.sendFromApp(flowId, new TextEncoder().encode(text), this.nowMs, this.clientOutbox);
  }

  /** Sends from the target to the client's session; false when the server lost the session. */
  sendFromTarget(flowId: number, text: string): boolean {
    return this.server.sendFromTarget(
      this.client.sessionId,
      flowId,
      new TextEncoder().encode(text),
      this.nowMs,
      this.serverOutbox,
    );
  }

  /** Feeds one hostile datagram to the server; what its counters made of it. */
  injectAtServer(from: UdpAddress, datagram: Uint8Array): Counted {
    const before = dropSum(this.server.counters.drops) + this.server.counters.duplicates;
    this.injecting = true;
    try {
      this.server.receive(from, datagram, this.nowMs, this.serverOutbox);
    } finally {
      this.injecting = false;
    }
    const after = dropSum(this.server.counters.drops) + this.server.counters.duplicates;
    return { dropsAndDuplicates: after - before };
  }

  /** Feeds one hostile datagram to the client on `pathIndex`; what its counters made of it. */
  injectAtClient(pathIndex: number, datagram: Uint8Array): Counted {
    const before = dropSum(this.client.counters.drops) + this.client.counters.duplicates;
    this.injecting = true;
    try {
      this.client.receiveFromPath(pathIndex, datagram, this.nowMs, this.clientOutbox);
    } finally {
      this.injecting = false;
    }
    const after = dropSum(this.client.counters.drops) + this.client.counters.duplicates;
    return { dropsAndDuplicates: after - before };
  }
}

// ---------------------------------------------------------------------------------------------------
// The hostile generator

/** Everything the attacker has recorded: session A's traffic so far and a whole other session B. */
interface Recordings {
  readonly ownToServer: readonly Uint8Array[];
  readonly ownToClient: readonly Uint8Array[];
  readonly otherToServer: readonly Uint8Array[];
  readonly otherToClient: readonly Uint8Array[];
}

type HostileKind =
  | "random"
  | "truncated"
  | "bit-flipped"
  | "replayed"
  | "replayed-late"
  | "cross-session"
  | "cross-session-rewritten"
  | "reflected"
  | "forged-init"
  | "flipped-init"
  | "replayed-init"
  | "foreign-init"
  | "forged-response"
  | "flipped-response"
  | "replayed-response"
  | "forged-reset"
  | "forged-notice";

interface Hostile {
  readonly kind: HostileKind;
  readonly datagram: Uint8Array;
}

const TYPE_CODES = Object.values(MessageType);
const SEALED_CODES: readonly number[] = [
  MessageType.data,
  MessageType.probe,
  MessageType.probeReply,
];

const isSealed = (datagram: Uint8Array) => SEALED_CODES.includes(datagram[1]);
const isType = (code: number) => (datagram: Uint8Array) => datagram[1] === code;

function pick<T>(random: Random, items: readonly T[]): T {
  return items[random.below(items.length)];
}

/** One of the recorded datagrams matching `filter`, from the last `recent` (all when 0). */
function pickRecorded(
  random: Random,
  record: readonly Uint8Array[],
  filter: (datagram: Uint8Array) => boolean,
  recent = 0,
): Uint8Array | undefined {
  const start = recent > 0 ? Math.max(0, record.length - recent) : 0;
  for (let attempt = 0; attempt < 20; attempt++) {
    const candidate = record[start + random.below(record.length - start)];
    if (candidate && filter(candidate)) return candidate;
  }
  return undefined;
}

function randomBytes(random: Random, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let index = 0; index < length; index++) bytes[index] = random.below(256);
  return bytes;
}

/** Flips 1–4 random bits at offsets in [from, to). */
function flipBits(random: Random, datagram: Uint8Array, from: number, to: number): Uint8Array {
  const copy = datagram.slice();
  const flips = 1 + random.below(4);
  for (let flip = 0; flip < flips; flip++) {
    copy[from + random.below(to - from)] ^= 1 << random.below(8);
  }
  return copy;
}

function setSession(datagram: Uint8Array, sessionId: number): Uint8Array {
  const copy = datagram.slice();
  new DataView(copy.buffer).setUint32(4, sessionId);
  return copy;
}

function randomDatagram(random: Random): Uint8Array {
  const length = random.below(8) === 0 ? random.below(1500) : random.below(100);
  const datagram = randomBytes(random, length);
  // Most random datagrams get past the version and type bytes, to reach the deeper checks.
  if (length > 1 && random.next() < 0.7) {
    datagram[0] = 1;
    datagram[1] = pick(random, TYPE_CODES);
  }
  return datagram;
}

/**
 * Generates hostile datagrams for one side. `authenticated` is false for the plaintext variant,
 * which leaves out the forgeries that a tunnel without a secret cannot tell from genuine traffic
 * (see the comment on that test).
 */
class HostileGenerator {
  constructor(
    readonly random: Random,
    readonly recordings: Recordings,
    readonly sessionId: number,
    readonly authenticated: boolean,
  ) {}

  /** A datagram for the server, as if from a client. */
  towardServer(): Hostile {
    const random = this.random;
    const { ownToServer, ownToClient, otherToServer } = this.recordings;
    const roll = random.below(100);
    const recorded = (filter: (datagram: Uint8Array) => boolean, recent = 500) =>
      pickRecorded(random, ownToServer, filter, recent);
    if (roll < 12) return { kind: "random", datagram: randomDatagram(random) };
    if (roll < 22) {
      const source = recorded(() => true);
      if (source) {
        return { kind: "truncated", datagram: source.slice(0, random.below(source.length)) };
      }
    }
    if (roll < 40) {
      const source = recorded(isSealed);
      if (source) {
        // With a secret: anywhere (header, body, tag). Without: the body only, which keeps the
        // sequence number, so the copy is a duplicate rather than an undetectable forgery.
        const from = this.authenticated ? 0 : SEALED_HEADER_BYTES;
        if (source.length > from) {
          return { kind: "bit-flipped", datagram: flipBits(random, source, from, source.length) };
        }
      }
    }
    if (roll < 54) {
      const source = recorded(() => true);
      if (source) return { kind: "replayed", datagram: source };
    }
    if (roll < 60) {
      const source = pickRecorded(random, ownToServer.slice(0, 2000), () => true);
      if (source) return { kind: "replayed-late", datagram: source };
    }
    if (roll < 68) {
      const source = pickRecorded(random, otherToServer, isSealed);
      if (source) {
        if (this.authenticated && random.next() < 0.6) {
          // Someone else's datagram relabelled as ours (and as our current key phase).
          const relabelled = setSession(source, this.sessionId);
          const ours = recorded(isSealed, 50);
          if (ours) relabelled[3] = ours[3];
          return { kind: "cross-session-rewritten", datagram: relabelled };
        }
        return { kind: "cross-session", datagram: source };
      }
    }
    if (roll < 73) {
      // The server's own datagrams sent back to it. Without a secret a reflected DATA is a valid
      // DATA in the other direction's sequence space, so only the other types are reflected then.
      const source = pickRecorded(
        random,
        ownToClient,
        this.authenticated ? () => true : (datagram) => datagram[1] !== MessageType.data,
        500,
      );
      if (source) return { kind: "reflected", datagram: source };
    }
    if (roll < 80) {
      const init = randomBytes(random, HANDSHAKE_BYTES);
      init.set([1, MessageType.init, this.authenticated ? 1 : random.below(2), random.below(4)]);
      // Without a secret an INIT for our session with a fresh timestamp is genuine by definition,
      // so the plaintext variant forges INITs for other sessions only.
      new DataView(init.buffer).setUint32(
        4,
        this.authenticated && random.next() < 0.7 ? this.sessionId : 1 + random.below(2 ** 31),
      );
      init[8] = init[9] = init[10] = 0;
      return { kind: "forged-init", datagram: init };
    }
    if (roll < 87) {
      const source = pickRecorded(
        random,
        random.next() < 0.5 ? ownToServer : otherToServer,
        isType(MessageType.init),
      );
      if (source) {
        // Without a secret only the (ignored) key and MAC bytes are flipped: a flipped timestamp
        // would be a fresh, genuine-looking INIT.
        const from = this.authenticated ? 0 : 16;
        return { kind: "flipped-init", datagram: flipBits(random, source, from, HANDSHAKE_BYTES) };
      }
    }
    if (roll < 95) {
      const source = pickRecorded(random, ownToServer, isType(MessageType.init));
      if (source) return { kind: "replayed-init", datagram: source };
    }
    const foreign = pickRecorded(random, otherToServer, isType(MessageType.init));
    if (foreign && random.next() < 0.3) return { kind: "foreign-init", datagram: foreign };
    return { kind: "random", datagram: randomDatagram(random) };
  }

  /** A datagram for the client, as if from the server. */
  towardClient(pendingInit: Uint8Array | undefined): Hostile {
    const random = this.random;
    const { ownToServer, ownToClient, otherToClient } = this.recordings;
    const roll = random.below(100);
    const recorded = (filter: (datagram: Uint8Array) => boolean, recent = 500) =>
      pickRecorded(random, ownToClient, filter, recent);
    if (roll < 12) return { kind: "random", datagram: randomDatagram(random) };
    if (roll < 22) {
      const source = recorded(() => true);
      if (source) {
        return { kind: "truncated", datagram: source.slice(0, random.below(source.length)) };
      }
    }
    if (roll < 40) {
      const source = recorded(isSealed);
      const from = this.authenticated ? 0 : SEALED_HEADER_BYTES;
      if (source && source.length > from) {
        return { kind: "bit-flipped", datagram: flipBits(random, source, from, source.length) };
      }
    }
    if (roll < 52) {
      const source = recorded(() => true);
      if (source) return { kind: "replayed", datagram: source };
    }
    if (roll < 57) {
      const source = pickRecorded(random, ownToClient.slice(0, 2000), () => true);
      if (source) return { kind: "replayed-late", datagram: source };
    }
    if (roll < 65) {
      const source = pickRecorded(random, otherToClient, isSealed);
      if (source) {
        if (this.authenticated && random.next() < 0.6) {
          const relabelled = setSession(source, this.sessionId);
          const ours = recorded(isSealed, 50);
          if (ours) relabelled[3] = ours[3];
          return { kind: "cross-session-rewritten", datagram: relabelled };
        }
        return { kind: "cross-session", datagram: source };
      }
    }
    if (roll < 70) {
      const source = pickRecorded(
        random,
        ownToServer,
        this.authenticated ? () => true : (datagram) => datagram[1] !== MessageType.data,
        500,
      );
      if (source) return { kind: "reflected", datagram: source };
    }
    if (roll < 76) {
      // A RESPONSE made up by someone who saw the INIT: right session, phase and timestamp,
      // made-up key and MAC.
      const response = randomBytes(random, HANDSHAKE_BYTES);
      if (pendingInit && this.authenticated) {
        response.set(pendingInit.subarray(0, 16));
      } else {
        response.set([1, 0, 1, random.below(8)]);
        new DataView(response.buffer).setUint32(4, this.sessionId);
        response[8] = response[9] = response[10] = 0;
      }
      response[1] = MessageType.response;
      return { kind: "forged-response", datagram: response };
    }
    if (roll < 81) {
      const source = recorded(isType(MessageType.response), 0);
      if (source) {
        return {
          kind: "flipped-response",
          datagram: flipBits(random, source, 0, HANDSHAKE_BYTES),
        };
      }
    }
    if (roll < 86) {
      const source = recorded(isType(MessageType.response), 0);
      if (source) return { kind: "replayed-response", datagram: source };
    }
    if (roll < 93) {
      // Mostly for our session and the key phase last seen on the wire, as an observer would.
      const ours = random.next() < 0.3;
      const sessionId = ours ? this.sessionId : 1 + random.below(2 ** 31);
      const seen = ours && random.next() < 0.7 ? recorded(isSealed, 20) : undefined;
      const keyPhase = seen ? seen[3] : random.below(256);
      return { kind: "forged-reset", datagram: encodeReset(sessionId, keyPhase) };
    }
    const sessionId = random.next() < 0.5 ? this.sessionId : 1 + random.below(2 ** 31);
    return {
      kind: "forged-notice",
      datagram: encodeNotice(random.below(256) as NoticeCodeValue, sessionId, random.below(256)),
    };
  }
}

// ---------------------------------------------------------------------------------------------------
// The run

interface FuzzReport {
  readonly wire: Wire;
  readonly sentToTarget: string[];
  readonly sentToApp: string[];
  readonly hostileAtServer: number;
  readonly hostileAtClient: number;
  /** The sum, over hostile datagrams, of how much each moved the drop and duplicate counters. */
  readonly countedAtServer: number;
  readonly countedAtClient: number;
  /** Hostile datagrams that moved no drop or duplicate counter, with why that was allowed. */
  readonly uncountedAtServer: number;
  readonly uncountedAtClient: number;
  /** Per kind and side, how many were injected and how many were counted. */
  readonly byKind: Map<string, { injected: number; counted: number }>;
  /** Accounting violations: hostile datagrams whose effect on the counters was not as expected. */
  readonly accountingErrors: string[];
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes.subarray(0, 80), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** Records session B: another client and server with the same secret, rekeying often. */
function recordOtherSession(secret: SecretKeys | undefined, random: Random): Wire {
  const other = new Wire(secret, 1 + random.below(2 ** 31), 1000);
  for (let step = 0; step < 800; step++) {
    if (random.below(2) === 0) other.sendFromApp(1 + random.below(3), `other up ${step}`);
    if (other.client.state === "established" && random.below(2) === 0) {
      other.sendFromTarget(1, `other down ${step}`);
    }
    other.step();
  }
  return other;
}

function runFuzz(options: {
  seed: number;
  secret: SecretKeys | undefined;
  attackSteps: number;
  hostilePerStepEachSide: number;
}): FuzzReport {
  const { seed, secret, attackSteps, hostilePerStepEachSide } = options;
  const random = seededRandom(seed);
  const other = recordOtherSession(secret, random);
  const wire = new Wire(secret, 1 + random.below(2 ** 31), 5000);
  const generator = new HostileGenerator(
    random,
    {
      ownToServer: wire.toServerRecord,
      ownToClient: wire.toClientRecord,
      otherToServer: other.toServerRecord,
      otherToClient: other.toClientRecord,
    },
    wire.client.sessionId,
    secret !== undefined,
  );
  const sentToTarget: string[] = [];
  const sentToApp: string[] = [];
  const byKind = new Map<string, { injected: number; counted: number }>();
  const accountingErrors: string[] = [];
  let hostileAtServer = 0;
  let hostileAtClient = 0;
  let uncountedAtServer = 0;
  let uncountedAtClient = 0;
  let countedAtServer = 0;
  let countedAtClient = 0;
  let upCount = 0;
  let downCount = 0;

  const sendUp = () => {
    const flowId = 1 + random.below(4);
    const text = `up ${upCount++} ${"u".repeat(random.below(300))}`;
    sentToTarget.push(`${flowId}|${text}`);
    wire.sendFromApp(flowId, text);
  };
  const sendDown = () => {
    const flowId = 1 + random.below(4);
    const text = `down ${downCount++} ${"d".repeat(random.below(300))}`;
    assert.equal(
      wire.sendFromTarget(flowId, text),
      true,
      "the server lost the session",
    );
    sentToApp.push(`${flowId}|${text}`);
  };
  const tally = (side: string, kind: string, counted: boolean) => {
    const key = `${side} ${kind}`;
    const entry = byKind.get(key) ?? { injected: 0, counted: 0 };
    entry.injected++;
    if (counted) entry.counted++;
    byKind.set(key, entry);
  };

  const attackAtServer = () => {
    const hostile = generator.towardServer();
    const from = random.next() < 0.5
      ? pick(random, wire.pathAddresses)
      : { transport: "udp" as const, hostname: "198.51.100.7", port: 1024 + random.below(60000) };
    wire.sentDuringInjection.length = 0;
    let counted: Counted;
    try {
      counted = wire.injectAtServer(from, hostile.datagram);
    } catch (error) {
      throw new Error(
        `server.receive threw on a ${hostile.kind} datagram ${hex(hostile.datagram)}: ${error}`,
        { cause: error },
      );
    }
    hostileAtServer++;
    countedAtServer += counted.dropsAndDuplicates;
    tally("server", hostile.kind, counted.dropsAndDuplicates === 1);
    if (counted.dropsAndDuplicates === 1) return;
    // The one thing a hostile datagram may do without a drop: a recorded INIT of another session
    // that this server does not know yet is a genuine handshake (its MAC verifies), answered with
    // exactly one RESPONSE. (The session it opens is never confirmed: nobody holds its keys.)
    const sent = wire.sentDuringInjection;
    const answeredOnce = counted.dropsAndDuplicates === 0 && sent.length === 1 &&
      sent[0].length === HANDSHAKE_BYTES && sent[0][1] === MessageType.response;
    const genuineInit = hostile.kind === "foreign-init" ||
      (secret === undefined && (hostile.kind === "forged-init" || hostile.kind === "flipped-init"));
    if (genuineInit && answeredOnce) {
      uncountedAtServer++;
      return;
    }
    accountingErrors.push(
      `server: ${hostile.kind} moved the counters by ${counted.dropsAndDuplicates} and sent ${sent.length}: ${
        hex(hostile.datagram)
      }`,
    );
  };

  const attackAtClient = () => {
    const hostile = generator.towardClient(wire.pendingInit());
    const pathIndex = random.below(PATH_COUNT);
    let counted: Counted;
    try {
      counted = wire.injectAtClient(pathIndex, hostile.datagram);
    } catch (error) {
      throw new Error(
        `client.receiveFromPath threw on a ${hostile.kind} datagram ${
          hex(hostile.datagram)
        }: ${error}`,
        { cause: error },
      );
    }
    hostileAtClient++;
    countedAtClient += counted.dropsAndDuplicates;
    tally("client", hostile.kind, counted.dropsAndDuplicates === 1);
    if (counted.dropsAndDuplicates === 1) return;
    // RESET and NOTICE are unauthenticated by design (docs/PROTOCOL.md): one naming our session
    // is acted on (a handshake, a log line) without a drop; nothing is delivered either way.
    const decoded = decodeMessage(hostile.datagram);
    const controlForUs = decoded.ok &&
      (decoded.message.type === "reset" || decoded.message.type === "notice") &&
      decoded.message.sessionId === wire.client.sessionId;
    // Without a secret a RESPONSE matching the pending INIT is genuine by definition.
    const plaintextResponse = secret === undefined && decoded.ok &&
      decoded.message.type === "response";
    if (counted.dropsAndDuplicates === 0 && (controlForUs || plaintextResponse)) {
      uncountedAtClient++;
      return;
    }
    accountingErrors.push(
      `client: ${hostile.kind} moved the counters by ${counted.dropsAndDuplicates}: ${
        hex(hostile.datagram)
      }`,
    );
  };

  // The session comes up and carries a little traffic before the attack starts.
  for (let step = 0; step < 30; step++) {
    sendUp();
    if (wire.client.state === "established") sendDown();
    wire.step();
  }
  assert.equal(wire.client.state, "established", "no session before the attack");

  for (let step = 0; step < attackSteps; step++) {
    // Each step: 0–2 datagrams each way (so some steps carry nothing upstream), hostile datagrams
    // at both ends, all shuffled together, with some deliveries in between.
    const actions: (() => void)[] = [];
    for (let count = random.below(3); count > 0; count--) actions.push(sendUp);
    for (let count = random.below(3); count > 0; count--) actions.push(sendDown);
    for (let count = 0; count < hostilePerStepEachSide; count++) {
      actions.push(attackAtServer, attackAtClient);
    }
    for (let index = actions.length - 1; index > 0; index--) {
      const other = random.below(index + 1);
      [actions[index], actions[other]] = [actions[other], actions[index]];
    }
    for (const action of actions) {
      action();
      if (random.below(12) === 0) wire.pump();
    }
    wire.step();
  }
  // The attack is over: let everything in flight land.
  for (let step = 0; step < 300; step++) wire.step();

  return {
    wire,
    sentToTarget,
    sentToApp,
    hostileAtServer,
    hostileAtClient,
    countedAtServer,
    countedAtClient,
    uncountedAtServer,
    uncountedAtClient,
    byKind,
    accountingErrors,
  };
}

/** Multiset difference: what is in `expected` but not `actual`, and the other way round. */
function difference(expected: readonly string[], actual: readonly string[]) {
  const counts = new Map<string, number>();
  for (const item of expected) counts.set(item, (counts.get(item) ?? 0) + 1);
  for (const item of actual) counts.set(item, (counts.get(item) ?? 0) - 1);
  const missing: string[] = [];
  const extra: string[] = [];
  for (const [item, count] of counts) {
    for (let copy = 0; copy < Math.abs(count); copy++) {
      (count > 0 ? missing : extra).push(item.slice(0, item.indexOf(" ", item.indexOf(" ") + 1)));
    }
  }
  return { missing, extra };
}

function duplicates(items: readonly string[]): string[] {
  const seen = new Set<string>();
  return items.filter((item) => seen.has(item) || !seen.add(item)).map((item) => item.slice(0, 40));
}

/** Runs `body`, adding the seed to any failure so that it can be replayed. */
function withSeed(seed: number, body: () => void): void {
  try {
    body();
  } catch (error) {
    if (error instanceof Error) error.message = `[seed ${seed}] ${error.message}`;
    throw error;
  }
}

/** What a failure message needs to be understood without a rerun. */
function diagnosis(report: FuzzReport): string {
  const { server, client } = { server: report.wire.server, client: report.wire.client };
  const nonZero = (drops: DropCounters) =>
    DROP_REASONS.filter((reason) => drops[reason] > 0).map((reason) => `${reason}=${drops[reason]}`)
      .join(" ");
  return [
    `handshakes completed by the client: ${client.counters.handshakesCompleted}`,
    `server drops: ${nonZero(server.counters.drops)} duplicates=${server.counters.duplicates}`,
    `client drops: ${nonZero(client.counters.drops)} duplicates=${client.counters.duplicates}`,
    ...[...report.byKind].sort().map(([key, { injected, counted }]) =>
      `  ${key}: ${injected} injected, ${counted} counted`
    ),
  ].join("\n");
}

function assertDelivered(
  what: string,
  sent: readonly string[],
  delivered: readonly string[],
  report: FuzzReport,
): void {
  const { missing, extra } = difference(sent, delivered);
  assert.ok(
    missing.length === 0 && extra.length === 0,
    `${what}: ${sent.length} sent, ${missing.length} missing (first: ${
      missing.slice(0, 5).join(", ")
    }), ${extra.length} extra (first: ${extra.slice(0, 5).join(", ")})\n${diagnosis(report)}`,
  );
}

// ---------------------------------------------------------------------------------------------------
// The fuzz runs

const ATTACK_STEPS = 3000;
const HOSTILE_PER_STEP_EACH_SIDE = 17; // 3000 × 17 × 2 = 102 000 hostile datagrams

Deno.test("with a secret, 100 000 hostile datagrams at both ends: nothing throws, nothing hostile is delivered, the stream arrives exactly once", () => {
  const seed = 0x5eed_f022;
  withSeed(seed, () => {
    const report = runFuzz({
      seed,
      secret: deriveSecretKeys(SECRET),
      attackSteps: ATTACK_STEPS,
      hostilePerStepEachSide: HOSTILE_PER_STEP_EACH_SIDE,
    });
    const { wire } = report;
    assert.equal(report.hostileAtServer + report.hostileAtClient, 102_000);

    // None is forwarded, to the target or to the application.
    assert.deepEqual(wire.hostileDeliveries, []);
    assert.deepEqual(wire.foreignSessionDeliveries, []);

    // Every hostile datagram moved a drop or duplicate counter by exactly one, except a recorded
    // INIT of another session that this server had not seen (a genuine handshake, answered once)
    // and RESETs/NOTICEs naming our session (unauthenticated by design, acted on without a drop).
    assert.deepEqual(report.accountingErrors.slice(0, 5), [], diagnosis(report));
    assert.equal(report.countedAtServer, report.hostileAtServer - report.uncountedAtServer);
    assert.equal(report.countedAtClient, report.hostileAtClient - report.uncountedAtClient);
    assert.ok(report.uncountedAtServer < 100 && report.uncountedAtClient < 5000, diagnosis(report));
    const server = wire.server.counters;
    const client = wire.client.counters;
    // Forgeries that reached the AEAD or the handshake MAC failed there.
    assert.ok(server.drops["bad-tag"] > 500, diagnosis(report));
    assert.ok(client.drops["bad-tag"] > 100, diagnosis(report));
    assert.ok(server.drops["bad-mac"] > 1000, diagnosis(report));

    // The legitimate stream never stalls: every payload, both ways, exactly once.
    assert.ok(report.sentToTarget.length > 2500 && report.sentToApp.length > 2500);
    assertDelivered("client → target", report.sentToTarget, wire.deliveredToTarget, report);
    assertDelivered("target → application", report.sentToApp, wire.deliveredToApp, report);
  });
});

// Without a secret nothing is authenticated, and the tunnel says so (docs/SECURITY.md): a forged
// datagram with a correctly guessed (or observed) session id and a fresh sequence number IS
// accepted and delivered, and so is a forged INIT with a fresh timestamp. So this variant leaves out
// exactly those forgeries — flips in a sealed header, relabelled datagrams of another session,
// reflected DATA, INITs for our session — and asserts only what the window still promises: nothing
// throws, and no legitimate payload is delivered twice however often it is replayed. (Datagrams of
// the other session ARE delivered here, under that session: replaying its INIT re-creates it.)
Deno.test("without a secret, 100 000 hostile datagrams at both ends: nothing throws and no legitimate payload is delivered twice", () => {
  const seed = 0x0bad_5eed;
  withSeed(seed, () => {
    const report = runFuzz({
      seed,
      secret: undefined,
      attackSteps: ATTACK_STEPS,
      hostilePerStepEachSide: HOSTILE_PER_STEP_EACH_SIDE,
    });
    const { wire } = report;
    assert.equal(report.hostileAtServer + report.hostileAtClient, 102_000);
    assert.deepEqual(duplicates(wire.deliveredToTarget), []);
    assert.deepEqual(duplicates(wire.deliveredToApp), []);
    const legit = new Set([...report.sentToTarget, ...report.sentToApp]);
    const replayedCopies = wire.hostileDeliveries
      .map((item) => item.slice(item.indexOf("/") + 1))
      .filter((item) => legit.has(item))
      .map((item) => item.slice(0, 20));
    assert.deepEqual(replayedCopies, [], diagnosis(report));
  });
});

// ---------------------------------------------------------------------------------------------------
// What the fuzzing found, pinned down: a RESET is unauthenticated and anyone who has seen the session
// id can send one (or make the server send one, by replaying an old datagram from a spoofed path
// address). docs/SECURITY.md promises that it "only makes [the client] run a handshake early (its
// current keys keep working)". These tests hold the cores to that promise.

/** A RESET for the client's session and the key phase it uses, as an observer of the paths makes it. */
function forgedReset(wire: Wire): Uint8Array {
  const lastResponse = wire.toClientRecord.findLast(isType(MessageType.response));
  assert.ok(lastResponse, "no handshake seen yet");
  return encodeReset(wire.client.sessionId, lastResponse[3]);
}

/** An established session with a secret, on two instant paths, with one datagram each way. */
function establishedWire(options: { authenticated: boolean } = { authenticated: true }): Wire {
  const secret = options.authenticated ? deriveSecretKeys(SECRET) : undefined;
  const wire = new Wire(secret, 0x5e55_1011, 120_000);
  wire.sendFromApp(1, "hello");
  for (let step = 0; step < 5; step++) wire.step();
  assert.equal(wire.client.state, "established");
  assert.equal(wire.sendFromTarget(1, "welcome"), true);
  wire.pump();
  assert.deepEqual(wire.deliveredToTarget, ["1|hello"]);
  assert.deepEqual(wire.deliveredToApp, ["1|welcome"]);
  return wire;
}

Deno.test("after two forged RESETs with no upstream datagram between them, the next downstream datagram arrives", () => {
  const wire = establishedWire();
  wire.injectAtClient(0, forgedReset(wire));
  wire.pump(); // handshake 1 completes; the server holds its keys as "next"
  wire.injectAtClient(0, forgedReset(wire));
  wire.pump(); // handshake 2 completes; the client now keeps only the keys of handshakes 1 and 2
  assert.equal(wire.sendFromTarget(1, "still here"), true); // sealed under the server's current keys
  wire.pump();
  assert.deepEqual(wire.deliveredToApp, ["1|welcome", "1|still here"]);
});

Deno.test("a forged RESET while the newest keys are unconfirmed at the server loses no upstream datagram", () => {
  const wire = establishedWire();
  wire.injectAtClient(0, forgedReset(wire));
  wire.pump(); // handshake 1 completes: the client sends under its keys, the server holds them as next
  wire.injectAtClient(0, forgedReset(wire)); // handshake 2 starts; nothing is lost meanwhile
  wire.sendFromApp(1, "sent under the keys of handshake 1");
  wire.pump(); // the server sees INIT 2 before that datagram
  assert.deepEqual(wire.deliveredToTarget, ["1|hello", "1|sent under the keys of handshake 1"]);
});

/**
 * Records an upstream datagram, sends 256 forged RESETs (each followed by an upstream datagram, so
 * that each handshake they start moves the server to the new phase) and replays the recording:
 * what the server's counters made of the replay.
 */
function replayAfterPhaseWrap(wire: Wire): Counted {
  // Upstream sequence numbers 1..5 of phase 0; the attacker records the last one.
  for (let index = 1; index <= 5; index++) wire.sendFromApp(1, `early ${index}`);
  const recorded = wire.toServerRecord.length;
  wire.pump();
  const early5 = wire.toServerRecord[recorded + 2 * 4]; // two paths, the fifth datagram
  assert.equal(early5[3], 0, "recorded under phase 0");
  // 256 forged RESETs, each followed by one upstream datagram, bring the phase byte back to 0.
  for (let handshake = 0; handshake < 256; handshake++) {
    wire.injectAtClient(0, forgedReset(wire));
    wire.pump();
    wire.sendFromApp(1, `after handshake ${handshake}`);
    wire.pump();
  }
  return wire.injectAtServer(wire.pathAddresses[0], early5);
}

Deno.test("with a secret, a datagram replayed after 256 forced handshakes is dropped", () => {
  const wire = establishedWire();
  const counted = replayAfterPhaseWrap(wire);
  assert.deepEqual(wire.hostileDeliveries, []);
  assert.equal(counted.dropsAndDuplicates, 1);
});

Deno.test("without a secret, a datagram replayed after 256 forced handshakes is not delivered again", () => {
  // Without a secret sequence numbers restart with every key phase and nothing but the phase byte
  // tells phases apart, so after 256 handshakes an old datagram looks new again.
  const wire = establishedWire({ authenticated: false });
  const counted = replayAfterPhaseWrap(wire);
  assert.deepEqual(wire.hostileDeliveries, []);
  assert.equal(counted.dropsAndDuplicates, 1);
});
