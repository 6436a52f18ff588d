// `flow eval --bpd`: exact test log-likelihood in bits per dimension, with its standard error.
import path from 'node:path';
import { resolveRun } from '../io/run.js';
import { loadModel } from '../io/model-io.js';
import { loadDataset } from '../data/index.js';
import { perExampleLogProb, bitsPerDim, meanAndStderr } from '../eval/bpd.js';
import { atomicWriteFile } from '../io/atomic.js';
import { withBackend } from './sample.js';
import { printJson } from './common.js';
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
}

export async function evalCommand(flags: EvalFlags): Promise<number> {
  if (!flags.bpd) throw new UserError("flow eval: say what to evaluate: --bpd (bits per dimension of a split)");
  if (flags.split !== 'test' && flags.split !== 'train') throw new UserError(`--split ${flags.split}: expected test or train`);
  const { runDir, checkpoint } = resolveRun(flags.run);
  const { model, config, meta, step } = await withBackend(flags, () => loadModel(checkpoint));
  try {
    const data = await loadDataset(config.data, { seed: config.seed });
    if (data.shape.join('x') !== meta.dataShape.join('x')) {
      throw new UserError(`${runDir}: the data now has shape [${data.shape}] but the model was trained on [${meta.dataShape}]`);
    }
    const split = flags.split === 'test' ? data.test : data.train;
    const n = flags.limit ? Math.min(flags.limit, split.n) : split.n;
    if (n === 0) throw new UserError(`${flags.split} split of ${data.name} is empty`);
    const indices = Array.from({ length: n }, (_, i) => i);
    const seed = flags.seed ?? config.seed;
    const dims = data.shape.reduce((a, b) => a * b, 1);
    const nBins = 2 ** config.data.n_bits;
    const started = performance.now();
    const logp = perExampleLogProb(model, split, data.shape, data.kind, {
      nBits: config.data.n_bits,
      seed,
      batchSize: flags.batchSize,
      indices,
      dequantize: config.data.dequantize === 'uniform',
    });
    const seconds = (performance.now() - started) / 1000;
    const metric = data.kind === 'image' ? 'bpd' : 'nll';
    const values = data.kind === 'image' ? logp.map((l) => bitsPerDim(l, dims, nBins)) : logp.map((l) => -l / dims);
    const { mean, stderr } = meanAndStderr(values);
    if (!Number.isFinite(mean)) process.stderr.write(`warning: non-finite ${metric} for some examples; see --per-example\n`);

    const perClass: Record<string, { [k: string]: number }> = {};
    if (split.labels) {
      const groups = new Map<number, number[]>();
      indices.forEach((i, j) => {
        const y = split.labels![i]!;
        if (!groups.has(y)) groups.set(y, []);
        groups.get(y)!.push(values[j]!);
      });
      for (const [y, v] of [...groups].sort((a, b) => a[0] - b[0])) {
        const m = meanAndStderr(v);
        perClass[data.classNames?.[y] ?? String(y)] = { [metric]: m.mean, stderr: m.stderr, n: m.n };
      }
    }
    if (flags.perExample) {
      const header = split.labels ? `index,label,${metric},log_prob_nats` : `index,${metric},log_prob_nats`;
      const lines = indices.map((i, j) => (split.labels ? `${i},${split.labels[i]},${values[j]},${logp[j]}` : `${i},${values[j]},${logp[j]}`));
      atomicWriteFile(flags.perExample, [header, ...lines].join('\n') + '\n');
    }
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
      examples_per_s: n / seconds,
      ...(Object.keys(perClass).length ? { per_class: perClass } : {}),
    };
    if (flags.json) printJson(result);
    else {
      process.stdout.write(`${flags.split} ${metric}: ${mean.toFixed(4)} ± ${stderr.toFixed(4)} (n=${n}, step ${step}, ${(n / seconds).toFixed(1)} examples/s)\n`);
      for (const [k, v] of Object.entries(perClass)) process.stdout.write(`  class ${k}: ${v[metric]!.toFixed(4)} ± ${v.stderr!.toFixed(4)} (n=${v.n})\n`);
      if (flags.perExample) process.stdout.write(`per-example values: ${flags.perExample}\n`);
    }
    return EXIT.OK;
  } finally {
    model.dispose();
  }
}
