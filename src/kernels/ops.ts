// The one door between the flows and the backend. Flows are pure math on tensors: every operation
// whose best implementation depends on the backend (channel split/concat, conv and dense layers with
// their gradients, the fused coupling, the optimizer's update) goes through the Ops chosen for the
// backend that is running. Two implementations: stock tf ops (src/kernels/stock.ts, for GPU backends
// and anything unknown) and the CPU fast paths (src/kernels/fast.ts: custom gradients, wasm SIMD kernels).
import { tf, type Tensor } from '../tf.js';

export type Activation = 'linear' | 'relu';

export interface AdamOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Update count, from 1 (bias correction). */
  t: number;
  /** Adamax (infinity-norm second moment) instead of Adam. */
  adamax: boolean;
}

/**
 * x [B, ..., C] and the coupling net's output h (interleaved shift / raw-scale heads for the C - splitAt
 * transformed channels) -> y (x on the inverse) and log|det| per example [B].
 */
export type AffineCouplingKernel = (x: Tensor, h: Tensor, splitAt: number, floor: number, inverse: boolean) => { y: Tensor; logdet: Tensor };

/** An LU-parameterised 1x1 conv's factors: W = P L U, L = I + strict lower part of `lower`, U = strict upper part of `upper` + diag(sign * exp(logs)). */
export interface LuFactors {
  channels: number;
  perm: Tensor;
  sign: Tensor;
  lower: Tensor;
  upper: Tensor;
  logs: Tensor;
}

export interface Ops {
  /** 'stock' or 'fast', for reports and tests. */
  readonly name: string;
  /**
   * Whether tensors live in host memory, so reading one back is cheap: then small matrices (a 1x1 conv's
   * LU weight and its gradient) are built in float64 JS instead of a dozen tiny kernels, and the training
   * step checks its loss on the host. False on GPUs, where every read is a device round trip.
   */
  readonly hostMemory: boolean;
  /** [m,k] x [k,n]. */
  matMul(a: Tensor, b: Tensor): Tensor;
  /** act(x·W + bias): x [N, Cin], W [Cin, Co], bias [Co]. */
  denseLayer(x: Tensor, w: Tensor, bias: Tensor, activation: Activation): Tensor;
  /** act(conv(x, filter) + bias): stride-1 'same' conv, NHWC input, HWIO filter. */
  convLayer(x: Tensor, filter: Tensor, bias: Tensor, activation: Activation): Tensor;
  /** x[..., begin : begin + size] (a contiguous channel range). */
  sliceChannels(x: Tensor, begin: number, size: number): Tensor;
  /** openai/glow's interleaved heads of the last axis: head j = h[..., j::heads] (heads divides C). */
  interleavedHeads(h: Tensor, heads: number): Tensor[];
  /** Concatenation along the last axis. */
  concatChannels(parts: Tensor[]): Tensor;
  /**
   * Glow's affine coupling as one fused kernel, where one exists and applies now (wasm while no gradient
   * tape records); null otherwise, and the coupling runs as ordinary ops.
   */
  affineCouplingKernel(): AffineCouplingKernel | null;
  /** W (or Wᵀ) of LU factors, differentiable in lower, upper and logs. */
  luWeight(f: LuFactors, transposed: boolean): Tensor;
  /** W^{-1} (or its transpose) of LU factors; not differentiable (sampling, decoding). */
  luInverse(f: LuFactors, transposed: boolean): Tensor;
  /** log|det W| of a free square matrix, with its gradient. */
  matrixLogAbsDet(w: Tensor): Tensor;
  /** W^{-1} (or its transpose) of a free square matrix. */
  matrixInverse(w: Tensor, transposed: boolean): Tensor;
  /** One Adam/Adamax update: new [param, m, v] (the caller assigns and disposes them). */
  adamStep(param: Tensor, m: Tensor, v: Tensor, g: Tensor, o: AdamOptions): [Tensor, Tensor, Tensor];
  /** a * w + b * (1 - w). */
  lerp(a: Tensor, b: Tensor, w: number): Tensor;
}

const byBackend = new Map<string, Ops>();
let fallback: Ops | null = null;
let stockForced = false;

/** Tests and the bench: run the stock ops on every backend, to compare them with the fast paths. */
export function forceStockOps(on: boolean): void {
  stockForced = on;
}

/** Registers the Ops a backend uses (src/kernels/index.ts does it for every backend we know). */
export function registerOps(backend: string, impl: Ops): void {
  byBackend.set(backend, impl);
}

/** The Ops for backends without their own registration (the stock tf ops). */
export function setDefaultOps(impl: Ops): void {
  fallback = impl;
}

/** The Ops of the running backend. */
export function ops(): Ops {
  const impl = (stockForced ? null : byBackend.get(tf.getBackend())) ?? fallback;
  if (!impl) throw new Error('no Ops registered: import src/kernels/index.js before running a model');
  return impl;
}
