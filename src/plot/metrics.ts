// A run's metrics.ndjson (one JSON object per line, written by the trainer) as plottable series,
// and the training-curves figure drawn from it.
import { readFileSync } from 'node:fs';
import { UserError } from '../errors.js';
import { lineChart, panels, type Series } from './charts.js';
import { legendWidth, niceTicks } from './svg.js';

/** Metric name (train_bpd, test_bpd, lr, img_per_s, ...) -> [step, value] pairs sorted by step. */
export type Metrics = Record<string, Array<[number, number]>>;

/**
 * Parses metrics.ndjson. Each numeric field other than `step` is a series. A resumed run logs steps
 * again: the LAST value logged for a (metric, step) wins. (Train and test lines share steps, so
 * dedup is per metric, not per line.)
 * Blank lines, lines without a numeric step and a torn final line (a crash mid-write) are skipped;
 * any other line that is not a JSON object is a UserError naming the line.
 */
export function readMetrics(file: string): Metrics {
  let textContent: string;
  try {
    textContent = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(`cannot read metrics file ${file}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  const lines = textContent.split('\n');
  const byMetric = new Map<string, Map<number, number>>();
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch {
      if (i === lines.length - 1) return; // torn last line: no newline after it
      throw new UserError(`${file}:${i + 1}: not valid JSON (expected one JSON object per line)`);
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new UserError(`${file}:${i + 1}: expected a JSON object, got ${JSON.stringify(obj).slice(0, 40)}`);
    const rec = obj as Record<string, unknown>;
    const step = rec.step;
    if (typeof step !== 'number' || !Number.isFinite(step)) return;
    for (const [key, v] of Object.entries(rec)) {
      if (key === 'step' || typeof v !== 'number' || !Number.isFinite(v)) continue;
      let points = byMetric.get(key);
      if (!points) byMetric.set(key, (points = new Map()));
      points.set(step, v);
    }
  });
  const series: Metrics = {};
  for (const [key, points] of byMetric) series[key] = [...points.entries()].sort((a, b) => a[0] - b[0]);
  return series;
}

export interface CurvesOptions {
  title?: string;
  width?: number;
  /** Height of the loss chart; the learning-rate panel below it is a third of this. */
  height?: number;
  logX?: boolean;
  /** Loss axis range (the first steps' loss can dwarf the rest). */
  yRange?: [number, number];
  /** Add the learning-rate panel when an lr series exists. Default true. */
  lr?: boolean;
}

/**
 * Training curves: train_* and test_* (bits/dim, or nats/dim for vector data) against step, with the
 * learning rate on its own small panel underneath.
 */
export function trainingCurves(metrics: Metrics, opts: CurvesOptions = {}): string {
  const width = opts.width ?? 720;
  const height = opts.height ?? 400;
  const lossKeys = Object.keys(metrics)
    .filter((k) => /^(train|test)_/.test(k))
    .sort((a, b) => (a.startsWith('train_') ? 0 : 1) - (b.startsWith('train_') ? 0 : 1) || a.localeCompare(b));
  if (lossKeys.length === 0) throw new UserError('no train_* or test_* metrics to plot (is this a run directory with a metrics.ndjson?)');
  const unit = lossKeys[0]!.replace(/^(train|test)_/, '');
  const yLabel = unit === 'bpd' ? 'bits/dim' : unit === 'nll' ? 'NLL (nats/dim)' : unit;
  const series: Series[] = lossKeys.map((k) => ({ name: k, points: metrics[k]! }));
  const lr = metrics.lr;
  const withLr = (opts.lr ?? true) && lr !== undefined && lr.length > 0;
  // Same margins on both charts so their step axes line up.
  const pad = withLr ? { padLeft: 84, padRight: legendWidth([...lossKeys, 'lr']) + 28 } : {};
  const loss = lineChart(series, { title: opts.title ?? 'training curves', xLabel: 'step', yLabel, width, height, logX: opts.logX, yRange: opts.yRange, ...pad });
  if (!withLr) return loss;
  const lrChart = lineChart([{ name: 'lr', points: lr, color: '#7f7f7f' }], {
    title: '',
    xLabel: 'step',
    yLabel: 'learning rate',
    width,
    height: Math.max(160, Math.round(height / 3)),
    logX: opts.logX,
    xRange: opts.logX ? undefined : sharedXRange(series),
    ...pad,
  });
  return panels([loss, lrChart], 1, { gap: 0 });
}

/** The loss chart's rounded-out step range, so the lr panel's step axis matches it exactly. */
function sharedXRange(series: Series[]): [number, number] | undefined {
  let lo = Infinity;
  let hi = -Infinity;
  for (const s of series) for (const [x] of s.points) if (Number.isFinite(x)) lo = Math.min(lo, x), hi = Math.max(hi, x);
  if (!(lo <= hi)) return undefined;
  const t = niceTicks(lo, hi, 7);
  return [t.lo, t.hi];
}
