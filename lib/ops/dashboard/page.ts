/**
 * The whole page for a view (header, a "disconnected" banner when polls fail, the program's body)
 * and the browser tab's title.
 *
 * The page runs these very functions (see `lib/ops/dashboard_logic.ts`): each export is a
 * self-contained function declaration that calls only other exported dashboard functions and the
 * JavaScript built-ins — no module-level constants, no renamed imports.
 */

import { renderClient } from "./client_page.ts";
import { escapeHtml, formatCount, formatDuration } from "./formats.ts";
import { latestPair } from "./history.ts";
import { renderHeader } from "./sections.ts";
import { renderServer } from "./server_page.ts";
import type { DashboardView } from "./view.ts";

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
