// The training loop: maximum likelihood (bits/dim) with Adam/Adamax, warm-up, gradient clipping,
// a non-finite-step guard, checkpoints that resume exactly, and budgets in steps and minutes.
import fs from 'node:fs';
import path from 'node:path';
import { tf } from '../tf.js';
import type { Config } from '../config/schema.js';
import { dumpConfig } from '../config/load.js';
import { checkConsistency, checkDatasetConsistency } from '../config/validate.js';
import { loadDataset, type Dataset } from '../data/index.js';
import { BatchIterator, toPixels } from '../data/preprocess.js';
import { buildModel, countParameters, type FlowModel } from '../flows/model.js';
import { saveCheckpoint, latestCheckpoint, newestCheckpoint, loadCheckpoint, assertCompatible, type TensorRecord } from '../io/checkpoint.js';
import { atomicWriteFile, toStorageError } from '../io/atomic.js';
import { acquireRunLock } from '../io/lock.js';
import { modelRecords, assignModel, recordsByName, type ModelMeta } from '../io/model-io.js';
import { markLatest, runDirOf } from '../io/run.js';
import { parseTrainState, type TrainState } from '../io/train-state.js';
import { writeGrid } from '../io/png.js';
import type { DataSize } from './memory-estimate.js';
import { perExampleLogProb, bitsPerDim, meanAndStderr } from '../eval/bpd.js';
import { Optimizer, learningRate, runProgress } from './optimizer.js';
import { ParallelGradients } from './parallel.js';
import { initializeModel, makeBatch, StepRunner, type SettledStep, type StepOptions } from './step.js';
import { WeightAverage } from './average.js';
import type { TrainLogger } from './logger.js';
import { Rng } from '../rng.js';
import { FlowFailure, UserError } from '../errors.js';

export interface TrainOptions {
  /** 'auto': continue from the run's last checkpoint when there is one; 'fresh': archive old checkpoints, start at step 0. */
  resume: 'auto' | 'fresh';
  logger: TrainLogger;
  /** Polled between steps; returns the signal name when the process was asked to stop. */
  stopRequested?: () => 'SIGINT' | 'SIGTERM' | null;
  dryRun?: boolean;
  /** Warnings that must be seen even with --quiet (default: stderr). */
  warn?: (line: string) => void;
}

export interface TrainSummary {
  runDir: string;
  step: number;
  stoppedBy: 'max_steps' | 'max_minutes' | 'SIGINT' | 'SIGTERM' | 'dry_run';
  loss: number | null;
  lossName: 'bpd' | 'nll';
  testLoss: number | null;
  checkpoint: string | null;
  imgPerSec: number;
  seconds: number;
  skippedSteps: number;
  resumedFrom: number | null;
  parameters: number;
  dataShape: number[];
  /** Resumed from an older checkpoint because the newest was unusable: what was wrong with it. */
  resumeWarning?: string;
  /** The run was already at train.max_steps: no step was run; loss and testLoss come from its last checkpoint. */
  nothingToDo?: boolean;
  /** --dry-run only: why the data could not be read (the model was sized from the format's known shape). */
  dataError?: UserError | null;
  /** --dry-run only: the loaded data's size, for the memory estimate (absent when the data could not be read). */
  dataSize?: DataSize;
}

export async function train(cfg: Config, opts: TrainOptions): Promise<TrainSummary> {
  const log = opts.logger;
  if (opts.dryRun) return dryRun(cfg, log);
  const data = await loadDataset(cfg.data, { seed: cfg.seed });
  checkDatasetConsistency(cfg, data);
  const dims = data.shape.reduce((a, b) => a * b, 1);
  const nBins = 2 ** cfg.data.n_bits;
  const lossName = data.kind === 'image' ? 'bpd' : 'nll';
  const meta: ModelMeta = {
    dataShape: data.shape,
    dataKind: data.kind,
    numClasses: cfg.model.conditional === 'classes' ? data.numClasses : undefined,
    classNames: data.classNames,
    nBits: cfg.data.n_bits,
  };
  const model = buildModel(cfg.model, data.shape, { seed: cfg.seed, numClasses: meta.numClasses });
  const parameters = countParameters(model);
  log.info(`data: ${data.name} ${data.kind} [${data.shape.join('x')}], ${data.train.n} train / ${data.test.n} test; model: ${cfg.model.family} ${parameters.toLocaleString('en')} parameters`);

  const runDir = runDirOf(cfg.runs_dir, cfg.name);
  try {
    fs.mkdirSync(runDir, { recursive: true });
  } catch (e) {
    model.dispose();
    throw toStorageError(e, 'run directory', runDir);
  }
  const lock = acquireRunLock(runDir);
  if (lock.tookOverStale) log.info(`took over a stale lock in ${runDir} (${lock.staleReason})`);
  const params = model.variables().filter(([, v]) => v.trainable);
  const paramNames = params.map(([n]) => n);
  const optimizer = new Optimizer(cfg.train.optimizer, params.map(([, v]) => v));
  const average = cfg.train.average_decay > 0 ? new WeightAverage(cfg.train.average_decay, optimizer.params) : null;
  // Test bpd and sample grids use the averaged weights when averaging is on.
  const averaged = <T>(fn: () => T | Promise<T>): Promise<T> => (average ? average.withAveraged(fn) : Promise.resolve(fn()));
  const iterator = new BatchIterator(data.train.n, cfg.train.batch_size, cfg.seed);
  const noiseRng = new Rng(cfg.seed + 1);
  const st: TrainState = { meta, step: 0, optimizerT: 0, iterator: iterator.getState(), noiseRng: 0, lrScale: 1, bestTest: null, skippedSteps: 0 };

  let restoredMetrics: Record<string, number> = {};
  const restore = (dir: string) => {
    const c = loadCheckpoint(dir);
    restoredMetrics = c.metrics ?? {};
    assertCompatible(c.config, cfg, dir);
    const state = parseTrainState(c.state, dir);
    const byName = recordsByName(c);
    assignModel(model, byName, dir);
    optimizer.restore(paramNames, byName);
    average?.restore(paramNames, byName);
    Object.assign(st, state);
    optimizer.t = st.optimizerT;
    iterator.setState(st.iterator);
    noiseRng.state = st.noiseRng;
  };

  let resumedFrom: number | null = null;
  let parallel: ParallelGradients | null = null;
  // existing: the newest usable checkpoint; newest: the newest one there is, usable or not.
  const existing = latestCheckpoint(runDir);
  const newest = newestCheckpoint(runDir);
  const metricsFile = path.join(runDir, 'metrics.ndjson');
  let resumeWarning: string | undefined;
  let latestMarked = false;
  try {
    if (opts.resume === 'auto' && newest?.problem && !existing) {
      throw new UserError(`${runDir}: the newest checkpoint ${newest.name} is unusable (${newest.problem}) and there is no older usable one; pass --fresh to start at step 0 (the old files move to ${path.join(runDir, 'archive')}/)`);
    }
    if (existing && opts.resume === 'auto') {
      restore(existing);
      resumedFrom = st.step;
      if (newest && newest.dir !== existing) {
        // Never fall back silently: the steps after this checkpoint are lost and readers refuse the damaged one until a save passes it.
        resumeWarning = `the newest checkpoint ${newest.name} is unusable (${newest.problem}); resuming from the older ${path.basename(existing)}, steps ${st.step + 1}..${newest.step} are trained again`;
        (opts.warn ?? ((l: string) => process.stderr.write(l + '\n')))(`WARNING: ${runDir}: ${resumeWarning}`);
        appendMetrics(metricsFile, { time: new Date().toISOString(), event: 'resumed_from_older_checkpoint', resumed_step: st.step, newest_checkpoint: newest.name, newest_step: newest.step, problem: newest.problem });
        log.event({ event: 'resumed_from_older_checkpoint', resumed_step: st.step, newest_checkpoint: newest.name, problem: newest.problem });
      }
      log.info(`resuming ${runDir} from step ${st.step} (${existing})`);
      // The run already has a checkpoint: it becomes <runs>/latest now.
      markLatest(cfg.runs_dir, cfg.name);
      latestMarked = true;
    } else {
      // Step 0 in a run directory that has files: move them all aside, so no old metrics or samples mix with the new run's.
      archiveRun(runDir, log, opts.resume === 'fresh' ? '--fresh' : 'starting at step 0');
      initializeModel(model, cfg, data);
      average?.reset();
    }
    const maxSteps = cfg.train.max_steps;
    if (resumedFrom !== null && maxSteps > 0 && st.step >= maxSteps) {
      // Nothing left to do: report the figures the run finished with instead of nulls.
      const figure = (key: string): number | null => {
        const v = restoredMetrics[key];
        return typeof v === 'number' && Number.isFinite(v) ? v : lastLogged(metricsFile, key, st.step);
      };
      return {
        runDir,
        step: st.step,
        stoppedBy: 'max_steps',
        loss: figure(`train_${lossName}`),
        lossName,
        testLoss: figure(`test_${lossName}`),
        checkpoint: existing,
        imgPerSec: 0,
        seconds: 0,
        skippedSteps: st.skippedSteps,
        resumedFrom,
        parameters,
        dataShape: data.shape,
        resumeWarning,
        nothingToDo: true,
      };
    }
    atomicWriteFile(path.join(runDir, 'config.yaml'), dumpConfig(cfg));
    // train.workers > 1: worker threads (each its own wasm backend) compute shares of every batch.
    if (cfg.train.workers > 1) {
      parallel = await ParallelGradients.create(cfg, meta, cfg.train.workers);
      log.info(`data-parallel: ${cfg.train.workers} threads`);
    }

    const deadline = cfg.train.max_minutes > 0 ? Date.now() + cfg.train.max_minutes * 60_000 : Infinity;
    const started = Date.now();
    let lastCheckpoint: string | null = existing && resumedFrom !== null ? existing : null;
    let lastCheckpointStep = resumedFrom ?? -1;
    let lastLoss: number | null = null;
    let lastTest: number | null = null;
    let consecutiveBad = 0;
    let rollbacks = 0;
    let windowStart = performance.now();
    let windowImages = 0;
    let totalImages = 0;
    let stoppedBy: TrainSummary['stoppedBy'] = 'max_steps';

    // 'full' also measures test loss and writes a sample grid; 'fast' (on SIGINT/SIGTERM) only saves, to exit within seconds.
    const checkpoint = async (mode: 'full' | 'fast') => {
      const test = mode === 'full' ? await averaged(() => evaluateTest(model, data, cfg)) : null;
      lastTest = test;
      if (test !== null && (st.bestTest === null || test < st.bestTest)) st.bestTest = test;
      st.optimizerT = optimizer.t;
      st.iterator = iterator.getState();
      st.noiseRng = noiseRng.state;
      const tensors: TensorRecord[] = [...(await modelRecords(model)), ...(await optimizer.records(paramNames)), ...(average ? await average.records(paramNames) : [])];
      const bad = tensors.find((t) => !allFinite(t.data));
      if (bad) throw new FlowFailure(`refusing to checkpoint step ${st.step}: ${bad.name} holds non-finite values; the last good checkpoint is ${lastCheckpoint ?? 'none'}`);
      const metrics: Record<string, number> = {};
      if (test !== null) metrics[`test_${lossName}`] = test;
      if (lastLoss !== null) metrics[`train_${lossName}`] = lastLoss;
      const dir = saveCheckpoint(runDir, { step: st.step, tensors, state: st, config: cfg, metrics }, { keepLast: cfg.train.keep_last, bestMetric: `test_${lossName}` });
      lastCheckpoint = dir;
      lastCheckpointStep = st.step;
      if (!latestMarked) {
        // A new run becomes <runs>/latest with its first checkpoint, so a run that fails earlier never takes the link.
        markLatest(cfg.runs_dir, cfg.name);
        latestMarked = true;
      }
      fs.appendFileSync(metricsFile, JSON.stringify({ step: st.step, [`test_${lossName}`]: test }) + '\n');
      log.event({ event: 'checkpoint', step: st.step, path: dir, test });
      if (mode === 'full' && data.kind === 'image' && cfg.train.sample_grid > 0) {
        await averaged(() => writeSampleGrid(model, cfg, meta, path.join(runDir, 'samples', `step-${String(st.step).padStart(8, '0')}.png`), undefined, st.step));
      }
    };

    const runner = new StepRunner(model, optimizer, average, parallel ? parallel.lossAndGrads.bind(parallel) : undefined);
    // Takes in the outcomes of finished steps: counts skips, logs them, rolls back after too many in a
    // row. Returns false after a rollback (the remaining outcomes described steps that no longer count).
    const absorb = (settled: SettledStep[]): boolean => {
      for (const result of settled) {
        if (result.applied) {
          consecutiveBad = 0;
          lastLoss = result.loss;
          continue;
        }
        st.skippedSteps += 1;
        consecutiveBad += 1;
        // Numbers like every other event's; null where not finite (JSON has no NaN or Infinity).
        log.event({ event: 'nonfinite_step_skipped', step: result.step, loss: finiteOrNull(result.loss), grad_norm: finiteOrNull(result.gradNorm), in_a_row: consecutiveBad });
        if (consecutiveBad >= cfg.train.nan_skip_limit) {
          if (!lastCheckpoint) {
            throw new FlowFailure(`training diverged: ${consecutiveBad} non-finite steps in a row at step ${result.step} and no checkpoint to roll back to; lower train.lr (now ${cfg.train.lr}) or add train.warmup_steps`);
          }
          if (++rollbacks > MAX_ROLLBACKS) {
            throw new FlowFailure(`training diverged: still non-finite at step ${result.step} after ${MAX_ROLLBACKS} rollbacks (LR scale ${st.lrScale}); the last good checkpoint is ${lastCheckpoint}`);
          }
          const lrScale = st.lrScale / 2;
          const skipped = st.skippedSteps;
          runner.discard();
          restore(lastCheckpoint);
          st.lrScale = lrScale;
          st.skippedSteps = skipped;
          consecutiveBad = 0;
          log.event({ event: 'rollback', to_step: st.step, lr_scale: lrScale });
          return false;
        }
      }
      return true;
    };

    while (true) {
      const signal = opts.stopRequested?.();
      if (signal) {
        stoppedBy = signal;
        break;
      }
      if (maxSteps > 0 && st.step >= maxSteps) break;
      if (Date.now() >= deadline) {
        stoppedBy = 'max_minutes';
        break;
      }
      const step = st.step + 1;
      const logNow = step % cfg.train.log_every === 0 || step === maxSteps;
      const evalNow = cfg.train.eval_every > 0 && step % cfg.train.eval_every === 0 && step % cfg.train.checkpoint_every !== 0;
      const checkpointNow = step % cfg.train.checkpoint_every === 0;
      const { indices } = iterator.next();
      const batch = makeBatch(data, indices, cfg, noiseRng);
      const progress = runProgress(st.step, maxSteps, Date.now() - started, cfg.train.max_minutes);
      const lr = learningRate(cfg.train.lr, cfg.train.warmup_steps, step, cfg.train.lr_schedule, progress) * st.lrScale;
      const stepOptions: StepOptions = { dims, nBins, lossName, lr, maxGradNorm: cfg.train.max_grad_norm, classLossWeight: cfg.model.class_loss_weight, inject: injectNonFinite(step) };
      // On a GPU the outcomes are read only where something needs them (a log line, an eval, a checkpoint).
      const settled = await runner.run(step, batch, stepOptions, logNow || evalNow || checkpointNow || runner.backlog >= MAX_UNREAD_STEPS);
      batch.x.dispose();
      batch.labels?.dispose();
      st.step = step;
      if (!absorb(settled)) {
        await yieldToEventLoop();
        continue;
      }
      // A skipped step neither logs nor evaluates nor checkpoints.
      if (settled.some((r) => r.step === step && !r.applied)) {
        await yieldToEventLoop();
        continue;
      }
      windowImages += indices.length;
      totalImages += indices.length;
      if (logNow) {
        const now = performance.now();
        const imgPerSec = (windowImages / (now - windowStart)) * 1000;
        windowStart = now;
        windowImages = 0;
        const elapsedSec = (Date.now() - started) / 1000;
        const stepsLeft = maxSteps > 0 ? maxSteps - st.step : Infinity;
        const etaSteps = imgPerSec > 0 ? (stepsLeft * cfg.train.batch_size) / imgPerSec : null;
        const etaTime = deadline === Infinity ? null : (deadline - Date.now()) / 1000;
        const eta = etaSteps === null || !Number.isFinite(etaSteps) ? etaTime : etaTime === null ? etaSteps : Math.min(etaSteps, etaTime);
        log.progress({ step: st.step, maxSteps, loss: lastLoss ?? NaN, lr, imgPerSec, elapsedSec, etaSec: eta });
        fs.appendFileSync(metricsFile, JSON.stringify({ step: st.step, [`train_${lossName}`]: lastLoss, lr, img_per_s: imgPerSec }) + '\n');
      }
      if (evalNow) {
        const test = await averaged(() => evaluateTest(model, data, cfg));
        log.event({ event: 'eval', step: st.step, [`test_${lossName}`]: test });
        fs.appendFileSync(metricsFile, JSON.stringify({ step: st.step, [`test_${lossName}`]: test }) + '\n');
      }
      if (checkpointNow) await checkpoint('full');
      await yieldToEventLoop();
    }
    absorb(await runner.settle());
    // Always end on a checkpoint; on a signal skip the sample grid so we exit within seconds.
    if (st.step !== lastCheckpointStep) await checkpoint(stoppedBy === 'SIGINT' || stoppedBy === 'SIGTERM' ? 'fast' : 'full');
    const seconds = (Date.now() - started) / 1000;
    return {
      runDir,
      step: st.step,
      stoppedBy,
      loss: lastLoss,
      lossName,
      testLoss: lastTest,
      checkpoint: lastCheckpoint,
      imgPerSec: seconds > 0 ? totalImages / seconds : 0,
      seconds,
      skippedSteps: st.skippedSteps,
      resumedFrom,
      parameters,
      dataShape: data.shape,
      resumeWarning,
    };
  } finally {
    await parallel?.dispose();
    average?.dispose();
    optimizer.dispose();
    model.dispose();
    lock.release();
  }
}


/**
 * Test hook (documented in README): FLOW_INJECT_NONFINITE=5,6,7 makes the loss of those steps NaN, once
 * each, like a transient fault (after a rollback the same step numbers run clean).
 */
const injected = new Set<number>();
function injectNonFinite(step: number): boolean {
  const spec = process.env.FLOW_INJECT_NONFINITE;
  if (!spec || injected.has(step) || !spec.split(',').some((s) => Number(s) === step)) return false;
  injected.add(step);
  return true;
}

/** On a GPU, the most steps run before their outcomes are read (bounds the pending tensors when log_every is large). */
const MAX_UNREAD_STEPS = 50;

/** Rollbacks allowed in one invocation before we call the run diverged rather than unlucky. */
const MAX_ROLLBACKS = 3;


/** Mean test loss over the first eval_examples test examples (fixed, seeded noise), or null without a test split. */
async function evaluateTest(model: FlowModel, data: Dataset, cfg: Config): Promise<number | null> {
  if (data.test.n === 0) return null;
  const n = cfg.train.eval_examples > 0 ? Math.min(cfg.train.eval_examples, data.test.n) : data.test.n;
  const indices = Array.from({ length: n }, (_, i) => i);
  const dims = data.shape.reduce((a, b) => a * b, 1);
  const logp = await perExampleLogProb(model, data.test, data.shape, data.kind, { nBits: cfg.data.n_bits, seed: cfg.seed, batchSize: Math.max(cfg.train.batch_size, 64), indices, dequantize: cfg.data.dequantize === 'uniform' });
  const values = data.kind === 'image' ? logp.map((l) => bitsPerDim(l, dims, 2 ** cfg.data.n_bits)) : logp.map((l) => -l / dims);
  return meanAndStderr(values).mean;
}

export async function writeSampleGrid(model: FlowModel, cfg: Config, meta: ModelMeta, file: string, n = cfg.train.sample_grid, step?: number): Promise<void> {
  const rng = new Rng(cfg.seed + 4);
  const labels = meta.numClasses ? tf.tensor1d(Array.from({ length: n }, (_, i) => i % meta.numClasses!), 'int32') : undefined;
  const x = model.sample(n, cfg.sample.temperature, rng, labels);
  const values = (await x.data()) as Float32Array;
  x.dispose();
  labels?.dispose();
  const [h, w, c] = meta.dataShape as [number, number, number];
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const caption = [`run ${cfg.name}`, ...(step !== undefined ? [`step ${step}`] : []), `T=${cfg.sample.temperature}`];
  await writeGrid(file, { pixels: toPixels(values, meta.nBits), n, height: h, width: w, channels: c }, undefined, { caption });
}

// What a run directory holds from its training; archived together so the archive is itself a run directory
// (flow eval --run <run>/archive/<time> works) and the new run starts with none of the old one's files.
const RUN_FILES = ['checkpoints', 'metrics.ndjson', 'samples', 'config.yaml', 'curves.png'];

/** Moves the run's files to <run>/archive/<time>/ (nothing when there are none). */
function archiveRun(runDir: string, log: TrainLogger, why: string): void {
  const present = RUN_FILES.filter((f) => fs.existsSync(path.join(runDir, f)));
  if (!present.length) return;
  const to = path.join(runDir, 'archive', new Date().toISOString().replace(/[:.]/g, '-'));
  try {
    fs.mkdirSync(to, { recursive: true });
    for (const f of present) fs.renameSync(path.join(runDir, f), path.join(to, f));
  } catch (e) {
    throw toStorageError(e, 'archive of the old run', to);
  }
  log.info(`${why}: moved the old run's ${present.join(', ')} to ${to}`);
}

function appendMetrics(file: string, obj: Record<string, unknown>): void {
  fs.appendFileSync(file, JSON.stringify(obj) + '\n');
}

/** The last value of key logged at `step` in metrics.ndjson, or null (a finished run's figures when its checkpoint lacks them). */
function lastLogged(file: string, key: string, step: number): number | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  let found: number | null = null;
  for (const line of text.split('\n')) {
    try {
      const o = JSON.parse(line) as Record<string, unknown>;
      if (o.step === step && typeof o[key] === 'number' && Number.isFinite(o[key])) found = o[key] as number;
    } catch {
      /* a torn line */
    }
  }
  return found;
}

/**
 * --dry-run: validate the config and the data, build the model, report its size; no run directory is touched.
 * When the data cannot be read but its shape is known (cifar10 is always 32x32x3), the model is still sized and
 * the data problem is returned with the summary, so CI sees both.
 */
async function dryRun(cfg: Config, log: TrainLogger): Promise<TrainSummary> {
  let data: Dataset | null = null;
  let dataError: UserError | null = null;
  try {
    data = await loadDataset(cfg.data, { seed: cfg.seed });
  } catch (e) {
    if (!(e instanceof UserError)) throw e;
    dataError = e;
  }
  const shape = data?.shape ?? knownDataShape(cfg);
  if (!shape) throw dataError!;
  if (data) checkDatasetConsistency(cfg, data);
  else checkConsistency(cfg, shape);
  const numClasses = cfg.model.conditional === 'classes' ? data?.numClasses ?? (cfg.data.source === 'cifar10' ? 10 : undefined) : undefined;
  const model = buildModel(cfg.model, shape, { seed: cfg.seed, numClasses });
  const parameters = countParameters(model);
  model.dispose();
  if (data) log.info(`data: ${data.name} ${data.kind} [${data.shape.join('x')}], ${data.train.n} train / ${data.test.n} test`);
  return {
    runDir: runDirOf(cfg.runs_dir, cfg.name),
    step: 0,
    stoppedBy: 'dry_run',
    loss: null,
    lossName: shape.length === 3 ? 'bpd' : 'nll',
    testLoss: null,
    checkpoint: null,
    imgPerSec: 0,
    seconds: 0,
    skippedSteps: 0,
    resumedFrom: null,
    parameters,
    dataShape: shape,
    dataError,
    ...(data ? { dataSize: { bytes: data.train.x.byteLength + data.test.x.byteLength, trainExamples: data.train.n, testExamples: data.test.n } } : {}),
  };
}

/** Shapes fixed by the format, for sizing a model when the files are absent. */
function knownDataShape(cfg: Config): number[] | null {
  const d = cfg.data;
  if (d.source === 'cifar10') return d.image_size ? [d.image_size, d.image_size, d.channels || 3] : [32, 32, d.channels || 3];
  if (d.source === 'embedded' || d.source === 'idx') return d.image_size ? [d.image_size, d.image_size, d.channels || 1] : [28, 28, d.channels || 1];
  if (d.source === 'images' && d.image_size) return [d.image_size, d.image_size, d.channels || 3];
  if (d.source === 'toy') return [2];
  return null;
}

function allFinite(a: Float32Array | Int32Array): boolean {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) return false;
  return true;
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function finiteOrNull(x: number): number | null {
  return Number.isFinite(x) ? x : null;
}
