// The one small interface every invertible layer implements (cf. nflows' Transform,
// distrax's Bijector): forward and inverse each return the result and log|det J| per example.
import { tf, type Tensor } from '../tf.js';
import { matMul } from '../backend/ops.js';

export interface ForwardResult {
  y: Tensor;
  /** log|det ∂y/∂x| per example, shape [batch]. */
  logdet: Tensor;
}
export interface InverseResult {
  x: Tensor;
  /** log|det ∂x/∂y| per example, shape [batch]; equals minus the forward logdet. */
  logdet: Tensor;
}

/** A named variable: stable dotted names are what checkpoints store. */
export type NamedVariable = [name: string, variable: tf.Variable];

export interface Bijector {
  readonly name: string;
  forward(x: Tensor): ForwardResult;
  inverse(y: Tensor): InverseResult;
  /** Every variable (trainable and state), local names; containers prefix them. */
  variables(): NamedVariable[];
  /** Data-dependent initialisation from one batch (ActNorm). Absent when not needed. */
  initialize?(x: Tensor): void;
}

// ---- Small helpers shared by the layers ----

/** A variable holding `values` (disposes the staging tensor; tidy never tracks variables). */
export function newVariable(values: ArrayLike<number>, shape: number[], trainable = true): tf.Variable {
  const init = tf.tensor(Float32Array.from(values), shape, 'float32');
  const v = tf.variable(init, trainable);
  init.dispose();
  return v;
}

/** Product of the dimensions between batch and channel: H*W for NHWC images, 1 for [B, D] vectors. */
export function spatialSize(shape: readonly number[]): number {
  let n = 1;
  for (let i = 1; i < shape.length - 1; i++) n *= shape[i]!;
  return n;
}

/** Sum over every axis but the batch axis: [B, ...] -> [B]. */
export function sumExceptBatch(x: Tensor): Tensor {
  if (x.rank === 1) return x;
  const axes = Array.from({ length: x.rank - 1 }, (_, i) => i + 1);
  return tf.sum(x, axes);
}

/** A scalar broadcast to [batch] (tf.add keeps the gradient a plain sum, unlike a tile). */
export function perExample(scalar: Tensor, batch: number): Tensor {
  return tf.add(tf.zeros([batch]), scalar);
}

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
 * for the few channels a flow has), and their gradients are the same loops again.
 */
export function selectChannels(x: Tensor, columns: readonly number[]): Tensor {
  const c = x.shape[x.rank - 1]!;
  const k = columns.length;
  const m = new Float32Array(c * k);
  columns.forEach((col, j) => (m[col * k + j] = 1));
  return mixChannels(x, m, c, k);
}

/** Splits the last axis into [first n, rest]. */
export function splitChannels(x: Tensor, n: number): [Tensor, Tensor] {
  const c = x.shape[x.rank - 1]!;
  const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);
  return [selectChannels(x, range(0, n)), selectChannels(x, range(n, c))];
}

/** openai/glow's interleaved heads of the last axis: head j = h[..., j::heads]. */
export function interleavedHeads(h: Tensor, heads: number): Tensor[] {
  const c = h.shape[h.rank - 1]!;
  if (!Number.isInteger(heads) || heads < 1 || c % heads !== 0) throw new Error(`cannot split ${c} channels into ${heads} interleaved heads`);
  if (heads === 1) return [h];
  return Array.from({ length: heads }, (_, j) => selectChannels(h, Array.from({ length: c / heads }, (_, i) => i * heads + j)));
}

/** Concatenates along the last axis, as a sum of 0/1 embedding matmuls (see selectChannels). */
export function concatChannels(parts: Tensor[]): Tensor {
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

/** Prefixes local variable names: containers call this on their children's lists. */
export function prefixed(prefix: string, vars: NamedVariable[]): NamedVariable[] {
  return vars.map(([n, v]) => [`${prefix}.${n}`, v] as NamedVariable);
}
