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
import { tf, type Tensor } from '../tf.js';
import './gradients.js';

export type FastGradMode = 'auto' | 'on' | 'off';
let fastGradMode: FastGradMode = 'auto';

/** Forces the fast-gradient paths on or off ('auto': on for wasm and cpu). For tests and the bench. */
export function setFastGradients(mode: FastGradMode): void {
  fastGradMode = mode;
}

/** Whether conv2d/matMul currently use the custom-gradient paths. */
export function fastGradientsActive(): boolean {
  if (fastGradMode !== 'auto') return fastGradMode === 'on';
  const backend = tf.getBackend();
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
  const da = tf.matMul(dy as tf.Tensor2D, tf.transpose(b as tf.Tensor2D));
  // dB = Aᵀ · dy. Either transpose A ([m,k]) or compute (dyᵀ · A)ᵀ, transposing dy ([m,n]) and the
  // [n,k] result: pick whichever moves fewer elements.
  const db =
    m * k <= m * n + n * k
      ? tf.matMul(tf.transpose(a as tf.Tensor2D), dy as tf.Tensor2D)
      : tf.transpose(tf.matMul(tf.transpose(dy as tf.Tensor2D), a as tf.Tensor2D));
  return [da, db];
}

// tf.customGrad's typings take a variadic (...args: Tensor[]) function, hence the casts.
type CustomGradFn = Parameters<typeof tf.customGrad>[0];
const fastMatMul = tf.customGrad(((a: Tensor, b: Tensor, save: tf.GradSaveFunc) => {
  save([a, b]);
  return {
    value: tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D),
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

/** Gradient of a stride-1 'same' conv wrt its input: a forward conv of dy with the flipped, io-swapped filter. */
export function conv2dInputGrad(dy: Tensor, filter: Tensor): Tensor {
  return tf.tidy(() => {
    const [kh, kw] = filter.shape as number[];
    const flipped = tf.transpose(tf.reverse(filter, [0, 1]), [0, 1, 3, 2]) as tf.Tensor4D;
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
  const identity = tf.reshape(tf.eye(k), [kh, kw, c, k]) as tf.Tensor4D;
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
    const g =
      kh * kw * c <= co
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
  return tf.tidy(() => {
    const c = x.shape[3] as number;
    const co = dy.shape[3] as number;
    const patches = patchesByIdentityConv(dy, kh, kw); // [B*H*W, kh*kw*Co]
    const x2d = tf.reshape(x, [patches.shape[0], c]) as tf.Tensor2D;
    const g =
      kh * kw * co <= c
        ? tf.matMul(tf.transpose(patches), x2d)
        : tf.transpose(tf.matMul(tf.transpose(x2d), patches));
    return tf.transpose(tf.reverse(tf.reshape(g, [kh, kw, co, c]), [0, 1]), [0, 1, 3, 2]);
  });
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

/** Gradient of a stride-1 'same' conv wrt its HWIO filter. */
export function conv2dFilterGrad(x: Tensor, dy: Tensor, kh: number, kw: number): Tensor {
  switch (chooseFilterGradMethod(kh, kw, x.shape[3] as number, dy.shape[3] as number)) {
    case 'conv':
      return conv2dFilterGradConv(x, dy, kh, kw);
    case 'im2col':
      return conv2dFilterGradIm2col(x, dy, kh, kw);
    case 'im2col-dy':
      return conv2dFilterGradIm2colDy(x, dy, kh, kw);
  }
}

const fastConv2d = tf.customGrad(((x: Tensor, filter: Tensor, save: tf.GradSaveFunc) => {
  save([x, filter]);
  return {
    value: tf.conv2d(x as tf.Tensor4D, filter as tf.Tensor4D, 1, 'same'),
    gradFunc: (dy: Tensor, saved: Tensor[]) => {
      const [xs, f] = saved;
      return [conv2dInputGrad(dy, f), conv2dFilterGrad(xs, dy, f.shape[0] as number, f.shape[1] as number)];
    },
  };
}) as unknown as CustomGradFn) as unknown as (x: Tensor, filter: Tensor) => Tensor;

/**
 * 1x1 conv as a matmul over pixels: x [B,H,W,C], w [C,Co] or [1,1,C,Co] -> [B,H,W,Co].
 * Its gradients go through matMul's fast path.
 */
export function conv1x1(x: Tensor, w: Tensor): Tensor {
  const [b, h, wd, c] = x.shape as number[];
  const co = w.shape[w.rank - 1] as number;
  if (x.rank !== 4 || (w.rank !== 2 && w.rank !== 4) || (w.rank === 4 && (w.shape[0] !== 1 || w.shape[1] !== 1))) {
    throw new Error(`conv1x1: expected NHWC input and a [C,Co] or [1,1,C,Co] filter, got [${x.shape}] and [${w.shape}]`);
  }
  if (w.shape[w.rank - 2] !== c) {
    throw new Error(`conv1x1: input has ${c} channels but filter expects ${w.shape[w.rank - 2]} ([${w.shape}])`);
  }
  return tf.tidy(() => {
    const w2d = w.rank === 2 ? w : tf.reshape(w, [c, co]);
    return tf.reshape(matMul(tf.reshape(x, [b * h * wd, c]), w2d), [b, h, wd, co]);
  });
}

/** Stride-1 'same' 2-D convolution, NHWC input, HWIO filter. */
export function conv2d(x: Tensor, filter: Tensor): Tensor {
  checkConvShapes(x, filter);
  if (!fastGradientsActive()) return tf.conv2d(x as tf.Tensor4D, filter as tf.Tensor4D, 1, 'same');
  if (filter.shape[0] === 1 && filter.shape[1] === 1) return conv1x1(x, filter);
  return fastConv2d(x, filter);
}
