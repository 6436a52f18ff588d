// The priors of an integer flow (IDF): discretised logistic mixtures over the latents' grid values. A
// split-off half is conditioned on the half that stays through a coupling-style network (IDF's
// factor-out); the top latent has free per-position (or per-channel) mixture parameters. `mixture`
// exposes the parameters themselves, which is what an entropy coder reads.
import { tf, type Tensor } from '../tf.js';
import type { Rng } from '../rng.js';
import { type NamedVariable, newVariable, prefixed } from './bijector.js';
import { type Mixture, mixtureFromHeads, mixtureLogp, mixtureSample } from './discrete.js';
import type { SplitLatentPrior, TopLatentPrior } from './priors.js';
import type { Net } from './nets.js';

/** A prior whose parameters an entropy coder can read: the mixture of every value of the latent. */
export interface MixturePrior {
  readonly components: number;
  readonly bins: number;
}

/** p(z2 | z1): the network maps the kept half to 3K heads per split-off channel (logits, means, log-scales). */
export class MixtureSplitPrior implements SplitLatentPrior, MixturePrior {
  constructor(
    readonly net: Net,
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

  variables(): NamedVariable[] {
    return prefixed('prior', this.net.variables());
  }
}

/**
 * The free top-prior parameters are stored divided by this. Adam moves a parameter by about lr per step, so
 * stored as is, a mean needs ~0.5/lr steps to reach where the data are (1.5e-3: 300 steps) and the top latent
 * is half the dimensions; the gain makes that 30x faster. Tiny idf on embedded MNIST, test bpd at step 150:
 * gain 1: 6.42, 10: 6.04, 30: 5.32, 100: 5.95.
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

  variables(): NamedVariable[] {
    return [['heads', this.heads]];
  }
}
