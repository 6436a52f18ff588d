// CIFAR-10 binary batches (cifar-10-binary.tar.gz): records of 1 label byte + 3072 pixel bytes
// stored channel-planar (1024 R, 1024 G, 1024 B, rows top to bottom); we convert to HWC.
import fs from 'node:fs';
import path from 'node:path';
import { dataError, splitByFraction, statOrThrow, type Dataset, type Split } from './common.js';

const SIDE = 32;
const PLANE = SIDE * SIDE;
const PIXELS = PLANE * 3;
const RECORD = 1 + PIXELS;

/** Parses one batch file into HWC pixels and labels. */
export function parseCifarBatch(buf: Buffer, file: string): { x: Uint8Array; labels: Int32Array; n: number } {
  if (buf.length === 0 || buf.length % RECORD !== 0) {
    throw dataError(file, `size ${buf.length} bytes is not a positive multiple of ${RECORD}, expected records of 1 label byte + 3072 pixel bytes`);
  }
  const n = buf.length / RECORD;
  const x = new Uint8Array(n * PIXELS);
  const labels = new Int32Array(n);
  for (let r = 0; r < n; r++) {
    const src = r * RECORD;
    labels[r] = buf[src]!;
    const dst = r * PIXELS;
    for (let p = 0; p < PLANE; p++) {
      const o = dst + p * 3;
      x[o] = buf[src + 1 + p]!;
      x[o + 1] = buf[src + 1 + PLANE + p]!;
      x[o + 2] = buf[src + 1 + 2 * PLANE + p]!;
    }
  }
  return { x, labels, n };
}

function concat(parts: { x: Uint8Array; labels: Int32Array; n: number }[]): Split {
  const n = parts.reduce((a, p) => a + p.n, 0);
  const x = new Uint8Array(n * PIXELS);
  const labels = new Int32Array(n);
  let row = 0;
  for (const p of parts) {
    x.set(p.x, row * PIXELS);
    labels.set(p.labels, row);
    row += p.n;
  }
  return { x, labels, n };
}

export async function loadCifar10(dir: string, testFraction: number, seed: number): Promise<Dataset> {
  const stat = statOrThrow(dir, 'a directory of CIFAR-10 binary batches (data_batch_1.bin ... test_batch.bin)');
  if (!stat.isDirectory()) throw dataError(dir, 'is a file, expected a directory of CIFAR-10 binary batches (data_batch_1.bin ... test_batch.bin)');
  // The tarball unpacks into cifar-10-batches-bin/; accept its parent too.
  let root = dir;
  let names = fs.readdirSync(root);
  if (!names.some((f) => /^data_batch_\d+\.bin$/.test(f)) && names.includes('cifar-10-batches-bin')) {
    root = path.join(dir, 'cifar-10-batches-bin');
    names = fs.readdirSync(root);
  }
  const trainFiles = names
    .filter((f) => /^data_batch_\d+\.bin$/.test(f))
    .sort((a, b) => Number(a.match(/\d+/)![0]) - Number(b.match(/\d+/)![0]))
    .map((f) => path.join(root, f));
  if (trainFiles.length === 0) {
    const hint = names.some((f) => /^data_batch_\d+$/.test(f)) ? ' (these look like the Python pickles; use the binary version, cifar-10-binary.tar.gz)' : '';
    throw dataError(root, `no data_batch_N.bin files, expected CIFAR-10 binary batches${hint}`);
  }
  const testFile = names.includes('test_batch.bin') ? path.join(root, 'test_batch.bin') : null;
  const read = async (f: string) => parseCifarBatch(await fs.promises.readFile(f), f);
  const [trainParts, testPart] = await Promise.all([Promise.all(trainFiles.map(read)), testFile ? read(testFile) : Promise.resolve(null)]);

  let classNames: string[] | undefined;
  const metaFile = path.join(root, 'batches.meta.txt');
  if (fs.existsSync(metaFile)) {
    classNames = fs.readFileSync(metaFile, 'utf8').split(/\r?\n/).map((s) => s.trim()).filter((s) => s.length > 0);
    if (classNames.length === 0) throw dataError(metaFile, 'has no class names, expected one name per line');
  }
  const numClasses = classNames?.length ?? 10;
  for (const [file, part] of [...trainFiles.map((f, i) => [f, trainParts[i]!] as const), ...(testFile && testPart ? [[testFile, testPart] as const] : [])]) {
    const bad = part.labels.findIndex((l) => l >= numClasses);
    if (bad >= 0) throw dataError(file, `record ${bad} has label ${part.labels[bad]}, expected 0..${numClasses - 1}${classNames ? ` (${numClasses} names in batches.meta.txt)` : ''}`);
  }

  let train: Split;
  let test: Split;
  if (testPart) {
    train = concat(trainParts);
    test = { x: testPart.x, labels: testPart.labels, n: testPart.n };
  } else {
    const all = concat(trainParts);
    ({ train, test } = splitByFraction(all.x, all.labels, PIXELS, testFraction, seed));
  }
  return { name: 'cifar10', kind: 'image', shape: [SIDE, SIDE, 3], train, test, numClasses, ...(classNames ? { classNames } : {}) };
}
