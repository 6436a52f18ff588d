import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UserError } from '../src/errors.js';
import { Rng } from '../src/rng.js';
import {
  auroc,
  complexityCorrectedScore,
  evaluateOod,
  pngComplexityBits,
  pngComplexityBitsBatch,
  typicalityScores,
  typicalityThreshold,
} from '../src/ood/scores.js';

/** P(out > in) + P(out = in)/2 by counting every pair. */
function bruteAuroc(a: number[], b: number[]): number {
  let s = 0;
  for (const x of a) for (const y of b) s += y > x ? 1 : y === x ? 0.5 : 0;
  return s / (a.length * b.length);
}

test('auroc: exact known answers', () => {
  assert.equal(auroc([1, 2, 3], [4, 5]), 1);
  assert.equal(auroc([4, 5], [1, 2, 3]), 0);
  assert.equal(auroc([7, 7, 7], [7, 7]), 0.5);
  // out=2 beats 1, ties 2, loses to 3 -> 1.5; out=4 beats all three -> 3; (1.5 + 3) / 6
  assert.equal(auroc([1, 2, 3], [2, 4]), 0.75);
  // out=1 ties two 1s -> 1; out=3 beats all -> 3; 4 / 6
  assert.equal(auroc([1, 1, 2], [1, 3]), 2 / 3);
  assert.equal(auroc([0], [Infinity]), 1);
  assert.equal(auroc([Infinity, 1], [Infinity]), 0.75);
  assert.throws(() => auroc([], [1]), UserError);
  assert.throws(() => auroc([1, NaN], [1]), UserError);
});

test('auroc matches pair counting on random scores with many ties', () => {
  const rng = new Rng(7);
  for (let trial = 0; trial < 20; trial++) {
    const a = Array.from({ length: 1 + rng.int(60) }, () => Math.round(rng.normal() * 3) / 2);
    const b = Array.from({ length: 1 + rng.int(60) }, () => Math.round(rng.normal() * 3 + 1) / 2);
    assert.ok(Math.abs(auroc(a, b) - bruteAuroc(a, b)) < 1e-12);
  }
});

test('typicality threshold holds its false-positive rate on fresh in-distribution batches', () => {
  const rng = new Rng(123);
  const mu = 3;
  const sigma = 0.5;
  const heldOut = Array.from({ length: 5000 }, () => mu + sigma * rng.normal());
  const M = 16;
  for (const fpr of [0.05, 0.2]) {
    const threshold = typicalityThreshold(heldOut, mu, M, fpr, rng, 4000);
    const fresh = Array.from({ length: 4000 * M }, () => mu + sigma * rng.normal());
    const stats = typicalityScores(fresh, mu, M);
    assert.equal(stats.length, 4000);
    const realised = stats.filter((s) => s > threshold).length / stats.length;
    assert.ok(Math.abs(realised - fpr) < 0.02, `fpr target ${fpr}, realised ${realised}`);
  }
  // Known answer: |mean - mu| of M normals exceeds z_{0.975} * sigma / sqrt(M) 5% of the time.
  const t05 = typicalityThreshold(heldOut, mu, M, 0.05, rng, 4000);
  assert.ok(Math.abs(t05 - (1.96 * sigma) / Math.sqrt(M)) < 0.03, `threshold ${t05}`);
  // Shifted (atypical) batches are flagged almost always.
  const shifted = Array.from({ length: 200 * M }, () => mu - 0.6 + sigma * rng.normal());
  const tpr = typicalityScores(shifted, mu, M).filter((s) => s > t05).length / 200;
  assert.ok(tpr > 0.95, `tpr ${tpr}`);
  assert.throws(() => typicalityThreshold(heldOut, mu, M, 1.5, rng), UserError);
  assert.throws(() => typicalityThreshold(heldOut, mu, 0, 0.05, rng), UserError);
});

test('typicalityScores uses consecutive batches and drops a trailing partial batch', () => {
  assert.deepEqual(typicalityScores([1, 3, 5, 5, 9], 2, 2), [0, 3]);
  assert.deepEqual(typicalityScores([1], 0, 2), []);
});

test('pngComplexityBits: constant < smooth gradient < uniform noise', async () => {
  const h = 32;
  const w = 32;
  const c = 3;
  const constant = new Uint8Array(h * w * c).fill(128);
  const gradient = new Uint8Array(h * w * c);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let k = 0; k < c; k++) gradient[(y * w + x) * c + k] = (x * 4 + y * 3 + k * 20) & 255;
  const rng = new Rng(1);
  const noise = Uint8Array.from({ length: h * w * c }, () => rng.int(256));
  const [lc, lg, ln] = await Promise.all([pngComplexityBits(constant, h, w, c), pngComplexityBits(gradient, h, w, c), pngComplexityBits(noise, h, w, c)]);
  assert.ok(lc < lg && lg < ln, `constant ${lc}, gradient ${lg}, noise ${ln}`);
  assert.equal(lc % 8, 0);
  // Noise cannot compress: at least ~8 bits per byte.
  assert.ok(ln >= 8 * h * w * c);
  const batch = new Uint8Array(3 * h * w * c);
  batch.set(constant, 0);
  batch.set(gradient, h * w * c);
  batch.set(noise, 2 * h * w * c);
  assert.deepEqual(await pngComplexityBitsBatch(batch, 3, h, w, c, 2), [lc, lg, ln]);
  // Grayscale works too.
  assert.ok((await pngComplexityBits(new Uint8Array(64).fill(3), 8, 8, 1)) > 0);
  await assert.rejects(pngComplexityBits(constant, h, w, 1), UserError);
});

test('complexityCorrectedScore is bpd minus complexity bits per dim', () => {
  assert.equal(complexityCorrectedScore(3, 3072 * 2, 3072), 1);
});

test('evaluateOod: likelihood fails on simpler OOD data, complexity correction and typicality catch it', () => {
  const rng = new Rng(5);
  const dims = 100;
  const n = 400;
  // In-distribution: bpd ~ 3 with complexity 4 bits/dim. OOD data are simpler: the model gives them LOWER
  // bpd (2.5) but their PNG complexity is much lower too (2 bits/dim), so S = bpd - L/dims is higher.
  const inBpd = Array.from({ length: n }, () => 3 + 0.2 * rng.normal());
  const outBpd = Array.from({ length: n }, () => 2.5 + 0.2 * rng.normal());
  const inBits = inBpd.map((b) => (b + 1 + 0.05 * rng.normal()) * dims);
  const outBits = outBpd.map((b) => (b - 0.5 + 0.05 * rng.normal()) * dims);
  const r = evaluateOod({
    inBpd,
    outBpd,
    dims,
    inComplexityBits: inBits,
    outComplexityBits: outBits,
    typicality: { batchSize: 10, fpr: 0.05, rng, bootstraps: 2000 },
  });
  assert.equal(r.in.n, n);
  assert.ok(Math.abs(r.in.meanBpd - 3) < 0.05 && Math.abs(r.out.meanBpd - 2.5) < 0.05);
  assert.ok(r.likelihood.auroc < 0.1, `likelihood AUROC ${r.likelihood.auroc}`);
  assert.equal(r.likelihood.auroc, auroc(inBpd, outBpd));
  assert.ok(r.complexity!.auroc > 0.99, `complexity AUROC ${r.complexity!.auroc}`);
  assert.ok(Math.abs(r.complexity!.inMeanScore - -1) < 0.05 && Math.abs(r.complexity!.outMeanScore - 0.5) < 0.05);
  assert.ok(Math.abs(r.complexity!.outMeanPngBpd - 2) < 0.05);
  const t = r.typicality!;
  assert.equal(t.calibration, 'split');
  assert.equal(t.inBatches, 20); // half of 400 held back for calibration, in batches of 10
  assert.equal(t.outBatches, 40);
  assert.equal(t.tpr, 1);
  assert.ok(t.fpr <= 0.2, `fpr ${t.fpr}`);
  assert.ok(t.auroc > 0.99);

  // With an explicit held-out set and training mean, all of inBpd is tested.
  const heldOutBpd = Array.from({ length: 400 }, () => 3 + 0.2 * rng.normal());
  const r2 = evaluateOod({ inBpd, outBpd, dims, typicality: { batchSize: 10, rng, heldOutBpd, trainMeanBpd: 3 } });
  assert.equal(r2.typicality!.calibration, 'held-out');
  assert.equal(r2.typicality!.inBatches, 40);
  assert.equal(r2.typicality!.trainMeanBpd, 3);
  assert.equal(r2.complexity, undefined);

  assert.throws(() => evaluateOod({ inBpd, outBpd, dims, inComplexityBits: inBits }), UserError);
  assert.throws(() => evaluateOod({ inBpd, outBpd: outBpd.slice(0, 5), dims, typicality: { batchSize: 10, rng } }), UserError);
});
