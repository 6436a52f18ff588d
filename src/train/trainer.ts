// `flow train`: maximum likelihood (bits/dim) with Adam/Adamax, warm-up, gradient clipping, a
// non-finite-step guard, checkpoints that resume exactly, and budgets in steps and minutes. This module
// sets a run up and tears it down; the pieces live beside it: run-dir.ts (lock, archive, latest),
// resume.ts (where the run starts), loop.ts (the steps), rollback.ts (the non-finite guard), save.ts
// (checkpoints), evaluate.ts (test loss, sample grids), metrics.ts (metrics.ndjson), dry-run.ts.
import path from 'node:path';
import type { Config } from '../config/schema.js';
import { dumpConfig } from '../config/load.js';
import { checkDatasetConsistency } from '../config/validate.js';
import { loadDataset } from '../data/index.js';
import { BatchIterator } from '../data/preprocess.js';
import { buildModel, countParameters } from '../flows/model.js';
import { atomicWriteFile } from '../io/atomic.js';
import type { ModelMeta } from '../io/model-io.js';
import { runDirOf } from '../io/run.js';
import { Rng } from '../rng.js';
import { Optimizer } from './optimizer.js';
import { ParallelGradients } from './parallel.js';
import { StepRunner } from './step.js';
import { WeightAverage } from './average.js';
import { dryRun } from './dry-run.js';
import { MetricsLog } from './metrics.js';
import { LatestLink, openRunDir } from './run-dir.js';
import { resumeOrStart } from './resume.js';
import { runTrainingLoop } from './loop.js';
import type { TrainSession } from './session.js';
import type { TrainOptions, TrainSummary } from './options.js';

export type { TrainOptions, TrainSummary } from './options.js';

export async function train(cfg: Config, opts: TrainOptions): Promise<TrainSummary> {
  const log = opts.logger;
  if (opts.dryRun) return dryRun(cfg, log);
  const data = await loadDataset(cfg.data, { seed: cfg.seed });
  checkDatasetConsistency(cfg, data);
  const lossName: 'bpd' | 'nll' = data.kind === 'image' ? 'bpd' : 'nll';
  const meta: ModelMeta = {
    dataShape: data.shape,
    dataKind: data.kind,
    numClasses: cfg.model.conditional === 'classes' ? data.numClasses : undefined,
    classNames: data.classNames,
    nBits: cfg.data.n_bits,
  };
  const model = buildModel(cfg.model, data.shape, { seed: cfg.seed, numClasses: meta.numClasses, nBits: cfg.data.n_bits });
  const parameters = countParameters(model);
  log.info(`data: ${data.name} ${data.kind} [${data.shape.join('x')}], ${data.train.n} train / ${data.test.n} test; model: ${cfg.model.family} ${parameters.toLocaleString('en')} parameters`);

  const runDir = runDirOf(cfg.runs_dir, cfg.name);
  let lock: ReturnType<typeof openRunDir>;
  try {
    lock = openRunDir(runDir, log);
  } catch (e) {
    model.dispose();
    throw e;
  }
  const params = model.variables().filter(([, v]) => v.trainable);
  const optimizer = new Optimizer(cfg.train.optimizer, params.map(([, v]) => v));
  const average = cfg.train.average_decay > 0 ? new WeightAverage(cfg.train.average_decay, optimizer.params) : null;
  const iterator = new BatchIterator(data.train.n, cfg.train.batch_size, cfg.seed);
  const s: TrainSession = {
    cfg,
    log,
    data,
    meta,
    lossName,
    model,
    optimizer,
    average,
    paramNames: params.map(([n]) => n),
    iterator,
    noiseRng: new Rng(cfg.seed + 1),
    runDir,
    metrics: new MetricsLog(path.join(runDir, 'metrics.ndjson')),
    latest: new LatestLink(cfg.runs_dir, cfg.name),
    state: { meta, step: 0, optimizerT: 0, iterator: iterator.getState(), noiseRng: 0, lrScale: 1, bestTest: null, skippedSteps: 0 },
    lastCheckpoint: null,
    lastCheckpointStep: -1,
    lastLoss: null,
    lastTest: null,
  };
  let parallel: ParallelGradients | null = null;
  try {
    const start = resumeOrStart(s, opts.resume, opts.warn ?? ((l: string) => process.stderr.write(l + '\n')));
    const { resumedFrom, resumeWarning } = start;
    const report = { runDir, lossName, resumedFrom, parameters, dataShape: data.shape, resumeWarning };
    const maxSteps = cfg.train.max_steps;
    if (resumedFrom !== null && maxSteps > 0 && s.state.step >= maxSteps) {
      // Nothing left to do: report the figures the run finished with instead of nulls.
      const figure = (key: string): number | null => {
        const v = start.restoredMetrics[key];
        return typeof v === 'number' && Number.isFinite(v) ? v : s.metrics.lastLogged(key, s.state.step);
      };
      return {
        ...report,
        step: s.state.step,
        stoppedBy: 'max_steps',
        loss: figure(`train_${lossName}`),
        testLoss: figure(`test_${lossName}`),
        checkpoint: start.checkpoint,
        imgPerSec: 0,
        seconds: 0,
        skippedSteps: s.state.skippedSteps,
        nothingToDo: true,
      };
    }
    atomicWriteFile(path.join(runDir, 'config.yaml'), dumpConfig(cfg));
    // train.workers > 1: worker threads (each its own wasm backend) compute shares of every batch.
    if (cfg.train.workers > 1) {
      parallel = await ParallelGradients.create(cfg, meta, cfg.train.workers);
      log.info(`data-parallel: ${cfg.train.workers} threads`);
    }
    const runner = new StepRunner(model, optimizer, average, parallel ? parallel.lossAndGrads.bind(parallel) : undefined);
    const loop = await runTrainingLoop(s, runner, opts.stopRequested);
    return {
      ...report,
      step: s.state.step,
      stoppedBy: loop.stoppedBy,
      loss: s.lastLoss,
      testLoss: s.lastTest,
      checkpoint: s.lastCheckpoint,
      imgPerSec: loop.seconds > 0 ? loop.totalImages / loop.seconds : 0,
      seconds: loop.seconds,
      skippedSteps: s.state.skippedSteps,
    };
  } finally {
    await parallel?.dispose();
    average?.dispose();
    optimizer.dispose();
    model.dispose();
    lock.release();
  }
}
