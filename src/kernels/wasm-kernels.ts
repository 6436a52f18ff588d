// Replacements for two wasm-backend kernels that training calls thousands of times per step.
//
// Identity: the wasm kernel copies the buffer, and the engine clones (Identity) every tensor a
// gradient saves, so one Glow training step copied ~1600 activations. Tensors are immutable (a
// Variable's assign swaps its dataId), so sharing the buffer by reference count is safe; it is what
// the wasm Reshape kernel and the cpu backend's Identity already do.
//
// Transpose: the wasm kernel walks the output with strided reads, ~10 ms for a [12544,128] matrix
// (longer than the matmul it feeds). A cache-blocked JavaScript loop over the wasm heap does it in a
// quarter of that. Only (batched) 2-D transposes are replaced, which covers every transpose the fast
// gradients make; anything else goes to the original kernel.
//
// Also registers FlowMatMulTN (Aᵀ·B without transposing A or repacking B, src/kernels/wasm-simd.ts).
// Over 350 lines for a reason: every kernel here reads the same private wasm-backend internals (heap, data
// ids), so that coupling stays in one file, checked once against the pinned tfjs version.
import { createRequire } from 'node:module';
import { tf } from '../tf.js';
import { FlowFailure } from '../errors.js';
import { gemm, matMulTransposedA, packB, reluGrad, simdSupported } from './wasm-simd.js';

interface WasmBackendLike {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
  incRef(dataId: unknown): void;
  dataIdMap: { get(dataId: unknown): { memoryOffset: number } };
  disposeData(dataId: unknown, force?: boolean): boolean;
  wasm: { asm?: { memory?: WebAssembly.Memory } };
}

/** Name of the kernel computing [Aᵀ·B; 1ᵀ·B] (see matMulTN in ops.ts). */
export const MATMUL_TN = 'FlowMatMulTN';
/** Name of the kernel computing A·B (+ bias, ReLU), B optionally transposed (see gemm in ops.ts). */
export const GEMM = 'FlowGemm';
/** Name of the kernel doing one Adam/Adamax update of a parameter and its moments (see adamStep in ops.ts). */
export const ADAM = 'FlowAdam';
/** Name of the kernel a * w + b * (1 - w) (a moving average's update, see lerp in ops.ts). */
export const LERP = 'FlowLerp';
/** Name of the kernel computing a ReLU's gradient from its output: dy where y > 0. */
export const RELU_GRAD = 'FlowReluGrad';
/** Name of the kernel gathering a stride-1 'same' conv's patches (im2col). */
export const PATCHES = 'FlowPatches';
/** Name of the kernel summing per-tap channel groups over their taps (col2im). */
export const SUM_TAPS = 'FlowSumTaps';
/** Name of the kernel applying a Glow affine coupling (or its inverse) given its network's output (inference only). */
export const AFFINE_COUPLING = 'FlowAffineCoupling';

let restore: Array<() => void> | null = null;
let simdInstalled = false;

/** Whether the replacement kernels are in place. */
export function wasmKernelsInstalled(): boolean {
  return restore !== null;
}

/**
 * The tfjs release these kernels were written against: they read private fields of its wasm backend
 * (dataIdMap, typedArrayFromHeap, wasm.asm.memory), which another release may lay out differently.
 */
export const PINNED_TFJS = '4.22.0';

/** tfjs-core's version and the wasm backend's (null when the wasm package is not installed). */
export function installedTfjsVersions(): { core: string; wasm: string | null } {
  let wasm: string | null = null;
  try {
    wasm = (createRequire(import.meta.url)('@tensorflow/tfjs-backend-wasm') as { version_wasm?: string }).version_wasm ?? null;
  } catch {
    /* not installed: only core is checked */
  }
  return { core: tf.version_core, wasm };
}

/** A FlowFailure (one line) unless tfjs-core and the wasm backend are the pinned release. */
export function assertPinnedTfjs(v: { core: string; wasm: string | null }): void {
  const wrong = [['@tensorflow/tfjs-core', v.core] as const, ['@tensorflow/tfjs-backend-wasm', v.wasm] as const].filter(([, ver]) => ver !== null && ver !== PINNED_TFJS);
  if (!wrong.length) return;
  throw new FlowFailure(
    `${wrong.map(([pkg, ver]) => `${pkg} is ${ver}`).join(' and ')}, but flow's wasm kernels read private fields of the tfjs ${PINNED_TFJS} wasm backend; ` +
      `expected ${PINNED_TFJS} as package.json pins it (run npm ci), or use --backend cpu`,
  );
}

/** Installs the faster Identity and Transpose kernels for the wasm backend (idempotent). */
export function installWasmKernels(): void {
  if (restore) return;
  const identity = tf.getKernel('Identity', 'wasm');
  const transpose = tf.getKernel('Transpose', 'wasm');
  if (!identity || !transpose) return; // the wasm backend is not loaded (yet)
  assertPinnedTfjs(installedTfjsVersions());
  const originalIdentity = identity.kernelFunc;
  const originalTranspose = transpose.kernelFunc;
  restore = [() => replace(identity, originalIdentity), () => replace(transpose, originalTranspose)];
  replace(identity, (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    if (x.dtype === 'string') return originalIdentity(args);
    (args.backend as unknown as WasmBackendLike).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  });
  replace(transpose, (args) => fastTranspose(args) ?? originalTranspose(args));
  if (!simdSupported()) return; // no WebAssembly SIMD: the Flow* kernels stay off (ops.ts falls back)
  simdInstalled = true;
  if (!tf.getKernel(MATMUL_TN, 'wasm')) tf.registerKernel({ kernelName: MATMUL_TN, backendName: 'wasm', kernelFunc: matMulTN });
  if (!tf.getKernel(GEMM, 'wasm')) tf.registerKernel({ kernelName: GEMM, backendName: 'wasm', kernelFunc: gemmKernel });
  if (!tf.getKernel(PATCHES, 'wasm')) tf.registerKernel({ kernelName: PATCHES, backendName: 'wasm', kernelFunc: patchesKernel });
  if (!tf.getKernel(SUM_TAPS, 'wasm')) tf.registerKernel({ kernelName: SUM_TAPS, backendName: 'wasm', kernelFunc: sumTapsKernel });
  if (!tf.getKernel(RELU_GRAD, 'wasm')) tf.registerKernel({ kernelName: RELU_GRAD, backendName: 'wasm', kernelFunc: reluGradKernel });
  if (!tf.getKernel(ADAM, 'wasm')) tf.registerKernel({ kernelName: ADAM, backendName: 'wasm', kernelFunc: adamKernel });
  if (!tf.getKernel(AFFINE_COUPLING, 'wasm')) tf.registerKernel({ kernelName: AFFINE_COUPLING, backendName: 'wasm', kernelFunc: affineCouplingKernel });
  if (!tf.getKernel(LERP, 'wasm')) tf.registerKernel({ kernelName: LERP, backendName: 'wasm', kernelFunc: lerpKernel });
  for (const k of [MATMUL_TN, GEMM, PATCHES, SUM_TAPS, RELU_GRAD, ADAM, AFFINE_COUPLING, LERP]) restore.push(() => tf.unregisterKernel(k, 'wasm'));
}

/**
 * One Adam (or Adamax) step over a parameter, elementwise, in the float32 arithmetic of the same
 * update written as tf ops (every product, sum, quotient and root rounded to float32 in the same
 * order), so it reproduces src/train/optimizer.ts bit for bit: inputs param, m, v, g; outputs
 * [param', m', v'].
 */
function adamKernel(args: Parameters<tf.KernelFunc>[0]): tf.TensorInfo[] {
  const { param, m, v, g } = args.inputs as Record<'param' | 'm' | 'v' | 'g', tf.TensorInfo>;
  const a = args.attrs as { lr: number; beta1: number; beta2: number; eps: number; t: number; adamax: boolean };
  const backend = args.backend as unknown as WasmBackendLike;
  const outs = [param, m, v].map((t) => backend.makeOutput(t.shape, 'float32'));
  const [pv, mv, vv, gv] = [param, m, v, g].map((t) => backend.typedArrayFromHeap(t) as Float32Array);
  const [po, mo, vo] = outs.map((t) => backend.typedArrayFromHeap(t) as Float32Array);
  const f = Math.fround;
  const b1 = f(a.beta1);
  const c1 = f(1 - a.beta1);
  const b2 = f(a.beta2);
  const c2 = f(1 - a.beta2);
  const bc1 = f(1 - Math.pow(a.beta1, a.t));
  const bc2 = f(1 - Math.pow(a.beta2, a.t));
  const eps = f(a.eps);
  const lr = f(a.lr);
  for (let i = 0; i < pv!.length; i++) {
    const gi = gv![i]!;
    const mi = f(f(mv![i]! * b1) + f(gi * c1));
    const mHat = f(mi / bc1);
    let step: number;
    let vi: number;
    if (a.adamax) {
      vi = Math.max(f(vv![i]! * b2), Math.abs(gi));
      step = f(mHat / f(vi + eps));
    } else {
      vi = f(f(vv![i]! * b2) + f(f(gi * gi) * c2));
      step = f(mHat / f(f(Math.sqrt(f(vi / bc2))) + eps));
    }
    mo![i] = mi;
    vo![i] = vi;
    po![i] = f(pv![i]! - f(step * lr));
  }
  return outs;
}

/**
 * Glow's affine coupling in one pass: x [B, ..., C] and the network output h [B, ..., 2 nb] with
 * interleaved heads (shift = h[..., 0::2], raw = h[..., 1::2]), nb = C - splitAt. Channels below
 * splitAt pass through; log scale = log(floor + (1 - floor) sigmoid(raw + 2)) (log sigmoid computed
 * stably when floor = 0); forward y_b = (x_b + shift) scale, inverse x_b = y_b / scale - shift.
 * Outputs [y, logdet [B]] with logdet = ±Σ log scale per example. Replaces ~12 kernels per coupling
 * (channel splits, heads, softplus, exp, products, concat, sum) when no gradient is being recorded.
 */
function affineCouplingKernel(args: Parameters<tf.KernelFunc>[0]): tf.TensorInfo[] {
  const { x, h } = args.inputs as { x: tf.TensorInfo; h: tf.TensorInfo };
  const { splitAt, floor, inverse } = args.attrs as { splitAt: number; floor: number; inverse: boolean };
  const backend = args.backend as unknown as WasmBackendLike;
  const c = x.shape[x.shape.length - 1]!;
  const nb = c - splitAt;
  const b = x.shape[0]!;
  const rows = x.shape.reduce((p, d) => p * d, 1) / c;
  const perExample = rows / b;
  const out = backend.makeOutput(x.shape.slice(), 'float32');
  const logdet = backend.makeOutput([b], 'float32');
  const xv = backend.typedArrayFromHeap(x) as Float32Array;
  const hv = backend.typedArrayFromHeap(h) as Float32Array;
  const yv = backend.typedArrayFromHeap(out) as Float32Array;
  const lv = backend.typedArrayFromHeap(logdet) as Float32Array;
  // One exp per element: with e = exp(-z), sigmoid(z) = 1 / (1 + e) and the inverse divides by it as
  // y * (1 + e). The log-determinant takes one log per run of scales: their product is accumulated
  // (in float64) and logged before it could underflow.
  const keep = floor === 0;
  for (let ex = 0; ex < b; ex++) {
    let logSum = 0;
    let prod = 1;
    for (let r = ex * perExample; r < (ex + 1) * perExample; r++) {
      const xo = r * c;
      const ho = r * 2 * nb;
      for (let j = 0; j < splitAt; j++) yv[xo + j] = xv[xo + j]!;
      for (let j = 0; j < nb; j++) {
        const shift = hv[ho + 2 * j]!;
        const z = hv[ho + 2 * j + 1]! + 2;
        const e = Math.exp(-z);
        const scale = keep ? 1 / (1 + e) : floor + (1 - floor) / (1 + e);
        const v = xv[xo + splitAt + j]!;
        yv[xo + splitAt + j] = inverse ? (keep ? v * (1 + e) : v / scale) - shift : (v + shift) * scale;
        if (keep && z < -80) {
          logSum += z - Math.log1p(Math.exp(z)); // the scale itself may underflow to 0: log sigmoid directly
          continue;
        }
        prod *= scale;
        if (prod < 1e-200) {
          logSum += Math.log(prod);
          prod = 1;
        }
      }
    }
    logSum += Math.log(prod);
    lv[ex] = inverse ? -logSum : logSum;
  }
  return [out, logdet];
}

/** a * w + b * (1 - w), elementwise, rounded as the same two tf.mul and one tf.add (bit for bit). */
function lerpKernel(args: Parameters<tf.KernelFunc>[0]): tf.TensorInfo {
  const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const { w } = args.attrs as { w: number };
  const backend = args.backend as unknown as WasmBackendLike;
  const out = backend.makeOutput(a.shape.slice(), 'float32');
  const av = backend.typedArrayFromHeap(a) as Float32Array;
  const bv = backend.typedArrayFromHeap(b) as Float32Array;
  const ov = backend.typedArrayFromHeap(out) as Float32Array;
  const f = Math.fround;
  const wa = f(w);
  const wb = f(1 - w);
  for (let i = 0; i < ov.length; i++) ov[i] = f(f(av[i]! * wa) + f(bv[i]! * wb));
  return out;
}

/** dy, y (same shape) -> dy where y > 0, else 0. */
function reluGradKernel(args: Parameters<tf.KernelFunc>[0]): tf.TensorInfo {
  const { dy, y } = args.inputs as { dy: tf.TensorInfo; y: tf.TensorInfo };
  const backend = args.backend as unknown as WasmBackendLike;
  const out = backend.makeOutput(dy.shape, 'float32');
  const offset = (t: tf.TensorInfo) => backend.dataIdMap.get(t.dataId).memoryOffset;
  reluGrad(wasmMemory(backend, RELU_GRAD), offset(dy), offset(y), offset(out), tf.util.sizeFromShape(dy.shape));
  return out;
}

// The two im2col-style kernels below move a few floats per tap: a JS loop over the heap beats the
// backend's identity-filter convs (which multiply by 0/1 matrices at a fraction of their rate for
// 2-4 channels) by 2-5x.

/**
 * x [B, H, W, C] -> patches [B*H*W, kh*kw*C] of a stride-1 'same' conv (TF padding: floor((k-1)/2)
 * before): P[(b, y, x), (a, d, c)] = x[b, y + a - pt, x + d - pl, c], 0 outside.
 */
function patchesKernel(args: Parameters<tf.KernelFunc>[0]): tf.TensorInfo {
  const { x } = args.inputs as { x: tf.TensorInfo };
  const { kh, kw } = args.attrs as { kh: number; kw: number };
  const backend = args.backend as unknown as WasmBackendLike;
  const [b, h, w, c] = x.shape as [number, number, number, number];
  const k = kh * kw * c;
  const out = backend.makeOutput([b * h * w, k], 'float32');
  const src = backend.typedArrayFromHeap(x) as Float32Array;
  const dst = backend.typedArrayFromHeap(out) as Float32Array;
  dst.fill(0);
  const pt = Math.floor((kh - 1) / 2);
  const pl = Math.floor((kw - 1) / 2);
  for (let n = 0; n < b; n++) {
    for (let y = 0; y < h; y++) {
      for (let a = 0; a < kh; a++) {
        const yy = y + a - pt;
        if (yy < 0 || yy >= h) continue;
        for (let d = 0; d < kw; d++) {
          // Output pixels x whose source column x + d - pl lies inside the image.
          const x0 = Math.max(0, pl - d);
          const x1 = Math.min(w, w + pl - d);
          let i = ((n * h + yy) * w + x0 + d - pl) * c;
          let j = ((n * h + y) * w + x0) * k + (a * kw + d) * c;
          for (let xx = x0; xx < x1; xx++, i += c, j += k) {
            for (let ch = 0; ch < c; ch++) dst[j + ch] = src[i + ch]!;
          }
        }
      }
    }
  }
  return out;
}

/**
 * z [B, H, W, K] with K >= kh*kw*C channels grouped per tap -> y [B, H, W, C]:
 * y[q, o] = bias[o] + Σ_taps z[q + (a - p, d - p), tap(a, d) * C + o] (odd kernels, 'same'), where
 * tap(a, d) = a*kw + d, or (kh-1-a)*kw + (kw-1-d) with attrs.flip (a conv's input gradient); then ReLU
 * when attrs.relu.
 */
function sumTapsKernel(args: Parameters<tf.KernelFunc>[0]): tf.TensorInfo {
  const { z, bias } = args.inputs as { z: tf.TensorInfo; bias?: tf.TensorInfo };
  const { kh, kw, c, flip, relu } = args.attrs as { kh: number; kw: number; c: number; flip?: boolean; relu?: boolean };
  const backend = args.backend as unknown as WasmBackendLike;
  const [b, h, w, k] = z.shape as [number, number, number, number];
  const out = backend.makeOutput([b, h, w, c], 'float32');
  const src = backend.typedArrayFromHeap(z) as Float32Array;
  const dst = backend.typedArrayFromHeap(out) as Float32Array;
  if (bias) {
    const bv = backend.typedArrayFromHeap(bias) as Float32Array;
    for (let i = 0; i < dst.length; i += c) dst.set(bv, i);
  } else dst.fill(0);
  const pt = (kh - 1) / 2;
  const pl = (kw - 1) / 2;
  if (c % 4 === 0) {
    // Pixel by pixel, four channels at a time held in locals: one write per output value.
    for (let n = 0; n < b; n++) {
      for (let y = 0; y < h; y++) {
        const a0 = Math.max(0, pt - y);
        const a1 = Math.min(kh, h + pt - y);
        for (let x = 0; x < w; x++) {
          const d0 = Math.max(0, pl - x);
          const d1 = Math.min(kw, w + pl - x);
          const to = ((n * h + y) * w + x) * c;
          for (let g = 0; g < c; g += 4) {
            let s0 = dst[to + g]!;
            let s1 = dst[to + g + 1]!;
            let s2 = dst[to + g + 2]!;
            let s3 = dst[to + g + 3]!;
            for (let a = a0; a < a1; a++) {
              const row = ((n * h + y + a - pt) * w + x - pl) * k;
              for (let d = d0; d < d1; d++) {
                const tap = flip ? (kh - 1 - a) * kw + (kw - 1 - d) : a * kw + d;
                const i = row + d * k + tap * c + g;
                s0 += src[i]!;
                s1 += src[i + 1]!;
                s2 += src[i + 2]!;
                s3 += src[i + 3]!;
              }
            }
            dst[to + g] = relu && s0 < 0 ? 0 : s0;
            dst[to + g + 1] = relu && s1 < 0 ? 0 : s1;
            dst[to + g + 2] = relu && s2 < 0 ? 0 : s2;
            dst[to + g + 3] = relu && s3 < 0 ? 0 : s3;
          }
        }
      }
    }
    return out;
  }
  // Tap by tap: every output row adds one shifted, strided run of z (contiguous loops for the JIT). The
  // loop nest is patchesKernel's, written out again: shared through a per-run callback, both kernels ran
  // 1.5x slower (V8 does not inline the closure), ~9 ms per training step.
  for (let n = 0; n < b; n++) {
    for (let y = 0; y < h; y++) {
      for (let a = 0; a < kh; a++) {
        const yy = y + a - pt;
        if (yy < 0 || yy >= h) continue;
        for (let d = 0; d < kw; d++) {
          const tap = flip ? (kh - 1 - a) * kw + (kw - 1 - d) : a * kw + d;
          const x0 = Math.max(0, pl - d);
          const x1 = Math.min(w, w + pl - d);
          let i = ((n * h + yy) * w + x0 + d - pl) * k + tap * c;
          let j = ((n * h + y) * w + x0) * c;
          for (let xx = x0; xx < x1; xx++, i += k, j += c) {
            for (let o = 0; o < c; o++) dst[j + o] += src[i + o]!;
          }
        }
      }
    }
  }
  if (relu) for (let i = 0; i < dst.length; i++) if (dst[i]! < 0) dst[i] = 0;
  return out;
}

function wasmMemory(backend: WasmBackendLike, kernel: string): WebAssembly.Memory {
  const memory = backend.wasm.asm?.memory;
  if (!memory) throw new Error(`${kernel}: the wasm backend's memory is not reachable`);
  return memory;
}

/**
 * a [R, K] · b ([K, N], or [N, K] with attrs.transposeB) + bias [N] (optional), then ReLU when
 * attrs.relu. N % 4 == 0.
 */
function gemmKernel(args: Parameters<tf.KernelFunc>[0]): tf.TensorInfo {
  const { a, b, bias } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo; bias?: tf.TensorInfo };
  const { transposeB, relu } = args.attrs as { transposeB?: boolean; relu?: boolean };
  const backend = args.backend as unknown as WasmBackendLike;
  const [r, k] = a.shape as [number, number];
  const n = (transposeB ? b.shape[0] : b.shape[1])!;
  if (a.shape.length !== 2 || b.shape.length !== 2 || (transposeB ? b.shape[1] : b.shape[0]) !== k || n % 4 !== 0 || (bias && bias.shape[0] !== n)) {
    throw new Error(`${GEMM}: expected [R,K] x [K,N] (N % 4 == 0) and bias [N], got [${a.shape}] x [${b.shape}]${transposeB ? ' transposed' : ''}`);
  }
  const memory = wasmMemory(backend, GEMM);
  const out = backend.makeOutput([r, n], 'float32');
  // Scratch for the packed B and the bias, freed before returning.
  const scratch = backend.makeOutput([k * n + n], 'float32');
  const offset = (t: tf.TensorInfo) => backend.dataIdMap.get(t.dataId).memoryOffset;
  const packed = new Float32Array(memory.buffer, offset(scratch), k * n + n);
  packB(backend.typedArrayFromHeap(b) as Float32Array, k, n, Boolean(transposeB), packed);
  if (bias) packed.set(backend.typedArrayFromHeap(bias) as Float32Array, k * n);
  else packed.fill(0, k * n);
  gemm(memory, offset(a), offset(scratch), offset(out), r, k, n, offset(scratch) + k * n * 4, Boolean(relu));
  backend.disposeData(scratch.dataId, true);
  return out;
}

/** Whether the Flow* kernels (and the replacements) run on the current backend: wasm with them installed. */
export function wasmKernelsActive(): boolean {
  return simdInstalled && tf.getBackend() === 'wasm';
}

/** a [R, M], b [R, N] (N % 4 == 0) -> [M, N] = aᵀ·b, plus a last row of b's column sums when attrs.withSums. */
function matMulTN(args: Parameters<tf.KernelFunc>[0]): tf.TensorInfo {
  const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const withSums = Boolean((args.attrs as { withSums?: boolean }).withSums);
  const backend = args.backend as unknown as WasmBackendLike;
  const [r, m] = a.shape as [number, number];
  const n = b.shape[1]!;
  if (a.shape.length !== 2 || b.shape.length !== 2 || b.shape[0] !== r || n % 4 !== 0 || a.dtype !== 'float32' || b.dtype !== 'float32') {
    throw new Error(`${MATMUL_TN}: expected float32 [R,M] and [R,N] with N % 4 == 0, got [${a.shape}] and [${b.shape}]`);
  }
  const memory = wasmMemory(backend, MATMUL_TN);
  const out = backend.makeOutput([m + (withSums ? 1 : 0), n], 'float32');
  const offset = (t: tf.TensorInfo) => backend.dataIdMap.get(t.dataId).memoryOffset;
  matMulTransposedA(memory, offset(a), offset(b), offset(out), r, m, n, withSums);
  return out;
}

/** Puts the original wasm kernels back (for A/B measurements and tests). */
export function uninstallWasmKernels(): void {
  for (const r of restore ?? []) r();
  restore = null;
  simdInstalled = false;
}

function replace(config: tf.KernelConfig, kernelFunc: tf.KernelFunc): void {
  // The registry hands out the config object itself and the engine reads kernelFunc per call.
  (config as { kernelFunc: tf.KernelFunc }).kernelFunc = kernelFunc;
}

/**
 * Collapses the permutation: drops size-1 axes and merges runs of input axes that stay adjacent and
 * in order in the output. Returns the reduced input shape and permutation.
 */
export function collapsePermutation(shape: readonly number[], perm: readonly number[]): { shape: number[]; perm: number[] } {
  const kept = shape.map((_, i) => i).filter((i) => shape[i] !== 1);
  const rename = new Map(kept.map((a, i) => [a, i]));
  const dims = kept.map((a) => shape[a]!);
  const q = perm.filter((a) => shape[a] !== 1).map((a) => rename.get(a)!);
  const groups: number[][] = [];
  for (const a of q) {
    const last = groups[groups.length - 1];
    if (last && last[last.length - 1] === a - 1) last.push(a);
    else groups.push([a]);
  }
  const byInput = [...groups].sort((g, h) => g[0]! - h[0]!);
  return {
    shape: byInput.map((g) => g.reduce((n, a) => n * dims[a]!, 1)),
    perm: groups.map((g) => byInput.indexOf(g)),
  };
}

const BLOCK = 64;

function fastTranspose(args: Parameters<tf.KernelFunc>[0]): tf.TensorInfo | null {
  const x = args.inputs.x as tf.TensorInfo;
  const perm = (args.attrs as { perm: number[] }).perm;
  if (x.dtype !== 'float32' && x.dtype !== 'int32') return null;
  const { shape, perm: p } = collapsePermutation(x.shape, perm);
  let batch: number, rows: number, cols: number;
  if (p.length === 2 && p[0] === 1) [batch, rows, cols] = [1, shape[0]!, shape[1]!];
  else if (p.length === 3 && p[0] === 0 && p[1] === 2) [batch, rows, cols] = [shape[0]!, shape[1]!, shape[2]!];
  else return null;
  const backend = args.backend as unknown as WasmBackendLike;
  const outShape = perm.map((a) => x.shape[a]!);
  const out = backend.makeOutput(outShape, x.dtype);
  // Views only after makeOutput: allocating may grow (and detach) the wasm heap.
  const src = backend.typedArrayFromHeap(x);
  const dst = backend.typedArrayFromHeap(out);
  const plane = rows * cols;
  for (let b = 0; b < batch; b++) {
    const base = b * plane;
    for (let i0 = 0; i0 < rows; i0 += BLOCK) {
      const i1 = Math.min(i0 + BLOCK, rows);
      for (let j0 = 0; j0 < cols; j0 += BLOCK) {
        const j1 = Math.min(j0 + BLOCK, cols);
        for (let i = i0; i < i1; i++) {
          const from = base + i * cols;
          for (let j = j0; j < j1; j++) dst[base + j * rows + i] = src[from + j]!;
        }
      }
    }
  }
  return out;
}
