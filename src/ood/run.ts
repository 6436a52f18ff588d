// The `flow ood` pipeline: per-example bits/dim of in- and out-of-distribution data under a trained
// flow, their PNG complexity, the typicality test's reference statistics, every score's AUROC
// (scores.ts) and the bits/dim histogram of Nalisnick et al. (2019).
//
// Which examples play which role (in-distribution data = the --in source):
// - scored "in" set: its chosen split (default test), never seen in training;
// - training mean NLL (typicality's reference): training examples the model was trained on;
// - typicality threshold calibration: held-out in-distribution examples. When the run trained on only
//   the first data.limit training examples, the remaining ones were never seen and are used
//   ('held-out-train'); otherwise other training examples than those of the mean ('train', seen in
//   training, so slightly optimistic), or with calibrateOn 'test' a random half of the scored in set
//   (the other half is what the typicality FPR is measured on).
import type { Config, DataConfig } from '../config/schema.js';
import type { FlowModel } from '../flows/model.js';
import type { ModelMeta } from '../io/model-io.js';
import { loadDataset, type Dataset, type Split } from '../data/index.js';
import { bitsPerDim, perExampleLogProb } from '../eval/bpd.js';
import { histogram, panels } from '../plot/index.js';
import { Rng } from '../rng.js';
import { UserError } from '../errors.js';
import { evaluateOod, pngComplexityBitsBatch, type OodReport } from './scores.js';
import { sameTrainingSplit, type OodDataSpec, type SplitChoice } from './spec.js';

export interface OodRunOptions {
  model: FlowModel;
  /** The run's config (its data section is the default in-distribution source) and checkpoint meta. */
  config: Config;
  meta: ModelMeta;
  /** In-distribution data; default the run's own data, test split. */
  inSpec?: OodDataSpec;
  outSpec: OodDataSpec;
  /** Typicality test: examples per batch (M), target false-positive rate, bootstrap resamples. */
  typicalityBatch: number;
  fpr: number;
  bootstraps: number;
  /** Examples per forward pass. */
  evalBatch: number;
  /** Dequantisation noise, subsets, bootstrap. */
  seed: number;
  /** Score at most this many examples of each set (a seeded random subset); 0 = all. */
  limit: number;
  /** Training examples for the training-set mean bpd. */
  trainExamples: number;
  /** Held-out examples the typicality threshold is calibrated on (calibrateOn 'train'). */
  calibrationExamples: number;
  calibrateOn: 'train' | 'test';
  /** Progress lines (stderr in the CLI). */
  log?: (line: string) => void;
}

export interface ScoredSet {
  spec: string;
  name: string;
  split: SplitChoice;
  /** Per-example bits/dim and PNG complexity bits, in the (random) order the typicality batches use. */
  bpd: Float64Array;
  pngBits: number[];
}

export type CalibrationSource = 'held-out-train' | 'train' | 'test-half';

export interface OodRunResult {
  report: OodReport;
  in: ScoredSet;
  out: ScoredSet;
  dims: number;
  nBits: number;
  typicalityReference: {
    /** Training examples behind trainMeanBpd. */
    trainExamples: number;
    calibration: CalibrationSource;
    /** Examples the threshold was bootstrapped from. */
    calibrationExamples: number;
    /** Mean bpd of the calibration examples (vs the training mean: the generalisation gap). */
    calibrationMeanBpd: number;
  };
  seconds: number;
}

/** Rows of one split choice; 'all' puts train before test. */
export function splitRows(ds: Dataset, split: SplitChoice): Split {
  if (split === 'train') return ds.train;
  if (split === 'test') return ds.test;
  const { train, test } = ds;
  const x = new Uint8Array(train.x.length + test.x.length);
  x.set(train.x as Uint8Array, 0);
  x.set(test.x as Uint8Array, train.x.length);
  const labels = train.labels && test.labels ? Int32Array.from([...train.labels, ...test.labels]) : undefined;
  return labels ? { x, labels, n: train.n + test.n } : { x, n: train.n + test.n };
}

function describeSpec(s: OodDataSpec | undefined, fallback: DataConfig): string {
  return s ? s.spec : `${fallback.source}${fallback.path ? `:${fallback.path}` : ''} (the run's data)`;
}

async function loadChecked(cfg: DataConfig, what: string, meta: ModelMeta, seed: number): Promise<Dataset> {
  const ds = await loadDataset(cfg, { seed });
  if (ds.kind !== 'image') throw new UserError(`${what}: ${ds.name} is ${ds.shape[0]}-d vector data; flow ood scores images`);
  if (ds.shape.join('x') !== meta.dataShape.join('x')) {
    const [h, w, c] = meta.dataShape;
    throw new UserError(`${what}: ${ds.name} has images of ${ds.shape.join('x')} but the model takes ${meta.dataShape.join('x')}; resize in the spec, e.g. ?image_size=${h}&channels=${c}${h !== w ? ' (square images only)' : ''}`);
  }
  return ds;
}

/** Pixels of the listed rows back to back, reduced to nBits per value as the model sees them. */
function gatherPixels(split: Split, rows: ArrayLike<number>, dims: number, nBits: number): Uint8Array {
  const src = split.x as Uint8Array;
  const out = new Uint8Array(rows.length * dims);
  for (let j = 0; j < rows.length; j++) out.set(src.subarray(rows[j]! * dims, (rows[j]! + 1) * dims), j * dims);
  if (nBits < 8) for (let i = 0; i < out.length; i++) out[i] = out[i]! >> (8 - nBits);
  return out;
}

/** A seeded random order of `count` values from `from`, at most `take` of them (0 = all). */
function randomRows(rng: Rng, count: number, take: number, from = 0): Int32Array {
  const perm = rng.permutation(count);
  const kept = take > 0 ? perm.subarray(0, Math.min(take, count)) : perm;
  return kept.map((i) => i + from);
}

export async function runOod(o: OodRunOptions): Promise<OodRunResult> {
  const started = performance.now();
  const { model, config, meta } = o;
  if (meta.dataKind !== 'image') throw new UserError(`ood: scores images; this run models ${meta.dataShape[0]}-d vectors`);
  if (model.numClasses) throw new UserError(`ood: needs the unconditional likelihood p(x); this run is class-conditional (model.conditional: classes)`);
  if (!Number.isInteger(o.typicalityBatch) || o.typicalityBatch < 1) throw new UserError(`--batch-size ${o.typicalityBatch}: expected a positive integer`);
  if (!(o.fpr > 0 && o.fpr < 1)) throw new UserError(`--fpr ${o.fpr}: expected a false-positive rate strictly between 0 and 1`);
  const log = o.log ?? (() => {});
  const dims = meta.dataShape.reduce((a, b) => a * b, 1);
  const nBits = meta.nBits;
  const [h, w, c] = meta.dataShape as [number, number, number];
  const rng = new Rng(o.seed).fork(0x00d);

  // The in-distribution source with every training row (the run's data.limit marks which were seen).
  const inCfg: DataConfig = { ...(o.inSpec?.data ?? config.data), limit: 0 };
  const inSplit: SplitChoice = o.inSpec?.split ?? 'test';
  const inDs = await loadChecked(inCfg, `--in ${describeSpec(o.inSpec, config.data)}`, meta, config.seed);
  const outDs = await loadChecked(o.outSpec.data, `--out ${o.outSpec.spec}`, meta, config.seed);

  const bpdOf = async (split: Split, rows: ArrayLike<number>, label: string): Promise<Float64Array> => {
    const t0 = performance.now();
    log(`scoring ${label}: ${rows.length} examples`);
    const logp = await perExampleLogProb(model, split, meta.dataShape, 'image', {
      nBits,
      seed: o.seed,
      batchSize: o.evalBatch,
      indices: Array.from(rows),
      dequantize: config.data.dequantize === 'uniform',
    });
    const s = (performance.now() - t0) / 1000;
    log(`  ${s.toFixed(1)} s (${(rows.length / s).toFixed(0)} examples/s)`);
    return logp.map((l) => bitsPerDim(l, dims, 2 ** nBits));
  };

  const inRows = splitRows(inDs, inSplit);
  const outRows = splitRows(outDs, o.outSpec.split);
  const inSpecText = describeSpec(o.inSpec, config.data);
  for (const [what, spec, ds, split, rows] of [['--in', inSpecText, inDs, inSplit, inRows], ['--out', o.outSpec.spec, outDs, o.outSpec.split, outRows]] as const) {
    if (rows.n === 0) throw new UserError(`${what} ${spec}: the ${split} split of ${ds.name} is empty`);
  }
  // Fail before the expensive part: the typicality test needs at least one batch of M on each side.
  const sizeOf = (n: number) => (o.limit > 0 ? Math.min(o.limit, n) : n);
  const inTested = o.calibrateOn === 'test' ? sizeOf(inRows.n) - Math.floor(sizeOf(inRows.n) / 2) : sizeOf(inRows.n);
  if (inTested < o.typicalityBatch || sizeOf(outRows.n) < o.typicalityBatch) {
    throw new UserError(`--batch-size ${o.typicalityBatch}: the typicality test needs at least ${o.typicalityBatch} in-distribution examples to test (have ${inTested}) and ${o.typicalityBatch} out-of-distribution examples (have ${sizeOf(outRows.n)})`);
  }

  const score = async (rows: Split, ds: Dataset, spec: string, split: SplitChoice): Promise<ScoredSet> => {
    const order = randomRows(rng, rows.n, o.limit);
    const bpd = await bpdOf(rows, order, `${ds.name} ${split}`);
    const pngBits = await pngComplexityBitsBatch(gatherPixels(rows, order, dims, nBits), order.length, h, w, c);
    return { spec, name: ds.name, split, bpd, pngBits };
  };
  const scoredIn = await score(inRows, inDs, inSpecText, inSplit);
  const scoredOut = await score(outRows, outDs, o.outSpec.spec, o.outSpec.split);

  // Typicality reference statistics from the in-distribution training split.
  const trainN = inDs.train.n;
  const sameData = sameTrainingSplit(inCfg, config.data);
  const seen = sameData && config.data.limit > 0 ? Math.min(config.data.limit, trainN) : trainN;
  if (seen === 0) throw new UserError(`--in ${inSpecText}: the training split is empty; the typicality test needs training examples for its mean NLL`);
  const seenOrder = rng.permutation(seen);
  const meanRows = seenOrder.subarray(0, Math.min(o.trainExamples, seen));
  const trainBpd = await bpdOf(inDs.train, meanRows, `${inDs.name} train (training mean)`);
  const trainMeanBpd = trainBpd.reduce((a, b) => a + b, 0) / trainBpd.length;

  let calibration: CalibrationSource;
  let heldOutBpd: Float64Array;
  // The in-distribution examples whose batches the typicality FPR is measured on.
  let typicalIn: Float64Array = scoredIn.bpd;
  if (o.calibrateOn === 'test') {
    // The in set is in random order already: its first half calibrates, the second half is tested.
    calibration = 'test-half';
    const half = Math.floor(scoredIn.bpd.length / 2);
    if (half === 0) throw new UserError(`--calibrate-on test: the in set has ${scoredIn.bpd.length} example; it needs at least 2 to split`);
    heldOutBpd = scoredIn.bpd.slice(0, half);
    typicalIn = scoredIn.bpd.slice(half);
  } else if (seen < trainN) {
    calibration = 'held-out-train';
    heldOutBpd = await bpdOf(inDs.train, randomRows(rng, trainN - seen, o.calibrationExamples, seen), `${inDs.name} train, unseen in training (threshold calibration)`);
  } else {
    calibration = 'train';
    const rest = seenOrder.subarray(meanRows.length, meanRows.length + o.calibrationExamples);
    if (rest.length === 0) throw new UserError(`--train-examples ${o.trainExamples} uses every training example; none are left to calibrate the typicality threshold (lower it, or use --calibrate-on test)`);
    heldOutBpd = await bpdOf(inDs.train, rest, `${inDs.name} train (threshold calibration)`);
  }

  const report = evaluateOod({
    inBpd: scoredIn.bpd,
    outBpd: scoredOut.bpd,
    dims,
    inComplexityBits: scoredIn.pngBits,
    outComplexityBits: scoredOut.pngBits,
  });
  report.typicality = evaluateOod({
    inBpd: typicalIn,
    outBpd: scoredOut.bpd,
    dims,
    typicality: { batchSize: o.typicalityBatch, fpr: o.fpr, rng: rng.fork(1), bootstraps: o.bootstraps, trainMeanBpd, heldOutBpd },
  }).typicality;
  return {
    report,
    in: scoredIn,
    out: scoredOut,
    dims,
    nBits,
    typicalityReference: {
      trainExamples: trainBpd.length,
      calibration,
      calibrationExamples: heldOutBpd.length,
      calibrationMeanBpd: heldOutBpd.reduce((a, b) => a + b, 0) / heldOutBpd.length,
    },
    seconds: (performance.now() - started) / 1000,
  };
}

/** Value range holding all but the extreme 0.2% of both sets, so a few outliers do not squash the bins. */
function robustRange(sets: ArrayLike<number>[]): [number, number] | undefined {
  const all = sets.flatMap((s) => Array.from(s)).filter(Number.isFinite).sort((a, b) => a - b);
  if (all.length === 0) return undefined;
  const lo = all[Math.floor(0.001 * (all.length - 1))]!;
  const hi = all[Math.ceil(0.999 * (all.length - 1))]!;
  return lo < hi ? [lo, hi] : undefined;
}

/**
 * Nalisnick et al.'s figure: densities of bits/dim for the in- and out-of-distribution sets, and beside
 * it the same for Serrà et al.'s complexity-corrected score bpd - L(x)/D. Returns an SVG document.
 */
export function oodHistogramSvg(r: OodRunResult, title: string): string {
  const inName = `in: ${r.in.name} ${r.in.split}`;
  const outName = `out: ${r.out.name} ${r.out.split}`;
  const bpdSvg = histogram(
    [
      { name: inName, values: Array.from(r.in.bpd) },
      { name: outName, values: Array.from(r.out.bpd) },
    ],
    { title: 'bits per dimension', width: 760, xLabel: 'bits/dim (lower = more likely)', xRange: robustRange([r.in.bpd, r.out.bpd]) },
  );
  const sIn = Array.from(r.in.bpd, (b, i) => b - r.in.pngBits[i]! / r.dims);
  const sOut = Array.from(r.out.bpd, (b, i) => b - r.out.pngBits[i]! / r.dims);
  const sSvg = histogram(
    [
      { name: inName, values: sIn },
      { name: outName, values: sOut },
    ],
    { title: 'complexity-corrected: bpd - PNG bits/dim', width: 760, xLabel: 'score (higher = more out-of-distribution)', xRange: robustRange([sIn, sOut]) },
  );
  return panels([bpdSvg, sSvg], 2, { title });
}
