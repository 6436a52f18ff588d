// Integer discrete flows (Hoogeboom et al. 2019): the pieces that make a flow map the data's bins to
// integers exactly. GridSnap maps each bin to its integer point (the data grid, step 1/bins), couplings
// round their translation to that grid (straight-through gradient), and discretised logistic mixtures
// give every latent integer a probability mass, so log p is an exact code length.
import { tf, type Tensor } from '../tf.js';
import type { Rng } from '../rng.js';
import { type Bijector, type ForwardResult, type InverseResult, type NamedVariable, perExample, sumExceptBatch } from './bijector.js';
import { ops } from '../kernels/index.js';

/**
 * round(t * bins) / bins with the straight-through gradient (IDF): the identity's gradient, since the
 * rounding's own is zero almost everywhere.
 */
export function roundToGrid(t: Tensor, bins: number): Tensor {
  const f = tf.customGrad(((x: Tensor) => ({ value: tf.div(tf.round(tf.mul(x, bins)), bins), gradFunc: (dy: Tensor) => dy })) as never);
  return f(t) as Tensor;
}

/**
 * The first layer of an integer flow: a model input x̃ in bin k (x̃ ∈ [k/bins - 0.5, (k+1)/bins - 0.5))
 * -> the grid point k/bins - 0.5; inverse: a grid point -> its bin's centre, which is what the data
 * pipeline gives without dequantisation noise and what toPixels maps back to the byte. log|det| is
 * D·ln(bins): it turns the priors' probability masses into the density of the piecewise-constant
 * distribution they define, so log p(x̃) - D·ln(bins) = log P(bins) and bits/dim are the code length.
 */
export class GridSnap implements Bijector {
  constructor(
    readonly bins: number,
    readonly name = 'snap',
  ) {}
  outputShape(shape: readonly number[]): number[] {
    return [...shape];
  }
  private logdet(x: Tensor): Tensor {
    const dims = x.size / x.shape[0]!;
    return perExample(tf.scalar(dims * Math.log(this.bins)), x.shape[0]!);
  }
  forward(x: Tensor): ForwardResult {
    return { y: tf.sub(tf.div(tf.floor(tf.mul(tf.add(x, 0.5), this.bins)), this.bins), 0.5), logdet: this.logdet(x) };
  }
  inverse(y: Tensor): InverseResult {
    return { x: tf.add(y, 0.5 / this.bins), logdet: tf.neg(this.logdet(y)) };
  }
  variables(): NamedVariable[] {
    return [];
  }
}

/** A discretised logistic mixture per latent value: [..., K] logits, means and log-scales, in data units (bins of 1/bins). */
export interface Mixture {
  logits: Tensor;
  means: Tensor;
  logScales: Tensor;
}

/** Offset on the networks' log-scale output: a zero-initialised head starts at s = e^-2 ≈ 0.14, about the data's spread. */
export const LOG_SCALE_OFFSET = -2;

/** [..., 3K] network heads -> the mixture (contiguous K-blocks: logits, means, raw log-scales). */
export function mixtureFromHeads(h: Tensor, components: number): Mixture {
  const k = components;
  // The Ops' channel slices: wasm's SplitV of a rank-5 tensor costs a fifth of a training step.
  const part = (i: number) => ops().sliceChannels(h, i * k, k);
  return { logits: part(0), means: tf.add(part(1), componentOffsets(k)), logScales: tf.add(part(2), LOG_SCALE_OFFSET) };
}

/**
 * Fixed offsets of the K components' means, evenly over [-0.25, 0.25]: zero-initialised heads would
 * otherwise give every component the same parameters and the same gradient forever (one logistic, K times).
 */
export function componentOffsets(k: number): Tensor {
  return tf.tensor1d(Array.from({ length: k }, (_, i) => (k === 1 ? 0 : -0.25 + (0.5 * i) / (k - 1))));
}

/**
 * log Σ exp over the last axis with its gradient as the softmax, given by hand: tf.logSumExp's own
 * goes through its max (an Equal mask per call), a tenth of the backward pass here.
 */
const logSumExpLast = tf.customGrad(((x: Tensor, save: (t: Tensor[]) => void) => {
  const value = tf.logSumExp(x, -1);
  save([x, value]);
  const gradFunc = (dy: Tensor, [input, lse]: Tensor[]) => tf.mul(tf.expandDims(dy, -1), tf.exp(tf.sub(input!, tf.expandDims(lse!, -1))));
  return { value, gradFunc };
}) as never) as (x: Tensor) => Tensor;

/**
 * log(1 - e^-d) for d > 0, accurate at both ends: float32 1 - e^-d loses log(d)'s digits for small d,
 * so below 1e-2 the series log d - d/2 + d²/24 (error ~d^4) stands in. Its gradient 1/(e^d - 1) is
 * given by hand (series 1/d - 1/2 + d/12 below 1e-2): the branch's comparison has no gradient in tfjs.
 */
const log1mExp = tf.customGrad(((d: Tensor, save: (t: Tensor[]) => void) => {
  save([d]);
  const value = tf.where(tf.less(d, 1e-2), tf.add(tf.sub(tf.log(d), tf.div(d, 2)), tf.div(tf.square(d), 24)), tf.log(tf.sub(1, tf.exp(tf.neg(d)))));
  const gradFunc = (dy: Tensor, [x]: Tensor[]) =>
    tf.mul(dy, tf.where(tf.less(x!, 1e-2), tf.add(tf.sub(tf.reciprocal(x!), 0.5), tf.div(x!, 12)), tf.reciprocal(tf.sub(tf.exp(x!), 1))));
  return { value, gradFunc };
}) as never) as (d: Tensor) => Tensor;

/**
 * log P(z) summed per example for z on the grid (step 1/bins), each value under its mixture.
 * One component's bin mass is σ(a) - σ(b) with a, b the bin's standardised edges, written as
 * log σ(a) + log σ(-b) + log(1 - e^(b-a)): no cancellation in either tail.
 */
export function mixtureLogp(z: Tensor, m: Mixture, bins: number): Tensor {
  const zk = tf.expandDims(z, -1);
  const invScale = tf.exp(tf.neg(m.logScales));
  const centred = tf.sub(zk, m.means);
  const a = tf.mul(tf.add(centred, 0.5 / bins), invScale);
  const b = tf.mul(tf.sub(centred, 0.5 / bins), invScale);
  const logMass = tf.add(tf.add(tf.neg(tf.softplus(tf.neg(a))), tf.neg(tf.softplus(b))), log1mExp(tf.div(invScale, bins)));
  const logWeights = tf.sub(m.logits, tf.expandDims(logSumExpLast(m.logits), -1));
  return sumExceptBatch(logSumExpLast(tf.add(logWeights, logMass)));
}

/**
 * Draws grid values from the mixtures ([..., K] params -> [...]): a component by the Gumbel-max trick,
 * then a logistic value with its scale times `temperature`, rounded to the grid. All noise comes from
 * rng (or rng[i] for example i, as the Gaussian priors draw it).
 */
export function mixtureSample(m: Mixture, shape: number[], temperature: number, bins: number, rng: Rng | Rng[]): Tensor {
  const k = m.logits.shape[m.logits.rank - 1]!;
  const size = shape.reduce((a, b) => a * b, 1);
  const u = new Float32Array(size * (k + 1));
  const per = u.length / shape[0]!;
  const streams = Array.isArray(rng) ? rng : null;
  for (let i = 0; i < u.length; i++) {
    const r = streams ? streams[Math.floor(i / per)]! : (rng as Rng);
    // Open interval (0, 1): both logs below stay finite.
    u[i] = Math.min(Math.max(r.next(), 1e-7), 1 - 1e-7);
  }
  const noise = tf.tensor(u, [...shape, k + 1]);
  const uComponent = ops().sliceChannels(noise, 0, k);
  const uValue = ops().sliceChannels(noise, k, 1);
  const gumbel = tf.neg(tf.log(tf.neg(tf.log(uComponent))));
  const pick = tf.oneHot(tf.argMax(tf.add(m.logits, gumbel), -1), k);
  const mean = tf.sum(tf.mul(pick, m.means), -1);
  const logScale = tf.sum(tf.mul(pick, m.logScales), -1);
  const v = tf.squeeze(uValue, [shape.length]);
  const logistic = tf.sub(tf.log(v), tf.log(tf.sub(1, v)));
  return roundToGrid(tf.add(mean, tf.mul(tf.mul(tf.exp(logScale), temperature), logistic)), bins);
}
