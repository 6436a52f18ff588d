// Densities of vector (2-D / tabular) flows: log p(x) of arbitrary points, the learned 2-D density on
// a regular grid with its Riemann-sum integral (about 1 when the grid covers the mass), and the
// data | density | samples figure of `flow plot density`.
import { tf } from '../tf.js';
import type { FlowModel } from '../flows/model.js';
import { Rng } from '../rng.js';
import { heatmap, scatter, panels, dataDomain, type Domain, type Grid } from '../plot/index.js';

/** log p(x) in nats for n points of model.inputShape ([D]) stored back to back. */
export async function logDensity(model: FlowModel, x: Float32Array, n: number, batchSize = 4096): Promise<Float64Array> {
  const dims = model.inputShape.reduce((a, b) => a * b, 1);
  if (x.length !== n * dims) throw new Error(`logDensity: ${x.length} values for ${n} points of ${dims} dims`);
  const out = new Float64Array(n);
  for (let start = 0; start < n; start += batchSize) {
    const b = Math.min(batchSize, n - start);
    const logp = tf.tidy(() => model.logProb(tf.tensor(x.subarray(start * dims, (start + b) * dims), [b, ...model.inputShape])));
    out.set(await logp.data(), start);
    logp.dispose();
  }
  return out;
}

export interface DensityGrid {
  /** p(x) on the grid (row j = 0 at the bottom), ready for plot's heatmap. */
  grid: Grid;
  /** log p at the same cells. */
  logp: Float32Array;
  /** sum of p over the cells times the cell area. */
  integral: number;
}

/** p at the centres of an nx x ny grid over the domain (2-D models only). */
export async function densityGrid(model: FlowModel, domain: Domain, nx: number, ny: number): Promise<DensityGrid> {
  if (model.inputShape.length !== 1 || model.inputShape[0] !== 2) throw new Error(`densityGrid needs a 2-D model, got input shape [${model.inputShape}]`);
  const { x0, x1, y0, y1 } = domain;
  const dx = (x1 - x0) / nx;
  const dy = (y1 - y0) / ny;
  const points = new Float32Array(nx * ny * 2);
  for (let j = 0; j < ny; j++) {
    for (let i = 0; i < nx; i++) {
      points[2 * (j * nx + i)] = x0 + (i + 0.5) * dx;
      points[2 * (j * nx + i) + 1] = y0 + (j + 0.5) * dy;
    }
  }
  const logp64 = await logDensity(model, points, nx * ny);
  const logp = Float32Array.from(logp64);
  const values = new Float32Array(nx * ny);
  let sum = 0;
  for (let k = 0; k < values.length; k++) {
    const p = Math.exp(logp64[k]!);
    values[k] = p;
    if (Number.isFinite(p)) sum += p;
  }
  return { grid: { values, nx, ny, x0, x1, y0, y1 }, logp, integral: sum * dx * dy };
}

/**
 * A square plotting domain around 2-D points: their bounding box grown by `pad` of its size each side,
 * then widened on the short side so both axes have the same scale (a circle stays round).
 */
export function squareDomain(points: Float32Array, pad = 0.15): Domain {
  const d = dataDomain(points, pad);
  const cx = (d.x0 + d.x1) / 2;
  const cy = (d.y0 + d.y1) / 2;
  const half = Math.max(d.x1 - d.x0, d.y1 - d.y0) / 2;
  return { x0: cx - half, x1: cx + half, y0: cy - half, y1: cy + half };
}

/** n samples of a vector model at the temperature, as one flat array (interleaved x, y for 2-D). */
export async function sampleVectors(model: FlowModel, n: number, temperature: number, seed: number): Promise<Float32Array> {
  const s = model.sample(n, temperature, new Rng(seed).fork(0x5a3));
  const values = (await s.data()) as Float32Array;
  s.dispose();
  return values;
}

export interface DensityFigureOptions {
  title: string;
  /** Colour the density by log p instead of p. */
  log?: boolean;
}

/** Data scatter | learned density heatmap | sample scatter on one shared domain. */
export function densityFigure(data: Float32Array, density: DensityGrid, samples: Float32Array, domain: Domain, opts: DensityFigureOptions): string {
  const size = 420;
  const dataPanel = scatter(data, { title: `data (${data.length / 2} points)`, domain, width: size, height: size, xLabel: 'x1', yLabel: 'x2' });
  let shown = density.grid;
  if (opts.log) {
    // log p down to 10 nats below the peak: further out is just the empty background.
    let peak = -Infinity;
    for (const v of density.logp) if (v > peak) peak = v;
    shown = { ...density.grid, values: Array.from(density.logp, (v) => (Number.isNaN(v) ? NaN : Math.max(v, peak - 10))) };
  }
  const densityPanel = heatmap(shown, {
    title: `learned density (integral ${density.integral.toFixed(3)})`,
    width: size + 90,
    height: size,
    xLabel: 'x1',
    yLabel: 'x2',
    valueLabel: opts.log ? 'log p(x)' : 'p(x)',
  });
  const samplePanel = scatter(samples, { title: `model samples (${samples.length / 2})`, domain, width: size, height: size, color: '#d62728', xLabel: 'x1', yLabel: 'x2' });
  return panels([dataPanel, densityPanel, samplePanel], 3, { title: opts.title });
}
