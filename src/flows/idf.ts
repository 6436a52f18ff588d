// Integer discrete flows (model.family idf; Hoogeboom et al. 2019) as a MultiScale composite: the input
// snapped to the data grid, then per level a squeeze and K steps of (fixed channel permutation ->
// additive coupling with its translation rounded to the grid); each split factors out half the channels
// under a discretised logistic mixture conditioned on the other half, and the top latent has a learned
// mixture. Every map is exact on grid values, so log P(x) is an exact code length, and IntegerCoding
// gives an entropy coder the latents and the mixtures it needs, in the order a decoder meets them.
import { tf, type Tensor } from '../tf.js';
import type { Rng } from '../rng.js';
import type { ModelConfig } from '../config/schema.js';
import type { Bijector } from './bijector.js';
import { Chain } from './chain.js';
import { ReversePermutation, ShufflePermutation, Squeeze } from './layers.js';
import { HalfCoupling } from './coupling.js';
import { ConvNet } from './nets.js';
import { RoundedAdditiveTransformer } from './transformers.js';
import { GridSnap, type Mixture } from './discrete.js';
import { MixtureSplitPrior, MixtureTopPrior } from './mixture-priors.js';
import { type MultiScale, MultiScaleBuilder } from './multiscale.js';

/** What an entropy coder needs from an integer flow. Latents are grid values (integers / bins). */
export interface IntegerCoding {
  /** Bins per data value (2^n_bits): latent value v is the integer symbol v * bins. */
  readonly bins: number;
  /** Logistic components per latent value. */
  readonly components: number;
  /**
   * x (model input, one value per bin) -> every latent with its mixture ([B, ...shape] and [B, ...shape, K]),
   * in decoding order: the top latent first, then the splits from the last level down. Tidy-safe: the
   * caller disposes what it gets.
   */
  latentsForCoding(x: Tensor): Array<{ latent: Tensor; mixture: Mixture }>;
  /**
   * The decoder's side: `read` gets each latent's mixture and per-example shape in decoding order and
   * returns that latent ([B, ...shape] grid values, handed over to the traversal); resolves to x (bin centres).
   */
  decodeFromCoding(batch: number, read: (mixture: Mixture, shape: number[]) => Promise<Tensor>): Promise<Tensor>;
}

export function buildIdfFlow(cfg: ModelConfig, inputShape: number[], rng: Rng, bins: number): MultiScale {
  const [h, w, c] = inputShape as [number, number, number];
  const f = 2 ** cfg.levels;
  if (inputShape.length !== 3) throw new Error(`model.family idf models images [H, W, C], got shape [${inputShape}]`);
  if (h % f !== 0 || w % f !== 0) {
    throw new Error(`model.levels ${cfg.levels} squeezes ${cfg.levels} times, so image height and width must be divisible by ${f}; got ${h}x${w}`);
  }
  if (cfg.learn_top === false) throw new Error('model.family idf needs a learned top prior: expected model.learn_top channel or position');
  const k = cfg.mixture;
  const flow = new MultiScaleBuilder([h, w, c]);
  for (let l = 0; l < cfg.levels; l++) {
    const squeeze = new Squeeze();
    const layers: Bijector[] = l === 0 ? [new GridSnap(bins), squeeze] : [squeeze];
    const shape = squeeze.outputShape(flow.shape);
    const channels = shape[2]!;
    const steps = Array.from({ length: cfg.depth }, (_, s) => {
      const step: Bijector[] = [];
      if (cfg.permutation === 'shuffle' || cfg.permutation === 'auto') step.push(new ShufflePermutation(channels, rng));
      else if (cfg.permutation === 'reverse') step.push(new ReversePermutation());
      step.push(new HalfCoupling(channels, new RoundedAdditiveTransformer(bins), (cin, cout) => new ConvNet(cin, cfg.width, cout, rng)));
      return new Chain(String(s), step);
    });
    layers.push(new Chain('steps', steps));
    flow.scale(`levels.${l}`, layers);
    if (l < cfg.levels - 1) flow.split((keep, latent) => new MixtureSplitPrior(new ConvNet(keep, cfg.width, latent * 3 * k, rng), latent, k, bins));
  }
  const mode = cfg.learn_top === 'channel' ? 'channel' : 'position';
  return flow.build((shape) => new MixtureTopPrior(shape, mode, k, bins));
}

/** IntegerCoding over an idf composite built by buildIdfFlow. */
export class IdfCoding implements IntegerCoding {
  readonly components: number;
  constructor(
    private readonly flow: MultiScale,
    readonly bins: number,
  ) {
    this.components = (flow.top as MixtureTopPrior).components;
  }

  private splitPrior(index: number): MixtureSplitPrior {
    const scale = this.flow.scales.find((s) => s.split?.latentIndex === index)!;
    return scale.split!.prior as MixtureSplitPrior;
  }

  latentsForCoding(x: Tensor): Array<{ latent: Tensor; mixture: Mixture }> {
    return tf.tidy(() => {
      const { zs, keptAt } = this.flow.encodeWithConditions(x);
      const top = zs[zs.length - 1]!;
      const out = [{ latent: top, mixture: (this.flow.top as MixtureTopPrior).mixture(x.shape[0]!) }];
      for (let i = keptAt.length - 1; i >= 0; i--) out.push({ latent: zs[i]!, mixture: this.splitPrior(i).mixture(keptAt[i]!) });
      // tidy keeps the tensors inside the returned objects.
      return out as unknown as tf.TensorContainer;
    }) as unknown as Array<{ latent: Tensor; mixture: Mixture }>;
  }

  async decodeFromCoding(batch: number, read: (mixture: Mixture, shape: number[]) => Promise<Tensor>): Promise<Tensor> {
    const withMixture = async (make: () => Mixture, shape: number[]): Promise<Tensor> => {
      const [logits, means, logScales] = tf.tidy(() => {
        const m = make();
        return [m.logits, m.means, m.logScales];
      }) as [Tensor, Tensor, Tensor];
      try {
        return await read({ logits, means, logScales }, shape);
      } finally {
        tf.dispose([logits, means, logScales]);
      }
    };
    const top = this.flow.top as MixtureTopPrior;
    return this.flow.decodeSequential(
      () => withMixture(() => top.mixture(batch), top.shape),
      (split, kept) => withMixture(() => (split.prior as MixtureSplitPrior).mixture(kept), split.latentShape),
    );
  }
}
