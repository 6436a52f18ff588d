// A folder of PNG/JPEG files, decoded with sharp. Subfolders are classes (sorted names);
// files directly in the folder are unlabelled. The split is drawn over the file list, so
// `limit` decodes only what it keeps.
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { UserError } from '../errors.js';
import { convertChannels, dataError, mapLimit, splitIndices, statOrThrow, type Dataset, type Split } from './common.js';

export const IMAGE_EXT = /\.(png|jpe?g)$/i;
// sharp decodes on libuv's thread pool (4 threads by default); a few more in flight keeps it busy
// without holding thousands of decodes in memory at once.
const DECODE_CONCURRENCY = 8;

/** Every PNG/JPEG file under dir (subfolders too), sorted by path; dotfiles skipped. */
export function listImages(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      if (e.name.startsWith('.')) continue;
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (IMAGE_EXT.test(e.name)) out.push(p);
    }
  };
  walk(dir);
  return out;
}

interface Decoded {
  file: string;
  data: Buffer;
  width: number;
  height: number;
  /** 1 (grey) or 3 (RGB). */
  channels: 1 | 3;
}

/** Decodes one file to 8-bit grey or RGB as stored (alpha flattened onto black), optionally resized + centre-cropped. */
export async function decodeImage(file: string, imageSize: number): Promise<Decoded> {
  try {
    const bytes = await fs.promises.readFile(file);
    const meta = await sharp(bytes).metadata();
    const grey = (meta.channels ?? 3) <= 2;
    let img = sharp(bytes).rotate(); // honour EXIF orientation
    if (meta.hasAlpha) img = img.flatten({ background: { r: 0, g: 0, b: 0 } });
    img = img.toColourspace(grey ? 'b-w' : 'srgb');
    if (imageSize > 0) img = img.resize(imageSize, imageSize, { fit: 'cover', position: 'centre' });
    const { data, info } = await img.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    // Keep grey or RGB only (an alpha or extra band, if any survived, is dropped).
    const want = grey ? 1 : 3;
    let pixels = data;
    if (info.channels !== want) {
      if (info.channels < want) throw new Error(`decoded to ${info.channels} channels`);
      const n = info.width * info.height;
      pixels = Buffer.alloc(n * want);
      for (let i = 0; i < n; i++) for (let c = 0; c < want; c++) pixels[i * want + c] = data[i * info.channels + c]!;
    }
    return { file, data: pixels, width: info.width, height: info.height, channels: want };
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw dataError(file, `cannot decode image (${decodeReason(err)}), expected a valid PNG or JPEG (data.skip_bad: true skips such files)`);
  }
}

/** sharp's error text without libvips' plumbing ('VipsJpeg: ', 'Warning treated as error due to failOn setting'). */
export function decodeReason(err: unknown): string {
  const lines = String((err as Error)?.message ?? err)
    .split('\n')
    .map((l) =>
      l
        .replace(/^Input (buffer|file) (has corrupt header|contains)\s*:?\s*/i, '')
        .replace(/^(Vips\w*|vipspng|\w+load)\s*:\s*/i, '')
        .trim(),
    )
    .filter((l) => l !== '' && !/failOn|treated as error/i.test(l));
  return lines[0] ?? 'corrupt or truncated data';
}

export interface ImageFolderOptions {
  imageSize: number;
  /** 0 = grey if every used file is grey, else RGB. */
  channels: 0 | 1 | 3;
  testFraction: number;
  limit: number;
  testLimit: number;
  seed: number;
  /** Skip (and count) files that cannot be decoded instead of failing on the first. */
  skipBad?: boolean;
}

export async function loadImageFolder(dir: string, opts: ImageFolderOptions): Promise<Dataset> {
  const stat = statOrThrow(dir, 'a folder of PNG/JPEG images');
  if (!stat.isDirectory()) throw dataError(dir, 'is a file, expected a folder of PNG/JPEG images (subfolders = classes)');
  const entries = fs.readdirSync(dir, { withFileTypes: true }).filter((e) => !e.name.startsWith('.'));
  const loose = entries.filter((e) => !e.isDirectory() && IMAGE_EXT.test(e.name)).map((e) => path.join(dir, e.name)).sort();
  const classDirs = entries.filter((e) => e.isDirectory()).map((e) => e.name).sort();
  const classNames: string[] = [];
  const files: string[] = [];
  const fileLabels: number[] = [];
  for (const name of classDirs) {
    const inClass = listImages(path.join(dir, name));
    if (inClass.length === 0) continue;
    for (const f of inClass) {
      files.push(f);
      fileLabels.push(classNames.length);
    }
    classNames.push(name);
  }
  if (classNames.length > 0 && loose.length > 0) {
    throw dataError(dir, `holds both class subfolders (${classNames[0]}/ ...) and loose images (${path.basename(loose[0]!)}), expected all images in class subfolders or none`);
  }
  const labelled = classNames.length > 0;
  if (!labelled) files.push(...loose);
  if (files.length === 0) throw dataError(dir, 'contains no .png/.jpg/.jpeg files, expected a folder of images (subfolders = classes)');

  const { train: trainIdx, test: testIdx } = splitIndices(files.length, opts.testFraction, opts.seed);
  const keep = (idx: Int32Array, limit: number) => (limit > 0 && idx.length > limit ? idx.subarray(0, limit) : idx);
  const trainKeep = keep(trainIdx, opts.limit);
  const testKeep = keep(testIdx, opts.testLimit);
  const used = [...trainKeep, ...testKeep];
  const bad: string[] = [];
  const attempts = await mapLimit(used, DECODE_CONCURRENCY, async (i) => {
    try {
      return await decodeImage(files[i]!, opts.imageSize);
    } catch (err) {
      if (!opts.skipBad || !(err instanceof UserError)) throw err;
      bad.push(err.message.replace(/^data: /, '').replace(/, expected a valid PNG.*$/, ''));
      return null;
    }
  });
  // Keep each split's surviving files with their indices into `files` (for labels).
  const survivors = (from: number, idx: ArrayLike<number>) =>
    Array.from(idx, (fileIndex, j) => ({ d: attempts[from + j]!, fileIndex })).filter((e): e is { d: Decoded; fileIndex: number } => e.d !== null);
  const trainKept = survivors(0, trainKeep);
  const testKept = survivors(trainKeep.length, testKeep);
  const decoded = [...trainKept, ...testKept].map((e) => e.d);
  if (bad.length > 0) {
    bad.sort();
    if (decoded.length === 0) throw dataError(dir, `none of the ${used.length} images used could be decoded, e.g. ${bad[0]}`);
    process.stderr.write(`data: skipped ${bad.length} of ${used.length} images in ${dir} that cannot be decoded (data.skip_bad), e.g. ${bad[0]}\n`);
  }

  const first = decoded[0]!;
  for (const d of decoded) {
    if (d.width !== first.width || d.height !== first.height) {
      throw new UserError(`data: ${dir}: images differ in size: ${first.file} is ${first.width}x${first.height} but ${d.file} is ${d.width}x${d.height}, expected one size (or set data.image_size to resize)`);
    }
  }
  const channels = opts.channels !== 0 ? opts.channels : decoded.every((d) => d.channels === 1) ? 1 : 3;
  const dims = first.width * first.height * channels;
  const build = (kept: { d: Decoded; fileIndex: number }[]): Split => {
    const count = kept.length;
    const x = new Uint8Array(count * dims);
    kept.forEach(({ d }, j) => x.set(convertChannels(d.data, d.channels, channels), j * dims));
    if (!labelled) return { x, n: count };
    const labels = Int32Array.from(kept, ({ fileIndex }) => fileLabels[fileIndex]!);
    return { x, labels, n: count };
  };
  const train = build(trainKept);
  const test = build(testKept);
  return {
    name: `${path.basename(path.resolve(dir))} (images)`,
    kind: 'image',
    shape: [first.height, first.width, channels],
    train,
    test,
    ...(labelled ? { numClasses: classNames.length, classNames } : {}),
    ...(bad.length > 0 ? { skipped: bad.length } : {}),
  };
}
