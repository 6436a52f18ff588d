// 2-D toy densities as defined in FFJORD's / residual-flows' toy_data.py (moons from sklearn's
// make_moons), drawn from our seeded Rng and always exactly n points, shuffled.
import { Rng } from '../rng.js';

export const TOY_NAMES = ['two-moons', '8gaussians', 'checkerboard', 'pinwheel', 'rings', 'spirals'] as const;
export type ToyName = (typeof TOY_NAMES)[number];

const TOY_SALT = 0x70f;

/** linspace(0, stop, m) with or without the end point, numpy style. */
function linspace(stop: number, m: number, endpoint: boolean): Float64Array {
  const out = new Float64Array(m);
  const div = endpoint ? m - 1 : m;
  for (let i = 0; i < m; i++) out[i] = div > 0 ? (stop * i) / div : 0;
  return out;
}

function shuffleRows(xy: Float32Array, rng: Rng): Float32Array {
  const n = xy.length / 2;
  const perm = rng.permutation(n);
  const out = new Float32Array(xy.length);
  for (let i = 0; i < n; i++) {
    out[2 * i] = xy[2 * perm[i]!]!;
    out[2 * i + 1] = xy[2 * perm[i]! + 1]!;
  }
  return out;
}

function twoMoons(n: number, rng: Rng): Float32Array {
  const nOut = Math.floor(n / 2);
  const nIn = n - nOut;
  const out = new Float32Array(2 * n);
  const a = linspace(Math.PI, nOut, true);
  const b = linspace(Math.PI, nIn, true);
  for (let i = 0; i < nOut; i++) {
    out[2 * i] = Math.cos(a[i]!);
    out[2 * i + 1] = Math.sin(a[i]!);
  }
  for (let i = 0; i < nIn; i++) {
    out[2 * (nOut + i)] = 1 - Math.cos(b[i]!);
    out[2 * (nOut + i) + 1] = 1 - Math.sin(b[i]!) - 0.5;
  }
  const shuffled = shuffleRows(out, rng);
  for (let i = 0; i < n; i++) {
    shuffled[2 * i] = (shuffled[2 * i]! + 0.1 * rng.normal()) * 2 - 1;
    shuffled[2 * i + 1] = (shuffled[2 * i + 1]! + 0.1 * rng.normal()) * 2 - 0.2;
  }
  return shuffled;
}

function eightGaussians(n: number, rng: Rng): Float32Array {
  const s = 4;
  const r = 1 / Math.SQRT2;
  const centres = [[1, 0], [-1, 0], [0, 1], [0, -1], [r, r], [r, -r], [-r, r], [-r, -r]] as const;
  const out = new Float32Array(2 * n);
  for (let i = 0; i < n; i++) {
    const x = rng.normal() * 0.5;
    const y = rng.normal() * 0.5;
    const c = centres[rng.int(8)]!;
    // 1.414, not Math.SQRT2: the divisor of the 8gaussians set as FFJORD defines it.
    // biome-ignore lint/suspicious/noApproximativeNumericConstant: the data set's own constant
    out[2 * i] = (x + s * c[0]) / 1.414;
    // biome-ignore lint/suspicious/noApproximativeNumericConstant: the data set's own constant
    out[2 * i + 1] = (y + s * c[1]) / 1.414;
  }
  return out;
}

function checkerboard(n: number, rng: Rng): Float32Array {
  const out = new Float32Array(2 * n);
  for (let i = 0; i < n; i++) {
    const x1 = rng.next() * 4 - 2;
    const x2 = rng.next() - rng.int(2) * 2 + (((Math.floor(x1) % 2) + 2) % 2); // numpy's % is non-negative
    out[2 * i] = x1 * 2;
    out[2 * i + 1] = x2 * 2;
  }
  return out;
}

function pinwheel(n: number, rng: Rng): Float32Array {
  const radialStd = 0.3;
  const tangentialStd = 0.1;
  const arms = 5;
  const rate = 0.25;
  const out = new Float32Array(2 * n);
  for (let i = 0; i < n; i++) {
    const arm = Math.floor((i * arms) / n);
    const f0 = rng.normal() * radialStd + 1;
    const f1 = rng.normal() * tangentialStd;
    const angle = (2 * Math.PI * arm) / arms + rate * Math.exp(f0);
    const c = Math.cos(angle);
    const s = Math.sin(angle);
    // [f0 f1] · [[c, -s], [s, c]]
    out[2 * i] = 2 * (f0 * c + f1 * s);
    out[2 * i + 1] = 2 * (-f0 * s + f1 * c);
  }
  return shuffleRows(out, rng);
}

function rings(n: number, rng: Rng): Float32Array {
  const per = Math.floor(n / 4);
  const counts = [per, per, per, n - 3 * per];
  const radii = [1, 0.75, 0.5, 0.25];
  const out = new Float32Array(2 * n);
  let row = 0;
  for (let r = 0; r < 4; r++) {
    const t = linspace(2 * Math.PI, counts[r]!, false);
    for (let i = 0; i < counts[r]!; i++, row++) {
      out[2 * row] = Math.cos(t[i]!) * radii[r]! * 3;
      out[2 * row + 1] = Math.sin(t[i]!) * radii[r]! * 3;
    }
  }
  const shuffled = shuffleRows(out, rng);
  for (let i = 0; i < shuffled.length; i++) shuffled[i] = shuffled[i]! + 0.08 * rng.normal();
  return shuffled;
}

function spirals(n: number, rng: Rng): Float32Array {
  const half = Math.floor(n / 2);
  const out = new Float32Array(2 * n);
  for (let i = 0; i < n; i++) {
    const t = Math.sqrt(rng.next()) * 540 * ((2 * Math.PI) / 360);
    const x = -Math.cos(t) * t + rng.next() * 0.5;
    const y = Math.sin(t) * t + rng.next() * 0.5;
    const sign = i < half ? 1 : -1; // the second arm is the first rotated by 180 degrees
    out[2 * i] = (sign * x) / 3 + 0.1 * rng.normal();
    out[2 * i + 1] = (sign * y) / 3 + 0.1 * rng.normal();
  }
  return shuffleRows(out, rng);
}

/** n points of the named 2-D set, rows [x, y], deterministic per seed. */
export function makeToy(name: ToyName, n: number, seed: number): Float32Array {
  const rng = new Rng(seed).fork(TOY_SALT);
  switch (name) {
    case 'two-moons':
      return twoMoons(n, rng);
    case '8gaussians':
      return eightGaussians(n, rng);
    case 'checkerboard':
      return checkerboard(n, rng);
    case 'pinwheel':
      return pinwheel(n, rng);
    case 'rings':
      return rings(n, rng);
    case 'spirals':
      return spirals(n, rng);
  }
}
