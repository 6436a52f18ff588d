// Reconstructions and interpolations (src/views/, flow reconstruct, flow interpolate): the math of the
// paths, the layouts, and that both ends of an interpolation reproduce the two data images.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import sharp from 'sharp';
import '@tensorflow/tfjs-backend-cpu';
import { tf } from '../src/tf.js';
import { Rng } from '../src/rng.js';
import { ModelSchema } from '../src/config/schema.js';
import { buildModel, type FlowModel } from '../src/flows/model.js';
import { interpolate, interpolateVectors, interpolationTimes } from '../src/views/interpolate.js';
import { reconstruct, originalsAboveReconstructions, compareArrays } from '../src/views/reconstruct.js';
import { loadDataset } from '../src/data/index.js';
import { parseConfigText } from '../src/config/load.js';
import { flow, tempDir, writeYaml, TINY_CONFIG } from './helpers.js';

before(async () => {
  await tf.setBackend('cpu');
});

function norm(v: ArrayLike<number>): number {
  return Math.sqrt(Array.from(v).reduce((s, x) => s + x * x, 0));
}

test('interpolation times include both ends', async () => {
  assert.deepEqual(interpolationTimes(5), [0, 0.25, 0.5, 0.75, 1]);
  assert.throws(() => interpolationTimes(1), /at least 2 steps/);
});

test('linear and spherical paths: exact ends, linear midpoint, slerp keeps the radius on a great circle', async () => {
  const a = Float32Array.from([1, 0, 0]);
  const b = Float32Array.from([0, 3, 0]);
  for (const mode of ['linear', 'spherical'] as const) {
    assert.deepEqual(interpolateVectors(a, b, 0, mode), a);
    assert.deepEqual(interpolateVectors(a, b, 1, mode), b);
  }
  assert.deepEqual(Array.from(interpolateVectors(a, b, 0.5, 'linear')), [0.5, 1.5, 0]);
  const mid = interpolateVectors(a, b, 0.5, 'spherical');
  // Direction halfway along the quarter circle, radius halfway between 1 and 3.
  assert.ok(Math.abs(norm(mid) - 2) < 1e-6, `radius ${norm(mid)}`);
  assert.ok(Math.abs(mid[0]! - mid[1]!) < 1e-6 && mid[2] === 0, `direction ${Array.from(mid)}`);
  const third = interpolateVectors(a, b, 1 / 3, 'spherical');
  const angle = Math.atan2(third[1]!, third[0]!);
  assert.ok(Math.abs(angle - Math.PI / 6) < 1e-6, `a third of the way is 30 degrees, got ${(angle * 180) / Math.PI}`);
  // Parallel vectors: slerp degenerates to lerp instead of dividing by sin(0).
  const p = interpolateVectors(a, Float32Array.from([2, 0, 0]), 0.5, 'spherical');
  assert.deepEqual(Array.from(p), [1.5, 0, 0]);
});

function smallGlow(): FlowModel {
  const model = buildModel(ModelSchema.parse({ family: 'glow', levels: 2, depth: 2, width: 8 }), [8, 8, 1], { seed: 2 });
  const rng = new Rng(9);
  const x = tf.tensor(rng.uniformArray(16 * 64, -0.5, 0.5), [16, 8, 8, 1]);
  model.initialize(x);
  x.dispose();
  tf.tidy(() => {
    for (const v of model.trainableVariables()) v.assign(tf.add(v, tf.tensor(rng.normalArray(v.size, 0.1), v.shape)));
  });
  return model;
}

test('the ends of an interpolation through every level are the two inputs; the middle is neither', async () => {
  const model = smallGlow();
  const rng = new Rng(4);
  const pair = rng.uniformArray(2 * 64, -0.5, 0.5);
  const before = tf.memory().numTensors;
  for (const mode of ['linear', 'spherical'] as const) {
    const input = tf.tensor(pair, [2, 8, 8, 1]);
    const out = await interpolate(model, input, 5, mode);
    input.dispose();
    assert.deepEqual(out.shape, [5, 8, 8, 1]);
    const v = out.dataSync();
    out.dispose();
    assert.ok(compareArrays(v.subarray(0, 64), pair.subarray(0, 64)).maxAbs < 1e-4, `${mode}: first end`);
    assert.ok(compareArrays(v.subarray(4 * 64), pair.subarray(64)).maxAbs < 1e-4, `${mode}: last end`);
    const middle = v.subarray(2 * 64, 3 * 64);
    assert.ok(compareArrays(middle, pair.subarray(0, 64)).maxAbs > 0.05 && compareArrays(middle, pair.subarray(64)).maxAbs > 0.05, `${mode}: the middle is a new image`);
  }
  assert.equal(tf.memory().numTensors, before, 'no leaked tensors');
  model.dispose();
});

test('reconstruct gives the inputs back', async () => {
  const model = smallGlow();
  const x = new Rng(1).uniformArray(6 * 64, -0.5, 0.5);
  const r = tf.tidy(() => reconstruct(model, tf.tensor(x, [6, 8, 8, 1])));
  assert.ok(compareArrays(r.dataSync(), x).maxAbs < 1e-4);
  r.dispose();
  model.dispose();
});

test('originals sit right above their reconstructions, short bands padded', async () => {
  // 5 one-pixel images in bands of 3: [o0 o1 o2 / r0 r1 r2 / o3 o4 _ / r3 r4 _].
  const o = Uint8Array.from([10, 11, 12, 13, 14]);
  const r = Uint8Array.from([20, 21, 22, 23, 24]);
  const b = originalsAboveReconstructions(o, r, 5, 1, 1, 1, 3);
  assert.equal(b.n, 12);
  assert.deepEqual(Array.from(b.pixels), [10, 11, 12, 20, 21, 22, 13, 14, 0, 23, 24, 0]);
});

test('flow reconstruct and flow interpolate on a trained tiny Glow', async () => {
  const dir = tempDir();
  const cfgFile = writeYaml(dir, 'tiny.yaml', TINY_CONFIG);
  const tr = flow(['train', cfgFile, '--max-steps', '20', '--quiet'], dir);
  assert.equal(tr.code, 0, tr.stderr);
  // The test images as the CLI sees them (8 bits: a bin centre decodes to the same byte).
  const data = await loadDataset(parseConfigText(TINY_CONFIG).data, { seed: 1 });
  const image = (i: number) => (data.test.x as Uint8Array).subarray(i * 784, (i + 1) * 784);

  const rec = path.join(dir, 'rec.png');
  const r = flow(['reconstruct', '--n', '8', '--out', rec, '--json', '--backend', 'wasm'], dir);
  assert.equal(r.code, 0, r.stderr);
  const rs = JSON.parse(r.stdout);
  assert.ok(rs.max_abs_error < 1e-3 && rs.pixels_changed <= 2, JSON.stringify(rs));
  const rm = await sharp(rec).metadata();
  assert.deepEqual([rm.width, rm.height], [8 * 30 + 2, 2 * 30 + 2], 'one row of originals above one of reconstructions');

  const strip = path.join(dir, 'interp.png');
  const it = flow(['interpolate', '--from', '3', '--to', '7', '--steps', '6', '--out', strip, '--backend', 'wasm'], dir);
  assert.equal(it.code, 0, it.stderr);
  assert.match(it.stdout, /wrote linear and spherical interpolations \(6 steps\) from test image 3 to 7/);
  const { data: png, info } = await sharp(strip).raw().toBuffer({ resolveWithObject: true });
  assert.deepEqual([info.width, info.height], [6 * 30 + 2, 2 * 30 + 2], 'two rows (linear, spherical) of 6');
  const cell = (row: number, col: number) => {
    const out = new Uint8Array(784);
    for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) out[y * 28 + x] = png[((2 + row * 30 + y) * info.width + 2 + col * 30 + x) * info.channels]!;
    return out;
  };
  for (const row of [0, 1]) {
    assert.ok(compareArrays(cell(row, 0), image(3)).changed <= 2, `row ${row}: first cell is test image 3`);
    assert.ok(compareArrays(cell(row, 5), image(7)).changed <= 2, `row ${row}: last cell is test image 7`);
    assert.ok(compareArrays(cell(row, 2), image(3)).changed > 20 && compareArrays(cell(row, 2), image(7)).changed > 20, `row ${row}: a cell in between is neither`);
  }

  const bad = flow(['interpolate', '--mode', 'diagonal'], dir);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--mode diagonal: expected linear, spherical or both/);
  const far = flow(['reconstruct', '--first', '1000'], dir);
  assert.equal(far.code, 2);
  assert.match(far.stderr, /example 1000: the test split of embedded-mnist has examples 0\.\.127/);
});
