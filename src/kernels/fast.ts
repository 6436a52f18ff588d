// Ops for the CPU backends (wasm, cpu): custom gradients that avoid their slow kernels, and on wasm our
// own SIMD kernels (cpu-paths.ts, wasm-kernels.ts). Whatever has no fast path here is stock.
import { tf, type Tensor } from '../tf.js';
import type { Ops } from './ops.js';
import { luInverseOnHost, luWeightOnHost, matrixInverseOnHost, matrixLogAbsDetOnHost } from './lu.js';
import { adamStep, affineCouplingFused, convLayer, denseLayer, fusedCouplingAvailable, lerp, matMul } from './cpu-paths.js';

// tf.customGrad's typings take a variadic (...args: Tensor[]) function, hence the casts.
type CustomGradFn = Parameters<typeof tf.customGrad>[0];

/**
 * x [..., C] times a constant 0/1 matrix m [C, K] over the last axis, with the gradient wrt x only
 * (dy · mᵀ): as a plain matMul the backward pass would also compute the unused gradient of m,
 * transposing the whole activation to do it.
 */
function mixChannels(x: Tensor, m: Float32Array, c: number, k: number): Tensor {
  const rows = x.size / c;
  const f = tf.customGrad(((xx: Tensor) => ({
    value: tf.reshape(matMul(tf.reshape(xx, [rows, c]), tf.tensor2d(m, [c, k])), [...xx.shape.slice(0, -1), k]),
    gradFunc: (dy: Tensor) => {
      const mt = new Float32Array(k * c);
      for (let i = 0; i < c; i++) for (let j = 0; j < k; j++) mt[j * c + i] = m[i * k + j]!;
      return tf.reshape(matMul(tf.reshape(dy, [rows, k]), tf.tensor2d(mt, [k, c])), xx.shape);
    },
  })) as unknown as CustomGradFn) as unknown as (x: Tensor) => Tensor;
  return f(x);
}

/**
 * x[..., columns] as one matmul with a 0/1 matrix (exact for finite values: one product plus zeros).
 * Channel slices and concats of activations are per-row copy loops on wasm (4-5x slower than this
 * for the few channels a flow has), and their gradients are the same loops again. Not for GPUs:
 * there a slice is one kernel, and 0·Inf = NaN would spread one bad channel into all.
 */
function selectChannels(x: Tensor, columns: readonly number[]): Tensor {
  const c = x.shape[x.rank - 1]!;
  const k = columns.length;
  const m = new Float32Array(c * k);
  columns.forEach((col, j) => (m[col * k + j] = 1));
  return mixChannels(x, m, c, k);
}

/** x[..., begin : begin + size] as one 0/1 matmul (see selectChannels). */
function sliceChannels(x: Tensor, begin: number, size: number): Tensor {
  return selectChannels(x, Array.from({ length: size }, (_, i) => begin + i));
}

/** Head j = h[..., j::heads], each one 0/1 matmul (see selectChannels). */
function interleavedHeads(h: Tensor, heads: number): Tensor[] {
  const c = h.shape[h.rank - 1]!;
  return Array.from({ length: heads }, (_, j) => selectChannels(h, Array.from({ length: c / heads }, (_, i) => i * heads + j)));
}

/** Concatenation along the last axis as a sum of 0/1 embedding matmuls (see selectChannels). */
function concatChannels(parts: Tensor[]): Tensor {
  const sizes = parts.map((p) => p.shape[p.rank - 1]!);
  const total = sizes.reduce((a, b) => a + b, 0);
  let offset = 0;
  let out: Tensor | null = null;
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    const k = sizes[i]!;
    const m = new Float32Array(k * total);
    for (let j = 0; j < k; j++) m[j * total + offset + j] = 1;
    offset += k;
    const placed = mixChannels(p, m, k, total);
    out = out ? tf.add(out, placed) : placed;
  }
  return out!;
}

export const fastOps: Ops = {
  name: 'fast',
  hostMemory: true,
  matMul,
  denseLayer,
  convLayer,
  sliceChannels,
  interleavedHeads,
  concatChannels,
  luWeight: luWeightOnHost,
  luInverse: luInverseOnHost,
  matrixLogAbsDet: matrixLogAbsDetOnHost,
  matrixInverse: matrixInverseOnHost,
  affineCouplingKernel: () => (fusedCouplingAvailable() ? affineCouplingFused : null),
  adamStep,
  lerp,
};
