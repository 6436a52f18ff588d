// What `flow compress INPUTS...` reads: image files, folders of PNG/JPEG images (every file, by relative
// path, so decompress can restore the names), or any data spec `flow ood` takes (default split test).
// Pixels stay uint8 from the file or dataset to the codec, never through floats. The inputs are listed
// first and only the images a --limit / --shard keeps are decoded.
import fs from 'node:fs';
import path from 'node:path';
import { loadDataset } from '../data/index.js';
import { IMAGE_EXT, decodeImage, listImages } from '../data/images.js';
import { mapLimit } from '../data/common.js';
import { UserError } from '../errors.js';
import { parseOodSpec } from '../ood/spec.js';
import { splitRows } from '../ood/run.js';
import { shardIndices, type ShardSpec } from '../eval/shard.js';
import type { ImageSet } from './compress.js';

type Shape = [number, number, number];

interface Source {
  count: number;
  /** Per-image names (files and folders), else undefined. */
  names?: string[];
  /** The pixels of the source's images `rows`, back to back. */
  read(rows: number[]): Promise<Uint8Array>;
}

const shapeText = (s: readonly number[]) => s.join('x');

function fileSource(files: string[], names: string[], shape: Shape): Source {
  const dims = shape[0] * shape[1] * shape[2];
  return {
    count: files.length,
    names,
    async read(rows) {
      const out = new Uint8Array(rows.length * dims);
      // sharp decodes on libuv's thread pool: a few files in flight keep it busy.
      await mapLimit(rows, 8, async (row, j) => {
        const file = files[row]!;
        const img = await decodeImage(file, 0);
        const got: Shape = [img.height, img.width, img.channels];
        if (shapeText(got) !== shapeText(shape)) throw new UserError(`${file}: decodes to ${shapeText(got)} pixels (HxWxC); the model takes ${shapeText(shape)}`);
        out.set(img.data, j * dims);
      });
      return out;
    },
  };
}

/** A folder of images, unless it holds an IDX or CIFAR-10 dataset (then it is a data spec). */
function isImageFolder(dir: string): boolean {
  const names = fs.readdirSync(dir);
  return !names.some((f) => /idx3-ubyte(\.gz)?$/i.test(f) || /^data_batch_\d+\.bin$/.test(f) || f === 'cifar-10-batches-bin');
}

async function specSource(input: string, shape: Shape, seed: number): Promise<Source> {
  const spec = parseOodSpec(input, 'test');
  const ds = await loadDataset(spec.data, { seed });
  if (ds.kind !== 'image') throw new UserError(`${input}: ${ds.name} is ${ds.shape[0]}-d vector data; flow compress codes 8-bit images`);
  if (shapeText(ds.shape) !== shapeText(shape)) {
    throw new UserError(`${input}: ${ds.name} has images of ${shapeText(ds.shape)} (HxWxC) but the model takes ${shapeText(shape)}; resize in the spec, e.g. ?image_size=${shape[0]}&channels=${shape[2]}`);
  }
  const rows = splitRows(ds, spec.split);
  const x = rows.x as Uint8Array;
  const dims = shape[0] * shape[1] * shape[2];
  return {
    count: rows.n,
    async read(list) {
      const out = new Uint8Array(list.length * dims);
      list.forEach((r, j) => out.set(x.subarray(r * dims, (r + 1) * dims), j * dims));
      return out;
    },
  };
}

async function openSource(input: string, shape: Shape, seed: number): Promise<Source> {
  const stat = fs.statSync(input, { throwIfNoEntry: false });
  if (stat?.isFile() && IMAGE_EXT.test(input)) return fileSource([input], [path.basename(input)], shape);
  if (stat?.isDirectory() && isImageFolder(input)) {
    const files = listImages(input);
    if (files.length === 0) throw new UserError(`${input}: holds no .png/.jpg/.jpeg files; expected a folder of images or a data spec`);
    return fileSource(files, files.map((f) => path.relative(input, f).split(path.sep).join('/')), shape);
  }
  return specSource(input, shape, seed);
}

/** The .png name decompress gives a stored name ("a/b.jpg" -> "a/b.png"). */
export function outputName(name: string): string {
  return name.replace(/\.(png|jpe?g)$/i, '') + '.png';
}

export interface InputOptions {
  shape: Shape;
  /** The run's seed: the train/test split of a data spec is the run's. */
  seed: number;
  /** Keep the first n images of all inputs together (0 = all). */
  limit: number;
  shard: ShardSpec | null;
}

/** Reads the inputs in order as one list; --limit keeps its head, --shard then takes images i, i+n, ... of it. */
export async function readInputs(inputs: string[], o: InputOptions): Promise<ImageSet> {
  if (inputs.length === 0) throw new UserError('compress: give at least one input: image files, folders of PNG/JPEG or a data spec (e.g. embedded:test)');
  const sources: Source[] = [];
  for (const input of inputs) sources.push(await openSource(input, o.shape, o.seed));
  const all = sources.reduce((s, src) => s + src.count, 0);
  const total = o.limit > 0 ? Math.min(o.limit, all) : all;
  if (total === 0) throw new UserError(`compress: the inputs (${inputs.join(' ')}) hold no images`);
  const indices = shardIndices(total, o.shard);
  const dims = o.shape[0] * o.shape[1] * o.shape[2];
  const pixels = new Uint8Array(indices.length * dims);
  const names: Array<string | null> = [];
  const seen = new Map<string, number>();
  let at = 0;
  let base = 0;
  for (const src of sources) {
    const rows = indices.filter((g) => g >= base && g < base + src.count).map((g) => g - base);
    if (rows.length) pixels.set(await src.read(rows), at * dims);
    for (const r of rows) {
      const name = src.names?.[r] ?? null;
      if (name !== null) {
        const key = outputName(name);
        const other = seen.get(key);
        if (other !== undefined) throw new UserError(`compress: images ${other} and ${base + r} would both decompress to ${key}; rename one or compress them separately`);
        seen.set(key, base + r);
      }
      names.push(name);
    }
    at += rows.length;
    base += src.count;
  }
  return { pixels, count: indices.length, shape: o.shape, indices, total, ...(names.some((n) => n !== null) ? { names } : {}) };
}
