// The one small interface every invertible layer implements (cf. nflows' Transform,
// distrax's Bijector): forward and inverse each return the result and log|det J| per example.
import { tf, type Tensor } from '../tf.js';
import { ops } from '../kernels/index.js';

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

/** x[..., columns] (how: the backend's Ops). */
export function selectChannels(x: Tensor, columns: readonly number[]): Tensor {
  return ops().selectChannels(x, columns);
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
  return ops().interleavedHeads(h, heads);
}

/** Concatenates along the last axis (how: the backend's Ops). */
export function concatChannels(parts: Tensor[]): Tensor {
  return ops().concatChannels(parts);
}

/** Prefixes local variable names: containers call this on their children's lists. */
export function prefixed(prefix: string, vars: NamedVariable[]): NamedVariable[] {
  return vars.map(([n, v]) => [`${prefix}.${n}`, v] as NamedVariable);
}
