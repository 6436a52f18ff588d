// Running a FlowModel layer by layer through its public namedLayers(), so the audit can look at
// every layer on the input it really sees. Between levels the model splits off half the channels;
// the walk recognises a split where the next layer expects fewer channels than it is given and keeps
// the first ones (the model's z1), exactly as FlowModel.encode does. Callers wrap these in tf.tidy.
import { tf, type Tensor } from '../tf.js';
import type { FlowModel } from '../flows/model.js';
import type { Bijector } from '../flows/bijector.js';
import { concatChannels, splitChannels } from '../flows/bijector.js';

export interface WalkLayer {
  name: string;
  bijector: Bijector;
  /** Per-example input shape. */
  inputShape: number[];
}

export function walkLayers(model: FlowModel): WalkLayer[] {
  return model.namedLayers().map(({ name, bijector, inputShape }) => ({ name, bijector, inputShape: [...inputShape] }));
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Channels the layer keeps when h does not have its input shape (a split), or null when h fits as is. */
export function keptChannels(h: Tensor, layer: WalkLayer): number | null {
  const have = h.shape.slice(1);
  const want = layer.inputShape;
  if (sameShape(have, want)) return null;
  const c = want[want.length - 1]!;
  if (have.length === want.length && sameShape(have.slice(0, -1), want.slice(0, -1)) && have[have.length - 1]! > c) return c;
  throw new Error(`audit walk: layer ${layer.name} expects [${want}] but receives [${have}]`);
}

export interface ForwardWalk {
  /** Split-off latents in order, then the top latent: the same list as FlowModel.encode's zs. */
  latents: Tensor[];
  /** Summed forward log|det J|, [B]. */
  logdet: Tensor;
  /** Layer index -> the latent split off just before that layer. */
  splits: Map<number, Tensor>;
}

/**
 * x -> latents through every layer, one tf.tidy per layer so only the activations between layers
 * stay alive. `visit` sees each layer's input and forward result (for per-layer checks) and may
 * return a small tensor to keep (collected in `visited`). Call inside tf.tidy.
 */
export function forwardWalk(
  layers: WalkLayer[],
  x: Tensor,
  visit?: (index: number, input: Tensor, y: Tensor, logdet: Tensor) => Tensor | undefined,
): ForwardWalk & { visited: Tensor[] } {
  let h = x;
  let logdet: Tensor = tf.zeros([x.shape[0]!]);
  const latents: Tensor[] = [];
  const visited: Tensor[] = [];
  const splits = new Map<number, Tensor>();
  layers.forEach((layer, i) => {
    const keep = keptChannels(h, layer);
    if (keep !== null) {
      const [z1, z2] = tf.tidy(() => splitChannels(h, keep));
      latents.push(z2);
      splits.set(i, z2);
      h = z1;
    }
    const input = h;
    const step = tf.tidy(() => {
      const r = layer.bijector.forward(input);
      const kept = visit?.(i, input, r.y, r.logdet);
      return { y: r.y, logdet: tf.add(logdet, r.logdet), ...(kept ? { kept } : {}) };
    });
    if (step.kept) visited.push(step.kept);
    h = step.y;
    logdet = step.logdet;
  });
  latents.push(h);
  return { latents, logdet, splits, visited };
}

/**
 * The chained inverse from a forward walk's latents: the reconstruction and the summed inverse log|det|.
 * `visit` sees, for each layer (last to first), the reconstruction of that layer's input and may return
 * a small tensor to keep (collected in `visited`, in visiting order).
 */
export function inverseWalk(
  layers: WalkLayer[],
  walk: ForwardWalk,
  visit?: (index: number, reconstructedInput: Tensor) => Tensor | undefined,
): { x: Tensor; logdet: Tensor; visited: Tensor[] } {
  let h = walk.latents[walk.latents.length - 1]!;
  let logdet: Tensor = tf.zeros([h.shape[0]!]);
  const visited: Tensor[] = [];
  for (let i = layers.length - 1; i >= 0; i--) {
    const input = h;
    const z2 = walk.splits.get(i);
    const step = tf.tidy(() => {
      const r = layers[i]!.bijector.inverse(input);
      const kept = visit?.(i, r.x);
      return { x: z2 ? concatChannels([r.x, z2]) : r.x, logdet: tf.add(logdet, r.logdet), ...(kept ? { kept } : {}) };
    });
    if (step.kept) visited.push(step.kept);
    h = step.x;
    logdet = step.logdet;
  }
  return { x: h, logdet, visited };
}

/** [B, D]: every latent flattened per example and concatenated (a bijection of the flattened input). */
export function flatLatents(latents: Tensor[]): Tensor {
  const b = latents[0]!.shape[0]!;
  const flat = latents.map((z) => tf.reshape(z, [b, z.size / b]));
  return flat.length === 1 ? flat[0]! : tf.concat(flat, 1);
}
