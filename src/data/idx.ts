// MNIST-format IDX files (MNIST, Fashion-MNIST, KMNIST...), raw or gzipped.
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { dataError, splitByFraction, statOrThrow, type Dataset, type Split } from './common.js';

const gunzip = promisify(zlib.gunzip);

const IMAGES_MAGIC = 0x00000803; // unsigned byte, 3 dimensions
const LABELS_MAGIC = 0x00000801; // unsigned byte, 1 dimension

export const FASHION_MNIST_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

const hex = (v: number) => '0x' + v.toString(16).padStart(8, '0');

/** Reads a file, gunzipping it when it starts with the gzip magic (whatever its name). */
export async function readMaybeGzip(file: string): Promise<Buffer> {
  const raw = await fs.promises.readFile(file);
  if (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b) {
    try {
      return await gunzip(raw);
    } catch (err) {
      throw dataError(file, `corrupt gzip data (${(err as Error).message}), expected a gzipped IDX file`);
    }
  }
  return raw;
}

export function parseIdxImages(buf: Buffer, file: string): { x: Uint8Array; n: number; rows: number; cols: number } {
  if (buf.length < 16) throw dataError(file, `${buf.length} bytes, too short for an IDX images header (16 bytes)`);
  const magic = buf.readUInt32BE(0);
  if (magic !== IMAGES_MAGIC) throw dataError(file, `IDX magic ${hex(magic)}, expected ${hex(IMAGES_MAGIC)} (images)`);
  const n = buf.readUInt32BE(4);
  const rows = buf.readUInt32BE(8);
  const cols = buf.readUInt32BE(12);
  const expected = 16 + n * rows * cols;
  if (buf.length !== expected) throw dataError(file, `${buf.length} bytes, expected ${expected} (16-byte header + ${n} images of ${rows}x${cols})`);
  if (n === 0 || rows === 0 || cols === 0) throw dataError(file, `holds ${n} images of ${rows}x${cols}, expected at least one non-empty image`);
  return { x: new Uint8Array(buf.subarray(16)), n, rows, cols };
}

export function parseIdxLabels(buf: Buffer, file: string): Int32Array {
  if (buf.length < 8) throw dataError(file, `${buf.length} bytes, too short for an IDX labels header (8 bytes)`);
  const magic = buf.readUInt32BE(0);
  if (magic !== LABELS_MAGIC) throw dataError(file, `IDX magic ${hex(magic)}, expected ${hex(LABELS_MAGIC)} (labels)`);
  const n = buf.readUInt32BE(4);
  if (buf.length !== 8 + n) throw dataError(file, `${buf.length} bytes, expected ${8 + n} (8-byte header + ${n} labels)`);
  return Int32Array.from(buf.subarray(8));
}

// Accepts the usual spellings: train-images-idx3-ubyte, train-images.idx3-ubyte (Kaggle),
// emnist-letters-train-images-idx3-ubyte, with or without .gz; 'test' is EMNIST's 't10k'.
function findFile(dir: string, names: string[], split: 'train' | 't10k', kind: 'images' | 'labels'): string | null {
  const re = new RegExp(`(^|[-_.])${split === 'train' ? 'train' : '(t10k|test)'}-${kind}[-.]idx${kind === 'images' ? 3 : 1}-ubyte(\\.gz)?$`, 'i');
  const matches = names.filter((f) => re.test(f)).sort((a, b) => Number(a.endsWith('.gz')) - Number(b.endsWith('.gz')) || a.localeCompare(b));
  return matches.length > 0 ? path.join(dir, matches[0]!) : null;
}

/** The labels file beside an images file (same name with images-idx3 -> labels-idx1). */
function siblingLabels(imagesFile: string): string | null {
  const dir = path.dirname(imagesFile);
  const base = path.basename(imagesFile).replace(/\.gz$/i, '');
  const want = base.replace(/images([-.])idx3/i, 'labels$1idx1');
  if (want === base) return null;
  for (const candidate of [want, want + '.gz']) {
    const p = path.join(dir, candidate);
    if (fs.existsSync(p)) return p;
  }
  return null;
}

async function readPair(imagesFile: string, labelsFile: string | null): Promise<{ x: Uint8Array; n: number; rows: number; cols: number; labels?: Int32Array }> {
  const [imagesBuf, labelsBuf] = await Promise.all([readMaybeGzip(imagesFile), labelsFile ? readMaybeGzip(labelsFile) : Promise.resolve(null)]);
  const images = parseIdxImages(imagesBuf, imagesFile);
  if (!labelsFile || !labelsBuf) return images;
  const labels = parseIdxLabels(labelsBuf, labelsFile);
  if (labels.length !== images.n) throw dataError(labelsFile, `${labels.length} labels, expected ${images.n} (one per image in ${imagesFile})`);
  return { ...images, labels };
}

function classInfo(dirOrFile: string, splits: Split[]): { numClasses?: number; classNames?: string[] } {
  let max = -1;
  for (const s of splits) if (s.labels) for (const l of s.labels) if (l > max) max = l;
  if (max < 0) return {};
  const numClasses = max + 1;
  if (/fashion/i.test(dirOrFile) && numClasses <= 10) return { numClasses: 10, classNames: FASHION_MNIST_CLASSES.slice() };
  return { numClasses };
}

export async function loadIdx(dirOrFile: string, testFraction: number, seed: number): Promise<Dataset> {
  const stat = statOrThrow(dirOrFile, 'an IDX directory or images file');
  const label = path.basename(path.resolve(dirOrFile)).replace(/\.gz$/i, '');
  if (stat.isFile()) {
    // A single images file: its own pool, split by test_fraction.
    const all = await readPair(dirOrFile, siblingLabels(dirOrFile));
    const dims = all.rows * all.cols;
    const { train, test } = splitByFraction(all.x, all.labels, dims, testFraction, seed);
    return { name: `${label} (idx)`, kind: 'image', shape: [all.rows, all.cols, 1], train, test, ...classInfo(dirOrFile, [train, test]) };
  }
  const names = fs.readdirSync(dirOrFile);
  const trainImages = findFile(dirOrFile, names, 'train', 'images');
  if (!trainImages) throw dataError(dirOrFile, 'no train-images-idx3-ubyte[.gz] in this directory, expected MNIST-format IDX files');
  const trainLabels = findFile(dirOrFile, names, 'train', 'labels');
  const testImages = findFile(dirOrFile, names, 't10k', 'images');
  const testLabels = testImages ? findFile(dirOrFile, names, 't10k', 'labels') : null;
  if (testImages && Boolean(trainLabels) !== Boolean(testLabels)) {
    const missing = trainLabels ? 't10k-labels-idx1-ubyte[.gz]' : 'train-labels-idx1-ubyte[.gz]';
    throw dataError(dirOrFile, `has labels for only one split, expected ${missing} too (or no labels files at all)`);
  }
  const [trainAll, testAll] = await Promise.all([readPair(trainImages, trainLabels), testImages ? readPair(testImages, testLabels) : Promise.resolve(null)]);
  const dims = trainAll.rows * trainAll.cols;
  let train: Split;
  let test: Split;
  if (testAll) {
    if (testAll.rows !== trainAll.rows || testAll.cols !== trainAll.cols) {
      throw dataError(testImages!, `images are ${testAll.rows}x${testAll.cols}, expected ${trainAll.rows}x${trainAll.cols} like ${trainImages}`);
    }
    train = { x: trainAll.x, n: trainAll.n, ...(trainAll.labels ? { labels: trainAll.labels } : {}) };
    test = { x: testAll.x, n: testAll.n, ...(testAll.labels ? { labels: testAll.labels } : {}) };
  } else {
    ({ train, test } = splitByFraction(trainAll.x, trainAll.labels, dims, testFraction, seed));
  }
  return { name: `${label} (idx)`, kind: 'image', shape: [trainAll.rows, trainAll.cols, 1], train, test, ...classInfo(dirOrFile, [train, test]) };
}
