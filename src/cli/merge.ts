// `flow merge PARTS... --out RESULT`: put the parts of a sharded `flow eval` or `flow sample` back
// together, giving exactly what the unsharded command would have produced.
import fs from 'node:fs';
import path from 'node:path';
import sharp, { type OutputInfo } from 'sharp';
import { readPart, EVAL_PART_KIND, type EvalPart, type SamplePart } from '../eval/shard.js';
import { mergeEvalParts, mergeSampleParts, type MergedSamples } from '../eval/merge.js';
import { mergedEvalSummary, mergedEvalJson, perExampleCsv } from '../eval/summary.js';
import { atomicWriteFile } from '../io/atomic.js';
import { tile, encodeImageFor, labelledGrid, type ImageBatch, type GridLabels } from '../io/png.js';
import { printJson } from './common.js';
import { UserError, EXIT } from '../errors.js';

export interface MergeFlags {
  out: string;
  json?: boolean;
  /** false (--no-labels): a bare grid without the caption strip. */
  labels?: boolean;
}

export async function mergeCommand(parts: string[], flags: MergeFlags): Promise<number> {
  if (!flags.out) throw new UserError('merge: --out RESULT is required (a .json or .csv for eval parts; a .png or a directory for sample parts)');
  if (parts.length === 0) throw new UserError('merge: no part files given; expected PARTS... written with --shard i/n');
  const loaded = parts.map((file) => ({ file, part: readPart(file) }));
  const kind = loaded[0]!.part.kind;
  const odd = loaded.find((l) => l.part.kind !== kind);
  if (odd) throw new UserError(`${odd.file}: is a ${odd.part.kind} but ${loaded[0]!.file} is a ${kind}; merge eval parts and sample parts separately`);
  const sources = loaded.map((l) => l.file);
  if (kind === EVAL_PART_KIND) return mergeEval(loaded.map((l) => l.part as EvalPart), sources, flags);
  return mergeSamples(loaded.map((l) => l.part as SamplePart), sources, flags);
}

// ---------------------------------------------------------------------------------------------
// Eval parts.

function ensureParentDir(file: string): void {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
}

async function mergeEval(parts: EvalPart[], sources: string[], flags: MergeFlags): Promise<number> {
  if (!/\.(json|csv)$/i.test(flags.out)) throw new UserError(`--out ${flags.out}: eval parts merge into a .json result or a .csv per-example table`);
  const merged = mergeEvalParts(parts, sources);
  const summary = mergedEvalSummary(merged);
  ensureParentDir(flags.out);
  const csv = () => perExampleCsv(merged.metric, merged.indices, merged.values, merged.log_prob, merged.labels);
  atomicWriteFile(flags.out, /\.csv$/i.test(flags.out) ? csv() : mergedEvalJson(summary, merged));
  if (!Number.isFinite(merged.mean)) process.stderr.write(`warning: non-finite ${merged.metric} for some examples; see ${flags.out}\n`);
  if (flags.json) printJson({ ...summary, out: flags.out });
  else {
    process.stdout.write(
      `${merged.split} ${merged.metric}: ${merged.mean.toFixed(4)} ± ${merged.stderr.toFixed(4)} (n=${merged.n}, step ${merged.step}, ` +
        `${merged.shards} shard${merged.shards === 1 ? '' : 's'}) -> ${flags.out}\n`,
    );
  }
  return EXIT.OK;
}

// ---------------------------------------------------------------------------------------------
// Sample parts.

/** Relative file names in a part are relative to the part file's directory (then to the cwd). */
function resolvePartFile(file: string, partFile: string): string {
  if (path.isAbsolute(file)) return file;
  const besidePart = path.join(path.dirname(partFile), file);
  if (fs.existsSync(besidePart) || !fs.existsSync(file)) return besidePart;
  return file;
}

/** Decodes one sample PNG to raw uint8 HWC pixels with exactly the part's channel count. */
async function decodeSample(file: string, source: string, m: MergedSamples): Promise<Uint8Array> {
  if (!fs.existsSync(file)) throw new UserError(`${source}: sample file ${file} does not exist`);
  let out: { data: Buffer; info: OutputInfo };
  try {
    const img = sharp(file).removeAlpha().toColourspace(m.channels === 1 ? 'b-w' : 'srgb');
    out = await img.raw().toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new UserError(`${source}: cannot decode sample ${file} as PNG (${(e as Error).message})`);
  }
  const { width, height, channels } = out.info;
  if (width !== m.width || height !== m.height || channels !== m.channels) {
    throw new UserError(`${source}: sample ${file} is ${width}x${height}x${channels}, expected ${m.width}x${m.height}x${m.channels} as the part says`);
  }
  return new Uint8Array(out.data.buffer, out.data.byteOffset, out.data.byteLength);
}

/**
 * The caption (run, step, seed, temperature) and row labels (one temperature per row) of a sample grid.
 * Built only from what a sample part records, so `flow merge` of the shards draws the unsharded grid's caption.
 */
export function sampleGridLabels(o: { checkpoint: string; step: number; seed: number; temperatures: number[] }): GridLabels {
  const run = path.basename(path.dirname(path.dirname(path.resolve(o.checkpoint))));
  const caption = [`run ${run}`, `step ${o.step}`, `seed ${o.seed}`];
  if (o.temperatures.length === 1) caption.push(`T=${o.temperatures[0]}`);
  return { caption, ...(o.temperatures.length > 1 ? { rowLabels: o.temperatures.map((t) => `T=${t}`) } : {}) };
}

/** The name `flow sample --out-dir` gives sample number `index`. */
export function sampleFileName(index: number): string {
  return `sample-${String(index).padStart(5, '0')}.png`;
}

async function mergeSamples(parts: SamplePart[], sources: string[], flags: MergeFlags): Promise<number> {
  // Resolve each part's file names before merging, remembering which part named each file.
  const owner = new Map<string, string>();
  const resolved = parts.map((p, k) => ({
    ...p,
    files: p.files.map((f) => {
      const file = resolvePartFile(f.file, sources[k]!);
      owner.set(file, sources[k]!);
      return { index: f.index, file };
    }),
  }));
  const merged = mergeSampleParts(resolved, sources);
  const { n, height: h, width: w, channels: c } = merged;
  if (/\.(json|csv)$/i.test(flags.out)) throw new UserError(`--out ${flags.out}: sample parts merge into a .png grid or a directory of PNGs`);
  let written: string[];
  if (/\.(png|jpe?g)$/i.test(flags.out)) {
    const size = h * w * c;
    const pixels = new Uint8Array(n * size);
    for (const { index, file } of merged.files) pixels.set(await decodeSample(file, owner.get(file)!, merged), index * size);
    const batch: ImageBatch = { pixels, n, height: h, width: w, channels: c };
    ensureParentDir(flags.out);
    // Same layout and caption as an unsharded `flow sample --out`: a square-ish grid in sample order.
    const cols = Math.ceil(Math.sqrt(n));
    const labels = sampleGridLabels({ checkpoint: merged.checkpoint, step: merged.step, seed: merged.seed, temperatures: [merged.temperature] });
    atomicWriteFile(flags.out, await encodeImageFor(flags.out, flags.labels === false ? tile(batch, cols) : await labelledGrid(batch, cols, labels)));
    written = [flags.out];
  } else {
    if (fs.existsSync(flags.out) && !fs.statSync(flags.out).isDirectory()) {
      throw new UserError(`--out ${flags.out}: exists and is not a directory; give a .png file for a grid or a directory for one PNG per sample`);
    }
    fs.mkdirSync(flags.out, { recursive: true });
    written = [];
    for (const { index, file } of merged.files) {
      if (!fs.existsSync(file)) throw new UserError(`${owner.get(file)}: sample file ${file} does not exist`);
      const target = path.join(flags.out, sampleFileName(index));
      if (path.resolve(target) !== path.resolve(file)) atomicWriteFile(target, fs.readFileSync(file));
      written.push(target);
    }
  }
  const summary = {
    n,
    seed: merged.seed,
    temperature: merged.temperature,
    checkpoint: merged.checkpoint,
    step: merged.step,
    shards: merged.shards,
    out: flags.out,
    files: written,
  };
  if (flags.json) printJson(summary);
  else process.stdout.write(`merged ${n} samples from ${merged.shards} shard${merged.shards === 1 ? '' : 's'} into ${flags.out}${written.length > 1 ? ` (${written.length} files)` : ''}\n`);
  return EXIT.OK;
}
