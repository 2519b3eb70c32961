/**
 * The Prometheus text exposition (format 0.0.4) served at `GET /metrics`, built from a status
 * snapshot (`lib/ops/status.ts`) so that `/metrics` and `/status` always say the same thing.
 *
 * Conventions followed: every family has `# HELP` and `# TYPE` before its samples; counters end in
 * `_total`; units are base units in the name (`_seconds`, `_bytes`, `_ratio`); a direction or a
 * reason is a label, not a name; a value not measured yet (an RTT before the first probe reply) is
 * an absent sample, not a zero. Counters whose labels are known in advance (drop reasons, send-error
 * kinds) are emitted with zeros, so rates work from the first scrape.
 *
 * Per-session series are deliberately absent from the server's exposition: with thousands of
 * sessions they would swamp a Prometheus server. `/status` lists sessions.
 *
 * @example
 * ```ts ignore
 * const text = formatMetrics(clientStatus(driver, performance.now()));
 * // # HELP mptunnel_app_datagrams_total Application datagrams, by direction.
 * // # TYPE mptunnel_app_datagrams_total counter
 * // mptunnel_app_datagrams_total{direction="from_app"} 1000
 * ```
 */

import { assertNever } from "../base/assert.ts";
import type { ClientStatus, ProgramStatus, ServerStatus } from "./status.ts";
import { DROP_REASONS } from "../base/counters.ts";
import type { SendErrorKind } from "../path/send_error.ts";

/** The `Content-Type` of the exposition. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Every send-error kind, so each path's counter exists from the start (checked exhaustive). */
const SEND_ERROR_KINDS = Object.keys(
  {
    "refused": true,
    "unreachable": true,
    "not-permitted": true,
    "no-address": true,
    "too-large": true,
    "no-buffer": true,
    "other": true,
  } satisfies Record<SendErrorKind, true>,
) as SendErrorKind[];

const PATH_STATES = ["probing", "up", "down"] as const;

/** Label names and values of one sample. */
type Labels = Readonly<Record<string, string>>;

/** One sample: labels and a value; a null value is left out. */
type Sample = readonly [Labels, number | null];

/** Collects metric families and renders them in the text format. */
class Exposition {
  readonly #lines: string[] = [];

  /** Adds one family with its help text and samples. */
  family(
    name: string,
    type: "counter" | "gauge",
    help: string,
    samples: readonly Sample[],
  ): void {
    this.#lines.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) {
      if (value === null) continue;
      this.#lines.push(`${name}${formatLabels(labels)} ${formatValue(value)}`);
    }
  }

  toString(): string {
    return this.#lines.join("\n") + "\n";
  }
}

/**
 * Renders a status snapshot as Prometheus text (format 0.0.4), ending in a newline.
 *
 * @example
 * ```ts ignore
 * new Response(formatMetrics(status), { headers: { "content-type": METRICS_CONTENT_TYPE } });
 * ```
 */
export function formatMetrics(status: ProgramStatus): string {
  const exposition = new Exposition();
  switch (status.program) {
    case "mpclient":
      clientFamilies(exposition, status);
      break;
    case "mpserver":
      serverFamilies(exposition, status);
      break;
    default:
      assertNever(status);
  }
  return exposition.toString();
}

function clientFamilies(out: Exposition, status: ClientStatus): void {
  out.family("mptunnel_info", "gauge", "Always 1; the labels describe the running program.", [
    [{
      program: status.program,
      version: status.version,
      mode: status.mode,
      encrypted: String(status.encrypted),
    }, 1],
  ]);
  out.family("mptunnel_uptime_seconds", "gauge", "Time since the program started.", [
    [{}, status.uptimeSeconds],
  ]);
  out.family(
    "mptunnel_session_established",
    "gauge",
    "1 while the session with mpserver is established, 0 while connecting.",
    [[{}, status.session.state === "established" ? 1 : 0]],
  );
  out.family(
    "mptunnel_handshakes_total",
    "counter",
    "Handshakes completed (the first, rekeys and re-establishments).",
    [[{}, status.session.handshakes]],
  );
  out.family("mptunnel_app_datagrams_total", "counter", "Application datagrams, by direction.", [
    [{ direction: "from_app" }, status.traffic.fromApp.datagrams],
    [{ direction: "to_app" }, status.traffic.toApp.datagrams],
  ]);
  out.family(
    "mptunnel_app_bytes_total",
    "counter",
    "Application payload bytes, by direction.",
    [
      [{ direction: "from_app" }, status.traffic.fromApp.bytes],
      [{ direction: "to_app" }, status.traffic.toApp.bytes],
    ],
  );
  duplicatesAndDrops(out, status);
  out.family("mptunnel_flows", "gauge", "Application flows (source addresses) tracked.", [
    [{}, status.flows],
  ]);

  const paths = status.paths;
  out.family(
    "mptunnel_path_up",
    "gauge",
    "1 while the path is up (answering probes), 0 otherwise.",
    paths.map((path) => [{ path: path.name }, path.state === "up" ? 1 : 0]),
  );
  out.family(
    "mptunnel_path_state",
    "gauge",
    "1 for the path's current state (probing, up or down), 0 for the others.",
    paths.flatMap((path) =>
      PATH_STATES.map((state): Sample => [
        { path: path.name, state },
        path.state === state ? 1 : 0,
      ])
    ),
  );
  out.family(
    "mptunnel_path_backup",
    "gauge",
    "1 for a backup path (carries data only while no other path is up).",
    paths.map((path) => [{ path: path.name }, path.backup ? 1 : 0]),
  );
  out.family(
    "mptunnel_path_rtt_seconds",
    "gauge",
    "Smoothed round-trip time of the path's probes (RFC 6298).",
    paths.map((path) => [{ path: path.name }, seconds(path.rttMs)]),
  );
  out.family(
    "mptunnel_path_rtt_variance_seconds",
    "gauge",
    "Round-trip time variation of the path (RFC 6298).",
    paths.map((path) => [{ path: path.name }, seconds(path.rttVarianceMs)]),
  );
  out.family(
    "mptunnel_path_jitter_seconds",
    "gauge",
    "Variation of consecutive round-trip times on the path (RFC 3550).",
    paths.map((path) => [{ path: path.name }, seconds(path.jitterMs)]),
  );
  out.family(
    "mptunnel_path_loss_ratio",
    "gauge",
    "Share of datagrams lost on the path (0 to 1): to_server, from_server, or probes unanswered (round_trip).",
    paths.flatMap((path): Sample[] => [
      [{ path: path.name, direction: "to_server" }, path.lossToServer],
      [{ path: path.name, direction: "from_server" }, path.lossFromServer],
      [{ path: path.name, direction: "round_trip" }, path.roundTripLoss],
    ]),
  );
  out.family(
    "mptunnel_path_datagrams_total",
    "counter",
    "Datagrams on the path (data, probes and handshakes), by direction.",
    paths.flatMap((path): Sample[] => [
      [{ path: path.name, direction: "sent" }, path.sent.datagrams],
      [{ path: path.name, direction: "received" }, path.received.datagrams],
    ]),
  );
  out.family(
    "mptunnel_path_bytes_total",
    "counter",
    "Bytes on the wire on the path, by direction.",
    paths.flatMap((path): Sample[] => [
      [{ path: path.name, direction: "sent" }, path.sent.bytes],
      [{ path: path.name, direction: "received" }, path.received.bytes],
    ]),
  );
  out.family(
    "mptunnel_path_send_errors_total",
    "counter",
    "Sends on the path that failed, by kind.",
    paths.flatMap((path) =>
      SEND_ERROR_KINDS.map((kind): Sample => [
        { path: path.name, kind },
        path.sendErrors[kind] ?? 0,
      ])
    ),
  );
  out.family(
    "mptunnel_path_probes_sent_total",
    "counter",
    "Probes sent on the path.",
    paths.map((path) => [{ path: path.name }, path.probesSent]),
  );
  out.family(
    "mptunnel_path_probe_replies_total",
    "counter",
    "Probe replies received on the path.",
    paths.map((path) => [{ path: path.name }, path.probeReplies]),
  );
  out.family(
    "mptunnel_path_last_heard_age_seconds",
    "gauge",
    "Time since anything authentic arrived on the path.",
    paths.map((path) => [{ path: path.name }, seconds(path.lastHeardAgoMs)]),
  );
}

function serverFamilies(out: Exposition, status: ServerStatus): void {
  out.family("mptunnel_info", "gauge", "Always 1; the labels describe the running program.", [
    [{ program: status.program, version: status.version, encrypted: String(status.encrypted) }, 1],
  ]);
  out.family("mptunnel_uptime_seconds", "gauge", "Time since the program started.", [
    [{}, status.uptimeSeconds],
  ]);
  out.family("mptunnel_sessions", "gauge", "Client sessions known now.", [
    [{}, status.sessionCount],
  ]);
  out.family("mptunnel_sessions_opened_total", "counter", "Client sessions opened.", [
    [{}, status.sessionsOpened],
  ]);
  out.family("mptunnel_sessions_closed_total", "counter", "Client sessions closed.", [
    [{}, status.sessionsClosed],
  ]);
  out.family(
    "mptunnel_server_datagrams_total",
    "counter",
    "Datagrams on the listening sockets, every redundant copy included, by direction.",
    [
      [{ direction: "received" }, status.traffic.received.datagrams],
      [{ direction: "sent" }, status.traffic.sent.datagrams],
    ],
  );
  out.family(
    "mptunnel_server_bytes_total",
    "counter",
    "Bytes on the wire on the listening sockets, by direction.",
    [
      [{ direction: "received" }, status.traffic.received.bytes],
      [{ direction: "sent" }, status.traffic.sent.bytes],
    ],
  );
  out.family(
    "mptunnel_target_datagrams_total",
    "counter",
    "Datagrams exchanged with the target, by direction.",
    [
      [{ direction: "to_target" }, status.traffic.toTarget],
      [{ direction: "from_target" }, status.traffic.fromTarget],
    ],
  );
  out.family("mptunnel_target_sockets", "gauge", "Open sockets toward the target (flows).", [
    [{}, status.targetSockets],
  ]);
  duplicatesAndDrops(out, status);
  out.family(
    "mptunnel_target_send_errors_total",
    "counter",
    "Sends to the target that failed.",
    [[{}, status.errors.targetSend]],
  );
  out.family(
    "mptunnel_client_send_errors_total",
    "counter",
    "Sends to client addresses that failed.",
    [[{}, status.errors.clientSend]],
  );
  out.family(
    "mptunnel_target_foreign_datagrams_total",
    "counter",
    "Datagrams on a target socket from anything but the target (ignored).",
    [[{}, status.errors.foreignOnTargetSocket]],
  );
  out.family(
    "mptunnel_flow_limit_refusals_total",
    "counter",
    "Flows refused because their session had too many target sockets.",
    [[{}, status.errors.flowLimit]],
  );
}

function duplicatesAndDrops(out: Exposition, status: ProgramStatus): void {
  out.family(
    "mptunnel_duplicates_total",
    "counter",
    "Redundant copies dropped (expected with several paths).",
    [[{}, status.traffic.duplicates]],
  );
  out.family(
    "mptunnel_drops_total",
    "counter",
    "Datagrams dropped instead of passed on, by reason.",
    DROP_REASONS.map((reason) => [{ reason }, status.drops[reason] ?? 0]),
  );
}

/** Milliseconds to seconds (to the nanosecond, without binary noise), absent kept absent. */
function seconds(ms: number | null): number | null {
  return ms === null ? null : Number((ms / 1000).toFixed(9));
}

/** `{name="value",…}`, or nothing without labels; values escaped as the format requires. */
function formatLabels(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return "";
  return `{${entries.map(([name, value]) => `${name}="${escapeLabelValue(value)}"`).join(",")}}`;
}

/** Escapes a label value: backslash, double quote and line feed. */
export function escapeLabelValue(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

/** Escapes help text: backslash and line feed. */
function escapeHelp(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}
