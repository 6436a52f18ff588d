// Glow's invertible 1x1 convolution: a learned channel mixing with a cheap log-determinant, on
// NHWC images and [B, D] vectors alike (the last axis is the channel axis).
import { tf, type Tensor } from '../tf.js';
import type { Rng } from '../rng.js';
import { ops } from '../kernels/index.js';
import { type Bijector, type ForwardResult, type InverseResult, type NamedVariable, newVariable, perExample, sameWithChannels, spatialSize } from './bijector.js';
import * as la from './linalg.js';

function toF32(m: Float64Array): Float32Array {
  return Float32Array.from(m);
}

/**
 * Invertible 1x1 convolution (Glow): y = x W^T at every position, as one [B*H*W, C] matmul.
 * lu: W = P L (U + diag(sign * exp(logs))) so log|det W| = sum(logs) is free; otherwise W is a free
 * matrix whose log|det| (and its gradient W^{-T}) comes from a float64 LU in JS.
 */
export class InvConv1x1 implements Bijector {
  readonly lu: boolean;
  readonly name: string;
  private readonly vars: NamedVariable[];
  // LU parameterisation
  private lower?: tf.Variable;
  private upper?: tf.Variable;
  private logs?: tf.Variable;
  private perm?: tf.Variable;
  private sign?: tf.Variable;
  // free matrix
  private weightVar?: tf.Variable;
  private readonly strictLowerMask: Float32Array;

  constructor(
    readonly channels: number,
    rng: Rng,
    opts: { lu?: boolean; name?: string } = {},
  ) {
    const c = channels;
    this.lu = opts.lu ?? true;
    this.name = opts.name ?? 'invconv';
    this.strictLowerMask = new Float32Array(c * c);
    for (let i = 0; i < c; i++) for (let j = 0; j < i; j++) this.strictLowerMask[i * c + j] = 1;
    const q = la.randomOrthogonal(c, rng);
    if (!this.lu) {
      this.weightVar = newVariable(q, [c, c]);
      this.vars = [['weight', this.weightVar]];
      return;
    }
    // Q = P L U from P_r Q = L U (row i of P_r Q is row perm[i] of Q), so P = P_r^T: P[perm[i], i] = 1.
    const f = la.luDecompose(q, c);
    const p = new Float32Array(c * c);
    const lower = new Float32Array(c * c);
    const upper = new Float32Array(c * c);
    const logs = new Float32Array(c);
    const sign = new Float32Array(c);
    for (let i = 0; i < c; i++) {
      p[f.perm[i]! * c + i] = 1;
      for (let j = 0; j < c; j++) {
        if (j < i) lower[i * c + j] = f.lu[i * c + j]!;
        else if (j > i) upper[i * c + j] = f.lu[i * c + j]!;
      }
      const d = f.lu[i * c + i]!;
      sign[i] = d < 0 ? -1 : 1;
      logs[i] = Math.log(Math.abs(d));
    }
    this.perm = newVariable(p, [c, c], false);
    this.sign = newVariable(sign, [c], false);
    this.lower = newVariable(lower, [c, c]);
    this.upper = newVariable(upper, [c, c]);
    this.logs = newVariable(logs, [c]);
    this.vars = [
      ['p', this.perm],
      ['sign', this.sign],
      ['lower', this.lower],
      ['upper', this.upper],
      ['logs', this.logs],
    ];
  }

  /** W as a new tensor (differentiable in the trainable parameters; the caller may dispose it). */
  weight(): Tensor {
    if (!this.lu) return tf.clone(this.weightVar!);
    if (!ops().hostMemory) return this.luWeightByOps();
    return this.luWeight(false);
  }

  /** W = P L U with tf ops and tfjs's own gradients (the reference for the fast path). */
  private luWeightByOps(): Tensor {
    const c = this.channels;
    const lmask = tf.tensor2d(this.strictLowerMask, [c, c]);
    const eye = tf.eye(c);
    const l = tf.add(tf.mul(this.lower!, lmask), eye);
    const diag = tf.mul(eye, tf.reshape(tf.mul(this.sign!, tf.exp(this.logs!)), [1, c]));
    const u = tf.add(tf.mul(this.upper!, tf.transpose(lmask)), diag);
    return ops().matMul(ops().matMul(this.perm!, l), u);
  }

  /**
   * W = P L U (or Wᵀ) from the LU parameters, built in float64 JS with a hand-written gradient:
   * C is small, and as tf ops the product and its gradient were ~40 kernel calls per step.
   * With G = dL/dW: dL_lower = (Pᵀ G Uᵀ) on the strict lower part, dL_upper = (Lᵀ Pᵀ G) on the strict
   * upper part, dL_logs = diag(Lᵀ Pᵀ G) * sign * exp(logs).
   */
  private luWeight(transposed: boolean): Tensor {
    const c = this.channels;
    const p = Float64Array.from(this.perm!.dataSync());
    const sign = this.sign!.dataSync();
    const f = tf.customGrad(((lowerT: Tensor, upperT: Tensor, logsT: Tensor) => {
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
    return f(this.lower!, this.upper!, this.logs!);
  }

  /** log|det W| as a scalar tensor. */
  logAbsDet(): Tensor {
    if (this.lu) return tf.sum(this.logs!);
    if (!ops().hostMemory) {
      throw new Error(`${this.name}: an invertible 1x1 conv with model.lu: false takes its log-determinant on the host; use model.lu: true on GPU backends`);
    }
    return logAbsDetWithGrad(this.weightVar!);
  }

  /**
   * W^{-1} on the device, for backends whose tensors are not in host memory. From the LU factors:
   * W^{-1} = U^{-1} L^{-1} Pᵀ, and for a strictly triangular (so nilpotent, Nᶜ = 0) N,
   * (I + N)^{-1} = (I - N)(I + N²)(I + N⁴)…: ceil(log2 C) exact-in-theory matmul pairs, no host read.
   */
  private inverseWeightOnDevice(): Tensor {
    if (!this.lu) {
      throw new Error(`${this.name}: an invertible 1x1 conv with model.lu: false inverts its weight on the host; use model.lu: true on GPU backends`);
    }
    const c = this.channels;
    return tf.tidy(() => {
      const lmask = tf.tensor2d(this.strictLowerMask, [c, c]);
      const eye = tf.eye(c);
      const unitInverse = (n: Tensor): Tensor => {
        // (I + N)^{-1} = Π_k (I + (-N)^(2^k)) for 2^k < C.
        let power = tf.neg(n);
        let out = tf.add(eye, power);
        for (let span = 2; span < c; span *= 2) {
          power = tf.matMul(power as tf.Tensor2D, power as tf.Tensor2D);
          out = tf.matMul(out as tf.Tensor2D, tf.add(eye, power) as tf.Tensor2D);
        }
        return out;
      };
      const lowerInv = unitInverse(tf.mul(this.lower!, lmask));
      const diag = tf.mul(this.sign!, tf.exp(this.logs!));
      // U = D (I + D^{-1} M), so U^{-1} = (I + D^{-1} M)^{-1} D^{-1}.
      const scaledUpper = tf.div(tf.mul(this.upper!, tf.transpose(lmask)), tf.reshape(diag, [c, 1]));
      const upperInv = tf.div(unitInverse(scaledUpper), tf.reshape(diag, [1, c]));
      return tf.matMul(tf.matMul(upperInv as tf.Tensor2D, lowerInv as tf.Tensor2D), this.perm! as tf.Tensor2D, false, true);
    });
  }

  /** W^{-1} in float64 JS (sampling only: not differentiable). */
  inverseWeight(): Float64Array {
    const c = this.channels;
    if (!this.lu) return la.inverse(this.weightVar!.dataSync(), c);
    const p = this.perm!.dataSync();
    const lower = la.identity(c);
    const lv = this.lower!.dataSync();
    const upper = new Float64Array(c * c);
    const uv = this.upper!.dataSync();
    const logs = this.logs!.dataSync();
    const sign = this.sign!.dataSync();
    for (let i = 0; i < c; i++) {
      for (let j = 0; j < i; j++) lower[i * c + j] = lv[i * c + j]!;
      for (let j = i + 1; j < c; j++) upper[i * c + j] = uv[i * c + j]!;
    }
    const diag = Float64Array.from(logs, (s, i) => sign[i]! * Math.exp(s));
    // W^{-1} = U'^{-1} L^{-1} P^T, with two triangular solves on P^T.
    const x = new Float64Array(c * c);
    for (let i = 0; i < c; i++) for (let j = 0; j < c; j++) x[i * c + j] = p[j * c + i]!;
    la.solveUnitLower(lower, x, c, c);
    return la.solveUpper(upper, x, c, c, diag);
  }

  private apply(x: Tensor, weightT: Tensor): Tensor {
    const c = this.channels;
    if (x.shape[x.rank - 1] !== c) throw new Error(`${this.name}: expected ${c} channels, got [${x.shape}]`);
    const flat = tf.reshape(x, [x.size / c, c]);
    return tf.reshape(ops().matMul(flat, weightT), x.shape);
  }

  private logdet(x: Tensor): Tensor {
    return perExample(tf.mul(this.logAbsDet(), spatialSize(x.shape)), x.shape[0]!);
  }

  outputShape(shape: readonly number[]): number[] {
    return sameWithChannels(shape, this.channels);
  }

  forward(x: Tensor): ForwardResult {
    const weightT = this.lu && ops().hostMemory ? this.luWeight(true) : tf.transpose(this.weight());
    return { y: this.apply(x, weightT), logdet: this.logdet(x) };
  }

  inverse(y: Tensor): InverseResult {
    const winvT = ops().hostMemory
      ? tf.tensor2d(toF32(la.transpose(this.inverseWeight(), this.channels)), [this.channels, this.channels])
      : tf.transpose(this.inverseWeightOnDevice());
    return { x: this.apply(y, winvT), logdet: tf.neg(this.logdet(y)) };
  }

  variables(): NamedVariable[] {
    return this.vars;
  }
}

/** log|det W| of a square matrix with its gradient W^{-T}; both from a float64 LU in JS. */
export const logAbsDetWithGrad = tf.customGrad((...args: Array<Tensor | tf.GradSaveFunc>) => {
  const w = args[0] as Tensor;
  const n = w.shape[0]!;
  if (w.rank !== 2 || w.shape[1] !== n) throw new Error(`logAbsDet needs a square matrix, got [${w.shape}]`);
  const values = Float64Array.from(w.dataSync());
  return {
    value: tf.scalar(la.logAbsDet(values, n)),
    gradFunc: (dy: Tensor) => tf.mul(dy, tf.tensor2d(toF32(la.transpose(la.inverse(values, n), n)), [n, n])),
  };
});
