// `flow check`: the invertibility audit of a trained model (src/audit/): per layer and for the whole
// model, on data and on out-of-distribution inputs. Exit 1 when a data or Jacobian check is over its
// tolerance (out-of-distribution ones too with --strict-ood; otherwise they print a WARNING line), else 0.
import type { Command } from 'commander';
import { resolveRun, describeRun, CHECKPOINT_HELP } from '../io/run.js';
import { loadModel } from '../io/model-io.js';
import { loadDataset } from '../data/index.js';
import { imageBatch } from '../eval/bpd.js';
import { auditModel, DEFAULT_TOLERANCES } from '../audit/invertibility.js';
import { oodInputs, type AuditInput } from '../audit/inputs.js';
import { formatAudit } from '../audit/format.js';
import { parseIntOption, parseNumberOption, printJson, run, withBackend, BACKEND_HELP, defaultBackend } from './common.js';
import { UserError, EXIT } from '../errors.js';

export interface CheckFlags {
  run?: string;
  checkpoint?: string;
  split: string;
  n: number;
  batchSize: number;
  ood: boolean;
  strictOod?: boolean;
  jacobian: number;
  tolRecon: number;
  tolReconOod: number;
  tolLogdet: number;
  tolJacobian: number;
  seed?: number;
  backend?: string;
  json?: boolean;
  quiet?: boolean;
}

export function register(program: Command): void {
  program
    .command('check')
    .description('invertibility audit: per-layer and whole-model reconstruction error, inverse logdet, non-finite values and the brute-force Jacobian, on data and out-of-distribution inputs; exit 1 when a data check is over tolerance (OOD ones too with --strict-ood)')
    .option('--run <dir>', 'run directory (or one checkpoint directory); default <runs>/latest')
    .option('--checkpoint <which>', CHECKPOINT_HELP)
    .option('--split <split>', 'data split to audit: test or train', 'test')
    .option('--n <n>', 'examples of the split (and of each out-of-distribution input)', parseIntOption('--n', 1), 256)
    .option('--batch-size <n>', 'examples per pass', parseIntOption('--batch-size', 1), 64)
    .option('--no-ood', 'skip the out-of-distribution inputs (uniform noise, Gaussian noise, constant inputs)')
    .option('--strict-ood', 'out-of-distribution findings fail the audit (exit 1); by default they are warnings')
    .option('--jacobian <k>', 'examples checked against the brute-force Jacobian (models of <= 1024 dims; 0 = skip)', parseIntOption('--jacobian', 0), 2)
    .option('--tol-recon <e>', 'max |x - f^-1(f(x))| on data, model and every layer', parseNumberOption('--tol-recon', 0), DEFAULT_TOLERANCES.recon)
    .option('--tol-recon-ood <e>', 'the same on out-of-distribution inputs', parseNumberOption('--tol-recon-ood', 0), DEFAULT_TOLERANCES.reconOod)
    .option('--tol-logdet <e>', 'max |logdet f + logdet f^-1| / max(1, |logdet f|)', parseNumberOption('--tol-logdet', 0), DEFAULT_TOLERANCES.logdet)
    .option('--tol-jacobian <e>', 'max |summed logdet - log|det J|| / max(1, |log|det J||)', parseNumberOption('--tol-jacobian', 0), DEFAULT_TOLERANCES.jacobian)
    .option('--seed <s>', "seed of the dequantisation and noise inputs (default: the run's seed)", parseIntOption('--seed', 0))
    .option('--backend <name>', BACKEND_HELP, defaultBackend())
    .option('--json', 'print the full audit as one JSON object')
    .option('--quiet', 'no progress lines on stderr')
    .action(run((flags: CheckFlags) => checkCommand(flags)));
}

export async function checkCommand(flags: CheckFlags): Promise<number> {
  if (flags.split !== 'test' && flags.split !== 'train') throw new UserError(`--split ${flags.split}: expected test or train`);
  const resolved = resolveRun(flags.run, { checkpoint: flags.checkpoint });
  const { runDir, checkpoint } = resolved;
  const { model, config, meta, step } = await withBackend({ backend: flags.backend, quiet: flags.quiet || flags.json }, () => loadModel(checkpoint));
  try {
    const data = await loadDataset(config.data, { seed: config.seed });
    if (data.shape.join('x') !== meta.dataShape.join('x')) {
      throw new UserError(`${runDir}: the data now has shape [${data.shape}] but the model was trained on [${meta.dataShape}]`);
    }
    const split = flags.split === 'test' ? data.test : data.train;
    const n = Math.min(flags.n, split.n);
    if (n === 0) throw new UserError(`${flags.split} split of ${data.name} is empty`);
    const seed = flags.seed ?? config.seed;
    const dims = data.shape.reduce((a, b) => a * b, 1);
    const idx = Array.from({ length: n }, (_, i) => i);
    const x =
      data.kind === 'image'
        ? imageBatch(split, data.shape, idx, config.data.n_bits, seed, config.data.dequantize === 'uniform')
        : (split.x as Float32Array).slice(0, n * dims);
    const inputs: AuditInput[] = [{ kind: 'data', description: `${flags.split} examples of ${data.name}`, x, n, ood: false }];
    if (flags.ood) inputs.push(...oodInputs(data.kind, dims, n, seed, x));
    const progress = flags.quiet || flags.json ? undefined : (m: string) => process.stderr.write(`${m}\n`);
    const audit = await auditModel(model, inputs, {
      batchSize: flags.batchSize,
      strictOod: flags.strictOod,
      jacobianExamples: flags.jacobian,
      tolerances: { recon: flags.tolRecon, reconOod: flags.tolReconOod, logdet: flags.tolLogdet, jacobian: flags.tolJacobian },
      onProgress: progress,
    });
    if (flags.json) printJson({ run_dir: runDir, checkpoint, step, split: flags.split, ...audit });
    else {
      const header = `invertibility audit of ${describeRun(resolved)}: ${model.namedLayers().length} layers, ${dims} dimensions`;
      process.stdout.write(formatAudit(audit, header).join('\n') + '\n');
    }
    return audit.ok ? EXIT.OK : EXIT.FAILURE;
  } finally {
    model.dispose();
  }
}
