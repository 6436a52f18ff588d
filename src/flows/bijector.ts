// The one small interface every invertible layer implements (cf. nflows' Transform,
// distrax's Bijector): forward and inverse each return the result and log|det J| per example, take an
// optional context (a conditional model's one-hot labels; layers that do not depend on it ignore it) and
// say what per-example shape they output, so a chain checks its shapes when it is built (cf. FrEIA).
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
  forward(x: Tensor, context?: Tensor): ForwardResult;
  inverse(y: Tensor, context?: Tensor): InverseResult;
  /** The per-example output shape for a per-example input shape; throws (saying why) when the layer cannot take it. */
  outputShape(inputShape: readonly number[]): number[];
  /** Every variable (trainable and state), local names; containers prefix them. */
  variables(): NamedVariable[];
  /** Data-dependent initialisation from one batch (ActNorm). Absent when not needed. */
  initialize?(x: Tensor, context?: Tensor): void;
}

/** A shape a layer cannot take, with the dotted name of that layer (chains prefix their own names). */
export class ShapeError extends Error {
  constructor(
    readonly layer: string,
    readonly detail: string,
  ) {
    super(`layer ${layer}: ${detail}`);
    this.name = 'ShapeError';
  }
}

/** The input shape itself when its last axis has `channels` entries (the layers that work per channel). */
export function sameWithChannels(shape: readonly number[], channels: number): number[] {
  if (shape.length < 1 || shape[shape.length - 1] !== channels) throw new Error(`expects ${channels} channels, got [${shape}]`);
  return [...shape];
}

/** The input shape itself when it equals `expected` (the layers with per-position parameters). */
export function sameAs(shape: readonly number[], expected: readonly number[]): number[] {
  if (shape.length !== expected.length || shape.some((d, i) => d !== expected[i])) throw new Error(`expects [${expected}], got [${shape}]`);
  return [...shape];
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

/** Splits the last axis into [first n, rest] (how: the backend's Ops). */
export function splitChannels(x: Tensor, n: number): [Tensor, Tensor] {
  const c = x.shape[x.rank - 1]!;
  return [ops().sliceChannels(x, 0, n), ops().sliceChannels(x, n, c - n)];
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
