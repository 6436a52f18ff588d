// Data loading and preprocessing: every source on small generated files, the error messages for
// bad files, the embedded digits, toy sets, the batch order and the pixel <-> model mappings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import sharp from 'sharp';
import { DataSchema, type DataConfig } from '../src/config/schema.js';
import { UserError } from '../src/errors.js';
import { Rng } from '../src/rng.js';
import { fashionMnistPath, loadDataset, parseDataSpec, TOY_NAMES, type Dataset } from '../src/data/index.js';
import { loadConfig, resolveDataPath } from '../src/config/load.js';
import { BatchIterator, gather, reduceBits, toModelInput, toPixels } from '../src/data/preprocess.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flow-data-test-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

function dir(name: string): string {
  const d = path.join(tmp, name);
  fs.mkdirSync(d, { recursive: true });
  return d;
}

function cfg(over: Partial<DataConfig>): DataConfig {
  return DataSchema.parse(over);
}

/** Asserts the promise rejects with a UserError whose one-line message matches every pattern. */
async function rejectsWith(p: Promise<unknown>, ...patterns: (RegExp | string)[]): Promise<string> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof UserError, `expected a UserError, got ${String(err)}`);
  const msg = err.message;
  assert.ok(!msg.includes('\n'), `one line expected: ${msg}`);
  for (const pat of patterns) {
    if (typeof pat === 'string') assert.ok(msg.includes(pat), `'${msg}' should mention '${pat}'`);
    else assert.match(msg, pat);
  }
  return msg;
}

// ---------------------------------------------------------------- preprocessing

test('reduceBits keeps the top bits', () => {
  const u8 = Uint8Array.from([0, 7, 8, 127, 128, 255]);
  assert.deepEqual([...reduceBits(u8, 8)], [0, 7, 8, 127, 128, 255]);
  assert.deepEqual([...reduceBits(u8, 5)], [0, 0, 1, 15, 16, 31]);
  assert.deepEqual([...reduceBits(u8, 1)], [0, 0, 0, 0, 1, 1]);
});

test('toModelInput without noise gives bin centres in [-0.5, 0.5)', () => {
  const u8 = Uint8Array.from([0, 255, 128, 9]);
  const x8 = toModelInput(u8, 8, null);
  assert.deepEqual([...x8], [0 / 256 - 0.5 + 0.5 / 256, 255 / 256 - 0.5 + 0.5 / 256, 128 / 256 - 0.5 + 0.5 / 256, 9 / 256 - 0.5 + 0.5 / 256].map(Math.fround));
  const x5 = toModelInput(u8, 5, null);
  assert.deepEqual([...x5], [0, 31, 16, 1].map((k) => Math.fround(k / 32 - 0.5 + 0.5 / 32)));
});

test('toModelInput / toPixels round trip with noise for n_bits 8 and 5', () => {
  const rng = new Rng(3);
  const u8 = new Uint8Array(64 * 784);
  for (let i = 0; i < u8.length; i++) u8[i] = i % 256;
  for (const nBits of [8, 5]) {
    const bins = 2 ** nBits;
    const x = toModelInput(u8, nBits, rng);
    let min = Infinity;
    let max = -Infinity;
    for (let i = 0; i < x.length; i++) {
      const lo = Math.fround((u8[i]! >> (8 - nBits)) / bins - 0.5);
      assert.ok(x[i]! >= lo && x[i]! < lo + 1 / bins, `value ${x[i]} outside its bin`);
      min = Math.min(min, x[i]!);
      max = Math.max(max, x[i]!);
    }
    assert.ok(min >= -0.5 && max < 0.5);
    const back = toPixels(x, nBits);
    if (nBits === 8) assert.deepEqual(back, u8);
    assert.deepEqual(reduceBits(back, nBits), reduceBits(u8, nBits));
  }
  // Noise is really there and seeded.
  const a = toModelInput(u8.subarray(0, 100), 8, new Rng(1));
  const b = toModelInput(u8.subarray(0, 100), 8, new Rng(1));
  const c = toModelInput(u8.subarray(0, 100), 8, new Rng(2));
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
});

test('toPixels spreads reduced bits over 0..255 and clips', () => {
  for (let nBits = 1; nBits <= 8; nBits++) {
    const bins = 2 ** nBits;
    const centres = Float32Array.from({ length: bins }, (_, k) => k / bins - 0.5 + 0.5 / bins);
    const px = toPixels(centres, nBits);
    assert.equal(px[0], 0);
    assert.equal(px[bins - 1], 255);
    assert.deepEqual([...reduceBits(px, nBits)], Array.from({ length: bins }, (_, k) => k), `n_bits ${nBits}`);
  }
  assert.deepEqual([...toPixels(Float32Array.from([-3, 7, NaN]), 8)], [0, 255, 0]);
});

test('BatchIterator covers every index once per epoch, with straddling batches', () => {
  const n = 10;
  const it = new BatchIterator(n, 4, 7);
  const seen: number[] = [];
  for (let b = 0; b < 10; b++) {
    const { indices } = it.next();
    assert.equal(indices.length, 4);
    seen.push(...indices);
  }
  for (let e = 0; e < 4; e++) {
    const epoch = seen.slice(e * n, (e + 1) * n).sort((a, b) => a - b);
    assert.deepEqual(epoch, Array.from({ length: n }, (_, i) => i), `epoch ${e}`);
  }
  assert.notDeepEqual(seen.slice(0, n), seen.slice(n, 2 * n), 'each epoch is reshuffled');
  assert.equal(it.epoch, 3);
});

test('BatchIterator: same state -> same batches; seeds differ; bad state rejected', () => {
  const a = new BatchIterator(37, 8, 1);
  for (let i = 0; i < 6; i++) a.next();
  const state = JSON.parse(JSON.stringify(a.getState()));
  const expected = Array.from({ length: 12 }, () => [...a.next().indices]);
  const b = new BatchIterator(37, 8, 999); // seed is irrelevant once the state is restored
  b.setState(state);
  assert.deepEqual(Array.from({ length: 12 }, () => [...b.next().indices]), expected);

  const c = new BatchIterator(37, 8, 1);
  const d = new BatchIterator(37, 8, 2);
  assert.notDeepEqual([...c.next().indices], [...d.next().indices]);

  assert.throws(() => new BatchIterator(36, 8, 1).setState(state), UserError);
  assert.throws(() => b.setState({ epoch: -1, cursor: 0, rngState: 0 }), UserError);
  assert.throws(() => new BatchIterator(0, 8, 1), UserError);
});

test('gather copies rows and labels', () => {
  const split = { x: Float32Array.from([0, 1, 10, 11, 20, 21]), labels: Int32Array.from([5, 6, 7]), n: 3 };
  const g = gather(split, [2, 0]);
  assert.deepEqual([...g.x], [20, 21, 0, 1]);
  assert.deepEqual([...g.labels!], [7, 5]);
  (g.x as Float32Array)[0] = -1;
  assert.equal(split.x[4], 20, 'a copy, not a view');
  const u = gather({ x: Uint8Array.from([1, 2, 3]), n: 3 }, [1]);
  assert.ok(u.x instanceof Uint8Array);
  assert.equal(u.labels, undefined);
  assert.throws(() => gather(split, [3]), RangeError);
});

// ---------------------------------------------------------------- embedded

test('embedded: 10,000 MNIST digits, 8-bit pixels, labels 0..9, seeded split', async () => {
  const ds = await loadDataset(cfg({ source: 'embedded' }), { seed: 0 });
  assert.equal(ds.name, 'embedded-mnist');
  assert.equal(ds.kind, 'image');
  assert.deepEqual(ds.shape, [28, 28, 1]);
  assert.equal(ds.train.n + ds.test.n, 10000);
  assert.equal(ds.test.n, 1000);
  assert.ok(ds.train.x instanceof Uint8Array);
  assert.equal(ds.train.x.length, ds.train.n * 784);
  assert.equal(ds.numClasses, 10);
  const counts = new Array(10).fill(0);
  for (const s of [ds.train, ds.test]) for (const l of s.labels!) counts[l]++;
  assert.deepEqual(counts, [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]);
  let max = 0;
  let nonZero = 0;
  for (const v of ds.train.x) {
    if (v > max) max = v;
    if (v > 0) nonZero++;
  }
  assert.equal(max, 255);
  assert.ok(nonZero / ds.train.x.length > 0.1 && nonZero / ds.train.x.length < 0.3, 'digits are mostly background');
  // Grey values between 0 and 255 exist (not binarised), e.g. 0.2 in the files -> 51.
  assert.ok(ds.train.x.some((v) => v === 51));

  const again = await loadDataset(cfg({ source: 'embedded' }), { seed: 0 });
  assert.deepEqual(again.test.labels, ds.test.labels);
  const other = await loadDataset(cfg({ source: 'embedded', limit: 100, test_limit: 10, channels: 3 }), { seed: 1 });
  assert.notDeepEqual(other.test.labels, ds.test.labels!.subarray(0, 10));
  assert.equal(other.train.n, 100);
  assert.equal(other.test.n, 10);
  assert.deepEqual(other.shape, [28, 28, 3]);
  assert.equal(other.train.x.length, 100 * 784 * 3);
  assert.equal(other.train.x[3 * 300], other.train.x[3 * 300 + 2]);
});

// ---------------------------------------------------------------- idx

function idxImages(n: number, rows: number, cols: number, pixel: (i: number, p: number) => number, magic = 0x803): Buffer {
  const buf = Buffer.alloc(16 + n * rows * cols);
  buf.writeUInt32BE(magic, 0);
  buf.writeUInt32BE(n, 4);
  buf.writeUInt32BE(rows, 8);
  buf.writeUInt32BE(cols, 12);
  for (let i = 0; i < n; i++) for (let p = 0; p < rows * cols; p++) buf[16 + i * rows * cols + p] = pixel(i, p);
  return buf;
}

function idxLabels(labels: number[]): Buffer {
  const buf = Buffer.alloc(8 + labels.length);
  buf.writeUInt32BE(0x801, 0);
  buf.writeUInt32BE(labels.length, 4);
  labels.forEach((l, i) => (buf[8 + i] = l));
  return buf;
}

const px = (i: number, p: number) => (i * 31 + p * 7) % 256;

test('idx: raw and gzipped files, labels, shapes, pixel values', async () => {
  const d = dir('idx-good');
  fs.writeFileSync(path.join(d, 'train-images-idx3-ubyte.gz'), zlib.gzipSync(idxImages(6, 4, 3, px)));
  fs.writeFileSync(path.join(d, 'train-labels-idx1-ubyte.gz'), zlib.gzipSync(idxLabels([0, 1, 2, 3, 4, 5])));
  fs.writeFileSync(path.join(d, 't10k-images-idx3-ubyte'), idxImages(2, 4, 3, (i, p) => px(i + 100, p)));
  fs.writeFileSync(path.join(d, 't10k-labels-idx1-ubyte'), idxLabels([9, 8]));
  const ds = await loadDataset(cfg({ source: 'idx', path: d }), { seed: 0 });
  assert.equal(ds.name, 'idx-good (idx)');
  assert.deepEqual(ds.shape, [4, 3, 1]);
  assert.equal(ds.train.n, 6);
  assert.equal(ds.test.n, 2);
  assert.deepEqual([...ds.train.labels!], [0, 1, 2, 3, 4, 5]);
  assert.deepEqual([...ds.test.labels!], [9, 8]);
  assert.equal(ds.numClasses, 10);
  for (let i = 0; i < 6; i++) for (let p = 0; p < 12; p++) assert.equal(ds.train.x[i * 12 + p], px(i, p));
  assert.equal(ds.test.x[12 + 5], px(101, 5));

  const capped = await loadDataset(cfg({ source: 'idx', path: d, limit: 2, test_limit: 1, channels: 3 }), { seed: 0 });
  assert.equal(capped.train.n, 2);
  assert.equal(capped.test.n, 1);
  assert.deepEqual(capped.shape, [4, 3, 3]);
  assert.deepEqual([...capped.train.x.subarray(3, 6)], [px(0, 1), px(0, 1), px(0, 1)]);

  const resized = await loadDataset(cfg({ source: 'idx', path: d, image_size: 6 }), { seed: 0 });
  assert.deepEqual(resized.shape, [6, 6, 1]);
  assert.equal(resized.train.x.length, 6 * 36);
});

test('idx: a single images file is split by test_fraction with the seed', async () => {
  const d = dir('idx-single');
  const file = path.join(d, 'train-images-idx3-ubyte');
  fs.writeFileSync(file, idxImages(20, 2, 2, (i) => i));
  fs.writeFileSync(path.join(d, 'train-labels-idx1-ubyte'), idxLabels(Array.from({ length: 20 }, (_, i) => i % 3)));
  const ds = await loadDataset(cfg({ source: 'idx', path: file, test_fraction: 0.25 }), { seed: 4 });
  assert.equal(ds.train.n, 15);
  assert.equal(ds.test.n, 5);
  const ids = [...ds.train.x, ...ds.test.x].filter((_, k) => k % 4 === 0).sort((a, b) => a - b);
  assert.deepEqual(ids, Array.from({ length: 20 }, (_, i) => i), 'every image lands in exactly one split');
  for (let j = 0; j < ds.test.n; j++) assert.equal(ds.test.labels![j], ds.test.x[j * 4]! % 3, 'labels follow their images');
  const again = await loadDataset(cfg({ source: 'idx', path: file, test_fraction: 0.25 }), { seed: 4 });
  assert.deepEqual(again.test.x, ds.test.x);
  const other = await loadDataset(cfg({ source: 'idx', path: file, test_fraction: 0.25 }), { seed: 5 });
  assert.notDeepEqual(other.test.x, ds.test.x);
});

test('idx: wrong magic, truncated file, label count mismatch, missing path', async () => {
  const bad = dir('idx-magic');
  const magicFile = path.join(bad, 'train-images-idx3-ubyte.gz');
  fs.writeFileSync(magicFile, zlib.gzipSync(idxImages(2, 2, 2, px, 0)));
  await rejectsWith(loadDataset(cfg({ source: 'idx', path: bad })), `data: ${magicFile}: IDX magic 0x00000000, expected 0x00000803 (images)`);

  const trunc = dir('idx-trunc');
  const truncFile = path.join(trunc, 'train-images-idx3-ubyte');
  fs.writeFileSync(truncFile, idxImages(3, 2, 2, px).subarray(0, 16 + 10));
  await rejectsWith(loadDataset(cfg({ source: 'idx', path: trunc })), truncFile, '26 bytes', 'expected 28');

  const mism = dir('idx-mismatch');
  fs.writeFileSync(path.join(mism, 'train-images-idx3-ubyte'), idxImages(3, 2, 2, px));
  const labelsFile = path.join(mism, 'train-labels-idx1-ubyte');
  fs.writeFileSync(labelsFile, idxLabels([1, 2]));
  await rejectsWith(loadDataset(cfg({ source: 'idx', path: mism })), labelsFile, '2 labels, expected 3');

  const badLabels = dir('idx-label-magic');
  fs.writeFileSync(path.join(badLabels, 'train-images-idx3-ubyte'), idxImages(2, 2, 2, px));
  const lf = path.join(badLabels, 'train-labels-idx1-ubyte');
  fs.writeFileSync(lf, idxImages(2, 2, 2, px));
  await rejectsWith(loadDataset(cfg({ source: 'idx', path: badLabels })), lf, 'IDX magic 0x00000803, expected 0x00000801 (labels)');

  const missing = path.join(tmp, 'no-such-dir');
  await rejectsWith(loadDataset(cfg({ source: 'idx', path: missing })), missing, 'does not exist');
  await rejectsWith(loadDataset(cfg({ source: 'idx', path: dir('idx-empty') })), 'train-images-idx3-ubyte');
});

// ---------------------------------------------------------------- cifar10

/** One CIFAR record: label, then R, G, B planes; pixel value encodes (record, channel, position). */
function cifarRecords(labels: number[], seed: number): Buffer {
  const buf = Buffer.alloc(labels.length * 3073);
  labels.forEach((l, r) => {
    buf[r * 3073] = l;
    for (let c = 0; c < 3; c++) for (let p = 0; p < 1024; p++) buf[r * 3073 + 1 + c * 1024 + p] = (seed * 17 + r * 5 + c * 80 + p) % 256;
  });
  return buf;
}

test('cifar10: batches, CHW -> HWC, labels and class names', async () => {
  const d = dir('cifar');
  for (let b = 1; b <= 5; b++) fs.writeFileSync(path.join(d, `data_batch_${b}.bin`), cifarRecords([b, b + 1], b));
  fs.writeFileSync(path.join(d, 'test_batch.bin'), cifarRecords([0, 9], 9));
  const names = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
  fs.writeFileSync(path.join(d, 'batches.meta.txt'), names.join('\n') + '\n\n');
  const ds = await loadDataset(cfg({ source: 'cifar10', path: d }), { seed: 0 });
  assert.equal(ds.name, 'cifar10');
  assert.deepEqual(ds.shape, [32, 32, 3]);
  assert.equal(ds.train.n, 10);
  assert.equal(ds.test.n, 2);
  assert.deepEqual([...ds.train.labels!], [1, 2, 2, 3, 3, 4, 4, 5, 5, 6]);
  assert.deepEqual([...ds.test.labels!], [0, 9]);
  assert.deepEqual(ds.classNames, names);
  assert.equal(ds.numClasses, 10);
  // Record 3 is batch 2's second record (seed 2, r = 1); pixel (row 5, col 7) is position 167.
  const p = 5 * 32 + 7;
  for (let c = 0; c < 3; c++) assert.equal(ds.train.x[3 * 3072 + p * 3 + c], (2 * 17 + 1 * 5 + c * 80 + p) % 256);

  const grey = await loadDataset(cfg({ source: 'cifar10', path: d, channels: 1, limit: 3 }), { seed: 0 });
  assert.deepEqual(grey.shape, [32, 32, 1]);
  assert.equal(grey.train.n, 3);
  const [r, g, b] = [0, 1, 2].map((c) => (1 * 17 + 0 * 5 + c * 80 + 0) % 256);
  assert.equal(grey.train.x[0], Math.round(0.299 * r! + 0.587 * g! + 0.114 * b!));
});

test('cifar10: a file whose size is not a multiple of 3073 is named', async () => {
  const d = dir('cifar-bad');
  fs.writeFileSync(path.join(d, 'data_batch_1.bin'), cifarRecords([1], 1));
  const bad = path.join(d, 'data_batch_2.bin');
  fs.writeFileSync(bad, cifarRecords([1, 2], 2).subarray(0, 5000));
  await rejectsWith(loadDataset(cfg({ source: 'cifar10', path: d })), `data: ${bad}: size 5000 bytes`, '3073');
  await rejectsWith(loadDataset(cfg({ source: 'cifar10', path: dir('cifar-none') })), 'data_batch_N.bin');
});

// ---------------------------------------------------------------- image folders

async function writeGreyPng(file: string, w: number, h: number, value: (x: number, y: number) => number): Promise<void> {
  const buf = Buffer.alloc(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) buf[y * w + x] = value(x, y);
  await sharp(buf, { raw: { width: w, height: h, channels: 1 } }).toColourspace('b-w').png().toFile(file);
}

async function writeRgb(file: string, w: number, h: number, rgb: [number, number, number]): Promise<void> {
  const img = sharp({ create: { width: w, height: h, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } });
  await (file.endsWith('.png') ? img.png() : img.jpeg({ quality: 95 })).toFile(file);
}

test('images: class subfolders, grey PNG values exact, labels and class names', async () => {
  const d = dir('img-classes');
  fs.mkdirSync(path.join(d, 'cats'));
  fs.mkdirSync(path.join(d, 'birds'));
  for (let i = 0; i < 3; i++) await writeGreyPng(path.join(d, 'cats', `c${i}.png`), 5, 4, (x, y) => 100 + i * 20 + x + 10 * y);
  for (let i = 0; i < 2; i++) await writeGreyPng(path.join(d, 'birds', `b${i}.PNG`), 5, 4, (x, y) => i * 20 + x + 10 * y);
  fs.writeFileSync(path.join(d, 'cats', 'notes.txt'), 'not an image');
  const ds = await loadDataset(cfg({ source: 'images', path: d, test_fraction: 0.2 }), { seed: 0 });
  assert.equal(ds.name, 'img-classes (images)');
  assert.deepEqual(ds.shape, [4, 5, 1]);
  assert.deepEqual(ds.classNames, ['birds', 'cats']);
  assert.equal(ds.numClasses, 2);
  assert.equal(ds.train.n, 4);
  assert.equal(ds.test.n, 1);
  for (const s of [ds.train, ds.test]) {
    for (let j = 0; j < s.n; j++) {
      const first = s.x[j * 20]!;
      const label = s.labels![j]!;
      assert.equal(label, first >= 100 ? 1 : 0, 'cats start at 100, birds below');
      for (let y = 0; y < 4; y++) for (let x = 0; x < 5; x++) assert.equal(s.x[j * 20 + y * 5 + x], first + x + 10 * y);
    }
  }
  const rgb = await loadDataset(cfg({ source: 'images', path: d, channels: 3, limit: 2, test_limit: 1 }), { seed: 0 });
  assert.deepEqual(rgb.shape, [4, 5, 3]);
  assert.equal(rgb.train.n, 2);
  assert.equal(rgb.train.x[4], rgb.train.x[3]);
});

test('images: RGB/JPEG, channels 0 picks RGB when any file is colour, resize + centre crop', async () => {
  const d = dir('img-mixed-colour');
  await writeGreyPng(path.join(d, 'a.png'), 8, 6, () => 50);
  await writeRgb(path.join(d, 'b.png'), 8, 6, [200, 10, 30]);
  await writeRgb(path.join(d, 'c.jpg'), 8, 6, [0, 0, 250]);
  const ds = await loadDataset(cfg({ source: 'images', path: d, test_fraction: 0 }), { seed: 0 });
  assert.deepEqual(ds.shape, [6, 8, 3]);
  assert.equal(ds.train.n, 3);
  assert.equal(ds.train.labels, undefined);
  assert.equal(ds.classNames, undefined);
  const firsts = Array.from({ length: 3 }, (_, j) => [...ds.train.x.subarray(j * 144, j * 144 + 3)]);
  const byRed = firsts.sort((p, q) => p[2]! - q[2]!);
  assert.deepEqual(byRed[0], [200, 10, 30]);
  assert.deepEqual(byRed[1], [50, 50, 50]);
  assert.ok(Math.abs(byRed[2]![2]! - 250) <= 3 && byRed[2]![0]! <= 3, `jpeg blue ${byRed[2]}`);

  // A 12x6 image whose left/right thirds differ: short side -> 4 then a centre 4x4 crop keeps the middle.
  const wide = dir('img-wide');
  await writeGreyPng(path.join(wide, 'w.png'), 12, 6, (x) => (x < 3 || x >= 9 ? 0 : 200));
  await writeGreyPng(path.join(wide, 'v.png'), 6, 9, () => 77);
  const small = await loadDataset(cfg({ source: 'images', path: wide, image_size: 4, test_fraction: 0 }), { seed: 0 });
  assert.deepEqual(small.shape, [4, 4, 1]);
  assert.equal(small.train.n, 2);
  const values = [...small.train.x];
  assert.ok(values.every((v) => v === 77 || v >= 190), `crop keeps the centre: ${values}`);
});

test('images: mixed sizes, undecodable file, empty and missing folders', async () => {
  const d = dir('img-sizes');
  await writeGreyPng(path.join(d, 'a.png'), 4, 4, () => 1);
  await writeGreyPng(path.join(d, 'b.png'), 5, 4, () => 2);
  await rejectsWith(loadDataset(cfg({ source: 'images', path: d, test_fraction: 0 })), path.join(d, 'a.png'), '4x4', path.join(d, 'b.png'), '5x4', 'image_size');
  // With image_size they are fine.
  const ok = await loadDataset(cfg({ source: 'images', path: d, image_size: 3, test_fraction: 0 }), { seed: 0 });
  assert.deepEqual(ok.shape, [3, 3, 1]);

  const u = dir('img-undecodable');
  await writeGreyPng(path.join(u, 'good.png'), 4, 4, () => 1);
  const broken = path.join(u, 'broken.png');
  fs.writeFileSync(broken, 'this is not a png at all');
  await rejectsWith(loadDataset(cfg({ source: 'images', path: u })), `data: ${broken}: cannot decode image`);

  await rejectsWith(loadDataset(cfg({ source: 'images', path: dir('img-empty') })), 'no .png/.jpg/.jpeg');
  const missing = path.join(tmp, 'img-missing');
  await rejectsWith(loadDataset(cfg({ source: 'images', path: missing })), missing, 'does not exist');
});

// ---------------------------------------------------------------- csv

test('csv: header detection, values, errors name the file, line and column', async () => {
  const d = dir('csv');
  const withHeader = path.join(d, 'h.csv');
  fs.writeFileSync(withHeader, 'a,b,c\n1,2,3\n4.5,-6,7e-1\n\n8,"9",10\n');
  const ds = await loadDataset(cfg({ source: 'csv', path: withHeader, test_fraction: 0 }), { seed: 0 });
  assert.equal(ds.kind, 'vector');
  assert.deepEqual(ds.shape, [3]);
  assert.equal(ds.train.n, 3);
  assert.ok(ds.train.x instanceof Float32Array);
  const rows = Array.from({ length: 3 }, (_, j) => [...ds.train.x.subarray(j * 3, j * 3 + 3)]).sort((p, q) => p[0]! - q[0]!);
  assert.deepEqual(rows, [[1, 2, 3], [4.5, -6, Math.fround(0.7)], [8, 9, 10]]);

  const noHeader = path.join(d, 'n.csv');
  fs.writeFileSync(noHeader, Array.from({ length: 10 }, (_, i) => `${i}\t${-i}`).join('\n'));
  const nh = await loadDataset(cfg({ source: 'csv', path: noHeader, test_fraction: 0.2 }), { seed: 0 });
  assert.deepEqual(nh.shape, [2]);
  assert.equal(nh.train.n + nh.test.n, 10);
  assert.equal(nh.test.n, 2);

  const nonNumeric = path.join(d, 'bad.csv');
  fs.writeFileSync(nonNumeric, 'x,y\n1,2\n3,abc\n');
  await rejectsWith(loadDataset(cfg({ source: 'csv', path: nonNumeric })), `data: ${nonNumeric}: line 3, column 2: 'abc'`);
  const ragged = path.join(d, 'ragged.csv');
  fs.writeFileSync(ragged, '1,2\n3,4\n5,6,7\n');
  await rejectsWith(loadDataset(cfg({ source: 'csv', path: ragged })), `data: ${ragged}: line 3 has 3 columns, expected 2`);
  const missing = path.join(d, 'missing.csv');
  await rejectsWith(loadDataset(cfg({ source: 'csv', path: missing })), missing, 'does not exist');
});

// ---------------------------------------------------------------- toy sets

test('toy sets: shape, size, split, deterministic per seed', async () => {
  for (const toy of TOY_NAMES) {
    const c = cfg({ source: 'toy', toy, toy_size: 1000, test_fraction: 0.1 });
    const a = await loadDataset(c, { seed: 3 });
    assert.equal(a.kind, 'vector');
    assert.deepEqual(a.shape, [2]);
    assert.equal(a.name, toy);
    assert.equal(a.train.n, 900);
    assert.equal(a.test.n, 100);
    assert.equal(a.train.x.length, 1800);
    assert.ok(a.train.x.every((v) => Number.isFinite(v) && Math.abs(v) < 8), `${toy} values in range`);
    const b = await loadDataset(c, { seed: 3 });
    assert.deepEqual(b.train.x, a.train.x, `${toy} deterministic`);
    const other = await loadDataset(c, { seed: 4 });
    assert.notDeepEqual(other.train.x, a.train.x, `${toy} depends on the seed`);
  }
  // Rough geometry: 8gaussians' points sit near radius 4/1.414; rings' radii are at most 3.
  const g = await loadDataset(cfg({ source: 'toy', toy: '8gaussians', toy_size: 2000, test_fraction: 0 }), { seed: 0 });
  let r = 0;
  for (let i = 0; i < g.train.n; i++) r += Math.hypot(g.train.x[2 * i]!, g.train.x[2 * i + 1]!);
  // biome-ignore lint/suspicious/noApproximativeNumericConstant: 8gaussians divides by 1.414 (src/data/toy.ts)
  assert.ok(Math.abs(r / g.train.n - 4 / 1.414) < 0.2, `mean radius ${r / g.train.n}`);
});

// ---------------------------------------------------------------- specs

test('parseDataSpec: names, SOURCE:PATH, inferred paths, options, errors', () => {
  assert.equal(parseDataSpec('embedded').source, 'embedded');
  assert.equal(parseDataSpec('mnist').source, 'embedded');
  const moons = parseDataSpec('two-moons');
  assert.deepEqual([moons.source, moons.toy], ['toy', 'two-moons']);
  const rings = parseDataSpec('toy:rings?toy_size=500');
  assert.deepEqual([rings.source, rings.toy, rings.toy_size], ['toy', 'rings', 500]);
  const fm = parseDataSpec('fashion-mnist');
  assert.deepEqual([fm.source, fm.path], ['idx', fashionMnistPath()]);
  assert.equal(fashionMnistPath({}), path.join('data', 'fashion-mnist'));
  assert.equal(fashionMnistPath({ FLOW_DATA: '/usr/share/datasets' }), '/usr/share/datasets/fashion-mnist');
  const img = parseDataSpec(`images:${tmp}/faces?image_size=32&channels=3`);
  assert.deepEqual([img.source, img.path, img.image_size, img.channels, img.n_bits], ['images', `${tmp}/faces`, 32, 3, 8]);

  const idxDir = dir('spec-idx');
  fs.writeFileSync(path.join(idxDir, 'train-images-idx3-ubyte'), idxImages(1, 1, 1, px));
  assert.equal(parseDataSpec(idxDir).source, 'idx');
  const cifarDir = dir('spec-cifar');
  fs.writeFileSync(path.join(cifarDir, 'data_batch_1.bin'), '');
  assert.equal(parseDataSpec(cifarDir).source, 'cifar10');
  const csvFile = path.join(tmp, 'spec.csv');
  fs.writeFileSync(csvFile, '1,2\n');
  assert.deepEqual([parseDataSpec(csvFile).source, parseDataSpec(csvFile).path], ['csv', csvFile]);
  assert.equal(parseDataSpec(dir('spec-images')).source, 'images');

  assert.throws(() => parseDataSpec(path.join(tmp, 'nope')), (e: unknown) => e instanceof UserError && e.message.includes('nope') && e.message.includes('does not exist'));
  assert.throws(() => parseDataSpec('toy:swissroll'), (e: unknown) => e instanceof UserError && e.message.includes('data.toy'));
  assert.throws(() => parseDataSpec('embedded?colour=1'), UserError);
  assert.throws(() => parseDataSpec(''), UserError);
});

test('Debian fashion-mnist loads when installed (FLOW_DATA=/usr/share/datasets)', { skip: !fs.existsSync('/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz') }, async () => {
  const saved = process.env.FLOW_DATA;
  process.env.FLOW_DATA = '/usr/share/datasets';
  let spec: ReturnType<typeof parseDataSpec>;
  try {
    spec = parseDataSpec('fashion-mnist?test_limit=100');
  } finally {
    if (saved === undefined) delete process.env.FLOW_DATA;
    else process.env.FLOW_DATA = saved;
  }
  const ds: Dataset = await loadDataset(spec, { seed: 0 });
  assert.deepEqual(ds.shape, [28, 28, 1]);
  assert.equal(ds.train.n, 60000);
  assert.equal(ds.test.n, 100);
  assert.equal(ds.classNames?.[9], 'Ankle boot');
});

test('data.path is relative to the config file; errors name the absolute path tried and its base', async () => {
  const root = dir('relpath');
  const confDir = dir('relpath/configs');
  const dataDir = dir('relpath/data/digits');
  fs.writeFileSync(path.join(dataDir, 'train-images-idx3-ubyte'), idxImages(3, 2, 2, (i, p) => i * 10 + p));
  const file = path.join(confDir, 'c.yaml');
  fs.writeFileSync(file, 'data:\n  source: idx\n  path: ../data/digits\n');
  const saved = process.cwd();
  process.chdir(os.tmpdir()); // the working directory must not matter
  try {
    const c = loadConfig(file);
    assert.equal(c.data.path, dataDir);
    assert.equal((await loadDataset(c.data)).train.n + (await loadDataset(c.data)).test.n, 3);
    // --set paths are the user's shell paths: relative to the working directory.
    assert.equal(loadConfig(file, ['data.path=some/dir']).data.path, 'some/dir');
    // A path that only works from the working directory: say the base used, the absolute path, and the fix.
    process.chdir(root);
    fs.writeFileSync(file, 'data:\n  source: idx\n  path: data/digits\n');
    const bad = loadConfig(file);
    await rejectsWith(
      loadDataset(bad.data),
      `data: ${path.join(confDir, 'data', 'digits')}: does not exist (data.path 'data/digits' in ${file} is relative to that file's folder; ` +
        `it exists relative to the working directory: write ../data/digits), expected an IDX directory or images file`,
    );
    // --set with a missing relative path: the absolute path and the working-directory base.
    await rejectsWith(loadDataset(loadConfig(file, ['data.path=nope']).data), `data: ${path.join(root, 'nope')}: does not exist (data.path 'nope', relative to the working directory)`);
  } finally {
    process.chdir(saved);
  }
});

test('data.path: ${VAR} and ${VAR:-default} from the environment; a missing dataset says how to get it', async () => {
  const confDir = dir('envpath/configs');
  assert.equal(resolveDataPath('${FLOW_DATA:-../data}/fashion-mnist', 'c.yaml', confDir, {}), path.join(confDir, '..', 'data', 'fashion-mnist'));
  // The variable's value is a shell path: used as is (relative to the working directory when relative).
  assert.equal(resolveDataPath('${FLOW_DATA:-../data}/fashion-mnist', 'c.yaml', confDir, { FLOW_DATA: '/srv/d' }), '/srv/d/fashion-mnist');
  assert.equal(resolveDataPath('${FLOW_DATA:-../data}/x', 'c.yaml', confDir, { FLOW_DATA: 'rel' }), 'rel/x');
  assert.throws(
    () => resolveDataPath('${NOPE_DIR}/x', 'c.yaml', confDir, {}),
    (e: unknown) => e instanceof UserError && e.message === 'c.yaml: data.path: "${NOPE_DIR}/x" uses ${NOPE_DIR}, which is not set; expected NOPE_DIR=DIR in the environment (or a default: ${NOPE_DIR:-DIR})',
  );
  // The shipped Fashion-MNIST config, without the data: the error says how to get it.
  const shipped = loadConfig(path.join(path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..'), 'configs', 'fashion-mnist.yaml'));
  if (!fs.existsSync(shipped.data.path)) {
    await rejectsWith(loadDataset(shipped.data), 'apt-get install dataset-fashion-mnist', 'FLOW_DATA=/usr/share/datasets', 'data/fashion-mnist/', `data: ${shipped.data.path}: does not exist`);
  }
});

test('images: a corrupt file gets one plain line (no libvips plumbing); data.skip_bad skips and counts bad files', async () => {
  const { decodeReason } = await import('../src/data/images.js');
  assert.equal(decodeReason(new Error('VipsJpeg: Corrupt JPEG data: 12 extraneous bytes\nWarning treated as error due to failOn setting')), 'Corrupt JPEG data: 12 extraneous bytes');
  assert.equal(decodeReason(new Error('Warning treated as error due to failOn setting')), 'corrupt or truncated data');
  assert.equal(decodeReason(new Error('Input buffer contains unsupported image format')), 'unsupported image format');

  const d = dir('img-skip/faces');
  for (let i = 0; i < 6; i++) await writeGreyPng(path.join(d, `ok${i}.png`), 4, 4, () => 10 * i);
  const good = fs.readFileSync(path.join(d, 'ok0.png'));
  fs.writeFileSync(path.join(d, 'trunc.png'), good.subarray(0, Math.floor(good.length / 2)));
  fs.writeFileSync(path.join(d, 'junk.jpg'), 'not an image');
  const msg = await rejectsWith(loadDataset(cfg({ source: 'images', path: d, test_fraction: 0 })), 'cannot decode image', 'data.skip_bad: true');
  assert.ok(!/failOn|treated as error|Vips|vipspng/i.test(msg), msg);

  const stderr: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string) => (stderr.push(String(chunk)), true)) as typeof process.stderr.write;
  let ds: Dataset;
  try {
    ds = await loadDataset(cfg({ source: 'images', path: d, test_fraction: 0.25, skip_bad: true }), { seed: 0 });
  } finally {
    process.stderr.write = write;
  }
  assert.equal(ds.skipped, 2);
  assert.equal(ds.train.n + ds.test.n, 6);
  assert.ok(ds.test.n >= 1);
  assert.equal(stderr.length, 1);
  assert.match(stderr[0]!, new RegExp(`^data: skipped 2 of 8 images in ${d} that cannot be decoded \\(data\\.skip_bad\\), e\\.g\\. ${path.join(d, 'junk.jpg')}: cannot decode image \\(unsupported image format\\)\\n$`));
  // Every file bad: still an error.
  const allBad = dir('img-skip/bad');
  fs.writeFileSync(path.join(allBad, 'x.png'), 'nope');
  await rejectsWith(loadDataset(cfg({ source: 'images', path: allBad, skip_bad: true, test_fraction: 0 })), 'none of the 1 images used could be decoded');
});
