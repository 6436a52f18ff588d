// Small dense linear algebra in float64 JS: tfjs has no det/inverse/solve, and the 1x1 convolution
// only ever needs it for C x C matrices (C <= a few hundred). Matrices are row-major Float64Arrays.
import type { Rng } from './rng.js';

export type Matrix = Float64Array;

/** P A = L U with partial pivoting: row i of P A is row perm[i] of A; L unit-lower and U packed in `lu`. */
export interface LUFactors {
  n: number;
  lu: Matrix;
  perm: Int32Array;
  /** +1 or -1: the determinant sign of P. */
  permSign: number;
  /** True when a pivot is exactly zero (A singular). */
  singular: boolean;
}

export function identity(n: number): Matrix {
  const m = new Float64Array(n * n);
  for (let i = 0; i < n; i++) m[i * n + i] = 1;
  return m;
}

export function matmul(a: Matrix, b: Matrix, n: number): Matrix {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < n; k++) {
      const aik = a[i * n + k]!;
      if (aik === 0) continue;
      for (let j = 0; j < n; j++) out[i * n + j] += aik * b[k * n + j]!;
    }
  }
  return out;
}

export function transpose(a: Matrix, n: number): Matrix {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) out[j * n + i] = a[i * n + j]!;
  return out;
}

export function luDecompose(a: ArrayLike<number>, n: number): LUFactors {
  const lu = Float64Array.from(a as ArrayLike<number>);
  const perm = new Int32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  let permSign = 1;
  let singular = false;
  for (let k = 0; k < n; k++) {
    let p = k;
    let best = Math.abs(lu[k * n + k]!);
    for (let i = k + 1; i < n; i++) {
      const v = Math.abs(lu[i * n + k]!);
      if (v > best) {
        best = v;
        p = i;
      }
    }
    if (p !== k) {
      for (let j = 0; j < n; j++) {
        const t = lu[k * n + j]!;
        lu[k * n + j] = lu[p * n + j]!;
        lu[p * n + j] = t;
      }
      const t = perm[k]!;
      perm[k] = perm[p]!;
      perm[p] = t;
      permSign = -permSign;
    }
    const pivot = lu[k * n + k]!;
    if (pivot === 0) {
      singular = true;
      continue;
    }
    for (let i = k + 1; i < n; i++) {
      const f = (lu[i * n + k]! /= pivot);
      if (f === 0) continue;
      for (let j = k + 1; j < n; j++) lu[i * n + j] -= f * lu[k * n + j]!;
    }
  }
  return { n, lu, perm, permSign, singular };
}

/** log|det A| (-Infinity when singular). */
export function logAbsDet(a: ArrayLike<number>, n: number): number {
  const f = luDecompose(a, n);
  let s = 0;
  for (let i = 0; i < n; i++) s += Math.log(Math.abs(f.lu[i * n + i]!));
  return s;
}

/** Solves L X = B in place for unit-lower-triangular L (only its strictly-lower part is read); B is n x m. */
export function solveUnitLower(l: Matrix, b: Matrix, n: number, m: number): Matrix {
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < i; k++) {
      const lik = l[i * n + k]!;
      if (lik === 0) continue;
      for (let j = 0; j < m; j++) b[i * m + j] -= lik * b[k * m + j]!;
    }
  }
  return b;
}

/** Solves U X = B in place for upper-triangular U (diagonal read from `diag` when given, else from U). */
export function solveUpper(u: Matrix, b: Matrix, n: number, m: number, diag?: ArrayLike<number>): Matrix {
  for (let i = n - 1; i >= 0; i--) {
    for (let k = i + 1; k < n; k++) {
      const uik = u[i * n + k]!;
      if (uik === 0) continue;
      for (let j = 0; j < m; j++) b[i * m + j] -= uik * b[k * m + j]!;
    }
    const d = diag ? diag[i]! : u[i * n + i]!;
    for (let j = 0; j < m; j++) b[i * m + j] /= d;
  }
  return b;
}

/** A^{-1} from its LU factors: solve L U X = P. */
export function inverse(a: ArrayLike<number>, n: number): Matrix {
  const f = luDecompose(a, n);
  if (f.singular) throw new Error(`matrix ${n}x${n} is singular: no inverse`);
  const x = new Float64Array(n * n);
  for (let i = 0; i < n; i++) x[i * n + f.perm[i]!] = 1;
  solveUnitLower(f.lu, x, n, n);
  return solveUpper(f.lu, x, n, n);
}

/** A random orthogonal matrix: modified Gram-Schmidt on the rows of a seeded Gaussian matrix. */
export function randomOrthogonal(n: number, rng: Rng): Matrix {
  for (;;) {
    const q = new Float64Array(n * n);
    for (let i = 0; i < n * n; i++) q[i] = rng.normal();
    let ok = true;
    for (let i = 0; i < n && ok; i++) {
      for (let k = 0; k < i; k++) {
        let dot = 0;
        for (let j = 0; j < n; j++) dot += q[i * n + j]! * q[k * n + j]!;
        for (let j = 0; j < n; j++) q[i * n + j] -= dot * q[k * n + j]!;
      }
      let norm = 0;
      for (let j = 0; j < n; j++) norm += q[i * n + j]! ** 2;
      norm = Math.sqrt(norm);
      // A (vanishingly unlikely) near-dependent draw: start again rather than divide by ~0.
      if (norm < 1e-6) ok = false;
      else for (let j = 0; j < n; j++) q[i * n + j] /= norm;
    }
    if (ok) return q;
  }
}
