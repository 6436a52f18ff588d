// Reconstructions x -> decode(encode(x)) with every split latent kept: an exact flow gives back its
// input, so the picture is a visual invertibility check, and the layout puts each original right
// above its reconstruction.
import { tf, type Tensor } from '../tf.js';
import type { FlowModel } from '../flows/model.js';
import type { ImageBatch } from '../io/png.js';

/** decode(encode(x).zs) for a batch of model-space inputs [B, ...inputShape]. */
export function reconstruct(model: FlowModel, x: Tensor, labels?: Tensor): Tensor {
  const enc = model.encode(x, labels);
  try {
    return model.decode(enc.zs, labels);
  } finally {
    tf.dispose([...enc.zs, enc.logdet, enc.logpz]);
  }
}

/**
 * The images arranged for tile(batch, cols): bands of `cols` originals, each band directly above the
 * band of their reconstructions. A short last band is padded with black cells so columns stay aligned.
 */
export function originalsAboveReconstructions(originals: Uint8Array, reconstructions: Uint8Array, n: number, height: number, width: number, channels: number, cols: number): ImageBatch {
  const size = height * width * channels;
  if (originals.length !== n * size || reconstructions.length !== n * size) throw new Error(`expected ${n} images of ${size} values in each set`);
  const bands = Math.ceil(n / cols);
  const pixels = new Uint8Array(bands * 2 * cols * size);
  for (let band = 0; band < bands; band++) {
    for (let k = 0; k < cols; k++) {
      const i = band * cols + k;
      if (i >= n) break;
      pixels.set(originals.subarray(i * size, (i + 1) * size), (band * 2 * cols + k) * size);
      pixels.set(reconstructions.subarray(i * size, (i + 1) * size), ((band * 2 + 1) * cols + k) * size);
    }
  }
  return { pixels, n: bands * 2 * cols, height, width, channels };
}

/** max |a - b| and how many entries differ (e.g. pixels changed by a round trip). */
export function compareArrays(a: ArrayLike<number>, b: ArrayLike<number>): { maxAbs: number; changed: number } {
  if (a.length !== b.length) throw new Error(`compare: lengths ${a.length} and ${b.length} differ`);
  let maxAbs = 0;
  let changed = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (Number.isNaN(d)) maxAbs = Infinity;
    else if (d > maxAbs) maxAbs = d;
    if (a[i] !== b[i]) changed++;
  }
  return { maxAbs, changed };
}
