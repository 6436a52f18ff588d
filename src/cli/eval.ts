// `flow eval --bpd`: exact test log-likelihood in bits per dimension, with its standard error.
import path from 'node:path';
import { resolveRun, describeRun } from '../io/run.js';
import { loadModel } from '../io/model-io.js';
import { loadDataset } from '../data/index.js';
import { perExampleLogProb, bitsPerDim, meanAndStderr } from '../eval/bpd.js';
import { atomicWriteFile } from '../io/atomic.js';
import { printJson, parseShard, inferenceThreads, parseWeights, withBackend } from './common.js';
import { pointsCommand } from './points.js';
import { shardIndices, writePart, EVAL_PART_KIND } from '../eval/shard.js';
import { perClassSummary, perExampleCsv } from '../eval/summary.js';
import { UserError, EXIT } from '../errors.js';

export interface EvalFlags {
  bpd?: boolean;
  split: string;
  run?: string;
  perExample?: string;
  json?: boolean;
  batchSize: number;
  seed?: number;
  limit?: number;
  backend?: string;
  quiet?: boolean;
  shard?: string;
  out?: string;
  points?: string;
  threads?: number | 'auto';
  weights?: string;
  checkpoint?: string;
}

export async function evalCommand(flags: EvalFlags): Promise<number> {
  if (flags.points) return pointsCommand({ points: flags.points, out: flags.out, run: flags.run, checkpoint: flags.checkpoint, batchSize: flags.batchSize, backend: flags.backend, json: flags.json, quiet: flags.quiet });
  if (!flags.bpd) throw new UserError('eval: say what to evaluate: --bpd (bits per dimension of a split) or --points FILE.csv');
  if (flags.split !== 'test' && flags.split !== 'train') throw new UserError(`--split ${flags.split}: expected test or train`);
  const resolved = resolveRun(flags.run, { checkpoint: flags.checkpoint });
  const { runDir, checkpoint } = resolved;
  const { model, config, meta, step, weights } = await withBackend(flags, () => loadModel(checkpoint, parseWeights(flags.weights)));
  let parallel: Awaited<ReturnType<typeof inferenceThreads>> = null;
  try {
    const data = await loadDataset(config.data, { seed: config.seed });
    if (data.shape.join('x') !== meta.dataShape.join('x')) {
      throw new UserError(`${runDir}: the data now has shape [${data.shape}] but the model was trained on [${meta.dataShape}]`);
    }
    const split = flags.split === 'test' ? data.test : data.train;
    const n = flags.limit ? Math.min(flags.limit, split.n) : split.n;
    if (n === 0) throw new UserError(`${flags.split} split of ${data.name} is empty`);
    const shard = flags.shard ? parseShard(flags.shard) : null;
    if (shard && !flags.out) throw new UserError('--shard needs --out PART.json (combine the parts with flow merge)');
    if (!shard && flags.out) throw new UserError('--out goes with --shard; use --json or --per-example for an unsharded eval');
    const indices = shardIndices(n, shard);
    const seed = flags.seed ?? config.seed;
    const dims = data.shape.reduce((a, b) => a * b, 1);
    const nBins = 2 ** config.data.n_bits;
    parallel = await inferenceThreads(flags.threads, config, meta, indices.length, flags.quiet);
    const started = performance.now();
    const logp = await perExampleLogProb(model, split, data.shape, data.kind, {
      nBits: config.data.n_bits,
      seed,
      batchSize: flags.batchSize,
      indices,
      dequantize: config.data.dequantize === 'uniform',
      logProb: parallel ? (x, labels) => parallel!.logProb(model, x, labels) : undefined,
    });
    const seconds = (performance.now() - started) / 1000;
    const metric = data.kind === 'image' ? 'bpd' : 'nll';
    const values = data.kind === 'image' ? logp.map((l) => bitsPerDim(l, dims, nBins)) : logp.map((l) => -l / dims);
    const { mean, stderr } = meanAndStderr(values);
    if (!Number.isFinite(mean)) process.stderr.write(`warning: non-finite ${metric} for some examples; see --per-example\n`);

    // The examples' labels in the order of indices (what the per-class summary and the part files take).
    const labels = split.labels ? indices.map((i) => split.labels![i]!) : undefined;
    if (shard) {
      writePart(flags.out!, {
        kind: EVAL_PART_KIND,
        version: 1,
        shard,
        total: n,
        split: flags.split,
        metric,
        seed,
        run_dir: runDir,
        checkpoint: path.resolve(checkpoint),
        step,
        indices,
        values: Array.from(values),
        log_prob: Array.from(logp),
        ...(labels ? { labels } : {}),
        dims,
        n_bits: config.data.n_bits,
        ...(data.classNames ? { class_names: data.classNames } : {}),
      });
      if (flags.json) printJson({ part: flags.out, shard, n: indices.length, total: n, run_dir: runDir, checkpoint: path.resolve(checkpoint), step });
      else if (!flags.quiet) process.stdout.write(`shard ${shard.index}/${shard.count}: ${indices.length} of ${n} examples of ${describeRun(resolved)} -> ${flags.out}\n`);
      return EXIT.OK;
    }
    const perClass = perClassSummary(metric, values, labels, data.classNames);
    if (flags.perExample) atomicWriteFile(flags.perExample, perExampleCsv(metric, indices, values, logp, labels));
    const result = {
      [metric]: mean,
      stderr,
      n,
      split: flags.split,
      dims,
      n_bits: config.data.n_bits,
      seed,
      run_dir: runDir,
      checkpoint: path.resolve(checkpoint),
      step,
      weights,
      examples_per_s: n / seconds,
      ...(Object.keys(perClass).length ? { per_class: perClass } : {}),
    };
    if (flags.json) printJson(result);
    else {
      process.stdout.write(`${flags.split} ${metric}: ${mean.toFixed(4)} ± ${stderr.toFixed(4)} (n=${n}, ${describeRun(resolved)}${weights === 'average' ? ', averaged weights' : ''}, ${(n / seconds).toFixed(1)} examples/s)\n`);
      for (const [k, v] of Object.entries(perClass)) process.stdout.write(`  class ${k}: ${v[metric]!.toFixed(4)} ± ${v.stderr!.toFixed(4)} (n=${v.n})\n`);
      if (flags.perExample) process.stdout.write(`per-example values: ${flags.perExample}\n`);
    }
    return EXIT.OK;
  } finally {
    await parallel?.dispose();
    model.dispose();
  }
}
