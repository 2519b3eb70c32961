/**
 * mpclient's page body: tiles, the overview charts, the path table and a card of charts per path.
 *
 * The page runs these very functions (see `lib/ops/dashboard_logic.ts`): each export is a
 * self-contained function declaration that calls only other exported dashboard functions and the
 * JavaScript built-ins — no module-level constants, no renamed imports.
 */

import { ratePerSecond, renderChart } from "./charts.ts";
import {
  escapeHtml,
  formatAgo,
  formatBitRate,
  formatBytes,
  formatCount,
  formatMs,
  formatPacketRate,
  formatPercent,
  formatSpan,
} from "./formats.ts";
import { findClientPath, latestPair, seriesOf } from "./history.ts";
import {
  lossTone,
  renderDrops,
  renderDropsChart,
  renderStateBadge,
  renderTile,
} from "./sections.ts";
import type { ClientStatusView, DashboardView, StatusView, TrafficView } from "./view.ts";

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
