// Throughput of the entropy coder of `flow compress` (src/compress/rans.ts, mixture-code.ts) on the
// sizes of a 10,000-image, 784-symbol data set. A benchmark, not a test:
// `node dist/scripts/coder-bench.js [--images N]` prints symbols/s for raw rANS and for mixture coding.
import { RansDecoder, RansEncoder } from '../src/compress/rans.js';
import { type MixtureParams, decodeMixtureSymbols, encodeMixtureSymbols } from '../src/compress/mixture-code.js';
import { Rng } from '../src/rng.js';

const arg = process.argv.indexOf('--images');
const images = arg > 0 ? Number(process.argv[arg + 1]) : 10_000;
const n = images * 784;
const rng = new Rng(1);
const rate = (count: number, ms: number) => `${((count / ms) * 1e3 / 1e6).toFixed(2)}M symbols/s`;

{
  const starts = new Uint32Array(n);
  const freqs = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    freqs[i] = 1 + Math.floor(2 ** (rng.next() * 24) - 1);
    starts[i] = Math.floor(rng.next() * (2 ** 24 - freqs[i]! + 1));
  }
  const t0 = performance.now();
  const enc = new RansEncoder();
  for (let i = 0; i < n; i++) enc.put(starts[i]!, freqs[i]!);
  const bytes = enc.finish();
  const t1 = performance.now();
  const dec = new RansDecoder(bytes);
  for (let i = 0; i < n; i++) dec.advance(starts[i]!, freqs[i]!);
  dec.finish();
  const t2 = performance.now();
  console.log(`rANS, ${n} symbols: encode ${rate(n, t1 - t0)}, decode ${rate(n, t2 - t1)}`);
}

/** Mixtures: `spread` scales the distance of the components' means from a common centre. */
function mixture(count: number, K: number, spread: number, logScaleLo: number, logScaleHi: number): MixtureParams {
  const p: MixtureParams = { components: K, logits: new Float32Array(count * K), means: new Float32Array(count * K), logScales: new Float32Array(count * K) };
  for (let i = 0; i < count; i++) {
    const centre = Math.round((rng.next() - 0.5) * 40);
    for (let k = 0; k < K; k++) {
      p.logits[i * K + k] = rng.normal();
      p.means[i * K + k] = centre + rng.normal() * spread;
      p.logScales[i * K + k] = logScaleLo + rng.next() * (logScaleHi - logScaleLo);
    }
  }
  return p;
}

function sample(p: MixtureParams, count: number): Int32Array {
  const K = p.components;
  const z = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const k = Math.floor(rng.next() * K);
    const v = Math.min(1 - 1e-12, Math.max(1e-12, rng.next()));
    z[i] = Math.floor(p.means[i * K + k]! + Math.exp(p.logScales[i * K + k]!) * Math.log(v / (1 - v)) + 0.5);
  }
  return z;
}

for (const [label, K, spread, lo, hi] of [
  ['K=1, scales 0.3..30', 1, 0, Math.log(0.3), Math.log(30)],
  ['K=5, means +-2, scales 0.5..5', 5, 2, Math.log(0.5), Math.log(5)],
  ['K=5, means +-10, scales 0.3..30', 5, 10, Math.log(0.3), Math.log(30)],
] as const) {
  const count = Math.min(n, 1_000_000);
  const p = mixture(count, K, spread, lo, hi);
  const z = sample(p, count);
  const t0 = performance.now();
  const enc = new RansEncoder();
  const ideal = encodeMixtureSymbols(enc, z, p);
  const bytes = enc.finish();
  const t1 = performance.now();
  const dec = new RansDecoder(bytes);
  const back = decodeMixtureSymbols(dec, count, p);
  dec.finish();
  const t2 = performance.now();
  for (let i = 0; i < count; i++) if (back[i] !== z[i]) throw new Error(`mismatch at ${i}`);
  console.log(`mixture ${label}, ${count} symbols: encode ${rate(count, t1 - t0)}, decode ${rate(count, t2 - t1)}; ${(bytes.length * 8 / ideal - 1) * 100 >= 0 ? '+' : ''}${((bytes.length * 8 / ideal - 1) * 100).toFixed(4)}% over ideal (${(ideal / count).toFixed(3)} bits/symbol)`);
}
