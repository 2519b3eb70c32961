/**
 * Reading the page's history of `/status` samples: a value per sample, the newest answer and the
 * one before it, a path or session found in a sample, and a sample cut to what the page keeps.
 *
 * The page runs these very functions (see `lib/ops/dashboard_logic.ts`): each export is a
 * self-contained function declaration that calls only other exported dashboard functions and the
 * JavaScript built-ins — no module-level constants, no renamed imports.
 */

import type { ClientPathView, Sample, ServerSessionView, StatusView } from "./view.ts";

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
