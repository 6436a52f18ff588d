// What training measures and draws along the way: the test loss (at evals and checkpoints) and the
// sample grids of <run>/samples/.
import fs from 'node:fs';
import path from 'node:path';
import { tf } from '../tf.js';
import type { Config } from '../config/schema.js';
import type { Dataset } from '../data/index.js';
import { toPixels } from '../data/preprocess.js';
import type { FlowModel } from '../flows/model.js';
import type { ModelMeta } from '../io/model-io.js';
import { writeGrid } from '../io/png.js';
import { perExampleLogProb, bitsPerDim, meanAndStderr } from '../eval/bpd.js';
import { Rng } from '../rng.js';

/** Mean test loss over the first eval_examples test examples (fixed, seeded noise), or null without a test split. */
export async function evaluateTest(model: FlowModel, data: Dataset, cfg: Config): Promise<number | null> {
  if (data.test.n === 0) return null;
  const n = cfg.train.eval_examples > 0 ? Math.min(cfg.train.eval_examples, data.test.n) : data.test.n;
  const indices = Array.from({ length: n }, (_, i) => i);
  const dims = data.shape.reduce((a, b) => a * b, 1);
  const logp = await perExampleLogProb(model, data.test, data.shape, data.kind, { nBits: cfg.data.n_bits, seed: cfg.seed, batchSize: Math.max(cfg.train.batch_size, 64), indices, dequantize: cfg.data.dequantize === 'uniform' });
  const values = data.kind === 'image' ? logp.map((l) => bitsPerDim(l, dims, 2 ** cfg.data.n_bits)) : logp.map((l) => -l / dims);
  return meanAndStderr(values).mean;
}

/** A grid of n samples (fixed noise, so grids of successive steps compare), captioned with the run and step. */
export async function writeSampleGrid(model: FlowModel, cfg: Config, meta: ModelMeta, file: string, n = cfg.train.sample_grid, step?: number): Promise<void> {
  const rng = new Rng(cfg.seed + 4);
  const labels = meta.numClasses ? tf.tensor1d(Array.from({ length: n }, (_, i) => i % meta.numClasses!), 'int32') : undefined;
  const x = model.sample(n, cfg.sample.temperature, rng, labels);
  const values = (await x.data()) as Float32Array;
  x.dispose();
  labels?.dispose();
  const [h, w, c] = meta.dataShape as [number, number, number];
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const caption = [`run ${cfg.name}`, ...(step !== undefined ? [`step ${step}`] : []), `T=${cfg.sample.temperature}`];
  await writeGrid(file, { pixels: toPixels(values, meta.nBits), n, height: h, width: w, channels: c }, undefined, { caption });
}
