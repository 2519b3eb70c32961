/**
 * The parts both programs' pages share: the header, summary tiles, state badges, and the drops
 * chart and table.
 *
 * The page runs these very functions (see `lib/ops/dashboard_logic.ts`): each export is a
 * self-contained function declaration that calls only other exported dashboard functions and the
 * JavaScript built-ins — no module-level constants, no renamed imports.
 */

import { ratePerSecond, renderChart } from "./charts.ts";
import {
  describeDropReason,
  escapeHtml,
  formatAgo,
  formatCount,
  formatDuration,
  formatPacketRate,
} from "./formats.ts";
import { latestPair, seriesOf, sumCounts } from "./history.ts";
import type { DashboardView, StatusView } from "./view.ts";

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
