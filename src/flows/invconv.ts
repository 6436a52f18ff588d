// Glow's invertible 1x1 convolution: a learned channel mixing with a cheap log-determinant, on
// NHWC images and [B, D] vectors alike (the last axis is the channel axis).
import { tf, type Tensor } from '../tf.js';
import type { Rng } from '../rng.js';
import { ops, type LuFactors } from '../kernels/index.js';
import { type Bijector, type ForwardResult, type InverseResult, type NamedVariable, newVariable, perExample, sameWithChannels, spatialSize } from './bijector.js';
import * as la from '../linalg.js';

/**
 * Invertible 1x1 convolution (Glow): y = x W^T at every position, as one [B*H*W, C] matmul.
 * lu: W = P L (U + diag(sign * exp(logs))) so log|det W| = sum(logs) is free; otherwise W is a free
 * matrix whose log|det| (and its gradient W^{-T}) comes from a float64 LU in JS. Building W, W^{-1} and
 * those determinants is the backend's Ops' (src/kernels/lu.ts): tf ops on a GPU, float64 JS on the CPU.
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

  constructor(
    readonly channels: number,
    rng: Rng,
    opts: { lu?: boolean; name?: string } = {},
  ) {
    const c = channels;
    this.lu = opts.lu ?? true;
    this.name = opts.name ?? 'invconv';
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

  /** The LU factors as the backend's Ops take them. */
  private factors(): LuFactors {
    return { channels: this.channels, perm: this.perm!, sign: this.sign!, lower: this.lower!, upper: this.upper!, logs: this.logs! };
  }

  /** W as a new tensor (differentiable in the trainable parameters; the caller may dispose it). */
  weight(): Tensor {
    if (!this.lu) return tf.clone(this.weightVar!);
    return ops().luWeight(this.factors(), false);
  }

  /** log|det W| as a scalar tensor: sum(logs) with LU, else a float64 LU of the free matrix (the Ops'). */
  logAbsDet(): Tensor {
    if (this.lu) return tf.sum(this.logs!);
    return ops().matrixLogAbsDet(this.weightVar!);
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
    const weightT = this.lu ? ops().luWeight(this.factors(), true) : tf.transpose(this.weightVar!);
    return { y: this.apply(x, weightT), logdet: this.logdet(x) };
  }

  inverse(y: Tensor): InverseResult {
    const winvT = this.lu ? ops().luInverse(this.factors(), true) : ops().matrixInverse(this.weightVar!, true);
    return { x: this.apply(y, winvT), logdet: tf.neg(this.logdet(y)) };
  }

  variables(): NamedVariable[] {
    return this.vars;
  }
}
