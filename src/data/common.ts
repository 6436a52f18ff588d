// Types and helpers shared by every data source: the Dataset shape, seeded train/test
// splitting, split capping, grey<->RGB conversion, bounded-concurrency mapping, file checks.
import fs from 'node:fs';
import path from 'node:path';
import { dataPathOrigin } from '../config/load.js';
import { UserError } from '../errors.js';
import { Rng } from '../rng.js';

export interface Split {
  /** Rows back to back: uint8 NHWC pixels for images, float32 for vectors. */
  x: Uint8Array | Float32Array;
  labels?: Int32Array;
  n: number;
}

export interface Dataset {
  /** e.g. 'embedded-mnist', 'fashion-mnist (idx)', 'two-moons'. */
  name: string;
  kind: 'image' | 'vector';
  /** [H, W, C] for images (uint8 NHWC), [D] for vectors (float32). */
  shape: number[];
  train: Split;
  test: Split;
  numClasses?: number;
  classNames?: string[];
  /** Files left out because they could not be decoded (data.skip_bad). */
  skipped?: number;
}

/** The one-line error every bad data file produces: `data: <file>: <what is wrong, what was expected>`. */
export function dataError(file: string, message: string): UserError {
  return new UserError(`data: ${file}: ${message}`);
}

export function statOrThrow(p: string, what: string): fs.Stats {
  if (p === '') throw new UserError(`data: data.path is empty, expected ${what}`);
  try {
    return fs.statSync(p);
  } catch {
    throw dataError(path.resolve(p), `does not exist${pathBase(p)}, expected ${what}${howToGet(p)}`);
  }
}

/** Which base a relative data.path was resolved against, so a wrong guess is visible. */
function pathBase(p: string): string {
  const origin = dataPathOrigin(p);
  if (origin) {
    const fromCwd = path.resolve(origin.written);
    const moved = fs.existsSync(fromCwd) ? `; it exists relative to the working directory: write ${path.relative(origin.dir, fromCwd) || '.'}` : '';
    return ` (data.path '${origin.written}' in ${origin.file} is relative to that file's folder${moved})`;
  }
  return path.isAbsolute(p) ? '' : ` (data.path '${p}', relative to the working directory)`;
}

/** Where to get the datasets the shipped configs name. */
function howToGet(p: string): string {
  if (/fashion-?mnist/i.test(path.basename(p))) {
    return (
      '; to get Fashion-MNIST: apt-get install dataset-fashion-mnist (Debian/Ubuntu, then FLOW_DATA=/usr/share/datasets), ' +
      'or download the four *-ubyte.gz IDX files listed at https://github.com/zalandoresearch/fashion-mnist into data/fashion-mnist/'
    );
  }
  if (/cifar/i.test(path.basename(p))) return '; to get CIFAR-10: download https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz and unpack it into data/';
  return '';
}

export function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

// Salts keep the split's random stream apart from the others derived from the same run seed.
const SPLIT_SALT = 0x5b117;

/**
 * A seeded random train/test partition of n rows: round(n * fraction) test rows (at least one
 * row stays in train). Both index lists come out in random order, so capping a split with
 * `limit` keeps a random subset rather than, say, the first classes of a sorted folder.
 */
export function splitIndices(n: number, testFraction: number, seed: number): { train: Int32Array; test: Int32Array } {
  const perm = new Rng(seed).fork(SPLIT_SALT).permutation(n);
  const nTest = Math.min(Math.max(n - 1, 0), Math.round(n * testFraction));
  return { test: perm.slice(0, nTest), train: perm.slice(nTest) };
}

/** Copies the listed rows (dims values each) into a new split. */
export function takeRows<T extends Uint8Array | Float32Array>(x: T, labels: Int32Array | undefined, dims: number, indices: ArrayLike<number>): Split {
  const out = (x instanceof Uint8Array ? new Uint8Array(indices.length * dims) : new Float32Array(indices.length * dims)) as T;
  const outLabels = labels ? new Int32Array(indices.length) : undefined;
  for (let j = 0; j < indices.length; j++) {
    const i = indices[j]!;
    out.set(x.subarray(i * dims, (i + 1) * dims), j * dims);
    if (outLabels) outLabels[j] = labels![i]!;
  }
  return outLabels ? { x: out, labels: outLabels, n: indices.length } : { x: out, n: indices.length };
}

/** Splits one pool of rows by test_fraction with the seed. */
export function splitByFraction(x: Uint8Array | Float32Array, labels: Int32Array | undefined, dims: number, testFraction: number, seed: number): { train: Split; test: Split } {
  const n = dims > 0 ? x.length / dims : 0;
  const { train, test } = splitIndices(n, testFraction, seed);
  return { train: takeRows(x, labels, dims, train), test: takeRows(x, labels, dims, test) };
}

/** Keeps the first `limit` rows (0 = all). */
export function capSplit(split: Split, limit: number, dims: number): Split {
  if (limit <= 0 || split.n <= limit) return split;
  const x = split.x.slice(0, limit * dims);
  return split.labels ? { x, labels: split.labels.slice(0, limit), n: limit } : { x, n: limit };
}

/** ITU-R BT.601 luma, the weights libjpeg, PIL and sharp use for RGB -> grey. */
export function rgbToGrey(rgb: Uint8Array): Uint8Array {
  const n = rgb.length / 3;
  const out = new Uint8Array(n);
  for (let i = 0, j = 0; i < n; i++, j += 3) {
    out[i] = Math.round(0.299 * rgb[j]! + 0.587 * rgb[j + 1]! + 0.114 * rgb[j + 2]!);
  }
  return out;
}

export function greyToRgb(grey: Uint8Array): Uint8Array {
  const out = new Uint8Array(grey.length * 3);
  for (let i = 0, j = 0; i < grey.length; i++, j += 3) {
    const v = grey[i]!;
    out[j] = v;
    out[j + 1] = v;
    out[j + 2] = v;
  }
  return out;
}

/** Converts interleaved pixels between 1 and 3 channels (a copy-free no-op when equal). */
export function convertChannels(pixels: Uint8Array, from: number, to: number): Uint8Array {
  if (from === to) return pixels;
  if (from === 1 && to === 3) return greyToRgb(pixels);
  if (from === 3 && to === 1) return rgbToGrey(pixels);
  throw new Error(`convertChannels: unsupported ${from} -> ${to}`);
}

/**
 * Runs fn over items with at most `limit` calls in flight; results keep the items' order.
 * On failure no new calls start, and the error of the lowest failing index is thrown.
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const failures: { index: number; error: unknown }[] = [];
  const worker = async () => {
    while (failures.length === 0 && next < items.length) {
      const i = next++;
      try {
        results[i] = await fn(items[i]!, i);
      } catch (error) {
        failures.push({ index: i, error });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failures.length > 0) throw failures.reduce((a, b) => (b.index < a.index ? b : a)).error;
  return results;
}

export const DIGIT_NAMES = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
