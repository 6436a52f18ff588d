// Exact likelihood in bits per dimension, Glow's definition:
//   bpd = (-log p(x̃) + D·ln(bins)) / (D·ln 2),  x̃ = x/bins - 0.5 + U(0, 1/bins).
// Dequantisation noise is drawn per example from (seed, example index), so any subset or
// shard of a split sees exactly the noise the whole split would.
import { tf, type Tensor } from '../tf.js';
import type { FlowModel } from '../flows/model.js';
import type { Split } from '../data/index.js';
import { toModelInput } from '../data/preprocess.js';
import { Rng } from '../rng.js';

export function bitsPerDim(logpNats: number, dims: number, nBins: number): number {
  return (-logpNats + dims * Math.log(nBins)) / (dims * Math.LN2);
}

/** The training objective as a tensor: mean bpd of a batch (images) from log p in nats. */
export function bpdTensor(logp: tf.Tensor, dims: number, nBins: number): tf.Scalar {
  return tf.tidy(() =>
    tf.div(tf.sub(dims * Math.log(nBins), tf.mean(logp)), dims * Math.LN2) as tf.Scalar,
  );
}

/** Mean negative log-likelihood in nats per dimension (vector data has no bins). */
export function nllPerDimTensor(logp: tf.Tensor, dims: number): tf.Scalar {
  return tf.tidy(() => tf.div(tf.neg(tf.mean(logp)), dims) as tf.Scalar);
}

export function exampleNoiseRng(seed: number, index: number): Rng {
  return new Rng((Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca77)) >>> 0);
}

export interface EvalOptions {
  nBits: number;
  seed: number;
  batchSize: number;
  /** Which examples (indices into the split); all when absent. */
  indices?: Int32Array | number[];
  dequantize?: boolean;
  onBatch?: (done: number, total: number) => void;
  /** model.logProb by other means (e.g. shared across threads: ParallelGradients.logProb); same values. */
  logProb?: (x: Tensor, labels?: tf.Tensor1D) => Tensor;
}

/** Model input for the listed examples of an image split, with per-example seeded noise. */
export function imageBatch(split: Split, shape: number[], idx: ArrayLike<number>, nBits: number, seed: number, dequantize: boolean): Float32Array {
  const dims = shape.reduce((a, b) => a * b, 1);
  const src = split.x as Uint8Array;
  const out = new Float32Array(idx.length * dims);
  for (let j = 0; j < idx.length; j++) {
    const i = idx[j]!;
    const row = src.subarray(i * dims, (i + 1) * dims);
    out.set(toModelInput(row, nBits, dequantize ? exampleNoiseRng(seed, i) : null), j * dims);
  }
  return out;
}

/**
 * log p(x) in nats for every listed example (images: of the dequantised input). Async because a GPU
 * backend can only read results back asynchronously (one read per batch).
 */
export async function perExampleLogProb(model: FlowModel, split: Split, shape: number[], kind: 'image' | 'vector', opts: EvalOptions): Promise<Float64Array> {
  const all = opts.indices ?? Array.from({ length: split.n }, (_, i) => i);
  const dims = shape.reduce((a, b) => a * b, 1);
  const out = new Float64Array(all.length);
  for (let s = 0; s < all.length; s += opts.batchSize) {
    const idx = Array.from(all).slice(s, s + opts.batchSize);
    let x: Float32Array;
    if (kind === 'image') x = imageBatch(split, shape, idx, opts.nBits, opts.seed, opts.dequantize ?? true);
    else {
      x = new Float32Array(idx.length * dims);
      idx.forEach((i, j) => x.set((split.x as Float32Array).subarray(i * dims, (i + 1) * dims), j * dims));
    }
    const logp = tf.tidy(() => {
      const xt = tf.tensor(x, [idx.length, ...shape]);
      const labels = split.labels && model.numClasses ? tf.tensor1d(idx.map((i) => split.labels![i]!), 'int32') : undefined;
      return opts.logProb ? opts.logProb(xt, labels) : model.logProb(xt, labels);
    });
    const values = await logp.data();
    logp.dispose();
    for (let j = 0; j < idx.length; j++) out[s + j] = values[j]!;
    opts.onBatch?.(Math.min(s + opts.batchSize, all.length), all.length);
  }
  return out;
}

export interface MeanWithError { mean: number; stderr: number; n: number }

export function meanAndStderr(values: ArrayLike<number>): MeanWithError {
  const n = values.length;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += values[i]!;
  const mean = n ? sum / n : NaN;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (values[i]! - mean) ** 2;
  const sd = n > 1 ? Math.sqrt(ss / (n - 1)) : 0;
  return { mean, stderr: n > 1 ? sd / Math.sqrt(n) : 0, n };
}
