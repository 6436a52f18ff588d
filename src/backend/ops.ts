// Convolution and matmul entry points used by every layer. Kept here so the backend-specific
// fast paths live in one place.
//
// Why custom gradients: the wasm backend has no Conv2DBackpropFilter kernel (tf.grad through
// tf.conv2d wrt the filter throws), and it runs matmul with transposeA/transposeB as a slow
// scalar loop (~2 GFLOP/s) while plain matmul and forward conv2d are 10-30 GFLOP/s. So on wasm
// (and cpu, where it is also correct and not slower) every gradient here is written with forward
// convs, explicit tf.transpose and untransposed tf.matMul. On tfjs-node (or anything else) the
// native ops and their native gradients are used.
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

/** How the conv filter gradient is computed: a forward conv over batch-as-channels, or im2col + matmul. */
export type FilterGradMethod = 'conv' | 'im2col';
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

/**
 * Filter gradient via im2col: patches [B*H*W, kh*kw*C] (tap-major, channel-minor, matching HWIO)
 * come from one forward conv with an identity filter (on wasm far faster than pad + slices +
 * concat), then dW = patchesᵀ · dy2d, or (dy2dᵀ · patches)ᵀ when dy is the smaller one to transpose.
 * The identity conv costs K/Co of the matmul (K = kh*kw*C), so this suits few input channels.
 */
export function conv2dFilterGradIm2col(x: Tensor, dy: Tensor, kh: number, kw: number): Tensor {
  return tf.tidy(() => {
    const [b, h, w, c] = x.shape as number[];
    const co = dy.shape[3] as number;
    const k = kh * kw * c;
    const identity = tf.reshape(tf.eye(k), [kh, kw, c, k]) as tf.Tensor4D;
    const patches = tf.reshape(tf.conv2d(x as tf.Tensor4D, identity, 1, 'same'), [b * h * w, k]) as tf.Tensor2D;
    const dy2d = tf.reshape(dy, [b * h * w, co]) as tf.Tensor2D;
    const g =
      k <= co
        ? tf.matMul(tf.transpose(patches), dy2d)
        : tf.transpose(tf.matMul(tf.transpose(dy2d), patches));
    return tf.reshape(g, [kh, kw, c, co]);
  });
}

function chooseFilterGradMethod(kh: number, kw: number, c: number, co: number): FilterGradMethod {
  if (filterGradOverride) return filterGradOverride;
  // From scripts/bench-ops.ts on wasm: im2col wins while its identity conv is cheaper than the
  // matmul (K <= Co; e.g. 3x3 2->128: 1.9 vs 11 ms), the batch-as-channel conv wins otherwise
  // (3x3 128->4: 11 ms vs 0.8 s).
  return kh * kw * c <= co ? 'im2col' : 'conv';
}

/** Gradient of a stride-1 'same' conv wrt its HWIO filter. */
export function conv2dFilterGrad(x: Tensor, dy: Tensor, kh: number, kw: number): Tensor {
  return chooseFilterGradMethod(kh, kw, x.shape[3] as number, dy.shape[3] as number) === 'conv'
    ? conv2dFilterGradConv(x, dy, kh, kw)
    : conv2dFilterGradIm2col(x, dy, kh, kw);
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
