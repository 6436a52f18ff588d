// The webgpu backend (Dawn) against the cpu backend: every bijector, whole models' log p(x) and gradients,
// one Adam step, sampling and decoding agree within float32 tolerance; the CLI trains, resumes bitwise, evaluates
// and samples on it (test/memory.test.ts shows training keeps the tensor count flat there). Without a GPU,
// Dawn's OpenGL ES backend on Mesa llvmpipe runs them (.ci/run installs its Debian packages); on a GPU machine
// the hardware adapter does. These tests are never skipped: without any adapter they fail and say what to install.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { tf, type Tensor } from '../src/tf.js';
import { selectBackend, type SelectedBackend } from '../src/backend/select.js';
import { ops } from '../src/kernels/index.js';
import { Rng } from '../src/rng.js';
import type { Bijector, NamedVariable } from '../src/flows/bijector.js';
import { ActNorm, DiagonalScale, ReversePermutation, ShufflePermutation, Squeeze } from '../src/flows/layers.js';
import { InvConv1x1 } from '../src/flows/invconv.js';
import { HalfCoupling, MaskedCoupling, halfCouplingTransformer, maskedCouplingTransformer } from '../src/flows/coupling.js';
import { ConvNet, MLP } from '../src/flows/nets.js';
import { buildModel, type FlowModel } from '../src/flows/model.js';
import { parseConfigText } from '../src/config/load.js';
import { lossAndGrads, trainStep } from '../src/train/step.js';
import { Optimizer } from '../src/train/optimizer.js';
import { SMALL_FAMILIES, TINY_CONFIG, assertClose, flow, smallModelYaml, tempDir, writeYaml } from './helpers.js';

let webgpu: SelectedBackend;

before(async () => {
  webgpu = await selectBackend('webgpu');
});

async function on(backend: 'cpu' | 'webgpu'): Promise<void> {
  await selectBackend(backend);
  assert.equal(tf.getBackend(), backend);
}

/** assertClose relative to max(1, max |expected|): outputs near zero are compared absolutely. */
const assertNear = (actual: number[], expected: number[], what: string, tol = 1e-4) => assertClose(actual, expected, what, tol, 1);

async function read(t: Tensor): Promise<number[]> {
  return Array.from(await t.data());
}


/** Same perturbation on both backends, so zero-initialised layers are not the identity. */
function perturb(vars: NamedVariable[], seed: number, std = 0.1): void {
  const rng = new Rng(seed);
  tf.tidy(() => {
    for (const [, v] of vars) if (v.trainable) v.assign(tf.add(v, tf.tensor(rng.normalArray(v.size, std), v.shape)));
  });
}

test('the webgpu backend starts on an adapter and uses the stock Ops (slices, stock kernels, no host reads)', async () => {
  assert.equal(webgpu.name, 'webgpu');
  assert.ok(webgpu.adapter, 'the adapter is reported');
  assert.equal(webgpu.device, webgpu.adapter!.software ? 'CPU' : 'GPU');
  await on('webgpu');
  assert.equal(ops().name, 'stock');
  assert.equal(ops().hostMemory, false);
  await on('cpu');
  assert.equal(ops().name, 'fast');
});

interface Case {
  name: string;
  shape: number[];
  make: (rng: Rng) => Bijector;
  init?: boolean;
}

const convNet = (rng: Rng) => (cin: number, cout: number) => new ConvNet(cin, 8, cout, rng);
const mlp = (rng: Rng) => (cin: number, cout: number) => new MLP(cin, 8, 2, cout, rng);
const CASES: Case[] = [
  { name: 'squeeze', shape: [2, 4, 4, 2], make: () => new Squeeze() },
  { name: 'actnorm', shape: [2, 4, 4, 3], make: () => new ActNorm(3), init: true },
  { name: 'invconv lu', shape: [2, 3, 3, 4], make: (r) => new InvConv1x1(4, r, { lu: true }) },
  { name: 'reverse', shape: [2, 3, 3, 4], make: () => new ReversePermutation() },
  { name: 'shuffle', shape: [2, 3, 3, 5], make: (r) => new ShufflePermutation(5, r) },
  { name: 'diagonal scale', shape: [3, 6], make: () => new DiagonalScale([6]) },
  { name: 'glow affine coupling', shape: [2, 4, 4, 4], make: (r) => new HalfCoupling(4, halfCouplingTransformer('affine', 0), convNet(r), 'c') },
  { name: 'glow affine coupling, floor, odd channels', shape: [2, 4, 4, 5], make: (r) => new HalfCoupling(5, halfCouplingTransformer('affine', 0.05), convNet(r), 'c') },
  { name: 'nice additive coupling', shape: [3, 6], make: (r) => new HalfCoupling(6, halfCouplingTransformer('additive'), mlp(r), 'c') },
  { name: 'realnvp checkerboard coupling', shape: [2, 4, 4, 2], make: (r) => new MaskedCoupling([4, 4, 2], 'checkerboard', 1, maskedCouplingTransformer('affine', 2), convNet(r)) },
  { name: 'realnvp channel coupling (vectors)', shape: [3, 6], make: (r) => new MaskedCoupling([6], 'channel', 0, maskedCouplingTransformer('affine', 6), mlp(r)) },
];

async function runCase(c: Case, backend: 'cpu' | 'webgpu'): Promise<number[][]> {
  await on(backend);
  const seed = c.name.length * 131 + 7;
  const x = tf.tensor(new Rng(seed).normalArray(c.shape.reduce((a, b) => a * b, 1)), c.shape);
  const b = c.make(new Rng(seed + 1));
  if (c.init) b.initialize!(x);
  perturb(b.variables(), seed + 2);
  const f = b.forward(x);
  const back = b.inverse(f.y);
  const out = [await read(f.y), await read(f.logdet), await read(back.x), await read(back.logdet), await read(x)];
  tf.dispose([x, f.y, f.logdet, back.x, back.logdet]);
  for (const [, v] of b.variables()) v.dispose();
  return out;
}

test('every bijector: forward, inverse and both log-determinants on webgpu equal cpu', async () => {
  for (const c of CASES) {
    const cpu = await runCase(c, 'cpu');
    const gpu = await runCase(c, 'webgpu');
    ['forward y', 'forward logdet', 'inverse x', 'inverse logdet'].forEach((what, k) => assertNear(gpu[k]!, cpu[k]!, `${c.name}: ${what}`));
    // And on webgpu itself the inverse undoes the forward, with the opposite log-determinant.
    assertNear(gpu[2]!, gpu[4]!, `${c.name}: inverse(forward(x)) on webgpu`, 1e-4);
    assertNear(gpu[3]!.map((v) => -v), gpu[1]!, `${c.name}: inverse logdet = -forward logdet on webgpu`, 1e-4);
  }
});

function modelOf(family: string, shape: number[]): FlowModel {
  return buildModel(parseConfigText(smallModelYaml(family, shape)).model, shape, { seed: 4 });
}

interface ModelRun {
  logp: number[];
  grads: number[][];
  afterAdam: number[][];
  samples: number[];
  decoded: number[];
  input: number[];
}

async function runModel(family: string, shape: number[], backend: 'cpu' | 'webgpu'): Promise<ModelRun> {
  await on(backend);
  const dims = shape.reduce((a, b) => a * b, 1);
  const x = tf.tensor(new Rng(9).uniformArray(5 * dims, -0.5, 0.5), [5, ...shape]);
  const model = modelOf(family, shape);
  model.initialize(x);
  perturb(model.variables(), 10);
  const logp = tf.tidy(() => model.logProb(x));
  const params = model.trainableVariables();
  const o = { dims, nBins: 256, lossName: shape.length === 3 ? ('bpd' as const) : ('nll' as const), classLossWeight: 0 };
  const { loss, grads } = lossAndGrads(model, params, { x }, o);
  const gradValues = await Promise.all(grads.map(read));
  tf.dispose([loss, ...grads]);
  const optimizer = new Optimizer('adam', params);
  const step = await trainStep(model, optimizer, { x }, { ...o, lr: 1e-3, maxGradNorm: 0 });
  assert.ok(step.applied, `${family} on ${backend}: the Adam step was applied`);
  const afterAdam = await Promise.all(params.map(read));
  const samples = model.sample(4, 0.8, new Rng(11));
  const enc = model.encode(x);
  const decoded = model.decode(enc.zs);
  const out = { logp: await read(logp), grads: gradValues, afterAdam, samples: await read(samples), decoded: await read(decoded), input: await read(x) };
  tf.dispose([x, logp, samples, decoded, ...enc.zs, enc.logdet, enc.logpz]);
  optimizer.dispose();
  model.dispose();
  return out;
}

test('whole models (glow, realnvp, nice): log p(x), every gradient, one Adam step, samples and decode on webgpu equal cpu', async () => {
  for (const [family, shape] of SMALL_FAMILIES) {
    const cpu = await runModel(family, shape, 'cpu');
    const gpu = await runModel(family, shape, 'webgpu');
    assertNear(gpu.logp, cpu.logp, `${family}: log p(x)`);
    assert.ok(cpu.grads.some((g) => g.some((v) => Math.abs(v) > 1e-6)), `${family}: the gradients are not all zero`);
    gpu.grads.forEach((g, i) => assertNear(g, cpu.grads[i]!, `${family}: gradient of parameter ${i}`, 1e-3));
    gpu.afterAdam.forEach((p, i) => assertNear(p, cpu.afterAdam[i]!, `${family}: parameter ${i} after one Adam step`, 1e-4));
    assertNear(gpu.samples, cpu.samples, `${family}: samples (T=0.8, same noise)`, 1e-3);
    assertNear(gpu.decoded, gpu.input, `${family}: decode(encode(x)) on webgpu`, 1e-4);
  }
});

test('the CLI on webgpu: train, resume bitwise, eval equal to wasm within 1e-3 bpd, sample equal to wasm', () => {
  const dir = tempDir();
  const config = (name: string) =>
    writeYaml(dir, `${name}.yaml`, TINY_CONFIG.replace('name: tiny', `name: ${name}`).replace('backend: wasm', 'backend: webgpu').replace('max_steps: 40', 'max_steps: 4').replace('checkpoint_every: 20', 'checkpoint_every: 2'));
  // The configs say backend: webgpu; the helpers pin FLOW_BACKEND=wasm for other tests, so unpin it here.
  const onGpu = { FLOW_BACKEND: '' };
  const straight = flow(['train', config('straight'), '--json'], dir, onGpu);
  assert.equal(straight.code, 0, straight.stderr);
  assert.match(straight.stderr, /backend: webgpu \((CPU, software|GPU, hardware) adapter/);
  assert.equal(flow(['train', config('split'), '--max-steps', '2', '--quiet'], dir, onGpu).code, 0);
  const resumed = flow(['train', config('split'), '--quiet'], dir, onGpu);
  assert.equal(resumed.code, 0, resumed.stderr);
  const weights = (run: string) => fs.readFileSync(path.join(dir, 'runs', run, 'checkpoints', 'step-00000004', 'weights.bin'));
  assert.ok(weights('straight').equals(weights('split')), 'a run resumed at step 2 ends with the uninterrupted run\'s weights, bit for bit');

  const evalOn = (backend: string) => {
    const r = flow(['eval', '--bpd', '--run', path.join(dir, 'runs', 'straight'), '--backend', backend, '--json'], dir);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout.trim().split("\n").pop()!) as { bpd: number; n: number };
  };
  const gpu = evalOn('webgpu');
  const cpu = evalOn('wasm');
  assert.equal(gpu.n, cpu.n);
  assert.ok(Number.isFinite(gpu.bpd) && Math.abs(gpu.bpd - cpu.bpd) < 1e-3, `eval: webgpu ${gpu.bpd} vs wasm ${cpu.bpd} bpd`);

  const sampleOn = (backend: string) => {
    const out = path.join(dir, `s-${backend}.png`);
    const r = flow(['sample', '--run', path.join(dir, 'runs', 'straight'), '--n', '8', '--backend', backend, '--no-labels', '--out', out], dir);
    assert.equal(r.code, 0, r.stderr);
    return fs.readFileSync(out);
  };
  assert.ok(sampleOn('webgpu').equals(sampleOn('wasm')), 'samples on webgpu are the same pixels as on wasm');
});
