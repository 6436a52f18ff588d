// The audit's view of a FlowModel's layers. The model walks itself layer by layer (FlowModel.walkForward
// and walkInverse, from its multi-scale structure: the splits are where the model says they are); this
// module lists the layers and flattens latents.
import { tf, type Tensor } from '../tf.js';
import type { FlowModel } from '../flows/model.js';
import type { LayerInfo } from '../flows/multiscale.js';

export type WalkLayer = LayerInfo;

/** The model's layers in order, each with its index, full dotted name and per-example input shape. */
export function walkLayers(model: FlowModel): WalkLayer[] {
  return model.namedLayers().map((l) => ({ ...l, inputShape: [...l.inputShape] }));
}

/** [B, D]: every latent flattened per example and concatenated (a bijection of the flattened input). */
export function flatLatents(latents: Tensor[]): Tensor {
  const b = latents[0]!.shape[0]!;
  const flat = latents.map((z) => tf.reshape(z, [b, z.size / b]));
  return flat.length === 1 ? flat[0]! : tf.concat(flat, 1);
}
