// Coupling layers: half-split couplings (NICE additive, Glow affine) and RealNVP's masked couplings.
// The conditioning part passes through unchanged, so the inverse only needs the same network.
import { tf, type Tensor } from '../tf.js';
import {
  type Bijector,
  type ForwardResult,
  type InverseResult,
  type NamedVariable,
  newVariable,
  prefixed,
  concatChannels,
  splitChannels,
  selectChannels,
  sumExceptBatch,
} from './bijector.js';
import { ops } from '../kernels/index.js';
import type { Net } from './nets.js';

export type CouplingKind = 'affine' | 'additive';
/** Builds the coupling's network from its input and output channel counts. */
export type NetFactory = (inChannels: number, outChannels: number) => Net;

/**
 * Splits the channel axis into (a, b) = (first floor(C/2), rest); a conditions b.
 * additive (NICE): y_b = x_b + t(x_a). affine (Glow): h = NN(x_a), shift = h[..., 0::2],
 * scale = floor + (1 - floor) * sigmoid(h[..., 1::2] + 2), y_b = (x_b + shift) * scale.
 * The floor (0 in openai/glow) bounds the inverse's gain 1/scale: trained Glows push some scales to
 * ~1e-5, and the inverse then multiplies float32 rounding from the layers above by 1e5.
 */
export class HalfCoupling implements Bijector {
  readonly net: Net;
  readonly splitAt: number;
  constructor(
    readonly kind: CouplingKind,
    readonly channels: number,
    makeNet: NetFactory,
    readonly name = 'coupling',
    readonly scaleFloor = 0,
  ) {
    if (channels < 2) throw new Error(`a coupling needs at least 2 channels to split, got ${channels}`);
    this.splitAt = Math.floor(channels / 2);
    const nb = channels - this.splitAt;
    this.net = makeNet(this.splitAt, kind === 'affine' ? 2 * nb : nb);
  }

  /** (shift, log scale) from the conditioning half; log scale is null for additive. */
  private params(a: Tensor): [Tensor, Tensor | null] {
    if (this.kind === 'additive') return [this.net.apply(a), null];
    const [shift, raw] = this.net.applyHeads(a, 2) as [Tensor, Tensor];
    const z = tf.add(raw, 2);
    // log sigmoid(z) = -softplus(-z); not tf.logSigmoid, whose gradient reads a tensor that
    // tf.grad's forward tidy has already disposed when z is an intermediate.
    if (this.scaleFloor === 0) return [shift, tf.neg(tf.softplus(tf.neg(z)))];
    return [shift, tf.log(tf.add(this.scaleFloor, tf.mul(1 - this.scaleFloor, tf.sigmoid(z))))];
  }

  /**
   * Affine couplings as one fused kernel where the backend's Ops have one that applies now (wasm in eval
   * and sampling: one kernel instead of ~12); null otherwise.
   */
  private fused(x: Tensor, inverse: boolean): { y: Tensor; logdet: Tensor } | null {
    if (this.kind !== 'affine') return null;
    const kernel = ops().affineCouplingKernel();
    if (!kernel) return null;
    const a = selectChannels(x, Array.from({ length: this.splitAt }, (_, i) => i));
    return kernel(x, this.net.apply(a), this.splitAt, this.scaleFloor, inverse);
  }

  forward(x: Tensor): ForwardResult {
    const fused = this.fused(x, false);
    if (fused) return fused;
    const [a, b] = splitChannels(x, this.splitAt);
    const [shift, logScale] = this.params(a);
    if (!logScale) return { y: concatChannels([a, tf.add(b, shift)]), logdet: tf.zeros([x.shape[0]!]) };
    const yb = tf.mul(tf.add(b, shift), tf.exp(logScale));
    return { y: concatChannels([a, yb]), logdet: sumExceptBatch(logScale) };
  }

  inverse(y: Tensor): InverseResult {
    const fused = this.fused(y, true);
    if (fused) return { x: fused.y, logdet: fused.logdet };
    const [a, yb] = splitChannels(y, this.splitAt);
    const [shift, logScale] = this.params(a);
    if (!logScale) return { x: concatChannels([a, tf.sub(yb, shift)]), logdet: tf.zeros([y.shape[0]!]) };
    const xb = tf.sub(tf.mul(yb, tf.exp(tf.neg(logScale))), shift);
    return { x: concatChannels([a, xb]), logdet: tf.neg(sumExceptBatch(logScale)) };
  }

  variables(): NamedVariable[] {
    return prefixed('nn', this.net.variables());
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
 * RealNVP coupling with a binary mask m: y = m*x + (1-m)*(x*exp(s) + t), (s, t) = NN(m*x),
 * s = scale * tanh(raw) with a learned per-channel scale; additive drops s.
 */
export class MaskedCoupling implements Bijector {
  readonly net: Net;
  readonly mask: Float32Array;
  readonly scale?: tf.Variable;
  constructor(
    readonly kind: CouplingKind,
    /** One example's shape: [H,W,C] or [D]. */
    readonly shape: number[],
    readonly maskType: MaskType,
    readonly parity: number,
    makeNet: NetFactory,
    readonly name = 'coupling',
    readonly scaleFloor = 0,
  ) {
    const c = shape[shape.length - 1]!;
    this.mask = couplingMask(shape, maskType, parity);
    this.net = makeNet(c, kind === 'affine' ? 2 * c : c);
    if (kind === 'affine') this.scale = newVariable(new Float32Array(c).fill(1), [c]);
  }

  /** (t, s) restricted to the transformed positions; s is null for additive. */
  private params(x: Tensor): [Tensor, Tensor | null] {
    const m = tf.tensor(this.mask, this.shape);
    const free = tf.sub(1, m);
    const xm = tf.mul(x, m);
    if (this.kind === 'additive') return [tf.mul(this.net.apply(xm), free), null];
    const [t, raw] = this.net.applyHeads(xm, 2) as [Tensor, Tensor];
    const s = tf.mul(tf.mul(this.scale!, tf.tanh(raw)), free);
    return [tf.mul(t, free), s];
  }

  forward(x: Tensor): ForwardResult {
    const [t, s] = this.params(x);
    if (!s) return { y: tf.add(x, t), logdet: tf.zeros([x.shape[0]!]) };
    return { y: tf.add(tf.mul(x, tf.exp(s)), t), logdet: sumExceptBatch(s) };
  }

  inverse(y: Tensor): InverseResult {
    // m*y = m*x, so the network sees exactly what it saw going forward.
    const [t, s] = this.params(y);
    if (!s) return { x: tf.sub(y, t), logdet: tf.zeros([y.shape[0]!]) };
    return { x: tf.mul(tf.sub(y, t), tf.exp(tf.neg(s))), logdet: tf.neg(sumExceptBatch(s)) };
  }

  variables(): NamedVariable[] {
    const own: NamedVariable[] = this.scale ? [['scale', this.scale]] : [];
    return [...own, ...prefixed('nn', this.net.variables())];
  }
}
