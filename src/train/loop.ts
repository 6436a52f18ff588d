// The training loop: one step per batch until train.max_steps, train.max_minutes or a signal; progress
// lines and metrics at log steps, test loss at eval steps, checkpoints at checkpoint steps and at the end.
import { makeBatch, type StepOptions, type StepRunner } from './step.js';
import { learningRate, runProgress } from './optimizer.js';
import { evaluateTest } from './evaluate.js';
import { NonFiniteGuard } from './rollback.js';
import { saveTrainingCheckpoint } from './save.js';
import { withAveraged, type TrainSession } from './session.js';
import type { StoppedBy } from './options.js';

/** On a GPU, the most steps run before their outcomes are read (bounds the pending tensors when log_every is large). */
const MAX_UNREAD_STEPS = 50;

export interface LoopResult {
  stoppedBy: StoppedBy;
  /** Images of applied steps, and the seconds since the loop started (the final checkpoint included). */
  totalImages: number;
  seconds: number;
}

export async function runTrainingLoop(s: TrainSession, runner: StepRunner, stopRequested?: () => 'SIGINT' | 'SIGTERM' | null): Promise<LoopResult> {
  const { cfg, data, log, state: st, lossName } = s;
  const dims = data.shape.reduce((a, b) => a * b, 1);
  const nBins = 2 ** cfg.data.n_bits;
  const maxSteps = cfg.train.max_steps;
  const deadline = cfg.train.max_minutes > 0 ? Date.now() + cfg.train.max_minutes * 60_000 : Infinity;
  const started = Date.now();
  const guard = new NonFiniteGuard(s, runner);
  let windowStart = performance.now();
  let windowImages = 0;
  let totalImages = 0;
  let stoppedBy: StoppedBy = 'max_steps';

  while (true) {
    const signal = stopRequested?.();
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
    const { indices } = s.iterator.next();
    const batch = makeBatch(data, indices, cfg, s.noiseRng);
    const progress = runProgress(st.step, maxSteps, Date.now() - started, cfg.train.max_minutes);
    const lr = learningRate(cfg.train.lr, cfg.train.warmup_steps, step, cfg.train.lr_schedule, progress) * st.lrScale;
    const stepOptions: StepOptions = { dims, nBins, lossName, lr, maxGradNorm: cfg.train.max_grad_norm, classLossWeight: cfg.model.class_loss_weight, inject: injectNonFinite(step) };
    // On a GPU the outcomes are read only where something needs them (a log line, an eval, a checkpoint).
    const settled = await runner.run(step, batch, stepOptions, logNow || evalNow || checkpointNow || runner.backlog >= MAX_UNREAD_STEPS);
    batch.x.dispose();
    batch.labels?.dispose();
    st.step = step;
    if (!guard.absorb(settled)) {
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
      log.progress({ step: st.step, maxSteps, loss: s.lastLoss ?? NaN, lr, imgPerSec, elapsedSec, etaSec: eta });
      s.metrics.append({ step: st.step, [`train_${lossName}`]: s.lastLoss, lr, img_per_s: imgPerSec });
    }
    if (evalNow) {
      const test = await withAveraged(s, () => evaluateTest(s.model, data, cfg));
      log.event({ event: 'eval', step: st.step, [`test_${lossName}`]: test });
      s.metrics.append({ step: st.step, [`test_${lossName}`]: test });
    }
    if (checkpointNow) await saveTrainingCheckpoint(s, 'full');
    await yieldToEventLoop();
  }
  guard.absorb(await runner.settle());
  // Always end on a checkpoint; on a signal skip the sample grid so we exit within seconds.
  if (st.step !== s.lastCheckpointStep) await saveTrainingCheckpoint(s, stoppedBy === 'SIGINT' || stoppedBy === 'SIGTERM' ? 'fast' : 'full');
  return { stoppedBy, totalImages, seconds: (Date.now() - started) / 1000 };
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

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
