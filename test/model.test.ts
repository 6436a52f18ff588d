// Whole models of every family: exact encode/decode, total logdet = brute-force Jacobian log|det| of
// x -> concat(zs), finite logProb, reproducible sampling, conditional sampling, gradients for every
// trainable variable, stable names, and no leaked tensors.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import '@tensorflow/tfjs-backend-cpu';
import { tf, type Tensor } from '../src/tf.js';
import { Rng } from '../src/rng.js';
import { ModelSchema, type ModelConfig } from '../src/config/schema.js';
import { buildModel, countParameters, resolveModelConfig, type FlowModel } from '../src/flows/model.js';
import { auditBijector, bruteForceLogAbsDet } from './bijector-checks.js';
import { MultiScaleBuilder } from '../src/flows/multiscale.js';
import { ActNorm, Squeeze } from '../src/flows/layers.js';
import { ShapeError } from '../src/flows/bijector.js';

before(async () => {
  await tf.setBackend('cpu');
});

function config(overrides: Partial<ModelConfig>): ModelConfig {
  return ModelSchema.parse({ levels: 2, depth: 2, width: 8, hidden_layers: 2, ...overrides });
}

function randomTensor(shape: number[], rng: Rng, scale = 1): Tensor {
  return tf.tensor(rng.normalArray(shape.reduce((a, b) => a * b, 1), scale), shape);
}

/** N(0, 0.1) noise on every trainable variable: zero-initialised layers stop being the identity. */
function perturb(model: FlowModel, rng: Rng, std = 0.1): void {
  tf.tidy(() => {
    for (const v of model.trainableVariables()) v.assign(tf.add(v, tf.tensor(rng.normalArray(v.size, std), v.shape)));
  });
}

function maxAbsDiff(a: Tensor, b: Tensor): number {
  const d = tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))));
  const v = d.dataSync()[0]!;
  d.dispose();
  return v;
}

function values(t: Tensor): number[] {
  const v = Array.from(t.dataSync());
  t.dispose();
  return v;
}

/** A ready model: built, ActNorm-initialised on a batch, perturbed. */
function readyModel(cfg: ModelConfig, shape: number[], seed = 1, numClasses?: number): { model: FlowModel; x: Tensor; labels?: Tensor } {
  const rng = new Rng(seed + 100);
  const model = buildModel(cfg, shape, { seed, numClasses });
  const x = randomTensor([4, ...shape], rng, 0.3);
  const labels = numClasses ? tf.tensor1d([0, 1, 2, 1].map((l) => l % numClasses), 'int32') : undefined;
  model.initialize(x, labels);
  perturb(model, rng);
  return { model, x, labels };
}

/** Invertibility, total logdet vs the brute-force Jacobian, finite logProb, reproducible samples. */
function checkModel(label: string, cfg: ModelConfig, shape: number[], numClasses?: number): void {
  const { model, x, labels } = readyModel(cfg, shape, 1, numClasses);

  const enc = model.encode(x, labels);
  assert.equal(enc.zs.length, model.latentShapes().length, `${label}: latent count`);
  enc.zs.forEach((z, i) => assert.deepEqual(z.shape.slice(1), model.latentShapes()[i], `${label}: latent ${i} shape`));
  const back = model.decode(enc.zs, labels);
  const err = maxAbsDiff(x, back);
  assert.ok(err <= 1e-5, `${label}: max |x - decode(encode(x))| = ${err}`);

  const logdet = Array.from(enc.logdet.dataSync());
  const logp = values(model.logProb(x, labels));
  const logpz = Array.from(enc.logpz.dataSync());
  logp.forEach((v, i) => {
    assert.ok(Number.isFinite(v), `${label}: logProb ${v}`);
    assert.ok(Math.abs(v - (logpz[i]! + logdet[i]!)) < 1e-3, `${label}: logProb = logpz + logdet`);
  });
  tf.dispose([...enc.zs, enc.logdet, enc.logpz, back]);

  // The whole x -> concat(zs) bijection, on two examples.
  for (let i = 0; i < 2; i++) {
    const xi = tf.slice(x, i, 1);
    const brute = bruteForceLogAbsDet(
      (t) => {
        // labels only shape the prior, not the bijection: give the batch any valid labels.
        const zs = model.encode(t, labels ? tf.zeros([t.shape[0]!], 'int32') : undefined);
        const b = t.shape[0]!;
        return tf.concat(zs.zs.map((z) => tf.reshape(z, [b, -1])), 1);
      },
      xi,
    );
    xi.dispose();
    assert.ok(Math.abs(brute - logdet[i]!) <= 1e-3, `${label}[${i}]: encode logdet ${logdet[i]} vs brute force ${brute}`);
  }

  const s1 = model.sample(3, 0.7, new Rng(42), labels && tf.slice(labels, 0, 3));
  const s2 = model.sample(3, 0.7, new Rng(42), labels && tf.slice(labels, 0, 3));
  assert.deepEqual(s1.shape, [3, ...shape]);
  const v1 = values(s1);
  assert.ok(v1.every(Number.isFinite), `${label}: samples are finite`);
  assert.deepEqual(v1, values(s2), `${label}: same seed, same samples`);
  const s3 = model.sample(3, 0.7, new Rng(43), labels && tf.slice(labels, 0, 3));
  assert.notDeepEqual(values(s3), v1, `${label}: another seed, other samples`);

  // logProb inside tidy 20 times: nothing stays behind.
  const before = tf.memory().numTensors;
  for (let i = 0; i < 20; i++) {
    tf.tidy(() => {
      model.logProb(x, labels);
    });
  }
  assert.equal(tf.memory().numTensors, before, `${label}: logProb leaked tensors`);

  x.dispose();
  labels?.dispose();
  model.dispose();
}

const FAMILIES = ['glow', 'realnvp', 'nice'] as const;

for (const family of FAMILIES) {
  test(`${family}: tiny image models invert and their logdet matches the Jacobian`, () => {
    checkModel(`${family} 4x4x2`, config({ family }), [4, 4, 2]);
    checkModel(`${family} 8x8x1`, config({ family }), [8, 8, 1]);
  });
  test(`${family}: vector models invert and their logdet matches the Jacobian`, () => {
    checkModel(`${family} [4]`, config({ family }), [4]);
    checkModel(`${family} [2]`, config({ family, depth: 3 }), [2]);
    checkModel(`${family} [3]`, config({ family }), [3]);
  });
}

test('option variants: free 1x1 conv, shuffle/reverse/none permutations, additive glow, affine nice, actnorm on, fixed masks, standard priors', () => {
  checkModel('glow lu=false', config({ family: 'glow', lu: false }), [4, 4, 2]);
  checkModel('glow shuffle additive', config({ family: 'glow', permutation: 'shuffle', coupling: 'additive' }), [4, 4, 2]);
  checkModel('glow reverse standard priors', config({ family: 'glow', permutation: 'reverse', learn_top: false, split_prior: 'standard' }), [4, 4, 2]);
  checkModel('nice affine conv1x1 actnorm', config({ family: 'nice', coupling: 'affine', permutation: 'conv1x1', actnorm: 'on' }), [4, 4, 2]);
  checkModel('realnvp checkerboard actnorm additive', config({ family: 'realnvp', mask: 'checkerboard', actnorm: 'on', coupling: 'additive' }), [4, 4, 2]);
  checkModel('realnvp channel shuffle', config({ family: 'realnvp', mask: 'channel', permutation: 'shuffle', levels: 1, depth: 3 }), [4, 4, 2]);
  checkModel('glow vector lu=false', config({ family: 'glow', lu: false, hidden_layers: 1 }), [5]);
});

test('conditional models: class-dependent samples, labels required, class logits', () => {
  const cfg = config({ family: 'glow', conditional: 'classes', class_loss_weight: 1 });
  checkModel('conditional glow', cfg, [4, 4, 2], 3);
  const { model, x, labels } = readyModel(cfg, [4, 4, 2], 3, 3);
  assert.equal(model.numClasses, 3);
  const zeros = tf.tensor1d([0, 0], 'int32');
  const ones = tf.tensor1d([1, 1], 'int32');
  const a = values(model.sample(2, 0.5, new Rng(7), zeros));
  const b = values(model.sample(2, 0.5, new Rng(7), ones));
  assert.notDeepEqual(a, b, 'same noise, different class, different samples');
  const logp0 = values(model.logProb(x, tf.zeros([4], 'int32')));
  const logp1 = values(model.logProb(x, tf.ones([4], 'int32')));
  assert.notDeepEqual(logp0, logp1, 'the label changes the density');
  assert.throws(() => model.logProb(x), /labels are required/);
  const both = model.logProbAndLogits(x, labels);
  assert.deepEqual(both.logits!.shape, [4, 3]);
  // The classifier sees the top latent only, which the labels do not change.
  assert.deepEqual(values(both.logits!), values(model.logProbAndLogits(x, tf.zeros([4], 'int32')).logits!));
  assert.deepEqual(values(both.logp), values(model.logProb(x, labels)));
  // Every trainable variable gets a gradient from the objective the trainer uses.
  const params = model.trainableVariables();
  const { value, grads } = tf.variableGrads(() => {
    const { logp, logits } = model.logProbAndLogits(x, labels);
    const nll = tf.neg(tf.mean(logp));
    const ce = tf.losses.softmaxCrossEntropy(tf.oneHot(labels!, 3), logits!);
    return tf.add(nll, ce) as tf.Scalar;
  }, params);
  for (const p of params) assert.ok(grads[p.name], `no gradient for ${model.variables().find(([, v]) => v === p)?.[0]}`);
  tf.dispose([value, ...Object.values(grads), zeros, ones, x, labels!]);
  model.dispose();
  // Unconditional models have no classifier and ignore labels.
  const plain = buildModel(config({ family: 'glow' }), [4, 4, 2], { seed: 0 });
  const xp = tf.zeros([1, 4, 4, 2]);
  assert.equal(plain.logProbAndLogits(xp).logits, undefined);
  plain.dispose();
  xp.dispose();
  assert.throws(() => buildModel(cfg, [4, 4, 2], { seed: 0 }), /needs labelled data/);
});

test('every trainable variable of every family gets a gradient from logProb (the trainer needs them all)', () => {
  const cases: Array<[string, ModelConfig, number[]]> = [
    ['glow', config({ family: 'glow' }), [4, 4, 2]],
    ['realnvp', config({ family: 'realnvp' }), [4, 4, 2]],
    ['nice', config({ family: 'nice' }), [4, 4, 2]],
    ['glow free', config({ family: 'glow', lu: false, permutation: 'conv1x1' }), [4]],
    ['realnvp vec', config({ family: 'realnvp' }), [4]],
  ];
  for (const [label, cfg, shape] of cases) {
    const { model, x } = readyModel(cfg, shape);
    const params = model.trainableVariables();
    const { value, grads } = tf.variableGrads(() => tf.neg(tf.mean(model.logProb(x))) as tf.Scalar, params);
    for (const p of params) {
      const g = grads[p.name];
      assert.ok(g, `${label}: no gradient for ${model.variables().find(([, v]) => v === p)?.[0]}`);
      assert.ok(values(tf.sum(tf.abs(g))).every(Number.isFinite));
    }
    tf.dispose([value, ...Object.values(grads), x]);
    model.dispose();
  }
});

test('gradients of the loss match central finite differences (one entry of every trainable variable)', () => {
  for (const [label, cfg, shape] of [
    ['glow', config({ family: 'glow', width: 4 }), [4, 4, 2]],
    ['realnvp', config({ family: 'realnvp', width: 4, depth: 2 }), [4, 4, 1]],
    ['nice vec', config({ family: 'nice', actnorm: 'on', permutation: 'shuffle' }), [3]],
    ['glow free vec', config({ family: 'glow', lu: false, conditional: 'classes' }), [4]],
  ] as Array<[string, ModelConfig, number[]]>) {
    const numClasses = cfg.conditional === 'classes' ? 3 : undefined;
    const { model, x, labels } = readyModel(cfg, shape, 5, numClasses);
    // Summed in float64 from the per-example values: float32 rounding stays below the difference step.
    const loss = () => values(model.logProb(x, labels)).reduce((a, b) => a + b, 0) / x.shape[0]!;
    const params = model.trainableVariables();
    const { value, grads } = tf.variableGrads(() => tf.mean(model.logProb(x, labels)) as tf.Scalar, params);
    const rng = new Rng(8);
    const eps = 2e-3;
    for (const [name, v] of model.variables()) {
      if (!v.trainable) continue;
      const k = rng.int(v.size);
      const g = grads[v.name]!.dataSync()[k]!;
      const base = v.dataSync().slice();
      const at = (delta: number) => {
        const moved = base.slice();
        moved[k] = moved[k]! + delta;
        tf.tidy(() => v.assign(tf.tensor(moved, v.shape)));
        return loss();
      };
      const [up, mid, down] = [at(eps), at(0), at(-eps)];
      tf.tidy(() => v.assign(tf.tensor(base, v.shape)));
      // A ReLU kink right next to the current point (a unit at ~0) breaks the central difference;
      // the gradient must then match one of the one-sided ones.
      const estimates = [(up - down) / (2 * eps), (up - mid) / eps, (mid - down) / eps];
      assert.ok(
        estimates.some((fd) => Math.abs(fd - g) <= 2e-2 * (1 + Math.abs(fd))),
        `${label} ${name}[${k}]: gradient ${g} vs finite differences ${estimates.join(', ')}`,
      );
    }
    tf.dispose([value, ...Object.values(grads), x]);
    labels?.dispose();
    model.dispose();
  }
});

test('ActNorm data-dependent init through the model: flag, statistics, no re-init, survives a variable copy', () => {
  const cfg = config({ family: 'glow' });
  const rng = new Rng(9);
  const model = buildModel(cfg, [4, 4, 2], { seed: 0 });
  assert.equal(model.initialized, false);
  const x = randomTensor([16, 4, 4, 2], rng, 0.2);
  model.initialize(x);
  assert.equal(model.initialized, true);
  // The first ActNorm sees the squeezed input: its output is normalised per channel.
  const first = model.namedLayers().find((l) => l.name === 'levels.0.steps.0.actnorm')!;
  const out = tf.tidy(() => {
    const squeezed = model.namedLayers()[0]!.bijector.forward(x).y;
    return tf.moments(first.bijector.forward(squeezed).y, [0, 1, 2]);
  });
  for (const m of values(out.mean)) assert.ok(Math.abs(m) < 1e-4);
  for (const v of values(out.variance)) assert.ok(Math.abs(Math.sqrt(v) - 1) < 1e-3);
  const snapshot = model.variables().map(([n, v]) => [n, Array.from(v.dataSync())] as const);
  const other = tf.mul(x, 5);
  model.initialize(other);
  model.variables().forEach(([n, v], i) => assert.deepEqual(Array.from(v.dataSync()), snapshot[i]![1], `${n} changed on a second init`));

  // A model rebuilt from the same config and given these values (as a checkpoint load does) is initialised.
  perturb(model, rng);
  const copy = buildModel(cfg, [4, 4, 2], { seed: 0 });
  const byName = new Map(model.variables());
  for (const [n, v] of copy.variables()) v.assign(byName.get(n)!);
  assert.equal(copy.initialized, true);
  copy.initialize(other);
  const a = values(model.logProb(x));
  const b = values(copy.logProb(x));
  a.forEach((v, i) => assert.ok(Math.abs(v - b[i]!) < 1e-4));
  tf.dispose([x, other]);
  model.dispose();
  copy.dispose();
});

test('names, seeds, parameter count and per-layer audit', () => {
  const cfg = config({ family: 'glow' });
  const m1 = buildModel(cfg, [8, 8, 1], { seed: 3 });
  const m2 = buildModel(cfg, [8, 8, 1], { seed: 3 });
  const m3 = buildModel(cfg, [8, 8, 1], { seed: 4 });
  const names = m1.variables().map(([n]) => n);
  assert.equal(new Set(names).size, names.length, 'names are unique');
  assert.deepEqual(m2.variables().map(([n]) => n), names, 'names are stable');
  for (const expected of [
    'levels.0.steps.1.coupling.nn.conv1.kernel',
    'levels.0.steps.0.actnorm.initialized',
    'levels.0.steps.0.invconv.lower',
    'levels.0.split.prior.kernel',
    'levels.1.steps.1.coupling.nn.out.logscale',
    'top.mean',
    'top.logsd',
  ]) {
    assert.ok(names.includes(expected), `missing ${expected}`);
  }
  const kernel = (m: FlowModel) => Array.from(m.variables().find(([n]) => n === 'levels.0.steps.0.coupling.nn.conv1.kernel')![1].dataSync());
  assert.deepEqual(kernel(m1), kernel(m2), 'same seed, same initial weights');
  assert.notDeepEqual(kernel(m1), kernel(m3), 'other seed, other weights');
  const params = countParameters(m1);
  // Not trained: ActNorm's initialised flag and the LU 1x1 conv's permutation and signs; everything else is.
  const fixed = /\.(initialized|p|sign)$/;
  const learned = m1.variables().filter(([n]) => !fixed.test(n));
  assert.deepEqual(m1.trainableVariables(), learned.map(([, v]) => v), 'the trainable variables are exactly the learned ones');
  assert.deepEqual(m1.variables().filter(([, v]) => !v.trainable).map(([n]) => n), names.filter((n) => fixed.test(n)), 'only the fixed ones are not trainable');
  assert.equal(params, learned.reduce((s, [, v]) => s + v.size, 0), 'the parameter count covers the learned variables only');
  // conv1 of level 0: 3*3*2*8 + 8 and the LU 1x1 conv: 2 * 4*4 + 4.
  assert.ok(params > 2 * (3 * 3 * 2 * 8 + 8));

  // Each named layer inverts on inputs of its declared shape.
  const layers = m1.namedLayers();
  assert.equal(new Set(layers.map((l) => l.name)).size, layers.length);
  assert.deepEqual(layers.slice(0, 4).map((l) => l.name), ['levels.0.squeeze', 'levels.0.steps.0.actnorm', 'levels.0.steps.0.invconv', 'levels.0.steps.0.coupling']);
  assert.deepEqual(layers[1]!.inputShape, [4, 4, 4]);
  const rng = new Rng(1);
  perturb(m1, rng);
  for (const l of layers) {
    const x = randomTensor([2, ...l.inputShape], rng);
    const audit = auditBijector(l.bijector, x);
    assert.ok(audit.reconstructionError <= 1e-5, `${l.name}: ${audit.reconstructionError}`);
    assert.ok(audit.inverseLogdetError <= 1e-4, `${l.name}: ${audit.inverseLogdetError}`);
    x.dispose();
  }
  for (const m of [m1, m2, m3]) m.dispose();
});

test('config resolution and shape errors', () => {
  assert.deepEqual(resolveModelConfig(config({ family: 'glow' })), { family: 'glow', coupling: 'affine', permutation: 'conv1x1', actnorm: true, mask: 'auto' });
  assert.deepEqual(resolveModelConfig(config({ family: 'nice' })), { family: 'nice', coupling: 'additive', permutation: 'reverse', actnorm: false, mask: 'auto' });
  assert.deepEqual(resolveModelConfig(config({ family: 'realnvp' })), { family: 'realnvp', coupling: 'affine', permutation: 'none', actnorm: false, mask: 'auto' });
  assert.throws(() => buildModel(config({ levels: 3 }), [4, 4, 1], { seed: 0 }), /divisible by 8; got 4x4/);
  assert.throws(() => buildModel(config({}), [6, 8, 1], { seed: 0 }), /divisible by 4; got 6x8/);
  assert.throws(() => buildModel(config({}), [1], { seed: 0 }), /at least 2 dimensions/);
  assert.throws(() => buildModel(config({}), [4, 4], { seed: 0 }), /expected \[H, W, C\] images or \[D\] vectors/);
  const m = buildModel(config({}), [4, 4, 1], { seed: 0 });
  const bad = tf.zeros([1, 4, 4, 3]);
  assert.throws(() => m.logProb(bad), /expects input \[B,4,4,1\], got \[1,4,4,3\]/);
  bad.dispose();
  const vec = buildModel(config({ levels: 5 }), [3], { seed: 0 });
  assert.deepEqual(vec.latentShapes(), [[3]], 'levels are ignored for vectors');
  m.dispose();
  vec.dispose();
});

test('no tensor is created at import or build time besides variables; dispose frees them all', () => {
  const before = tf.memory().numTensors;
  const m = buildModel(config({ family: 'realnvp', conditional: 'classes' }), [4, 4, 2], { seed: 0, numClasses: 2 });
  assert.equal(tf.memory().numTensors - before, m.variables().length);
  m.dispose();
  assert.equal(tf.memory().numTensors, before);
  assert.throws(() => m.sample(1, 1, new Rng(0), undefined), /disposed/);
});

test("model.learn_top: 'channel' learns one mean/log-sd per channel (bias * exp(3 logscale)), 'position' one per position, true = 'position'", () => {
  const shape = [8, 8, 1]; // top latent of 2 levels: 2x2x8
  const topVars = (m: FlowModel) => m.variables().filter(([n]) => n.startsWith('top.')).map(([n, v]) => [n, v.shape] as const);
  const channel = buildModel(config({ family: 'glow', learn_top: 'channel' }), shape, { seed: 0 });
  const position = buildModel(config({ family: 'glow', learn_top: 'position' }), shape, { seed: 0 });
  const none = buildModel(config({ family: 'glow', learn_top: false }), shape, { seed: 0 });
  assert.deepEqual(topVars(channel), [['top.bias', [16]], ['top.logscale', [16]]]);
  assert.deepEqual(topVars(position), [['top.mean', [2, 2, 8]], ['top.logsd', [2, 2, 8]]]);
  assert.deepEqual(topVars(none), []);
  assert.equal(countParameters(position) - countParameters(none), 2 * 2 * 2 * 8);
  assert.equal(countParameters(channel) - countParameters(none), 2 * 2 * 8);
  // The old boolean spelling parses to the old meaning, so old configs and checkpoints build the same model.
  assert.equal(config({ learn_top: true as unknown as ModelConfig['learn_top'] }).learn_top, 'position');
  // A channel prior's values are the same at every position: the density of a latent depends on the channel only.
  const x = tf.tidy(() => tf.randomNormal([2, ...shape], 0, 0.3, 'float32', 5));
  channel.initialize(x);
  const rng = new Rng(9);
  tf.tidy(() => {
    const bias = channel.variables().find(([n]) => n === 'top.bias')![1];
    // Means ~ N(0, 1), log-sds 0.
    bias.assign(tf.concat([tf.tensor(rng.normalArray(8, 1), [8]), tf.zeros([8])]));
  });
  checkModel('glow learn_top channel', config({ family: 'glow', learn_top: 'channel' }), [4, 4, 2]);
  const s = channel.sample(64, 1, new Rng(3));
  const enc = channel.encode(s);
  const z = enc.zs.at(-1)!;
  // Per-channel mean of the top latent over samples and positions recovers bias[0:C] (exp(3 * 0) = 1).
  const meanPerChannel = values(tf.mean(z, [0, 1, 2]));
  const bias = Array.from(channel.variables().find(([n]) => n === 'top.bias')![1].dataSync()).slice(0, 8);
  // 256 draws of N(bias_c, 1) each: standard error 1/16.
  for (let c = 0; c < 8; c++) assert.ok(Math.abs(meanPerChannel[c]! - bias[c]!) < 0.3, `channel ${c}: ${meanPerChannel[c]} vs ${bias[c]}`);
  tf.dispose([x, s, ...enc.zs, enc.logdet, enc.logpz]);
  for (const m of [channel, position, none]) m.dispose();
});

test('the per-layer walk is the model: every layer once, in order, on its declared shape; the same latents as encode; the inverse walk rebuilds x', () => {
  for (const [label, cfg, shape] of [
    ['glow', config({ family: 'glow' }), [8, 8, 1]],
    ['realnvp 3 levels', config({ family: 'realnvp', levels: 3, depth: 1 }), [8, 8, 2]],
    ['nice vector', config({ family: 'nice' }), [4]],
  ] as Array<[string, ModelConfig, number[]]>) {
    const { model, x } = readyModel(cfg, shape);
    const layers = model.namedLayers();
    const forward: string[] = [];
    const inverse: string[] = [];
    let zDiffs: number[] = [];
    let reconstruction = Infinity;
    let logdets: number[] = [];
    tf.tidy(() => {
      const walk = model.walkForward(x, (layer, input, y) => {
        forward.push(layer.name);
        assert.equal(layers[layer.index]!.name, layer.name);
        assert.deepEqual(input.shape.slice(1), layer.inputShape, `${label} ${layer.name}: input shape`);
        assert.deepEqual(y.shape.slice(1), layer.bijector.outputShape(layer.inputShape), `${label} ${layer.name}: output shape`);
        return tf.scalar(layer.index);
      });
      const back = model.walkInverse(walk.zs, (layer, xr) => {
        inverse.push(layer.name);
        assert.deepEqual(xr.shape.slice(1), layer.inputShape);
        return undefined;
      });
      assert.deepEqual(Array.from(tf.stack(walk.visited).dataSync()), layers.map((l) => l.index), 'visit keeps what it returns, in order');
      const enc = model.encode(x);
      assert.equal(walk.zs.length, enc.zs.length);
      zDiffs = walk.zs.map((z, i) => maxAbsDiff(z, enc.zs[i]!));
      reconstruction = maxAbsDiff(back.x, x);
      logdets = [maxAbsDiff(walk.logdet, enc.logdet), maxAbsDiff(walk.logdet, tf.neg(back.logdet))];
    });
    assert.deepEqual(forward, layers.map((l) => l.name), `${label}: forward visits`);
    assert.deepEqual(inverse, [...forward].reverse(), `${label}: inverse visits`);
    // The same ops on the way down, so the very same latents (only the logdet sums may associate differently).
    assert.ok(zDiffs.every((d) => d === 0), `${label}: walk latents differ from encode by ${zDiffs}`);
    assert.ok(reconstruction <= 1e-5, `${label}: inverse walk error ${reconstruction}`);
    assert.ok(logdets.length === 2 && logdets.every((d) => d <= 1e-4), `${label}: logdets ${logdets}`);
    x.dispose();
    model.dispose();
  }
});

test('the multi-scale builder checks shapes as scales are added and names the layer that does not fit', () => {
  const actnorm = new ActNorm(2);
  assert.throws(
    () => new MultiScaleBuilder([4, 4, 2]).scale('levels.0', [new Squeeze(), actnorm]),
    (e: unknown) => e instanceof ShapeError && /layer levels\.0\.actnorm: expects 2 channels, got \[2,2,8\]/.test(e.message),
  );
  const ok = new ActNorm(4);
  const b = new MultiScaleBuilder([2, 2, 1]).scale('levels.0', [new Squeeze(), ok]).split(false);
  assert.deepEqual(b.shape, [1, 1, 2]);
  assert.throws(() => b.split(false), /at most one per scale/);
  const odd = new MultiScaleBuilder([3]).scale('flow', []);
  assert.throws(() => odd.split(false), /flow has 3 channels: cannot split them in half/);
  const flow = b.build(false);
  assert.deepEqual(flow.latentShapes(), [[1, 1, 2], [1, 1, 2]]);
  assert.deepEqual(flow.layers().map((l) => [l.name, l.inputShape]), [['levels.0.squeeze', [2, 2, 1]], ['levels.0.actnorm', [1, 1, 4]]]);
  for (const [, v] of [...actnorm.variables(), ...flow.variables()]) v.dispose();
});
