// The Gaussian priors of a multi-scale flow: the top prior (with the class-label term of a conditional
// model) and the prior of each split-off half, conditioned on the half that stays.
import { tf, type Tensor } from '../tf.js';
import type { Rng } from '../rng.js';
import type { ModelConfig } from '../config/schema.js';
import { type NamedVariable, newVariable, prefixed, sumExceptBatch } from './bijector.js';
import { ZeroConv, ZeroDense } from './nets.js';

const LOG_2PI = Math.log(2 * Math.PI);

/** The prior of a split-off latent, given the half that stays (kept). */
export interface SplitLatentPrior {
  /** log p(z | kept) summed per example, [B]. */
  logp(z: Tensor, kept: Tensor): Tensor;
  /** Draws [B, ...latentShape] given kept (B = its batch); all noise from rng (or rng[i] for example i). */
  sample(kept: Tensor, latentShape: number[], temperature: number, rng: Rng | Rng[]): Tensor;
  variables(): NamedVariable[];
  /** Data-dependent initialisation from one batch's latent and kept half; absent when not needed. */
  initialize?(z: Tensor, kept: Tensor): void;
}

/** The prior of the top latent; context is a conditional model's one-hot labels. */
export interface TopLatentPrior {
  readonly shape: number[];
  logp(z: Tensor, context?: Tensor): Tensor;
  sample(n: number, temperature: number, rng: Rng | Rng[], context?: Tensor): Tensor;
  variables(): NamedVariable[];
  /** Data-dependent initialisation from one batch's top latent; absent when not needed. */
  initialize?(z: Tensor): void;
}

export interface GaussianParams {
  mean?: Tensor;
  logsd?: Tensor;
}

/** Diagonal Gaussian log-density summed per example; N(0, I) when mean/logsd are absent. */
export function gaussianLogp(z: Tensor, mean?: Tensor, logsd?: Tensor): Tensor {
  if (!mean || !logsd) return sumExceptBatch(tf.mul(tf.add(tf.square(z), LOG_2PI), -0.5));
  const scaled = tf.mul(tf.square(tf.sub(z, mean)), tf.exp(tf.mul(logsd, -2)));
  return sumExceptBatch(tf.mul(tf.add(tf.add(scaled, tf.mul(logsd, 2)), LOG_2PI), -0.5));
}

/**
 * mean + exp(logsd) * eps with eps ~ N(0, T^2) drawn in JS (same numbers on every backend). With one Rng
 * per example, example i's noise depends only on its own stream, so any subset (a shard) of a sample run
 * reproduces exactly the images the whole run draws.
 */
export function gaussianSample(shape: number[], temperature: number, rng: Rng | Rng[], mean?: Tensor, logsd?: Tensor): Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  let values: Float32Array;
  if (Array.isArray(rng)) {
    const per = size / shape[0]!;
    values = new Float32Array(size);
    rng.forEach((r, i) => values.set(r.normalArray(per, temperature), i * per));
  } else values = rng.normalArray(size, temperature);
  const eps = tf.tensor(values, shape);
  if (!mean || !logsd) return eps;
  return tf.add(mean, tf.mul(tf.exp(logsd), eps));
}

/** model.learn_top as a mode; `true` (older configs and checkpoints) meant one mean/logsd per position. */
export type TopPriorMode = 'channel' | 'position' | false;
export function topPriorMode(learnTop: ModelConfig['learn_top'] | boolean): TopPriorMode {
  return learnTop === true ? 'position' : learnTop;
}

/**
 * The top prior: N(0, I); or learned per position (a free mean/logsd for every h, w, c); or per channel as in
 * openai/glow and ref_glow.py, whose zero-init conv3x3 applied to zeros reduces to its bias, scaled by
 * exp(3 * logscale): mean, logsd = bias * exp(3 * logscale), split in halves. Plus a per-channel term from the
 * one-hot label (its [mean, logsd] are the two interleaved heads of a zero-init dense layer).
 */
export class TopPrior implements TopLatentPrior {
  readonly mean?: tf.Variable;
  readonly logsd?: tf.Variable;
  readonly bias?: tf.Variable;
  readonly logscale?: tf.Variable;
  readonly cond?: ZeroDense;
  constructor(
    readonly shape: number[],
    mode: TopPriorMode,
    numClasses?: number,
  ) {
    const size = shape.reduce((a, b) => a * b, 1);
    const c = shape[shape.length - 1]!;
    if (mode === 'position') {
      this.mean = newVariable(new Float32Array(size), shape);
      this.logsd = newVariable(new Float32Array(size), shape);
    } else if (mode === 'channel') {
      this.bias = newVariable(new Float32Array(2 * c), [2 * c]);
      this.logscale = newVariable(new Float32Array(2 * c), [2 * c]);
    }
    if (numClasses) this.cond = new ZeroDense(numClasses, 2 * c);
  }

  /** The prior's parameters; `onehot` is the context of a conditional model. */
  params(onehot?: Tensor): GaussianParams {
    let mean: Tensor | undefined = this.mean;
    let logsd: Tensor | undefined = this.logsd;
    if (this.bias && this.logscale) {
      // [2C] broadcasts over [B, H, W, C] as [C] halves.
      const c = this.shape[this.shape.length - 1]!;
      const h = tf.mul(this.bias, tf.exp(tf.mul(this.logscale, 3)));
      mean = tf.slice(h, [0], [c]);
      logsd = tf.slice(h, [c], [c]);
    }
    if (this.cond && onehot) {
      const c = this.shape[this.shape.length - 1]!;
      const [m, s] = this.cond.applyHeads(onehot, 2) as [Tensor, Tensor];
      // [B, C] -> [B, 1, 1, C] for images: the label term is the same at every position.
      const perExample = [onehot.shape[0]!, ...this.shape.slice(0, -1).map(() => 1), c];
      const mb = tf.reshape(m, perExample);
      const sb = tf.reshape(s, perExample);
      mean = mean ? tf.add(mean, mb) : mb;
      logsd = logsd ? tf.add(logsd, sb) : sb;
    }
    return { mean, logsd };
  }

  logp(z: Tensor, onehot?: Tensor): Tensor {
    const p = this.params(onehot);
    return gaussianLogp(z, p.mean, p.logsd);
  }

  sample(n: number, temperature: number, rng: Rng | Rng[], onehot?: Tensor): Tensor {
    const p = this.params(onehot);
    return gaussianSample([n, ...this.shape], temperature, rng, p.mean, p.logsd);
  }

  variables(): NamedVariable[] {
    const out: NamedVariable[] = [];
    if (this.mean && this.logsd) out.push(['mean', this.mean], ['logsd', this.logsd]);
    if (this.bias && this.logscale) out.push(['bias', this.bias], ['logscale', this.logscale]);
    if (this.cond) out.push(...prefixed('cond', this.cond.variables()));
    return out;
  }
}

/** Prior of the split-off half: N(mean, exp(logsd)) with (mean, logsd) = the two interleaved heads of a zero-init conv3x3(z1), or N(0, I). */
export class SplitPrior implements SplitLatentPrior {
  readonly conv?: ZeroConv;
  constructor(keepChannels: number, splitChannels: number, learned: boolean) {
    if (learned) this.conv = new ZeroConv(keepChannels, 2 * splitChannels, 3);
  }
  params(z1: Tensor): GaussianParams {
    if (!this.conv) return {};
    const [mean, logsd] = this.conv.applyHeads(z1, 2) as [Tensor, Tensor];
    return { mean, logsd };
  }
  logp(z2: Tensor, z1: Tensor): Tensor {
    const p = this.params(z1);
    return gaussianLogp(z2, p.mean, p.logsd);
  }
  sample(z1: Tensor, latentShape: number[], temperature: number, rng: Rng | Rng[]): Tensor {
    const p = this.params(z1);
    return gaussianSample([z1.shape[0]!, ...latentShape], temperature, rng, p.mean, p.logsd);
  }
  variables(): NamedVariable[] {
    return this.conv ? prefixed('prior', this.conv.variables()) : [];
  }
}
