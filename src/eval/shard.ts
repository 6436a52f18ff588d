// Sharded eval/sample over a job array, and the merge that puts the shards back together.
// Shard i of n takes examples (or sample indices) i, i+n, i+2n, ...: every job gets an almost
// equal share whatever the order of the data, and the split can be re-sharded without re-planning.
// A merge must reproduce the unsharded run exactly, so it re-orders by global index and then uses
// the very same mean/stderr code as `flow eval` (same summation order -> bitwise-equal numbers).
import fs from 'node:fs';
import { z } from 'zod';
import { UserError } from '../errors.js';
import { atomicWriteFile } from '../io/atomic.js';
import { meanAndStderr } from './bpd.js';

export interface ShardSpec {
  index: number;
  count: number;
}

export const EVAL_PART_KIND = 'flow-eval-part';
export const SAMPLE_PART_KIND = 'flow-sample-part';
export const PART_VERSION = 1;

/** One `flow eval --bpd --shard i/n --out PART.json` result. Arrays are parallel, in the shard's order. */
export interface EvalPart {
  kind: typeof EVAL_PART_KIND;
  version: 1;
  shard: ShardSpec;
  /** Examples in the whole (unsharded) evaluation. */
  total: number;
  split: string;
  metric: 'bpd' | 'nll';
  seed: number;
  run_dir: string;
  checkpoint: string;
  step: number;
  indices: number[];
  values: number[];
  log_prob: number[];
  labels?: number[];
  /** Optional context copied into the merged result when present (as in unsharded `flow eval --json`). */
  dims?: number;
  n_bits?: number;
  class_names?: string[];
}

/** One `flow sample --shard i/n` result: which global sample index went to which PNG file. */
export interface SamplePart {
  kind: typeof SAMPLE_PART_KIND;
  version: 1;
  shard: ShardSpec;
  total: number;
  seed: number;
  temperature: number;
  checkpoint: string;
  step: number;
  /** Relative paths are relative to the part file's directory (see the merge command). */
  files: Array<{ index: number; file: string }>;
  height: number;
  width: number;
  channels: number;
}

export type Part = EvalPart | SamplePart;

/** The indices shard `index` of `count` owns out of 0..total-1 (all of them when shard is null). */
export function shardIndices(total: number, shard: ShardSpec | null): number[] {
  if (!Number.isInteger(total) || total < 0) throw new RangeError(`shardIndices: total ${total} is not a non-negative integer`);
  if (!shard) return Array.from({ length: total }, (_, i) => i);
  const { index, count } = shard;
  if (!Number.isInteger(count) || count < 1 || !Number.isInteger(index) || index < 0 || index >= count) {
    throw new UserError(`--shard ${index}/${count}: expected i/n with 0 <= i < n`);
  }
  const out: number[] = [];
  for (let i = index; i < total; i += count) out.push(i);
  return out;
}

export function shardLabel(shard: ShardSpec): string {
  return `${shard.index}/${shard.count}`;
}

// ---------------------------------------------------------------------------------------------
// Reading and writing part files. JSON has no NaN/Infinity (JSON.stringify turns them into null),
// but a diverged model can give non-finite bpd, and the merge must reproduce it: those are stored
// as the strings "NaN", "Infinity", "-Infinity".

const NON_FINITE: Record<string, number> = { NaN: NaN, Infinity: Infinity, '-Infinity': -Infinity };

function encodeNumber(_key: string, value: unknown): unknown {
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  return value;
}

/** A part as JSON text (non-finite numbers kept as strings). */
export function serializePart(part: Part): string {
  return JSON.stringify(part, encodeNumber) + '\n';
}

/** Writes a part file atomically, so a half-written part never reaches the merge. */
export function writePart(file: string, part: Part): void {
  atomicWriteFile(file, serializePart(part));
}

const int = z.number().int();
const count = int.min(0);
const shardSchema = z.object({ index: count, count: int.min(1) }).refine((s) => s.index < s.count, {
  message: 'shard index must be below the shard count',
});
// A per-example number: finite, or one of the encodings above (null is what a plain JSON.stringify leaves).
const looseNumber = z
  .union([z.number(), z.null(), z.enum(['NaN', 'Infinity', '-Infinity'])])
  .transform((v) => (v === null ? NaN : typeof v === 'string' ? NON_FINITE[v]! : v));

const evalPartSchema = z.object({
  kind: z.literal(EVAL_PART_KIND),
  version: z.literal(PART_VERSION),
  shard: shardSchema,
  total: count,
  split: z.string(),
  metric: z.enum(['bpd', 'nll']),
  seed: int,
  run_dir: z.string(),
  checkpoint: z.string().min(1),
  step: count,
  indices: z.array(count),
  values: z.array(looseNumber),
  log_prob: z.array(looseNumber),
  labels: z.array(count).optional(),
  dims: int.min(1).optional(),
  n_bits: int.min(1).optional(),
  class_names: z.array(z.string()).optional(),
});

const samplePartSchema = z.object({
  kind: z.literal(SAMPLE_PART_KIND),
  version: z.literal(PART_VERSION),
  shard: shardSchema,
  total: count,
  seed: int,
  temperature: z.number().min(0),
  checkpoint: z.string().min(1),
  step: count,
  files: z.array(z.object({ index: count, file: z.string().min(1) })),
  height: int.min(1),
  width: int.min(1),
  channels: z.union([z.literal(1), z.literal(3)]),
});

function describeIssue(issue: z.core.$ZodIssue): string {
  const where = issue.path.length ? issue.path.map(String).join('.') : '(top level)';
  return `${where}: ${issue.message}`;
}

/** Parses and validates one part file's text; `source` (its path) names it in every error. */
export function parsePart(text: string, source: string): Part {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new UserError(`${source}: not valid JSON (${(e as Error).message}); expected a part file written by --shard`);
  }
  const kind = (raw as { kind?: unknown } | null)?.kind;
  if (kind !== EVAL_PART_KIND && kind !== SAMPLE_PART_KIND) {
    throw new UserError(
      `${source}: not a flow part file (expected "kind": "${EVAL_PART_KIND}" or "${SAMPLE_PART_KIND}"); pass only the files written with --shard`,
    );
  }
  const version = (raw as { version?: unknown }).version;
  if (version !== PART_VERSION) {
    throw new UserError(`${source}: part format version ${JSON.stringify(version)}; this flow reads version ${PART_VERSION}`);
  }
  const parsed = (kind === EVAL_PART_KIND ? evalPartSchema : samplePartSchema).safeParse(raw);
  if (!parsed.success) throw new UserError(`${source}: invalid ${kind}: ${describeIssue(parsed.error.issues[0]!)}`);
  return parsed.data as Part;
}

export function readPart(file: string): Part {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(`${file}: cannot read part file (${code === 'ENOENT' ? 'no such file' : code ?? (e as Error).message})`);
  }
  return parsePart(text, file);
}

// ---------------------------------------------------------------------------------------------
// Merging.

interface CommonPart {
  kind: string;
  version: number;
  shard: ShardSpec;
  total: number;
}

function defaultSources(n: number): string[] {
  return Array.from({ length: n }, (_, k) => `part ${k}`);
}

/** Checks the fields every part must share, and that shards 0..n-1 each appear exactly once. */
function checkShardSet<P extends CommonPart>(
  parts: P[],
  sources: string[],
  kind: string,
  sameFields: Array<keyof P & string>,
): void {
  if (parts.length === 0) throw new UserError('merge: no part files given');
  if (sources.length !== parts.length) throw new RangeError('merge: one source name per part expected');
  const first = parts[0]!;
  const n = first.shard.count;
  const seen = new Map<number, string>();
  parts.forEach((p, k) => {
    const src = sources[k]!;
    if (p.kind !== kind) throw new UserError(`${src}: is a ${p.kind} but ${sources[0]} is a ${kind}; merge eval parts and sample parts separately`);
    if (p.version !== PART_VERSION) throw new UserError(`${src}: part format version ${p.version}; this flow reads version ${PART_VERSION}`);
    if (p.shard.count !== n) {
      throw new UserError(`${src}: shard ${shardLabel(p.shard)} but ${sources[0]} is shard ${shardLabel(first.shard)}; all parts must come from the same --shard i/${n} job array`);
    }
    for (const field of sameFields) {
      const a = JSON.stringify(first[field]);
      const b = JSON.stringify(p[field]);
      if (a !== b) throw new UserError(`${src}: ${field} ${b} differs from ${sources[0]}'s ${a}; all parts must come from one run of the same command`);
    }
    const other = seen.get(p.shard.index);
    if (other !== undefined) throw new UserError(`${src}: shard ${shardLabel(p.shard)} given twice (also ${other})`);
    seen.set(p.shard.index, src);
  });
  const missing = shardIndices(n, null).filter((i) => !seen.has(i));
  if (missing.length) {
    const list = missing.slice(0, 8).map((i) => `${i}/${n}`).join(', ') + (missing.length > 8 ? `, ... (${missing.length} in all)` : '');
    throw new UserError(`merge: missing shard ${list}; expected one part for each shard 0..${n - 1}, got ${parts.length}`);
  }
}

/**
 * Places each part's per-index entries at their global positions; refuses indices outside 0..total-1,
 * indices that belong to another shard, duplicates and gaps. Returns, for every global index, the
 * part number and the position inside that part.
 */
function placeIndices(partIndices: number[][], shards: ShardSpec[], total: number, sources: string[]): { part: Int32Array; pos: Int32Array } {
  const part = new Int32Array(total).fill(-1);
  const pos = new Int32Array(total);
  partIndices.forEach((indices, k) => {
    const { index: s, count: n } = shards[k]!;
    indices.forEach((i, j) => {
      if (!Number.isInteger(i) || i < 0 || i >= total) throw new UserError(`${sources[k]}: index ${i} is outside 0..${total - 1} (total ${total})`);
      if (i % n !== s) throw new UserError(`${sources[k]}: index ${i} does not belong to shard ${s}/${n} (shard i of n takes i, i+n, i+2n, ...)`);
      if (part[i] !== -1) throw new UserError(`${sources[k]}: index ${i} appears twice`);
      part[i] = k;
      pos[i] = j;
    });
  });
  for (let i = 0; i < total; i++) {
    if (part[i] === -1) {
      const owner = sources[partIndices.findIndex((_, k) => i % shards[k]!.count === shards[k]!.index)] ?? '(no part)';
      const missing = shardIndices(total, null).filter((x) => part[x] === -1).length;
      throw new UserError(`${owner}: index ${i} is missing${missing > 1 ? ` (${missing} indices missing in all)` : ''}; was this shard's job cut short?`);
    }
  }
  return { part, pos };
}

export interface MergedEval {
  metric: 'bpd' | 'nll';
  /** Mean of `values` and its standard error, exactly as `flow eval` computes them. */
  mean: number;
  stderr: number;
  n: number;
  split: string;
  seed: number;
  run_dir: string;
  checkpoint: string;
  step: number;
  shards: number;
  dims?: number;
  n_bits?: number;
  class_names?: string[];
  /** Global order: indices is 0..n-1. */
  indices: number[];
  values: Float64Array;
  log_prob: Float64Array;
  labels?: number[];
}

/** Combines eval parts into the unsharded result; UserError naming the offending part on any inconsistency. */
export function mergeEvalParts(parts: EvalPart[], sources: string[] = defaultSources(parts.length)): MergedEval {
  checkShardSet(parts, sources, EVAL_PART_KIND, ['total', 'split', 'metric', 'seed', 'checkpoint', 'step']);
  const first = parts[0]!;
  const withLabels = first.labels !== undefined;
  parts.forEach((p, k) => {
    const m = p.indices.length;
    if (p.values.length !== m || p.log_prob.length !== m || (p.labels !== undefined && p.labels.length !== m)) {
      throw new UserError(`${sources[k]}: indices, values, log_prob${p.labels ? ', labels' : ''} have different lengths (${p.indices.length}, ${p.values.length}, ${p.log_prob.length}${p.labels ? `, ${p.labels.length}` : ''})`);
    }
    if ((p.labels !== undefined) !== withLabels) {
      throw new UserError(`${sources[k]}: ${withLabels ? 'has no labels' : 'has labels'} but ${sources[0]} ${withLabels ? 'has' : 'has none'}`);
    }
  });
  const total = first.total;
  const { part, pos } = placeIndices(parts.map((p) => p.indices), parts.map((p) => p.shard), total, sources);
  const values = new Float64Array(total);
  const logProb = new Float64Array(total);
  const labels = withLabels ? new Array<number>(total) : undefined;
  for (let i = 0; i < total; i++) {
    const p = parts[part[i]!]!;
    const j = pos[i]!;
    values[i] = p.values[j]!;
    logProb[i] = p.log_prob[j]!;
    if (labels) labels[i] = p.labels![j]!;
  }
  const { mean, stderr } = meanAndStderr(values);
  const optional = <K extends 'dims' | 'n_bits' | 'class_names'>(key: K) => parts.find((p) => p[key] !== undefined)?.[key];
  const dims = optional('dims');
  const nBits = optional('n_bits');
  const classNames = optional('class_names');
  return {
    metric: first.metric,
    mean,
    stderr,
    n: total,
    split: first.split,
    seed: first.seed,
    run_dir: first.run_dir,
    checkpoint: first.checkpoint,
    step: first.step,
    shards: first.shard.count,
    ...(dims !== undefined ? { dims } : {}),
    ...(nBits !== undefined ? { n_bits: nBits } : {}),
    ...(classNames !== undefined ? { class_names: classNames } : {}),
    indices: shardIndices(total, null),
    values,
    log_prob: logProb,
    ...(labels ? { labels } : {}),
  };
}

export interface MergedSamples {
  n: number;
  seed: number;
  temperature: number;
  checkpoint: string;
  step: number;
  shards: number;
  height: number;
  width: number;
  channels: number;
  /** One entry per global sample index, in order 0..n-1. */
  files: Array<{ index: number; file: string }>;
}

/** Orders sample parts' files by global sample index; UserError naming the offending part on any inconsistency. */
export function mergeSampleParts(parts: SamplePart[], sources: string[] = defaultSources(parts.length)): MergedSamples {
  checkShardSet(parts, sources, SAMPLE_PART_KIND, ['total', 'seed', 'temperature', 'checkpoint', 'step', 'height', 'width', 'channels']);
  const first = parts[0]!;
  const total = first.total;
  const { part, pos } = placeIndices(parts.map((p) => p.files.map((f) => f.index)), parts.map((p) => p.shard), total, sources);
  const files = Array.from({ length: total }, (_, i) => ({ index: i, file: parts[part[i]!]!.files[pos[i]!]!.file }));
  return {
    n: total,
    seed: first.seed,
    temperature: first.temperature,
    checkpoint: first.checkpoint,
    step: first.step,
    shards: first.shard.count,
    height: first.height,
    width: first.width,
    channels: first.channels,
    files,
  };
}
