// Micro-benchmark of the conv/matmul paths in src/kernels/cpu-paths.ts on the shapes of Glow on
// Fashion-MNIST (batch 64; 14x14x4 and 7x7x8 after squeeze; coupling width 128).
// Usage: node dist/scripts/bench-ops.js [wasm|cpu|all] [--batch N] [--min-ms N] [--filter SUBSTRING]
// Prints ms per call and GFLOP/s for each op and path. Not a test.
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { tf, type Tensor } from '../src/tf.js';
import { Rng } from '../src/rng.js';
import {
  conv2dInputGrad,
  conv2dFilterGradConv,
  conv2dFilterGradIm2col,
  conv2dFilterGradIm2colDy,
  convLayer,
  matMul,
  setFastGradients,
} from '../src/kernels/cpu-paths.js';

/** A stride-1 'same' conv with no bias through convLayer, as the models run it. */
function conv2d(x: Tensor, filter: Tensor): Tensor {
  return convLayer(x, filter, tf.zeros([filter.shape[3]!]), 'linear');
}

const args = process.argv.slice(2);
function flag(name: string, fallback: string): string {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
}
const which = args.find((a) => !a.startsWith('--') && !/^\d+$/.test(a)) ?? 'wasm';
const backends = which === 'all' ? ['wasm', 'cpu'] : [which];
const batch = Number(flag('--batch', '64'));
const minMs = Number(flag('--min-ms', '400'));
const only = flag('--filter', '');

/** Median ms of fn over enough runs to fill ~minMs (at least 3, after one warm-up; the warm-up alone if it took > 5 minMs). */
function time(fn: () => Tensor | Tensor[]): number {
  const run = () => {
    const t0 = performance.now();
    const out = fn();
    const list = Array.isArray(out) ? out : [out];
    for (const t of list) t.dataSync(); // forces completion; results are small or discarded
    const ms = performance.now() - t0;
    tf.dispose(list);
    return ms;
  };
  const first = run();
  if (first > 5 * minMs) return first; // very slow paths: one run says enough
  const samples: number[] = [];
  let total = 0;
  while (samples.length < 3 || (total < minMs && samples.length < 50)) {
    const ms = run();
    samples.push(ms);
    total += ms;
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)];
}

function report(name: string, path: string, ms: number, flops: number): void {
  const gflops = flops / (ms * 1e6);
  console.log(`${name.padEnd(34)} ${path.padEnd(26)} ${ms.toFixed(2).padStart(9)} ms ${gflops.toFixed(2).padStart(7)} GFLOP/s`);
}

function tryTime(name: string, path: string, flops: number, fn: () => Tensor | Tensor[]): void {
  try {
    report(name, path, time(fn), flops);
  } catch (e) {
    console.log(`${name.padEnd(34)} ${path.padEnd(26)}   unavailable: ${(e as Error).message.split('\n')[0].slice(0, 70)}`);
  }
}

interface ConvCase {
  name: string;
  h: number;
  w: number;
  ci: number;
  co: number;
  k: number;
}

// Per Glow level: coupling net conv3x3 C/2 -> 128, conv1x1 128 -> 128, zero-conv3x3 128 -> C; invertible 1x1 C -> C.
const convCases: ConvCase[] = [
  { name: '14x14 3x3 2->128', h: 14, w: 14, ci: 2, co: 128, k: 3 },
  { name: '14x14 1x1 128->128', h: 14, w: 14, ci: 128, co: 128, k: 1 },
  { name: '14x14 3x3 128->4', h: 14, w: 14, ci: 128, co: 4, k: 3 },
  { name: '14x14 3x3 128->128', h: 14, w: 14, ci: 128, co: 128, k: 3 },
  { name: '14x14 1x1 4->4 (invconv)', h: 14, w: 14, ci: 4, co: 4, k: 1 },
  { name: '7x7 3x3 4->128', h: 7, w: 7, ci: 4, co: 128, k: 3 },
  { name: '7x7 1x1 128->128', h: 7, w: 7, ci: 128, co: 128, k: 1 },
  { name: '7x7 3x3 128->8', h: 7, w: 7, ci: 128, co: 8, k: 3 },
  { name: '7x7 3x3 128->128', h: 7, w: 7, ci: 128, co: 128, k: 3 },
  { name: '7x7 1x1 8->8 (invconv)', h: 7, w: 7, ci: 8, co: 8, k: 1 },
];

function benchConv(c: ConvCase, backend: string, rng: Rng): void {
  const { h, w, ci, co, k } = c;
  const b = batch;
  const flops = 2 * b * h * w * k * k * ci * co; // one pass (forward, input grad or filter grad)
  const x = tf.tensor(rng.normalArray(b * h * w * ci), [b, h, w, ci]) as tf.Tensor4D;
  const f = tf.tensor(rng.normalArray(k * k * ci * co, 0.1), [k, k, ci, co]) as tf.Tensor4D;
  const dy = tf.tensor(rng.normalArray(b * h * w * co), [b, h, w, co]) as tf.Tensor4D;
  const x2 = tf.reshape(x, [b * h * w, ci]) as tf.Tensor2D;
  const dy2 = tf.reshape(dy, [b * h * w, co]) as tf.Tensor2D;
  const f2 = (k === 1 ? tf.reshape(f, [ci, co]) : tf.zeros([1, 1])) as tf.Tensor2D;
  const n = `${c.name} [${backend}]`;

  tryTime(n, 'fwd tf.conv2d', flops, () => tf.conv2d(x, f, 1, 'same'));
  if (k === 1) tryTime(n, 'fwd matmul', flops, () => tf.matMul(x2, f2));

  tryTime(n, 'dx native grad', flops, () => tf.grad((t: Tensor) => tf.conv2d(t as tf.Tensor4D, f, 1, 'same'))(x, dy));
  if (k === 1) {
    tryTime(n, 'dx matmul dy·(Wᵀ)', flops, () => tf.tidy(() => tf.matMul(dy2, tf.transpose(f2))));
    tryTime(n, 'dx matmul transposeB', flops, () => tf.matMul(dy2, f2, false, true));
  } else {
    tryTime(n, 'dx flipped conv', flops, () => conv2dInputGrad(dy, f));
  }

  tryTime(n, 'dW native grad', flops, () => tf.grad((t: Tensor) => tf.conv2d(x, t as tf.Tensor4D, 1, 'same'))(f, dy));
  if (k === 1) {
    tryTime(n, 'dW matmul (xᵀ)·dy', flops, () => tf.tidy(() => tf.matMul(tf.transpose(x2), dy2)));
    tryTime(n, 'dW matmul (dyᵀ·x)ᵀ', flops, () => tf.tidy(() => tf.transpose(tf.matMul(tf.transpose(dy2), x2))));
    tryTime(n, 'dW matmul transposeA', flops, () => tf.matMul(x2, dy2, true, false));
  } else {
    tryTime(n, 'dW batch-as-channel conv', flops, () => conv2dFilterGradConv(x, dy, k, k));
    // The identity conv building the patches costs K/Co (of x) or K/C (of dy) of the matmul: skip hopeless shapes.
    const skip = (what: string, ratio: number) =>
      console.log(`${n.padEnd(34)} ${what.padEnd(26)}   skipped: identity conv would cost ${ratio.toFixed(0)}x the matmul`);
    if (k * k * ci <= 4 * co) tryTime(n, 'dW im2col of x', flops, () => conv2dFilterGradIm2col(x, dy, k, k));
    else skip('dW im2col of x', (k * k * ci) / co);
    if (k * k * co <= 4 * ci) tryTime(n, 'dW im2col of dy', flops, () => conv2dFilterGradIm2colDy(x, dy, k, k));
    else skip('dW im2col of dy', (k * k * co) / ci);
  }

  // Whole forward + both gradients through convLayer (zero bias), as training uses it.
  for (const mode of ['on', 'off'] as const) {
    setFastGradients(mode);
    tryTime(n, `fwd+bwd convLayer ${mode === 'on' ? 'fast' : 'native'}`, 3 * flops, () =>
      tf.grads((a: Tensor, bb: Tensor) => tf.sum(tf.mul(conv2d(a, bb), dy)))([x, f]),
    );
  }
  setFastGradients('auto');
  tf.dispose([x, f, dy, x2, dy2, f2]);
}

function benchMatMul(m: number, kk: number, nn: number, backend: string, rng: Rng): void {
  const flops = 2 * m * kk * nn;
  const a = tf.tensor(rng.normalArray(m * kk), [m, kk]) as tf.Tensor2D;
  const b = tf.tensor(rng.normalArray(kk * nn), [kk, nn]) as tf.Tensor2D;
  const dy = tf.tensor(rng.normalArray(m * nn), [m, nn]) as tf.Tensor2D;
  const n = `matMul [${m},${kk}]x[${kk},${nn}] [${backend}]`;
  tryTime(n, 'fwd', flops, () => tf.matMul(a, b));
  for (const mode of ['on', 'off'] as const) {
    setFastGradients(mode);
    tryTime(n, `fwd+bwd ops.matMul ${mode === 'on' ? 'fast' : 'native'}`, 3 * flops, () =>
      tf.grads((p: Tensor, q: Tensor) => tf.sum(tf.mul(matMul(p, q), dy)))([a, b]),
    );
  }
  setFastGradients('auto');
  tf.dispose([a, b, dy]);
}

/** One Glow coupling net, forward + all gradients, as training runs it: conv3x3 C/2->width, ReLU, conv1x1, ReLU, conv3x3 width->C. */
function benchCoupling(h: number, c: number, width: number, backend: string, rng: Rng): void {
  const b = batch;
  const half = c / 2;
  const flops = 3 * 2 * b * h * h * (9 * half * width + width * width + 9 * width * c);
  const x = tf.tensor(rng.normalArray(b * h * h * half), [b, h, h, half]);
  const w1 = tf.variable(tf.tensor(rng.normalArray(9 * half * width, 0.1), [3, 3, half, width]));
  const w2 = tf.variable(tf.tensor(rng.normalArray(width * width, 0.1), [1, 1, width, width]));
  const w3 = tf.variable(tf.tensor(rng.normalArray(9 * width * c, 0.01), [3, 3, width, c]));
  const n = `coupling ${h}x${h}x${c} width ${width} [${backend}]`;
  for (const mode of ['on', 'off'] as const) {
    setFastGradients(mode);
    tryTime(n, `fwd+bwd ${mode === 'on' ? 'fast' : 'native'}`, flops, () => {
      const { value, grads } = tf.variableGrads(() => {
        const hid = tf.relu(conv2d(tf.relu(conv2d(x, w1)), w2));
        return tf.mean(tf.square(conv2d(hid, w3))) as tf.Scalar;
      });
      return [value, ...Object.values(grads)];
    });
  }
  setFastGradients('auto');
  tf.dispose([x, w1, w2, w3]);
}

async function main(): Promise<void> {
  for (const backend of backends) {
    await tf.setBackend(backend);
    const simd = backend === 'wasm' ? ` SIMD=${tf.env().getBool('WASM_HAS_SIMD_SUPPORT')}` : '';
    console.log(`# backend ${backend}${simd}, batch ${batch}`);
    const rng = new Rng(7);
    for (const c of convCases) {
      if (!c.name.includes(only)) continue;
      benchConv(c, backend, rng);
    }
    if ('matMul'.includes(only) || only === '') benchMatMul(batch * 196, 128, 128, backend, rng);
    if ('coupling'.includes(only) || only === '') {
      benchCoupling(14, 4, 128, backend, rng);
      benchCoupling(7, 8, 128, backend, rng);
    }
  }
}

await main();
