// The networks inside couplings and priors. Every convolution and matmul goes through
// the backend's Ops (src/kernels/); biases are added after the op. The last layer of each network is
// zero-initialised and multiplied by exp(3 * logscale) (openai/glow's conv2d_zeros), so an
// untrained coupling outputs zeros.
import { tf, type Tensor } from '../tf.js';
import type { Rng } from '../rng.js';
import { ops, type Activation } from '../kernels/index.js';
import { type NamedVariable, interleavedHeads, newVariable, prefixed } from './bijector.js';

export interface Net {
  apply(x: Tensor): Tensor;
  /**
   * The output as `heads` interleaved groups: head j = channels j::heads (openai/glow's h[..., 0::2],
   * h[..., 1::2]).
   */
  applyHeads(x: Tensor, heads: number): Tensor[];
  variables(): NamedVariable[];
}

/** Uniform(+-1/sqrt(fan_in)): PyTorch's default weight scale, as the reference Glow uses. */
function initWeights(n: number, fanIn: number, rng: Rng): Float32Array {
  const bound = 1 / Math.sqrt(fanIn);
  return rng.uniformArray(n, -bound, bound);
}

/** Stride-1 'same' convolution with bias, then the activation (one fused op, the backend's Ops (src/kernels/)). */
export class Conv implements Net {
  readonly kernel: tf.Variable;
  readonly bias: tf.Variable;
  constructor(
    inChannels: number,
    outChannels: number,
    size: number,
    rng: Rng,
    readonly activation: Activation = 'linear',
  ) {
    const n = size * size * inChannels * outChannels;
    this.kernel = newVariable(initWeights(n, size * size * inChannels, rng), [size, size, inChannels, outChannels]);
    this.bias = newVariable(new Float32Array(outChannels), [outChannels]);
  }
  apply(x: Tensor): Tensor {
    return ops().convLayer(x, this.kernel, this.bias, this.activation);
  }
  applyHeads(x: Tensor, heads: number): Tensor[] {
    return interleavedHeads(this.apply(x), heads);
  }
  variables(): NamedVariable[] {
    return [
      ['kernel', this.kernel],
      ['bias', this.bias],
    ];
  }
}

/** Zero-initialised convolution scaled by exp(3 * logscale) per output channel. */
export class ZeroConv implements Net {
  readonly kernel: tf.Variable;
  readonly bias: tf.Variable;
  readonly logscale: tf.Variable;
  constructor(inChannels: number, outChannels: number, size = 3) {
    this.kernel = newVariable(new Float32Array(size * size * inChannels * outChannels), [size, size, inChannels, outChannels]);
    this.bias = newVariable(new Float32Array(outChannels), [outChannels]);
    this.logscale = newVariable(new Float32Array(outChannels), [outChannels]);
  }
  apply(x: Tensor): Tensor {
    return tf.mul(ops().convLayer(x, this.kernel, this.bias, 'linear'), tf.exp(tf.mul(this.logscale, 3)));
  }
  applyHeads(x: Tensor, heads: number): Tensor[] {
    return interleavedHeads(this.apply(x), heads);
  }
  variables(): NamedVariable[] {
    return [
      ['kernel', this.kernel],
      ['bias', this.bias],
      ['logscale', this.logscale],
    ];
  }
}

/** Dense layer with bias on [B, in], then the activation (one fused op). */
export class Dense implements Net {
  readonly kernel: tf.Variable;
  readonly bias: tf.Variable;
  constructor(
    inputs: number,
    outputs: number,
    rng: Rng,
    readonly activation: Activation = 'linear',
  ) {
    this.kernel = newVariable(initWeights(inputs * outputs, inputs, rng), [inputs, outputs]);
    this.bias = newVariable(new Float32Array(outputs), [outputs]);
  }
  apply(x: Tensor): Tensor {
    return ops().denseLayer(x, this.kernel, this.bias, this.activation);
  }
  applyHeads(x: Tensor, heads: number): Tensor[] {
    return interleavedHeads(this.apply(x), heads);
  }
  variables(): NamedVariable[] {
    return [
      ['kernel', this.kernel],
      ['bias', this.bias],
    ];
  }
}

/** Zero-initialised dense layer scaled by exp(3 * logscale) (openai/glow's linear_zeros). */
export class ZeroDense implements Net {
  readonly kernel: tf.Variable;
  readonly bias: tf.Variable;
  readonly logscale: tf.Variable;
  constructor(inputs: number, outputs: number) {
    this.kernel = newVariable(new Float32Array(inputs * outputs), [inputs, outputs]);
    this.bias = newVariable(new Float32Array(outputs), [outputs]);
    this.logscale = newVariable(new Float32Array(outputs), [outputs]);
  }
  apply(x: Tensor): Tensor {
    return tf.mul(ops().denseLayer(x, this.kernel, this.bias, 'linear'), tf.exp(tf.mul(this.logscale, 3)));
  }
  applyHeads(x: Tensor, heads: number): Tensor[] {
    return interleavedHeads(this.apply(x), heads);
  }
  variables(): NamedVariable[] {
    return [
      ['kernel', this.kernel],
      ['bias', this.bias],
      ['logscale', this.logscale],
    ];
  }
}

/** Glow's coupling network: conv3x3(width) -> ReLU -> conv1x1(width) -> ReLU -> zero conv3x3(out). */
export class ConvNet implements Net {
  readonly conv1: Conv;
  readonly conv2: Conv;
  readonly out: ZeroConv;
  constructor(inChannels: number, width: number, outChannels: number, rng: Rng) {
    this.conv1 = new Conv(inChannels, width, 3, rng, 'relu');
    this.conv2 = new Conv(width, width, 1, rng, 'relu');
    this.out = new ZeroConv(width, outChannels, 3);
  }
  private hidden(x: Tensor): Tensor {
    return this.conv2.apply(this.conv1.apply(x));
  }
  apply(x: Tensor): Tensor {
    return this.out.apply(this.hidden(x));
  }
  applyHeads(x: Tensor, heads: number): Tensor[] {
    return this.out.applyHeads(this.hidden(x), heads);
  }
  variables(): NamedVariable[] {
    return [
      ...prefixed('conv1', this.conv1.variables()),
      ...prefixed('conv2', this.conv2.variables()),
      ...prefixed('out', this.out.variables()),
    ];
  }
}

/** The vector-flow coupling network: hiddenLayers dense ReLU layers of `width`, then a zero dense. */
export class MLP implements Net {
  readonly hidden: Dense[] = [];
  readonly out: ZeroDense;
  constructor(inputs: number, width: number, hiddenLayers: number, outputs: number, rng: Rng) {
    let n = inputs;
    for (let i = 0; i < hiddenLayers; i++) {
      this.hidden.push(new Dense(n, width, rng, 'relu'));
      n = width;
    }
    this.out = new ZeroDense(n, outputs);
  }
  private features(x: Tensor): Tensor {
    let h = x;
    for (const layer of this.hidden) h = layer.apply(h);
    return h;
  }
  apply(x: Tensor): Tensor {
    return this.out.apply(this.features(x));
  }
  applyHeads(x: Tensor, heads: number): Tensor[] {
    return this.out.applyHeads(this.features(x), heads);
  }
  variables(): NamedVariable[] {
    return [...this.hidden.flatMap((l, i) => prefixed(`dense${i}`, l.variables())), ...prefixed('out', this.out.variables())];
  }
}
