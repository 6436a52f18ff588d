// Whole models built from a ModelConfig: multi-scale image flows (Glow / RealNVP / NICE: squeeze,
// K steps, split with a prior, repeated L times, then a top prior) and single-scale vector flows.
// Every public method is tidy-safe: it returns only what it promises and keeps no intermediate.
import { tf, type Tensor } from '../tf.js';
import { Rng } from '../rng.js';
import type { ModelConfig } from '../config/schema.js';
import { type Bijector, type NamedVariable, concatChannels, prefixed, splitChannels, sumExceptBatch, newVariable } from './bijector.js';
import { Chain } from './chain.js';
import { ActNorm, DiagonalScale, InvConv1x1, ReversePermutation, ShufflePermutation, Squeeze } from './layers.js';
import { HalfCoupling, MaskedCoupling, type CouplingKind, type MaskType, type NetFactory } from './coupling.js';
import { ConvNet, MLP, ZeroConv, ZeroDense } from './nets.js';

export interface FlowModel {
  /** One example's shape: [H, W, C] (image) or [D] (vector). */
  readonly inputShape: number[];
  readonly kind: 'image' | 'vector';
  /** Set for class-conditional models. */
  readonly numClasses?: number;
  /** [B] log p(x) in nats of continuous x (images already scaled to [-0.5, 0.5]). */
  logProb(x: Tensor, labels?: Tensor): Tensor;
  /** x -> all split-off latents, then the top one; logdet of that bijection and the prior log-density, both [B]. */
  encode(x: Tensor, labels?: Tensor): { zs: Tensor[]; logdet: Tensor; logpz: Tensor };
  /** The exact inverse of encode. */
  decode(zs: Tensor[], labels?: Tensor): Tensor;
  /** n samples with every prior's std scaled by temperature; all noise comes from rng (or rng[i] for sample i). */
  sample(n: number, temperature: number, rng: Rng | Rng[], labels?: Tensor): Tensor;
  /** Class logits from the mean-pooled top latent (openai/glow's ycond); undefined without a classifier. */
  classLogits?(x: Tensor): Tensor | undefined;
  /** logProb and classLogits from one pass through the flow (classLogits alone re-runs it). */
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
  namedLayers(): Array<{ name: string; bijector: Bijector; inputShape: number[] }>;
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
  const coupling: CouplingKind = cfg.coupling === 'auto' ? (family === 'nice' ? 'additive' : 'affine') : cfg.coupling;
  const autoPermutation: Record<ModelConfig['family'], Permutation> = { glow: 'conv1x1', nice: 'reverse', realnvp: 'none' };
  const permutation: Permutation = cfg.permutation === 'auto' ? autoPermutation[family] : cfg.permutation;
  const actnorm = cfg.actnorm === 'auto' ? family === 'glow' : cfg.actnorm === 'on';
  return { family, coupling, permutation, actnorm, mask: cfg.mask };
}

export function buildModel(cfg: ModelConfig, inputShape: number[], opts: { seed: number; numClasses?: number }): FlowModel {
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
  return new Flow(cfg, inputShape, opts.seed, numClasses);
}

/** Number of trainable parameters. */
export function countParameters(model: FlowModel): number {
  return model.trainableVariables().reduce((n, v) => n + v.size, 0);
}

const LOG_2PI = Math.log(2 * Math.PI);

/** Diagonal Gaussian log-density summed per example; N(0, I) when mean/logsd are absent. */
function gaussianLogp(z: Tensor, mean?: Tensor, logsd?: Tensor): Tensor {
  if (!mean || !logsd) return sumExceptBatch(tf.mul(tf.add(tf.square(z), LOG_2PI), -0.5));
  const scaled = tf.mul(tf.square(tf.sub(z, mean)), tf.exp(tf.mul(logsd, -2)));
  return sumExceptBatch(tf.mul(tf.add(tf.add(scaled, tf.mul(logsd, 2)), LOG_2PI), -0.5));
}

/**
 * mean + exp(logsd) * eps with eps ~ N(0, T^2) drawn in JS (same numbers on every backend). With one Rng
 * per example, example i's noise depends only on its own stream, so any subset (a shard) of a sample run
 * reproduces exactly the images the whole run draws.
 */
function gaussianSample(shape: number[], temperature: number, rng: Rng | Rng[], mean?: Tensor, logsd?: Tensor): Tensor {
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

interface GaussianParams {
  mean?: Tensor;
  logsd?: Tensor;
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
class TopPrior {
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

  variables(): NamedVariable[] {
    const out: NamedVariable[] = [];
    if (this.mean && this.logsd) out.push(['mean', this.mean], ['logsd', this.logsd]);
    if (this.bias && this.logscale) out.push(['bias', this.bias], ['logscale', this.logscale]);
    if (this.cond) out.push(...prefixed('cond', this.cond.variables()));
    return out;
  }
}

/** Prior of the split-off half: N(mean, exp(logsd)) with (mean, logsd) = the two interleaved heads of a zero-init conv3x3(z1), or N(0, I). */
class SplitPrior {
  readonly conv?: ZeroConv;
  constructor(
    readonly keepChannels: number,
    readonly splitChannels: number,
    learned: boolean,
  ) {
    if (learned) this.conv = new ZeroConv(keepChannels, 2 * splitChannels, 3);
  }
  params(z1: Tensor): GaussianParams {
    if (!this.conv) return {};
    const [mean, logsd] = this.conv.applyHeads(z1, 2) as [Tensor, Tensor];
    return { mean, logsd };
  }
  variables(): NamedVariable[] {
    return this.conv ? prefixed('prior', this.conv.variables()) : [];
  }
}

interface Level {
  /** Variable-name prefix, e.g. 'levels.0'. */
  name: string;
  flow: Chain;
  /** Per-example shape entering the level. */
  inShape: number[];
  /** Per-example shape leaving the flow (before the split). */
  outShape: number[];
  split?: SplitPrior;
}

class Flow implements FlowModel {
  readonly inputShape: number[];
  readonly kind: 'image' | 'vector';
  readonly numClasses?: number;
  private readonly options: ResolvedModelOptions;
  private readonly levels: Level[] = [];
  private readonly top: TopPrior;
  private readonly classifier?: ZeroDense;
  private disposed = false;

  constructor(
    private readonly cfg: ModelConfig,
    inputShape: number[],
    seed: number,
    numClasses: number | undefined,
  ) {
    this.inputShape = [...inputShape];
    this.kind = inputShape.length === 3 ? 'image' : 'vector';
    this.numClasses = numClasses;
    this.options = resolveModelConfig(cfg);
    // A stream of its own, so model initialisation never shares numbers with data order or noise.
    const rng = new Rng(seed).fork(0x6d6f64);
    const topShape = this.kind === 'image' ? this.buildImageLevels(rng) : this.buildVectorFlow(rng);
    // Vector flows have a standard-normal base (plus the label term when class-conditional).
    this.top = new TopPrior(topShape, this.kind === 'image' ? topPriorMode(cfg.learn_top) : false, numClasses);
    if (numClasses && cfg.class_loss_weight > 0) this.classifier = new ZeroDense(topShape[topShape.length - 1]!, numClasses);
  }

  // ---- construction ----

  private buildImageLevels(rng: Rng): number[] {
    const [h, w, c] = this.inputShape as [number, number, number];
    const levels = this.cfg.levels;
    const f = 2 ** levels;
    if (h % f !== 0 || w % f !== 0) {
      throw new Error(`model.levels ${levels} squeezes ${levels} times, so image height and width must be divisible by ${f}; got ${h}x${w}`);
    }
    let shape = [h, w, c];
    for (let l = 0; l < levels; l++) {
      const inShape = shape;
      shape = Squeeze.outputShape(shape);
      const layers: Bijector[] = [new Squeeze()];
      const steps = Array.from({ length: this.cfg.depth }, (_, k) => this.buildStep(k, shape, rng, 'image'));
      layers.push(new Chain('steps', steps));
      if (this.options.family === 'nice') layers.push(new DiagonalScale(shape));
      const name = `levels.${l}`;
      const level: Level = { name, flow: new Chain(name, layers), inShape, outShape: shape };
      if (l < levels - 1) {
        const channels = shape[2]!;
        if (channels % 2 !== 0) throw new Error(`level ${l} has ${channels} channels: cannot split them in half`);
        level.split = new SplitPrior(channels / 2, channels / 2, this.cfg.split_prior === 'learned');
        shape = [shape[0]!, shape[1]!, channels / 2];
      }
      this.levels.push(level);
    }
    return shape;
  }

  private buildVectorFlow(rng: Rng): number[] {
    const shape = [...this.inputShape];
    if (shape[0]! < 2) throw new Error(`a vector flow needs at least 2 dimensions to couple, got ${shape[0]}`);
    const steps = Array.from({ length: this.cfg.depth }, (_, k) => this.buildStep(k, shape, rng, 'vector'));
    const layers: Bijector[] = [new Chain('steps', steps)];
    if (this.options.family === 'nice') layers.push(new DiagonalScale(shape));
    this.levels.push({ name: 'flow', flow: new Chain('flow', layers), inShape: shape, outShape: shape });
    return shape;
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
      layers.push(new MaskedCoupling(o.coupling, shape, type, parity, makeNet));
    } else {
      layers.push(new HalfCoupling(o.coupling, c, makeNet, 'coupling', this.cfg.scale_floor));
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

  /** The one-hot labels for a conditional model ([B, K] float), undefined for an unconditional one. */
  private oneHot(labels: Tensor | undefined, batch: number): Tensor | undefined {
    if (!this.numClasses) return undefined;
    if (!labels) throw new Error(`this model is class-conditional (${this.numClasses} classes): labels are required`);
    if (labels.rank !== 1 || labels.shape[0] !== batch) {
      throw new Error(`labels must have shape [${batch}], got [${labels.shape.join(',')}]`);
    }
    const idx = labels.dtype === 'int32' ? labels : tf.cast(labels, 'int32');
    return tf.cast(tf.oneHot(idx, this.numClasses), 'float32');
  }

  /** x -> latents through every level, with the split priors' log-density (label-free). Untidied. */
  private flowForward(x: Tensor): { zs: Tensor[]; logdet: Tensor; logpSplits: Tensor } {
    this.checkInput(x);
    const batch = x.shape[0]!;
    let h = x;
    let logdet: Tensor = tf.zeros([batch]);
    let logpSplits: Tensor = tf.zeros([batch]);
    const zs: Tensor[] = [];
    for (const level of this.levels) {
      const r = level.flow.forward(h);
      h = r.y;
      logdet = tf.add(logdet, r.logdet);
      if (level.split) {
        const [z1, z2] = splitChannels(h, level.split.keepChannels);
        const p = level.split.params(z1);
        logpSplits = tf.add(logpSplits, gaussianLogp(z2, p.mean, p.logsd));
        zs.push(z2);
        h = z1;
      }
    }
    zs.push(h);
    return { zs, logdet, logpSplits };
  }

  /** Untidied encode: callers wrap it. */
  private encodeRaw(x: Tensor, labels?: Tensor): { zs: Tensor[]; logdet: Tensor; logpz: Tensor } {
    const onehot = this.oneHot(labels, x.shape[0]!);
    const { zs, logdet, logpSplits } = this.flowForward(x);
    const p = this.top.params(onehot);
    const logpz = tf.add(logpSplits, gaussianLogp(zs[zs.length - 1]!, p.mean, p.logsd));
    return { zs, logdet, logpz };
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
    const shapes: number[][] = [];
    for (const level of this.levels) {
      if (level.split) shapes.push([...level.outShape.slice(0, -1), level.split.splitChannels]);
    }
    shapes.push([...this.top.shape]);
    return shapes;
  }

  decode(zs: Tensor[], _labels?: Tensor): Tensor {
    this.checkAlive();
    const shapes = this.latentShapes();
    if (zs.length !== shapes.length) throw new Error(`decode expects ${shapes.length} latents, got ${zs.length}`);
    zs.forEach((z, i) => {
      const want = shapes[i]!;
      if (z.rank !== want.length + 1 || want.some((d, j) => z.shape[j + 1] !== d)) {
        throw new Error(`latent ${i} must have shape [B,${want.join(',')}], got [${z.shape.join(',')}]`);
      }
    });
    return tf.tidy(() => {
      let h = zs[zs.length - 1]!;
      let next = zs.length - 2;
      for (let l = this.levels.length - 1; l >= 0; l--) {
        const level = this.levels[l]!;
        if (level.split) h = concatChannels([h, zs[next--]!]);
        h = level.flow.inverse(h).x;
      }
      return h;
    });
  }

  sample(n: number, temperature: number, rng: Rng | Rng[], labels?: Tensor): Tensor {
    this.checkAlive();
    if (!Number.isInteger(n) || n < 1) throw new Error(`sample count must be a positive integer, got ${n}`);
    if (Array.isArray(rng) && rng.length !== n) throw new Error(`sample: ${rng.length} noise streams for ${n} samples`);
    return tf.tidy(() => {
      const onehot = this.oneHot(labels, n);
      const p = this.top.params(onehot);
      let h = gaussianSample([n, ...this.top.shape], temperature, rng, p.mean, p.logsd);
      for (let l = this.levels.length - 1; l >= 0; l--) {
        const level = this.levels[l]!;
        if (level.split) {
          const sp = level.split.params(h);
          const z2 = gaussianSample([n, ...level.outShape.slice(0, -1), level.split.splitChannels], temperature, rng, sp.mean, sp.logsd);
          h = concatChannels([h, z2]);
        }
        h = level.flow.inverse(h).x;
      }
      return h;
    });
  }

  private logitsOf(top: Tensor): Tensor | undefined {
    if (!this.classifier) return undefined;
    return this.classifier.apply(top.rank === 4 ? tf.mean(top, [1, 2]) : top);
  }

  classLogits(x: Tensor): Tensor | undefined {
    if (!this.classifier) return undefined;
    return tf.tidy(() => {
      const { zs } = this.flowForward(x);
      return this.logitsOf(zs[zs.length - 1]!)!;
    });
  }

  logProbAndLogits(x: Tensor, labels?: Tensor): { logp: Tensor; logits?: Tensor } {
    return tf.tidy(() => {
      const { zs, logdet, logpz } = this.encodeRaw(x, labels);
      const logits = this.logitsOf(zs[zs.length - 1]!);
      const logp = tf.add(logpz, logdet);
      return logits ? { logp, logits } : { logp };
    });
  }

  initialize(x: Tensor, _labels?: Tensor): void {
    this.checkInput(x);
    // No early return on `initialized`: that reads a flag back from the device. ActNorm's own
    // initialize is a no-op once done, so a second call changes nothing.
    tf.tidy(() => {
      let h = x;
      for (const level of this.levels) {
        h = level.flow.initializeThrough(h);
        if (level.split) h = splitChannels(h, level.split.keepChannels)[0];
      }
    });
  }

  get initialized(): boolean {
    return this.namedLayers().every(({ bijector }) => !(bijector instanceof ActNorm) || bijector.isInitialized);
  }

  // ---- variables ----

  variables(): NamedVariable[] {
    const out: NamedVariable[] = [];
    for (const level of this.levels) {
      out.push(...prefixed(level.name, level.flow.variables()));
      if (level.split) out.push(...prefixed(`${level.name}.split`, level.split.variables()));
    }
    out.push(...prefixed('top', this.top.variables()));
    if (this.classifier) out.push(...prefixed('classifier', this.classifier.variables()));
    return out;
  }

  trainableVariables(): tf.Variable[] {
    return this.variables()
      .map(([, v]) => v)
      .filter((v) => v.trainable);
  }

  namedLayers(): Array<{ name: string; bijector: Bijector; inputShape: number[] }> {
    const out: Array<{ name: string; bijector: Bijector; inputShape: number[] }> = [];
    for (const level of this.levels) {
      let shape = level.inShape;
      for (const leaf of level.flow.leaves()) {
        out.push({ ...leaf, inputShape: shape });
        if (leaf.bijector instanceof Squeeze) shape = Squeeze.outputShape(shape);
      }
    }
    return out;
  }

  dispose(): void {
    if (this.disposed) return;
    for (const [, v] of this.variables()) v.dispose();
    this.disposed = true;
  }
}
