// The multi-scale composite (cf. nflows' MultiscaleCompositeTransform): scales of invertible layers, each
// but the last followed by a split that factors out half the channels under a prior conditioned on the
// other half, and a top prior for what is left. The structure lives here once: encode, decode, sampling,
// ActNorm initialisation, the layer list and the audit's per-layer walks are the two traversals below
// (down: x -> latents; up: latents -> x) with their own step through each scale.
import { tf, type Tensor } from '../tf.js';
import type { Rng } from '../rng.js';
import { type Bijector, type ForwardResult, type NamedVariable, concatChannels, prefixed, splitChannels } from './bijector.js';
import { Chain, type Leaf } from './chain.js';
import { SplitPrior, TopPrior, type SplitLatentPrior, type TopLatentPrior, type TopPriorMode } from './priors.js';

export interface Split {
  /** Channels that stay in the flow (the first ones); the rest are the latent. */
  readonly keep: number;
  /** Per-example shape of the factored-out latent. */
  readonly latentShape: number[];
  readonly prior: SplitLatentPrior;
  /** Position of this latent in encode's list. */
  readonly latentIndex: number;
}

export interface Scale {
  /** Variable-name prefix, e.g. 'levels.0'. */
  readonly name: string;
  readonly flow: Chain;
  /** Per-example shape entering the scale. */
  readonly inputShape: number[];
  /** Per-example shape leaving the flow (before the split). */
  readonly outputShape: number[];
  readonly split?: Split;
}

/** One invertible layer of the composite, in order: its index, full dotted name, bijector and input shape. */
export interface LayerInfo extends Leaf {
  index: number;
}

/** What an audit keeps from a layer's forward pass (a small tensor), or nothing. */
export type ForwardVisit = (layer: LayerInfo, input: Tensor, y: Tensor, logdet: Tensor) => Tensor | undefined;
/** What an audit keeps from a layer's inverse: it sees the reconstruction of that layer's input. */
export type InverseVisit = (layer: LayerInfo, reconstructedInput: Tensor) => Tensor | undefined;

export interface Encoding {
  /** Split-off latents in order, then the top one. */
  zs: Tensor[];
  /** log|det| of x -> zs, [B]. */
  logdet: Tensor;
}

export class MultiScale {
  private readonly layerLists: LayerInfo[][];

  constructor(
    readonly inputShape: number[],
    readonly scales: readonly Scale[],
    readonly top: TopLatentPrior,
  ) {
    let index = 0;
    this.layerLists = scales.map((s) => s.flow.leaves(s.inputShape).map((leaf) => ({ ...leaf, index: index++ })));
  }

  // ---- the two traversals ----

  /**
   * x -> latents: `through` moves h through a scale; each split keeps its first channels and factors out the
   * rest, with that half's prior log-density when `priors`, and `atSplit` sees each split's two halves. Untidied.
   */
  private down(
    x: Tensor,
    through: (scale: Scale, index: number, h: Tensor) => ForwardResult,
    priors: boolean,
    atSplit?: (split: Split, kept: Tensor, latent: Tensor) => void,
  ): Encoding & { logpSplits: Tensor } {
    const batch = x.shape[0]!;
    let h = x;
    let logdet: Tensor = tf.zeros([batch]);
    let logpSplits: Tensor = tf.zeros([batch]);
    const zs: Tensor[] = [];
    this.scales.forEach((scale, i) => {
      const r = through(scale, i, h);
      h = r.y;
      logdet = tf.add(logdet, r.logdet);
      if (scale.split) {
        const [z1, z2] = splitChannels(h, scale.split.keep);
        if (priors) logpSplits = tf.add(logpSplits, scale.split.prior.logp(z2, z1));
        atSplit?.(scale.split, z1, z2);
        zs.push(z2);
        h = z1;
      }
    });
    zs.push(h);
    return { zs, logdet, logpSplits };
  }

  /** Top latent -> x: before a scale with a split, `latentFor` gives the factored-out half for what came back so far. Untidied. */
  private up(top: Tensor, latentFor: (split: Split, kept: Tensor) => Tensor, through: (scale: Scale, index: number, h: Tensor) => Tensor): Tensor {
    let h = top;
    for (let i = this.scales.length - 1; i >= 0; i--) {
      const scale = this.scales[i]!;
      if (scale.split) h = concatChannels([h, latentFor(scale.split, h)]);
      h = through(scale, i, h);
    }
    return h;
  }

  // ---- the model's operations ----

  /** x -> latents, logdet and log p(latents) under the priors; `context` is the one-hot labels of a conditional model. Untidied. */
  encode(x: Tensor, context?: Tensor): Encoding & { logpz: Tensor } {
    const { zs, logdet, logpSplits } = this.down(x, (s, _, h) => s.flow.forward(h, context), true);
    return { zs, logdet, logpz: tf.add(logpSplits, this.top.logp(zs[zs.length - 1]!, context)) };
  }

  /** The exact inverse of encode (shapes checked by the caller). Untidied. */
  decode(zs: Tensor[], context?: Tensor): Tensor {
    return this.up(zs[zs.length - 1]!, (split) => zs[split.latentIndex]!, (s, _, h) => s.flow.inverse(h, context).x);
  }

  /** n samples: the top latent first, then each split's latent from its prior given the half above it. Untidied. */
  sample(n: number, temperature: number, rng: Rng | Rng[], context?: Tensor): Tensor {
    const top = this.top.sample(n, temperature, rng, context);
    const draw = (split: Split, kept: Tensor) => split.prior.sample(kept, split.latentShape, temperature, rng);
    return this.up(top, draw, (s, _, h) => s.flow.inverse(h, context).x);
  }

  /**
   * x -> latents with the kept half each split's prior was conditioned on (what an entropy coder needs to
   * evaluate the priors): keptAt[i] belongs to zs[i]. Untidied.
   */
  encodeWithConditions(x: Tensor, context?: Tensor): Encoding & { keptAt: Tensor[] } {
    const keptAt: Tensor[] = [];
    const { zs, logdet } = this.down(x, (s, _, h) => s.flow.forward(h, context), false, (_, kept) => keptAt.push(kept));
    return { zs, logdet, keptAt };
  }

  /**
   * decode with asynchronous latents (an entropy decoder reading each latent once its condition is known):
   * `top` gives the top latent, `latentFor` each split's latent given the kept half. Each step runs in its
   * own tidy and the traversal disposes what it was given; returns x.
   */
  async decodeSequential(top: () => Promise<Tensor>, latentFor: (split: Split, kept: Tensor) => Promise<Tensor>, context?: Tensor): Promise<Tensor> {
    let h = await top();
    for (let i = this.scales.length - 1; i >= 0; i--) {
      const scale = this.scales[i]!;
      const input = h;
      if (scale.split) {
        const z = await latentFor(scale.split, input);
        h = tf.tidy(() => scale.flow.inverse(concatChannels([input, z]), context).x);
        z.dispose();
      } else h = tf.tidy(() => scale.flow.inverse(input, context).x);
      input.dispose();
    }
    return h;
  }

  /** Data-dependent initialisation (ActNorm, and priors that have one), every layer on the input it really sees. Call inside tidy. */
  initialize(x: Tensor, context?: Tensor): void {
    const through = (s: Scale, _: number, h: Tensor) => ({ y: s.flow.initializeThrough(h, context), logdet: tf.zeros([x.shape[0]!]) });
    const { zs } = this.down(x, through, false, (split, kept, latent) => split.prior.initialize?.(latent, kept));
    this.top.initialize?.(zs[zs.length - 1]!);
  }

  /**
   * x -> latents one layer at a time, each in its own tf.tidy so only the activations between layers stay
   * alive; `visit` sees every layer's input and forward result and may keep a small tensor. Call inside tf.tidy.
   */
  walkForward(x: Tensor, visit?: ForwardVisit): Encoding & { visited: Tensor[] } {
    const visited: Tensor[] = [];
    const through = (_: Scale, i: number, h: Tensor): ForwardResult => {
      let y = h;
      let logdet: Tensor = tf.zeros([h.shape[0]!]);
      for (const layer of this.layerLists[i]!) {
        const input = y;
        const sum = logdet;
        const step = tf.tidy(() => {
          const r = layer.bijector.forward(input);
          const kept = visit?.(layer, input, r.y, r.logdet);
          return { y: r.y, logdet: tf.add(sum, r.logdet), ...(kept ? { kept } : {}) };
        });
        if (step.kept) visited.push(step.kept);
        y = step.y;
        logdet = step.logdet;
      }
      return { y, logdet };
    };
    const { zs, logdet } = this.down(x, through, false);
    return { zs, logdet, visited };
  }

  /**
   * The inverse of walkForward from its latents, one layer at a time (last to first); `visit` sees the
   * reconstruction of every layer's input. Returns x, the summed inverse log|det| and what visit kept,
   * in visiting order. Call inside tf.tidy.
   */
  walkInverse(zs: Tensor[], visit?: InverseVisit): { x: Tensor; logdet: Tensor; visited: Tensor[] } {
    const visited: Tensor[] = [];
    let logdet: Tensor = tf.zeros([zs[0]!.shape[0]!]);
    const through = (_: Scale, i: number, h: Tensor): Tensor => {
      const layers = this.layerLists[i]!;
      let x = h;
      for (let k = layers.length - 1; k >= 0; k--) {
        const layer = layers[k]!;
        const input = x;
        const sum = logdet;
        const step = tf.tidy(() => {
          const r = layer.bijector.inverse(input);
          const kept = visit?.(layer, r.x);
          return { x: r.x, logdet: tf.add(sum, r.logdet), ...(kept ? { kept } : {}) };
        });
        if (step.kept) visited.push(step.kept);
        x = step.x;
        logdet = step.logdet;
      }
      return x;
    };
    const x = this.up(zs[zs.length - 1]!, (split) => zs[split.latentIndex]!, through);
    return { x, logdet, visited };
  }

  // ---- structure ----

  /** Every invertible layer in order, with the per-example shape it receives. */
  layers(): LayerInfo[] {
    return this.layerLists.flat();
  }

  /** Per-example shapes of encode's zs, in order. */
  latentShapes(): number[][] {
    return [...this.scales.flatMap((s) => (s.split ? [[...s.split.latentShape]] : [])), [...this.top.shape]];
  }

  variables(): NamedVariable[] {
    const out: NamedVariable[] = [];
    for (const scale of this.scales) {
      out.push(...prefixed(scale.name, scale.flow.variables()));
      if (scale.split) out.push(...prefixed(`${scale.name}.split`, scale.split.prior.variables()));
    }
    out.push(...prefixed('top', this.top.variables()));
    return out;
  }
}

/**
 * Builds a MultiScale scale by scale (cf. FrEIA's SequenceINN): every layer's shape is checked as it is
 * appended, and a mismatch names the layer.
 */
export class MultiScaleBuilder {
  private readonly scales: Array<{ -readonly [K in keyof Scale]: Scale[K] }> = [];
  private current: number[];
  private latents = 0;

  constructor(readonly inputShape: readonly number[]) {
    this.current = [...inputShape];
  }

  /** The per-example shape the next scale receives. */
  get shape(): number[] {
    return [...this.current];
  }

  /** Appends a scale named `name` (its variables' prefix) running `layers` in order. */
  scale(name: string, layers: Bijector[]): this {
    const inputShape = this.shape;
    const flow = new Chain(name, layers, inputShape);
    const outputShape = flow.outputShape(inputShape);
    this.scales.push({ name, flow, inputShape, outputShape });
    this.current = outputShape;
    return this;
  }

  /**
   * Factors out the second half of the last scale's channels, under a learned (or standard normal) Gaussian
   * prior given the first, or the prior `makePrior(keepChannels, latentChannels)` builds.
   */
  split(learned: boolean | ((keepChannels: number, latentChannels: number) => SplitLatentPrior)): this {
    const scale = this.scales[this.scales.length - 1];
    if (!scale || scale.split) throw new Error('a split follows a scale, at most one per scale');
    const shape = this.current;
    const channels = shape[shape.length - 1]!;
    if (channels % 2 !== 0) throw new Error(`${scale.name} has ${channels} channels: cannot split them in half`);
    const keep = channels / 2;
    const latentShape = [...shape.slice(0, -1), channels - keep];
    const prior = typeof learned === 'function' ? learned(keep, channels - keep) : new SplitPrior(keep, channels - keep, learned);
    scale.split = { keep, latentShape, prior, latentIndex: this.latents++ };
    this.current = [...shape.slice(0, -1), keep];
    return this;
  }

  /** The composite with its top prior over what the last scale leaves (a Gaussian of this mode, or the prior `top` builds for the shape). */
  build(top: TopPriorMode | ((shape: number[]) => TopLatentPrior), numClasses?: number): MultiScale {
    const prior = typeof top === 'function' ? top(this.shape) : new TopPrior(this.shape, top, numClasses);
    return new MultiScale([...this.inputShape], this.scales, prior);
  }
}
