// Integer discrete flows (model.family idf): grid values map to grid values exactly both ways, the
// discretised logistic mixtures are normalised over the integers, the coding view (latents + mixtures in
// decoding order) gives the same log P as training's logProb, the straight-through rounding passes
// gradients, sampling decodes, and the config refuses what would break exactness.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import '@tensorflow/tfjs-backend-cpu';
import { tf, type Tensor } from '../src/tf.js';
import { Rng } from '../src/rng.js';
import { ConfigSchema, ModelSchema } from '../src/config/schema.js';
import { buildModel, type FlowModel } from '../src/flows/model.js';
import { mixtureLogp, roundToGrid, type Mixture } from '../src/flows/discrete.js';
import { toModelInput } from '../src/data/preprocess.js';
import { checkConsistency } from '../src/config/validate.js';

before(async () => {
  await tf.setBackend('cpu');
});

const SHAPE = [8, 8, 1];
const BINS = 256;

function idf(seed = 1): FlowModel {
  return buildModel(ModelSchema.parse({ family: 'idf', levels: 2, depth: 2, width: 8, mixture: 3 }), SHAPE, { seed });
}

/** N(0, std) on every trainable variable, so couplings translate and priors are not flat. */
function perturb(model: FlowModel, seed: number, std: number): void {
  const rng = new Rng(seed);
  tf.tidy(() => {
    for (const v of model.trainableVariables()) v.assign(tf.add(v, tf.tensor(rng.normalArray(v.size, std), v.shape)));
  });
}

function images(n: number, seed: number): Tensor {
  const rng = new Rng(seed);
  const px = new Uint8Array(n * 64);
  for (let i = 0; i < px.length; i++) px[i] = rng.next() < 0.5 ? 0 : rng.int(256);
  return tf.tensor(toModelInput(px, 8, null), [n, ...SHAPE]);
}

function maxAbs(t: Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(t)).dataSync()[0]!);
}

test('idf: decode(encode(x)) is x exactly and every latent is an integer / bins', () => {
  const model = idf();
  perturb(model, 2, 0.3);
  const x = images(5, 3);
  const { zs } = model.encode(x);
  const back = model.decode(zs);
  assert.equal(maxAbs(tf.sub(back, x)), 0, 'reconstruction is exact');
  for (const z of zs) {
    assert.equal(maxAbs(tf.sub(tf.mul(z, BINS), tf.round(tf.mul(z, BINS)))), 0, 'latent on the grid');
  }
  // The couplings really translate (else exactness would be trivial).
  assert.ok(maxAbs(tf.sub(zs[zs.length - 1]!, tf.zeros(zs[zs.length - 1]!.shape))) > 1, 'latents moved off the input values');
  model.dispose();
});

test('idf: walkForward / walkInverse reproduce the latents and the input exactly', () => {
  const model = idf(4);
  perturb(model, 5, 0.3);
  const x = images(3, 6);
  tf.tidy(() => {
    const fwd = model.walkForward(x);
    const { zs } = model.encode(x);
    fwd.zs.forEach((z, i) => assert.equal(maxAbs(tf.sub(z, zs[i]!)), 0));
    assert.equal(maxAbs(tf.sub(model.walkInverse(fwd.zs).x, x)), 0);
  });
  model.dispose();
});

test('discretised logistic mixture: masses over the integers sum to 1, also for tiny and huge scales', () => {
  const grid = tf.div(tf.range(-40000, 40000), BINS);
  const n = grid.shape[0]!;
  const cases: Array<[number[], number[], number[]]> = [
    [[0.3, -1, 2], [0.01, -0.2, 0.3], [-4, -2, -6]],
    [[0], [0.1], [-12]], // all mass on one integer
    [[1, 1], [0, 0.05], [1, -3]], // one component wider than the window... mass outside shows up below
  ];
  for (const [logits, means, logScales] of cases) {
    const k = logits.length;
    const m: Mixture = {
      logits: tf.tile(tf.tensor(logits, [1, 1, k]), [n, 1, 1]),
      means: tf.tile(tf.tensor(means, [1, 1, k]), [n, 1, 1]),
      logScales: tf.tile(tf.tensor(logScales, [1, 1, k]), [n, 1, 1]),
    };
    const p = tf.exp(mixtureLogp(tf.reshape(grid, [n, 1]), m, BINS));
    const total = tf.sum(p).dataSync()[0]!;
    // s = e^1 ≈ 2.7 data units: the window ±156 units holds all but ~2e-25 of the mass.
    assert.ok(Math.abs(total - 1) < 1e-4, `sum ${total} for logits ${logits} means ${means} logScales ${logScales}`);
  }
});

test('idf: the coding view (latents and mixtures in decoding order) gives logProb exactly', () => {
  const model = idf(7);
  perturb(model, 8, 0.2);
  const x = images(4, 9);
  const segments = model.integer!.latentsForCoding(x);
  // Decoding order: the top latent first, then the splits from the last level down.
  const shapes = model.latentShapes();
  assert.deepEqual(segments[0]!.latent.shape.slice(1), shapes[shapes.length - 1]);
  const fromCoding = tf.tidy(() => segments.reduce((acc: Tensor, s) => tf.add(acc, mixtureLogp(s.latent, s.mixture, BINS)), tf.zeros([4])));
  const logp = model.logProb(x);
  const expected = tf.sub(logp, 64 * Math.log(BINS));
  assert.ok(maxAbs(tf.sub(fromCoding, expected)) < 1e-2, 'sum of latent log-masses = logProb - D ln bins');
  assert.ok(Array.from(logp.dataSync()).every(Number.isFinite));
  for (const s of segments) tf.dispose([s.latent, s.mixture.logits, s.mixture.means, s.mixture.logScales]);
  model.dispose();
});

test('idf: decodeFromCoding with the encoder latents reproduces x exactly', async () => {
  const model = idf(10);
  perturb(model, 11, 0.3);
  const x = images(3, 12);
  const segments = model.integer!.latentsForCoding(x);
  let next = 0;
  const back = await model.integer!.decodeFromCoding(3, async (mixture, shape) => {
    const s = segments[next++]!;
    assert.deepEqual(s.latent.shape.slice(1), shape);
    // The decoder's mixture (from decoded latents) equals the encoder's.
    assert.equal(maxAbs(tf.sub(mixture.means, s.mixture.means)), 0);
    assert.equal(maxAbs(tf.sub(mixture.logScales, s.mixture.logScales)), 0);
    return tf.clone(s.latent);
  });
  assert.equal(next, segments.length);
  assert.equal(maxAbs(tf.sub(back, x)), 0);
  for (const s of segments) tf.dispose([s.latent, s.mixture.logits, s.mixture.means, s.mixture.logScales]);
  model.dispose();
});

test('roundToGrid: rounds forward, passes the gradient straight through', () => {
  const t = tf.tensor([0.001, -0.0031, 0.5]);
  assert.deepEqual(Array.from(roundToGrid(t, BINS).dataSync()), Array.from(tf.div(tf.round(tf.mul(t, BINS)), BINS).dataSync()));
  const g = tf.grad((v: Tensor) => tf.sum(tf.mul(roundToGrid(v, BINS), tf.tensor([1, 2, 3]))))(t);
  assert.deepEqual(Array.from(g.dataSync()), [1, 2, 3]);
});

test('idf: every trainable variable gets a gradient (through the rounded couplings too)', () => {
  const model = idf(13);
  perturb(model, 14, 0.05);
  const x = images(4, 15);
  const { grads } = tf.variableGrads(() => tf.neg(tf.mean(model.logProb(x))) as tf.Scalar, model.trainableVariables());
  const zero = Object.entries(grads).filter(([, g]) => maxAbs(g) === 0);
  assert.equal(zero.length, 0, `variables without gradient: ${zero.map(([n]) => n).join(', ')}`);
  tf.dispose(Object.values(grads));
  model.dispose();
});

test('idf: samples decode to finite model inputs on the grid of bin centres', () => {
  const model = idf(16);
  const s = model.sample(4, 0.7, new Rng(17));
  assert.deepEqual(s.shape, [4, ...SHAPE]);
  const v = s.dataSync();
  assert.ok(v.every((a) => Number.isFinite(a) && Number.isInteger((a + 0.5) * BINS - 0.5)), 'bin centres');
  model.dispose();
});

test('config: idf refuses options that break exactness, each with one line naming the option', () => {
  const base = { data: { source: 'embedded', dequantize: 'none' }, model: { family: 'idf', levels: 2 } };
  const ok = ConfigSchema.parse(base);
  checkConsistency(ok, [28, 28, 1]);
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{ data: { source: 'embedded' } }, /data\.dequantize: .*expected data\.dequantize: none/],
    [{ model: { family: 'idf', coupling: 'affine' } }, /model\.coupling/],
    [{ model: { family: 'idf', actnorm: 'on' } }, /model\.actnorm/],
    [{ model: { family: 'idf', permutation: 'conv1x1' } }, /model\.permutation/],
    [{ model: { family: 'idf', learn_top: false } }, /model\.learn_top/],
  ];
  for (const [patch, pattern] of bad) {
    const cfg = ConfigSchema.parse({ ...base, ...patch, data: { ...base.data, ...(patch.data as object) }, model: { ...base.model, ...(patch.model as object) } });
    if (patch.data) cfg.data.dequantize = 'uniform';
    assert.throws(() => checkConsistency(cfg, [28, 28, 1]), (e: Error) => pattern.test(e.message) && !e.message.includes('\n'), JSON.stringify(patch));
  }
  assert.throws(() => checkConsistency(ok, [2]), /idf models images/);
});

test('idf: initialize fits the priors to one batch (no ActNorm to standardise the latents), once', () => {
  const model = idf(18);
  const x = images(32, 19);
  const bpd = () => tf.tidy(() => -tf.mean(model.logProb(x)).dataSync()[0]! / (64 * Math.LN2) + 8);
  const before = bpd();
  model.initialize(x);
  const after = bpd();
  assert.ok(after < before - 0.3, `bits/dim ${before.toFixed(3)} -> ${after.toFixed(3)} after the data-dependent start`);
  // A second call (or one on other data) is a no-op: the flags are checkpointed state.
  model.initialize(images(32, 20));
  assert.equal(bpd(), after);
  model.dispose();
});
