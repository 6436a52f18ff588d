// The invertible 1x1 convolution's matrix work, two ways: as tf ops (GPU backends: a few small kernels,
// nothing read back) and in float64 JS on the host (wasm, cpu: C is small, and as tf ops the product and
// its gradient were ~40 kernel calls per step). Both compute W = P L U with L = I + strict lower part of
// `lower` and U = strict upper part of `upper` + diag(sign * exp(logs)), and W^{-1} = U^{-1} L^{-1} Pᵀ.
import { tf, type Tensor } from '../tf.js';
import * as la from '../linalg.js';
import type { LuFactors } from './ops.js';

function toF32(m: Float64Array): Float32Array {
  return Float32Array.from(m);
}

const masks = new Map<number, Float32Array>();
/** 1 strictly below the diagonal of a C x C matrix (cached per C; the tensor is made per call). */
function strictLowerMask(c: number): Float32Array {
  let m = masks.get(c);
  if (!m) {
    m = new Float32Array(c * c);
    for (let i = 0; i < c; i++) for (let j = 0; j < i; j++) m[i * c + j] = 1;
    masks.set(c, m);
  }
  return m;
}

/** W (or Wᵀ) with tf ops and tfjs's own gradients. */
export function luWeightByOps(f: LuFactors, transposed: boolean): Tensor {
  const c = f.channels;
  const w = tf.tidy(() => {
    const lmask = tf.tensor2d(strictLowerMask(c), [c, c]);
    const eye = tf.eye(c);
    const l = tf.add(tf.mul(f.lower, lmask), eye);
    const diag = tf.mul(eye, tf.reshape(tf.mul(f.sign, tf.exp(f.logs)), [1, c]));
    const u = tf.add(tf.mul(f.upper, tf.transpose(lmask)), diag);
    return tf.matMul(tf.matMul(f.perm as tf.Tensor2D, l as tf.Tensor2D), u as tf.Tensor2D);
  });
  if (!transposed) return w;
  const t = tf.transpose(w);
  w.dispose();
  return t;
}

/**
 * W^{-1} (or its transpose) on the device. For a strictly triangular (so nilpotent, Nᶜ = 0) N,
 * (I + N)^{-1} = (I - N)(I + N²)(I + N⁴)…: ceil(log2 C) exact-in-theory matmul pairs, no host read.
 */
export function luInverseByOps(f: LuFactors, transposed: boolean): Tensor {
  const c = f.channels;
  return tf.tidy(() => {
    const lmask = tf.tensor2d(strictLowerMask(c), [c, c]);
    const eye = tf.eye(c);
    const unitInverse = (n: Tensor): Tensor => {
      let power = tf.neg(n);
      let out = tf.add(eye, power);
      for (let span = 2; span < c; span *= 2) {
        power = tf.matMul(power as tf.Tensor2D, power as tf.Tensor2D);
        out = tf.matMul(out as tf.Tensor2D, tf.add(eye, power) as tf.Tensor2D);
      }
      return out;
    };
    const lowerInv = unitInverse(tf.mul(f.lower, lmask));
    const diag = tf.mul(f.sign, tf.exp(f.logs));
    // U = D (I + D^{-1} M), so U^{-1} = (I + D^{-1} M)^{-1} D^{-1}.
    const scaledUpper = tf.div(tf.mul(f.upper, tf.transpose(lmask)), tf.reshape(diag, [c, 1]));
    const upperInv = tf.div(unitInverse(scaledUpper), tf.reshape(diag, [1, c]));
    const inv = tf.matMul(tf.matMul(upperInv as tf.Tensor2D, lowerInv as tf.Tensor2D), f.perm as tf.Tensor2D, false, true);
    return transposed ? tf.transpose(inv) : inv;
  });
}

/**
 * W (or Wᵀ) built in float64 JS with a hand-written gradient. With G = dL/dW: dL_lower = (Pᵀ G Uᵀ) on the
 * strict lower part, dL_upper = (Lᵀ Pᵀ G) on the strict upper part, dL_logs = diag(Lᵀ Pᵀ G) * sign * exp(logs).
 */
export function luWeightOnHost(f: LuFactors, transposed: boolean): Tensor {
  const c = f.channels;
  const p = Float64Array.from(f.perm.dataSync());
  const sign = f.sign.dataSync();
  const weight = tf.customGrad(((lowerT: Tensor, upperT: Tensor, logsT: Tensor) => {
    const lv = lowerT.dataSync();
    const uv = upperT.dataSync();
    const logs = logsT.dataSync();
    const l = la.identity(c);
    const u = new Float64Array(c * c);
    for (let i = 0; i < c; i++) {
      for (let j = 0; j < i; j++) l[i * c + j] = lv[i * c + j]!;
      for (let j = i + 1; j < c; j++) u[i * c + j] = uv[i * c + j]!;
      u[i * c + i] = sign[i]! * Math.exp(logs[i]!);
    }
    const pl = la.matmul(p, l, c);
    const w = la.matmul(pl, u, c);
    return {
      value: tf.tensor2d(toF32(transposed ? la.transpose(w, c) : w), [c, c]),
      gradFunc: (dy: Tensor) => {
        const d = Float64Array.from(dy.dataSync());
        const g = transposed ? la.transpose(d, c) : d;
        const ptg = la.matmul(la.transpose(p, c), g, c);
        const dl = la.matmul(ptg, la.transpose(u, c), c);
        const du = la.matmul(la.transpose(l, c), ptg, c);
        const dLower = new Float32Array(c * c);
        const dUpper = new Float32Array(c * c);
        const dLogs = new Float32Array(c);
        for (let i = 0; i < c; i++) {
          for (let j = 0; j < i; j++) dLower[i * c + j] = dl[i * c + j]!;
          for (let j = i + 1; j < c; j++) dUpper[i * c + j] = du[i * c + j]!;
          dLogs[i] = du[i * c + i]! * u[i * c + i]!;
        }
        return [tf.tensor2d(dLower, [c, c]), tf.tensor2d(dUpper, [c, c]), tf.tensor1d(dLogs)];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (a: Tensor, b: Tensor, c: Tensor) => Tensor;
  return weight(f.lower, f.upper, f.logs);
}

/** W^{-1} (or its transpose) in float64 JS: two triangular solves on Pᵀ (sampling only: not differentiable). */
export function luInverseOnHost(f: LuFactors, transposed: boolean): Tensor {
  const c = f.channels;
  const p = f.perm.dataSync();
  const lower = la.identity(c);
  const lv = f.lower.dataSync();
  const upper = new Float64Array(c * c);
  const uv = f.upper.dataSync();
  const logs = f.logs.dataSync();
  const sign = f.sign.dataSync();
  for (let i = 0; i < c; i++) {
    for (let j = 0; j < i; j++) lower[i * c + j] = lv[i * c + j]!;
    for (let j = i + 1; j < c; j++) upper[i * c + j] = uv[i * c + j]!;
  }
  const diag = Float64Array.from(logs, (s, i) => sign[i]! * Math.exp(s));
  const x = new Float64Array(c * c);
  for (let i = 0; i < c; i++) for (let j = 0; j < c; j++) x[i * c + j] = p[j * c + i]!;
  la.solveUnitLower(lower, x, c, c);
  const inv = la.solveUpper(upper, x, c, c, diag);
  return tf.tensor2d(toF32(transposed ? la.transpose(inv, c) : inv), [c, c]);
}

/** log|det W| of a free square matrix with its gradient W^{-T}; both from a float64 LU in JS. */
export const matrixLogAbsDetOnHost = tf.customGrad((...args: Array<Tensor | tf.GradSaveFunc>) => {
  const w = args[0] as Tensor;
  const n = w.shape[0]!;
  if (w.rank !== 2 || w.shape[1] !== n) throw new Error(`logAbsDet needs a square matrix, got [${w.shape}]`);
  const values = Float64Array.from(w.dataSync());
  return {
    value: tf.scalar(la.logAbsDet(values, n)),
    gradFunc: (dy: Tensor) => tf.mul(dy, tf.tensor2d(toF32(la.transpose(la.inverse(values, n), n)), [n, n])),
  };
}) as (w: Tensor) => Tensor;

/** W^{-1} (or its transpose) of a free square matrix, float64 JS. */
export function matrixInverseOnHost(w: Tensor, transposed: boolean): Tensor {
  const n = w.shape[0]!;
  const inv = la.inverse(w.dataSync(), n);
  return tf.tensor2d(toF32(transposed ? la.transpose(inv, n) : inv), [n, n]);
}

/** The stock Ops have no device version of a free matrix's determinant or inverse: say so. */
export function freeMatrixOnDevice(): never {
  throw new Error('an invertible 1x1 conv with model.lu: false takes its log-determinant and inverse on the host (float64 LU); use model.lu: true on GPU backends');
}
