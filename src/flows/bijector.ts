// The one small interface every invertible layer implements (cf. nflows' Transform,
// distrax's Bijector): forward and inverse each return the result and log|det J| per example.
import { tf, type Tensor } from '../tf.js';

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

/** Splits the last axis into [first n, rest]. */
export function splitChannels(x: Tensor, n: number): [Tensor, Tensor] {
  const c = x.shape[x.rank - 1]!;
  const [a, b] = tf.split(x, [n, c - n], x.rank - 1);
  return [a!, b!];
}

/** openai/glow's interleaved split of the last axis: (h[..., 0::2], h[..., 1::2]). */
export function splitInterleaved(h: Tensor): [Tensor, Tensor] {
  const c = h.shape[h.rank - 1]!;
  const pairs = tf.reshape(h, [...h.shape.slice(0, -1), c / 2, 2]);
  const [even, odd] = tf.split(pairs, 2, pairs.rank - 1);
  const outShape = [...h.shape.slice(0, -1), c / 2];
  return [tf.reshape(even!, outShape), tf.reshape(odd!, outShape)];
}

/** Prefixes local variable names: containers call this on their children's lists. */
export function prefixed(prefix: string, vars: NamedVariable[]): NamedVariable[] {
  return vars.map(([n, v]) => [`${prefix}.${n}`, v] as NamedVariable);
}
