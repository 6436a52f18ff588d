// Out-of-distribution scores for a trained flow, from per-example bits/dim:
// - likelihood: the OOD score is bpd itself. Nalisnick et al. 2019 ("Do deep generative models know what
//   they don't know?") show it can fail badly (CIFAR-10 model, SVHN data: AUROC well below 0.5).
// - complexity-corrected: S(x) = bpd - L(x)/dims with L(x) the bits of a lossless PNG of x (Serrà et al.
//   2020, "Input complexity and out-of-distribution detection with likelihood-based generative models").
// - typicality: per batch of M, |mean NLL - train mean NLL| against a bootstrap threshold (Nalisnick et
//   al. 2019b, "Detecting out-of-distribution inputs to deep generative models using typicality").
// Convention everywhere: higher score = more out-of-distribution.
import sharp from 'sharp';
import { UserError } from '../errors.js';
import type { Rng } from '../rng.js';

type Numbers = ArrayLike<number>;

function checkScores(name: string, xs: Numbers): void {
  if (xs.length === 0) throw new UserError(`${name}: no scores (expected at least one)`);
  for (let i = 0; i < xs.length; i++) {
    if (Number.isNaN(xs[i])) throw new UserError(`${name}: score ${i} is NaN (a diverged model or a broken input?)`);
  }
}

/**
 * Area under the ROC curve of "OUT scores higher than IN": the probability that a random OUT example
 * scores higher than a random IN example, ties counting 1/2 (the Mann-Whitney U statistic over
 * nIn * nOut). Exact, via average ranks in one sort: O(n log n). 1 = perfect, 0.5 = chance, 0 = reversed.
 */
export function auroc(inScores: Numbers, outScores: Numbers): number {
  checkScores('auroc (in-distribution)', inScores);
  checkScores('auroc (out-of-distribution)', outScores);
  const nIn = inScores.length;
  const nOut = outScores.length;
  const n = nIn + nOut;
  const values = new Float64Array(n);
  for (let i = 0; i < nIn; i++) values[i] = inScores[i]!;
  for (let i = 0; i < nOut; i++) values[nIn + i] = outScores[i]!;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => values[a]! - values[b]! || 0);
  // Sum of the OUT examples' ranks (1-based), each tie group sharing its average rank.
  let rankSumOut = 0;
  for (let start = 0; start < n; ) {
    let end = start + 1;
    while (end < n && values[order[end]!] === values[order[start]!]) end++;
    const avgRank = (start + 1 + end) / 2;
    for (let k = start; k < end; k++) if (order[k]! >= nIn) rankSumOut += avgRank;
    start = end;
  }
  const u = rankSumOut - (nOut * (nOut + 1)) / 2;
  return u / (nIn * nOut);
}

/**
 * L(x): 8 x the byte length of the image losslessly compressed as PNG by sharp at maximum effort
 * (compressionLevel 9, adaptive row filtering, no palette). pixels: uint8 HWC, 1 to 4 channels.
 * The PNG signature, IHDR, IEND and chunk/zlib framing (about 60 bytes) are included: a constant
 * offset that shifts every score equally and so leaves AUROC unchanged.
 */
export async function pngComplexityBits(pixels: Uint8Array, h: number, w: number, c: number): Promise<number> {
  if (![h, w, c].every((v) => Number.isInteger(v) && v > 0) || c > 4) throw new UserError(`pngComplexityBits: need positive integer h, w and 1..4 channels, got ${h}x${w}x${c}`);
  if (pixels.length !== h * w * c) throw new UserError(`pngComplexityBits: expected ${h}x${w}x${c} = ${h * w * c} bytes, got ${pixels.length}`);
  let img = sharp(Buffer.from(pixels.buffer, pixels.byteOffset, pixels.length), { raw: { width: w, height: h, channels: c as 1 | 2 | 3 | 4 } });
  // Without this sharp writes one-channel input as an RGB PNG, tripling L(x) of grey images.
  if (c <= 2) img = img.toColourspace('b-w');
  const png = await img
    .png({ compressionLevel: 9, adaptiveFiltering: true, palette: false })
    .toBuffer();
  return png.length * 8;
}

/** pngComplexityBits for n images stored back to back (NHWC), `concurrency` compressions in flight (sharp uses its own threads). */
export async function pngComplexityBitsBatch(pixels: Uint8Array, n: number, h: number, w: number, c: number, concurrency = 4): Promise<number[]> {
  const size = h * w * c;
  if (pixels.length !== n * size) throw new UserError(`pngComplexityBitsBatch: expected ${n}x${h}x${w}x${c} = ${n * size} bytes, got ${pixels.length}`);
  const out = new Array<number>(n);
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const k = next++;
      out[k] = await pngComplexityBits(pixels.subarray(k * size, (k + 1) * size), h, w, c);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, n)) }, worker));
  return out;
}

/** Serrà et al.'s S(x) per dimension: bpd - L(x)/dims (both in bits). Higher = more OOD. */
export function complexityCorrectedScore(bpd: number, complexityBits: number, dims: number): number {
  return bpd - complexityBits / dims;
}

function mean(xs: Numbers): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i]!;
  return s / xs.length;
}

function std(xs: Numbers): number {
  const m = mean(xs);
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += (xs[i]! - m) ** 2;
  return xs.length > 1 ? Math.sqrt(s / (xs.length - 1)) : 0;
}

/**
 * The typicality test's threshold: draw `bootstraps` batches of batchSize (with replacement) from held-out
 * in-distribution NLLs, compute |mean(batch) - trainMeanNll| for each, and return the (1 - fpr) quantile
 * (the smallest statistic with at least that fraction of the bootstrap statistics at or below it). A batch
 * is declared OOD when its statistic is strictly greater than the threshold. NLLs may be per example or
 * per dimension (bpd) as long as trainMeanNll and the scored data use the same unit.
 */
export function typicalityThreshold(heldOutNll: Numbers, trainMeanNll: number, batchSize: number, fpr: number, rng: Rng, bootstraps = 1000): number {
  checkScores('typicality threshold (held-out NLL)', heldOutNll);
  if (!Number.isFinite(trainMeanNll)) throw new UserError(`typicality: the training-set mean NLL must be finite, got ${trainMeanNll}`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new UserError(`typicality: batch size must be a positive integer, got ${batchSize}`);
  if (!(fpr > 0 && fpr < 1)) throw new UserError(`typicality: false-positive rate must be in (0, 1), got ${fpr}`);
  if (!Number.isInteger(bootstraps) || bootstraps < 1) throw new UserError(`typicality: bootstraps must be a positive integer, got ${bootstraps}`);
  const n = heldOutNll.length;
  const stats = new Float64Array(bootstraps);
  for (let b = 0; b < bootstraps; b++) {
    let s = 0;
    for (let k = 0; k < batchSize; k++) s += heldOutNll[rng.int(n)]!;
    stats[b] = Math.abs(s / batchSize - trainMeanNll);
  }
  stats.sort();
  const idx = Math.min(bootstraps - 1, Math.max(0, Math.ceil((1 - fpr) * bootstraps - 1e-9) - 1));
  return stats[idx]!;
}

/**
 * |mean(batch) - trainMeanNll| for consecutive batches of M (in the order given: shuffle first if the
 * data are sorted). A trailing partial batch is dropped, since the threshold is calibrated for size M.
 */
export function typicalityScores(nll: Numbers, trainMeanNll: number, batchSize: number): number[] {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new UserError(`typicality: batch size must be a positive integer, got ${batchSize}`);
  const out: number[] = [];
  for (let start = 0; start + batchSize <= nll.length; start += batchSize) {
    let s = 0;
    for (let k = start; k < start + batchSize; k++) s += nll[k]!;
    out.push(Math.abs(s / batchSize - trainMeanNll));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

export interface TypicalityOptions {
  /** Examples per tested batch (M). */
  batchSize: number;
  /** Target false-positive rate on in-distribution batches. Default 0.01 (Nalisnick et al.'s 99%). */
  fpr?: number;
  rng: Rng;
  bootstraps?: number;
  /** Mean bpd on the TRAINING set; default the mean of the calibration set. */
  trainMeanBpd?: number;
  /**
   * Held-out in-distribution bpd to calibrate the threshold on. Without it, inBpd is shuffled (with rng)
   * and split in half: the first half calibrates, the second is the in-distribution set the FPR is measured on.
   */
  heldOutBpd?: Numbers;
}

export interface OodInput {
  /** Per-example bits/dim of in-distribution test data and of out-of-distribution data. */
  inBpd: Numbers;
  outBpd: Numbers;
  /** Dimensions per example (h * w * c), to put complexity bits on the bits/dim scale. */
  dims: number;
  /** Per-example L(x) in bits (pngComplexityBits); both needed for the complexity-corrected score. */
  inComplexityBits?: Numbers;
  outComplexityBits?: Numbers;
  typicality?: TypicalityOptions;
}

export interface SetSummary {
  n: number;
  meanBpd: number;
  stdBpd: number;
}

export interface OodReport {
  in: SetSummary;
  out: SetSummary;
  /** Score = bpd. Below 0.5 means the model gives OOD data HIGHER likelihood (Nalisnick et al.). */
  likelihood: { auroc: number };
  complexity?: {
    auroc: number;
    /** Mean S(x) = bpd - L(x)/dims per set. */
    inMeanScore: number;
    outMeanScore: number;
    /** Mean PNG bits per dimension, L(x)/dims, per set. */
    inMeanPngBpd: number;
    outMeanPngBpd: number;
  };
  typicality?: {
    batchSize: number;
    targetFpr: number;
    threshold: number;
    trainMeanBpd: number;
    /** 'held-out': calibrated on heldOutBpd; 'split': on a random half of inBpd. */
    calibration: 'held-out' | 'split';
    /** AUROC of the batch statistic, in-distribution batches vs OOD batches. */
    auroc: number;
    /** Fraction of in-distribution batches flagged (statistic > threshold), and of OOD batches. */
    fpr: number;
    tpr: number;
    inBatches: number;
    outBatches: number;
  };
}

/** Every score's AUROC plus summaries; see the module comment for what each score is. */
export function evaluateOod(input: OodInput): OodReport {
  const { inBpd, outBpd, dims } = input;
  checkScores('in-distribution bpd', inBpd);
  checkScores('out-of-distribution bpd', outBpd);
  const report: OodReport = {
    in: { n: inBpd.length, meanBpd: mean(inBpd), stdBpd: std(inBpd) },
    out: { n: outBpd.length, meanBpd: mean(outBpd), stdBpd: std(outBpd) },
    likelihood: { auroc: auroc(inBpd, outBpd) },
  };

  const { inComplexityBits: inBits, outComplexityBits: outBits } = input;
  if (inBits || outBits) {
    if (!inBits || !outBits) throw new UserError('complexity-corrected score: complexity bits are needed for both the in- and out-of-distribution sets');
    if (inBits.length !== inBpd.length || outBits.length !== outBpd.length) {
      throw new UserError(`complexity-corrected score: got ${inBits.length}/${outBits.length} complexity values for ${inBpd.length}/${outBpd.length} examples (in/out)`);
    }
    if (!(Number.isInteger(dims) && dims > 0)) throw new UserError(`complexity-corrected score: dims must be a positive integer, got ${dims}`);
    const sIn = Array.from(inBpd, (b, i) => complexityCorrectedScore(b, inBits[i]!, dims));
    const sOut = Array.from(outBpd, (b, i) => complexityCorrectedScore(b, outBits[i]!, dims));
    report.complexity = {
      auroc: auroc(sIn, sOut),
      inMeanScore: mean(sIn),
      outMeanScore: mean(sOut),
      inMeanPngBpd: mean(inBits) / dims,
      outMeanPngBpd: mean(outBits) / dims,
    };
  }

  const t = input.typicality;
  if (t) {
    const fpr = t.fpr ?? 0.01;
    let calib: Numbers;
    let evalIn: Numbers;
    if (t.heldOutBpd) {
      calib = t.heldOutBpd;
      evalIn = inBpd;
    } else {
      const perm = t.rng.permutation(inBpd.length);
      const half = Math.floor(inBpd.length / 2);
      calib = Array.from(perm.subarray(0, half), (i) => inBpd[i]!);
      evalIn = Array.from(perm.subarray(half), (i) => inBpd[i]!);
    }
    const M = t.batchSize;
    if (evalIn.length < M || outBpd.length < M || calib.length < 1) {
      throw new UserError(
        `typicality test: batch size ${M} needs at least ${M} in-distribution examples to test (have ${evalIn.length}` +
          `${t.heldOutBpd ? '' : ', half of the in-distribution set after the calibration split'}) and ${M} OOD examples (have ${outBpd.length})`,
      );
    }
    const trainMean = t.trainMeanBpd ?? mean(calib);
    const threshold = typicalityThreshold(calib, trainMean, M, fpr, t.rng, t.bootstraps ?? 1000);
    const inStats = typicalityScores(evalIn, trainMean, M);
    const outStats = typicalityScores(outBpd, trainMean, M);
    report.typicality = {
      batchSize: M,
      targetFpr: fpr,
      threshold,
      trainMeanBpd: trainMean,
      calibration: t.heldOutBpd ? 'held-out' : 'split',
      auroc: auroc(inStats, outStats),
      fpr: inStats.filter((s) => s > threshold).length / inStats.length,
      tpr: outStats.filter((s) => s > threshold).length / outStats.length,
      inBatches: inStats.length,
      outBatches: outStats.length,
    };
  }
  return report;
}
