// One `flow train` invocation's working set, shared by the resume, the loop, the non-finite guard and
// checkpointing: the model and optimizer, the data order and noise, the resumable state and the figures
// the summary reports.
import type { Config } from '../config/schema.js';
import type { Dataset } from '../data/index.js';
import type { BatchIterator } from '../data/preprocess.js';
import type { FlowModel } from '../flows/model.js';
import type { ModelMeta } from '../io/model-io.js';
import type { TrainState } from '../io/train-state.js';
import type { Rng } from '../rng.js';
import type { WeightAverage } from './average.js';
import type { TrainLogger } from './logger.js';
import type { MetricsLog } from './metrics.js';
import type { Optimizer } from './optimizer.js';
import type { LatestLink } from './run-dir.js';

export interface TrainSession {
  readonly cfg: Config;
  readonly log: TrainLogger;
  readonly data: Dataset;
  readonly meta: ModelMeta;
  readonly lossName: 'bpd' | 'nll';
  readonly model: FlowModel;
  readonly optimizer: Optimizer;
  /** The Polyak average of the parameters (train.average_decay > 0), else null. */
  readonly average: WeightAverage | null;
  /** Names of the optimizer's parameters, in its order (checkpoint records are keyed by them). */
  readonly paramNames: string[];
  readonly iterator: BatchIterator;
  /** The training noise stream (dequantisation), saved in checkpoints. */
  readonly noiseRng: Rng;
  readonly runDir: string;
  readonly metrics: MetricsLog;
  readonly latest: LatestLink;
  /** Everything besides tensors that an exact resume needs (state.json); restored in place. */
  readonly state: TrainState;
  /** The checkpoint to roll back to (the newest this invocation wrote or resumed from), and its step (-1: none). */
  lastCheckpoint: string | null;
  lastCheckpointStep: number;
  /** The last applied step's loss and the last measured test loss, for the summary. */
  lastLoss: number | null;
  lastTest: number | null;
}

/** Runs fn with the averaged weights when averaging is on (test loss and sample grids use them). */
export function withAveraged<T>(s: TrainSession, fn: () => T | Promise<T>): Promise<T> {
  return s.average ? s.average.withAveraged(fn) : Promise.resolve(fn());
}
