// Data specs for `flow ood`: parseDataSpec's grammar plus a split choice, written either as a
// trailing `:train`, `:test`, `:all` (e.g. fashion-mnist:test, embedded:all, idx:/data/mnist:train)
// or as a `split=` query option (images:faces?image_size=28&split=all).
import fs from 'node:fs';
import path from 'node:path';
import type { DataConfig } from '../config/schema.js';
import { parseDataSpec } from '../data/index.js';
import { UserError } from '../errors.js';

export const SPLITS = ['train', 'test', 'all'] as const;
export type SplitChoice = (typeof SPLITS)[number];

export interface OodDataSpec {
  /** The spec as the user wrote it. */
  spec: string;
  data: DataConfig;
  split: SplitChoice;
}

// Sources whose spec needs an argument: 'images:test' is the folder "test", not the test split of nothing.
const NEEDS_ARGUMENT = ['idx', 'cifar10', 'images', 'csv', 'toy'];

function isSplit(s: string): s is SplitChoice {
  return (SPLITS as readonly string[]).includes(s);
}

export function parseOodSpec(spec: string, defaultSplit: SplitChoice = 'test'): OodDataSpec {
  const trimmed = spec.trim();
  const q = trimmed.lastIndexOf('?');
  let body = q >= 0 ? trimmed.slice(0, q) : trimmed;
  const pairs = q >= 0 ? trimmed.slice(q + 1).split('&').filter((p) => p !== '') : [];
  let split: SplitChoice | undefined;

  const kept: string[] = [];
  for (const pair of pairs) {
    const [key, value] = [pair.slice(0, pair.indexOf('=')).trim(), pair.slice(pair.indexOf('=') + 1).trim()];
    if (pair.includes('=') && key === 'split') {
      if (!isSplit(value)) throw new UserError(`data spec '${spec}': split=${value}: expected one of ${SPLITS.join(', ')}`);
      split = value;
    } else kept.push(pair);
  }

  const colon = body.lastIndexOf(':');
  if (colon > 0) {
    const tail = body.slice(colon + 1);
    const rest = body.slice(0, colon);
    // A real file or folder whose name ends in ':test' stays a path.
    if (isSplit(tail) && !NEEDS_ARGUMENT.includes(rest) && !fs.existsSync(body)) {
      if (split && split !== tail) throw new UserError(`data spec '${spec}': two different splits (:${tail} and split=${split}); give one`);
      split = tail;
      body = rest;
    }
  }
  const data = parseDataSpec(kept.length ? `${body}?${kept.join('&')}` : body);
  return { spec, data, split: split ?? defaultSplit };
}

/**
 * Whether two data configs read the same examples in the same train/test partition, so that row i of
 * one's training split is row i of the other's (limit and test_limit aside).
 */
export function sameTrainingSplit(a: DataConfig, b: DataConfig): boolean {
  const samePath = a.path === b.path || (a.path !== '' && b.path !== '' && path.resolve(a.path) === path.resolve(b.path));
  return (
    a.source === b.source &&
    samePath &&
    (a.source !== 'toy' || (a.toy === b.toy && a.toy_size === b.toy_size)) &&
    a.image_size === b.image_size &&
    a.channels === b.channels &&
    a.test_fraction === b.test_fraction
  );
}
