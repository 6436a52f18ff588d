// Moving a model's variables in and out of checkpoint records, and rebuilding a trained model
// from its checkpoint alone (the shape of the data and the class count are saved with it).
import { tf } from '../tf.js';
import type { FlowModel } from '../flows/model.js';
import { buildModel } from '../flows/model.js';
import type { Config } from '../config/schema.js';
import { loadCheckpoint, record, type CheckpointContent, type TensorRecord } from './checkpoint.js';
import { UserError } from '../errors.js';
import { parseModelMeta } from './train-state.js';

/** What a checkpoint must know about the data to rebuild the model without loading the data. */
export interface ModelMeta {
  dataShape: number[];
  dataKind: 'image' | 'vector';
  numClasses?: number;
  classNames?: string[];
  nBits: number;
}

/** Checkpoint record name of the (Polyak) average of parameter `name`. */
export const averageRecordName = (name: string): string => `average.${name}`;

export function modelRecords(model: FlowModel): Promise<TensorRecord[]> {
  return Promise.all(model.variables().map(([name, v]) => record(`model.${name}`, v)));
}

export function assignModel(model: FlowModel, byName: Map<string, TensorRecord>, source: string): void {
  assignVariables(model.variables(), byName, (name) => `model.${name}`, source);
}

/** Assigns each variable the record keyOf(name), which must exist with the variable's shape. */
function assignVariables(vars: Array<[string, tf.Variable]>, byName: Map<string, TensorRecord>, keyOf: (name: string) => string, source: string): void {
  tf.tidy(() => {
    for (const [name, v] of vars) {
      const key = keyOf(name);
      const r = byName.get(key);
      if (!r) throw new UserError(`${source}: checkpoint has no tensor ${key}; expected a checkpoint of this model config`);
      if (r.shape.join('x') !== v.shape.join('x')) {
        throw new UserError(`${source}: tensor ${key} has shape [${r.shape}], expected [${v.shape}]`);
      }
      v.assign(tf.tensor(r.data, r.shape, v.dtype));
    }
  });
}

export function recordsByName(c: CheckpointContent): Map<string, TensorRecord> {
  return new Map(c.tensors.map((t) => [t.name, t]));
}

export interface LoadedModel {
  model: FlowModel;
  config: Config;
  meta: ModelMeta;
  step: number;
  checkpoint: CheckpointContent;
  /** 'average': the run's Polyak-averaged weights (train.average_decay > 0); 'raw': the trained weights. */
  weights: 'average' | 'raw';
}

/**
 * The model of a checkpoint, with its averaged weights when the run kept an average (what the run's
 * test bpd and sample grids used), unless weights is 'raw'.
 */
export function loadModel(checkpointDir: string, weights: 'average' | 'raw' = 'average'): LoadedModel {
  const checkpoint = loadCheckpoint(checkpointDir);
  const meta: ModelMeta = parseModelMeta(checkpoint.state, checkpointDir);
  const config = checkpoint.config;
  const model = buildModel(config.model, meta.dataShape, { seed: config.seed, numClasses: meta.numClasses, nBits: meta.nBits });
  const byName = recordsByName(checkpoint);
  assignModel(model, byName, checkpointDir);
  const trainable = model.variables().filter(([, v]) => v.trainable);
  const useAverage = weights === 'average' && trainable.length > 0 && trainable.every(([name]) => byName.has(averageRecordName(name)));
  if (useAverage) assignVariables(trainable, byName, averageRecordName, checkpointDir);
  return { model, config, meta, step: checkpoint.step, checkpoint, weights: useAverage ? 'average' : 'raw' };
}
