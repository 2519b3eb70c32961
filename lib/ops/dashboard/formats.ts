/**
 * How the dashboard writes values: HTML escaping, counts, bytes, rates, milliseconds, percentages,
 * durations and ages with their units, and a few words on what each drop reason means.
 *
 * The page runs these very functions (see `lib/ops/dashboard_logic.ts`): each export is a
 * self-contained function declaration that calls only other exported dashboard functions and the
 * JavaScript built-ins — no module-level constants, no renamed imports.
 */

/** Escapes text for HTML content and attribute values. */
export function escapeHtml(text: unknown): string {
  return String(text)
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;")
    .replaceAll("'", "&#39;");
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

/** The x-axis span of a chart of `capacity` polls: `2 min`, `90 s`. */
export function formatSpan(capacity: number, refreshIntervalMs: number): string {
  const seconds = Math.round((Math.max(capacity - 1, 1) * refreshIntervalMs) / 1000);
  return seconds >= 60 && seconds % 60 === 0 ? `${seconds / 60} min` : `${seconds} s`;
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
