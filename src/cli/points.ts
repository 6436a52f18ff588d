// `flow eval --points in.csv --out logp.csv`: log p(x) in nats of every row of a CSV under a vector
// (2-D / tabular) model. Wired into `flow eval` by src/cli/eval.ts when --points is given.
import fs from 'node:fs';
import path from 'node:path';
import { resolveRun, describeRun } from '../io/run.js';
import { loadModel } from '../io/model-io.js';
import { readCsv } from '../data/csv.js';
import { logDensity } from '../views/density.js';
import { atomicWriteFile } from '../io/atomic.js';
import { printJson, withBackend } from './common.js';
import { meanAndStderr } from '../eval/bpd.js';
import { UserError, EXIT } from '../errors.js';

export interface PointsFlags {
  points: string;
  out?: string;
  run?: string;
  checkpoint?: string;
  batchSize?: number;
  backend?: string;
  json?: boolean;
  quiet?: boolean;
}

/** The shortest decimal that reads back as the same float32 (1.8, not 1.7999999523162842). */
export function float32String(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const f = Math.fround(v);
  for (let p = 1; p < 9; p++) {
    const s = f.toPrecision(p);
    if (Math.fround(Number(s)) === f) return String(Number(s));
  }
  return String(Number(f.toPrecision(9)));
}

/** The output CSV: the input's columns (its header, or x1..xD) then log_prob_nats, as the float32 values the model saw. */
export function pointsCsv(x: Float32Array, n: number, dims: number, logp: ArrayLike<number>, header?: string[]): string {
  const names = header ?? Array.from({ length: dims }, (_, d) => `x${d + 1}`);
  const lines = [[...names, 'log_prob_nats'].join(',')];
  for (let i = 0; i < n; i++) {
    const row: string[] = [];
    for (let d = 0; d < dims; d++) row.push(float32String(x[i * dims + d]!));
    row.push(float32String(logp[i]!));
    lines.push(row.join(','));
  }
  return lines.join('\n') + '\n';
}

export async function pointsCommand(flags: PointsFlags): Promise<number> {
  if (!flags.out) throw new UserError('--points needs --out FILE.csv: where to write log p(x) of each row');
  if (path.resolve(flags.out) === path.resolve(flags.points)) throw new UserError(`--out ${flags.out}: would overwrite the --points input; expected a different file`);
  const csv = readCsv(flags.points);
  const resolved = resolveRun(flags.run, { checkpoint: flags.checkpoint });
  const { runDir, checkpoint } = resolved;
  const { model, meta, step } = await withBackend({ backend: flags.backend, quiet: flags.quiet || flags.json }, () => loadModel(checkpoint));
  try {
    if (meta.dataKind !== 'vector') throw new UserError(`--points ${flags.points}: ${runDir} models images; --points scores rows of a vector (2-D / tabular) model`);
    if (meta.numClasses) throw new UserError(`--points ${flags.points}: ${runDir} is class-conditional; --points scores unconditional vector models`);
    const dims = meta.dataShape[0]!;
    if (csv.dims !== dims) throw new UserError(`--points ${flags.points}: rows have ${csv.dims} columns, expected ${dims} (the model's dimensions)`);
    const logp = await logDensity(model, csv.x, csv.n, flags.batchSize ?? 4096);
    fs.mkdirSync(path.dirname(path.resolve(flags.out)), { recursive: true });
    atomicWriteFile(flags.out, pointsCsv(csv.x, csv.n, dims, logp, csv.header));
    const { mean } = meanAndStderr(logp);
    const nonFinite = logp.filter((v) => !Number.isFinite(v)).length;
    const summary = { file: flags.out, points: flags.points, n: csv.n, dims, mean_log_prob_nats: mean, non_finite: nonFinite, run_dir: runDir, checkpoint, step };
    if (flags.json) printJson(summary);
    else if (!flags.quiet) process.stdout.write(`wrote log p(x) of ${csv.n} rows to ${flags.out} (mean ${mean.toFixed(4)} nats, ${describeRun(resolved)})\n`);
    return EXIT.OK;
  } finally {
    model.dispose();
  }
}
