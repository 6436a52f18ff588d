// The priors of an integer flow (IDF): discretised logistic mixtures over the latents' grid values. A
// split-off half is conditioned on the half that stays through a coupling-style network (IDF's
// factor-out); the top latent has free per-position (or per-channel) mixture parameters. `mixture`
// exposes the parameters themselves, which is what an entropy coder reads.
import { tf, type Tensor } from '../tf.js';
import type { Rng } from '../rng.js';
import { type NamedVariable, newVariable, prefixed } from './bijector.js';
import { type Mixture, LOG_SCALE_OFFSET, componentOffsets, mixtureFromHeads, mixtureLogp, mixtureSample } from './discrete.js';
import type { SplitLatentPrior, TopLatentPrior } from './priors.js';
import type { ConvNet } from './nets.js';

/**
 * The data-dependent start of a mixture (an integer flow has no ActNorm to standardise its latents, so its
 * priors meet the data instead): given per-value mean and std over one batch, equal weights, the K means
 * spread over ±0.5 std around the mean (undoing mixtureFromHeads' fixed offsets), and the logistic scale
 * of that std (s = std·√3/π, at least half a bin). Returns the [..., 3K] heads mixtureFromHeads reads.
 */
function headsFor(mean: Tensor, std: Tensor, k: number, bins: number): Tensor {
  const offsets = componentOffsets(k);
  const spread = tf.mul(tf.expandDims(std, -1), tf.mul(offsets, 2));
  const means = tf.sub(tf.add(tf.expandDims(mean, -1), spread), offsets);
  const scale = tf.maximum(tf.mul(std, Math.sqrt(3) / Math.PI), 0.5 / bins);
  const logScales = tf.sub(tf.log(scale), LOG_SCALE_OFFSET);
  const shape = [...mean.shape, k];
  return tf.concat([tf.zeros(shape), means, tf.broadcastTo(tf.expandDims(logScales, -1), shape)], -1);
}

/** Assigns `next` to v unless the flag says it was done; flag := 1. Gated on the device like ActNorm's init. */
function assignOnce(v: tf.Variable, next: Tensor, flag: tf.Variable): void {
  tf.tidy(() => {
    v.assign(tf.add(tf.mul(v, flag), tf.mul(next, tf.sub(1, flag))));
    flag.assign(tf.scalar(1));
  });
}

/** A prior whose parameters an entropy coder can read: the mixture of every value of the latent. */
export interface MixturePrior {
  readonly components: number;
  readonly bins: number;
}

/** p(z2 | z1): the network maps the kept half to 3K heads per split-off channel (logits, means, log-scales). */
export class MixtureSplitPrior implements SplitLatentPrior, MixturePrior {
  constructor(
    readonly net: ConvNet,
    readonly latentChannels: number,
    readonly components: number,
    readonly bins: number,
  ) {}

  /** [B, H, W, C2, K] parameters from the kept half [B, H, W, C1]. */
  mixture(kept: Tensor): Mixture {
    const h = this.net.apply(kept);
    const k = this.components;
    return mixtureFromHeads(tf.reshape(h, [...h.shape.slice(0, -1), this.latentChannels, 3 * k]), k);
  }

  logp(z: Tensor, kept: Tensor): Tensor {
    return mixtureLogp(z, this.mixture(kept), this.bins);
  }

  sample(kept: Tensor, latentShape: number[], temperature: number, rng: Rng | Rng[]): Tensor {
    return mixtureSample(this.mixture(kept), [kept.shape[0]!, ...latentShape], temperature, this.bins, rng);
  }

  /**
   * Per channel of the latent, the mixture that fits it over one batch, as the output conv's bias (its
   * weights are zero at the start, so the bias alone is the prior until training moves them).
   */
  initialize(z: Tensor): void {
    const out = this.net.out;
    tf.tidy(() => {
      const { mean, variance } = tf.moments(z, [0, 1, 2]);
      const heads = headsFor(mean, tf.sqrt(variance), this.components, this.bins);
      // The conv's output is scaled by exp(3 logscale), 1 at the start.
      assignOnce(out.bias, tf.div(tf.reshape(heads, [-1]), tf.exp(tf.mul(out.logscale, 3))), this.initializedFlag);
    });
  }

  readonly initializedFlag = newVariable([0], [], false);

  variables(): NamedVariable[] {
    return [...prefixed('prior', this.net.variables()), ['initialized', this.initializedFlag]];
  }
}

/**
 * The free top-prior parameters are stored divided by this. Adam moves a parameter by about lr per step, so
 * stored as is, a mean needs ~0.5/lr steps to reach where the data are (1.5e-3: 300 steps) and the top latent
 * is half the dimensions; the gain makes that 30x faster. Tiny idf (L2 K2 W32) on embedded MNIST, test bpd at
 * step 150, lr 2e-3: gain 1: 6.80, 10: 4.52, 30: 4.09, 100: 5.28.
 */
const TOP_PRIOR_GAIN = 30;

/** p(z_top): free mixture parameters per position and channel ('position') or per channel ('channel'), zero-initialised. */
export class MixtureTopPrior implements TopLatentPrior, MixturePrior {
  readonly heads: tf.Variable;
  constructor(
    readonly shape: number[],
    readonly mode: 'position' | 'channel',
    readonly components: number,
    readonly bins: number,
  ) {
    const c = shape[shape.length - 1]!;
    const paramShape = mode === 'position' ? [...shape, 3 * components] : [c, 3 * components];
    this.heads = newVariable(new Float32Array(paramShape.reduce((a, b) => a * b, 1)), paramShape);
  }

  /**
   * The parameters, [1, ...shape, K] (or [C, K]) for broadcasting, or [batch, ...shape, K] when batch is
   * given (what a coder reads; tfjs has no gradient for a rank-5 broadcast, so training never asks for it).
   */
  mixture(batch?: number): Mixture {
    let h: Tensor = this.mode === 'position' ? tf.expandDims(this.heads, 0) : this.heads;
    h = tf.mul(h, TOP_PRIOR_GAIN);
    if (batch !== undefined) h = tf.broadcastTo(h, [batch, ...this.shape, 3 * this.components]);
    return mixtureFromHeads(h, this.components);
  }

  logp(z: Tensor): Tensor {
    return mixtureLogp(z, this.mixture(), this.bins);
  }

  sample(n: number, temperature: number, rng: Rng | Rng[]): Tensor {
    return mixtureSample(this.mixture(), [n, ...this.shape], temperature, this.bins, rng);
  }

  readonly initializedFlag = newVariable([0], [], false);

  /** The mixture that fits one batch's top latent, per position (or per channel). */
  initialize(z: Tensor): void {
    tf.tidy(() => {
      const { mean, variance } = tf.moments(z, this.mode === 'position' ? [0] : [0, 1, 2]);
      const heads = headsFor(mean, tf.sqrt(variance), this.components, this.bins);
      assignOnce(this.heads, tf.div(heads, TOP_PRIOR_GAIN), this.initializedFlag);
    });
  }

  variables(): NamedVariable[] {
    return [['heads', this.heads], ['initialized', this.initializedFlag]];
  }
}
