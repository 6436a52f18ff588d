// `flow train config.yaml`: parse, train, print the summary.
import { loadConfig, type ConfigOverride } from '../config/load.js';
import { train } from '../train/trainer.js';
import { makeLogger, formatSeconds, type LogFormat } from '../train/logger.js';
import { startBackend, printJson } from './common.js';
import { UserError, EXIT } from '../errors.js';
import type { Config } from '../config/schema.js';
import { latestCheckpoint, newestCheckpoint } from '../io/checkpoint.js';
import { runDirOf } from '../io/run.js';
import { estimateTrainingMemory, type MemoryEstimate } from '../train/memory-estimate.js';

export interface TrainFlags {
  set: string[];
  resume?: boolean;
  fresh?: boolean;
  maxSteps?: number;
  maxMinutes?: number;
  backend?: string;
  name?: string;
  dryRun?: boolean;
  json?: boolean;
  logFormat: LogFormat;
  quiet?: boolean;
}

export async function trainCommand(configFile: string, flags: TrainFlags): Promise<number> {
  if (flags.resume && flags.fresh) throw new UserError('--resume and --fresh contradict each other; give one');
  const sets: ConfigOverride[] = [...flags.set];
  if (flags.maxSteps !== undefined) sets.push({ set: `train.max_steps=${flags.maxSteps}`, flag: `--max-steps ${flags.maxSteps}` });
  if (flags.maxMinutes !== undefined) sets.push({ set: `train.max_minutes=${flags.maxMinutes}`, flag: `--max-minutes ${flags.maxMinutes}` });
  // --backend, else $FLOW_BACKEND (a batch job's pin), else the config's backend.
  if (flags.backend !== undefined) sets.push({ set: `backend=${flags.backend}`, flag: `--backend ${flags.backend}` });
  else if (process.env.FLOW_BACKEND) sets.push({ set: `backend=${process.env.FLOW_BACKEND}`, flag: `FLOW_BACKEND=${process.env.FLOW_BACKEND}` });
  if (flags.name !== undefined) sets.push({ set: `name=${flags.name}`, flag: `--name ${flags.name}` });
  const cfg = loadConfig(configFile, sets);
  // A run whose checkpoints are all damaged is left to train(), whose error names the newest one.
  if (flags.resume && !latestCheckpoint(runDirOf(cfg.runs_dir, cfg.name)) && !newestCheckpoint(runDirOf(cfg.runs_dir, cfg.name))) {
    throw new UserError(`--resume: ${runDirOf(cfg.runs_dir, cfg.name)} has no checkpoint to resume from`);
  }
  await startBackend(cfg.backend, flags.quiet);
  const lossName = cfg.data.source === 'toy' || cfg.data.source === 'csv' ? 'nll' : 'bpd';
  const logger = makeLogger(flags.logFormat, Boolean(flags.quiet), lossName);

  // First SIGINT/SIGTERM: finish the step, checkpoint, exit 130/143. A second one exits at once;
  // checkpoints are written atomically, so nothing on disk is left half-written.
  let requested: 'SIGINT' | 'SIGTERM' | null = null;
  const onSignal = (sig: 'SIGINT' | 'SIGTERM') => {
    if (requested) process.exit(sig === 'SIGINT' ? EXIT.SIGINT : EXIT.SIGTERM);
    requested = sig;
    logger.info(`${sig}: finishing this step and writing a checkpoint (send again to exit at once)`);
  };
  const int = () => onSignal('SIGINT');
  const term = () => onSignal('SIGTERM');
  process.on('SIGINT', int);
  process.on('SIGTERM', term);
  try {
    const s = await train(cfg, { resume: flags.fresh ? 'fresh' : 'auto', logger, stopRequested: () => requested, dryRun: flags.dryRun });
    logger.close();
    if (s.stoppedBy === 'dry_run') {
      const summary = { dry_run: true, run_dir: s.runDir, parameters: s.parameters, data_shape: s.dataShape, data_ok: !s.dataError, ...(s.dataError ? { data_error: s.dataError.message } : {}), ...estimateTrainingMemory(s.parameters, cfg, s.dataShape, s.dataSize) };
      if (flags.json) printJson(summary);
      else
        process.stdout.write(
          `dry run: ${s.dataError ? 'config is valid (data is NOT: see below)' : 'config and data are valid'}; model has ${s.parameters.toLocaleString('en')} parameters ` +
            `(${(summary.parameter_bytes / 2 ** 20).toFixed(1)} MiB weights); would write to ${s.runDir}\n` +
            `memory: request ${gib(summary.request_bytes)} for a pod or job: estimated peak RSS of this training process ${gib(summary.peak_bytes)} (±30%; ` +
            `runtime, data, weights with gradients and Adam state, and its largest pass: ${phaseText(summary, cfg)}; ${workersText(cfg)}calibrated on the wasm backend; on a GPU backend most of it is GPU memory)\n`,
        );
      if (s.dataError) throw s.dataError;
      return EXIT.OK;
    }
    const summary = {
      run_dir: s.runDir,
      checkpoint: s.checkpoint,
      step: s.step,
      stopped_by: s.stoppedBy,
      resumed_from: s.resumedFrom,
      [`train_${s.lossName}`]: s.loss,
      [`test_${s.lossName}`]: s.testLoss,
      // null, not 0, when no step ran: there was no throughput to measure.
      img_per_s: s.nothingToDo ? null : Number(s.imgPerSec.toFixed(2)),
      seconds: Number(s.seconds.toFixed(1)),
      skipped_steps: s.skippedSteps,
      parameters: s.parameters,
      ...(s.nothingToDo ? { nothing_to_do: true } : {}),
      ...(s.resumeWarning ? { resume_warning: s.resumeWarning } : {}),
    };
    if (flags.json) printJson(summary);
    else if (!flags.quiet && s.nothingToDo) {
      process.stderr.write(
        `done: nothing left to do: ${s.runDir} is already at step ${s.step} (train.max_steps ${cfg.train.max_steps}; raise it with --max-steps to train on); ` +
          `train ${s.lossName} ${fmt(s.loss)}, test ${s.lossName} ${fmt(s.testLoss)} (from checkpoint ${s.checkpoint})\n`,
      );
    } else if (!flags.quiet) {
      process.stderr.write(
        `done: step ${s.step} (${s.stoppedBy}) in ${formatSeconds(s.seconds)}, train ${s.lossName} ${fmt(s.loss)}, test ${s.lossName} ${fmt(s.testLoss)}, ` +
          `${s.imgPerSec.toFixed(1)} img/s; checkpoint ${s.checkpoint}\n`,
      );
    }
    if (s.stoppedBy === 'SIGINT') return EXIT.SIGINT;
    if (s.stoppedBy === 'SIGTERM') return EXIT.SIGTERM;
    return EXIT.OK;
  } finally {
    logger.close();
    process.off('SIGINT', int);
    process.off('SIGTERM', term);
  }
}

function fmt(x: number | null): string {
  return x === null ? 'n/a' : x.toFixed(4);
}

function gib(bytes: number): string {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(2)} GiB` : `${Math.round(bytes / 2 ** 20)} MiB`;
}

function phaseText(m: MemoryEstimate, cfg: Config): string {
  if (m.peak_phase === 'train') return `a training step at batch ${cfg.train.batch_size}`;
  if (m.peak_phase === 'init') return `ActNorm's init over ${cfg.model.init_batch} examples (model.init_batch)`;
  if (m.peak_phase === 'eval') return 'the test-bpd pass at checkpoints';
  return `the ${cfg.train.sample_grid}-sample grid (train.sample_grid)`;
}

function workersText(cfg: Config): string {
  return cfg.train.workers > 1 ? `${cfg.train.workers} worker threads; ` : '';
}
