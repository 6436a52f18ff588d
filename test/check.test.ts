// The invertibility audit (src/audit/) and `flow check`: a healthy model passes, a layer with a slightly
// wrong inverse or logdet is caught and named, exploding out-of-distribution inverses are warnings unless
// --strict-ood, and the CLI prints the table, exits 0 on a trained model and 1 when a tolerance is exceeded.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import '@tensorflow/tfjs-backend-cpu';
import { tf, type Tensor } from '../src/tf.js';
import { Rng } from '../src/rng.js';
import { ModelSchema, type ModelConfig } from '../src/config/schema.js';
import { buildModel, type FlowModel } from '../src/flows/model.js';
import type { Bijector } from '../src/flows/bijector.js';
import { auditModel } from '../src/audit/invertibility.js';
import { oodInputs, type AuditInput } from '../src/audit/inputs.js';
import { chunkedJacobian } from '../src/audit/jacobian.js';
import { formatAudit } from '../src/audit/format.js';
import { flow, tempDir, writeYaml, TINY_CONFIG } from './helpers.js';

before(async () => {
  await tf.setBackend('cpu');
});

function smallModel(overrides: Partial<ModelConfig> = {}, shape = [8, 8, 1]): { model: FlowModel; data: AuditInput } {
  const cfg = ModelSchema.parse({ family: 'glow', levels: 2, depth: 2, width: 8, ...overrides });
  const model = buildModel(cfg, shape, { seed: 3 });
  const rng = new Rng(5);
  const dims = shape.reduce((a, b) => a * b, 1);
  const n = 24;
  const x = shape.length === 3 ? rng.uniformArray(n * dims, -0.5, 0.5) : rng.normalArray(n * dims);
  const xt = tf.tensor(x, [n, ...shape]);
  model.initialize(xt);
  xt.dispose();
  // Noise on every weight: zero-initialised coupling outputs stop being the identity.
  tf.tidy(() => {
    for (const v of model.trainableVariables()) v.assign(tf.add(v, tf.tensor(rng.normalArray(v.size, 0.1), v.shape)));
  });
  return { model, data: { kind: 'data', description: 'random inputs', x, n, ood: false } };
}

function layerNamed(model: FlowModel, name: string): Bijector {
  const l = model.namedLayers().find((x) => x.name === name);
  assert.ok(l, `model has a layer ${name}`);
  return l.bijector;
}

test('a healthy Glow passes every check, the Jacobian included', async () => {
  const { model, data } = smallModel();
  const before = tf.memory().numTensors;
  const audit = await auditModel(model, [data, ...oodInputs('image', 64, 8, 1, data.x)], { jacobianExamples: 2, batchSize: 10 });
  assert.equal(tf.memory().numTensors, before, 'no leaked tensors');
  assert.equal(audit.ok, true, JSON.stringify(audit.failures));
  assert.equal(audit.layers.length, model.namedLayers().length);
  assert.equal(audit.jacobian.checks.length, 2);
  for (const j of audit.jacobian.checks) {
    assert.ok(Number.isFinite(j.logdet) && Math.abs(j.logdet) > 0.1, `a non-trivial logdet (${j.logdet})`);
    assert.ok(j.relError < 1e-4, `summed logdet ${j.logdet} vs brute force ${j.bruteForce}`);
  }
  const d = audit.model.data!;
  assert.ok(d.reconMax < 1e-4 && d.reconMean <= d.reconMax && d.nonFinite === 0, JSON.stringify(d));
  for (const l of audit.layers) {
    assert.ok(l.byInput.data!.reconMax < 1e-4, `${l.name}: ${l.byInput.data!.reconMax}`);
    assert.ok(l.byInput.uniform && l.byInput.gaussian && l.byInput.constant, 'every input kind per layer');
  }
  const text = formatAudit(audit, 'header').join('\n');
  assert.match(text, /levels\.1\.steps\.1\.coupling/);
  assert.match(text, /^OK: /m);
  model.dispose();
});

test('a layer whose inverse is slightly wrong is caught and named', async () => {
  const { model, data } = smallModel();
  const name = 'levels.0.steps.1.coupling';
  const broken = layerNamed(model, name);
  const inverse = broken.inverse.bind(broken);
  // Off by 1e-2 on every value: invisible in a sample grid, far over the 1e-3 tolerance.
  broken.inverse = (y: Tensor) => {
    const r = inverse(y);
    return { x: tf.add(r.x, 1e-2), logdet: r.logdet };
  };
  const audit = await auditModel(model, [data], { jacobianExamples: 1 });
  assert.equal(audit.ok, false);
  const alone = audit.failures.filter((f) => f.layer !== null);
  assert.deepEqual([...new Set(alone.map((f) => f.layer))], [name], 'only the broken layer fails alone');
  assert.ok(alone.some((f) => f.check === 'reconstruction' && Math.abs(f.value - 1e-2) < 1e-3));
  const whole = audit.failures.find((f) => f.layer === null && f.check === 'reconstruction');
  assert.ok(whole, 'the whole model fails too');
  assert.equal(whole.blame, name, 'the chained inverse breaks down at the broken layer');
  assert.equal(audit.worstLayer?.layer, name);
  assert.equal(audit.jacobian.checks[0]!.relError < 1e-3, true, 'the forward pass (and its logdet) is still right');
  const text = formatAudit(audit, 'header').join('\n');
  assert.match(text, new RegExp(`^FAIL: .*\\n(.*\\n)*worst layer: ${name.replace(/\./g, '\\.')}`, 'm'));
  model.dispose();
});

test('a wrong forward logdet fails the inverse-logdet and Jacobian checks', async () => {
  const { model, data } = smallModel();
  const name = 'levels.1.steps.0.invconv';
  const broken = layerNamed(model, name);
  const forward = broken.forward.bind(broken);
  broken.forward = (x: Tensor) => {
    const r = forward(x);
    return { y: r.y, logdet: tf.add(r.logdet, 1) };
  };
  const audit = await auditModel(model, [data], { jacobianExamples: 1 });
  assert.equal(audit.ok, false);
  assert.ok(audit.failures.some((f) => f.check === 'logdet' && f.layer === name));
  assert.ok(audit.failures.some((f) => f.check === 'jacobian'), 'summed logdet no longer matches log|det J|');
  assert.ok(!audit.failures.some((f) => f.check === 'reconstruction'), 'the values still round-trip');
  assert.equal(audit.worstLayer?.layer, name);
  model.dispose();
});

test('non-finite values are counted and blamed on the first layer that makes them', async () => {
  const { model, data } = smallModel();
  const name = 'levels.0.steps.1.actnorm';
  const broken = layerNamed(model, name);
  const forward = broken.forward.bind(broken);
  broken.forward = (x: Tensor) => {
    const r = forward(x);
    return { y: tf.div(r.y, tf.sub(tf.abs(r.y), tf.abs(r.y))), logdet: r.logdet }; // 0/0 and y/0
  };
  const audit = await auditModel(model, [data], { jacobianExamples: 0 });
  assert.equal(audit.ok, false);
  assert.ok(audit.layers.find((l) => l.name === name)!.byInput.data!.nonFinite > 0);
  assert.equal(audit.worstLayer?.layer, name);
  model.dispose();
});

test('out-of-distribution findings warn by default and fail with strictOod', async () => {
  const { model, data } = smallModel();
  const noise = oodInputs('image', 64, 8, 2, data.x);
  // Tolerances no float32 inverse can meet, applied to OOD inputs only.
  const opts = { jacobianExamples: 0, tolerances: { reconOod: 1e-30 } };
  const lenient = await auditModel(model, [data, ...noise], opts);
  assert.equal(lenient.ok, true);
  assert.ok(lenient.warnings.length > 0 && lenient.warnings.every((w) => w.input !== 'data'));
  assert.match(formatAudit(lenient, 'h').join('\n'), /^WARNING: the inverse is unreliable on out-of-distribution inputs/m);
  const strict = await auditModel(model, [data, ...noise], { ...opts, strictOod: true });
  assert.equal(strict.ok, false);
  assert.deepEqual(strict.warnings, []);
  model.dispose();
});

test('every family walks like its encode (RealNVP masks, NICE scaling, class-conditional priors)', async () => {
  for (const overrides of [{ family: 'realnvp' }, { family: 'nice' }, { family: 'glow', levels: 3, depth: 1 }] as Partial<ModelConfig>[]) {
    const { model, data } = smallModel(overrides);
    const audit = await auditModel(model, [data], { jacobianExamples: 1 });
    assert.equal(audit.ok, true, `${overrides.family}: ${JSON.stringify(audit.failures)}`);
    model.dispose();
  }
  const cond = buildModel(ModelSchema.parse({ family: 'glow', levels: 2, depth: 1, width: 8, conditional: 'classes' }), [8, 8, 1], { seed: 1, numClasses: 3 });
  const x = new Rng(0).uniformArray(4 * 64, -0.5, 0.5);
  const audit = await auditModel(cond, [{ kind: 'data', description: 'random', x, n: 4, ood: false }], { jacobianExamples: 0 });
  assert.equal(audit.ok, true);
  cond.dispose();
});

test('vector flows (RealNVP on 2-D points) are audited too', async () => {
  const { model, data } = smallModel({ family: 'realnvp', depth: 4, width: 16 }, [2]);
  const audit = await auditModel(model, [data, ...oodInputs('vector', 2, 16, 0, data.x)], { jacobianExamples: 3 });
  assert.equal(audit.ok, true, JSON.stringify(audit.failures));
  assert.equal(audit.jacobian.checks.length, 3);
  model.dispose();
});

test('chunked Jacobian equals the analytic one of a linear map, whatever the chunk size', async () => {
  const a = [2, -1, 0.5, 0, 3, 1, 1, 0, -2];
  const m = tf.tensor2d(a, [3, 3]);
  const f = (x: Tensor) => tf.matMul(tf.reshape(x, [x.shape[0]!, 3]), m, false, true); // rows of x times A^T
  const x = tf.tensor2d([[0.3, -0.2, 1]]);
  for (const chunk of [1, 2, 3, 8]) {
    const j = await chunkedJacobian(f, x, chunk);
    assert.deepEqual(Array.from(j.values), a, `chunk ${chunk}`);
  }
  tf.dispose([m, x]);
});

test('flow check on a trained tiny Glow: table, exit 0; impossible tolerance: exit 1 naming the worst layer', async () => {
  const dir = tempDir();
  const cfg = writeYaml(dir, 'tiny.yaml', TINY_CONFIG);
  const tr = flow(['train', cfg, '--max-steps', '20', '--quiet'], dir);
  assert.equal(tr.code, 0, tr.stderr);

  const r = flow(['check', '--n', '32', '--jacobian', '1', '--backend', 'wasm'], dir);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^levels\.0\.steps\.0\.coupling\s+\[14,14,4\]/m);
  assert.match(r.stdout, /^data\s+\S+\s+\S+.*\s(ok)$/m);
  assert.match(r.stdout, /brute-force Jacobian, data example 0: .* ok$/m);
  assert.match(r.stdout, /^OK: /m);

  const j = flow(['check', '--n', '16', '--jacobian', '0', '--no-ood', '--json', '--backend', 'wasm'], dir);
  assert.equal(j.code, 0, j.stderr);
  const audit = JSON.parse(j.stdout);
  assert.equal(audit.ok, true);
  assert.deepEqual(audit.inputs.map((i: { kind: string }) => i.kind), ['data']);
  assert.ok(audit.model.data.reconMax < 1e-3);

  const bad = flow(['check', '--n', '16', '--jacobian', '0', '--no-ood', '--tol-recon', '1e-12', '--backend', 'wasm'], dir);
  assert.equal(bad.code, 1, bad.stdout + bad.stderr);
  assert.match(bad.stdout, /^FAIL: /m);
  assert.match(bad.stdout, /^worst layer: levels\.\d\.\S+ /m);

  const badSplit = flow(['check', '--split', 'validation'], dir);
  assert.equal(badSplit.code, 2);
  assert.match(badSplit.stderr, /--split validation: expected test or train/);
});
