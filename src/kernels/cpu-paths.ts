// Convolution and matmul entry points used by every layer. Kept here so the backend-specific
// fast paths live in one place.
//
// Why custom gradients: the wasm backend has no Conv2DBackpropFilter kernel (tf.grad through
// tf.conv2d wrt the filter throws), and it runs matmul with transposeA/transposeB as a slow
// scalar loop (~3 GFLOP/s) while plain matmul and forward conv2d are 20-45 GFLOP/s. So on wasm
// every gradient here is written with forward convs, explicit tf.transpose and untransposed
// tf.matMul. The cpu backend gets the same paths: its Conv2DBackpropFilter runs at 0.02 GFLOP/s
// (a Glow coupling net's forward + backward: 8.4 s native vs 0.42 s here), and for matmul the two
// are equal. On tfjs-node (or anything else) the native ops and their native gradients are used.
// Numbers: scripts/bench-ops.ts.
//
// On wasm the heavy products go further, to kernels of our own (src/kernels/wasm-kernels.ts,
// wasm-simd.ts): gemm (A·B + bias, ReLU; B transposed for free) and matMulTN (Aᵀ·B plus column sums,
// every weight and bias gradient in one pass without transposing or repacking). The layers
// (convLayer, denseLayer) fuse bias and ReLU with hand-written gradients around them.
// `scripts/bench --profile N` prints where a training step's time goes.
// Over 350 lines for a reason: each fast path sits beside the gradient it must equal and the measurement
// that chose it (chooseFilterGradMethod, useConvFewOutputs); apart, every choice would point into other files.
import { tf, type Tensor } from '../tf.js';
import { installWasmKernels, wasmKernelsActive, MATMUL_TN, GEMM, PATCHES, SUM_TAPS, RELU_GRAD, ADAM, AFFINE_COUPLING, LERP } from './wasm-kernels.js';
import { forceStockOps, type Activation, type AdamOptions } from './ops.js';
import { adamStepByOps, lerpByOps } from './stock.js';

export type FastGradMode = 'auto' | 'on' | 'off';
let fastGradMode: FastGradMode = 'auto';

/** Forces the fast-gradient paths on or off ('auto': on for wasm and cpu). For tests and the bench. */
export function setFastGradients(mode: FastGradMode): void {
  fastGradMode = mode;
  forceStockOps(mode === 'off');
}

/** Whether convLayer/denseLayer/matMul currently use the custom-gradient paths. */
export function fastGradientsActive(): boolean {
  const backend = tf.getBackend();
  if (backend === 'wasm') installWasmKernels();
  if (fastGradMode !== 'auto') return fastGradMode === 'on';
  return backend === 'wasm' || backend === 'cpu';
}

/** How the conv filter gradient is computed: a forward conv over batch-as-channels, or im2col + matmul
 *  with the patches (built by an identity-filter conv) of x or of dy. */
export type FilterGradMethod = 'conv' | 'im2col' | 'im2col-dy';
let filterGradOverride: FilterGradMethod | null = null;

/** Forces one filter-gradient method (null: choose per shape). For tests and the bench. */
export function setFilterGradMethod(method: FilterGradMethod | null): void {
  filterGradOverride = method;
}

/** TF 'same' padding for stride 1: k-1 in total, the odd one at the end. */
function samePads(k: number): [number, number] {
  const before = Math.floor((k - 1) / 2);
  return [before, k - 1 - before];
}

/**
 * aᵀ·b for a [R, M] and b [R, N] (R large: a reduction over pixels), and with withSums one more row,
 * 1ᵀ·b (b's column sums). On wasm one pass of FlowMatMulTN (src/kernels/wasm-simd.ts) reads both
 * in place; elsewhere transpose(a) (plus a ones row) times b.
 */
export function matMulTN(a: Tensor, b: Tensor, withSums = false): Tensor {
  if (wasmKernelsActive() && (b.shape[1] as number) % 4 === 0) {
    return tf.engine().runKernel(MATMUL_TN, { a, b }, { withSums }) as Tensor;
  }
  return tf.tidy(() => {
    const at = tf.transpose(a as tf.Tensor2D);
    const lhs = withSums ? tf.concat([at, tf.ones([1, a.shape[0] as number])], 0) : at;
    return tf.matMul(lhs as tf.Tensor2D, b as tf.Tensor2D);
  });
}

/**
 * a [R, K] · b ([K, N], or [N, K] when transposeB) + bias, then ReLU: on wasm one FlowGemm call
 * (src/kernels/wasm-simd.ts; B packed on the fly, so the transpose is free); elsewhere tf ops.
 */
export function gemm(a: Tensor, b: Tensor, opts: { bias?: Tensor; relu?: boolean; transposeB?: boolean } = {}): Tensor {
  const n = (opts.transposeB ? b.shape[0] : b.shape[1]) as number;
  if (wasmKernelsActive() && n % 4 === 0) {
    const inputs: tf.NamedTensorMap = opts.bias ? { a, b, bias: opts.bias } : { a, b };
    return tf.engine().runKernel(GEMM, inputs, { transposeB: Boolean(opts.transposeB), relu: Boolean(opts.relu) }) as Tensor;
  }
  return tf.tidy(() => {
    let y: Tensor = tf.matMul(a as tf.Tensor2D, (opts.transposeB ? tf.transpose(b) : b) as tf.Tensor2D);
    if (opts.bias) y = tf.add(y, opts.bias);
    return opts.relu ? tf.relu(y) : y;
  });
}

function checkConvShapes(x: Tensor, filter: Tensor): void {
  if (x.rank !== 4 || filter.rank !== 4) {
    throw new Error(`conv2d: expected NHWC input and HWIO filter (rank 4), got ranks ${x.rank} and ${filter.rank}`);
  }
  if (x.shape[3] !== filter.shape[2]) {
    throw new Error(`conv2d: input has ${x.shape[3]} channels but filter expects ${filter.shape[2]} ([${filter.shape}])`);
  }
}

// ---------------------------------------------------------------------------------------------
// matMul

function matMulBackward(a: Tensor, b: Tensor, dy: Tensor): [Tensor, Tensor] {
  const [m, k] = a.shape as [number, number];
  const n = b.shape[1] as number;
  // dA = dy · Bᵀ; Bᵀ is [n, k] and usually small (weights).
  const da = gemm(dy, b, { transposeB: true });
  // dB = Aᵀ · dy. Either transpose A ([m,k]) or compute (dyᵀ · A)ᵀ, transposing dy ([m,n]) and the
  // [n,k] result: pick whichever moves fewer elements.
  const db = wasmKernelsActive() && n % 4 === 0
    ? matMulTN(a, dy)
    : m * k <= m * n + n * k
      ? tf.matMul(tf.transpose(a as tf.Tensor2D), dy as tf.Tensor2D)
      : tf.transpose(tf.matMul(tf.transpose(dy as tf.Tensor2D), a as tf.Tensor2D));
  return [da, db];
}

// tf.customGrad's typings take a variadic (...args: Tensor[]) function, hence the casts.
type CustomGradFn = Parameters<typeof tf.customGrad>[0];
const fastMatMul = tf.customGrad(((a: Tensor, b: Tensor, save: tf.GradSaveFunc) => {
  save([a, b]);
  return {
    value: gemm(a, b),
    gradFunc: (dy: Tensor, saved: Tensor[]) => matMulBackward(saved[0], saved[1], dy),
  };
}) as unknown as CustomGradFn) as unknown as (a: Tensor, b: Tensor) => Tensor;

/** Plain [m,k] x [k,n] matmul. */
export function matMul(a: Tensor, b: Tensor): Tensor {
  if (a.rank !== 2 || b.rank !== 2 || a.shape[1] !== b.shape[0]) {
    throw new Error(`matMul: expected [m,k] x [k,n], got [${a.shape}] x [${b.shape}]`);
  }
  if (!fastGradientsActive()) return tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D);
  return fastMatMul(a, b);
}

// ---------------------------------------------------------------------------------------------
// conv2d

/** The filter of a conv's input gradient: taps flipped, in/out channels swapped ([kh,kw,Co,Ci]); built in JS (filters are small). */
function flippedFilter(filter: Tensor): Tensor {
  const [kh, kw, ci, co] = filter.shape as number[];
  const f = filter.dataSync() as Float32Array;
  const out = new Float32Array(f.length);
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const src = (i * kw + j) * ci * co;
      const dst = ((kh - 1 - i) * kw + (kw - 1 - j)) * co * ci;
      for (let c = 0; c < ci; c++) for (let o = 0; o < co; o++) out[dst + o * ci + c] = f[src + c * co + o]!;
    }
  }
  return tf.tensor4d(out, [kh, kw, co, ci]);
}

const constantCache = new Map<string, Float32Array>();
/** A cached constant's values (the tensor is made per call: tensors must not outlive a tidy). */
function cachedValues(key: string, make: () => Float32Array): Float32Array {
  let v = constantCache.get(key);
  if (!v) {
    v = make();
    constantCache.set(key, v);
  }
  return v;
}

/**
 * The col2im filter for an odd kh x kw kernel over c channels: a conv with it sums, at every pixel q,
 * Z[q - (i - ph), q - (j - pw), (i, j, c)] over the taps: [kh, kw, kh*kw*c, c] with a single 1 per tap.
 */
function col2imFilter(kh: number, kw: number, c: number, k = kh * kw * c): Tensor {
  // k >= kh*kw*c: input channels past kh*kw*c are padding (zero rows).
  const values = cachedValues(`col2im:${kh}x${kw}x${c}:${k}`, () => {
    const f = new Float32Array(kh * kw * k * c);
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        const tap = ((kh - 1 - i) * kw + (kw - 1 - j)) * k;
        for (let ch = 0; ch < c; ch++) f[(tap + (i * kw + j) * c + ch) * c + ch] = 1;
      }
    }
    return f;
  });
  return tf.tensor4d(values, [kh, kw, k, c]);
}

/** Whether the input gradient goes through one matmul plus a small col2im conv (see conv2dInputGrad). */
function inputGradByCol2im(kh: number, kw: number, ci: number, co: number): boolean {
  return kh % 2 === 1 && kw % 2 === 1 && ci <= 4 && kh * kw * ci <= co;
}

/**
 * Gradient of a stride-1 'same' conv wrt its input. Usually a forward conv of dy with the flipped,
 * io-swapped filter. For few input channels (a coupling net's first conv, 3x3 2->128) that conv has
 * 2 output channels and runs at a third of the matmul rate on wasm, so instead: Z = dy · Wᵀ (one
 * [N, Co] x [Co, kh*kw*Ci] matmul), then dx[q] = Σ_taps Z[q - tap offset, tap] as a conv with a 0/1
 * filter (wasm, 3x3 2->128, batch 64 at 14x14: 4.3 vs 6.0 ms).
 */
export function conv2dInputGrad(dy: Tensor, filter: Tensor): Tensor {
  return tf.tidy(() => {
    const [kh, kw, ci, co] = filter.shape as number[];
    if (inputGradByCol2im(kh, kw, ci, co)) {
      const [b, h, w] = dy.shape as number[];
      const k = kh * kw * ci;
      // Z's width padded to a multiple of 4 (the SIMD gemm's granularity) with zero filter rows.
      const kp = wasmKernelsActive() ? Math.ceil(k / 4) * 4 : k;
      let wr = tf.reshape(filter, [k, co]);
      if (kp > k) wr = tf.concat([wr, tf.zeros([kp - k, co])], 0);
      const z = tf.reshape(gemm(tf.reshape(dy, [b * h * w, co]), wr, { transposeB: true }), [b, h, w, kp]);
      if (wasmKernelsActive()) return tf.engine().runKernel(SUM_TAPS, { z }, { kh, kw, c: ci, flip: true }) as Tensor;
      return tf.conv2d(z as tf.Tensor4D, col2imFilter(kh, kw, ci, kp) as tf.Tensor4D, 1, 'same');
    }
    const flipped = flippedFilter(filter) as tf.Tensor4D;
    if (kh % 2 === 1 && kw % 2 === 1) return tf.conv2d(dy as tf.Tensor4D, flipped, 1, 'same');
    // Even kernels: 'same' put the extra pad at the end, so the transpose puts it at the start.
    const [hb, ha] = samePads(kh);
    const [wb, wa] = samePads(kw);
    const padded = tf.pad(dy as tf.Tensor4D, [[0, 0], [ha, hb], [wa, wb], [0, 0]]);
    return tf.conv2d(padded, flipped, 1, 'valid');
  });
}

/**
 * Filter gradient as one forward conv: the batch becomes the channel axis being summed over.
 * x [B,H,W,C] -> padded [C,Hp,Wp,B] is the "input", dy [B,H,W,Co] -> [H,W,B,Co] is the "filter";
 * a 'valid' conv gives [C,kh,kw,Co] -> [kh,kw,C,Co].
 */
export function conv2dFilterGradConv(x: Tensor, dy: Tensor, kh: number, kw: number): Tensor {
  return tf.tidy(() => {
    const [hb, ha] = samePads(kh);
    const [wb, wa] = samePads(kw);
    const xT = tf.transpose(x, [3, 1, 2, 0]) as tf.Tensor4D;
    const xPad = hb + ha + wb + wa > 0 ? tf.pad(xT, [[0, 0], [hb, ha], [wb, wa], [0, 0]]) : xT;
    const dyT = tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D;
    const g = tf.conv2d(xPad, dyT, 1, 'valid');
    return tf.transpose(g, [1, 2, 0, 3]);
  });
}

/** im2col patches [B*H*W, kh*kw*C] of a stride-1 'same' conv, tap-major and channel-minor (matching HWIO). */
function patchesByIdentityConv(x: Tensor, kh: number, kw: number): tf.Tensor2D {
  // One forward conv with an identity filter: far faster than pad + slices + concat (wasm 3x3 2->128:
  // 1.1 vs 8 ms), but it costs K/Co of the gradient matmul (K = kh*kw*C): only for few channels.
  const [b, h, w, c] = x.shape as number[];
  const k = kh * kw * c;
  if (wasmKernelsActive()) return tf.engine().runKernel(PATCHES, { x }, { kh, kw }) as tf.Tensor2D;
  const eye = cachedValues(`eye:${k}`, () => {
    const m = new Float32Array(k * k);
    for (let i = 0; i < k; i++) m[i * k + i] = 1;
    return m;
  });
  const identity = tf.tensor4d(eye, [kh, kw, c, k]);
  return tf.reshape(tf.conv2d(x as tf.Tensor4D, identity, 1, 'same'), [b * h * w, k]) as tf.Tensor2D;
}

/**
 * Filter gradient via im2col: dW = patchesᵀ · dy2d, or (dy2dᵀ · patches)ᵀ when dy is the smaller
 * one to transpose (the [K, Co] result is tiny either way).
 */
export function conv2dFilterGradIm2col(x: Tensor, dy: Tensor, kh: number, kw: number): Tensor {
  return tf.tidy(() => {
    const c = x.shape[3] as number;
    const co = dy.shape[3] as number;
    const patches = patchesByIdentityConv(x, kh, kw);
    const dy2d = tf.reshape(dy, [patches.shape[0], co]) as tf.Tensor2D;
    const g = wasmKernelsActive() && co % 4 === 0
      ? matMulTN(patches, dy2d)
      : kh * kw * c <= co
        ? tf.matMul(tf.transpose(patches), dy2d)
        : tf.transpose(tf.matMul(tf.transpose(dy2d), patches));
    return tf.reshape(g, [kh, kw, c, co]);
  });
}

/**
 * Filter gradient via im2col of dy instead of x, for few output channels (the zero-init output conv
 * of a coupling net): dW[a,b,c,o] = Σ x[n,p,q,c] · dy[n, p-a+ph, q-b+pw, o], and the shifted dy
 * taps are exactly the patches of a 'same' identity conv over dy at the flipped tap (k-1-a, k-1-b).
 * So G = patches(dy)ᵀ · x2d is [kh*kw*Co, C]: flip its taps and swap to HWIO. Odd kernels only
 * (the flip needs symmetric 'same' padding); even ones fall back to the conv form.
 */
export function conv2dFilterGradIm2colDy(x: Tensor, dy: Tensor, kh: number, kw: number): Tensor {
  if (kh % 2 === 0 || kw % 2 === 0) return conv2dFilterGradConv(x, dy, kh, kw);
  return tf.tidy(() => filterGradFromDyPatches(x, patchesByIdentityConv(dy, kh, kw), kh, kw, dy.shape[3] as number));
}

/** dW from the patches of dy ([N, kh*kw*Co], see conv2dFilterGradIm2colDy). */
function filterGradFromDyPatches(x: Tensor, patches: Tensor, kh: number, kw: number, co: number): Tensor {
  const c = x.shape[3] as number;
  const x2d = tf.reshape(x, [patches.shape[0] as number, c]) as tf.Tensor2D;
  const g = wasmKernelsActive() && c % 4 === 0
    ? matMulTN(patches, x2d)
    : kh * kw * co <= c
      ? tf.matMul(tf.transpose(patches as tf.Tensor2D), x2d)
      : tf.transpose(tf.matMul(tf.transpose(x2d), patches as tf.Tensor2D));
  // G [(a, b, o), c] -> dW[kh-1-a, kw-1-b, c, o]: a flip and a swap of a small tensor, done in JS.
  const v = g.dataSync() as Float32Array;
  const out = new Float32Array(v.length);
  for (let a = 0; a < kh; a++) {
    for (let b = 0; b < kw; b++) {
      const src = (a * kw + b) * co * c;
      const dst = ((kh - 1 - a) * kw + (kw - 1 - b)) * c * co;
      for (let o = 0; o < co; o++) for (let ch = 0; ch < c; ch++) out[dst + ch * co + o] = v[src + o * c + ch]!;
    }
  }
  return tf.tensor4d(out, [kh, kw, c, co]);
}

function chooseFilterGradMethod(kh: number, kw: number, c: number, co: number): FilterGradMethod {
  if (filterGradOverride) return filterGradOverride;
  // From scripts/bench-ops.ts (Glow on Fashion-MNIST shapes, batch 64, wasm): im2col of x wins while
  // its identity conv is cheaper than the matmul (kh*kw*C <= Co; 3x3 2->128: 2.3 vs 15 ms), im2col of
  // dy likewise when kh*kw*Co <= C (3x3 128->4: 4.4 vs 12 ms), the batch-as-channel conv otherwise.
  // The cpu backend ranks them the same way.
  if (kh * kw * c <= co) return 'im2col';
  if (kh * kw * co <= c && kh % 2 === 1 && kw % 2 === 1) return 'im2col-dy';
  return 'conv';
}

// ---------------------------------------------------------------------------------------------
// Layers: act(conv(x) + bias) and act(x·W + bias) as single ops with hand-written gradients.
//
// Why: as separate ops each layer cost a bias add, a ReLU and their gradients on [B*H*W, width]
// activations, and the bias gradient was ones[1,N] · dy, whose [N, Co] right operand wasm's matmul
// repacks on every call (~4.7 ms per 64x14x14x128 dy: 16 of them were 9% of a Glow step). Here the
// bias gradient rides along with the weight gradient: [Xᵀ; 1ᵀ] · dy gives dW and db in one matmul.

export type { Activation, AdamOptions };

function activate(y: Tensor, activation: Activation): Tensor {
  return activation === 'relu' ? tf.relu(y) : y;
}

/** dy masked by the activation's derivative at the saved output (ReLU: y > 0). */
function activationGrad(dy: Tensor, y: Tensor | undefined): Tensor {
  if (!y) return dy;
  if (wasmKernelsActive() && dy.dtype === 'float32') return tf.engine().runKernel(RELU_GRAD, { dy, y }) as Tensor;
  return tf.mul(dy, tf.step(y));
}

// tf.fused.* refuses to fuse a ReLU while a gradient tape is recording (it has no gradient for the
// fused form) and falls back to three kernels. Inside a customGrad forward the tape is off and the
// gradient is ours, so the fused kernels are called directly.
// The kernel takes batched [1, N, K] x [1, K, Co] operands, as tf.fused.matMul passes them.
function fusedMatMul(x: Tensor, w: Tensor, bias: Tensor, activation: Activation): Tensor {
  if (wasmKernelsActive() && (w.shape[1] as number) % 4 === 0) return gemm(x, w, { bias, relu: activation === 'relu' });
  const [n, k] = x.shape as number[];
  const co = w.shape[1] as number;
  const inputs = { a: tf.reshape(x, [1, n, k]), b: tf.reshape(w, [1, k, co]), bias };
  const y = tf.engine().runKernel('_FusedMatMul', inputs, { transposeA: false, transposeB: false, activation }) as Tensor;
  const y2d = tf.reshape(y, [n, co]);
  tf.dispose([inputs.a, inputs.b, y]);
  return y2d;
}

function fusedConv2d(x: Tensor, filter: Tensor, bias: Tensor, activation: Activation): Tensor {
  const attrs = { strides: [1, 1], pad: 'same', dataFormat: 'NHWC', dilations: [1, 1], activation };
  return tf.engine().runKernel('FusedConv2D', { x, filter, bias }, attrs as unknown as tf.NamedAttrMap) as Tensor;
}

/** [dW, db] of y = x·W + b from x [N, Cin] and g = dL/dy [N, Co], as one matmul [xᵀ; 1ᵀ] · g. */
function denseParamGrads(x2d: Tensor, g2d: Tensor): [Tensor, Tensor] {
  const cin = x2d.shape[1] as number;
  const co = g2d.shape[1] as number;
  const full = matMulTN(x2d, g2d, true);
  return [tf.slice(full, [0, 0], [cin, co]), tf.reshape(tf.slice(full, [cin, 0], [1, co]), [co])];
}

function makeDenseLayer(activation: Activation) {
  return tf.customGrad(((x: Tensor, w: Tensor, bias: Tensor, save: tf.GradSaveFunc) => {
    const y = fusedMatMul(x, w, bias, activation);
    save(activation === 'relu' ? [x, w, y] : [x, w]);
    return {
      value: y,
      gradFunc: (dy: Tensor, saved: Tensor[]) => {
        const [xs, ws, ys] = saved as [Tensor, Tensor, Tensor | undefined];
        const g = activationGrad(dy, ys);
        const dx = gemm(g, ws, { transposeB: true });
        return [dx, ...denseParamGrads(xs, g)];
      },
    };
  }) as unknown as CustomGradFn) as unknown as (x: Tensor, w: Tensor, bias: Tensor) => Tensor;
}

/** [dW, db] of a stride-1 'same' conv with bias; dW by the method chooseFilterGradMethod picks. */
function convParamGrads(x: Tensor, g: Tensor, kh: number, kw: number): [Tensor, Tensor] {
  const [b, h, w, c] = x.shape as number[];
  const co = g.shape[3] as number;
  const n = b * h * w;
  const method = chooseFilterGradMethod(kh, kw, c, co);
  if (method === 'im2col') {
    const [dw, db] = denseParamGrads(patchesByIdentityConv(x, kh, kw), tf.reshape(g, [n, co]));
    return [tf.reshape(dw, [kh, kw, c, co]), db];
  }
  // Few output channels: ones · g2d packs only a small [N, Co] operand.
  const db = tf.reshape(tf.matMul(tf.ones([1, n]), tf.reshape(g, [n, co]) as tf.Tensor2D), [co]);
  const dw = method === 'im2col-dy' ? conv2dFilterGradIm2colDy(x, g, kh, kw) : conv2dFilterGradConv(x, g, kh, kw);
  return [dw, db];
}

/**
 * [dx, dW, db] of a 'same' conv with few output channels (a zero-init output conv, 3x3 128->4) and an
 * odd kernel from one im2col of g: P = patches(g) [N, kh*kw*Co] gives dW = flip(Pᵀ·x) and also
 * dx = P · flipped filter ([kh*kw*Co, Ci]), a matmul instead of a conv with 4 input channels
 * (wasm, 64x14x14: 2.4 vs 4.5 ms).
 */
function convBackwardByDyPatches(x: Tensor, g: Tensor, filter: Tensor): Tensor[] {
  const [kh, kw, ci, co] = filter.shape as number[];
  const [b, h, w] = x.shape as number[];
  const n = b * h * w;
  const patches = patchesByIdentityConv(g, kh, kw);
  const dx = tf.reshape(gemm(patches, tf.reshape(flippedFilter(filter), [kh * kw * co, ci])), x.shape);
  const dw = filterGradFromDyPatches(x, patches, kh, kw, co);
  const db = tf.reshape(tf.matMul(tf.ones([1, n]), tf.reshape(g, [n, co]) as tf.Tensor2D), [co]);
  return [dx, dw, db];
}

/**
 * Forward of a conv with at most 4 output channels and an odd kernel (a coupling net's zero-init
 * output conv, 3x3 128->4), as Z = x · Wr ([Ci, kh*kw*Co], the SIMD gemm) and a col2im conv that sums
 * the taps: y[q, o] = Σ_taps Z[q + tap offset, (tap, o)] + bias. wasm, 64x14x14: 4.2 vs 5.8 ms
 * (the backend's conv runs 4-channel outputs at half its rate).
 */
function convFewOutputs(x: Tensor, filter: Tensor, bias: Tensor, activation: Activation): Tensor {
  const [kh, kw, ci, co] = filter.shape as number[];
  const [b, h, w] = x.shape as number[];
  const k = kh * kw * co;
  const kp = Math.ceil(k / 4) * 4;
  const f = filter.dataSync() as Float32Array;
  const wr = new Float32Array(ci * kp);
  for (let t = 0; t < kh * kw; t++) for (let c = 0; c < ci; c++) for (let o = 0; o < co; o++) wr[c * kp + t * co + o] = f[(t * ci + c) * co + o]!;
  const values = cachedValues(`sum-taps:${kh}x${kw}x${co}:${kp}`, () => {
    const m = new Float32Array(kh * kw * kp * co);
    for (let t = 0; t < kh * kw; t++) for (let o = 0; o < co; o++) m[(t * kp + t * co + o) * co + o] = 1;
    return m;
  });
  const z = tf.reshape(gemm(tf.reshape(x, [b * h * w, ci]), tf.tensor2d(wr, [ci, kp])), [b, h, w, kp]);
  if (wasmKernelsActive()) return tf.engine().runKernel(SUM_TAPS, { z, bias }, { kh, kw, c: co, relu: activation === 'relu' }) as Tensor;
  return fusedConv2d(z, tf.tensor4d(values, [kh, kw, kp, co]), bias, activation);
}

function useConvFewOutputs(kh: number, kw: number, ci: number, co: number): boolean {
  return wasmKernelsActive() && co <= 8 && kh * kw * co <= ci && kh % 2 === 1 && kw % 2 === 1;
}

function makeConvLayer(activation: Activation) {
  return tf.customGrad(((x: Tensor, filter: Tensor, bias: Tensor, save: tf.GradSaveFunc) => {
    const [kh, kw, ci, co] = filter.shape as number[];
    const y = useConvFewOutputs(kh, kw, ci, co) ? tf.tidy(() => convFewOutputs(x, filter, bias, activation)) : fusedConv2d(x, filter, bias, activation);
    save(activation === 'relu' ? [x, filter, y] : [x, filter]);
    return {
      value: y,
      gradFunc: (dy: Tensor, saved: Tensor[]) => {
        const [xs, f, ys] = saved as [Tensor, Tensor, Tensor | undefined];
        const g = activationGrad(dy, ys);
        const [kh, kw, ci, co] = f.shape as number[];
        if (chooseFilterGradMethod(kh, kw, ci, co) === 'im2col-dy' && kh % 2 === 1 && kw % 2 === 1) return convBackwardByDyPatches(xs, g, f);
        return [conv2dInputGrad(g, f), ...convParamGrads(xs, g, kh, kw)];
      },
    };
  }) as unknown as CustomGradFn) as unknown as (x: Tensor, filter: Tensor, bias: Tensor) => Tensor;
}

const denseLayers = { linear: makeDenseLayer('linear'), relu: makeDenseLayer('relu') };
const convLayers = { linear: makeConvLayer('linear'), relu: makeConvLayer('relu') };

function checkBias(bias: Tensor, co: number, what: string): void {
  if (bias.rank !== 1 || bias.shape[0] !== co) throw new Error(`${what}: bias must be [${co}], got [${bias.shape}]`);
}

/** act(x·W + bias) for x [N, Cin], W [Cin, Co], bias [Co]. */
export function denseLayer(x: Tensor, w: Tensor, bias: Tensor, activation: Activation = 'linear'): Tensor {
  if (x.rank !== 2 || w.rank !== 2 || x.shape[1] !== w.shape[0]) {
    throw new Error(`denseLayer: expected [N,Cin] x [Cin,Co], got [${x.shape}] x [${w.shape}]`);
  }
  checkBias(bias, w.shape[1] as number, 'denseLayer');
  if (!fastGradientsActive()) return activate(tf.add(tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D), bias), activation);
  return denseLayers[activation](x, w, bias);
}

/** act(conv(x, filter) + bias): stride-1 'same' conv, NHWC input, HWIO filter; 1x1 filters run as a dense layer. */
export function convLayer(x: Tensor, filter: Tensor, bias: Tensor, activation: Activation = 'linear'): Tensor {
  checkConvShapes(x, filter);
  const co = filter.shape[3] as number;
  checkBias(bias, co, 'convLayer');
  if (!fastGradientsActive()) return activate(tf.add(tf.conv2d(x as tf.Tensor4D, filter as tf.Tensor4D, 1, 'same'), bias), activation);
  if (filter.shape[0] === 1 && filter.shape[1] === 1) {
    const [b, h, w, c] = x.shape as number[];
    return tf.tidy(() => tf.reshape(denseLayers[activation](tf.reshape(x, [b * h * w, c]), tf.reshape(filter, [c, co]), bias), [b, h, w, co]));
  }
  return convLayers[activation](x, filter, bias);
}

/** Whether the engine is recording a gradient tape (inside tf.grad / variableGrads). */
function recordingGradients(): boolean {
  return (tf.engine() as unknown as { state: { gradientDepth: number } }).state.gradientDepth > 0;
}

/**
 * Whether affineCouplingFused can run: on wasm (with its SIMD kernels) and while no gradient is being
 * recorded (the fused kernel has none), i.e. in eval and sampling.
 */
export function fusedCouplingAvailable(): boolean {
  return fastGradientsActive() && wasmKernelsActive() && !recordingGradients();
}

/**
 * Glow's affine coupling in one fused wasm kernel (see fusedCouplingAvailable): x [B, ..., C], h the
 * coupling network's output with interleaved (shift, raw scale) heads for the C - splitAt transformed
 * channels. Returns y (x on the inverse) and the per-example log-determinant [B].
 */
export function affineCouplingFused(x: Tensor, h: Tensor, splitAt: number, floor: number, inverse: boolean): { y: Tensor; logdet: Tensor } {
  if (!fusedCouplingAvailable()) throw new Error('affineCouplingFused: needs the wasm kernels and no gradient tape');
  const [y, logdet] = tf.engine().runKernel(AFFINE_COUPLING, { x, h }, { splitAt, floor, inverse }) as unknown as [Tensor, Tensor];
  return { y: y!, logdet: logdet! };
}

// ---------------------------------------------------------------------------------------------
// Optimizer step

/**
 * One Adam/Adamax update: returns new [param, m, v] (the caller assigns and disposes them). Exactly
 * the tf-op update (adamStepByOps), bit for bit; on wasm one kernel call (FlowAdam) instead of ~15, which with
 * ~200 parameter tensors is most of an optimizer step's cost.
 */
export function adamStep(param: Tensor, m: Tensor, v: Tensor, g: Tensor, o: AdamOptions): [Tensor, Tensor, Tensor] {
  fastGradientsActive(); // installs the wasm kernels when on wasm
  if (wasmKernelsActive() && [param, m, v, g].every((t) => t.dtype === 'float32')) {
    return tf.engine().runKernel(ADAM, { param, m, v, g }, { ...o }) as unknown as [Tensor, Tensor, Tensor];
  }
  return adamStepByOps(param, m, v, g, o);
}

/** a * w + b * (1 - w) (float32 a and b of one shape): one kernel on wasm, the same values as these tf ops elsewhere. */
export function lerp(a: Tensor, b: Tensor, w: number): Tensor {
  fastGradientsActive(); // installs the wasm kernels when on wasm
  if (wasmKernelsActive() && a.dtype === 'float32' && b.dtype === 'float32') return tf.engine().runKernel(LERP, { a, b }, { w }) as Tensor;
  return lerpByOps(a, b, w);
}
