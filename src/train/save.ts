// Checkpointing during training: the session's tensors and state saved atomically (never non-finite
// ones), the metrics line, <runs>/latest, and at full checkpoints the test loss and a sample grid.
import path from 'node:path';
import { saveCheckpoint, type TensorRecord } from '../io/checkpoint.js';
import { modelRecords } from '../io/model-io.js';
import { FlowFailure } from '../errors.js';
import { evaluateTest, writeSampleGrid } from './evaluate.js';
import { withAveraged, type TrainSession } from './session.js';

/** 'full' also measures test loss and writes a sample grid; 'fast' (on SIGINT/SIGTERM) only saves, to exit within seconds. */
export type CheckpointMode = 'full' | 'fast';

export async function saveTrainingCheckpoint(s: TrainSession, mode: CheckpointMode): Promise<void> {
  const { cfg, state: st, lossName } = s;
  const test = mode === 'full' ? await withAveraged(s, () => evaluateTest(s.model, s.data, cfg)) : null;
  s.lastTest = test;
  if (test !== null && (st.bestTest === null || test < st.bestTest)) st.bestTest = test;
  st.optimizerT = s.optimizer.t;
  st.iterator = s.iterator.getState();
  st.noiseRng = s.noiseRng.state;
  const tensors: TensorRecord[] = [...(await modelRecords(s.model)), ...(await s.optimizer.records(s.paramNames)), ...(s.average ? await s.average.records(s.paramNames) : [])];
  const bad = tensors.find((t) => !allFinite(t.data));
  if (bad) throw new FlowFailure(`refusing to checkpoint step ${st.step}: ${bad.name} holds non-finite values; the last good checkpoint is ${s.lastCheckpoint ?? 'none'}`);
  const metrics: Record<string, number> = {};
  if (test !== null) metrics[`test_${lossName}`] = test;
  if (s.lastLoss !== null) metrics[`train_${lossName}`] = s.lastLoss;
  const dir = saveCheckpoint(s.runDir, { step: st.step, tensors, state: st, config: cfg, metrics }, { keepLast: cfg.train.keep_last, bestMetric: `test_${lossName}` });
  s.lastCheckpoint = dir;
  s.lastCheckpointStep = st.step;
  s.latest.mark();
  s.metrics.append({ step: st.step, [`test_${lossName}`]: test });
  s.log.event({ event: 'checkpoint', step: st.step, path: dir, test });
  if (mode === 'full' && s.data.kind === 'image' && cfg.train.sample_grid > 0) {
    await withAveraged(s, () => writeSampleGrid(s.model, cfg, s.meta, path.join(s.runDir, 'samples', `step-${String(st.step).padStart(8, '0')}.png`), undefined, st.step));
  }
}

function allFinite(a: Float32Array | Int32Array): boolean {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) return false;
  return true;
}
