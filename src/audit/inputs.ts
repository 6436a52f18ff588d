// Inputs the invertibility audit pushes through a model: real data, and out-of-distribution inputs
// where inverses tend to explode (Behrmann et al. 2021): uniform noise, Gaussian noise and constant
// inputs. Images live in model space [-0.5, 0.5]; vector inputs are placed relative to the data.
import { Rng } from '../rng.js';

export type AuditInputKind = 'data' | 'uniform' | 'gaussian' | 'constant';

export interface AuditInput {
  kind: AuditInputKind;
  /** One line saying what the inputs are. */
  description: string;
  /** n examples back to back, model space. */
  x: Float32Array;
  n: number;
  /** Out-of-distribution inputs are held to their own (looser) reconstruction tolerance. */
  ood: boolean;
}

const OOD_SALT = 0xa0d17;

/** Per-dimension min, max, mean and std of n rows of `dims` values. */
function columnStats(x: Float32Array, dims: number): { min: Float64Array; max: Float64Array; mean: Float64Array; std: Float64Array } {
  const n = x.length / dims;
  const min = new Float64Array(dims).fill(Infinity);
  const max = new Float64Array(dims).fill(-Infinity);
  const mean = new Float64Array(dims);
  const sq = new Float64Array(dims);
  for (let i = 0; i < n; i++) {
    for (let d = 0; d < dims; d++) {
      const v = x[i * dims + d]!;
      if (v < min[d]!) min[d] = v;
      if (v > max[d]!) max[d] = v;
      mean[d]! += v;
      sq[d]! += v * v;
    }
  }
  const std = new Float64Array(dims);
  for (let d = 0; d < dims; d++) {
    mean[d]! /= Math.max(n, 1);
    std[d] = Math.sqrt(Math.max(sq[d]! / Math.max(n, 1) - mean[d]! ** 2, 0));
  }
  return { min, max, mean, std };
}

/**
 * n examples each of uniform noise, Gaussian noise and constant inputs.
 *   images:  U(-0.5, 0.5); N(0, 0.5^2) (about a third of the values outside the data range); constant
 *            images from black to white.
 *   vectors: uniform over the data's per-dimension range widened by half its width each side;
 *            N(data mean, (2 * data std)^2); every coordinate equal, spread over the data's overall range.
 */
export function oodInputs(kind: 'image' | 'vector', dims: number, n: number, seed: number, data: Float32Array): AuditInput[] {
  const rng = new Rng(seed).fork(OOD_SALT);
  const uniform = new Float32Array(n * dims);
  const gaussian = new Float32Array(n * dims);
  const constant = new Float32Array(n * dims);
  const level = (i: number) => (n > 1 ? i / (n - 1) : 0.5);
  if (kind === 'image') {
    for (let k = 0; k < uniform.length; k++) uniform[k] = rng.next() - 0.5;
    for (let k = 0; k < gaussian.length; k++) gaussian[k] = 0.5 * rng.normal();
    for (let i = 0; i < n; i++) constant.fill(level(i) - 0.5, i * dims, (i + 1) * dims);
    return [
      { kind: 'uniform', description: 'uniform noise U(-0.5, 0.5)', x: uniform, n, ood: true },
      { kind: 'gaussian', description: 'Gaussian noise N(0, 0.5^2)', x: gaussian, n, ood: true },
      { kind: 'constant', description: 'constant images, black to white', x: constant, n, ood: true },
    ];
  }
  const s = columnStats(data, dims);
  let lo = Infinity;
  let hi = -Infinity;
  for (let d = 0; d < dims; d++) (lo = Math.min(lo, s.min[d]!)), (hi = Math.max(hi, s.max[d]!));
  if (!(lo <= hi)) (lo = -1), (hi = 1);
  for (let i = 0; i < n; i++) {
    for (let d = 0; d < dims; d++) {
      const width = s.max[d]! - s.min[d]! || 1;
      uniform[i * dims + d] = s.min[d]! - width / 2 + 2 * width * rng.next();
      gaussian[i * dims + d] = s.mean[d]! + 2 * (s.std[d]! || 1) * rng.normal();
      constant[i * dims + d] = lo + (hi - lo) * level(i);
    }
  }
  return [
    { kind: 'uniform', description: "uniform over the data's range widened 2x", x: uniform, n, ood: true },
    { kind: 'gaussian', description: "Gaussian with the data's mean and twice its std", x: gaussian, n, ood: true },
    { kind: 'constant', description: "constant vectors over the data's range", x: constant, n, ood: true },
  ];
}
