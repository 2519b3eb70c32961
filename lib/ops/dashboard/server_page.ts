/**
 * mpserver's page body: tiles, the traffic charts, the drops and the session list with sparklines.
 *
 * The page runs these very functions (see `lib/ops/dashboard_logic.ts`): each export is a
 * self-contained function declaration that calls only other exported dashboard functions and the
 * JavaScript built-ins — no module-level constants, no renamed imports.
 */

import { chartPath, niceCeiling, ratePerSecond, renderChart } from "./charts.ts";
import {
  escapeHtml,
  formatAgo,
  formatBitRate,
  formatBytes,
  formatCount,
  formatDuration,
  formatPacketRate,
  formatSpan,
} from "./formats.ts";
import { findServerSession, latestPair, seriesOf } from "./history.ts";
import { renderDrops, renderDropsChart, renderTile } from "./sections.ts";
import type { DashboardView, ServerStatusView, StatusView, TrafficView } from "./view.ts";

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
