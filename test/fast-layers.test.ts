// The fused layer ops of src/kernels/cpu-paths.ts (convLayer, denseLayer) and the replacement wasm kernels
// (src/kernels/wasm-kernels.ts) must give tfjs's own values and gradients: the reference is the
// plain tf ops on the cpu backend with tfjs's native gradients. Also a whole small model's parameter
// gradients, fast paths against native.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { tf, type Tensor } from '../src/tf.js';
import { Rng } from '../src/rng.js';
import { adamStep, fusedCouplingAvailable, convLayer, denseLayer, gemm, matMulTN, setFastGradients, setFilterGradMethod, type Activation, type FilterGradMethod } from '../src/kernels/cpu-paths.js';
import { collapsePermutation, installWasmKernels, wasmKernelsInstalled } from '../src/kernels/wasm-kernels.js';
import { buildModel } from '../src/flows/model.js';
import { parseConfigText } from '../src/config/load.js';
import { lossAndGrads } from '../src/train/step.js';
import { Optimizer } from '../src/train/optimizer.js';
import { HalfCoupling, halfCouplingTransformer } from '../src/flows/coupling.js';
import { interleavedHeads } from '../src/flows/bijector.js';
import type { Net } from '../src/flows/nets.js';
import { SMALL_FAMILIES, assertClose, smallModelYaml } from './helpers.js';

before(async () => {
  await tf.setBackend('wasm');
  installWasmKernels();
  await tf.setBackend('cpu');
});

after(async () => {
  setFastGradients('auto');
  setFilterGradMethod(null);
  await tf.setBackend('cpu');
});

function size(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}


type Layer = (x: Tensor, w: Tensor, b: Tensor) => Tensor;

/** Value and d(sum(layer(x, w, b) * r))/d(x, w, b) on `backend`, fast paths on or off. */
async function run(backend: string, fast: boolean, layer: Layer, x: Float32Array, xs: number[], w: Float32Array, ws: number[], b: Float32Array, r: Float32Array) {
  await tf.setBackend(backend);
  setFastGradients(fast ? 'on' : 'off');
  try {
    const [xt, wt, bt] = [tf.tensor(x, xs), tf.tensor(w, ws), tf.tensor(b, [b.length])];
    const value = tf.tidy(() => layer(xt, wt, bt));
    const rt = tf.tensor(r, value.shape);
    const grads = tf.grads((p: Tensor, q: Tensor, s: Tensor) => tf.sum(tf.mul(layer(p, q, s), rt)))([xt, wt, bt]);
    const out = { value: Array.from(value.dataSync()), grads: grads.map((g) => Array.from(g.dataSync())) };
    tf.dispose([xt, wt, bt, rt, value, ...grads]);
    return out;
  } finally {
    setFastGradients('auto');
  }
}

async function checkLayer(name: string, layer: Layer, xs: number[], ws: number[], rng: Rng, methods: Array<FilterGradMethod | null> = [null]) {
  const co = ws[ws.length - 1]!;
  const x = rng.normalArray(size(xs));
  const w = rng.normalArray(size(ws), 0.5);
  const b = rng.normalArray(co, 0.5);
  const outShape = [...xs.slice(0, -1), co];
  const r = rng.normalArray(size(outShape));
  const ref = await run('cpu', false, layer, x, xs, w, ws, b, r);
  for (const backend of ['cpu', 'wasm']) {
    for (const method of methods) {
      setFilterGradMethod(method);
      try {
        const got = await run(backend, true, layer, x, xs, w, ws, b, r);
        const tag = `${name} x=[${xs}] w=[${ws}] on ${backend}${method ? ` (${method})` : ''}`;
        assertClose(got.value, ref.value, `${tag}: value`);
        assertClose(got.grads[0]!, ref.grads[0]!, `${tag}: grad wrt input`);
        assertClose(got.grads[1]!, ref.grads[1]!, `${tag}: grad wrt weights`);
        assertClose(got.grads[2]!, ref.grads[2]!, `${tag}: grad wrt bias`);
      } finally {
        setFilterGradMethod(null);
      }
    }
  }
}

const convWith = (a: Activation): Layer => (x, w, b) => convLayer(x, w, b, a);
const denseWith = (a: Activation): Layer => (x, w, b) => denseLayer(x, w, b, a);

test('convLayer (linear and ReLU) equals conv2d + bias (+ relu) with tfjs gradients: odd sizes, batch 1, every method', async () => {
  const rng = new Rng(21);
  // [x shape, filter shape]: 3x3 few -> many channels (im2col, col2im input grad), many -> few
  // (im2col of dy), square (batch-as-channel conv), 1x1 (dense path), 5x5 and even 2x2 / 4x3 kernels.
  const cases: Array<[number[], number[]]> = [
    [[1, 5, 7, 2], [3, 3, 2, 24]],
    [[2, 7, 4, 4], [3, 3, 4, 40]],
    [[3, 5, 5, 20], [3, 3, 20, 2]],
    [[1, 6, 5, 5], [3, 3, 5, 5]],
    [[2, 3, 9, 3], [1, 1, 3, 6]],
    [[1, 1, 1, 4], [3, 3, 4, 3]],
    [[2, 6, 5, 2], [5, 5, 2, 3]],
    [[1, 5, 6, 3], [2, 2, 3, 4]],
    [[2, 7, 5, 1], [4, 3, 1, 2]],
  ];
  const all: Array<FilterGradMethod | null> = [null, 'conv', 'im2col', 'im2col-dy'];
  for (const activation of ['linear', 'relu'] as const) {
    for (const [xs, ws] of cases) await checkLayer(`convLayer ${activation}`, convWith(activation), xs, ws, rng, ws[0] === 1 ? [null] : all);
  }
});

test('denseLayer (linear and ReLU) equals matMul + bias (+ relu) with tfjs gradients', async () => {
  const rng = new Rng(22);
  const cases: Array<[number[], number[]]> = [
    [[4, 1], [1, 1]],
    [[1, 7], [7, 3]],
    [[9, 2], [2, 13]],
    [[33, 17], [17, 5]],
  ];
  for (const activation of ['linear', 'relu'] as const) {
    for (const [xs, ws] of cases) await checkLayer(`denseLayer ${activation}`, denseWith(activation), xs, ws, rng);
  }
});

test('wasm Transpose replacement equals the cpu backend for 2-D, batched and collapsible permutations', async () => {
  assert.ok(wasmKernelsInstalled());
  assert.deepEqual(collapsePermutation([4, 1, 3, 5], [3, 1, 0, 2]), { shape: [12, 5], perm: [1, 0] });
  assert.deepEqual(collapsePermutation([2, 3, 4], [0, 2, 1]), { shape: [2, 3, 4], perm: [0, 2, 1] });
  const rng = new Rng(23);
  const cases: Array<[number[], number[]]> = [
    [[70, 130], [1, 0]],
    [[1, 1], [1, 0]],
    [[3, 65, 66], [0, 2, 1]],
    [[4, 1, 3, 5], [3, 1, 0, 2]],
    [[2, 3, 4, 5], [0, 1, 3, 2]],
    [[2, 3, 4, 5], [0, 2, 1, 3]], // not a (batched) 2-D transpose: the original kernel
    [[6, 2, 5], [1, 0, 2]],
  ];
  for (const [shape, perm] of cases) {
    const values = rng.normalArray(size(shape));
    const results: number[][] = [];
    for (const backend of ['cpu', 'wasm']) {
      await tf.setBackend(backend);
      for (const dtype of ['float32', 'int32'] as const) {
        const x = tf.tensor(dtype === 'int32' ? Int32Array.from(values, (v) => Math.round(v * 100)) : values, shape, dtype);
        const y = tf.transpose(x, perm);
        assert.deepEqual(y.shape, perm.map((a) => shape[a]));
        results.push(Array.from(y.dataSync()));
        tf.dispose([x, y]);
      }
    }
    assert.deepEqual(results[2], results[0], `float32 transpose [${shape}] perm [${perm}]`);
    assert.deepEqual(results[3], results[1], `int32 transpose [${shape}] perm [${perm}]`);
  }
  await tf.setBackend('cpu');
});

test('wasm Identity replacement shares the buffer safely: clones survive the original, variables keep their values', async () => {
  await tf.setBackend('wasm');
  const before = tf.memory().numTensors;
  const x = tf.tensor([1, 2, 3]);
  const c = tf.clone(x);
  x.dispose();
  assert.deepEqual(Array.from(c.dataSync()), [1, 2, 3]);
  const v = tf.variable(tf.tensor([4, 5]));
  const snapshot = tf.clone(v);
  v.assign(tf.tensor([6, 7]));
  assert.deepEqual(Array.from(snapshot.dataSync()), [4, 5]);
  assert.deepEqual(Array.from(v.dataSync()), [6, 7]);
  tf.dispose([c, v, snapshot]);
  // The staging tensors passed to variable() and assign() were not disposed above: 2 remain.
  assert.equal(tf.memory().numTensors, before + 2);
  await tf.setBackend('cpu');
});

test('a whole small model: every parameter gradient with the fast paths equals tfjs native gradients', async () => {
  const rng = new Rng(24);
  for (const [family, shape] of SMALL_FAMILIES) {
    const cfg = parseConfigText(smallModelYaml(family, shape));
    const dims = size(shape);
    const o = { dims, nBins: 256, lossName: shape.length === 3 ? ('bpd' as const) : ('nll' as const), classLossWeight: 0 };
    const x = rng.uniformArray(5 * dims, -0.5, 0.5);
    const perturbation = new Map<string, Float32Array>();
    const gradsOn = async (backend: string, fast: boolean): Promise<Map<string, number[]>> => {
      await tf.setBackend(backend);
      setFastGradients(fast ? 'on' : 'off');
      const model = buildModel(cfg.model, shape, { seed: 4 });
      const xt = tf.tensor(x, [5, ...shape]);
      model.initialize(xt);
      // The same perturbation on every backend, so zero-initialised layers are not the identity.
      tf.tidy(() => {
        for (const [name, v] of model.variables()) {
          if (!v.trainable) continue;
          if (!perturbation.has(name)) perturbation.set(name, rng.normalArray(v.size, 0.1));
          v.assign(tf.add(v, tf.tensor(perturbation.get(name)!, v.shape)));
        }
      });
      const names = model.variables().filter(([, v]) => v.trainable);
      const { loss, grads } = lossAndGrads(model, names.map(([, v]) => v), { x: xt }, o);
      const out = new Map(names.map(([n], i) => [n, Array.from(grads[i]!.dataSync())]));
      tf.dispose([xt, loss, ...grads]);
      model.dispose();
      setFastGradients('auto');
      return out;
    };
    const ref = await gradsOn('cpu', false);
    for (const backend of ['cpu', 'wasm']) {
      const got = await gradsOn(backend, true);
      assert.equal(got.size, ref.size);
      for (const [name, want] of ref) {
        if (want.every((v) => v === 0)) continue; // e.g. ActNorm's loc under a zero-mean batch: nothing to compare
        assertClose(got.get(name)!, want, `${family} on ${backend}: gradient of ${name}`);
      }
    }
  }
  await tf.setBackend('cpu');
});

/** op on wasm (SIMD kernels) against the same op on cpu (tf ops), as plain arrays. */
async function onBoth(inputs: Array<[Float32Array, number[]]>, op: (...t: Tensor[]) => Tensor): Promise<[number[], number[], number[]]> {
  const out: number[][] = [];
  let shape: number[] = [];
  for (const backend of ['wasm', 'cpu']) {
    await tf.setBackend(backend);
    const ts = inputs.map(([v, sh]) => tf.tensor(v, sh));
    const y = op(...ts);
    shape = y.shape;
    out.push(Array.from(y.dataSync()));
    tf.dispose([...ts, y]);
  }
  await tf.setBackend('cpu');
  return [out[0]!, out[1]!, shape];
}

test('SIMD kernels: Aᵀ·B (+ column sums) for every remainder of rows, columns and row chunks', async () => {
  const rng = new Rng(25);
  for (const r of [1, 5, 130, 300]) {
    for (const m of [1, 2, 3, 4, 5, 7, 18]) {
      for (const n of [4, 8, 12, 20]) {
        const a = rng.normalArray(r * m);
        const b = rng.normalArray(r * n);
        for (const withSums of [false, true]) {
          const [got, want, shape] = await onBoth([[a, [r, m]], [b, [r, n]]], (x, y) => matMulTN(x!, y!, withSums));
          assert.deepEqual(shape, [m + (withSums ? 1 : 0), n]);
          assertClose(got, want, `matMulTN r=${r} m=${m} n=${n} sums=${withSums}`);
        }
      }
    }
  }
});

test('SIMD kernels: A·B + bias (ReLU), B plain or transposed, for every remainder', async () => {
  const rng = new Rng(26);
  for (const r of [1, 7, 130]) {
    for (const k of [1, 3, 18]) {
      for (const n of [4, 8, 12, 36]) {
        const a = rng.normalArray(r * k);
        const b = rng.normalArray(k * n);
        const bias = rng.normalArray(n);
        for (const transposeB of [false, true]) {
          for (const relu of [false, true]) {
            const [got, want] = await onBoth([[a, [r, k]], [b, transposeB ? [n, k] : [k, n]], [bias, [n]]], (x, y, z) => gemm(x!, y!, { bias: z, relu, transposeB }));
            assertClose(got, want, `gemm r=${r} k=${k} n=${n} transposeB=${transposeB} relu=${relu}`);
          }
        }
        const [got, want] = await onBoth([[a, [r, k]], [b, [k, n]]], (x, y) => gemm(x!, y!));
        assertClose(got, want, `gemm without bias r=${r} k=${k} n=${n}`);
      }
    }
  }
});

/** Adam/Adamax as plain tf ops, the textbook order of operations (the reference for the fused kernel). */
function referenceAdam(p: Tensor, m: Tensor, v: Tensor, g: Tensor, lr: number, t: number, adamax: boolean): Tensor[] {
  return tf.tidy(() => {
    const m2 = tf.add(tf.mul(m, 0.9), tf.mul(g, 1 - 0.9));
    const mHat = tf.div(m2, 1 - Math.pow(0.9, t));
    const v2 = adamax ? tf.maximum(tf.mul(v, 0.999), tf.abs(g)) : tf.add(tf.mul(v, 0.999), tf.mul(tf.square(g), 1 - 0.999));
    const denom = adamax ? tf.add(v2, 1e-8) : tf.add(tf.sqrt(tf.div(v2, 1 - Math.pow(0.999, t))), 1e-8);
    return [tf.sub(p, tf.mul(tf.div(mHat, denom), lr)), m2, v2];
  });
}

test('the Optimizer (fused adamStep on wasm) equals Adam and Adamax written as tf ops, bit for bit, on wasm and cpu', async () => {
  const rng = new Rng(27);
  for (const backend of ['wasm', 'cpu']) {
    await tf.setBackend(backend);
    for (const kind of ['adam', 'adamax'] as const) {
      const shapes = [[3, 5], [7], [2, 2, 3, 4]];
      const init = shapes.map((sh) => rng.normalArray(size(sh)));
      const params = shapes.map((sh, i) => tf.variable(tf.tensor(init[i]!, sh)));
      const optimizer = new Optimizer(kind, params);
      let reference = shapes.map((sh, i) => [tf.tensor(init[i]!, sh), tf.zeros(sh), tf.zeros(sh)]);
      for (let t = 1; t <= 4; t++) {
        const grads = shapes.map((sh) => {
          const g = rng.normalArray(size(sh), t === 2 ? 1e-6 : 3);
          g[0] = 0; // a zero gradient entry
          return tf.tensor(g, sh);
        });
        const lr = 1e-3 * t;
        optimizer.apply(grads, lr);
        reference = reference.map((state, i) => {
          const next = referenceAdam(state[0]!, state[1]!, state[2]!, grads[i]!, lr, t, kind === 'adamax');
          tf.dispose(state);
          return next;
        });
        // adamStep on its own, from the same state, agrees too.
        const one = adamStep(reference[0]![0]!, reference[0]![1]!, reference[0]![2]!, grads[0]!, { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, t, adamax: kind === 'adamax' });
        const two = referenceAdam(reference[0]![0]!, reference[0]![1]!, reference[0]![2]!, grads[0]!, lr, t, kind === 'adamax');
        one.forEach((x, j) => assert.deepEqual(Array.from(x.dataSync()), Array.from(two[j]!.dataSync()), `adamStep ${kind} on ${backend}, output ${j}`));
        tf.dispose([...one, ...two, ...grads]);
      }
      const records = await optimizer.records(shapes.map((_, i) => `p${i}`));
      shapes.forEach((_, i) => {
        assert.deepEqual(Array.from(params[i]!.dataSync()), Array.from(reference[i]![0]!.dataSync()), `${kind} on ${backend}: parameter ${i}`);
        assert.deepEqual(Array.from(records[i]!.data), Array.from(reference[i]![1]!.dataSync()), `${kind} on ${backend}: first moment ${i}`);
        assert.deepEqual(Array.from(records[shapes.length + i]!.data), Array.from(reference[i]![2]!.dataSync()), `${kind} on ${backend}: second moment ${i}`);
      });
      optimizer.dispose();
      tf.dispose([...params, ...reference.flat()]);
    }
  }
  await tf.setBackend('cpu');
});

test('fused affine coupling (eval and sampling on wasm) equals the tf-op coupling: forward, inverse, log-determinants', async () => {
  await tf.setBackend('wasm');
  assert.ok(fusedCouplingAvailable(), 'the fused coupling runs on wasm outside a gradient tape');
  let insideTape = true;
  tf.grad((v: Tensor) => ((insideTape = fusedCouplingAvailable()), tf.sum(v)))(tf.ones([2])).dispose();
  assert.equal(insideTape, false, 'the fused coupling is off while a gradient is recorded');
  const rng = new Rng(41);
  // A net with random weights and a wide output range: some scales near 0 (raw << -2), some near 1.
  let weightScale = 3;
  const randomNet = (inC: number, outC: number): Net => {
    const w = tf.tensor2d(rng.normalArray(inC * outC, weightScale), [inC, outC]);
    const apply = (x: Tensor) => tf.reshape(tf.matMul(tf.reshape(x, [-1, inC]) as tf.Tensor2D, w), [...x.shape.slice(0, -1), outC]);
    return { apply, applyHeads: (x, heads) => interleavedHeads(apply(x), heads), variables: () => [] };
  };
  for (const floor of [0, 0.05]) {
    for (const shape of [[3, 5, 4, 4], [2, 3, 3, 5], [1, 2, 2, 2], [4, 3]]) {
      const c = shape[shape.length - 1]!;
      const coupling = new HalfCoupling(c, halfCouplingTransformer('affine', floor), randomNet, 'c');
      const x = tf.tensor(rng.normalArray(size(shape)), shape);
      const what = `floor ${floor}, [${shape}]`;
      const run = () => {
        const f = coupling.forward(x);
        const i = coupling.inverse(x);
        return [f.y, f.logdet, i.x, i.logdet];
      };
      const fused = run();
      setFastGradients('off'); // the plain tf-op coupling
      const plain = run();
      setFastGradients('auto');
      ['forward y', 'forward logdet', 'inverse x', 'inverse logdet'].forEach((name, k) =>
        assertClose(fused[k]!.dataSync(), plain[k]!.dataSync(), `${what}: ${name}`, 1e-5));
      const back = coupling.inverse(fused[0]!);
      assertClose(back.x.dataSync(), x.dataSync(), `${what}: inverse(forward(x))`, 1e-4);
      // Under a gradient tape the fused kernel (which has no gradient) must stay out of the way.
      const g = tf.grad((v: Tensor) => tf.sum(coupling.forward(v).y))(x);
      assert.ok(Array.from(g.dataSync()).every(Number.isFinite), `${what}: gradient through the coupling`);
      tf.dispose([x, g, back.x, back.logdet, ...fused, ...plain]);
    }
  }
  // Raw scales down to about -1000: the scale underflows to 0, the log-determinant must stay finite.
  weightScale = 400;
  const coupling = new HalfCoupling(4, halfCouplingTransformer('affine', 0), randomNet, 'c');
  const x = tf.tensor(rng.normalArray(2 * 3 * 3 * 4), [2, 3, 3, 4]);
  const fused = coupling.forward(x).logdet;
  setFastGradients('off');
  const plain = coupling.forward(x).logdet;
  setFastGradients('auto');
  assert.ok(Array.from(fused.dataSync()).every(Number.isFinite), `extreme scales: finite log-determinants, got ${fused.dataSync()}`);
  assertClose(fused.dataSync(), plain.dataSync(), 'extreme scales: forward logdet', 1e-5);
  tf.dispose([x, fused, plain]);
  await tf.setBackend('cpu');
});
