// `flow sample`: latents from the prior -> images, as one PNG grid or one PNG per sample.
import fs from 'node:fs';
import path from 'node:path';
import { tf } from '../tf.js';
import { resolveRun, describeRun, type ResolvedRun } from '../io/run.js';
import { loadModel, type LoadedModel } from '../io/model-io.js';
import { toPixels } from '../data/preprocess.js';
import { tile, encodePng, encodeImageFor, imageFormatOf, labelledGrid, type ImageBatch } from '../io/png.js';
import { atomicWriteFile } from '../io/atomic.js';
import { Rng } from '../rng.js';
import { withBackend, parseNumberList, parseShard, printJson, inferenceThreads, parseWeights } from './common.js';
import { shardIndices, writePart, SAMPLE_PART_KIND, type SamplePart } from '../eval/shard.js';
import { sampleFileName, sampleGridLabels } from './merge.js';
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
  shard?: string;
  threads?: number | 'auto';
  weights?: string;
  checkpoint?: string;
  /** false (--no-labels): a bare grid without caption and row labels. */
  labels?: boolean;
}

/** Sample i's noise stream: depends on (seed, i) only, so shards reproduce the unsharded run. */
export function sampleNoiseRng(seed: number, index: number): Rng {
  return new Rng(seed).fork(index);
}

export async function sampleCommand(flags: SampleFlags): Promise<number> {
  if (flags.out && flags.outDir) throw new UserError('--out and --out-dir are exclusive: one grid PNG or one PNG per sample');
  if (flags.out) imageFormatOf(flags.out); // before the model loads
  const resolved = resolveRun(flags.run, { checkpoint: flags.checkpoint });
  const { runDir, checkpoint } = resolved;
  const { model, config, meta, step } = await withBackend(flags, () => loadModel(checkpoint, parseWeights(flags.weights)));
  let parallel: Awaited<ReturnType<typeof inferenceThreads>> = null;
  try {
    if (meta.dataKind !== 'image') throw new UserError(`${runDir}: 'flow sample' draws images; this run models ${meta.dataShape[0]}-d vectors (use 'flow plot density')`);
    const temps = flags.temperature !== undefined ? parseNumberList('--temperature', flags.temperature) : [config.sample.temperature];
    if (flags.class !== undefined && (!meta.numClasses || flags.class >= meta.numClasses)) {
      throw new UserError(meta.numClasses ? `--class ${flags.class}: expected 0..${meta.numClasses - 1}` : `--class: ${runDir} is not a class-conditional model (model.conditional: classes)`);
    }
    const [h, w, c] = meta.dataShape as [number, number, number];
    const work = flags.shard ? Math.ceil(flags.n / parseShard(flags.shard).count) : flags.n;
    parallel = await inferenceThreads(flags.threads, config, meta, work, flags.quiet);
    const par = parallel;
    // Sample i depends on its own noise stream only, so the threads split a batch without changing it.
    const draw: Draw = (k, t, rngs, labels) => (par ? par.sample(model, k, t, rngs, labels) : model.sample(k, t, rngs, labels));
    if (flags.shard) return await sampleShard(meta, { ...resolved, temps, h, w, c }, flags, draw);
    const perRow = temps.length > 1 ? Math.ceil(flags.n / temps.length) : flags.n;
    const rows: Uint8Array[] = [];
    for (const t of temps) {
      // The same noise streams for every temperature row: columns share their base noise, so a sweep
      // shows the same samples sharpening.
      const rngs = Array.from({ length: perRow }, (_, i) => sampleNoiseRng(flags.seed, i));
      const labels = meta.numClasses
        ? tf.tensor1d(Array.from({ length: perRow }, (_, i) => flags.class ?? i % meta.numClasses!), 'int32')
        : undefined;
      const x = draw(perRow, t, rngs, labels);
      rows.push(toPixels((await x.data()) as Float32Array, meta.nBits));
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
      written = [];
      const size = h * w * c;
      for (let k = 0; k < n; k++) {
        const file = path.join(flags.outDir, sampleFileName(k));
        atomicWriteFile(file, await encodePng({ ...batch, n: 1, pixels: pixels.subarray(k * size, (k + 1) * size) }));
        written.push(file);
      }
    } else {
      const out = flags.out ?? path.join(runDir, 'samples', `sample-step${step}-seed${flags.seed}.png`);
      fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
      const cols = temps.length > 1 ? perRow : Math.ceil(Math.sqrt(n));
      const labels = sampleGridLabels({ checkpoint, step, seed: flags.seed, temperatures: temps });
      atomicWriteFile(out, await encodeImageFor(out, flags.labels === false ? tile(batch, cols) : await labelledGrid(batch, cols, labels)));
      written = [out];
    }
    const summary = { run_dir: runDir, checkpoint, step, n, temperatures: temps, seed: flags.seed, files: written };
    if (flags.json) printJson(summary);
    else if (!flags.quiet) process.stdout.write(`wrote ${n} samples (T=${temps.join(',')}, seed ${flags.seed}) from ${describeRun(resolved)} to ${written.length === 1 ? written[0] : `${flags.outDir} (${written.length} files)`}\n`);
    return EXIT.OK;
  } finally {
    await parallel?.dispose();
    model.dispose();
  }
}

type Draw = (n: number, temperature: number, rngs: Rng[], labels?: tf.Tensor1D) => tf.Tensor;

interface RunInfo extends ResolvedRun {
  temps: number[];
  h: number;
  w: number;
  c: number;
}

/** `--shard i/n`: samples i, i+n, ... as one PNG each plus a part file for `flow merge`. */
async function sampleShard(meta: LoadedModel['meta'], r: RunInfo, flags: SampleFlags, draw: Draw): Promise<number> {
  const shard = parseShard(flags.shard!);
  if (r.temps.length !== 1) throw new UserError('--shard takes one --temperature, not a list');
  if (!flags.outDir) throw new UserError('--shard needs --out-dir DIR: each shard writes its PNGs and a part file there');
  const indices = shardIndices(flags.n, shard);
  fs.mkdirSync(flags.outDir, { recursive: true });
  const files: SamplePart['files'] = [];
  const size = r.h * r.w * r.c;
  for (let s = 0; s < indices.length; s += 64) {
    const idx = indices.slice(s, s + 64);
    const labels = meta.numClasses ? tf.tensor1d(idx.map((i) => flags.class ?? i % meta.numClasses!), 'int32') : undefined;
    const x = draw(idx.length, r.temps[0]!, idx.map((i) => sampleNoiseRng(flags.seed, i)), labels);
    const pixels = toPixels((await x.data()) as Float32Array, meta.nBits);
    x.dispose();
    labels?.dispose();
    for (let j = 0; j < idx.length; j++) {
      const file = sampleFileName(idx[j]!);
      const one: ImageBatch = { pixels: pixels.subarray(j * size, (j + 1) * size), n: 1, height: r.h, width: r.w, channels: r.c };
      atomicWriteFile(path.join(flags.outDir, file), await encodePng(one));
      files.push({ index: idx[j]!, file });
    }
  }
  const part: SamplePart = {
    kind: SAMPLE_PART_KIND,
    version: 1,
    shard,
    total: flags.n,
    seed: flags.seed,
    temperature: r.temps[0]!,
    checkpoint: path.resolve(r.checkpoint),
    step: r.step,
    files,
    height: r.h,
    width: r.w,
    channels: r.c,
  };
  const partFile = path.join(flags.outDir, `part-${shard.index}-of-${shard.count}.json`);
  writePart(partFile, part);
  if (flags.json) printJson({ part: partFile, shard, n: indices.length, total: flags.n, run_dir: r.runDir, checkpoint: r.checkpoint, step: r.step });
  else if (!flags.quiet) process.stdout.write(`shard ${shard.index}/${shard.count}: wrote ${indices.length} of ${flags.n} samples of ${describeRun(r)} to ${flags.outDir}; part file ${partFile}\n`);
  return EXIT.OK;
}
