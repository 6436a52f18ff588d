// `flow train --dry-run`: validate the config and the data, build the model, report its size; no run
// directory is touched.
import type { Config } from '../config/schema.js';
import { checkConsistency, checkDatasetConsistency } from '../config/validate.js';
import { loadDataset, type Dataset } from '../data/index.js';
import { buildModel, countParameters } from '../flows/model.js';
import { runDirOf } from '../io/run.js';
import { UserError } from '../errors.js';
import type { TrainLogger } from './logger.js';
import type { TrainSummary } from './options.js';

/**
 * When the data cannot be read but its shape is known (cifar10 is always 32x32x3), the model is still sized and
 * the data problem is returned with the summary, so CI sees both.
 */
export async function dryRun(cfg: Config, log: TrainLogger): Promise<TrainSummary> {
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
  const model = buildModel(cfg.model, shape, { seed: cfg.seed, numClasses, nBits: cfg.data.n_bits });
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
