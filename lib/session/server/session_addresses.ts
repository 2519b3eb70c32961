/**
 * The addresses a session is heard from, as the server learns them: a new one on the first authentic
 * datagram from it (the oldest forgotten past the limit), its pace, its copies counted for the
 * client's loss estimate, and the client's advice from each PROBE, which may also move a path to a
 * new address.
 */

import { formatHostPort, type UdpEndpoint } from "../../base/address.ts";
import type { Logger } from "../../base/log.ts";
import { FecEncoder } from "../../fec/encoder.ts";
import type { PathAdvice, SealedMessage } from "../../wire/messages.ts";
import { formatSessionId } from "../../wire/session_id.ts";
import { MIN_ADDRESS_SILENCE_MS } from "./reply_schedulers.ts";
import type { ServerSession } from "./server_session.ts";
import type { SessionAddress } from "./session_address.ts";

/** Smoothing of the time between datagrams from an address. */
const ARRIVAL_GAP_GAIN = 1 / 8;

/** The longest reorder timeout the server honours (the client's own limit is the same). */
const MAX_REORDER_TIMEOUT_MS = 1000;

function sameEndpoint(a: UdpEndpoint, b: UdpEndpoint): boolean {
  return a.port === b.port && a.hostname === b.hostname;
}

/** Notes an authentic datagram of `session` from `from`; returns that address's record. */
export function noteAddress(
  session: ServerSession,
  from: UdpEndpoint,
  nowMs: number,
  maxAddresses: number,
  logger: Logger,
): SessionAddress {
  const addresses = session.addresses;
  for (const known of addresses) {
    if (sameEndpoint(known.address, from)) {
      known.arrivalGapMs += (nowMs - known.lastHeardMs - known.arrivalGapMs) * ARRIVAL_GAP_GAIN;
      known.lastHeardMs = nowMs;
      known.received++;
      return known;
    }
  }
  if (addresses.length >= maxAddresses) {
    let oldest = 0;
    for (let i = 1; i < addresses.length; i++) {
      if (addresses[i].lastHeardMs < addresses[oldest].lastHeardMs) oldest = i;
    }
    const [evicted] = addresses.splice(oldest, 1);
    session.roundRobin.forget(evicted.id);
  }
  const added: SessionAddress = {
    address: { transport: "udp", hostname: from.hostname, port: from.port },
    id: session.nextAddressId++,
    lastHeardMs: nowMs,
    arrivalGapMs: MIN_ADDRESS_SILENCE_MS,
    received: 1,
    pathIndex: undefined,
    carryData: true,
    weight: 1,
    lastProbeKeyPhase: -1,
    lastProbeSequence: -1,
  };
  addresses.push(added);
  logger.debug("session heard on a new address", {
    session: formatSessionId(session.id),
    from: formatHostPort(from),
    addresses: addresses.length,
  });
  return added;
}

/** Counts a redundant copy on its path (only a known one), so the client can estimate loss per path. */
export function countCopy(session: ServerSession, from: UdpEndpoint): void {
  for (const known of session.addresses) {
    if (sameEndpoint(known.address, from)) {
      known.received++;
      break;
    }
  }
}

/**
 * Takes in the advice of a PROBE from `address`: the session's mode and this path's part in it.
 * A path that shows up from a new address (NAT rebinding, a new uplink address, a restarted
 * bridge) leaves its old address behind: the PROBE that says so is authentic, so only the client
 * can move its paths.
 */
export function takeAdvice(
  session: ServerSession,
  address: SessionAddress,
  pathIndex: number,
  advice: PathAdvice | undefined,
  probe: SealedMessage,
  logger: Logger,
): void {
  const newer = (known: SessionAddress) =>
    known.lastProbeKeyPhase === probe.keyPhase && known.lastProbeSequence > probe.sequence;
  if (address.pathIndex !== pathIndex) {
    const stale = session.addresses.findIndex((known) =>
      known !== address && known.pathIndex === pathIndex
    );
    // A PROBE that left before the one that moved the path (it arrived late, or it is a copy an
    // attacker raced here from elsewhere) does not move it back.
    if (stale >= 0 && newer(session.addresses[stale])) return;
    address.pathIndex = pathIndex;
    if (stale >= 0) {
      const [old] = session.addresses.splice(stale, 1);
      session.roundRobin.forget(old.id);
      logger.info("a path of the session moved to a new address", {
        session: formatSessionId(session.id),
        from: formatHostPort(old.address),
        to: formatHostPort(address.address),
      });
    }
  }
  address.lastProbeKeyPhase = probe.keyPhase;
  address.lastProbeSequence = probe.sequence;
  if (!advice) return;
  address.carryData = advice.carryData;
  address.weight = advice.weight;
  session.setMode(advice.mode);
  // The client's wish, bounded: a reorder buffer holds copies, and the server pays for them.
  session.delivery.reorderTimeoutMs = Math.min(advice.reorderTimeoutMs, MAX_REORDER_TIMEOUT_MS);
  if (advice.mode === "fec" && advice.fecDataShards > 0) {
    const parameters = {
      dataShards: advice.fecDataShards,
      parityShards: advice.fecParityShards,
    };
    if (!session.fecEncoder) session.fecEncoder = new FecEncoder(parameters);
    else session.fecEncoder.setParameters(parameters);
  }
}
