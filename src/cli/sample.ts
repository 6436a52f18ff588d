// `flow sample`: latents from the prior -> images, as one PNG grid or one PNG per sample.
import fs from 'node:fs';
import path from 'node:path';
import { tf } from '../tf.js';
import { resolveRun } from '../io/run.js';
import { loadModel } from '../io/model-io.js';
import { toPixels } from '../data/preprocess.js';
import { tile, encodePng, writeEach, type ImageBatch } from '../io/png.js';
import { atomicWriteFile } from '../io/atomic.js';
import { Rng } from '../rng.js';
import { startBackend, parseNumberList, printJson } from './common.js';
import { UserError, EXIT } from '../errors.js';

export interface SampleFlags {
  n: number;
  temperature?: string;
  seed: number;
  run?: string;
  out?: string;
  outDir?: string;
  backend?: string;
  class?: number;
  json?: boolean;
  quiet?: boolean;
}

export async function sampleCommand(flags: SampleFlags): Promise<number> {
  if (flags.out && flags.outDir) throw new UserError('--out and --out-dir are exclusive: one grid PNG or one PNG per sample');
  const { runDir, checkpoint } = resolveRun(flags.run);
  const { model, config, meta, step } = await withBackend(flags, () => loadModel(checkpoint));
  try {
    if (meta.dataKind !== 'image') throw new UserError(`${runDir}: 'flow sample' draws images; this run models ${meta.dataShape[0]}-d vectors (use 'flow plot density')`);
    const temps = flags.temperature !== undefined ? parseNumberList('--temperature', flags.temperature) : [config.sample.temperature];
    if (flags.class !== undefined && (!meta.numClasses || flags.class >= meta.numClasses)) {
      throw new UserError(meta.numClasses ? `--class ${flags.class}: expected 0..${meta.numClasses - 1}` : `--class: ${runDir} is not a class-conditional model (model.conditional: classes)`);
    }
    const [h, w, c] = meta.dataShape as [number, number, number];
    const perRow = temps.length > 1 ? Math.ceil(flags.n / temps.length) : flags.n;
    const rows: Uint8Array[] = [];
    for (const t of temps) {
      // One seed for every temperature row: columns share their base noise, so a sweep shows the same samples sharpening.
      const rng = new Rng(flags.seed);
      const labels = meta.numClasses
        ? tf.tensor1d(Array.from({ length: perRow }, (_, i) => flags.class ?? i % meta.numClasses!), 'int32')
        : undefined;
      const x = model.sample(perRow, t, rng, labels);
      rows.push(toPixels(x.dataSync() as Float32Array, meta.nBits));
      x.dispose();
      labels?.dispose();
    }
    const n = perRow * temps.length;
    const pixels = new Uint8Array(n * h * w * c);
    rows.forEach((r, i) => pixels.set(r, i * r.length));
    const batch: ImageBatch = { pixels, n, height: h, width: w, channels: c };
    let written: string[];
    if (flags.outDir) {
      fs.mkdirSync(flags.outDir, { recursive: true });
      written = await writeEach(flags.outDir, batch);
    } else {
      const out = flags.out ?? path.join(runDir, 'samples', `sample-step${step}-seed${flags.seed}.png`);
      fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
      const cols = temps.length > 1 ? perRow : Math.ceil(Math.sqrt(n));
      atomicWriteFile(out, await encodePng(tile(batch, cols)));
      written = [out];
    }
    const summary = { run_dir: runDir, checkpoint, step, n, temperatures: temps, seed: flags.seed, files: written };
    if (flags.json) printJson(summary);
    else if (!flags.quiet) process.stdout.write(`wrote ${n} samples (T=${temps.join(',')}, seed ${flags.seed}) from step ${step} to ${written.length === 1 ? written[0] : `${flags.outDir} (${written.length} files)`}\n`);
    return EXIT.OK;
  } finally {
    model.dispose();
  }
}

/** Picks the backend (flag, else the run's config) before any tensor exists. */
export async function withBackend<T>(flags: { backend?: string; quiet?: boolean }, load: () => T): Promise<T> {
  await startBackend(flags.backend ?? 'auto', flags.quiet);
  return load();
}
