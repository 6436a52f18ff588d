// Picking data images of a trained run for the image views (reconstruct, interpolate).
import type { Config } from '../config/schema.js';
import type { ModelMeta } from '../io/model-io.js';
import { loadDataset } from '../data/index.js';
import { toModelInput, toPixels } from '../data/preprocess.js';
import { UserError } from '../errors.js';

export interface RunImages {
  /** Model-space inputs at bin centres (no dequantisation noise), back to back. */
  x: Float32Array;
  /** The same images as 8-bit pixels after n_bits reduction: what a perfect round trip gives back. */
  pixels: Uint8Array;
  labels?: Int32Array;
  shape: [number, number, number];
  datasetName: string;
}

/** The listed examples of the run's data split (`what` names the command for error messages). */
export async function loadRunImages(config: Config, meta: ModelMeta, runDir: string, split: string, indices: number[], what: string): Promise<RunImages> {
  if (meta.dataKind !== 'image') throw new UserError(`${runDir}: '${what}' works on images; this run models ${meta.dataShape[0]}-d vectors (use 'flow plot density')`);
  if (split !== 'test' && split !== 'train') throw new UserError(`--split ${split}: expected test or train`);
  const data = await loadDataset(config.data, { seed: config.seed });
  if (data.shape.join('x') !== meta.dataShape.join('x')) {
    throw new UserError(`${runDir}: the data now has shape [${data.shape}] but the model was trained on [${meta.dataShape}]`);
  }
  const s = split === 'test' ? data.test : data.train;
  for (const i of indices) {
    if (!Number.isInteger(i) || i < 0 || i >= s.n) throw new UserError(`example ${i}: the ${split} split of ${data.name} has examples 0..${s.n - 1}`);
  }
  const dims = data.shape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(indices.length * dims);
  const src = s.x as Uint8Array;
  indices.forEach((i, j) => x.set(toModelInput(src.subarray(i * dims, (i + 1) * dims), config.data.n_bits, null), j * dims));
  const labels = s.labels ? Int32Array.from(indices, (i) => s.labels![i]!) : undefined;
  return { x, pixels: toPixels(x, config.data.n_bits), ...(labels ? { labels } : {}), shape: data.shape as [number, number, number], datasetName: data.name };
}
