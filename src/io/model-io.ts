// Moving a model's variables in and out of checkpoint records, and rebuilding a trained model
// from its checkpoint alone (the shape of the data and the class count are saved with it).
import { tf } from '../tf.js';
import type { FlowModel } from '../flows/model.js';
import { buildModel } from '../flows/model.js';
import type { Config } from '../config/schema.js';
import { loadCheckpoint, type CheckpointContent, type TensorRecord } from './checkpoint.js';
import { record } from '../train/optimizer.js';
import { UserError } from '../errors.js';

/** What a checkpoint must know about the data to rebuild the model without loading the data. */
export interface ModelMeta {
  dataShape: number[];
  dataKind: 'image' | 'vector';
  numClasses?: number;
  classNames?: string[];
  nBits: number;
}

export function modelRecords(model: FlowModel): TensorRecord[] {
  return model.variables().map(([name, v]) => record(`model.${name}`, v));
}

export function assignModel(model: FlowModel, byName: Map<string, TensorRecord>, source: string): void {
  tf.tidy(() => {
    for (const [name, v] of model.variables()) {
      const r = byName.get(`model.${name}`);
      if (!r) throw new UserError(`${source}: checkpoint has no tensor model.${name}; expected a checkpoint of this model config`);
      if (r.shape.join('x') !== v.shape.join('x')) {
        throw new UserError(`${source}: tensor model.${name} has shape [${r.shape}], expected [${v.shape}]`);
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
}

export function loadModel(checkpointDir: string): LoadedModel {
  const checkpoint = loadCheckpoint(checkpointDir);
  const state = checkpoint.state as { meta?: ModelMeta };
  if (!state?.meta) throw new UserError(`${checkpointDir}: state.json has no model meta; expected a checkpoint written by flow train`);
  const config = checkpoint.config;
  const model = buildModel(config.model, state.meta.dataShape, { seed: config.seed, numClasses: state.meta.numClasses });
  assignModel(model, recordsByName(checkpoint), checkpointDir);
  return { model, config, meta: state.meta, step: checkpoint.step, checkpoint };
}
