// What `flow eval --bpd` reports, built in one place for the unsharded eval (cli/eval.ts) and for
// `flow merge` of its shards (cli/merge.ts), so both print and write exactly the same per-class
// summary, per-example CSV and JSON.
import { meanAndStderr } from './bpd.js';
import type { MergedEval } from './merge.js';

export type PerClass = Record<string, Record<string, number>>;

/**
 * Mean and stderr of `metric` per class: values[j] belongs to class labels[j]; examples in the given
 * order, classes sorted by label; a class is named by classNames[label] when there are names.
 */
export function perClassSummary(metric: string, values: ArrayLike<number>, labels: ArrayLike<number> | undefined, classNames?: string[]): PerClass {
  const perClass: PerClass = {};
  if (!labels) return perClass;
  const groups = new Map<number, number[]>();
  for (let j = 0; j < labels.length; j++) {
    const y = labels[j]!;
    if (!groups.has(y)) groups.set(y, []);
    groups.get(y)!.push(values[j]!);
  }
  for (const [y, v] of [...groups].sort((a, b) => a[0] - b[0])) {
    const s = meanAndStderr(v);
    perClass[classNames?.[y] ?? String(y)] = { [metric]: s.mean, stderr: s.stderr, n: s.n };
  }
  return perClass;
}

/** The per-example CSV of `flow eval --per-example`: row j is example indices[j] (labels, values, logProb by position). */
export function perExampleCsv(metric: string, indices: ArrayLike<number>, values: ArrayLike<number>, logProb: ArrayLike<number>, labels?: ArrayLike<number>): string {
  const lines = [labels ? `index,label,${metric},log_prob_nats` : `index,${metric},log_prob_nats`];
  for (let j = 0; j < indices.length; j++) lines.push(labels ? `${indices[j]},${labels[j]},${values[j]},${logProb[j]}` : `${indices[j]},${values[j]},${logProb[j]}`);
  return lines.join('\n') + '\n';
}

/** The object `flow eval --bpd --json` prints, built from a merged result (per_class as eval computes it). */
export function mergedEvalSummary(m: MergedEval): Record<string, unknown> {
  const perClass = perClassSummary(m.metric, m.values, m.labels, m.class_names);
  return {
    [m.metric]: m.mean,
    stderr: m.stderr,
    n: m.n,
    split: m.split,
    ...(m.dims !== undefined ? { dims: m.dims } : {}),
    ...(m.n_bits !== undefined ? { n_bits: m.n_bits } : {}),
    seed: m.seed,
    run_dir: m.run_dir,
    checkpoint: m.checkpoint,
    step: m.step,
    ...(Object.keys(perClass).length ? { per_class: perClass } : {}),
    shards: m.shards,
  };
}

/** The merged eval as JSON: the summary, then per_example with one example per line (readable, diffable). */
export function mergedEvalJson(summary: Record<string, unknown>, m: MergedEval): string {
  const head = JSON.stringify(summary, null, 2).replace(/\n}$/, '');
  const rows = m.indices.map((i, j) => '    ' + JSON.stringify({ index: i, ...(m.labels ? { label: m.labels[j]! } : {}), [m.metric]: m.values[j]!, log_prob: m.log_prob[j]! }));
  return `${head},\n  "per_example": [\n${rows.join(',\n')}\n  ]\n}\n`;
}
