/**
 * The status table `mpclient status` and `mpserver status` print: a status snapshot
 * (`lib/ops/status.ts`) as aligned plain text for a terminal — a summary, the drops that happened, then
 * one row per path (client) or per session (server). No colours or escape codes, so it reads the
 * same in a pipe or a log.
 */

import { assertNever } from "../base/assert.ts";
import type {
  ClientStatus,
  ProgramStatus,
  ServerSessionStatus,
  ServerStatus,
  TrafficStatus,
} from "./status.ts";

/** What shows for a value not measured yet. */
const UNKNOWN = "-";
/** Space between table columns. */
const COLUMN_GAP = "  ";

/**
 * Renders a status snapshot as a readable table, ending in a newline.
 *
 * @example
 * ```ts ignore
 * console.log(formatStatus(await (await fetch("http://127.0.0.1:9100/status")).json()));
 * ```
 */
export function formatStatus(status: ProgramStatus): string {
  switch (status.program) {
    case "mpclient":
      return formatClientStatus(status);
    case "mpserver":
      return formatServerStatus(status);
    default:
      return assertNever(status);
  }
}

function formatClientStatus(status: ClientStatus): string {
  const traffic = status.traffic;
  const lines = [
    `mpclient ${status.version}   up ${
      formatUptime(status.uptimeSeconds)
    }   mode ${status.mode}   ${
      status.encrypted ? "encrypted" : "NOT encrypted (no shared secret)"
    }`,
    `listen ${status.listen}   session ${status.session.id} ${status.session.state} (${
      plural(status.session.handshakes, "handshake")
    })   flows ${formatCount(status.flows)}`,
    `traffic   from app ${formatTraffic(traffic.fromApp)}   to app ${
      formatTraffic(traffic.toApp)
    }   duplicates ${formatCount(traffic.duplicates)}`,
    `drops     ${formatNonZero(status.drops)}`,
    "",
  ];
  if (status.paths.length === 0) {
    lines.push("no paths");
  } else {
    lines.push(
      ...formatTable(
        [
          "PATH",
          "STATE",
          "REMOTE",
          "LOCAL",
          "RTT",
          "JITTER",
          "LOSS OUT",
          "LOSS IN",
          "SENT",
          "RECEIVED",
          "ERRORS",
          "HEARD",
        ],
        status.paths.map((path) => [
          path.name + (path.backup ? " (backup)" : "") +
          (path.inService === false ? " (out of service)" : ""),
          path.state,
          path.remote,
          formatLocal(path),
          formatMs(path.rttMs),
          formatMs(path.jitterMs),
          formatRatio(path.lossToServer),
          formatRatio(path.lossFromServer),
          formatTraffic(path.sent),
          formatTraffic(path.received),
          formatNonZero(path.sendErrors, "0"),
          path.lastHeardAgoMs === null ? "never" : `${formatAgo(path.lastHeardAgoMs)} ago`,
        ]),
        new Set([4, 5, 6, 7, 8, 9]),
      ),
      "loss out: toward the server; loss in: from the server; sent and received include probes",
    );
  }
  return lines.join("\n") + "\n";
}

/** A path's local end: `upa 10.0.0.2:40000`, the address alone, or "waiting" for an address. */
function formatLocal(path: ClientStatus["paths"][number]): string {
  const address = path.local === "" ? "waiting" : path.local;
  return path.interface ? `${path.interface} ${address}` : address;
}

function formatServerStatus(status: ServerStatus): string {
  const traffic = status.traffic;
  const errors = {
    "target-send": status.errors.targetSend,
    "client-send": status.errors.clientSend,
    "foreign-on-target-socket": status.errors.foreignOnTargetSocket,
    "flow-limit": status.errors.flowLimit,
  };
  const lines = [
    `mpserver ${status.version}   up ${formatUptime(status.uptimeSeconds)}   ${
      status.encrypted ? "encrypted" : "NOT encrypted (no shared secret)"
    }`,
    `listen ${status.listen.join(", ")}   target ${status.target}   sessions ${
      formatCount(status.sessionCount)
    } (opened ${formatCount(status.sessionsOpened)}, closed ${
      formatCount(status.sessionsClosed)
    })   target sockets ${formatCount(status.targetSockets)}`,
    `traffic   received ${formatTraffic(traffic.received)}   sent ${
      formatTraffic(traffic.sent)
    }   to target ${formatCount(traffic.toTarget)}   from target ${
      formatCount(traffic.fromTarget)
    }   duplicates ${formatCount(traffic.duplicates)}`,
    `drops     ${formatNonZero(status.drops)}`,
    `errors    ${formatNonZero(errors)}`,
    "",
  ];
  if (status.sessions.length === 0) {
    lines.push("no sessions");
  } else {
    lines.push(
      ...formatTable(
        [
          "SESSION",
          "STATE",
          "KEY",
          "AGE",
          "IDLE",
          "FLOWS",
          "FROM CLIENT",
          "TO CLIENT",
          "DUPLICATES",
          "PATH",
          "HEARD",
          "RECEIVED",
        ],
        status.sessions.flatMap(sessionRows),
        new Set([2, 3, 4, 5, 6, 7, 8, 10, 11]),
      ),
    );
    if (status.sessionsTruncated) {
      lines.push(
        `… and ${
          formatCount(status.sessionCount - status.sessions.length)
        } more sessions (showing the ${formatCount(status.sessions.length)} most recently active)`,
      );
    }
  }
  return lines.join("\n") + "\n";
}

/** A session's row, then one continuation row per further path (address). */
function sessionRows(session: ServerSessionStatus): string[][] {
  const pathCells = (index: number) => {
    const path = session.paths[index];
    return path === undefined
      ? [UNKNOWN, "", ""]
      : [path.address, `${formatAgo(path.lastHeardAgoMs)} ago`, formatCount(path.received)];
  };
  const rows = [[
    session.id,
    session.confirmed ? "confirmed" : "handshake",
    session.keyPhase === null ? UNKNOWN : String(session.keyPhase),
    formatUptime(session.ageSeconds),
    formatAgo(session.idleSeconds * 1000),
    formatCount(session.flows),
    formatTraffic(session.fromClient),
    formatTraffic(session.toClient),
    formatCount(session.duplicates),
    ...pathCells(0),
  ]];
  for (let index = 1; index < session.paths.length; index++) {
    rows.push([...Array(9).fill(""), ...pathCells(index)]);
  }
  return rows;
}

/** Aligns rows under headers; columns in `rightAligned` (numbers) are padded on the left. */
function formatTable(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
  rightAligned: ReadonlySet<number>,
): string[] {
  const widths = headers.map((header, column) =>
    Math.max(header.length, ...rows.map((row) => row[column].length))
  );
  const render = (cells: readonly string[]) =>
    cells.map((cell, column) =>
      rightAligned.has(column) ? cell.padStart(widths[column]) : cell.padEnd(widths[column])
    ).join(COLUMN_GAP).trimEnd();
  return [render(headers), ...rows.map(render)];
}

/** `reason=count` words for the non-zero counts, or `none` (or `zero` when given). */
function formatNonZero(counts: Readonly<Record<string, number>>, zero = "none"): string {
  const words = Object.entries(counts).filter(([, count]) => count > 0).map(([name, count]) =>
    `${name}=${formatCount(count)}`
  );
  return words.length > 0 ? words.join(" ") : zero;
}

/** `1000 (1.2 MB)`. */
function formatTraffic(traffic: TrafficStatus): string {
  return `${formatCount(traffic.datagrams)} (${formatBytes(traffic.bytes)})`;
}

/** An integer as is (no separators: they differ by locale, and scripts copy them). */
function formatCount(count: number): string {
  return String(count);
}

/** Bytes in decimal units: `512 B`, `1.5 kB`, `20.3 MB`, `4.1 GB`. */
export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  const units = ["kB", "MB", "GB", "TB", "PB"];
  let value = bytes;
  let unit = -1;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value < 10 ? value.toFixed(2) : value < 100 ? value.toFixed(1) : value.toFixed(0)} ${
    units[unit]
  }`;
}

/** Milliseconds with a precision that suits their size: `0.123 ms`, `4.56 ms`, `120 ms`. */
function formatMs(ms: number | null): string {
  if (ms === null) return UNKNOWN;
  const digits = ms < 1 ? 3 : ms < 10 ? 2 : ms < 100 ? 1 : 0;
  return `${ms.toFixed(digits)} ms`;
}

/** A ratio as a percentage: `0.8%`, `20.0%`, `0.05%`. */
function formatRatio(ratio: number | null): string {
  if (ratio === null) return UNKNOWN;
  const percent = ratio * 100;
  return `${percent > 0 && percent < 0.1 ? percent.toFixed(2) : percent.toFixed(1)}%`;
}

/** An age: `350ms`, `4.2s`, `3m05s`, `2h01m`. */
function formatAgo(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  return formatUptime(ms / 1000);
}

/** A duration in whole units: `45s`, `3m05s`, `2h01m`, `3d04h`. */
export function formatUptime(seconds: number): string {
  const total = Math.floor(seconds);
  const days = Math.floor(total / 86_400);
  const hours = Math.floor((total % 86_400) / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = total % 60;
  const two = (value: number) => String(value).padStart(2, "0");
  if (days > 0) return `${days}d${two(hours)}h`;
  if (hours > 0) return `${hours}h${two(minutes)}m`;
  if (minutes > 0) return `${minutes}m${two(secs)}s`;
  return `${secs}s`;
}

function plural(count: number, noun: string): string {
  return `${formatCount(count)} ${noun}${count === 1 ? "" : "s"}`;
}
