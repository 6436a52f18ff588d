// Sharded eval/sample over a job array: which indices a shard takes, and the part files it writes
// (eval/merge.ts puts them back together). Shard i of n takes examples (or sample indices) i, i+n,
// i+2n, ...: every job gets an almost equal share whatever the order of the data, and the split can be
// re-sharded without re-planning.
import fs from 'node:fs';
import { z } from 'zod';
import { UserError } from '../errors.js';
import { atomicWriteFile } from '../io/atomic.js';

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
