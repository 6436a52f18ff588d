// Every invertible layer: exact inverse, inverse logdet = -forward logdet, and logdet equal to the
// brute-force Jacobian's log|det| (built with tf.grad on the cpu backend, determinant in float64).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import '@tensorflow/tfjs-backend-cpu';
import { tf, type Tensor } from '../src/tf.js';
import { Rng } from '../src/rng.js';
import { type Bijector, type ForwardResult, type InverseResult, type NamedVariable, ShapeError } from '../src/flows/bijector.js';
import { ActNorm, DiagonalScale, ReversePermutation, ShufflePermutation, Squeeze } from '../src/flows/layers.js';
import { InvConv1x1 } from '../src/flows/invconv.js';
import { matrixLogAbsDetOnHost as logAbsDetWithGrad } from '../src/kernels/lu.js';
import { HalfCoupling, MaskedCoupling, couplingMask, halfCouplingTransformer, maskedCouplingTransformer, type CouplingKind, type MaskType } from '../src/flows/coupling.js';
import { ConvNet, MLP, ZeroConv } from '../src/flows/nets.js';
import { AdditiveTransformer, SigmoidAffineTransformer, TanhAffineTransformer, type Transformer } from '../src/flows/transformers.js';
import { Chain, Inverse } from '../src/flows/chain.js';
import { auditBijector, bruteForceLogAbsDet } from './bijector-checks.js';
import * as la from '../src/linalg.js';

before(async () => {
  await tf.setBackend('cpu');
});

function randomTensor(shape: number[], rng: Rng, scale = 1): Tensor {
  return tf.tensor(rng.normalArray(shape.reduce((a, b) => a * b, 1), scale), shape);
}

/** Adds N(0, std) noise to every trainable variable, so zero-initialised layers are not the identity. */
function perturb(vars: NamedVariable[], rng: Rng, std = 0.1): void {
  tf.tidy(() => {
    for (const [, v] of vars) {
      if (v.trainable) v.assign(tf.add(v, tf.tensor(rng.normalArray(v.size, std), v.shape)));
    }
  });
}

function dispose(b: Bijector): void {
  for (const [, v] of b.variables()) v.dispose();
}

/** The three invertibility checks on a batch x of shape [B, ...]. */
function checkBijector(label: string, b: Bijector, x: Tensor): void {
  const audit = auditBijector(b, x);
  assert.ok(audit.reconstructionError <= 1e-5, `${label}: max |x - f^-1(f(x))| = ${audit.reconstructionError}`);
  assert.ok(audit.inverseLogdetError <= 1e-4, `${label}: inverse logdet + forward logdet = ${audit.inverseLogdetError}`);
  const logdet = tf.tidy(() => b.forward(x).logdet);
  const analytic = logdet.dataSync();
  logdet.dispose();
  for (let i = 0; i < x.shape[0]!; i++) {
    const xi = tf.slice(x, i, 1);
    const brute = bruteForceLogAbsDet((t) => b.forward(t).y, xi);
    xi.dispose();
    assert.ok(Number.isFinite(brute), `${label}: brute-force log|det| is ${brute}`);
    assert.ok(Math.abs(brute - analytic[i]!) <= 1e-3, `${label}[${i}]: analytic logdet ${analytic[i]} vs brute force ${brute}`);
  }
}

/** Builds, optionally initialises, perturbs and checks one layer on a fresh random batch; disposes it after. */
function layerCase(label: string, shape: number[], make: (rng: Rng) => Bijector, opts: { init?: boolean; scale?: number } = {}): void {
  const rng = new Rng(label.length * 7919 + 13);
  const x = randomTensor(shape, rng, opts.scale ?? 1);
  const b = make(rng);
  if (opts.init) b.initialize!(x);
  perturb(b.variables(), rng);
  const before = tf.memory().numTensors;
  checkBijector(label, b, x);
  assert.equal(tf.memory().numTensors, before, `${label}: the checks leaked tensors`);
  x.dispose();
  dispose(b);
}

const IMG = [2, 4, 4, 2];
const IMG4 = [2, 2, 2, 4];
const VEC = [3, 4];
const convNet = (rng: Rng) => (cin: number, cout: number) => new ConvNet(cin, 8, cout, rng);
const mlp = (rng: Rng) => (cin: number, cout: number) => new MLP(cin, 8, 2, cout, rng);

test('squeeze: invertible, logdet 0, and channel order (c, dy, dx)', () => {
  layerCase('squeeze', IMG, () => new Squeeze());
  const x = tf.tensor(Float32Array.from({ length: 2 * 4 * 4 * 2 }, (_, i) => i), IMG);
  const y = new Squeeze().forward(x).y;
  assert.deepEqual(y.shape, [2, 2, 2, 8]);
  const v = y.dataSync();
  // x[0, dy, dx, c] = (dy*4 + dx)*2 + c; output channel c*4 + dy*2 + dx at position (0, 0).
  for (let c = 0; c < 2; c++) for (let dy = 0; dy < 2; dy++) for (let dx = 0; dx < 2; dx++) {
    assert.equal(v[c * 4 + dy * 2 + dx], (dy * 4 + dx) * 2 + c);
  }
  tf.dispose([x, y]);
});

test('actnorm (after init): images and vectors', () => {
  layerCase('actnorm image', IMG, () => new ActNorm(2), { init: true, scale: 3 });
  layerCase('actnorm vector', VEC, () => new ActNorm(4), { init: true, scale: 3 });
});

test('actnorm init: per-channel mean 0 and std 1, flag set, second init changes nothing', () => {
  const rng = new Rng(5);
  for (const shape of [[16, 3, 3, 3], [64, 5]]) {
    const c = shape[shape.length - 1]!;
    // Channels with very different means and scales.
    const raw = rng.normalArray(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < raw.length; i++) raw[i] = raw[i]! * (1 + (i % c) * 2) + (i % c) * 5;
    const x = tf.tensor(raw, shape);
    const an = new ActNorm(c);
    assert.equal(an.isInitialized, false);
    an.initialize(x);
    assert.equal(an.isInitialized, true);
    const { mean, variance } = tf.tidy(() => tf.moments(an.forward(x).y, Array.from({ length: shape.length - 1 }, (_, i) => i)));
    for (const m of mean.dataSync()) assert.ok(Math.abs(m) < 1e-4, `mean ${m}`);
    for (const v of variance.dataSync()) assert.ok(Math.abs(Math.sqrt(v) - 1) < 1e-3, `std ${Math.sqrt(v)}`);
    const loc = Array.from(an.loc.dataSync());
    const logs = Array.from(an.logs.dataSync());
    const other = tf.mul(x, 10);
    an.initialize(other);
    assert.deepEqual(Array.from(an.loc.dataSync()), loc);
    assert.deepEqual(Array.from(an.logs.dataSync()), logs);
    assert.deepEqual(an.variables().map(([n, v]) => [n, v.trainable]), [['loc', true], ['logs', true], ['initialized', false]]);
    tf.dispose([x, other, mean, variance]);
    dispose(an);
  }
});

test('invertible 1x1 conv: LU and free matrix, images and vectors', () => {
  layerCase('invconv lu image', IMG4, (rng) => new InvConv1x1(4, rng, { lu: true }));
  layerCase('invconv free image', IMG4, (rng) => new InvConv1x1(4, rng, { lu: false }));
  layerCase('invconv lu vector', VEC, (rng) => new InvConv1x1(4, rng, { lu: true }));
  layerCase('invconv free vector', VEC, (rng) => new InvConv1x1(4, rng, { lu: false }));
});

test('invertible 1x1 conv starts orthogonal (log|det| 0) and LU rebuilds the same matrix as the free version', () => {
  const c = 6;
  const lu = new InvConv1x1(c, new Rng(3), { lu: true });
  const free = new InvConv1x1(c, new Rng(3), { lu: false });
  const [wl, wf, wwt, ldl, ldf] = tf.tidy(() => {
    const w = lu.weight();
    return [w, free.weight(), tf.matMul(w, w, false, true), lu.logAbsDet(), free.logAbsDet()];
  });
  const eye = la.identity(c);
  (wwt!.dataSync() as Float32Array).forEach((v, i) => assert.ok(Math.abs(v - eye[i]!) < 1e-5, `W W^T[${i}] = ${v}`));
  (wl!.dataSync() as Float32Array).forEach((v, i) => assert.ok(Math.abs(v - wf!.dataSync()[i]!) < 1e-5));
  assert.ok(Math.abs(ldl!.dataSync()[0]!) < 1e-5);
  assert.ok(Math.abs(ldf!.dataSync()[0]!) < 1e-5);
  tf.dispose([wl!, wf!, wwt!, ldl!, ldf!]);
  dispose(lu);
  dispose(free);
});

test('log|det W| custom gradient is W^{-T} (checked against finite differences)', () => {
  const n = 4;
  const rng = new Rng(11);
  const a = Float32Array.from(rng.normalArray(n * n), (v, i) => v + (i % (n + 1) === 0 ? 2 : 0));
  const w = tf.tensor2d(a, [n, n]);
  const g = tf.grad((m: Tensor) => logAbsDetWithGrad(m))(w);
  const grad = g.dataSync();
  const f = (m: Float32Array) => la.logAbsDet(Float64Array.from(m), n);
  const eps = 1e-3;
  for (let k = 0; k < n * n; k++) {
    const p = Float32Array.from(a);
    const q = Float32Array.from(a);
    p[k] += eps;
    q[k] -= eps;
    const fd = (f(p) - f(q)) / (2 * eps);
    assert.ok(Math.abs(fd - grad[k]!) < 1e-3 * (1 + Math.abs(fd)), `d log|det| / dW[${k}]: ${grad[k]} vs ${fd}`);
  }
  tf.dispose([w, g]);
});

test('fixed permutations: reverse and seeded shuffle', () => {
  layerCase('reverse image', IMG4, () => new ReversePermutation());
  layerCase('reverse vector', VEC, () => new ReversePermutation());
  layerCase('shuffle image', IMG4, (rng) => new ShufflePermutation(4, rng));
  layerCase('shuffle vector', VEC, (rng) => new ShufflePermutation(4, rng));
  // y[..., j] = x[..., perm[j]]; the same seed gives the same permutation.
  const s1 = new ShufflePermutation(5, new Rng(9));
  const s2 = new ShufflePermutation(5, new Rng(9));
  const perm = Array.from(new Rng(9).permutation(5));
  const x = tf.tensor2d([[10, 11, 12, 13, 14]]);
  const [y1, y2] = [s1.forward(x).y, s2.forward(x).y];
  assert.deepEqual(Array.from(y1.dataSync()), perm.map((p) => 10 + p));
  assert.deepEqual(Array.from(y2.dataSync()), Array.from(y1.dataSync()));
  tf.dispose([x, y1, y2]);
  dispose(s1);
  dispose(s2);
});

test('NICE diagonal scaling', () => {
  layerCase('scale image', IMG, () => new DiagonalScale([4, 4, 2]));
  layerCase('scale vector', VEC, () => new DiagonalScale([4]));
});

test('half couplings (Glow affine, NICE additive) on images and vectors, even and odd widths', () => {
  for (const kind of ['affine', 'additive'] as CouplingKind[]) {
    layerCase(`${kind} coupling image`, IMG4, (rng) => new HalfCoupling(4, halfCouplingTransformer(kind), convNet(rng)));
    layerCase(`${kind} coupling image c2`, IMG, (rng) => new HalfCoupling(2, halfCouplingTransformer(kind), convNet(rng)));
    layerCase(`${kind} coupling vector`, VEC, (rng) => new HalfCoupling(4, halfCouplingTransformer(kind), mlp(rng)));
    layerCase(`${kind} coupling vector odd`, [3, 3], (rng) => new HalfCoupling(3, halfCouplingTransformer(kind), mlp(rng)));
  }
  layerCase('affine coupling with a scale floor', IMG4, (rng) => new HalfCoupling(4, halfCouplingTransformer('affine', 0.1), convNet(rng)));
});

/** A transformer with fixed parameters (one example's worth, broadcast over the batch) as a bijector. */
class FixedParameters implements Bijector {
  readonly name = 'fixed';
  constructor(
    readonly transformer: Transformer,
    readonly params: Tensor[],
  ) {}
  forward(x: Tensor): ForwardResult {
    return this.transformer.forward(x, this.params);
  }
  inverse(y: Tensor): InverseResult {
    return this.transformer.inverse(y, this.params);
  }
  outputShape(shape: readonly number[]): number[] {
    return [...shape];
  }
  variables(): NamedVariable[] {
    return this.transformer.variables();
  }
}

test('transformers alone: invertible with the Jacobian log|det| for random parameters; zero parameters are the identity', () => {
  const shape = [1, 2, 2, 3];
  const made: Tensor[] = [];
  const transformers: Array<[string, () => Transformer]> = [
    ['additive', () => new AdditiveTransformer()],
    ['sigmoid affine', () => new SigmoidAffineTransformer()],
    ['sigmoid affine floor', () => new SigmoidAffineTransformer(0.2)],
    ['tanh affine', () => new TanhAffineTransformer(3)],
  ];
  for (const [label, make] of transformers) {
    layerCase(`transformer ${label}`, shape, (rng) => {
      const t = make();
      const params = tf.tidy(() => t.parameters(Array.from({ length: t.heads }, () => randomTensor(shape, rng))));
      made.push(...params);
      return new FixedParameters(t, params);
    });
    // MaskedCoupling relies on this: it zeroes the parameters where it keeps the input.
    const t = make();
    const x = randomTensor([2, 2, 2, 3], new Rng(4));
    const zeros = Array.from({ length: t.heads }, () => tf.zeros(shape));
    const { y, logdet } = t.forward(x, zeros);
    assert.equal(maxAbs(tf.sub(y, x)), 0, `${label}: zero parameters change x`);
    assert.equal(maxAbs(logdet), 0, `${label}: zero parameters have a log|det|`);
    tf.dispose([x, y, logdet, ...zeros]);
    for (const [, v] of t.variables()) v.dispose();
  }
  tf.dispose(made);
});

function maxAbs(t: Tensor): number {
  const m = tf.tidy(() => tf.max(tf.abs(t)));
  const v = m.dataSync()[0]!;
  tf.dispose([m, t]);
  return v;
}

test('untrained affine coupling leaves the conditioning half and scales by sigmoid(2)', () => {
  const rng = new Rng(1);
  const b = new HalfCoupling(4, halfCouplingTransformer('affine'), convNet(rng));
  const x = randomTensor(IMG4, rng);
  const { y, logdet } = b.forward(x);
  const xv = x.dataSync();
  const yv = y.dataSync();
  const s = 1 / (1 + Math.exp(-2));
  for (let i = 0; i < xv.length; i++) {
    const expected = i % 4 < 2 ? xv[i]! : xv[i]! * s;
    assert.ok(Math.abs(yv[i]! - expected) < 1e-6);
  }
  assert.ok(Math.abs(logdet.dataSync()[0]! - 8 * Math.log(s)) < 1e-4);
  tf.dispose([x, y, logdet]);
  dispose(b);
});

test('RealNVP masked couplings: checkerboard and channel masks, both parities, images and vectors', () => {
  for (const kind of ['affine', 'additive'] as CouplingKind[]) {
    for (const type of ['checkerboard', 'channel'] as MaskType[]) {
      for (const parity of [0, 1]) {
        layerCase(`masked ${kind} ${type} ${parity} image`, IMG, (rng) => new MaskedCoupling([4, 4, 2], type, parity, maskedCouplingTransformer(kind, 2), convNet(rng)));
        layerCase(`masked ${kind} ${type} ${parity} vector`, VEC, (rng) => new MaskedCoupling([4], type, parity, maskedCouplingTransformer(kind, 4), mlp(rng)));
      }
    }
  }
});

test('coupling masks: the two parities are complements; checkerboard alternates in space', () => {
  for (const shape of [[4, 4, 2], [5]]) {
    for (const type of ['checkerboard', 'channel'] as MaskType[]) {
      const m0 = couplingMask(shape, type, 0);
      const m1 = couplingMask(shape, type, 1);
      m0.forEach((v, i) => assert.equal(v + m1[i]!, 1));
    }
  }
  const cb = couplingMask([2, 2, 1], 'checkerboard', 0);
  assert.deepEqual(Array.from(cb), [1, 0, 0, 1]);
  assert.deepEqual(Array.from(couplingMask([1, 1, 4], 'channel', 0)), [1, 1, 0, 0]);
});

test('chain and inverse', () => {
  const steps = (rng: Rng) => [
    new ActNorm(4),
    new InvConv1x1(4, rng),
    new HalfCoupling(4, halfCouplingTransformer('affine'), convNet(rng)),
    new Chain('inner', [new ReversePermutation(), new HalfCoupling(4, halfCouplingTransformer('additive'), convNet(rng), 'coupling2')]),
  ];
  layerCase('chain', IMG4, (rng) => new Chain('chain', steps(rng)), { init: true });
  layerCase('inverse coupling', IMG4, (rng) => new Inverse(new HalfCoupling(4, halfCouplingTransformer('affine'), convNet(rng))));
  layerCase('inverse chain', IMG4, (rng) => new Inverse(new Chain('chain', [new InvConv1x1(4, rng, { lu: false }), new MaskedCoupling([2, 2, 4], 'checkerboard', 1, maskedCouplingTransformer('affine', 4), convNet(rng))])));
  layerCase('squeeze chain', IMG, (rng) => new Chain('c', [new Squeeze(), new HalfCoupling(8, halfCouplingTransformer('affine'), convNet(rng))]));
  const rng = new Rng(2);
  const chain = new Chain('c', steps(rng));
  assert.deepEqual(
    chain.variables().map(([n]) => n).slice(0, 5),
    ['actnorm.loc', 'actnorm.logs', 'actnorm.initialized', 'invconv.p', 'invconv.sign'],
  );
  assert.ok(chain.variables().some(([n]) => n === 'coupling.nn.conv1.kernel'));
  assert.ok(chain.variables().some(([n]) => n === 'inner.coupling2.nn.out.logscale'));
  assert.deepEqual(chain.leaves([2, 2, 4]).map((l) => l.name), ['c.actnorm', 'c.invconv', 'c.coupling', 'c.inner.permute', 'c.inner.coupling2']);
  assert.throws(() => new Chain('dup', [new ReversePermutation(), new ReversePermutation()]), /two layers are named 'permute'/);
  dispose(chain);
});

test('every layer reports its output shape; a chain checks them as it is built and names the layer that does not fit', () => {
  const rng = new Rng(6);
  assert.deepEqual(new Squeeze().outputShape([4, 6, 2]), [2, 3, 8]);
  assert.throws(() => new Squeeze().outputShape([3, 4, 2]), /even H and W/);
  assert.throws(() => new Squeeze().outputShape([8]), /\[H,W,C\]/);
  const coupling = new HalfCoupling(8, halfCouplingTransformer('affine'), convNet(rng));
  const layers = [new ActNorm(4), new Chain('inner', [new ReversePermutation(), coupling])];
  assert.throws(
    () => new Chain('c', layers, [2, 2, 4]),
    (e: unknown) => e instanceof ShapeError && e.layer === 'c.inner.coupling' && /layer c\.inner\.coupling: expects 8 channels, got \[2,2,4\]/.test(e.message),
  );
  // Without an input shape nothing is checked yet; with the right one the chain says its output shape.
  const squeezed = new Chain('s', [new Squeeze(), new ActNorm(8), new DiagonalScale([2, 2, 8]), new InvConv1x1(8, rng)], [4, 4, 2]);
  assert.deepEqual(squeezed.outputShape([4, 4, 2]), [2, 2, 8]);
  assert.throws(() => squeezed.outputShape([4, 4, 1]), /layer s\.actnorm: expects 8 channels, got \[2,2,4\]/);
  assert.throws(() => new DiagonalScale([2, 2, 8]).outputShape([2, 2, 4]), /expects \[2,2,8\], got \[2,2,4\]/);
  const masked = new MaskedCoupling([4, 4, 2], 'checkerboard', 0, maskedCouplingTransformer('affine', 2), convNet(rng));
  assert.throws(() => masked.outputShape([4, 4, 3]), /expects \[4,4,2\]/);
  assert.throws(() => new Inverse(new Squeeze()).outputShape([4, 4, 2]), /changes the shape/);
  assert.deepEqual(new Inverse(masked).outputShape([4, 4, 2]), [4, 4, 2]);
  for (const b of [...layers, squeezed, masked]) dispose(b);
});

/** Records the context it is called with. */
class ContextRecorder implements Bijector {
  constructor(
    readonly name: string,
    readonly seen: string[],
  ) {}
  private record(what: string, x: Tensor, context?: Tensor): { out: Tensor; logdet: Tensor } {
    this.seen.push(`${this.name} ${what} ${context ? `[${context.shape}]` : 'none'}`);
    return { out: x, logdet: tf.zeros([x.shape[0]!]) };
  }
  forward(x: Tensor, context?: Tensor): ForwardResult {
    const r = this.record('forward', x, context);
    return { y: r.out, logdet: r.logdet };
  }
  inverse(y: Tensor, context?: Tensor): InverseResult {
    const r = this.record('inverse', y, context);
    return { x: r.out, logdet: r.logdet };
  }
  initialize(x: Tensor, context?: Tensor): void {
    this.record('initialize', x, context);
  }
  outputShape(shape: readonly number[]): number[] {
    return [...shape];
  }
  variables(): NamedVariable[] {
    return [];
  }
}

test('a chain hands the context to every layer, nested ones included, in forward, inverse and initialize', () => {
  const seen: string[] = [];
  const chain = new Chain('c', [new ContextRecorder('a', seen), new Chain('inner', [new ContextRecorder('b', seen)])], [3]);
  const x = tf.zeros([2, 3]);
  const context = tf.ones([2, 5]);
  tf.tidy(() => {
    chain.forward(x, context);
    chain.inverse(x, context);
    chain.forward(x);
  });
  chain.initialize(x, context);
  assert.deepEqual(seen, [
    'a forward [2,5]',
    'b forward [2,5]',
    'b inverse [2,5]',
    'a inverse [2,5]',
    'a forward none',
    'b forward none',
    'a initialize [2,5]',
    'a forward [2,5]',
    'b initialize [2,5]',
    'b forward [2,5]',
  ]);
  tf.dispose([x, context]);
});

test('interleaved heads: head j is channels j::heads', () => {
  const rng = new Rng(3);
  const net = new ZeroConv(2, 6);
  perturb(net.variables(), rng, 0.5);
  const x = randomTensor([1, 2, 2, 2], rng);
  const full = net.apply(x).dataSync();
  const heads = net.applyHeads(x, 3);
  heads.forEach((h, j) => {
    assert.deepEqual(h.shape, [1, 2, 2, 2]);
    const v = h.dataSync();
    for (let p = 0; p < 4; p++) for (let i = 0; i < 2; i++) assert.equal(v[p * 2 + i], full[p * 6 + i * 3 + j]);
  });
  tf.dispose([x, ...heads]);
  for (const [, v] of net.variables()) v.dispose();
});

test('linalg: LU with pivoting, inverse, log|det|', () => {
  const rng = new Rng(4);
  const n = 7;
  const a = Float64Array.from(rng.normalArray(n * n));
  const inv = la.inverse(a, n);
  const prod = la.matmul(a, inv, n);
  const eye = la.identity(n);
  prod.forEach((v, i) => assert.ok(Math.abs(v - eye[i]!) < 1e-10));
  // det of a triangular matrix times a permutation: product of the diagonal.
  const t = new Float64Array([0, 0, 3, 0, -2, 5, 0.5, 1, 7]);
  assert.ok(Math.abs(la.logAbsDet(t, 3) - Math.log(3)) < 1e-12);
  assert.equal(la.logAbsDet(new Float64Array([1, 2, 2, 4]), 2), -Infinity);
  const q = la.randomOrthogonal(5, rng);
  const qqt = la.matmul(q, la.transpose(q, 5), 5);
  la.identity(5).forEach((v, i) => assert.ok(Math.abs(v - qqt[i]!) < 1e-12));
});
