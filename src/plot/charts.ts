// Charts as standalone SVG documents: line charts (training curves), overlaid density histograms
// (likelihood of in- vs out-of-distribution data), and a panel layout to put several side by side
// (density heatmaps and scatter plots of 2-D data: maps.ts). Render with renderPng (render.ts).
import { UserError } from '../errors.js';
import { clipped, document, extent, frame, legend, legendWidth, makeScale, px, seriesColor, text } from './svg.js';

export interface Series {
  name: string;
  points: Array<[number, number]>;
  /** CSS colour; defaults to the palette colour of the series' position. */
  color?: string;
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  width?: number;
  height?: number;
  logX?: boolean;
  logY?: boolean;
  /** Fixed axis ranges (e.g. to cut off the first steps' huge loss); default: the data's, rounded out to ticks. */
  xRange?: [number, number];
  yRange?: [number, number];
  /** Draw point markers on series with at most this many points (sparse series such as test loss). Default 25. */
  markersUpTo?: number;
  /** Minimum margins left of and right of the plot area, to line up stacked charts' axes. */
  padLeft?: number;
  padRight?: number;
}

const DEFAULT_W = 640;
const DEFAULT_H = 400;

/**
 * One line per series on shared axes, with a legend on the right. Non-finite points (and non-positive
 * ones on a log axis) break the line rather than being joined over.
 */
export function lineChart(series: Series[], opts: LineChartOptions): string {
  const width = opts.width ?? DEFAULT_W;
  const height = opts.height ?? DEFAULT_H;
  const usable = (x: number, y: number) => Number.isFinite(x) && Number.isFinite(y) && (!opts.logX || x > 0) && (!opts.logY || y > 0);
  const xs: number[] = [];
  const ys: number[] = [];
  for (const s of series) for (const [x, y] of s.points) if (usable(x, y)) xs.push(x), ys.push(y);
  const xr = opts.xRange ?? extent(xs) ?? (opts.logX ? [1, 10] : [0, 1]);
  const yr = opts.yRange ?? padded(extent(ys), opts.logY) ?? (opts.logY ? [1, 10] : [0, 1]);
  const xScale = makeScale(xr[0], xr[1], { log: opts.logX, nice: !opts.xRange, target: 7 });
  const yScale = makeScale(yr[0], yr[1], { log: opts.logY, nice: !opts.yRange });
  const names = series.map((s) => s.name);
  const lw = Math.max(series.length ? legendWidth(names) + 12 : 0, (opts.padRight ?? 0) - 16);
  const f = frame({ width, height, title: opts.title, xLabel: opts.xLabel, yLabel: opts.yLabel, xScale, yScale, rightPad: lw, minLeft: opts.padLeft });
  const markersUpTo = opts.markersUpTo ?? 25;
  const body: string[] = [];
  series.forEach((s, i) => {
    const color = s.color ?? seriesColor(i);
    let d = '';
    let pen = false;
    const dots: string[] = [];
    const nUsable = s.points.filter(([x, y]) => usable(x, y)).length;
    for (const [x, y] of s.points) {
      if (!usable(x, y)) {
        pen = false;
        continue;
      }
      const X = px(f.sx(x));
      const Y = px(f.sy(y));
      d += `${pen ? 'L' : 'M'}${X} ${Y}`;
      pen = true;
      if (nUsable <= markersUpTo) dots.push(`<circle cx="${X}" cy="${Y}" r="3"/>`);
    }
    if (d) body.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="1.8" stroke-linejoin="round" stroke-linecap="round"/>`);
    if (dots.length) body.push(`<g fill="${color}">${dots.join('')}</g>`);
  });
  const leg = series.length ? legend(series.map((s, i) => ({ name: s.name, color: s.color ?? seriesColor(i), kind: 'line' as const })), f.left + f.w + 12, f.top) : '';
  return document(width, height, [f.svg, clipped(f, body.join('\n')), leg].join('\n'));
}

/** A data range grown by 2% each side (in log space on a log axis), so lines at the extremes stay off the frame. */
function padded(r: [number, number] | null, log?: boolean): [number, number] | null {
  if (!r) return null;
  const [lo, hi] = log ? [Math.log10(r[0]), Math.log10(r[1])] : r;
  const d = (hi - lo) * 0.02;
  return log ? [10 ** (lo - d), 10 ** (hi + d)] : [lo - d, hi + d];
}

// ---------------------------------------------------------------------------------------------

export interface HistogramOptions {
  title: string;
  xLabel: string;
  yLabel?: string;
  /** Number of shared bins; default: sqrt of the largest group's size, between 10 and 60. */
  bins?: number;
  width?: number;
  height?: number;
  /** Fixed x range; values outside it are left out. Default: all finite values. */
  xRange?: [number, number];
}

export interface Group {
  name: string;
  values: number[] | Float32Array;
  color?: string;
}

/** Shared bin edges and each group's density (count / (n * bin width), so every histogram has area 1). */
export function binDensities(groups: Group[], bins: number, range?: [number, number]): { edges: number[]; densities: number[][] } {
  const all: number[] = [];
  for (const g of groups) for (const v of g.values) all.push(v);
  let [lo, hi] = range ?? extent(all) ?? [0, 1];
  if (lo === hi) lo -= 0.5, hi += 0.5;
  const edges = Array.from({ length: bins + 1 }, (_, k) => lo + ((hi - lo) * k) / bins);
  const bw = (hi - lo) / bins;
  const densities = groups.map((g) => {
    const counts = new Array<number>(bins).fill(0);
    let n = 0;
    for (const v of g.values) {
      if (!Number.isFinite(v) || v < lo || v > hi) continue;
      counts[Math.min(bins - 1, Math.floor((v - lo) / bw))]! += 1;
      n++;
    }
    return counts.map((c) => (n ? c / (n * bw) : 0));
  });
  return { edges, densities };
}

/**
 * Overlaid, semi-transparent histograms on shared bins, each normalised to a density: the figure of
 * Nalisnick et al. (2019) comparing bits/dim of in-distribution test data with out-of-distribution data.
 */
export function histogram(groups: Group[], opts: HistogramOptions): string {
  const width = opts.width ?? DEFAULT_W;
  const height = opts.height ?? DEFAULT_H;
  const largest = Math.max(0, ...groups.map((g) => g.values.length));
  const bins = opts.bins ?? Math.min(60, Math.max(10, Math.ceil(Math.sqrt(largest))));
  if (!Number.isInteger(bins) || bins < 1) throw new UserError(`histogram: bins must be a positive integer, got ${bins}`);
  const { edges, densities } = binDensities(groups, bins, opts.xRange);
  const xScale = makeScale(edges[0]!, edges[bins]!, { nice: !opts.xRange, target: 7 });
  const peak = Math.max(0, ...densities.flat());
  const yScale = makeScale(0, peak > 0 ? peak * 1.05 : 1, {});
  const names = groups.map((g) => g.name);
  const lw = groups.length ? legendWidth(names) + 12 : 0;
  const f = frame({ width, height, title: opts.title, xLabel: opts.xLabel, yLabel: opts.yLabel ?? 'density', xScale, yScale, rightPad: lw });
  const body: string[] = [];
  groups.forEach((g, i) => {
    const color = g.color ?? seriesColor(i);
    const base = px(f.sy(0));
    // One closed step outline per group: up and across each bin, back down at the end.
    let d = `M${px(f.sx(edges[0]!))} ${base}`;
    densities[i]!.forEach((v, k) => {
      const y = px(f.sy(v));
      d += `L${px(f.sx(edges[k]!))} ${y}L${px(f.sx(edges[k + 1]!))} ${y}`;
    });
    d += `L${px(f.sx(edges[bins]!))} ${base}Z`;
    body.push(`<path d="${d}" fill="${color}" fill-opacity="0.4" stroke="${color}" stroke-width="1.5" stroke-linejoin="miter"/>`);
  });
  const leg = groups.length ? legend(groups.map((g, i) => ({ name: g.name, color: g.color ?? seriesColor(i), kind: 'box' as const })), f.left + f.w + 12, f.top) : '';
  return document(width, height, [f.svg, clipped(f, body.join('\n')), leg].join('\n'));
}

// ---------------------------------------------------------------------------------------------

/** Width and height of an SVG document made by this module (or any with numeric width/height on its root). */
export function svgSize(svg: string): { width: number; height: number } {
  const root = /<svg\b[^>]*>/.exec(svg)?.[0];
  const w = root && /\swidth="([\d.]+)"/.exec(root);
  const h = root && /\sheight="([\d.]+)"/.exec(root);
  if (!w || !h) throw new UserError('panels: every chart needs a root <svg> with numeric width and height');
  return { width: Number(w[1]), height: Number(h[1]) };
}

/**
 * Charts laid out row-major in `cols` columns (e.g. data scatter | learned density | samples), each
 * cell as wide as its column's widest chart and as tall as its row's tallest.
 */
export function panels(svgs: string[], cols: number, opts: { gap?: number; title?: string } = {}): string {
  if (!Number.isInteger(cols) || cols < 1) throw new UserError(`panels: cols must be a positive integer, got ${cols}`);
  if (svgs.length === 0) throw new UserError('panels: no charts to lay out');
  const gap = opts.gap ?? 8;
  const sizes = svgs.map(svgSize);
  const rows = Math.ceil(svgs.length / cols);
  const colW = Array.from({ length: Math.min(cols, svgs.length) }, (_, c) => Math.max(...sizes.filter((_, k) => k % cols === c).map((s) => s.width)));
  const rowH = Array.from({ length: rows }, (_, r) => Math.max(...sizes.slice(r * cols, (r + 1) * cols).map((s) => s.height)));
  const titleH = opts.title ? 32 : 0;
  const width = colW.reduce((a, b) => a + b, 0) + gap * (colW.length - 1);
  const height = titleH + rowH.reduce((a, b) => a + b, 0) + gap * (rows - 1);
  const parts = [`<rect x="0" y="0" width="${width}" height="${height}" fill="white"/>`];
  if (opts.title) parts.push(text(width / 2, 22, opts.title, { size: 16, anchor: 'middle', weight: 'bold' }));
  svgs.forEach((svg, k) => {
    const c = k % cols;
    const r = Math.floor(k / cols);
    const x = colW.slice(0, c).reduce((a, b) => a + b, 0) + gap * c;
    const y = titleH + rowH.slice(0, r).reduce((a, b) => a + b, 0) + gap * r;
    const inner = svg.replace(/^\s*<\?xml[^>]*\?>\s*/, '').trim();
    parts.push(`<g transform="translate(${x} ${y})">\n${inner}\n</g>`);
  });
  return document(width, height, parts.join('\n'));
}
