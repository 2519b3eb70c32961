/**
 * mpbridge once its arguments are read: the relay it starts, its start line (with the impairment in
 * words and the seed), and its final stats line.
 */

import { formatHostPort } from "../base/address.ts";
import { VERSION } from "../base/usage_error.ts";
import type { Logger } from "../base/log.ts";
import { BridgeStartError, startBridge } from "../bridge/bridge_relay.ts";
import {
  BRIDGE_DROP_REASONS,
  type BridgeStats,
  type DirectionStats,
} from "../bridge/bridge_stats.ts";
import {
  DEFAULT_QUEUE_LIMIT_MS,
  formatBlackout,
  type ImpairmentOptions,
} from "../bridge/impairment.ts";
import type { BindTransport } from "../io/transport.ts";
import { shutDownLogging } from "../ops/logging.ts";
import type { RunningProgram } from "./program_runner.ts";
import { type BridgeCommand, formatMs } from "./bridge_settings.ts";

/** What the command line asks mpbridge to run. */
export type BridgeRun = Extract<BridgeCommand, { readonly kind: "run" }>;

/**
 * Starts the relay on sockets from `bind`. A listen address it cannot use, or a server name that
 * does not resolve, is logged and ends the program with exit code 1.
 */
export async function startBridgeProgram(
  command: BridgeRun,
  logger: Logger,
  bind: BindTransport,
): Promise<RunningProgram> {
  const seed = command.seed ?? crypto.getRandomValues(new Uint32Array(1))[0];
  let bridge;
  try {
    bridge = await startBridge({ ...command, seed, logger, bind });
  } catch (error) {
    if (!(error instanceof BridgeStartError)) throw error;
    logger.error(error.message);
    await shutDownLogging();
    Deno.exit(1);
  }
  const server = formatHostPort(bridge.serverAddress);
  const serverName = bridge.serverAddress.hostname === command.server.hostname
    ? ""
    : ` (${command.server.hostname})`;
  return {
    stop: () => bridge.stop(),
    statsLine: () => describeStats(bridge.stats()),
    startLine: {
      message: `Relaying ${formatHostPort(bridge.listenAddress)} to ${server}${serverName}`,
      fields: { version: VERSION, impairment: describeImpairment(command.impairment), seed },
    },
    warnings: [],
    // A relay loop that fails is a bug: it stops the bridge, and the program ends with its stack
    // trace instead of waiting for a signal that would only report the damage.
    failure: new Promise<never>((_, reject) => bridge.finished.catch(reject)),
  };
}

function formatRate(bitsPerSecond: number): string {
  const units: [string, number][] = [["gbit", 1e9], ["mbit", 1e6], ["kbit", 1e3]];
  for (const [unit, multiplier] of units) {
    if (bitsPerSecond >= multiplier) {
      return `${Number((bitsPerSecond / multiplier).toFixed(3))}${unit}`;
    }
  }
  return `${bitsPerSecond}bit`;
}

function describeImpairment(impairment: ImpairmentOptions): string {
  const parts: string[] = [];
  if (impairment.lossPercent) parts.push(`loss ${impairment.lossPercent}%`);
  if (impairment.delayMs || impairment.jitterMs) {
    const jitter = impairment.jitterMs ? ` ±${formatMs(impairment.jitterMs)}` : "";
    parts.push(`delay ${formatMs(impairment.delayMs ?? 0)}${jitter}`);
  }
  if (impairment.rateBitsPerSecond !== undefined) {
    const queueLimitMs = impairment.queueLimitMs ?? DEFAULT_QUEUE_LIMIT_MS;
    const rate = formatRate(impairment.rateBitsPerSecond);
    parts.push(`rate ${rate} (queue ${formatMs(queueLimitMs)})`);
  }
  for (const window of impairment.blackouts ?? []) {
    parts.push(`blackout ${formatBlackout(window, formatMs)}`);
  }
  return parts.length === 0 ? "no impairment" : parts.join(", ");
}

function describeDirection(name: string, stats: DirectionStats): string {
  const drops = BRIDGE_DROP_REASONS.filter((reason) => stats.dropped[reason] > 0)
    .map((reason) => ` ${reason}=${stats.dropped[reason]}`).join("");
  return `${name} in=${stats.datagramsIn} (${stats.bytesIn} B) out=${stats.datagramsOut} ` +
    `(${stats.bytesOut} B) dropped:${drops || " none"}`;
}

function describeStats(stats: BridgeStats): string {
  return `${describeDirection("upstream", stats.upstream)}; ` +
    `${describeDirection("downstream", stats.downstream)}; ` +
    `clients opened=${stats.mappingsOpened} expired=${stats.mappingsExpired}`;
}
