// Coding integers under discretised logistic mixtures (src/compress/mixture-code.ts): exact round trips
// for random mixtures and for the edge distributions (tiny and huge scales, escapes, near-zero
// probabilities, negligible components, far means), efficiency against the ideal code length, the stable
// ideal bits, and refusals of non-finite parameters.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../src/rng.js';
import { CorruptStreamError, PROB_SCALE, RansDecoder, RansEncoder, putBits32 } from '../src/compress/rans.js';
import { ESCAPE_FREQ, type MixtureParams, decodeMixtureSymbols, encodeMixtureSymbols, mixtureIdealBits } from '../src/compress/mixture-code.js';

interface Spec {
  logit: (i: number, k: number) => number;
  mean: (i: number, k: number) => number;
  logScale: (i: number, k: number) => number;
}

function makeParams(n: number, K: number, spec: Spec): MixtureParams {
  const p: MixtureParams = { components: K, logits: new Float32Array(n * K), means: new Float32Array(n * K), logScales: new Float32Array(n * K) };
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < K; k++) {
      p.logits[i * K + k] = spec.logit(i, k);
      p.means[i * K + k] = spec.mean(i, k);
      p.logScales[i * K + k] = spec.logScale(i, k);
    }
  }
  return p;
}

/** One draw per symbol from its mixture: a component by weight, a logistic, rounded to its bin. */
function sample(rng: Rng, p: MixtureParams, n: number): Int32Array {
  const K = p.components;
  const z = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let max = Number.NEGATIVE_INFINITY;
    for (let k = 0; k < K; k++) max = Math.max(max, p.logits[i * K + k]!);
    let total = 0;
    for (let k = 0; k < K; k++) total += Math.exp(p.logits[i * K + k]! - max);
    let u = rng.next() * total;
    let k = 0;
    while (k < K - 1 && (u -= Math.exp(p.logits[i * K + k]! - max)) > 0) k++;
    const v = Math.min(1 - 1e-12, Math.max(1e-12, rng.next()));
    const x = p.means[i * K + k]! + Math.exp(p.logScales[i * K + k]!) * Math.log(v / (1 - v));
    z[i] = Math.min(2147483647, Math.max(-2147483648, Math.floor(x + 0.5)));
  }
  return z;
}

/** Encodes, decodes, checks the exact round trip and the stream's end; returns bits written and ideal bits. */
function roundTrip(symbols: Int32Array, p: MixtureParams): { bits: number; ideal: number } {
  const enc = new RansEncoder();
  const ideal = encodeMixtureSymbols(enc, symbols, p);
  const bytes = enc.finish();
  const dec = new RansDecoder(bytes);
  const back = decodeMixtureSymbols(dec, symbols.length, p);
  dec.finish();
  for (let i = 0; i < symbols.length; i++) if (back[i] !== symbols[i]) assert.fail(`symbol ${i}: ${symbols[i]} decoded as ${back[i]}`);
  assert.equal(ideal, mixtureIdealBits(symbols, p));
  return { bits: bytes.length * 8, ideal };
}

test('random mixtures (K = 1 and K = 5) with symbols drawn from them round-trip exactly', () => {
  const rng = new Rng(11);
  for (const K of [1, 5]) {
    const n = 20_000;
    const centre = Array.from({ length: n }, () => (rng.next() - 0.5) * 400);
    const p = makeParams(n, K, {
      logit: () => rng.normal() * 2,
      mean: (i) => centre[i]! + rng.normal() * 20,
      logScale: () => -3 + rng.next() * 7,
    });
    const { bits, ideal } = roundTrip(sample(rng, p, n), p);
    assert.ok(bits < ideal * 1.01 + 256, `K=${K}: ${bits} bits for ${ideal} ideal`);
  }
});

test('efficiency: 10^5 symbols at scales 0.3..30 cost within 0.5% of the ideal bits', () => {
  const rng = new Rng(12);
  const n = 100_000;
  const K = 3;
  const centre = Array.from({ length: n }, () => Math.round((rng.next() - 0.5) * 100));
  const p = makeParams(n, K, {
    logit: () => rng.normal(),
    mean: (i) => centre[i]! + rng.normal() * 3,
    logScale: () => Math.log(0.3) + rng.next() * Math.log(100),
  });
  const { bits, ideal } = roundTrip(sample(rng, p, n), p);
  console.log(`# mixture efficiency: ${bits} bits written, ${ideal.toFixed(0)} ideal (${((bits / ideal - 1) * 100).toFixed(4)}% over, ${(ideal / n).toFixed(3)} bits/symbol)`);
  assert.ok(bits <= ideal * 1.005, `${bits} bits for ${ideal} ideal`);
  assert.ok(bits >= ideal * 0.99, 'well under the ideal: the ideal bits are wrong');
});

const one = (mean: number, logScale: number, n: number): MixtureParams => makeParams(n, 1, { logit: () => 0, mean: () => mean, logScale: () => logScale });

test('every integer in and around the window is codable (each has a non-empty slot range) for 300 random mixtures', () => {
  const rng = new Rng(17);
  for (let m = 0; m < 300; m++) {
    const K = 1 + (m % 4);
    const logScales = Array.from({ length: K }, () => (m % 10 === 0 ? -20 : -4 + rng.next() * 7));
    const means = Array.from({ length: K }, () => (rng.next() - 0.5) * 30);
    const logits = Array.from({ length: K }, () => rng.normal() * 3);
    const reach = 20 * Math.exp(Math.max(...logScales)) + 20;
    const from = Math.floor(Math.min(...means) - reach);
    const to = Math.ceil(Math.max(...means) + reach);
    const symbols = Int32Array.from({ length: to - from + 1 }, (_, j) => from + j);
    const p = makeParams(symbols.length, K, { logit: (_, k) => logits[k]!, mean: (_, k) => means[k]!, logScale: (_, k) => logScales[k]! });
    roundTrip(symbols, p);
  }
});

test('a tiny scale puts all mass on one integer: it costs ~0 bits; its neighbours and far values still round-trip', () => {
  const symbols = Int32Array.from([3, 3, 3, 3, 4, 2, 3, -1000, 3, 2147483647, -2147483648]);
  for (const mean of [3.2, 3, 3.5, 2.5000001]) {
    const p = one(mean, -20, symbols.length);
    roundTrip(symbols, p);
  }
  const p = one(3.2, -20, 1000);
  const { bits, ideal } = roundTrip(new Int32Array(1000).fill(3), p);
  assert.ok(ideal < 1e-6, `${ideal}`);
  assert.ok(bits <= 8 * 12, `${bits} bits for 1000 certain symbols`);
  // logScale far below the clamp (-30) behaves the same.
  roundTrip(Int32Array.from([3, 4, 5]), one(3.2, -1000, 3));
});

test('a huge scale (logScale 20 and beyond) codes int32 values near and far from the mean', () => {
  const rng = new Rng(13);
  const symbols = Int32Array.from({ length: 2000 }, (_, i) => (i % 2 ? Math.floor((rng.next() - 0.5) * 2 ** 32) : Math.floor((rng.next() - 0.5) * 100)));
  const { bits, ideal } = roundTrip(symbols, one(0, 20, symbols.length));
  assert.ok(bits < symbols.length * 52, `${bits} bits`);
  assert.ok(ideal > symbols.length * 28, `${ideal}`);
  roundTrip(symbols, one(0, 1000, symbols.length));
  // P(mean) = sigmoid(0.5/s) - sigmoid(-0.5/s) = tanh(0.25/s): exact however wide the logistic.
  for (const logScale of [20, 10, 0, -2]) {
    const expected = -Math.log2(Math.tanh(0.25 * Math.exp(-logScale)));
    const actual = mixtureIdealBits(Int32Array.from([0]), one(0, logScale, 1));
    assert.ok(Math.abs(actual - expected) <= 1e-12 * expected, `logScale ${logScale}: ${actual} vs ${expected}`);
  }
});

test('symbols far outside the window are escaped and round-trip; their ideal bits are exact even where P underflows', () => {
  const symbols = Int32Array.from([0, 2147483647, -2147483648, 1_000_000, -1_000_000, 28, -28, 1000, 17, -17, 16, 0]);
  const { bits } = roundTrip(symbols, one(0, 0, symbols.length));
  assert.ok(bits < symbols.length * 56 + 80, `${bits}`);
  // P(28) = sigmoid(-27.5) - sigmoid(-28.5) ~ 1e-12; P(1000) ~ e^-999.5 underflows float64.
  const ln2 = Math.LN2;
  const expected28 = -Math.log(1 / (1 + Math.exp(27.5)) - 1 / (1 + Math.exp(28.5))) / ln2;
  const bits28 = mixtureIdealBits(Int32Array.from([28]), one(0, 0, 1));
  assert.ok(Math.abs(bits28 - expected28) < 1e-9 * expected28, `${bits28} vs ${expected28}`);
  assert.ok(Math.abs(bits28 - 40.34) < 0.01, `${bits28}`);
  const expected1000 = (999.5 - Math.log(1 - Math.exp(-1))) / ln2;
  const bits1000 = mixtureIdealBits(Int32Array.from([1000]), one(0, 0, 1));
  assert.ok(Math.abs(bits1000 - expected1000) < 1e-9 * expected1000, `${bits1000} vs ${expected1000}`);
  // Symmetric: the lower tail too.
  assert.ok(Math.abs(mixtureIdealBits(Int32Array.from([-1000]), one(0, 0, 1)) - expected1000) < 1e-9 * expected1000);
});

test('ideal bits match the naive sum of sigmoid differences where that is accurate', () => {
  const rng = new Rng(14);
  const n = 500;
  const K = 4;
  const p = makeParams(n, K, { logit: () => rng.normal(), mean: () => rng.normal() * 5, logScale: () => rng.normal() });
  const symbols = sample(rng, p, n);
  const sig = (x: number) => 1 / (1 + Math.exp(-x));
  let naive = 0;
  for (let i = 0; i < n; i++) {
    let total = 0;
    let prob = 0;
    for (let k = 0; k < K; k++) total += Math.exp(p.logits[i * K + k]!);
    for (let k = 0; k < K; k++) {
      const mu = p.means[i * K + k]!;
      const s = Math.exp(p.logScales[i * K + k]!);
      prob += (Math.exp(p.logits[i * K + k]!) / total) * (sig((symbols[i]! + 0.5 - mu) / s) - sig((symbols[i]! - 0.5 - mu) / s));
    }
    naive -= Math.log2(prob);
  }
  const ideal = mixtureIdealBits(symbols, p);
  assert.ok(Math.abs(ideal - naive) < 1e-6 * naive, `${ideal} vs ${naive}`);
});

test('near-zero-probability symbols, a component of weight ~1e-30 and means at +-1e6 round-trip', () => {
  const rng = new Rng(15);
  // Two components: the second weighs e^-69 ~ 1e-30 and sits at 1e6, outside the window.
  const p = makeParams(6, 2, { logit: (_, k) => (k === 0 ? 0 : -69), mean: (_, k) => (k === 0 ? 0 : 1e6), logScale: () => 0 });
  const symbols = Int32Array.from([0, 1_000_000, 1, 999_999, -5, 12]);
  roundTrip(symbols, p);
  const far = mixtureIdealBits(Int32Array.from([1_000_000]), makeParams(1, 2, { logit: (_, k) => (k === 0 ? 0 : -69), mean: (_, k) => (k === 0 ? 0 : 1e6), logScale: () => 0 }));
  const expected = -(-69 + Math.log(1 / (1 + Math.exp(-0.5)) - 1 / (1 + Math.exp(0.5)))) / Math.LN2;
  assert.ok(Math.abs(far - expected) < 1e-6, `${far} vs ${expected}`);
  // Near-zero-probability values inside the window: a light (2e-8), wide component stretches it to +-1600.
  const q = makeParams(6, 2, { logit: (_, k) => (k === 0 ? 0 : Math.log(2e-8)), mean: () => 0, logScale: (_, k) => (k === 0 ? Math.log(0.1) : Math.log(100)) });
  const tiny = Int32Array.from([1000, -1000, 50, 0, 1599, 1700]);
  roundTrip(tiny, q);
  const tinyBits = mixtureIdealBits(tiny.subarray(0, 1), makeParams(1, 2, { logit: (_, k) => (k === 0 ? 0 : Math.log(2e-8)), mean: () => 0, logScale: (_, k) => (k === 0 ? Math.log(0.1) : Math.log(100)) }));
  assert.ok(tinyBits > 40 && tinyBits < 60, `P(1000) should be ~1e-14: ${tinyBits} bits`);
  for (const mean of [1e6, -1e6]) {
    const m = makeParams(5000, 3, { logit: () => rng.normal(), mean: () => mean + rng.normal() * 4, logScale: () => rng.next() * 3 });
    const { bits, ideal } = roundTrip(sample(rng, m, 5000), m);
    assert.ok(bits < ideal * 1.01 + 64, `mean ${mean}: ${bits} bits for ${ideal} ideal`);
  }
  // Means near the int32 limits and beyond them.
  for (const mean of [2147483000, -2147483000, 3e9, -3e9, 1e30]) {
    const m = one(mean, 1, 4);
    roundTrip(Int32Array.from([2147483647, -2147483648, 0, 2147483600]), m);
  }
});

test('non-finite parameters and wrong lengths throw, naming the symbol, before anything is queued', () => {
  const n = 10;
  const K = 3;
  const base = () => makeParams(n, K, { logit: () => 0, mean: () => 0, logScale: () => 0 });
  const symbols = new Int32Array(n);
  for (const [field, value] of [
    ['means', Number.NaN],
    ['logScales', Number.POSITIVE_INFINITY],
    ['logits', Number.NEGATIVE_INFINITY],
    ['logScales', Number.NaN],
  ] as const) {
    const p = base();
    p[field][7 * K + 2] = value;
    const enc = new RansEncoder();
    assert.throws(() => encodeMixtureSymbols(enc, symbols, p), new RegExp(`symbol 7 are not finite: ${field}`));
    assert.equal(enc.length, 0);
    assert.throws(() => mixtureIdealBits(symbols, p), /symbol 7/);
    const good = new RansEncoder();
    encodeMixtureSymbols(good, symbols, base());
    assert.throws(() => decodeMixtureSymbols(new RansDecoder(good.finish()), n, p), /symbol 7/);
  }
  assert.throws(() => encodeMixtureSymbols(new RansEncoder(), new Int32Array(n + 1), base()), /length 30, not n\*K = 11\*3/);
  assert.throws(() => encodeMixtureSymbols(new RansEncoder(), symbols, { ...base(), components: 0 }), /components 0/);
});

test('an escape holding a value inside the window is a stream the encoder cannot have written', () => {
  const enc = new RansEncoder();
  enc.put(PROB_SCALE - ESCAPE_FREQ, ESCAPE_FREQ);
  putBits32(enc, 2);
  const dec = new RansDecoder(enc.finish());
  assert.throws(() => decodeMixtureSymbols(dec, 1, one(0, 0, 1)), (e) => e instanceof CorruptStreamError && /escaped value 2 lies inside its window/.test(e.message));
});

test('throughput (K = 5, 200 images x 784 symbols)', () => {
  const rng = new Rng(16);
  const n = 200 * 784;
  const K = 5;
  const p = makeParams(n, K, { logit: () => rng.normal(), mean: () => rng.normal() * 10, logScale: () => Math.log(0.3) + rng.next() * Math.log(100) });
  const symbols = sample(rng, p, n);
  const t0 = performance.now();
  const enc = new RansEncoder();
  encodeMixtureSymbols(enc, symbols, p);
  const bytes = enc.finish();
  const t1 = performance.now();
  const dec = new RansDecoder(bytes);
  const back = decodeMixtureSymbols(dec, n, p);
  dec.finish();
  const t2 = performance.now();
  assert.deepEqual(back, symbols);
  console.log(`# mixture K=5 throughput: encode ${((n / (t1 - t0)) * 1e3 / 1e6).toFixed(2)}M symbols/s, decode ${((n / (t2 - t1)) * 1e3 / 1e6).toFixed(2)}M symbols/s`);
});
