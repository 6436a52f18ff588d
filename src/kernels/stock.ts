// Ops from stock TensorFlow.js kernels and their own gradients: the right choice on GPU backends
// (webgpu, tensorflow), where each of these is one device kernel and nothing is read back to the host.
import { tf, type Tensor } from '../tf.js';
import type { Activation, AdamOptions, Ops } from './ops.js';
import { freeMatrixOnDevice, luInverseByOps, luWeightByOps } from './lu.js';

/** x[..., begin : begin + size] as one slice. */
function sliceChannels(x: Tensor, begin: number, size: number): Tensor {
  const last = x.rank - 1;
  return tf.slice(
    x,
    x.shape.map((_, i) => (i === last ? begin : 0)),
    x.shape.map((d, i) => (i === last ? size : d)),
  );
}

/** Head j = h[..., j::heads] as one reshape and split: no gather (whose gradient reads indices on the host). */
function interleavedHeads(h: Tensor, heads: number): Tensor[] {
  const c = h.shape[h.rank - 1]!;
  const outer = h.shape.slice(0, -1);
  const grouped = tf.reshape(h, [...outer, c / heads, heads]);
  return tf.split(grouped, heads, -1).map((part) => tf.reshape(part, [...outer, c / heads]));
}

/** The tf-op Adam/Adamax update (the reference the fused wasm kernel equals bit for bit). */
export function adamStepByOps(param: Tensor, m: Tensor, v: Tensor, g: Tensor, o: AdamOptions): [Tensor, Tensor, Tensor] {
  return tf.tidy(() => {
    const m2 = tf.add(tf.mul(m, o.beta1), tf.mul(g, 1 - o.beta1));
    const mHat = tf.div(m2, 1 - Math.pow(o.beta1, o.t));
    let v2: Tensor;
    let step: Tensor;
    if (o.adamax) {
      v2 = tf.maximum(tf.mul(v, o.beta2), tf.abs(g));
      step = tf.div(mHat, tf.add(v2, o.eps));
    } else {
      v2 = tf.add(tf.mul(v, o.beta2), tf.mul(tf.square(g), 1 - o.beta2));
      step = tf.div(mHat, tf.add(tf.sqrt(tf.div(v2, 1 - Math.pow(o.beta2, o.t))), o.eps));
    }
    return [tf.sub(param, tf.mul(step, o.lr)), m2, v2] as [Tensor, Tensor, Tensor];
  });
}

export function lerpByOps(a: Tensor, b: Tensor, w: number): Tensor {
  return tf.tidy(() => tf.add(tf.mul(a, w), tf.mul(b, 1 - w)));
}

/**
 * One reduction on the device. The per-tensor sums are stacked, not added with addN: webgpu's AddN binds
 * every input at once and fails beyond maxStorageBuffersPerShaderStage (8 on many adapters).
 */
export function globalNormByOps(tensors: Tensor[]): tf.Scalar {
  return tf.tidy(() => tf.sqrt(tf.sum(tf.stack(tensors.map((t) => tf.sum(tf.square(t)))))) as tf.Scalar);
}

export const stockOps: Ops = {
  name: 'stock',
  hostMemory: false,
  matMul: (a, b) => tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D),
  denseLayer: (x: Tensor, w: Tensor, bias: Tensor, activation: Activation) =>
    tf.fused.matMul({ a: x as tf.Tensor2D, b: w as tf.Tensor2D, bias, activation }),
  convLayer: (x: Tensor, filter: Tensor, bias: Tensor, activation: Activation) =>
    tf.fused.conv2d({ x: x as tf.Tensor4D, filter: filter as tf.Tensor4D, strides: 1, pad: 'same', bias, activation }),
  sliceChannels,
  interleavedHeads,
  concatChannels: (parts) => (parts.length === 1 ? tf.clone(parts[0]!) : tf.concat(parts, -1)),
  affineCouplingKernel: () => null,
  luWeight: luWeightByOps,
  luInverse: luInverseByOps,
  matrixLogAbsDet: freeMatrixOnDevice,
  matrixInverse: freeMatrixOnDevice,
  adamStep: adamStepByOps,
  lerp: lerpByOps,
};
