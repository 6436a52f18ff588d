// `flow reconstruct`: data images above their reconstructions decode(encode(x)) as one PNG.
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { tf } from '../tf.js';
import { resolveRun, describeRun, CHECKPOINT_HELP } from '../io/run.js';
import { loadModel } from '../io/model-io.js';
import { toPixels } from '../data/preprocess.js';
import { tile, encodeImageFor, imageFormatOf } from '../io/png.js';
import { atomicWriteFile } from '../io/atomic.js';
import { loadRunImages } from '../views/examples.js';
import { reconstruct, originalsAboveReconstructions, compareArrays } from '../views/reconstruct.js';
import { parseIntOption, printJson, run, withBackend, BACKEND_HELP, defaultBackend } from './common.js';
import { EXIT } from '../errors.js';

export interface ReconstructFlags {
  run?: string;
  checkpoint?: string;
  n: number;
  first: number;
  split: string;
  cols: number;
  out?: string;
  backend?: string;
  json?: boolean;
  quiet?: boolean;
}

export function register(program: Command): void {
  program
    .command('reconstruct')
    .description('data images (top rows) above their reconstructions decode(encode(x)) with every latent kept, as one PNG')
    .option('--run <dir>', 'run directory (or one checkpoint directory); default <runs>/latest')
    .option('--checkpoint <which>', CHECKPOINT_HELP)
    .option('--n <n>', 'number of images', parseIntOption('--n', 1), 16)
    .option('--first <i>', 'index of the first image in the split', parseIntOption('--first', 0), 0)
    .option('--split <split>', 'test or train', 'test')
    .option('--cols <k>', 'images per row (originals and reconstructions alternate by row band)', parseIntOption('--cols', 1), 16)
    .option('--out <file.png>', 'where to write the PNG (default <run>/samples/reconstruct-step<step>.png)')
    .option('--backend <name>', BACKEND_HELP, defaultBackend())
    .option('--json', 'print what was written as one JSON object')
    .option('--quiet', 'print nothing on success')
    .action(run((flags: ReconstructFlags) => reconstructCommand(flags)));
}

export async function reconstructCommand(flags: ReconstructFlags): Promise<number> {
  if (flags.out) imageFormatOf(flags.out); // before the model loads
  const resolved = resolveRun(flags.run, { checkpoint: flags.checkpoint });
  const { runDir, checkpoint } = resolved;
  const { model, config, meta, step } = await withBackend({ backend: flags.backend, quiet: flags.quiet || flags.json }, () => loadModel(checkpoint));
  try {
    const indices = Array.from({ length: flags.n }, (_, k) => flags.first + k);
    const images = await loadRunImages(config, meta, runDir, flags.split, indices, 'flow reconstruct');
    const [h, w, c] = images.shape;
    const n = indices.length;
    const xr = tf.tidy(() => {
      const labels = images.labels && model.numClasses ? tf.tensor1d(images.labels, 'int32') : undefined;
      return reconstruct(model, tf.tensor(images.x, [n, h, w, c]), labels);
    });
    const values = (await xr.data()) as Float32Array;
    xr.dispose();
    const recon = toPixels(values, config.data.n_bits);
    const error = compareArrays(images.x, values);
    const pixelsChanged = compareArrays(images.pixels, recon).changed;
    const cols = Math.min(flags.cols, n);
    const out = flags.out ?? path.join(runDir, 'samples', `reconstruct-step${step}.png`);
    fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
    atomicWriteFile(out, await encodeImageFor(out, tile(originalsAboveReconstructions(images.pixels, recon, n, h, w, c, cols), cols)));
    const summary = { file: out, run_dir: runDir, checkpoint, step, split: flags.split, indices, max_abs_error: error.maxAbs, pixels_changed: pixelsChanged, pixels: images.pixels.length };
    if (flags.json) printJson(summary);
    else if (!flags.quiet) {
      process.stdout.write(
        `wrote ${n} ${flags.split} images above their reconstructions (${describeRun(resolved)}) to ${out}; max |x - x_rec| = ${error.maxAbs.toExponential(1)}, ${pixelsChanged} of ${images.pixels.length} pixels changed\n`,
      );
    }
    return EXIT.OK;
  } finally {
    model.dispose();
  }
}
