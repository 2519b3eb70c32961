/**
 * The dashboard's small line charts: rates from successive counter readings, a round top for the
 * y axis, the SVG path of a series, and a chart's HTML with its legend and axes.
 *
 * The page runs these very functions (see `lib/ops/dashboard_logic.ts`): each export is a
 * self-contained function declaration that calls only other exported dashboard functions and the
 * JavaScript built-ins — no module-level constants, no renamed imports.
 */

import { escapeHtml } from "./formats.ts";

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

/**
 * The per-second rate between two readings of a counter; null when either is missing, no time
 * passed, or the counter went backwards (the program restarted).
 *
 * @example
 * ```ts
 * import { ratePerSecond } from "./charts.ts";
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
 * import { chartPath } from "./charts.ts";
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
