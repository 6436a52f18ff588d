// `flow ood`: how well a trained flow tells in- from out-of-distribution data, by three scores
// (likelihood, complexity-corrected likelihood, typicality test); see src/ood/.
import fs from 'node:fs';
import path from 'node:path';
import { type Command, Option } from 'commander';
import { resolveRun, describeRun, CHECKPOINT_HELP, type ResolvedRun } from '../io/run.js';
import { loadModel } from '../io/model-io.js';
import { writeChart } from '../plot/index.js';
import { parseOodSpec } from '../ood/spec.js';
import { runOod, oodHistogramSvg, type OodRunResult } from '../ood/run.js';
import { parseIntOption, parseNumberOption, printJson, run, withBackend, BACKEND_HELP, defaultBackend } from './common.js';
import { UserError, EXIT } from '../errors.js';
import { atomicWriteFile } from '../io/atomic.js';

export interface OodFlags {
  run?: string;
  checkpoint?: string;
  in?: string;
  out: string;
  batchSize: number;
  fpr: number;
  bootstraps: number;
  evalBatch: number;
  limit: number;
  trainExamples: number;
  calibrationExamples: number;
  calibrateOn: 'train' | 'test';
  seed?: number;
  plot?: string;
  backend?: string;
  json?: boolean;
  quiet?: boolean;
}

export function register(program: Command): void {
  program
    .command('ood')
    .description('out-of-distribution detection: AUROC of likelihood, complexity-corrected (Serrà et al. 2020) and typicality (Nalisnick et al. 2019b) scores')
    .requiredOption('--out <spec>', 'out-of-distribution data: a data spec with an optional split, e.g. embedded:all, idx:DIR:test, images:DIR?image_size=28&channels=1&split=all')
    .option('--in <spec>', 'in-distribution data (default: the run\'s own data, test split)')
    .option('--run <dir>', 'run directory (or one checkpoint directory); default <runs>/latest')
    .option('--checkpoint <which>', CHECKPOINT_HELP)
    .option('--batch-size <m>', 'typicality test: examples per tested batch (M)', parseIntOption('--batch-size', 1), 10)
    .option('--fpr <rate>', 'typicality test: target false-positive rate of the threshold', parseNumberOption('--fpr', 0), 0.01)
    .option('--bootstraps <n>', 'typicality test: bootstrap resamples for the threshold', parseIntOption('--bootstraps', 1), 1000)
    .option('--train-examples <n>', 'training examples behind the training-set mean bpd', parseIntOption('--train-examples', 1), 2000)
    .option('--calibration-examples <n>', 'held-out in-distribution examples the threshold is calibrated on', parseIntOption('--calibration-examples', 1), 2000)
    .addOption(new Option('--calibrate-on <where>', 'held-out examples for the threshold: train (unseen training examples when the run used data.limit) or test (half of the --in set)').choices(['train', 'test']).default('train'))
    .option('--limit <n>', 'score at most n examples of each set (a seeded random subset; 0 = all)', parseIntOption('--limit', 0), 0)
    .option('--eval-batch <n>', 'examples per forward pass', parseIntOption('--eval-batch', 1), 256)
    .option('--seed <s>', 'dequantisation-noise, subset and bootstrap seed (default: the run\'s seed)', parseIntOption('--seed', 0))
    .option('--plot <file.png>', 'write the bits/dim histograms of in and out data (.png or .svg)')
    .option('--backend <name>', BACKEND_HELP, defaultBackend())
    .option('--json', 'print the result as one JSON object')
    .option('--quiet', 'no progress lines on stderr')
    .action(run((flags: OodFlags) => oodCommand(flags)));
}

export async function oodCommand(flags: OodFlags): Promise<number> {
  const outSpec = parseOodSpec(flags.out);
  const inSpec = flags.in !== undefined ? parseOodSpec(flags.in) : undefined;
  if (flags.plot && !/\.(png|svg)$/i.test(flags.plot)) throw new UserError(`--plot ${flags.plot}: expected a .png or .svg file name`);
  const resolved = resolveRun(flags.run, { checkpoint: flags.checkpoint });
  const { runDir, checkpoint } = resolved;
  const { model, config, meta, step } = await withBackend(flags, () => loadModel(checkpoint));
  let result: OodRunResult;
  try {
    result = await runOod({
      model,
      config,
      meta,
      inSpec,
      outSpec,
      typicalityBatch: flags.batchSize,
      fpr: flags.fpr,
      bootstraps: flags.bootstraps,
      evalBatch: flags.evalBatch,
      seed: flags.seed ?? config.seed,
      limit: flags.limit,
      trainExamples: flags.trainExamples,
      calibrationExamples: flags.calibrationExamples,
      calibrateOn: flags.calibrateOn,
      log: flags.quiet || flags.json ? undefined : (line) => process.stderr.write(line + '\n'),
    });
  } finally {
    model.dispose();
  }
  if (flags.plot) {
    fs.mkdirSync(path.dirname(path.resolve(flags.plot)), { recursive: true });
    await writeChart(flags.plot, oodHistogramSvg(result, `${config.name} (step ${step}): in ${result.in.name} vs out ${result.out.name}`), { scale: 2 });
  }
  const summary = oodSummary(result, { runDir, checkpoint, step, plot: flags.plot });
  // The run keeps its latest calibration: `flow export --web` takes the typicality verdict from it.
  atomicWriteFile(path.join(runDir, 'ood.json'), JSON.stringify(summary, null, 2) + '\n');
  if (flags.json) printJson(summary);
  else process.stdout.write(formatOod(result, flags.plot, resolved));
  return EXIT.OK;
}

/** The --json object: snake_case, every number the human output shows and a few more. */
export function oodSummary(r: OodRunResult, where: { runDir: string; checkpoint: string; step: number; plot?: string }) {
  const { report } = r;
  const set = (s: OodRunResult['in'], sum: OodRunResult['report']['in'], pngBpd: number | undefined) => ({
    spec: s.spec,
    name: s.name,
    split: s.split,
    n: sum.n,
    mean_bpd: sum.meanBpd,
    std_bpd: sum.stdBpd,
    stderr_bpd: sum.n > 1 ? sum.stdBpd / Math.sqrt(sum.n) : 0,
    mean_png_bpd: pngBpd,
  });
  const t = report.typicality!;
  const c = report.complexity!;
  return {
    run_dir: where.runDir,
    checkpoint: path.resolve(where.checkpoint),
    step: where.step,
    dims: r.dims,
    n_bits: r.nBits,
    in: set(r.in, report.in, c.inMeanPngBpd),
    out: set(r.out, report.out, c.outMeanPngBpd),
    /** Nalisnick et al.'s paradox: the OOD data get a higher mean likelihood than in-distribution test data. */
    paradox: report.out.meanBpd < report.in.meanBpd,
    auroc: { likelihood: report.likelihood.auroc, complexity: c.auroc, typicality: t.auroc },
    complexity: { in_mean_score: c.inMeanScore, out_mean_score: c.outMeanScore },
    typicality: {
      batch_size: t.batchSize,
      target_fpr: t.targetFpr,
      threshold: t.threshold,
      train_mean_bpd: t.trainMeanBpd,
      train_examples: r.typicalityReference.trainExamples,
      calibration: r.typicalityReference.calibration,
      calibration_examples: r.typicalityReference.calibrationExamples,
      calibration_mean_bpd: r.typicalityReference.calibrationMeanBpd,
      fpr: t.fpr,
      tpr: t.tpr,
      in_batches: t.inBatches,
      out_batches: t.outBatches,
    },
    ...(where.plot ? { plot: where.plot } : {}),
    seconds: r.seconds,
  };
}

export function formatOod(r: OodRunResult, plot?: string, run?: ResolvedRun): string {
  const { report } = r;
  const t = report.typicality!;
  const c = report.complexity!;
  const se = (s: { n: number; stdBpd: number }) => (s.n > 1 ? s.stdBpd / Math.sqrt(s.n) : 0);
  const calib = { 'held-out-train': 'training examples never seen in training', train: 'training examples (seen in training)', 'test-half': 'examples, a random half of the in set whose other half is tested' }[r.typicalityReference.calibration];
  const lines = [
    ...(run ? [`${describeRun(run)}:`] : []),
    `in  ${r.in.name} ${r.in.split}: n=${report.in.n}, bpd ${report.in.meanBpd.toFixed(4)} ± ${se(report.in).toFixed(4)} (sd ${report.in.stdBpd.toFixed(3)}), PNG ${c.inMeanPngBpd.toFixed(3)} bits/dim`,
    `out ${r.out.name} ${r.out.split}: n=${report.out.n}, bpd ${report.out.meanBpd.toFixed(4)} ± ${se(report.out).toFixed(4)} (sd ${report.out.stdBpd.toFixed(3)}), PNG ${c.outMeanPngBpd.toFixed(3)} bits/dim`,
    report.out.meanBpd < report.in.meanBpd
      ? `the model gives the OUT data a higher likelihood than its own test data (Nalisnick et al.'s paradox)`
      : `the OUT data get a lower likelihood than the in-distribution test data`,
    `AUROC, in vs out (1 = perfect, 0.5 = chance):`,
    ...[
      ['likelihood (score = bpd)', report.likelihood.auroc],
      ['complexity-corrected (bpd - PNG bits/dim)', c.auroc],
      [`typicality (per batch of ${t.batchSize})`, t.auroc],
    ].map(([name, value]) => `  ${String(name).padEnd(44)} ${(value as number).toFixed(4)}`),
    `typicality: threshold ${t.threshold.toFixed(4)} bits/dim for target FPR ${t.targetFpr}; flags ${(100 * t.fpr).toFixed(1)}% of ${t.inBatches} in batches, ${(100 * t.tpr).toFixed(1)}% of ${t.outBatches} out batches`,
    `  reference: training mean ${t.trainMeanBpd.toFixed(4)} (${r.typicalityReference.trainExamples} training examples); threshold bootstrapped from ${r.typicalityReference.calibrationExamples} ${calib} (mean ${r.typicalityReference.calibrationMeanBpd.toFixed(4)})`,
  ];
  if (plot) lines.push(`histogram: ${plot}`);
  return lines.join('\n') + '\n';
}
