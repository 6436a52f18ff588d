// The fast-gradient paths of src/kernels/cpu-paths.ts must give tfjs's own gradients (computed on the cpu
// backend with the native ops) on both cpu and wasm.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { tf, type Tensor } from '../src/tf.js';
import { Rng } from '../src/rng.js';
import {
  convLayer,
  matMul,
  setFastGradients,
  setFilterGradMethod,
  fastGradientsActive,
  type FilterGradMethod,
} from '../src/kernels/cpu-paths.js';
import { assertClose } from './helpers.js';

/** A stride-1 'same' conv with no bias, through convLayer (the only conv the models use). */
function conv2d(x: Tensor, filter: Tensor): Tensor {
  return convLayer(x, filter, tf.zeros([filter.shape[3]!]), 'linear');
}

const ALL_FILTER_METHODS: Array<FilterGradMethod | null> = [null, 'conv', 'im2col', 'im2col-dy'];

interface Arrays {
  value: Float32Array;
  grads: Float32Array[];
}

/** Runs loss = sum(op(a, b) * r) on `backend` and returns the op's value and d loss / d(a, b) as plain arrays. */
async function runOn(
  backend: string,
  fast: boolean,
  op: (a: Tensor, b: Tensor) => Tensor,
  inputs: { a: [Float32Array, number[]]; b: [Float32Array, number[]]; r: Float32Array },
): Promise<Arrays> {
  await tf.setBackend(backend);
  setFastGradients(fast ? 'on' : 'off');
  const a = tf.tensor(inputs.a[0], inputs.a[1]);
  const b = tf.tensor(inputs.b[0], inputs.b[1]);
  const value = tf.tidy(() => op(a, b));
  const r = tf.tensor(inputs.r, value.shape);
  const grads = tf.grads((x: Tensor, y: Tensor) => tf.sum(tf.mul(op(x, y), r)))([a, b]);
  const out = { value: value.dataSync() as Float32Array, grads: grads.map((g) => g.dataSync() as Float32Array) };
  tf.dispose([a, b, r, value, ...grads]);
  setFastGradients('auto');
  return out;
}


async function checkAgainstReference(
  name: string,
  op: (a: Tensor, b: Tensor) => Tensor,
  aShape: number[],
  bShape: number[],
  outSize: number,
  rng: Rng,
  filterMethods: Array<FilterGradMethod | null> = [null],
): Promise<void> {
  const size = (s: number[]) => s.reduce((p, q) => p * q, 1);
  const inputs = {
    a: [rng.normalArray(size(aShape)), aShape] as [Float32Array, number[]],
    b: [rng.normalArray(size(bShape)), bShape] as [Float32Array, number[]],
    r: rng.normalArray(outSize),
  };
  const ref = await runOn('cpu', false, op, inputs);
  for (const backend of ['cpu', 'wasm']) {
    for (const method of filterMethods) {
      setFilterGradMethod(method);
      try {
        const got = await runOn(backend, true, op, inputs);
        const tag = `${name} a=[${aShape}] b=[${bShape}] on ${backend}${method ? ` (${method})` : ''}`;
        assertClose(got.value, ref.value, `${tag} value`);
        assertClose(got.grads[0], ref.grads[0], `${tag} grad wrt input`);
        assertClose(got.grads[1], ref.grads[1], `${tag} grad wrt filter`);
      } finally {
        setFilterGradMethod(null);
      }
    }
  }
}

before(async () => {
  await tf.setBackend('cpu');
});

after(async () => {
  setFastGradients('auto');
  await tf.setBackend('cpu');
});

test('fast paths are on for wasm and cpu by default', async () => {
  await tf.setBackend('wasm');
  assert.equal(fastGradientsActive(), true);
  await tf.setBackend('cpu');
  assert.equal(fastGradientsActive(), true);
  setFastGradients('off');
  assert.equal(fastGradientsActive(), false);
  setFastGradients('auto');
});

test('conv2d 3x3 gradients equal tfjs gradients (odd sizes, batch 1, non-square, channels 1..5)', async () => {
  const rng = new Rng(1);
  // [B, H, W, C] and Co.
  const cases: Array<[number[], number]> = [
    [[1, 5, 7, 1], 3],
    [[2, 6, 6, 3], 5],
    [[3, 7, 4, 5], 2],
    [[1, 1, 3, 2], 4],
    [[4, 4, 5, 4], 1],
    [[2, 9, 8, 2], 128], // wide output, as in the coupling nets
  ];
  for (const [xs, co] of cases) {
    const [b, h, w, c] = xs;
    await checkAgainstReference('conv2d 3x3', conv2d, xs, [3, 3, c, co], b * h * w * co, rng, ALL_FILTER_METHODS);
  }
});

test('conv2d with other kernel sizes (5x5, 3x1, even 2x2, 4x3) matches tfjs', async () => {
  const rng = new Rng(2);
  const cases: Array<[number[], number[]]> = [
    [[2, 6, 5, 2], [5, 5, 2, 3]],
    [[1, 5, 4, 3], [3, 1, 3, 2]],
    [[2, 5, 6, 2], [2, 2, 2, 3]],
    [[1, 7, 5, 1], [4, 3, 1, 2]],
  ];
  for (const [xs, fs] of cases) {
    const [b, h, w] = xs;
    await checkAgainstReference('conv2d', conv2d, xs, fs, b * h * w * fs[3], rng, ALL_FILTER_METHODS);
  }
});

test('conv2d 1x1 (the dense-layer path) gradients equal tfjs gradients', async () => {
  const rng = new Rng(3);
  const cases: Array<[number[], number]> = [
    [[1, 3, 5, 1], 4],
    [[2, 7, 7, 5], 5],
    [[3, 4, 6, 4], 1],
    [[2, 5, 3, 3], 64],
  ];
  for (const [xs, co] of cases) {
    const [b, h, w, c] = xs;
    await checkAgainstReference('conv2d 1x1', conv2d, xs, [1, 1, c, co], b * h * w * co, rng);
  }
});

test('matMul gradients on both sides equal tfjs gradients', async () => {
  const rng = new Rng(4);
  // Includes both branches of the dB strategy (m*k small or large against m*n + n*k).
  const cases: Array<[number, number, number]> = [
    [1, 1, 1],
    [1, 5, 3],
    [7, 3, 1],
    [5, 4, 5],
    [33, 2, 17],
    [40, 30, 2],
  ];
  for (const [m, k, n] of cases) {
    await checkAgainstReference('matMul', matMul, [m, k], [k, n], m * n, rng);
  }
});

test('variableGrads through conv2d trains on wasm (filter gradient exists there)', async () => {
  await tf.setBackend('wasm');
  const rng = new Rng(5);
  const w = tf.variable(tf.tensor(rng.normalArray(3 * 3 * 2 * 3), [3, 3, 2, 3]));
  const x = tf.tensor(rng.normalArray(2 * 5 * 5 * 2), [2, 5, 5, 2]);
  const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(conv2d(x, w))) as tf.Scalar, [w]);
  const g = grads[w.name];
  assert.deepEqual(g.shape, [3, 3, 2, 3]);
  // d sum(y²)/dw is 2 · (filter grad with dy = y): non-zero, and the loss is positive.
  assert.ok((value.dataSync()[0] as number) > 0);
  assert.ok(tf.max(tf.abs(g)).dataSync()[0] > 0);
  tf.dispose([w, x, value, g]);
  await tf.setBackend('cpu');
});

test('fast paths leak no tensors across forward + backward', async () => {
  for (const backend of ['cpu', 'wasm']) {
    await tf.setBackend(backend);
    const rng = new Rng(6);
    const w3 = tf.variable(tf.tensor(rng.normalArray(3 * 3 * 2 * 4), [3, 3, 2, 4]));
    const w1 = tf.variable(tf.tensor(rng.normalArray(4 * 4), [1, 1, 4, 4]));
    const m = tf.variable(tf.tensor(rng.normalArray(4 * 3), [4, 3]));
    const x = tf.tensor(rng.normalArray(2 * 5 * 3 * 2), [2, 5, 3, 2]);
    const step = () => {
      const { value, grads } = tf.variableGrads(() => {
        const h = conv2d(conv2d(x, w3), w1);
        return tf.sum(matMul(tf.reshape(h, [-1, 4]), m)) as tf.Scalar;
      });
      tf.dispose([value, ...Object.values(grads)]);
    };
    step();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) step();
    assert.equal(tf.memory().numTensors, before, `tensor count grew on ${backend}`);
    tf.dispose([w3, w1, m, x]);
  }
  await tf.setBackend('cpu');
});

test('shape errors name the shapes', () => {
  const x = tf.zeros([1, 3, 3, 2]);
  const f = tf.zeros([3, 3, 4, 1]);
  assert.throws(() => conv2d(x, f), /2 channels but filter expects 4/);
  assert.throws(() => matMul(tf.zeros([2, 3]), tf.zeros([4, 1])), /\[2,3\] x \[4,1\]/);
  tf.dispose([x, f]);
});
