// Data loading: one entry point over every source in the config's `data` section, and the
// spec parser behind `flow ood --in SPEC`.
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { DataSchema, type DataConfig } from '../config/schema.js';
import { UserError } from '../errors.js';
import { loadCifar10 } from './cifar.js';
import { capSplit, convertChannels, mapLimit, product, splitByFraction, type Dataset, type Split } from './common.js';
import { readCsv } from './csv.js';
import { loadEmbedded } from './embedded.js';
import { loadIdx } from './idx.js';
import { loadImageFolder } from './images.js';
import { makeToy, TOY_NAMES } from './toy.js';

export type { Dataset, Split } from './common.js';
export { TOY_NAMES } from './toy.js';

/** Loads cfg's source, split into train/test (seeded where the source has no test split), capped and converted. */
export async function loadDataset(cfg: DataConfig, opts: { seed?: number } = {}): Promise<Dataset> {
  const seed = opts.seed ?? 0;
  let ds: Dataset;
  switch (cfg.source) {
    case 'embedded':
      ds = loadEmbedded(cfg.test_fraction, seed);
      break;
    case 'idx':
      ds = await loadIdx(cfg.path, cfg.test_fraction, seed);
      break;
    case 'cifar10':
      ds = await loadCifar10(cfg.path, cfg.test_fraction, seed);
      break;
    case 'images':
      // Splits, caps, resizes and converts channels itself, so only kept files are decoded.
      return loadImageFolder(cfg.path, {
        imageSize: cfg.image_size,
        channels: cfg.channels,
        testFraction: cfg.test_fraction,
        limit: cfg.limit,
        testLimit: cfg.test_limit,
        seed,
        skipBad: cfg.skip_bad,
      });
    case 'toy': {
      const x = makeToy(cfg.toy, cfg.toy_size, seed);
      const { train, test } = splitByFraction(x, undefined, 2, cfg.test_fraction, seed);
      ds = { name: cfg.toy, kind: 'vector', shape: [2], train, test };
      break;
    }
    case 'csv': {
      const csv = readCsv(cfg.path);
      const { train, test } = splitByFraction(csv.x, undefined, csv.dims, cfg.test_fraction, seed);
      ds = { name: `${path.basename(cfg.path)} (csv)`, kind: 'vector', shape: [csv.dims], train, test };
      break;
    }
    default:
      throw new UserError(`data.source '${String((cfg as { source: unknown }).source)}' is unknown, expected one of embedded, idx, cifar10, images, toy, csv`);
  }
  const dims = product(ds.shape);
  ds.train = capSplit(ds.train, cfg.limit, dims);
  ds.test = capSplit(ds.test, cfg.test_limit, dims);
  if (ds.kind === 'image') {
    if (cfg.image_size > 0 && (ds.shape[0] !== cfg.image_size || ds.shape[1] !== cfg.image_size)) ds = await resizeDataset(ds, cfg.image_size);
    if (cfg.channels !== 0 && cfg.channels !== ds.shape[2]) {
      const from = ds.shape[2]!;
      const to = cfg.channels;
      const convert = (s: Split): Split => ({ ...s, x: convertChannels(s.x as Uint8Array, from, to) });
      ds = { ...ds, shape: [ds.shape[0]!, ds.shape[1]!, to], train: convert(ds.train), test: convert(ds.test) };
    }
  }
  return ds;
}

/** Resizes (short side) + centre-crops every image of a split to size x size with sharp. */
async function resizeSplit(split: Split, shape: number[], size: number): Promise<Split> {
  const [h, w, c] = shape as [number, number, number];
  const dims = h * w * c;
  const outDims = size * size * c;
  const src = split.x as Uint8Array;
  const x = new Uint8Array(split.n * outDims);
  const rows = Array.from({ length: split.n }, (_, i) => i);
  await mapLimit(rows, 8, async (i) => {
    const input = src.subarray(i * dims, (i + 1) * dims);
    const out = await sharp(input, { raw: { width: w, height: h, channels: c as 1 | 3 } })
      .resize(size, size, { fit: 'cover', position: 'centre' })
      .toColourspace(c === 1 ? 'b-w' : 'srgb')
      .raw()
      .toBuffer();
    if (out.length !== outDims) throw new Error(`resize: got ${out.length} bytes for one image, expected ${outDims}`);
    x.set(out, i * outDims);
  });
  return { ...split, x };
}

async function resizeDataset(ds: Dataset, size: number): Promise<Dataset> {
  const [train, test] = [await resizeSplit(ds.train, ds.shape, size), await resizeSplit(ds.test, ds.shape, size)];
  return { ...ds, shape: [size, size, ds.shape[2]!], train, test };
}

const SOURCES = ['embedded', 'idx', 'cifar10', 'images', 'toy', 'csv'] as const;

/** `fashion-mnist` in a spec: $FLOW_DATA/fashion-mnist, else data/fashion-mnist, as in configs/fashion-mnist.yaml. */
export function fashionMnistPath(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(env.FLOW_DATA || 'data', 'fashion-mnist');
}

/** Which source a bare path looks like: csv file, IDX file/folder, CIFAR batches folder, else an image folder. */
function inferSource(p: string, spec: string): DataConfig['source'] {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(p);
  } catch {
    throw new UserError(`data spec '${spec}': ${p} does not exist, expected a data path or one of ${SOURCES.join(', ')}, a toy name, SOURCE:PATH`);
  }
  if (stat.isFile()) {
    if (/\.(csv|tsv|txt)$/i.test(p)) return 'csv';
    if (/idx3-ubyte(\.gz)?$/i.test(p)) return 'idx';
    throw new UserError(`data spec '${spec}': cannot tell the format of ${p}, expected a .csv or *-images-idx3-ubyte[.gz] file (or write SOURCE:PATH)`);
  }
  const names = fs.readdirSync(p);
  if (names.some((f) => /idx3-ubyte(\.gz)?$/i.test(f))) return 'idx';
  if (names.some((f) => /^data_batch_\d+\.bin$/.test(f)) || names.includes('cifar-10-batches-bin')) return 'cifar10';
  return 'images';
}

/**
 * Parses a data spec (e.g. for `flow ood --in SPEC`) into a full data config:
 *   embedded | mnist                      the embedded digits
 *   two-moons | toy:rings                 a toy set
 *   fashion-mnist                         $FLOW_DATA/fashion-mnist, else data/fashion-mnist (Debian's package:
 *                                         FLOW_DATA=/usr/share/datasets)
 *   idx:DIR | cifar10:DIR | images:DIR | csv:FILE
 *   PATH                                  source inferred from what is there
 * optionally followed by ?key=value&key=value with any data option (e.g. images:faces?image_size=32&channels=3).
 */
export function parseDataSpec(spec: string): DataConfig {
  const trimmed = spec.trim();
  if (trimmed === '') throw new UserError(`data spec is empty, expected e.g. embedded, two-moons, idx:DIR, images:DIR, csv:FILE or a path`);
  const q = trimmed.lastIndexOf('?');
  const body = q >= 0 ? trimmed.slice(0, q) : trimmed;
  const query = q >= 0 ? trimmed.slice(q + 1) : '';
  const raw: Record<string, unknown> = {};
  if (query !== '') {
    for (const pair of query.split('&')) {
      const eq = pair.indexOf('=');
      if (eq <= 0) throw new UserError(`data spec '${spec}': option '${pair}' is not key=value`);
      const key = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      raw[key] = value !== '' && Number.isFinite(Number(value)) ? Number(value) : value;
    }
  }
  const colon = body.indexOf(':');
  const prefix = colon > 0 ? body.slice(0, colon) : '';
  if ((SOURCES as readonly string[]).includes(prefix)) {
    raw.source = prefix;
    const arg = body.slice(colon + 1);
    if (prefix === 'toy') raw.toy = arg;
    else if (prefix !== 'embedded') raw.path = arg;
  } else if (body === 'embedded' || body === 'mnist') {
    raw.source = 'embedded';
  } else if ((TOY_NAMES as readonly string[]).includes(body)) {
    raw.source = 'toy';
    raw.toy = body;
  } else if (body === 'fashion-mnist' && !fs.existsSync(body)) {
    raw.source = 'idx';
    raw.path = fashionMnistPath();
  } else {
    raw.source = inferSource(body, spec);
    raw.path = body;
  }
  const parsed = DataSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const where = issue.path.length > 0 ? `data.${issue.path.join('.')}` : 'data';
    throw new UserError(`data spec '${spec}': ${where}: ${issue.message}`);
  }
  return parsed.data;
}
