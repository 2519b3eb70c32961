/**
 * What the web dashboard (`lib/ops/dashboard.ts`) computes and draws, gathered in one list: rates
 * from successive counters, chart paths, number formats with units, and the page's HTML for a
 * history of `/status` snapshots. All of it is pure — no DOM, no fetch, no clock — so the tests run
 * it in Deno. The code lives in `lib/ops/dashboard/`, one concern a file: `view.ts` (the status
 * shapes the page reads), `formats.ts`, `charts.ts`, `history.ts`, `sections.ts`, `client_page.ts`,
 * `server_page.ts` and `page.ts`.
 *
 * The page runs these very functions: `lib/ops/dashboard.ts` inlines the source of every function
 * exported here (`Function.prototype.toString`, which gives the JavaScript Deno compiled) into the
 * page's `<script>`, where they all share one scope. So every function of `lib/ops/dashboard/` must
 * be re-exported here, and each must be a self-contained function declaration that calls only
 * other such functions and the JavaScript built-ins: no module-level constants, no renamed imports.
 * `tests/ops/dashboard_logic_test.ts` evaluates the inlined source in an empty scope, and checks that
 * every function of the folder is listed here, to keep that true.
 */

export {
  type ClientPathView,
  type ClientStatusView,
  type DashboardView,
  type Sample,
  type ServerSessionPathView,
  type ServerSessionView,
  type ServerStatusView,
  type StatusView,
  type TrafficView,
} from "./dashboard/view.ts";
export {
  describeDropReason,
  escapeHtml,
  formatAgo,
  formatBitRate,
  formatBytes,
  formatCount,
  formatDuration,
  formatMs,
  formatPacketRate,
  formatPercent,
  formatScaled,
  formatSpan,
} from "./dashboard/formats.ts";
export {
  chartPath,
  type ChartSeries,
  type ChartSpec,
  niceCeiling,
  ratePerSecond,
  renderChart,
} from "./dashboard/charts.ts";
export {
  findClientPath,
  findServerSession,
  latestPair,
  seriesOf,
  sumCounts,
  trimForHistory,
} from "./dashboard/history.ts";
export {
  lossTone,
  renderDrops,
  renderDropsChart,
  renderHeader,
  renderStateBadge,
  renderTile,
} from "./dashboard/sections.ts";
export { renderClient } from "./dashboard/client_page.ts";
export { renderServer } from "./dashboard/server_page.ts";
export { dashboardTitle, renderDashboard } from "./dashboard/page.ts";
