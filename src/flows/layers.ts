// The parameter-light invertible layers: squeeze, ActNorm, fixed channel permutations and NICE's
// diagonal scaling (the invertible 1x1 convolution is in invconv.ts). Each works on NHWC images and,
// except Squeeze, on [B, D] vectors too (the last axis is the channel axis).
import { tf, type Tensor } from '../tf.js';
import type { Rng } from '../rng.js';
import { ops } from '../kernels/index.js';
import {
  type Bijector,
  type ForwardResult,
  type InverseResult,
  type NamedVariable,
  newVariable,
  perExample,
  sameAs,
  sameWithChannels,
  spatialSize,
} from './bijector.js';

/** 2x2 space-to-depth: [B,H,W,C] -> [B,H/2,W/2,4C], channel order (c, dy, dx) as openai/glow. */
export class Squeeze implements Bijector {
  constructor(readonly name = 'squeeze') {}

  outputShape(shape: readonly number[]): number[] {
    const [h, w, c] = shape as [number, number, number];
    if (shape.length !== 3 || h % 2 !== 0 || w % 2 !== 0) throw new Error(`squeeze needs [H,W,C] with even H and W, got [${shape}]`);
    return [h / 2, w / 2, c * 4];
  }

  forward(x: Tensor): ForwardResult {
    const [b, h, w, c] = x.shape as [number, number, number, number];
    if (x.rank !== 4 || h % 2 !== 0 || w % 2 !== 0) {
      throw new Error(`squeeze needs [B,H,W,C] with even H and W, got [${x.shape}]`);
    }
    // Rank 5 (batch folded into rows) keeps the transpose within every backend's fast kernels.
    const t = tf.reshape(x, [b * (h / 2), 2, w / 2, 2, c]);
    const y = tf.reshape(tf.transpose(t, [0, 2, 4, 1, 3]), [b, h / 2, w / 2, c * 4]);
    return { y, logdet: tf.zeros([b]) };
  }

  inverse(y: Tensor): InverseResult {
    const [b, h, w, c4] = y.shape as [number, number, number, number];
    if (y.rank !== 4 || c4 % 4 !== 0) throw new Error(`unsqueeze needs [B,H,W,4C], got [${y.shape}]`);
    const c = c4 / 4;
    const t = tf.reshape(y, [b * h, w, c, 2, 2]);
    const x = tf.reshape(tf.transpose(t, [0, 3, 1, 4, 2]), [b, h * 2, w * 2, c]);
    return { x, logdet: tf.zeros([b]) };
  }

  variables(): NamedVariable[] {
    return [];
  }
}

/** Per-channel affine normalisation with data-dependent initialisation (Glow). */
export class ActNorm implements Bijector {
  readonly loc: tf.Variable;
  readonly logs: tf.Variable;
  /** 0 until initialize() ran; a checkpointed state variable so loading a model never re-initialises it. */
  readonly initializedFlag: tf.Variable;

  constructor(
    readonly channels: number,
    readonly name = 'actnorm',
  ) {
    this.loc = newVariable(new Float32Array(channels), [channels]);
    this.logs = newVariable(new Float32Array(channels), [channels]);
    this.initializedFlag = newVariable([0], [], false);
  }

  get isInitialized(): boolean {
    return this.initializedFlag.dataSync()[0] === 1;
  }

  /**
   * loc = -mean, logs = -log(std + 1e-6) over every axis but the channel one; a no-op once done. The
   * flag gates the assignment on the device (v·1 + w·0 = v exactly), so nothing is read back to the host.
   */
  initialize(x: Tensor): void {
    tf.tidy(() => {
      const axes = Array.from({ length: x.rank - 1 }, (_, i) => i);
      const { mean, variance } = tf.moments(x, axes);
      const done = this.initializedFlag;
      const fresh = tf.sub(1, done);
      const keepOr = (old: Tensor, next: Tensor) => tf.add(tf.mul(old, done), tf.mul(next, fresh));
      this.loc.assign(keepOr(this.loc, tf.neg(mean)));
      this.logs.assign(keepOr(this.logs, tf.neg(tf.log(tf.add(tf.sqrt(variance), 1e-6)))));
      this.initializedFlag.assign(tf.scalar(1));
    });
  }

  outputShape(shape: readonly number[]): number[] {
    return sameWithChannels(shape, this.channels);
  }

  private logdet(x: Tensor): Tensor {
    return perExample(tf.mul(tf.sum(this.logs), spatialSize(x.shape)), x.shape[0]!);
  }

  forward(x: Tensor): ForwardResult {
    return { y: tf.mul(tf.add(x, this.loc), tf.exp(this.logs)), logdet: this.logdet(x) };
  }

  inverse(y: Tensor): InverseResult {
    return { x: tf.sub(tf.mul(y, tf.exp(tf.neg(this.logs))), this.loc), logdet: tf.neg(this.logdet(y)) };
  }

  variables(): NamedVariable[] {
    return [
      ['loc', this.loc],
      ['logs', this.logs],
      ['initialized', this.initializedFlag],
    ];
  }
}


/** Reverses the channel (last) axis (RealNVP/NICE/Glow's 'reverse'). */
export class ReversePermutation implements Bijector {
  constructor(readonly name = 'permute') {}
  outputShape(shape: readonly number[]): number[] {
    return [...shape];
  }
  forward(x: Tensor): ForwardResult {
    return { y: tf.reverse(x, -1), logdet: tf.zeros([x.shape[0]!]) };
  }
  inverse(y: Tensor): InverseResult {
    return { x: tf.reverse(y, -1), logdet: tf.zeros([y.shape[0]!]) };
  }
  variables(): NamedVariable[] {
    return [];
  }
}

/**
 * A fixed seeded shuffle of the channel axis: y[..., j] = x[..., perm[j]]. Applied as a matmul
 * with the 0/1 permutation matrix (exact in float32) because gather's gradient has no wasm kernel.
 * The permutation is a state variable so a checkpoint carries it.
 */
export class ShufflePermutation implements Bijector {
  private readonly perm: tf.Variable;
  constructor(
    readonly channels: number,
    rng: Rng,
    readonly name = 'permute',
  ) {
    this.perm = newVariable(rng.permutation(channels), [channels], false);
  }
  outputShape(shape: readonly number[]): number[] {
    return sameWithChannels(shape, this.channels);
  }
  /** M[j, perm[j]] = 1, so y = x M^T and x = y M. */
  private matrix(): Tensor {
    return tf.cast(tf.oneHot(tf.cast(this.perm, 'int32'), this.channels), 'float32');
  }
  private apply(x: Tensor, m: Tensor): Tensor {
    const c = this.channels;
    return tf.reshape(ops().matMul(tf.reshape(x, [x.size / c, c]), m), x.shape);
  }
  forward(x: Tensor): ForwardResult {
    return { y: this.apply(x, tf.transpose(this.matrix())), logdet: tf.zeros([x.shape[0]!]) };
  }
  inverse(y: Tensor): InverseResult {
    return { x: this.apply(y, this.matrix()), logdet: tf.zeros([y.shape[0]!]) };
  }
  variables(): NamedVariable[] {
    return [['perm', this.perm]];
  }
}

/** NICE's learned diagonal scaling: y = x * exp(s) with one log-scale per dimension of an example. */
export class DiagonalScale implements Bijector {
  readonly logscale: tf.Variable;
  constructor(
    readonly shape: number[],
    readonly name = 'scale',
  ) {
    this.logscale = newVariable(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape);
  }
  outputShape(shape: readonly number[]): number[] {
    return sameAs(shape, this.shape);
  }
  private logdet(batch: number): Tensor {
    return perExample(tf.sum(this.logscale), batch);
  }
  forward(x: Tensor): ForwardResult {
    return { y: tf.mul(x, tf.exp(this.logscale)), logdet: this.logdet(x.shape[0]!) };
  }
  inverse(y: Tensor): InverseResult {
    return { x: tf.mul(y, tf.exp(tf.neg(this.logscale))), logdet: tf.neg(this.logdet(y.shape[0]!)) };
  }
  variables(): NamedVariable[] {
    return [['logscale', this.logscale]];
  }
}
