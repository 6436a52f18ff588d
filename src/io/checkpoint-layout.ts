// The checkpoint format's names and shapes: <runDir>/checkpoints/step-<8 digits>/ with weights.bin (the
// tensors, little-endian), state.json (the trainer's state) and manifest.json (tensor table, sizes,
// sha256s, config, metrics); LATEST and BEST name step directories. Shared by the writer
// (checkpoint.ts) and the readers (checkpoint-read.ts).
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { endianness } from 'node:os';
import { join } from 'node:path';
import type { Config } from '../config/schema.js';

export const CHECKPOINT_FORMAT = 1;
export const TOOL = 'flow';
export const STEP_DIR = /^step-(\d{8,})$/;
export const LITTLE_ENDIAN = endianness() === 'LE';

export type TensorDtype = 'float32' | 'int32';

export interface TensorRecord {
  name: string;
  shape: number[];
  dtype: TensorDtype;
  data: Float32Array | Int32Array;
}

export interface CheckpointContent {
  step: number;
  tensors: TensorRecord[];
  /** Free-form JSON from the trainer (optimizer step, data iterator, rng state, LR schedule, best bpd...). */
  state: unknown;
  config: Config;
  /** Non-finite values are stored as null and read back as NaN. */
  metrics?: Record<string, number>;
}

/** Where one tensor lives in weights.bin (offset and length in bytes, little-endian). */
export interface TensorEntry {
  name: string;
  shape: number[];
  dtype: TensorDtype;
  offset: number;
  length: number;
}

export interface CheckpointManifest {
  format: number;
  tool: string;
  toolVersion: string;
  step: number;
  createdAt: string;
  tensors: TensorEntry[];
  sha256: Record<string, string>;
  bytes: Record<string, number>;
  config: Config;
  metrics: Record<string, number | null>;
}

export function checkpointsDir(runDir: string): string {
  return join(runDir, 'checkpoints');
}

export function stepDirName(step: number): string {
  return `step-${String(step).padStart(8, '0')}`;
}

export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export const BYTES_PER: Record<TensorDtype, number> = { float32: 4, int32: 4 };

export function stepDirs(ckDir: string): Array<{ name: string; step: number }> {
  let names: string[];
  try {
    names = readdirSync(ckDir);
  } catch {
    return [];
  }
  const out: Array<{ name: string; step: number }> = [];
  for (const name of names) {
    const m = STEP_DIR.exec(name);
    if (m) out.push({ name, step: Number(m[1]) });
  }
  return out.sort((a, b) => a.step - b.step);
}

export function readNameFile(path: string): string | null {
  try {
    const name = readFileSync(path, 'utf8').trim();
    return STEP_DIR.test(name) ? name : null;
  } catch {
    return null;
  }
}

/** The files holding a checkpoint's content (manifest.json only describes them, with a timestamp). */
export const CONTENT_FILES = ['weights.bin', 'state.json'] as const;

/**
 * One sha256 naming a checkpoint's content: over each content file's name, byte length (u64 LE) and bytes.
 * Copies of a checkpoint share it; any retrained or edited weight changes it (what `flow compress` files pin).
 */
export function checkpointDigest(dir: string): string {
  const hash = createHash('sha256');
  for (const name of CONTENT_FILES) {
    const bytes = readFileSync(join(dir, name));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(bytes.byteLength));
    hash.update(name).update(Buffer.from([0])).update(len).update(bytes);
  }
  return hash.digest('hex');
}
