// Data-parallel gradients (src/train/parallel.ts): with worker threads, loss and gradients equal the
// single-thread ones, are bitwise reproducible, leak nothing on the main thread, and dispose() ends
// the workers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import '@tensorflow/tfjs-backend-wasm';
import { tf } from '../src/tf.js';
import { parseConfigText } from '../src/config/load.js';
import type { Config } from '../src/config/schema.js';
import { buildModel, type FlowModel } from '../src/flows/model.js';
import { lossAndGrads } from '../src/train/step.js';
import { ParallelGradients, shares } from '../src/train/parallel.js';
import type { ModelMeta } from '../src/io/model-io.js';
import { Rng } from '../src/rng.js';

const SHAPE = [8, 8, 2];
const CONFIG = `
seed: 3
backend: wasm
model:
  family: glow
  levels: 2
  depth: 2
  width: 16
train:
  batch_size: 12
`;
const O = { dims: SHAPE.reduce((a, b) => a * b, 1), nBins: 256, lossName: 'bpd' as const, classLossWeight: 0 };

let cfg: Config;
const meta: ModelMeta = { dataShape: SHAPE, dataKind: 'image', nBits: 8 };

before(async () => {
  await tf.setBackend('wasm');
  cfg = parseConfigText(CONFIG);
});

after(async () => {
  await tf.setBackend('cpu').catch(() => undefined);
});

/** The tiny model, ActNorm-initialised and perturbed so that no layer is the identity. */
function trainedLikeModel(rng: Rng): FlowModel {
  const model = buildModel(cfg.model, SHAPE, { seed: cfg.seed });
  const init = tf.tensor(rng.uniformArray(32 * 128, -0.5, 0.5), [32, ...SHAPE]);
  model.initialize(init);
  init.dispose();
  tf.tidy(() => {
    for (const [, v] of model.variables()) {
      if (v.trainable) v.assign(tf.add(v, tf.tensor(rng.normalArray(v.size, 0.05), v.shape)));
    }
  });
  return model;
}

function batchOf(n: number, rng: Rng): tf.Tensor {
  return tf.tensor(rng.uniformArray(n * 128, -0.5, 0.5), [n, ...SHAPE]);
}

/** max |a - b| / max |b| over one gradient (b is the reference). */
function relativeDiff(a: Float32Array, b: Float32Array): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return scale === 0 ? diff : diff / scale;
}

test('shares split a batch as evenly as possible (main thread first, optionally lighter)', () => {
  assert.deepEqual(shares(64, 2), [32, 32]);
  assert.deepEqual(shares(7, 3), [2, 3, 2]);
  assert.deepEqual(shares(1, 2), [1, 0]);
  assert.deepEqual(shares(5, 1), [5]);
  assert.deepEqual(shares(64, 2, 0.8), [28, 36]);
  assert.deepEqual(shares(64, 3, 0), [0, 32, 32]);
  for (const [n, t, w] of [[13, 4, 0.7], [2, 3, 1], [100, 2, 0.9]] as const) assert.equal(shares(n, t, w).reduce((a, b) => a + b, 0), n);
});

test('2 threads: loss and gradients equal the single-thread ones, bitwise reproducible, no leaks', async () => {
  const rng = new Rng(11);
  const model = trainedLikeModel(rng);
  const params = model.trainableVariables();
  const parallel = await ParallelGradients.create(cfg, meta, 2);
  try {
    assert.equal(parallel.threads, 2);
    // 12 rows (6 each), an odd 7 (4 + 3), and 1 (the main thread alone).
    for (const n of [12, 7, 1]) {
      const x = batchOf(n, rng);
      const single = lossAndGrads(model, params, { x }, O);
      const before = tf.memory().numTensors;
      const par = parallel.lossAndGrads(model, params, { x }, O);
      assert.equal(tf.memory().numTensors, before + 1 + params.length, 'returns exactly the loss and one gradient per parameter');
      const again = parallel.lossAndGrads(model, params, { x }, O);
      const l1 = single.loss.dataSync()[0]!;
      const l2 = par.loss.dataSync()[0]!;
      assert.ok(Math.abs(l1 - l2) <= 1e-5 * Math.abs(l1), `batch ${n}: loss ${l2} vs single-thread ${l1}`);
      assert.equal(again.loss.dataSync()[0], l2, `batch ${n}: loss not reproducible`);
      assert.equal(par.grads.length, params.length);
      params.forEach((p, i) => {
        const want = single.grads[i]!.dataSync() as Float32Array;
        const got = par.grads[i]!.dataSync() as Float32Array;
        assert.deepEqual(par.grads[i]!.shape, p.shape);
        const rel = relativeDiff(got, want);
        assert.ok(rel <= 1e-5, `batch ${n}: gradient of ${p.name} differs by ${rel} (relative)`);
        assert.deepEqual(again.grads[i]!.dataSync(), got, `batch ${n}: gradient of ${p.name} not reproducible`);
      });
      // Something non-trivial was compared: the gradients are not all zero.
      assert.ok(par.grads.some((g) => tf.tidy(() => tf.max(tf.abs(g)).dataSync()[0]!) > 1e-4));
      tf.dispose([x, single.loss, ...single.grads, par.loss, ...par.grads, again.loss, ...again.grads]);
      assert.equal(tf.memory().numTensors, before - 1 - params.length - 1, `batch ${n}: tensors leaked on the main thread`);
    }
    // Updated weights reach the workers: after a change, the parallel result follows the single one.
    tf.tidy(() => params.forEach((p) => p.assign(tf.mul(p, 0.9))));
    const x = batchOf(12, rng);
    const single = lossAndGrads(model, params, { x }, O);
    const par = parallel.lossAndGrads(model, params, { x }, O);
    const l1 = single.loss.dataSync()[0]!;
    assert.ok(Math.abs(par.loss.dataSync()[0]! - l1) <= 1e-5 * Math.abs(l1), 'the workers did not see the new weights');
    tf.dispose([x, single.loss, ...single.grads, par.loss, ...par.grads]);
  } finally {
    await parallel.dispose();
    model.dispose();
  }
});

test('batches larger than the configured batch size grow the shared buffers', async () => {
  const rng = new Rng(12);
  const model = trainedLikeModel(rng);
  const params = model.trainableVariables();
  const parallel = await ParallelGradients.create(cfg, meta, 2);
  try {
    const x = batchOf(40, rng); // worker share 20 > batch_size 12
    const single = lossAndGrads(model, params, { x }, O);
    const par = parallel.lossAndGrads(model, params, { x }, O);
    const l1 = single.loss.dataSync()[0]!;
    assert.ok(Math.abs(par.loss.dataSync()[0]! - l1) <= 1e-5 * Math.abs(l1));
    params.forEach((p, i) => assert.ok(relativeDiff(par.grads[i]!.dataSync() as Float32Array, single.grads[i]!.dataSync() as Float32Array) <= 1e-5, p.name));
    tf.dispose([x, single.loss, ...single.grads, par.loss, ...par.grads]);
  } finally {
    await parallel.dispose();
    model.dispose();
  }
});

test('dispose() terminates the workers; a disposed instance refuses work', async () => {
  const rng = new Rng(13);
  const model = trainedLikeModel(rng);
  const parallel = await ParallelGradients.create(cfg, meta, 3);
  assert.equal(parallel.threads, 3);
  await parallel.dispose();
  const x = batchOf(4, rng);
  assert.throws(() => parallel.lossAndGrads(model, model.trainableVariables(), { x }, O), /disposed/);
  x.dispose();
  model.dispose();
});

test('a model that does not match the workers is refused', async () => {
  const parallel = await ParallelGradients.create(cfg, meta, 2);
  const other = buildModel({ ...cfg.model, depth: 1 }, SHAPE, { seed: cfg.seed });
  const x = tf.zeros([4, ...SHAPE]);
  try {
    assert.throws(() => parallel.lossAndGrads(other, other.trainableVariables(), { x }, O), /does not match/);
  } finally {
    x.dispose();
    other.dispose();
    await parallel.dispose();
  }
});

test('logProb and sample on 2 threads equal the single-thread results; noise streams advance the same', async () => {
  const rng = new Rng(14);
  const model = trainedLikeModel(rng);
  const parallel = await ParallelGradients.create(cfg, meta, 2);
  try {
    const x = batchOf(9, rng);
    const single = model.logProb(x);
    const before = tf.memory().numTensors;
    const par = parallel.logProb(model, x);
    assert.equal(tf.memory().numTensors, before + 1);
    assert.deepEqual(par.shape, [9]);
    const a = single.dataSync() as Float32Array;
    const b = par.dataSync() as Float32Array;
    for (let i = 0; i < 9; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= 1e-5 * Math.abs(a[i]!), `logp[${i}]: ${b[i]} vs ${a[i]}`);
    tf.dispose([x, single, par]);

    const streams = (seed: number) => Array.from({ length: 7 }, (_, i) => new Rng(seed * 100 + i));
    const r1 = streams(3);
    const r2 = streams(3);
    const s1 = model.sample(7, 0.8, r1);
    const s2 = parallel.sample(model, 7, 0.8, r2);
    assert.deepEqual(s2.shape, [7, ...SHAPE]);
    assert.deepEqual(r2.map((r) => r.state), r1.map((r) => r.state), 'every noise stream ends where single-thread sampling leaves it');
    const u = s1.dataSync() as Float32Array;
    const v = s2.dataSync() as Float32Array;
    assert.ok(relativeDiff(v, u) <= 1e-5, `samples differ by ${relativeDiff(v, u)} (relative)`);
    tf.dispose([s1, s2]);
  } finally {
    await parallel.dispose();
    model.dispose();
  }
});

test('class-conditional models: labels reach the workers (gradients and samples)', async () => {
  const condCfg: Config = { ...cfg, model: { ...cfg.model, conditional: 'classes' } };
  const condMeta: ModelMeta = { ...meta, numClasses: 3 };
  const rng = new Rng(15);
  const model = buildModel(condCfg.model, SHAPE, { seed: condCfg.seed, numClasses: 3 });
  const init = batchOf(16, rng);
  model.initialize(init, tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0], 'int32'));
  init.dispose();
  tf.tidy(() => {
    for (const [, v] of model.variables()) if (v.trainable) v.assign(tf.add(v, tf.tensor(rng.normalArray(v.size, 0.05), v.shape)));
  });
  const params = model.trainableVariables();
  const parallel = await ParallelGradients.create(condCfg, condMeta, 2);
  try {
    const x = batchOf(6, rng);
    const labels = tf.tensor1d([2, 1, 0, 2, 2, 1], 'int32') as tf.Tensor1D;
    const single = lossAndGrads(model, params, { x, labels }, O);
    const par = parallel.lossAndGrads(model, params, { x, labels }, O);
    const l1 = single.loss.dataSync()[0]!;
    assert.ok(Math.abs(par.loss.dataSync()[0]! - l1) <= 1e-5 * Math.abs(l1));
    params.forEach((p, i) => assert.ok(relativeDiff(par.grads[i]!.dataSync() as Float32Array, single.grads[i]!.dataSync() as Float32Array) <= 1e-5, p.name));
    const s1 = model.sample(6, 1, Array.from({ length: 6 }, (_, i) => new Rng(i)), labels);
    const s2 = parallel.sample(model, 6, 1, Array.from({ length: 6 }, (_, i) => new Rng(i)), labels);
    assert.ok(relativeDiff(s2.dataSync() as Float32Array, s1.dataSync() as Float32Array) <= 1e-5);
    tf.dispose([x, labels, single.loss, ...single.grads, par.loss, ...par.grads, s1, s2]);
  } finally {
    await parallel.dispose();
    model.dispose();
  }
});
