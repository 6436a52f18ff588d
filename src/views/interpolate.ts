// Interpolation between two inputs through the latents of every level. Linear mixes the latents;
// spherical moves along the great circle between their directions (slerp) while the norm changes
// linearly, which keeps intermediate latents at a typical radius of the Gaussian prior instead of
// pulling them towards its (atypical) centre. t = 0 and t = 1 are the two inputs' latents exactly, so
// the strip's ends are the model's reconstructions of the two inputs.
import { tf, type Tensor } from '../tf.js';
import type { FlowModel } from '../flows/model.js';

export type InterpolationMode = 'linear' | 'spherical';

/** `steps` evenly spaced t in [0, 1], both ends included. */
export function interpolationTimes(steps: number): number[] {
  if (!Number.isInteger(steps) || steps < 2) throw new Error(`interpolation needs at least 2 steps, got ${steps}`);
  return Array.from({ length: steps }, (_, i) => i / (steps - 1));
}

function norm(v: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
  return Math.sqrt(s);
}

/** The point at t between a and b (float64 arithmetic, exact copies at t = 0 and 1). */
export function interpolateVectors(a: Float32Array, b: Float32Array, t: number, mode: InterpolationMode): Float32Array {
  if (a.length !== b.length) throw new Error(`interpolate: vectors of length ${a.length} and ${b.length}`);
  if (t === 0) return a.slice();
  if (t === 1) return b.slice();
  const out = new Float32Array(a.length);
  const na = norm(a);
  const nb = norm(b);
  let omega = 0;
  if (mode === 'spherical' && na > 0 && nb > 0) {
    let dot = 0;
    for (let i = 0; i < a.length; i++) dot += a[i]! * b[i]!;
    omega = Math.acos(Math.min(1, Math.max(-1, dot / (na * nb))));
  }
  // Nearly parallel directions (or linear mode): slerp degenerates to lerp.
  if (omega < 1e-6) {
    for (let i = 0; i < a.length; i++) out[i] = (1 - t) * a[i]! + t * b[i]!;
    return out;
  }
  const s = Math.sin(omega);
  const wa = Math.sin((1 - t) * omega) / s / na;
  const wb = Math.sin(t * omega) / s / nb;
  const radius = (1 - t) * na + t * nb;
  for (let i = 0; i < a.length; i++) out[i] = radius * (wa * a[i]! + wb * b[i]!);
  return out;
}

/**
 * Decoded inputs along the path from x[0] to x[1] ([2, ...inputShape] model-space inputs): [steps, ...inputShape].
 * Every level's latent is interpolated on its own (each is a separate Gaussian of its own size).
 */
export async function interpolate(model: FlowModel, pair: Tensor, steps: number, mode: InterpolationMode, labels?: Tensor): Promise<Tensor> {
  if (pair.shape[0] !== 2) throw new Error(`interpolate needs a pair of inputs [2, ...], got [${pair.shape}]`);
  const times = interpolationTimes(steps);
  const enc = model.encode(pair, labels);
  const shapes = model.latentShapes();
  const levels = (await Promise.all(enc.zs.map((z) => z.data()))) as Float32Array[];
  tf.dispose([...enc.zs, enc.logdet, enc.logpz]);
  const zs = levels.map((flat, l) => {
    const size = flat.length / 2;
    const a = flat.subarray(0, size);
    const b = flat.subarray(size);
    const path = new Float32Array(steps * size);
    times.forEach((t, k) => path.set(interpolateVectors(a, b, t, mode), k * size));
    return tf.tensor(path, [steps, ...shapes[l]!]);
  });
  try {
    return model.decode(zs);
  } finally {
    tf.dispose(zs);
  }
}
