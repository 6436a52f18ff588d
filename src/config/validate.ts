// Checks that need the data as well as the config (the schema alone cannot know the image size).
// Each failure is one UserError line naming the option, the conflict and what would fit.
import { UserError } from '../errors.js';
import type { Config } from './schema.js';

export interface DataFacts {
  /** Training examples available (after data.limit). */
  trainSize?: number;
  /** Whether the examples carry class labels. */
  hasLabels?: boolean;
  numClasses?: number;
}

/** The largest L such that 2^L divides both sides (how many 2x2 squeezes fit). */
export function maxLevelsFor(h: number, w: number): number {
  let l = 0;
  while (h % 2 ** (l + 1) === 0 && w % 2 ** (l + 1) === 0) l++;
  return l;
}

/**
 * Throws a UserError for config values that do not fit the data.
 * dataShape is one example's shape: [H, W, C] for images, [D] for vectors (Dataset.shape).
 */
export function checkConsistency(cfg: Config, dataShape: number[], facts: DataFacts = {}): void {
  const m = cfg.model;
  const bad = (msg: string): never => {
    throw new UserError(`config: ${msg}`);
  };
  if (dataShape.length === 3) {
    const [h, w, c] = dataShape as [number, number, number];
    const fit = maxLevelsFor(h, w);
    const need = 2 ** m.levels;
    if (h % need !== 0 || w % need !== 0) {
      if (fit === 0) bad(`model.levels: the images are ${h}x${w}, and an odd side cannot be squeezed 2x2; expected even sides (set data.image_size to an even size)`);
      bad(`model.levels: ${m.levels} levels need image sides divisible by 2^${m.levels} = ${need}, but the images are ${h}x${w}; expected model.levels <= ${fit}`);
    }
    if (c < 1) bad(`data: images have ${c} channels; expected at least 1`);
    // RealNVP's checkerboard masks alternate parity over each level's (squeezed) grid: odd sides
    // give unequal halves and a 1x1 grid has nothing to condition on.
    if (m.family === 'realnvp' && m.mask !== 'channel') {
      for (let l = 1; l <= m.levels; l++) {
        const hs = h / 2 ** l;
        const ws = w / 2 ** l;
        if (hs % 2 !== 0 || ws % 2 !== 0) {
          const ok = Math.max(0, l - 1);
          bad(
            `model.mask: realnvp checkerboard masks need even sides at every level, but level ${l} is ${hs}x${ws} (images ${h}x${w}); ` +
              `expected model.mask: channel${ok >= 1 ? ` or model.levels <= ${ok}` : ''}`,
          );
        }
      }
    }
  } else if (dataShape.length === 1) {
    const d = dataShape[0]!;
    if (d < 2) bad(`data: vectors have ${d} feature(s), and a coupling layer must split them in two; expected at least 2 features`);
    if (m.mask === 'checkerboard') bad(`model.mask: checkerboard masks need images, but the data are ${d}-D vectors; expected model.mask: auto or channel`);
  } else {
    bad(`data: examples have shape [${dataShape.join(', ')}]; expected [H, W, C] images or [D] vectors`);
  }

  if (m.family === 'idf') checkIntegerFlow(cfg, dataShape, bad);
  if (m.mask !== 'auto' && m.family !== 'realnvp') {
    bad(`model.mask: '${m.mask}' only applies to model.family realnvp, but the family is ${m.family}; expected model.mask: auto`);
  }
  if (m.class_loss_weight > 0 && m.conditional !== 'classes') {
    bad(`model.class_loss_weight: ${m.class_loss_weight} needs a class-conditional model; expected model.conditional: classes (or class_loss_weight: 0)`);
  }
  if (m.conditional === 'classes') {
    if (facts.hasLabels === false) {
      bad(`model.conditional: 'classes' needs labelled data, but data.source '${cfg.data.source}' gives no labels; expected model.conditional: none`);
    }
    if (facts.numClasses !== undefined && facts.numClasses < 2) {
      bad(`model.conditional: 'classes' needs at least 2 classes, but the data have ${facts.numClasses}; expected model.conditional: none`);
    }
  }
  if (facts.trainSize !== undefined) {
    if (facts.trainSize < 1) bad(`data: the training set is empty (check data.path, data.limit and data.test_fraction); expected at least 1 example`);
    if (cfg.train.batch_size > facts.trainSize) {
      bad(`train.batch_size: ${cfg.train.batch_size} is larger than the training set (${facts.trainSize} examples); expected train.batch_size <= ${facts.trainSize}`);
    }
  }
}

/** Structural subset of data's Dataset, so callers can pass a loaded dataset directly. */
export interface DatasetLike {
  shape: number[];
  train: { n: number; labels?: unknown };
  numClasses?: number;
}

export function checkDatasetConsistency(cfg: Config, ds: DatasetLike): void {
  checkConsistency(cfg, ds.shape, { trainSize: ds.train.n, hasLabels: ds.train.labels !== undefined, numClasses: ds.numClasses });
}

/**
 * An integer flow is exact only on the data grid with integer-preserving layers: the options that would
 * break that (noise off the grid, ActNorm's and the 1x1 conv's real scalings, affine couplings) are refused.
 */
function checkIntegerFlow(cfg: Config, dataShape: number[], bad: (msg: string) => never): void {
  const m = cfg.model;
  if (dataShape.length !== 3) bad(`model.family: idf models images, but the data are ${dataShape[0]}-D vectors; expected model.family glow, realnvp or nice`);
  if (cfg.data.dequantize !== 'none') bad("data.dequantize: idf models the discrete pixel values themselves, so dequantisation noise would move them off its grid; expected data.dequantize: none");
  if (m.coupling === 'affine') bad("model.coupling: idf couplings are additive with the translation rounded to the grid (an affine scale is not integer-invertible); expected model.coupling: auto or additive");
  if (m.actnorm === 'on') bad("model.actnorm: ActNorm's real scaling is not integer-invertible; expected model.actnorm: auto or off for model.family idf");
  if (m.permutation === 'conv1x1' || m.permutation === 'none') bad(`model.permutation: idf mixes channels with a fixed permutation between couplings; expected model.permutation: auto, shuffle or reverse, not ${m.permutation}`);
  if (m.conditional === 'classes') bad("model.conditional: idf has no class-conditional prior; expected model.conditional: none");
  if (m.learn_top === false) bad('model.learn_top: idf needs a learned top prior; expected model.learn_top: channel or position');
  if (m.split_prior !== 'learned') bad("model.split_prior: idf's split priors are mixtures conditioned on the kept half; expected model.split_prior: learned");
}
