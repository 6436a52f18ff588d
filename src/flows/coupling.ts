// Couplings as splitter x conditioner x transformer: the splitter decides which values condition and
// which are transformed, the conditioner is the network that maps the first to parameters, and the
// transformer (src/flows/transformers.ts) is the elementwise invertible map of the second. The
// conditioning part passes through unchanged, so the inverse only needs the same network.
import { tf, type Tensor } from '../tf.js';
import {
  type Bijector,
  type ForwardResult,
  type InverseResult,
  type NamedVariable,
  prefixed,
  concatChannels,
  sameAs,
  sameWithChannels,
  splitChannels,
} from './bijector.js';
import { ops } from '../kernels/index.js';
import type { Net } from './nets.js';
import { AdditiveTransformer, SigmoidAffineTransformer, TanhAffineTransformer, type Transformer } from './transformers.js';

export type CouplingKind = 'affine' | 'additive';
/** Builds the coupling's network (the conditioner) from its input and output channel counts. */
export type NetFactory = (inChannels: number, outChannels: number) => Net;

/** The network's output as the transformer's heads (one head: the output itself). */
function conditioner(net: Net, input: Tensor, heads: number): Tensor[] {
  return heads === 1 ? [net.apply(input)] : net.applyHeads(input, heads);
}

/**
 * Splits the channel axis into (a, b) = (first floor(C/2), rest); a conditions b:
 * y = (a, transformer(b; NN(a))). NICE: additive; Glow: SigmoidAffineTransformer.
 */
export class HalfCoupling implements Bijector {
  readonly net: Net;
  readonly splitAt: number;
  constructor(
    readonly channels: number,
    readonly transformer: Transformer,
    makeNet: NetFactory,
    readonly name = 'coupling',
  ) {
    if (channels < 2) throw new Error(`a coupling needs at least 2 channels to split, got ${channels}`);
    this.splitAt = Math.floor(channels / 2);
    this.net = makeNet(this.splitAt, transformer.heads * (channels - this.splitAt));
  }

  outputShape(shape: readonly number[]): number[] {
    return sameWithChannels(shape, this.channels);
  }

  /**
   * Glow's affine coupling as one fused kernel where the backend's Ops have one that applies now (wasm in
   * eval and sampling: one kernel instead of ~12); null otherwise.
   */
  private fused(x: Tensor, inverse: boolean): { y: Tensor; logdet: Tensor } | null {
    if (!(this.transformer instanceof SigmoidAffineTransformer)) return null;
    const kernel = ops().affineCouplingKernel();
    if (!kernel) return null;
    const a = ops().sliceChannels(x, 0, this.splitAt);
    return kernel(x, this.net.apply(a), this.splitAt, this.transformer.scaleFloor, inverse);
  }

  private parameters(a: Tensor): Tensor[] {
    return this.transformer.parameters(conditioner(this.net, a, this.transformer.heads));
  }

  forward(x: Tensor): ForwardResult {
    const fused = this.fused(x, false);
    if (fused) return fused;
    const [a, b] = splitChannels(x, this.splitAt);
    const r = this.transformer.forward(b, this.parameters(a));
    return { y: concatChannels([a, r.y]), logdet: r.logdet };
  }

  inverse(y: Tensor): InverseResult {
    const fused = this.fused(y, true);
    if (fused) return { x: fused.y, logdet: fused.logdet };
    const [a, yb] = splitChannels(y, this.splitAt);
    const r = this.transformer.inverse(yb, this.parameters(a));
    return { x: concatChannels([a, r.x]), logdet: r.logdet };
  }

  variables(): NamedVariable[] {
    return [...this.transformer.variables(), ...prefixed('nn', this.net.variables())];
  }
}

export type MaskType = 'checkerboard' | 'channel';

/**
 * RealNVP's binary mask for one example. Images [H,W,C]: checkerboard marks (h + w + parity) even,
 * channel marks the first floor(C/2) channels (the second half when parity is 1). Vectors [D]:
 * checkerboard alternates dimensions, channel takes halves. 1 = conditioning (passed through).
 */
export function couplingMask(shape: readonly number[], type: MaskType, parity: number): Float32Array {
  const c = shape[shape.length - 1]!;
  const size = shape.reduce((p, d) => p * d, 1);
  const m = new Float32Array(size);
  const half = Math.floor(c / 2);
  const [h, w] = shape.length === 3 ? [shape[0]!, shape[1]!] : [1, 1];
  for (let i = 0; i < h; i++) {
    for (let j = 0; j < w; j++) {
      for (let k = 0; k < c; k++) {
        let on: boolean;
        if (type === 'channel') on = (k < half) !== (parity === 1);
        else if (shape.length === 3) on = (i + j + parity) % 2 === 0;
        else on = (k + parity) % 2 === 0;
        m[(i * w + j) * c + k] = on ? 1 : 0;
      }
    }
  }
  return m;
}

/**
 * RealNVP coupling with a binary mask m: the network sees m*x, and the transformer's parameters are
 * zeroed where m = 1, so those values pass through (y = m*x + (1-m)*transformer(x)).
 */
export class MaskedCoupling implements Bijector {
  readonly net: Net;
  readonly mask: Float32Array;
  constructor(
    /** One example's shape: [H,W,C] or [D]. */
    readonly shape: number[],
    readonly maskType: MaskType,
    readonly parity: number,
    readonly transformer: Transformer,
    makeNet: NetFactory,
    readonly name = 'coupling',
  ) {
    const c = shape[shape.length - 1]!;
    this.mask = couplingMask(shape, maskType, parity);
    this.net = makeNet(c, transformer.heads * c);
  }

  outputShape(shape: readonly number[]): number[] {
    return sameAs(shape, this.shape);
  }

  /** The transformer's parameters, zero at the conditioning positions. */
  private parameters(x: Tensor): Tensor[] {
    const m = tf.tensor(this.mask, this.shape);
    const free = tf.sub(1, m);
    const heads = conditioner(this.net, tf.mul(x, m), this.transformer.heads);
    return this.transformer.parameters(heads).map((p) => tf.mul(p, free));
  }

  forward(x: Tensor): ForwardResult {
    return this.transformer.forward(x, this.parameters(x));
  }

  inverse(y: Tensor): InverseResult {
    // m*y = m*x, so the network sees exactly what it saw going forward.
    return this.transformer.inverse(y, this.parameters(y));
  }

  variables(): NamedVariable[] {
    return [...this.transformer.variables(), ...prefixed('nn', this.net.variables())];
  }
}

/** The transformer of a half coupling of this kind: Glow's sigmoid affine (with its scale floor) or NICE's additive. */
export function halfCouplingTransformer(kind: CouplingKind, scaleFloor = 0): Transformer {
  return kind === 'affine' ? new SigmoidAffineTransformer(scaleFloor) : new AdditiveTransformer();
}

/** The transformer of a RealNVP masked coupling of this kind over `channels` channels. */
export function maskedCouplingTransformer(kind: CouplingKind, channels: number): Transformer {
  return kind === 'affine' ? new TanhAffineTransformer(channels) : new AdditiveTransformer();
}
