// Elementwise transformers: the invertible map a coupling applies to the values it transforms, given
// parameters the coupling's network computed from the values it keeps (cf. distrax's MaskedCoupling
// bijector argument, nflows' coupling subclasses). A coupling splits, conditions and merges; a new
// transformer (e.g. a rational-quadratic spline) is one class here.
import { tf, type Tensor } from '../tf.js';
import { type ForwardResult, type InverseResult, type NamedVariable, newVariable, sumExceptBatch } from './bijector.js';
import { roundToGrid } from './discrete.js';

export interface Transformer {
  readonly name: string;
  /** Network outputs per transformed value (the net's output is split into this many interleaved heads). */
  readonly heads: number;
  /**
   * The elementwise parameters from the network's heads. All zeros must be the identity map: a masked
   * coupling zeroes them where it keeps the input.
   */
  parameters(heads: Tensor[]): Tensor[];
  /** y and log|det ∂y/∂x| summed per example. */
  forward(x: Tensor, params: Tensor[]): ForwardResult;
  inverse(y: Tensor, params: Tensor[]): InverseResult;
  /** Its own variables, if any (the coupling lists them before its network's). */
  variables(): NamedVariable[];
}

/** NICE: y = x + t. Volume-preserving. */
export class AdditiveTransformer implements Transformer {
  readonly name = 'additive';
  readonly heads = 1;
  parameters(heads: Tensor[]): Tensor[] {
    return heads;
  }
  forward(x: Tensor, [shift]: Tensor[]): ForwardResult {
    return { y: tf.add(x, shift!), logdet: tf.zeros([x.shape[0]!]) };
  }
  inverse(y: Tensor, [shift]: Tensor[]): InverseResult {
    return { x: tf.sub(y, shift!), logdet: tf.zeros([y.shape[0]!]) };
  }
  variables(): NamedVariable[] {
    return [];
  }
}

/**
 * IDF: y = x + round(t), t rounded to the data grid (step 1/bins, straight-through gradient), so grid
 * values map to grid values exactly and the inverse subtracts the very same integer.
 */
export class RoundedAdditiveTransformer implements Transformer {
  readonly name = 'rounded-additive';
  readonly heads = 1;
  constructor(readonly bins: number) {}
  parameters([shift]: Tensor[]): Tensor[] {
    return [roundToGrid(shift!, this.bins)];
  }
  forward(x: Tensor, [shift]: Tensor[]): ForwardResult {
    return { y: tf.add(x, shift!), logdet: tf.zeros([x.shape[0]!]) };
  }
  inverse(y: Tensor, [shift]: Tensor[]): InverseResult {
    return { x: tf.sub(y, shift!), logdet: tf.zeros([y.shape[0]!]) };
  }
  variables(): NamedVariable[] {
    return [];
  }
}

/**
 * Glow: y = (x + shift) * scale, scale = floor + (1 - floor) * sigmoid(raw + 2) from the heads
 * (shift, raw). The floor (0 in openai/glow) bounds the inverse's gain 1/scale: trained Glows push some
 * scales to ~1e-5, and the inverse then multiplies float32 rounding from the layers above by 1e5.
 * Parameters: (shift, log scale).
 */
export class SigmoidAffineTransformer implements Transformer {
  readonly name = 'affine';
  readonly heads = 2;
  constructor(readonly scaleFloor = 0) {}
  parameters([shift, raw]: Tensor[]): Tensor[] {
    const z = tf.add(raw!, 2);
    // log sigmoid(z) = -softplus(-z); not tf.logSigmoid, whose gradient reads a tensor that
    // tf.grad's forward tidy has already disposed when z is an intermediate.
    if (this.scaleFloor === 0) return [shift!, tf.neg(tf.softplus(tf.neg(z)))];
    return [shift!, tf.log(tf.add(this.scaleFloor, tf.mul(1 - this.scaleFloor, tf.sigmoid(z))))];
  }
  forward(x: Tensor, [shift, logScale]: Tensor[]): ForwardResult {
    return { y: tf.mul(tf.add(x, shift!), tf.exp(logScale!)), logdet: sumExceptBatch(logScale!) };
  }
  inverse(y: Tensor, [shift, logScale]: Tensor[]): InverseResult {
    return { x: tf.sub(tf.mul(y, tf.exp(tf.neg(logScale!))), shift!), logdet: tf.neg(sumExceptBatch(logScale!)) };
  }
  variables(): NamedVariable[] {
    return [];
  }
}

/**
 * RealNVP: y = x * exp(s) + t with s = scale * tanh(raw) from the heads (t, raw) and a learned
 * per-channel scale (checkpoint name `scale`, initially 1). Parameters: (t, s).
 */
export class TanhAffineTransformer implements Transformer {
  readonly name = 'affine';
  readonly heads = 2;
  readonly scale: tf.Variable;
  constructor(channels: number) {
    this.scale = newVariable(new Float32Array(channels).fill(1), [channels]);
  }
  parameters([t, raw]: Tensor[]): Tensor[] {
    return [t!, tf.mul(this.scale, tf.tanh(raw!))];
  }
  forward(x: Tensor, [t, s]: Tensor[]): ForwardResult {
    return { y: tf.add(tf.mul(x, tf.exp(s!)), t!), logdet: sumExceptBatch(s!) };
  }
  inverse(y: Tensor, [t, s]: Tensor[]): InverseResult {
    return { x: tf.mul(tf.sub(y, t!), tf.exp(tf.neg(s!))), logdet: tf.neg(sumExceptBatch(s!)) };
  }
  variables(): NamedVariable[] {
    return [['scale', this.scale]];
  }
}
