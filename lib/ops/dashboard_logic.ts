/**
 * What the web dashboard (`lib/ops/dashboard.ts`) computes and draws: rates from successive counters,
 * chart paths, number formats with units, and the page's HTML for a history of `/status`
 * snapshots. All of it is pure — no DOM, no fetch, no clock — so the tests run it in Deno.
 *
 * The page runs these very functions: `lib/ops/dashboard.ts` inlines each export's source
 * (`Function.prototype.toString`, which gives the JavaScript Deno compiled) into the page's
 * `<script>`. So every export here must be a self-contained function declaration that calls only
 * other exports of this module and the JavaScript built-ins: no module-level constants, no
 * imports. `tests/dashboard_logic_test.ts` evaluates the inlined source in an empty scope to keep
 * that true.
 *
 * The status shapes below are what the page reads of `lib/ops/status.ts`'s `ClientStatus` and
 * `ServerStatus`; the page tolerates missing lists (an older or newer program) rather than going
 * blank.
 */

/** A count of datagrams and their bytes. */
export interface TrafficView {
  readonly datagrams: number;
  readonly bytes: number;
}

/** One client path as the dashboard reads it. */
export interface ClientPathView {
  readonly index: number;
  readonly name: string;
  readonly remote: string;
  readonly local: string;
  readonly state: string;
  readonly backup: boolean;
  readonly rttMs: number | null;
  readonly jitterMs: number | null;
  /** 0..1 */
  readonly lossToServer: number | null;
  /** 0..1 */
  readonly lossFromServer: number | null;
  readonly sent: TrafficView;
  readonly received: TrafficView;
  readonly sendErrors?: Readonly<Record<string, number>>;
  readonly probesSent?: number;
  readonly probeReplies?: number;
  readonly lastHeardAgoMs: number | null;
}

/** mpclient's `/status` as the dashboard reads it. */
export interface ClientStatusView {
  readonly program: "mpclient";
  readonly version: string;
  readonly uptimeSeconds: number;
  readonly mode: string;
  readonly encrypted: boolean;
  readonly listen: string;
  readonly session: { readonly id: string; readonly state: string; readonly handshakes: number };
  readonly traffic: {
    readonly fromApp: TrafficView;
    readonly toApp: TrafficView;
    readonly duplicates: number;
  };
  readonly drops: Readonly<Record<string, number>>;
  readonly flows: number;
  readonly paths: readonly ClientPathView[];
}

/** One address a server session was heard from. */
export interface ServerSessionPathView {
  readonly address: string;
  readonly lastHeardAgoMs: number | null;
  /** Datagrams received from the address. */
  readonly received: number;
}

/** One server session as the dashboard reads it. */
export interface ServerSessionView {
  readonly id: string;
  readonly confirmed: boolean;
  readonly keyPhase: number | null;
  readonly ageSeconds: number;
  readonly idleSeconds: number;
  readonly flows: number;
  readonly fromClient: TrafficView;
  readonly toClient: TrafficView;
  readonly duplicates: number;
  readonly paths: readonly ServerSessionPathView[];
}

/** mpserver's `/status` as the dashboard reads it. */
export interface ServerStatusView {
  readonly program: "mpserver";
  readonly version: string;
  readonly uptimeSeconds: number;
  readonly encrypted: boolean;
  readonly listen: readonly string[];
  readonly target: string;
  readonly traffic: {
    readonly received: TrafficView;
    readonly sent: TrafficView;
    /** Datagrams. */
    readonly toTarget: number;
    /** Datagrams. */
    readonly fromTarget: number;
    readonly duplicates: number;
  };
  readonly drops: Readonly<Record<string, number>>;
  readonly errors?: Readonly<Record<string, number>>;
  readonly sessionsOpened?: number;
  readonly sessionsClosed?: number;
  readonly sessionCount: number;
  readonly sessionsTruncated?: boolean;
  readonly sessions: readonly ServerSessionView[];
}

/** Either program's `/status`. */
export type StatusView = ClientStatusView | ServerStatusView;

/** One poll of `/status`: what came back, or null when the fetch failed. */
export interface Sample {
  /** When the answer arrived (the page's `Date.now()`). */
  readonly atMs: number;
  readonly status: StatusView | null;
}

/** Everything the page shows, as of `nowMs`. */
export interface DashboardView {
  /** The last samples, oldest first, at most `capacity`. */
  readonly history: readonly Sample[];
  /** How many samples a chart spans. */
  readonly capacity: number;
  /** How often the page polls. */
  readonly refreshIntervalMs: number;
  readonly nowMs: number;
  /** Why the last poll failed; null when it succeeded. */
  readonly error: string | null;
  /** The server's session table shows at most this many (the most recently active). */
  readonly maxListedSessions: number;
}

/** One line of a chart: its name, its values (null = no value, a gap) and a colour slot 0..2. */
export interface ChartSeries {
  readonly label: string;
  readonly values: readonly (number | null)[];
  readonly colour: number;
}

/** A small line chart. */
export interface ChartSpec {
  readonly title: string;
  readonly series: readonly ChartSeries[];
  readonly capacity: number;
  /** Formats a value with its unit (axis and legend). */
  readonly format: (value: number) => string;
  /** The y axis reaches at least this (so a flat line near zero stays near the bottom). */
  readonly minimumMax: number;
  /** The y axis never goes above this (e.g. 100 for a percentage). */
  readonly maximumMax?: number;
  /** What the x axis spans, e.g. "2 min". */
  readonly span: string;
  /** Shown instead of lines when no series has a value. */
  readonly emptyText: string;
}

/** Escapes text for HTML content and attribute values. */
export function escapeHtml(text: unknown): string {
  return String(text)
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;")
    .replaceAll("'", "&#39;");
}

/**
 * The per-second rate between two readings of a counter; null when either is missing, no time
 * passed, or the counter went backwards (the program restarted).
 *
 * @example
 * ```ts
 * import { ratePerSecond } from "./dashboard_logic.ts";
 * ratePerSecond(1000, 1500, 500); // 1000 per second
 * ```
 */
export function ratePerSecond(
  previous: number | null | undefined,
  current: number | null | undefined,
  elapsedMs: number,
): number | null {
  if (typeof previous !== "number" || typeof current !== "number") return null;
  if (!Number.isFinite(previous) || !Number.isFinite(current)) return null;
  if (!(elapsedMs > 0) || current < previous) return null;
  return ((current - previous) * 1000) / elapsedMs;
}

/** The smallest 1, 2 or 5 × 10ⁿ at or above `value` and `minimum`: a round top for an axis. */
export function niceCeiling(value: number, minimum: number): number {
  const target = Number.isFinite(value) ? Math.max(value, minimum) : minimum;
  if (!(target > 0)) return minimum;
  const magnitude = 10 ** Math.floor(Math.log10(target));
  for (const step of [1, 2, 5, 10]) {
    const candidate = Number((step * magnitude).toPrecision(12));
    if (candidate >= target) return candidate;
  }
  return Number((10 * magnitude).toPrecision(12));
}

/**
 * The SVG path (`d`) of a line through `values` in a `width` × `height` box: `capacity` slots
 * evenly spaced, the values right-aligned (the newest at the right edge), y from 0 (bottom) to
 * `maxValue` (top, values above it clipped). A null breaks the line; a lone value is a dot.
 *
 * @example
 * ```ts
 * import { chartPath } from "./dashboard_logic.ts";
 * chartPath([0, 5, 10], 3, 100, 10, 10); // "M0 10L50 5L100 0"
 * ```
 */
export function chartPath(
  values: readonly (number | null)[],
  capacity: number,
  width: number,
  height: number,
  maxValue: number,
): string {
  const shown = values.slice(-Math.max(capacity, 1));
  const offset = capacity - shown.length;
  const step = capacity > 1 ? width / (capacity - 1) : 0;
  const round = (number: number) => Math.round(number * 100) / 100;
  let path = "";
  let runLength = 0;
  for (let index = 0; index <= shown.length; index++) {
    const value = index < shown.length ? shown[index] : null;
    if (typeof value !== "number" || !Number.isFinite(value)) {
      // A lone value draws nothing as a path; a tiny segment with round caps shows it as a dot.
      if (runLength === 1) path += "h0.01";
      runLength = 0;
      continue;
    }
    const share = maxValue > 0 ? Math.min(Math.max(value / maxValue, 0), 1) : 0;
    const x = round((offset + index) * step);
    const y = round(height - share * height);
    path += `${runLength === 0 ? "M" : "L"}${x} ${y}`;
    runLength++;
  }
  return path;
}

/** A count with thousands separators: `12,345`. */
export function formatCount(count: number | null | undefined): string {
  if (typeof count !== "number" || !Number.isFinite(count)) return "—";
  return Math.round(count).toLocaleString("en-US");
}

/** A value scaled by 1000s with three significant digits and the unit: `1.23 Mbit/s`. */
export function formatScaled(value: number | null | undefined, units: readonly string[]): string {
  if (typeof value !== "number" || !Number.isFinite(value)) return "—";
  let scaled = Math.max(value, 0);
  let unitIndex = 0;
  while (scaled >= 999.5 && unitIndex < units.length - 1) {
    scaled /= 1000;
    unitIndex++;
  }
  const digits = unitIndex === 0 ? 0 : scaled < 9.995 ? 2 : scaled < 99.95 ? 1 : 0;
  return `${scaled.toFixed(digits)} ${units[unitIndex]}`;
}

/** Bytes in SI units: `1.23 MB`. */
export function formatBytes(bytes: number | null | undefined): string {
  return formatScaled(bytes, ["B", "kB", "MB", "GB", "TB"]);
}

/** A throughput given in bytes per second, shown in bits: `812 kbit/s`. */
export function formatBitRate(bytesPerSecond: number | null | undefined): string {
  if (typeof bytesPerSecond !== "number") return "—";
  return formatScaled(bytesPerSecond * 8, ["bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"]);
}

/** Datagrams per second: `0.5 pkt/s`, `1,234 pkt/s`. */
export function formatPacketRate(perSecond: number | null | undefined): string {
  if (typeof perSecond !== "number" || !Number.isFinite(perSecond)) return "—";
  if (perSecond > 0 && perSecond < 9.95) return `${perSecond.toFixed(1)} pkt/s`;
  return `${formatCount(perSecond)} pkt/s`;
}

/** Milliseconds: `1.23 ms`, `23.4 ms`, `234 ms`, `1.23 s`. */
export function formatMs(ms: number | null | undefined): string {
  if (typeof ms !== "number" || !Number.isFinite(ms)) return "—";
  if (ms >= 999.5) return `${(ms / 1000).toFixed(ms >= 9995 ? 1 : 2)} s`;
  return `${ms.toFixed(ms < 9.995 ? 2 : ms < 99.95 ? 1 : 0)} ms`;
}

/** A ratio 0..1 as a percentage: `0 %`, `< 0.1 %`, `2.5 %`, `40 %`. */
export function formatPercent(ratio: number | null | undefined): string {
  if (typeof ratio !== "number" || !Number.isFinite(ratio)) return "—";
  const percent = ratio * 100;
  if (percent <= 0) return "0 %";
  if (percent < 0.1) return "< 0.1 %";
  return `${percent.toFixed(percent < 9.95 ? 1 : 0)} %`;
}

/** A duration in seconds, two units at most: `42 s`, `4 min 05 s`, `3 h 02 min`, `2 d 03 h`. */
export function formatDuration(seconds: number | null | undefined): string {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "—";
  const whole = Math.max(0, Math.floor(seconds));
  const two = (number: number) => String(number).padStart(2, "0");
  if (whole < 60) return `${whole} s`;
  if (whole < 3600) return `${Math.floor(whole / 60)} min ${two(whole % 60)} s`;
  if (whole < 86400) return `${Math.floor(whole / 3600)} h ${two(Math.floor(whole / 60) % 60)} min`;
  return `${Math.floor(whole / 86400)} d ${two(Math.floor(whole / 3600) % 24)} h`;
}

/** How long ago, from milliseconds: `0.3 s ago`, `12 s ago`, `4 min 05 s ago`, `never`. */
export function formatAgo(ms: number | null | undefined): string {
  if (typeof ms !== "number" || !Number.isFinite(ms)) return "never";
  if (ms < 9950) return `${(Math.max(ms, 0) / 1000).toFixed(1)} s ago`;
  return `${formatDuration(ms / 1000)} ago`;
}

/** What a drop reason means, in a few words (shown beside it). */
export function describeDropReason(reason: string): string {
  switch (reason) {
    case "malformed":
      return "too short or a field out of range";
    case "bad-version":
      return "a protocol version this end does not speak";
    case "unknown-type":
      return "an unknown message type";
    case "bad-tag":
      return "failed authentication: forged, corrupted or other keys";
    case "bad-mac":
      return "handshake MAC wrong: the other end has another secret";
    case "auth-mismatch":
      return "one end has a secret, the other not";
    case "replay":
      return "older than the replay window";
    case "unknown-session":
      return "a session or key phase this end does not know";
    case "stale-handshake":
      return "older than a handshake already accepted";
    case "handshake-rate-limited":
      return "handshakes above the accepted rate";
    case "session-limit":
      return "more sessions than the server accepts";
    case "oversize":
      return "an application datagram too large to tunnel";
    case "queue-full":
      return "queued during the handshake beyond the queue";
    case "unexpected":
      return "a message this end never expects";
    case "targetSend":
      return "sends to the target that failed";
    case "clientSend":
      return "sends to client addresses that failed";
    case "foreignOnTargetSocket":
      return "datagrams on a target socket not from the target";
    case "flowLimit":
      return "flows refused: too many target sockets in the session";
    default:
      return "";
  }
}

/**
 * One value per sample: `valueAt(previous, current, elapsedMs)` for each sample with a status
 * (previous is the sample before it, null when that poll failed or there is none); null for a
 * failed poll.
 */
export function seriesOf(
  history: readonly Sample[],
  valueAt: (
    previous: StatusView | null,
    current: StatusView,
    elapsedMs: number,
  ) => number | null | undefined,
): (number | null)[] {
  return history.map((sample, index) => {
    if (sample.status === null) return null;
    const before = index > 0 ? history[index - 1] : null;
    const value = valueAt(
      before ? before.status : null,
      sample.status,
      before ? sample.atMs - before.atMs : 0,
    );
    return typeof value === "number" && Number.isFinite(value) ? value : null;
  });
}

/** The newest answered sample and the one just before it (null if that poll failed or is none). */
export function latestPair(
  history: readonly Sample[],
): { current: StatusView; previous: StatusView | null; elapsedMs: number; atMs: number } | null {
  for (let index = history.length - 1; index >= 0; index--) {
    const sample = history[index];
    if (sample.status === null) continue;
    const before = index > 0 ? history[index - 1] : null;
    return {
      current: sample.status,
      previous: before ? before.status : null,
      elapsedMs: before ? sample.atMs - before.atMs : 0,
      atMs: sample.atMs,
    };
  }
  return null;
}

/** The client path with `index` in a status, if the status is a client's and has it. */
export function findClientPath(
  status: StatusView | null,
  index: number,
): ClientPathView | null {
  if (status === null || status.program !== "mpclient") return null;
  return (status.paths ?? []).find((path) => path.index === index) ?? null;
}

/** The server session with `id` in a status, if the status is a server's and has it. */
export function findServerSession(
  status: StatusView | null,
  id: string,
): ServerSessionView | null {
  if (status === null || status.program !== "mpserver") return null;
  return (status.sessions ?? []).find((session) => session.id === id) ?? null;
}

/** The sum of a record of counts (drops by reason). */
export function sumCounts(counts: Readonly<Record<string, number>> | null | undefined): number {
  let total = 0;
  for (const value of Object.values(counts ?? {})) {
    if (typeof value === "number" && Number.isFinite(value)) total += value;
  }
  return total;
}

/**
 * A status as the page keeps it in its history: a server's session list cut to the sessions the
 * page shows, so two minutes of answers from a server with thousands of sessions stay small.
 */
export function trimForHistory(status: StatusView, maxListedSessions: number): StatusView {
  if (status.program !== "mpserver" || (status.sessions ?? []).length <= maxListedSessions) {
    return status;
  }
  return { ...status, sessions: status.sessions.slice(0, maxListedSessions) };
}

/** A small line chart as HTML: a title with the latest value of each series, and an inline SVG. */
export function renderChart(spec: ChartSpec): string {
  const width = 300;
  const height = 80;
  let highest = 0;
  let anyValue = false;
  for (const series of spec.series) {
    for (const value of series.values.slice(-spec.capacity)) {
      if (typeof value === "number" && Number.isFinite(value)) {
        anyValue = true;
        highest = Math.max(highest, value);
      }
    }
  }
  let top = niceCeiling(highest, spec.minimumMax);
  if (spec.maximumMax !== undefined) top = Math.min(top, spec.maximumMax);
  const legend = spec.series.map((series) => {
    const last = series.values.length > 0 ? series.values[series.values.length - 1] : null;
    const text = typeof last === "number" ? spec.format(last) : "—";
    return `<span class="legend-item"><i class="key k${series.colour}"></i>${
      escapeHtml(series.label)
    } <b>${escapeHtml(text)}</b></span>`;
  }).join("");
  const grid = [0.25, 0.5, 0.75].map((share) =>
    `<line class="grid" x1="0" x2="${width}" y1="${height * share}" y2="${height * share}"/>`
  ).join("");
  const lines = spec.series.map((series) =>
    `<path class="series s${series.colour}" d="${
      chartPath(series.values, spec.capacity, width, height, top)
    }"/>`
  ).join("");
  const empty = anyValue ? "" : `<span class="chart-empty">${escapeHtml(spec.emptyText)}</span>`;
  return `<figure class="chart">` +
    `<figcaption><span class="chart-title">${escapeHtml(spec.title)}</span>${legend}</figcaption>` +
    `<div class="plot"><div class="y-axis"><span>${escapeHtml(spec.format(top))}</span>` +
    `<span>0</span></div><div class="area">${empty}` +
    `<svg viewBox="0 0 ${width} ${height}" preserveAspectRatio="none" role="img" aria-label="${
      escapeHtml(spec.title)
    }">` +
    `<line class="axis" x1="0" x2="${width}" y1="${height}" y2="${height}"/>${grid}${lines}</svg>` +
    `</div></div><div class="x-axis"><span>−${escapeHtml(spec.span)}</span><span>now</span></div>` +
    `</figure>`;
}

/** A badge for a path state: up green, degraded amber, down red, probing (or anything else) grey. */
export function renderStateBadge(state: string): string {
  const known = state === "up" || state === "down" || state === "degraded" ? state : "probing";
  return `<span class="badge badge-${known}">${escapeHtml(state)}</span>`;
}

/** A summary tile: a label, a big value and a line of detail. */
export function renderTile(label: string, value: string, detail: string, tone = ""): string {
  return `<div class="tile ${tone}"><div class="tile-label">${escapeHtml(label)}</div>` +
    `<div class="tile-value">${escapeHtml(value)}</div>` +
    `<div class="tile-detail">${escapeHtml(detail)}</div></div>`;
}

/** The CSS class for a loss ratio: fine, noticeable (≥ 2 %) or bad (≥ 10 %). */
export function lossTone(ratio: number | null | undefined): string {
  if (typeof ratio !== "number" || !Number.isFinite(ratio)) return "muted";
  return ratio >= 0.1 ? "bad" : ratio >= 0.02 ? "warn" : "";
}

/** The x-axis span of a chart of `capacity` polls: `2 min`, `90 s`. */
export function formatSpan(capacity: number, refreshIntervalMs: number): string {
  const seconds = Math.round((Math.max(capacity - 1, 1) * refreshIntervalMs) / 1000);
  return seconds >= 60 && seconds % 60 === 0 ? `${seconds / 60} min` : `${seconds} s`;
}

/** The chart of drops per second (all reasons together), for either program. */
export function renderDropsChart(view: DashboardView, span: string): string {
  return renderChart({
    title: "Drops",
    capacity: view.capacity,
    span,
    format: formatPacketRate,
    minimumMax: 1,
    emptyText: "waiting for a second sample",
    series: [{
      label: "all reasons",
      colour: 2,
      values: seriesOf(
        view.history,
        (before, now, ms) =>
          before === null ? null : ratePerSecond(sumCounts(before.drops), sumCounts(now.drops), ms),
      ),
    }],
  });
}

/** The drops table (reasons with a non-zero count) and, for the server, the errors table. */
export function renderDrops(
  current: StatusView,
  previous: StatusView | null,
  elapsedMs: number,
): string {
  const table = (title: string, counts: Readonly<Record<string, number>>, before: unknown) => {
    const earlier = (before ?? {}) as Readonly<Record<string, number>>;
    const rows = Object.entries(counts ?? {})
      .filter(([, count]) => typeof count === "number" && count > 0)
      .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .map(([reason, count]) =>
        `<tr><td><code>${escapeHtml(reason)}</code><div class="sub">${
          escapeHtml(describeDropReason(reason))
        }</div></td><td class="num">${escapeHtml(formatCount(count))} pkt</td>` +
        `<td class="num">${
          escapeHtml(formatPacketRate(ratePerSecond(earlier[reason] ?? 0, count, elapsedMs)))
        }</td></tr>`
      );
    const body = rows.length > 0
      ? rows.join("")
      : `<tr><td colspan="3" class="muted">none</td></tr>`;
    return `<table class="drops">${title === "" ? "" : `<caption>${escapeHtml(title)}</caption>`}` +
      `<thead><tr><th>Reason</th><th class="num">Total</th><th class="num">Rate</th></tr></thead>` +
      `<tbody>${body}</tbody></table>`;
  };
  const previousDrops = previous !== null && previous.program === current.program
    ? previous.drops
    : null;
  if (current.program === "mpserver" && current.errors !== undefined) {
    const previousErrors = previous !== null && previous.program === "mpserver"
      ? previous.errors
      : null;
    return `<section class="card drops-card"><h2>Drops and errors</h2><div class="drops-grid">${
      table("Dropped datagrams", current.drops, previousDrops)
    }${table("Errors", current.errors, previousErrors)}</div></section>`;
  }
  return `<section class="card drops-card"><h2>Drops</h2>${
    table("", current.drops, previousDrops)
  }</section>`;
}

/** The header: program, version, connection state and the facts an operator checks first. */
export function renderHeader(status: StatusView | null, view: DashboardView): string {
  const chip = (text: string, tone = "") => `<span class="chip ${tone}">${escapeHtml(text)}</span>`;
  const latest = latestPair(view.history);
  const connection = view.error === null && latest !== null
    ? chip("● live", "good")
    : view.error === null
    ? chip("connecting…")
    : chip("● disconnected", "bad");
  const facts: string[] = [];
  let title = "mptunnel";
  if (status !== null) {
    title = `${status.program} <small>${escapeHtml(status.version)}</small>`;
    facts.push(chip(`up ${formatDuration(status.uptimeSeconds)}`));
    facts.push(
      status.encrypted ? chip("encrypted", "good") : chip("NOT encrypted (no secret)", "warn"),
    );
    if (status.program === "mpclient") {
      facts.push(chip(`mode ${status.mode}`));
      facts.push(chip(`app port ${status.listen}`));
      const session = status.session;
      facts.push(
        chip(
          `session ${session.id} · ${session.state} · ${formatCount(session.handshakes)} ${
            session.handshakes === 1 ? "handshake" : "handshakes"
          }`,
          session.state === "established" ? "good" : "warn",
        ),
      );
    } else {
      facts.push(chip(`listening ${(status.listen ?? []).join(", ")}`));
      facts.push(chip(`target ${status.target}`));
      facts.push(
        chip(
          `${formatCount(status.sessionCount)} ${
            status.sessionCount === 1 ? "session" : "sessions"
          }`,
        ),
      );
    }
  }
  // While live the page repaints at every answer, so only a stale answer's age is worth showing.
  const updated = latest === null || view.error === null
    ? ""
    : `<span class="updated">last answer ${
      escapeHtml(formatAgo(Math.max(0, view.nowMs - latest.atMs)))
    }</span>`;
  return `<header><div class="title-row"><h1>${title}</h1>${connection}${updated}</div>` +
    `<div class="facts">${facts.join("")}</div></header>`;
}

/** The client's page body: tiles, an overview chart row, the path table and a card per path. */
export function renderClient(status: ClientStatusView, view: DashboardView): string {
  const pair = latestPair(view.history);
  const previous = pair !== null && pair.previous !== null && pair.previous.program === "mpclient"
    ? pair.previous
    : null;
  const elapsedMs = pair !== null ? pair.elapsedMs : 0;
  const span = formatSpan(view.capacity, view.refreshIntervalMs);
  const paths = status.paths ?? [];
  const traffic = status.traffic;
  const trafficTile = (label: string, now: TrafficView, before: TrafficView | undefined) => {
    const bytesRate = ratePerSecond(before?.bytes, now.bytes, elapsedMs);
    const packetRate = ratePerSecond(before?.datagrams, now.datagrams, elapsedMs);
    return renderTile(
      label,
      formatBitRate(bytesRate),
      `${formatPacketRate(packetRate)} · ${formatCount(now.datagrams)} pkt · ${
        formatBytes(now.bytes)
      } total`,
    );
  };
  const upCount = paths.filter((path) => path.state === "up").length;
  const downCount = paths.filter((path) => path.state === "down").length;
  const duplicateRate = ratePerSecond(
    previous?.traffic.duplicates,
    traffic.duplicates,
    elapsedMs,
  );
  const tiles = [
    trafficTile("From applications", traffic.fromApp, previous?.traffic.fromApp),
    trafficTile("To applications", traffic.toApp, previous?.traffic.toApp),
    renderTile(
      "Paths up",
      `${upCount} of ${paths.length}`,
      `${downCount} down · ${paths.length - upCount - downCount} other`,
      upCount === 0 ? "bad" : downCount > 0 ? "warn" : "good",
    ),
    renderTile(
      "Duplicates dropped",
      `${formatCount(traffic.duplicates)} pkt`,
      `${formatPacketRate(duplicateRate)} · redundant copies, expected in ${status.mode} mode`,
    ),
    renderTile(
      "Application flows",
      `${formatCount(status.flows)}`,
      "application addresses tracked",
    ),
  ].join("");

  const client = (value: StatusView | null) =>
    value !== null && value.program === "mpclient" ? value : null;
  const overview = `<section class="card"><h2>Tunnel</h2><div class="charts">` +
    renderChart({
      title: "Application traffic",
      capacity: view.capacity,
      span,
      format: formatBitRate,
      minimumMax: 125,
      emptyText: "waiting for a second sample",
      series: [
        {
          label: "from apps",
          colour: 0,
          values: seriesOf(view.history, (before, now, ms) =>
            ratePerSecond(
              client(before)?.traffic.fromApp.bytes,
              client(now)?.traffic.fromApp.bytes,
              ms,
            )),
        },
        {
          label: "to apps",
          colour: 1,
          values: seriesOf(view.history, (before, now, ms) =>
            ratePerSecond(
              client(before)?.traffic.toApp.bytes,
              client(now)?.traffic.toApp.bytes,
              ms,
            )),
        },
      ],
    }) +
    renderDropsChart(view, span) +
    `</div></section>`;

  const rows = paths.map((path) => {
    const before = findClientPath(previous, path.index);
    const errors = Object.entries(path.sendErrors ?? {}).filter(([, count]) => count > 0);
    const rate = (now: TrafficView, earlier: TrafficView | undefined) =>
      `${escapeHtml(formatBitRate(ratePerSecond(earlier?.bytes, now.bytes, elapsedMs)))}` +
      `<div class="sub">${
        escapeHtml(formatPacketRate(ratePerSecond(earlier?.datagrams, now.datagrams, elapsedMs)))
      }</div>`;
    return `<tr class="path-row" data-state="${escapeHtml(path.state)}">` +
      `<td><b class="path-name">${escapeHtml(path.name)}</b>${
        path.backup ? ` <span class="tag">backup</span>` : ""
      }<div class="sub mono">→ ${escapeHtml(path.remote)}</div></td>` +
      `<td>${renderStateBadge(path.state)}</td>` +
      `<td class="num">${escapeHtml(formatMs(path.rttMs))}${
        path.jitterMs === null
          ? ""
          : `<div class="sub">jitter ${escapeHtml(formatMs(path.jitterMs))}</div>`
      }</td>` +
      `<td class="num ${lossTone(path.lossToServer)}">${
        escapeHtml(formatPercent(path.lossToServer))
      }</td>` +
      `<td class="num ${lossTone(path.lossFromServer)}">${
        escapeHtml(formatPercent(path.lossFromServer))
      }</td>` +
      `<td class="num">${rate(path.sent, before?.sent)}</td>` +
      `<td class="num">${rate(path.received, before?.received)}</td>` +
      `<td class="num">${escapeHtml(formatAgo(path.lastHeardAgoMs))}<div class="sub">${
        escapeHtml(formatCount(path.probeReplies ?? null))
      } of ${escapeHtml(formatCount(path.probesSent ?? null))} probes</div></td>` +
      `<td>${
        errors.length === 0
          ? `<span class="muted">none</span>`
          : errors.map(([kind, count]) =>
            `<span class="bad">${escapeHtml(kind)} ${escapeHtml(formatCount(count))}</span>`
          ).join("<br>")
      }</td></tr>`;
  }).join("");
  const table = `<section class="card"><h2>Paths</h2><table class="paths"><thead><tr>` +
    `<th>Path</th><th>State</th><th class="num">RTT</th><th class="num">Loss → server</th>` +
    `<th class="num">Loss ← server</th><th class="num">Sent</th><th class="num">Received</th>` +
    `<th class="num">Last heard</th><th>Send errors</th></tr></thead><tbody>${
      rows || `<tr><td colspan="9" class="muted">no paths</td></tr>`
    }</tbody></table></section>`;

  const cards = paths.map((path) => {
    const pick = (value: StatusView | null) => findClientPath(value, path.index);
    const pathRate = (direction: "sent" | "received") =>
      seriesOf(view.history, (before, now, ms) => {
        const earlier = pick(before);
        const later = pick(now);
        return earlier === null || later === null
          ? null
          : ratePerSecond(earlier[direction].bytes, later[direction].bytes, ms);
      });
    return `<section class="card path-card" data-path="${escapeHtml(path.name)}">` +
      `<h3><span class="path-name">${escapeHtml(path.name)}</span> ${renderStateBadge(path.state)}${
        path.backup ? ` <span class="tag">backup</span>` : ""
      }<span class="sub mono">${escapeHtml(path.local)} → ${
        escapeHtml(path.remote)
      }</span></h3><div class="charts">` +
      renderChart({
        title: "Round trip",
        capacity: view.capacity,
        span,
        format: formatMs,
        minimumMax: 10,
        emptyText: "no probe replies",
        series: [{
          label: "RTT",
          colour: 0,
          values: seriesOf(view.history, (_, now) => pick(now)?.rttMs),
        }],
      }) +
      renderChart({
        title: "Loss",
        capacity: view.capacity,
        span,
        format: (percent: number) => formatPercent(percent / 100),
        minimumMax: 5,
        maximumMax: 100,
        emptyText: "not measured yet",
        series: [
          {
            label: "→ server",
            colour: 1,
            values: seriesOf(view.history, (_, now) => {
              const loss = pick(now)?.lossToServer;
              return typeof loss === "number" ? loss * 100 : null;
            }),
          },
          {
            label: "← server",
            colour: 2,
            values: seriesOf(view.history, (_, now) => {
              const loss = pick(now)?.lossFromServer;
              return typeof loss === "number" ? loss * 100 : null;
            }),
          },
        ],
      }) +
      renderChart({
        title: "Throughput",
        capacity: view.capacity,
        span,
        format: formatBitRate,
        minimumMax: 125,
        emptyText: "waiting for a second sample",
        series: [
          { label: "sent", colour: 0, values: pathRate("sent") },
          { label: "received", colour: 1, values: pathRate("received") },
        ],
      }) +
      `</div></section>`;
  }).join("");

  return `<div class="tiles">${tiles}</div><div class="overview-row">${overview}${
    renderDrops(status, previous, elapsedMs)
  }</div>${table}<div class="path-cards">${cards}</div>`;
}

/** The server's page body: tiles, an overview chart row, the session list with sparklines. */
export function renderServer(status: ServerStatusView, view: DashboardView): string {
  const pair = latestPair(view.history);
  const previous = pair !== null && pair.previous !== null && pair.previous.program === "mpserver"
    ? pair.previous
    : null;
  const elapsedMs = pair !== null ? pair.elapsedMs : 0;
  const span = formatSpan(view.capacity, view.refreshIntervalMs);
  const traffic = status.traffic;
  const server = (value: StatusView | null) =>
    value !== null && value.program === "mpserver" ? value : null;
  const trafficTile = (label: string, now: TrafficView, before: TrafficView | undefined) =>
    renderTile(
      label,
      formatBitRate(ratePerSecond(before?.bytes, now.bytes, elapsedMs)),
      `${formatPacketRate(ratePerSecond(before?.datagrams, now.datagrams, elapsedMs))} · ${
        formatCount(now.datagrams)
      } pkt · ${formatBytes(now.bytes)} total`,
    );
  const packetTile = (label: string, now: number, before: number | undefined) =>
    renderTile(
      label,
      formatPacketRate(ratePerSecond(before, now, elapsedMs)),
      `${formatCount(now)} pkt total`,
    );
  const tiles = [
    trafficTile("From clients", traffic.received, previous?.traffic.received),
    trafficTile("To clients", traffic.sent, previous?.traffic.sent),
    packetTile("To target", traffic.toTarget, previous?.traffic.toTarget),
    packetTile("From target", traffic.fromTarget, previous?.traffic.fromTarget),
    renderTile(
      "Sessions",
      `${formatCount(status.sessionCount)}`,
      status.sessionsOpened === undefined
        ? "clients known now"
        : `${formatCount(status.sessionsOpened)} opened · ${
          formatCount(status.sessionsClosed ?? null)
        } closed`,
    ),
    renderTile(
      "Duplicates dropped",
      `${formatCount(traffic.duplicates)} pkt`,
      `${
        formatPacketRate(ratePerSecond(previous?.traffic.duplicates, traffic.duplicates, elapsedMs))
      } · redundant copies`,
    ),
  ].join("");

  const bytesSeries = (direction: "received" | "sent") =>
    seriesOf(view.history, (before, now, ms) =>
      ratePerSecond(
        server(before)?.traffic[direction].bytes,
        server(now)?.traffic[direction].bytes,
        ms,
      ));
  const targetSeries = (direction: "toTarget" | "fromTarget") =>
    seriesOf(
      view.history,
      (before, now, ms) =>
        ratePerSecond(server(before)?.traffic[direction], server(now)?.traffic[direction], ms),
    );
  const overview = `<section class="card"><h2>Traffic</h2><div class="charts">` +
    renderChart({
      title: "Clients",
      capacity: view.capacity,
      span,
      format: formatBitRate,
      minimumMax: 125,
      emptyText: "waiting for a second sample",
      series: [
        { label: "from clients", colour: 0, values: bytesSeries("received") },
        { label: "to clients", colour: 1, values: bytesSeries("sent") },
      ],
    }) +
    renderChart({
      title: "Target",
      capacity: view.capacity,
      span,
      format: formatPacketRate,
      minimumMax: 1,
      emptyText: "waiting for a second sample",
      series: [
        { label: "to target", colour: 0, values: targetSeries("toTarget") },
        { label: "from target", colour: 1, values: targetSeries("fromTarget") },
      ],
    }) +
    renderDropsChart(view, span) +
    `</div></section>`;

  const sessions = (status.sessions ?? []).slice(0, view.maxListedSessions);
  // Sessions by id in every sample, once, rather than a search per session per sample.
  const sessionsById = view.history.map((sample) =>
    new Map(
      (server(sample.status)?.sessions ?? []).map((session) => [session.id, session] as const),
    )
  );
  const rows = sessions.map((session) => {
    const before = findServerSession(previous, session.id);
    const values = view.history.map((sample, index) => {
      const earlier = index > 0 ? sessionsById[index - 1].get(session.id) : undefined;
      const later = sessionsById[index].get(session.id);
      if (earlier === undefined || later === undefined) return null;
      return ratePerSecond(
        earlier.fromClient.bytes + earlier.toClient.bytes,
        later.fromClient.bytes + later.toClient.bytes,
        sample.atMs - view.history[index - 1].atMs,
      );
    });
    let highest = 0;
    for (const value of values) if (value !== null) highest = Math.max(highest, value);
    const sparkline = `<svg class="sparkline" viewBox="0 0 120 24" preserveAspectRatio="none">` +
      `<path class="series s0" d="${
        chartPath(values, view.capacity, 120, 24, niceCeiling(highest, 125))
      }"/></svg>`;
    const rate = (now: TrafficView, earlier: TrafficView | undefined) =>
      `${escapeHtml(formatBitRate(ratePerSecond(earlier?.bytes, now.bytes, elapsedMs)))}` +
      `<div class="sub">${escapeHtml(formatCount(now.datagrams))} pkt · ${
        escapeHtml(formatBytes(now.bytes))
      }</div>`;
    const addresses = (session.paths ?? []).map((path) => {
      const earlier = (before?.paths ?? []).find((other) => other.address === path.address);
      return `<div class="session-path"><span class="mono">${
        escapeHtml(path.address)
      }</span> <span class="sub">${
        escapeHtml(formatPacketRate(ratePerSecond(earlier?.received, path.received, elapsedMs)))
      } · heard ${escapeHtml(formatAgo(path.lastHeardAgoMs))}</span></div>`;
    }).join("");
    return `<tr class="session-row"><td class="mono"><b>${escapeHtml(session.id)}</b></td>` +
      `<td>${
        session.confirmed
          ? `<span class="badge badge-up">confirmed</span>`
          : `<span class="badge badge-probing">handshaking</span>`
      }<div class="sub">key phase ${
        session.keyPhase === null ? "—" : escapeHtml(session.keyPhase)
      }</div></td>` +
      `<td class="num">${escapeHtml(formatDuration(session.ageSeconds))}<div class="sub">idle ${
        escapeHtml(formatDuration(session.idleSeconds))
      }</div></td>` +
      `<td class="num">${escapeHtml(formatCount(session.flows))} ${
        session.flows === 1 ? "flow" : "flows"
      }</td>` +
      `<td class="num">${rate(session.fromClient, before?.fromClient)}</td>` +
      `<td class="num">${rate(session.toClient, before?.toClient)}</td>` +
      `<td class="num">${escapeHtml(formatCount(session.duplicates))} pkt</td>` +
      `<td>${sparkline}</td><td>${addresses || `<span class="muted">none</span>`}</td></tr>`;
  }).join("");
  const truncated = status.sessionCount > sessions.length
    ? `<p class="note">Showing the ${formatCount(sessions.length)} most recently active of ${
      formatCount(status.sessionCount)
    } sessions.</p>`
    : "";
  const table = `<section class="card"><h2>Sessions</h2>${truncated}<table class="sessions">` +
    `<thead><tr><th>Session</th><th>State</th><th class="num">Age</th><th class="num">Flows</th>` +
    `<th class="num">From client</th><th class="num">To client</th>` +
    `<th class="num">Duplicates</th><th>Traffic (${escapeHtml(span)})</th><th>Paths</th></tr>` +
    `</thead><tbody>${
      rows || `<tr><td colspan="9" class="muted">no sessions</td></tr>`
    }</tbody></table></section>`;

  return `<div class="tiles">${tiles}</div>${overview}${
    renderDrops(status, previous, elapsedMs)
  }${table}`;
}

/** The whole page body for a view: header, a banner when disconnected, then the program's body. */
export function renderDashboard(view: DashboardView): string {
  const pair = latestPair(view.history);
  const status = pair !== null ? pair.current : null;
  let banner = "";
  if (view.error !== null) {
    banner = `<div class="banner" role="alert"><b>Disconnected</b> — /status did not answer (${
      escapeHtml(view.error)
    }); retrying every ${escapeHtml(formatDuration(view.refreshIntervalMs / 1000))}.${
      pair === null ? "" : " The figures below are from the last answer."
    }</div>`;
  }
  let body: string;
  if (status === null) {
    body = `<p class="waiting">${
      view.error === null ? "Waiting for the first answer from /status…" : "No data yet."
    }</p>`;
  } else if (status.program === "mpclient") {
    body = renderClient(status, view);
  } else if (status.program === "mpserver") {
    body = renderServer(status, view);
  } else {
    body = `<p class="waiting">/status is from an unknown program: ${
      escapeHtml((status as { program?: unknown }).program)
    }</p>`;
  }
  return renderHeader(status, view) + banner +
    `<main class="${view.error !== null ? "stale" : ""}">${body}</main>`;
}

/** The browser tab's title: the program and what matters most, or that it is disconnected. */
export function dashboardTitle(view: DashboardView): string {
  const pair = latestPair(view.history);
  const prefix = view.error !== null ? "disconnected · " : "";
  if (pair === null) return `${prefix}mptunnel`;
  const status = pair.current;
  if (status.program === "mpclient") {
    const paths = status.paths ?? [];
    const up = paths.filter((path) => path.state === "up").length;
    return `${prefix}mpclient · ${up}/${paths.length} paths up`;
  }
  if (status.program === "mpserver") {
    return `${prefix}mpserver · ${formatCount(status.sessionCount)} sessions`;
  }
  return `${prefix}mptunnel`;
}
