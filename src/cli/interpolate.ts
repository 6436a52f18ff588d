// `flow interpolate`: a PNG strip between two data images through every level's latents, one row per
// interpolation mode (linear, spherical).
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
import { interpolate, type InterpolationMode } from '../views/interpolate.js';
import { compareArrays } from '../views/reconstruct.js';
import { parseIntOption, printJson, run, withBackend, BACKEND_HELP, defaultBackend } from './common.js';
import { UserError, EXIT } from '../errors.js';

export interface InterpolateFlags {
  run?: string;
  checkpoint?: string;
  from: number;
  to: number;
  steps: number;
  split: string;
  mode: string;
  out?: string;
  backend?: string;
  json?: boolean;
  quiet?: boolean;
}

export function register(program: Command): void {
  program
    .command('interpolate')
    .description('decode a path between two data images through all levels\' latents into a PNG strip (one row per mode; the ends reconstruct the two images)')
    .option('--run <dir>', 'run directory (or one checkpoint directory); default <runs>/latest')
    .option('--checkpoint <which>', CHECKPOINT_HELP)
    .option('--from <i>', 'index of the first image in the split', parseIntOption('--from', 0), 0)
    .option('--to <j>', 'index of the second image in the split', parseIntOption('--to', 0), 1)
    .option('--steps <k>', 'images along the path, both ends included', parseIntOption('--steps', 2), 8)
    .option('--split <split>', 'test or train', 'test')
    .option('--mode <mode>', 'linear, spherical, or both (one row each)', 'both')
    .option('--out <file.png>', 'where to write the strip (default <run>/samples/interpolate-<i>-<j>-step<step>.png)')
    .option('--backend <name>', BACKEND_HELP, defaultBackend())
    .option('--json', 'print what was written as one JSON object')
    .option('--quiet', 'print nothing on success')
    .action(run((flags: InterpolateFlags) => interpolateCommand(flags)));
}

function parseModes(mode: string): InterpolationMode[] {
  if (mode === 'both') return ['linear', 'spherical'];
  if (mode === 'linear' || mode === 'spherical') return [mode];
  throw new UserError(`--mode ${mode}: expected linear, spherical or both`);
}

export async function interpolateCommand(flags: InterpolateFlags): Promise<number> {
  const modes = parseModes(flags.mode);
  if (flags.out) imageFormatOf(flags.out); // before the model loads
  const resolved = resolveRun(flags.run, { checkpoint: flags.checkpoint });
  const { runDir, checkpoint } = resolved;
  const { model, config, meta, step } = await withBackend({ backend: flags.backend, quiet: flags.quiet || flags.json }, () => loadModel(checkpoint));
  try {
    const images = await loadRunImages(config, meta, runDir, flags.split, [flags.from, flags.to], 'flow interpolate');
    const [h, w, c] = images.shape;
    const size = h * w * c;
    const rows: Uint8Array[] = [];
    let endpointError = 0;
    for (const mode of modes) {
      const labels = images.labels && model.numClasses ? tf.tensor1d(images.labels, 'int32') : undefined;
      const pair = tf.tensor(images.x, [2, h, w, c]);
      const decoded = await interpolate(model, pair, flags.steps, mode, labels);
      tf.dispose([pair, ...(labels ? [labels] : [])]);
      const values = (await decoded.data()) as Float32Array;
      decoded.dispose();
      // The ends are the two images' own latents: they must decode back to the images.
      endpointError = Math.max(
        endpointError,
        compareArrays(values.subarray(0, size), images.x.subarray(0, size)).maxAbs,
        compareArrays(values.subarray((flags.steps - 1) * size), images.x.subarray(size)).maxAbs,
      );
      rows.push(toPixels(values, config.data.n_bits));
    }
    const pixels = new Uint8Array(rows.length * flags.steps * size);
    rows.forEach((r, k) => pixels.set(r, k * r.length));
    const out = flags.out ?? path.join(runDir, 'samples', `interpolate-${flags.from}-${flags.to}-step${step}.png`);
    fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
    atomicWriteFile(out, await encodeImageFor(out, tile({ pixels, n: rows.length * flags.steps, height: h, width: w, channels: c }, flags.steps)));
    const summary = { file: out, run_dir: runDir, checkpoint, step, split: flags.split, from: flags.from, to: flags.to, steps: flags.steps, modes, endpoint_max_abs_error: endpointError };
    if (flags.json) printJson(summary);
    else if (!flags.quiet) {
      process.stdout.write(
        `wrote ${modes.join(' and ')} interpolation${modes.length > 1 ? 's' : ''} (${flags.steps} steps) from ${flags.split} image ${flags.from} to ${flags.to} (${describeRun(resolved)}) to ${out}; ends reproduce the images to ${endpointError.toExponential(1)}\n`,
      );
    }
    return EXIT.OK;
  } finally {
    model.dispose();
  }
}
