// Whole models built from a ModelConfig: multi-scale image flows (Glow / RealNVP / NICE: squeeze,
// K steps, split with a prior, repeated L times, then a top prior) and single-scale vector flows, both as
// a MultiScale composite (src/flows/multiscale.ts). This file chooses the layers; the composite runs them.
// Every public method is tidy-safe: it returns only what it promises and keeps no intermediate.
import { tf, type Tensor } from '../tf.js';
import { Rng } from '../rng.js';
import type { ModelConfig } from '../config/schema.js';
import { type Bijector, type NamedVariable, prefixed } from './bijector.js';
import { Chain } from './chain.js';
import { ActNorm, DiagonalScale, ReversePermutation, ShufflePermutation, Squeeze } from './layers.js';
import { InvConv1x1 } from './invconv.js';
import {
  HalfCoupling,
  MaskedCoupling,
  halfCouplingTransformer,
  maskedCouplingTransformer,
  type CouplingKind,
  type MaskType,
  type NetFactory,
} from './coupling.js';
import { ConvNet, MLP, ZeroDense } from './nets.js';
import { type ForwardVisit, type InverseVisit, type LayerInfo, type MultiScale, MultiScaleBuilder } from './multiscale.js';
import { topPriorMode } from './priors.js';
import { buildIdfFlow, IdfCoding, type IntegerCoding } from './idf.js';

export { topPriorMode, type TopPriorMode } from './priors.js';
export type { IntegerCoding } from './idf.js';

export interface FlowModel {
  /** One example's shape: [H, W, C] (image) or [D] (vector). */
  readonly inputShape: number[];
  readonly kind: 'image' | 'vector';
  /** Set for class-conditional models. */
  readonly numClasses?: number;
  /** Set for integer flows (family idf): what an entropy coder needs (`flow compress`). */
  readonly integer?: IntegerCoding;
  /** [B] log p(x) in nats of continuous x (images already scaled to [-0.5, 0.5]). */
  logProb(x: Tensor, labels?: Tensor): Tensor;
  /**
   * x -> all split-off latents, then the top one; logdet of that bijection and the prior log-density, both [B].
   * Labels (a conditional model's) reach every layer and prior as one-hot context.
   */
  encode(x: Tensor, labels?: Tensor): { zs: Tensor[]; logdet: Tensor; logpz: Tensor };
  /** The exact inverse of encode. */
  decode(zs: Tensor[], labels?: Tensor): Tensor;
  /** n samples with every prior's std scaled by temperature; all noise comes from rng (or rng[i] for sample i). */
  sample(n: number, temperature: number, rng: Rng | Rng[], labels?: Tensor): Tensor;
  /** logProb, and the class logits from the mean-pooled top latent (openai/glow's ycond) when the model has a classifier. */
  logProbAndLogits(x: Tensor, labels?: Tensor): { logp: Tensor; logits?: Tensor };
  /** ActNorm data-dependent initialisation from one batch; a no-op when already initialized. */
  initialize(x: Tensor, labels?: Tensor): void;
  readonly initialized: boolean;
  /** Per-example shapes of encode's zs, in order. */
  latentShapes(): number[][];
  /** Every variable (trainable and state) with a globally stable dotted name. */
  variables(): NamedVariable[];
  trainableVariables(): tf.Variable[];
  /** The invertible layers in order, with the per-example shape each one receives. */
  namedLayers(): LayerInfo[];
  /**
   * x -> latents layer by layer (the audit), each layer in its own tidy; `visit` sees every layer's input and
   * forward result and may keep a small tensor. The latents equal encode's zs. Call inside tf.tidy.
   */
  walkForward(x: Tensor, visit?: ForwardVisit): { zs: Tensor[]; logdet: Tensor; visited: Tensor[] };
  /** walkForward's inverse from its latents, last layer first; `visit` sees each layer's reconstructed input. Call inside tf.tidy. */
  walkInverse(zs: Tensor[], visit?: InverseVisit): { x: Tensor; logdet: Tensor; visited: Tensor[] };
  dispose(): void;
}

export type Permutation = 'conv1x1' | 'reverse' | 'shuffle' | 'none';

export interface ResolvedModelOptions {
  family: ModelConfig['family'];
  coupling: CouplingKind;
  permutation: Permutation;
  actnorm: boolean;
  mask: ModelConfig['mask'];
}

/** Resolves every 'auto' option for the family. */
export function resolveModelConfig(cfg: ModelConfig): ResolvedModelOptions {
  const family = cfg.family;
  const coupling: CouplingKind = cfg.coupling === 'auto' ? (family === 'nice' || family === 'idf' ? 'additive' : 'affine') : cfg.coupling;
  const autoPermutation: Record<ModelConfig['family'], Permutation> = { glow: 'conv1x1', nice: 'reverse', realnvp: 'none', idf: 'shuffle' };
  const permutation: Permutation = cfg.permutation === 'auto' ? autoPermutation[family] : cfg.permutation;
  const actnorm = cfg.actnorm === 'auto' ? family === 'glow' : cfg.actnorm === 'on';
  return { family, coupling, permutation, actnorm, mask: cfg.mask };
}

/** opts.nBits (default 8) is the data's bits per value: an integer flow's grid has 2^nBits steps. */
export function buildModel(cfg: ModelConfig, inputShape: number[], opts: { seed: number; numClasses?: number; nBits?: number }): FlowModel {
  if (!inputShape.every((d) => Number.isInteger(d) && d >= 1)) throw new Error(`model input shape [${inputShape}] must be positive integers`);
  if (inputShape.length !== 3 && inputShape.length !== 1) {
    throw new Error(`model input shape [${inputShape}]: expected [H, W, C] images or [D] vectors`);
  }
  let numClasses: number | undefined;
  if (cfg.conditional === 'classes') {
    numClasses = opts.numClasses;
    if (numClasses === undefined || !Number.isInteger(numClasses) || numClasses < 2) {
      throw new Error(`model.conditional 'classes' needs labelled data with at least 2 classes (got ${numClasses ?? 'no labels'})`);
    }
  }
  return new Flow(cfg, inputShape, opts.seed, numClasses, 2 ** (opts.nBits ?? 8));
}

/** Number of trainable parameters. */
export function countParameters(model: FlowModel): number {
  return model.trainableVariables().reduce((n, v) => n + v.size, 0);
}

class Flow implements FlowModel {
  readonly inputShape: number[];
  readonly kind: 'image' | 'vector';
  readonly numClasses?: number;
  readonly integer?: IntegerCoding;
  private readonly options: ResolvedModelOptions;
  private readonly flow: MultiScale;
  private readonly classifier?: ZeroDense;
  private disposed = false;

  constructor(
    private readonly cfg: ModelConfig,
    inputShape: number[],
    seed: number,
    numClasses: number | undefined,
    bins: number,
  ) {
    this.inputShape = [...inputShape];
    this.kind = inputShape.length === 3 ? 'image' : 'vector';
    this.numClasses = numClasses;
    this.options = resolveModelConfig(cfg);
    // A stream of its own, so model initialisation never shares numbers with data order or noise.
    const rng = new Rng(seed).fork(0x6d6f64);
    // Vector flows have a standard-normal base (plus the label term when class-conditional).
    if (cfg.family === 'idf') {
      if (numClasses) throw new Error('model.family idf has no class-conditional prior: expected model.conditional none');
      this.flow = buildIdfFlow(cfg, this.inputShape, rng, bins);
      this.integer = new IdfCoding(this.flow, bins);
    } else {
      this.flow = this.kind === 'image' ? this.buildImageFlow(rng).build(topPriorMode(cfg.learn_top), numClasses) : this.buildVectorFlow(rng).build(false, numClasses);
    }
    const topShape = this.flow.top.shape;
    if (numClasses && cfg.class_loss_weight > 0) this.classifier = new ZeroDense(topShape[topShape.length - 1]!, numClasses);
  }

  // ---- construction ----

  private buildImageFlow(rng: Rng): MultiScaleBuilder {
    const [h, w, c] = this.inputShape as [number, number, number];
    const levels = this.cfg.levels;
    const f = 2 ** levels;
    if (h % f !== 0 || w % f !== 0) {
      throw new Error(`model.levels ${levels} squeezes ${levels} times, so image height and width must be divisible by ${f}; got ${h}x${w}`);
    }
    const flow = new MultiScaleBuilder([h, w, c]);
    for (let l = 0; l < levels; l++) {
      const squeeze = new Squeeze();
      const shape = squeeze.outputShape(flow.shape);
      const layers: Bijector[] = [squeeze];
      const steps = Array.from({ length: this.cfg.depth }, (_, k) => this.buildStep(k, shape, rng, 'image'));
      layers.push(new Chain('steps', steps));
      if (this.options.family === 'nice') layers.push(new DiagonalScale(shape));
      flow.scale(`levels.${l}`, layers);
      if (l < levels - 1) flow.split(this.cfg.split_prior === 'learned');
    }
    return flow;
  }

  private buildVectorFlow(rng: Rng): MultiScaleBuilder {
    const shape = [...this.inputShape];
    if (shape[0]! < 2) throw new Error(`a vector flow needs at least 2 dimensions to couple, got ${shape[0]}`);
    const steps = Array.from({ length: this.cfg.depth }, (_, k) => this.buildStep(k, shape, rng, 'vector'));
    const layers: Bijector[] = [new Chain('steps', steps)];
    if (this.options.family === 'nice') layers.push(new DiagonalScale(shape));
    return new MultiScaleBuilder(shape).scale('flow', layers);
  }

  /** One flow step: (ActNorm) -> (permutation / 1x1 conv) -> coupling. */
  private buildStep(k: number, shape: number[], rng: Rng, kind: 'image' | 'vector'): Chain {
    const o = this.options;
    const c = shape[shape.length - 1]!;
    const layers: Bijector[] = [];
    if (o.actnorm) layers.push(new ActNorm(c));
    if (o.permutation === 'conv1x1') layers.push(new InvConv1x1(c, rng, { lu: this.cfg.lu }));
    else if (o.permutation === 'reverse') layers.push(new ReversePermutation());
    else if (o.permutation === 'shuffle') layers.push(new ShufflePermutation(c, rng));
    const width = this.cfg.width;
    const makeNet: NetFactory =
      kind === 'image'
        ? (cin, cout) => new ConvNet(cin, width, cout, rng)
        : (cin, cout) => new MLP(cin, width, this.cfg.hidden_layers, cout, rng);
    if (o.family === 'realnvp') {
      const [type, parity] = this.maskAt(k, shape);
      layers.push(new MaskedCoupling(shape, type, parity, maskedCouplingTransformer(o.coupling, c), makeNet));
    } else {
      layers.push(new HalfCoupling(c, halfCouplingTransformer(o.coupling, this.cfg.scale_floor), makeNet));
    }
    return new Chain(String(k), layers);
  }

  /**
   * RealNVP's mask schedule. auto: the type alternates every step and the parity every two steps,
   * so four consecutive steps transform every dimension twice; a fixed type flips parity every step.
   */
  private maskAt(k: number, shape: number[]): [MaskType, number] {
    const mask = this.options.mask;
    let type: MaskType;
    let parity: number;
    if (mask === 'auto') {
      type = k % 2 === 0 ? 'checkerboard' : 'channel';
      // For 2-D vectors both types are the same split: flip every step so the two dimensions alternate.
      parity = shape.length === 1 && shape[0] === 2 ? k % 2 : Math.floor(k / 2) % 2;
    } else {
      type = mask;
      parity = k % 2;
    }
    // A checkerboard over a single position would freeze (or ignore) every channel.
    if (type === 'checkerboard' && shape.length === 3 && shape[0]! * shape[1]! === 1) type = 'channel';
    return [type, parity];
  }

  // ---- evaluation ----

  private checkInput(x: Tensor): void {
    this.checkAlive();
    const want = this.inputShape;
    if (x.rank !== want.length + 1 || want.some((d, i) => x.shape[i + 1] !== d)) {
      throw new Error(`model expects input [B,${want.join(',')}], got [${x.shape.join(',')}]`);
    }
  }

  private checkAlive(): void {
    if (this.disposed) throw new Error('this flow model was disposed');
  }

  /** The context for the layers and priors: one-hot labels ([B, K] float) of a conditional model, undefined for an unconditional one. */
  private context(labels: Tensor | undefined, batch: number): Tensor | undefined {
    if (!this.numClasses) return undefined;
    if (!labels) throw new Error(`this model is class-conditional (${this.numClasses} classes): labels are required`);
    if (labels.rank !== 1 || labels.shape[0] !== batch) {
      throw new Error(`labels must have shape [${batch}], got [${labels.shape.join(',')}]`);
    }
    const idx = labels.dtype === 'int32' ? labels : tf.cast(labels, 'int32');
    return tf.cast(tf.oneHot(idx, this.numClasses), 'float32');
  }

  /** Untidied encode: callers wrap it. */
  private encodeRaw(x: Tensor, labels?: Tensor): { zs: Tensor[]; logdet: Tensor; logpz: Tensor } {
    const context = this.context(labels, x.shape[0]!);
    this.checkInput(x);
    return this.flow.encode(x, context);
  }

  logProb(x: Tensor, labels?: Tensor): Tensor {
    return tf.tidy(() => {
      const { logdet, logpz } = this.encodeRaw(x, labels);
      return tf.add(logpz, logdet);
    });
  }

  encode(x: Tensor, labels?: Tensor): { zs: Tensor[]; logdet: Tensor; logpz: Tensor } {
    return tf.tidy(() => this.encodeRaw(x, labels));
  }

  latentShapes(): number[][] {
    return this.flow.latentShapes();
  }

  decode(zs: Tensor[], labels?: Tensor): Tensor {
    this.checkAlive();
    const shapes = this.latentShapes();
    if (zs.length !== shapes.length) throw new Error(`decode expects ${shapes.length} latents, got ${zs.length}`);
    zs.forEach((z, i) => {
      const want = shapes[i]!;
      if (z.rank !== want.length + 1 || want.some((d, j) => z.shape[j + 1] !== d)) {
        throw new Error(`latent ${i} must have shape [B,${want.join(',')}], got [${z.shape.join(',')}]`);
      }
    });
    // Labels are optional here: the bijection itself does not depend on them (only the priors do).
    return tf.tidy(() => this.flow.decode(zs, this.numClasses && labels ? this.context(labels, zs[0]!.shape[0]!) : undefined));
  }

  sample(n: number, temperature: number, rng: Rng | Rng[], labels?: Tensor): Tensor {
    this.checkAlive();
    if (!Number.isInteger(n) || n < 1) throw new Error(`sample count must be a positive integer, got ${n}`);
    if (Array.isArray(rng) && rng.length !== n) throw new Error(`sample: ${rng.length} noise streams for ${n} samples`);
    return tf.tidy(() => this.flow.sample(n, temperature, rng, this.context(labels, n)));
  }

  logProbAndLogits(x: Tensor, labels?: Tensor): { logp: Tensor; logits?: Tensor } {
    return tf.tidy(() => {
      const { zs, logdet, logpz } = this.encodeRaw(x, labels);
      const top = zs[zs.length - 1]!;
      const logits = this.classifier?.apply(top.rank === 4 ? tf.mean(top, [1, 2]) : top);
      const logp = tf.add(logpz, logdet);
      return logits ? { logp, logits } : { logp };
    });
  }

  initialize(x: Tensor, labels?: Tensor): void {
    this.checkInput(x);
    // No early return on `initialized`: that reads a flag back from the device. ActNorm's own
    // initialize is a no-op once done, so a second call changes nothing.
    tf.tidy(() => this.flow.initialize(x, this.numClasses && labels ? this.context(labels, x.shape[0]!) : undefined));
  }

  get initialized(): boolean {
    return this.namedLayers().every(({ bijector }) => !(bijector instanceof ActNorm) || bijector.isInitialized);
  }

  walkForward(x: Tensor, visit?: ForwardVisit): { zs: Tensor[]; logdet: Tensor; visited: Tensor[] } {
    this.checkInput(x);
    return this.flow.walkForward(x, visit);
  }

  walkInverse(zs: Tensor[], visit?: InverseVisit): { x: Tensor; logdet: Tensor; visited: Tensor[] } {
    this.checkAlive();
    return this.flow.walkInverse(zs, visit);
  }

  // ---- variables ----

  variables(): NamedVariable[] {
    const out = this.flow.variables();
    if (this.classifier) out.push(...prefixed('classifier', this.classifier.variables()));
    return out;
  }

  trainableVariables(): tf.Variable[] {
    return this.variables()
      .map(([, v]) => v)
      .filter((v) => v.trainable);
  }

  namedLayers(): LayerInfo[] {
    return this.flow.layers();
  }

  dispose(): void {
    if (this.disposed) return;
    for (const [, v] of this.variables()) v.dispose();
    this.disposed = true;
  }
}
