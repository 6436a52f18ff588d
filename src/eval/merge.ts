// Merging the parts of a sharded `flow eval` or `flow sample` (eval/shard.ts) back into the unsharded
// result: every part must come from the same job (checkpoint, seed, split...) and together cover every
// index exactly once. The merge re-orders by global index and then uses the very same mean/stderr code
// as `flow eval` (same summation order -> bitwise-equal numbers).
import { UserError } from '../errors.js';
import { meanAndStderr } from './bpd.js';
import { EVAL_PART_KIND, PART_VERSION, SAMPLE_PART_KIND, shardIndices, shardLabel, type EvalPart, type SamplePart, type ShardSpec } from './shard.js';

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
