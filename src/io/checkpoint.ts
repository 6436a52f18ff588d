// Writing checkpoints: <runDir>/checkpoints/step-<8 digits>/{weights.bin, state.json, manifest.json}.
// A checkpoint is built in a .tmp-<pid>-<random> directory, fsynced, and renamed into place, and
// manifest.json is written last, so a SIGKILL at any moment leaves every earlier checkpoint intact
// and never leaves a step-* directory that looks complete but is not.
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { tf } from '../tf.js';
import { VERSION } from '../version.js';
import { StorageError, atomicWriteFile, fsyncDir, removePath, toStorageError, writeFileSynced } from './atomic.js';
import { isPidAlive } from './pid.js';
import { CHECKPOINT_FORMAT, LITTLE_ENDIAN, TOOL, checkpointsDir, readNameFile, sha256Hex, stepDirName, stepDirs, type CheckpointContent, type CheckpointManifest, type TensorEntry, type TensorRecord } from './checkpoint-layout.js';
import { inspectCheckpoint } from './checkpoint-read.js';

// The checkpoint API in one place for its users: the format (checkpoint-layout.ts), the readers
// (checkpoint-read.ts) and the writer below.
export { CHECKPOINT_FORMAT, checkpointsDir, stepDirName, type CheckpointContent, type CheckpointManifest, type TensorDtype, type TensorEntry, type TensorRecord } from './checkpoint-layout.js';
export { assertCompatible, bestCheckpoint, checkpointProblem, inspectCheckpoint, latestCheckpoint, listCheckpoints, loadCheckpoint, newestCheckpoint, readManifest, type NewestCheckpoint } from './checkpoint-read.js';

// Temp entries this module (and atomicWriteFile) leaves only when killed: `.tmp-<pid>-...` and `.<name>.tmp-<pid>-...`.
const TEMP_ENTRY = /^\.(?:[^/]*\.)?tmp-(\d+)-/;

export interface SaveOptions {
  /** Checkpoints kept besides the best one (>= 1). */
  keepLast: number;
  /** Keep (and name in BEST) the checkpoint with the lowest metrics[bestMetric], e.g. 'test_bpd'. */
  bestMetric?: string;
}

/** The tensor's bytes in little-endian order (a view on little-endian machines, a swapped copy otherwise). */
export function littleEndianBytes(data: Float32Array | Int32Array): Uint8Array {
  const view = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (LITTLE_ENDIAN) return view;
  const out = new Uint8Array(data.byteLength);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < data.length; i++) {
    if (data instanceof Float32Array) dv.setFloat32(i * 4, data[i]!, true);
    else dv.setInt32(i * 4, data[i]!, true);
  }
  return out;
}

function checkRecord(t: TensorRecord, seen: Set<string>): void {
  const n = t.shape.reduce((a, b) => a * b, 1);
  if (seen.has(t.name)) throw new Error(`saveCheckpoint: duplicate tensor name '${t.name}'`);
  seen.add(t.name);
  if (t.dtype === 'float32' ? !(t.data instanceof Float32Array) : t.dtype === 'int32' ? !(t.data instanceof Int32Array) : true) {
    throw new Error(`saveCheckpoint: tensor '${t.name}' has dtype '${t.dtype}' but its data is a ${t.data?.constructor?.name}`);
  }
  if (t.data.length !== n) throw new Error(`saveCheckpoint: tensor '${t.name}' has shape [${t.shape.join(', ')}] (${n} values) but ${t.data.length} values`);
}

/** Stream every tensor into weights.bin (no concatenated copy in memory), hashing as we go. */
function writeWeights(path: string, tensors: TensorRecord[]): { entries: TensorEntry[]; sha: string; bytes: number } {
  const seen = new Set<string>();
  for (const t of tensors) checkRecord(t, seen);
  const hash = createHash('sha256');
  const entries: TensorEntry[] = [];
  const fd = openSync(path, 'w', 0o644);
  let offset = 0;
  try {
    for (const t of tensors) {
      const bytes = littleEndianBytes(t.data);
      let done = 0;
      while (done < bytes.byteLength) done += writeSync(fd, bytes, done, bytes.byteLength - done);
      hash.update(bytes);
      entries.push({ name: t.name, shape: [...t.shape], dtype: t.dtype, offset, length: bytes.byteLength });
      offset += bytes.byteLength;
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return { entries, sha: hash.digest('hex'), bytes: offset };
}

/** Remove temp dirs/files left by killed saves (ours, or of processes that no longer exist). */
function removeStaleTemps(ckDir: string): void {
  for (const name of readdirSync(ckDir)) {
    const m = TEMP_ENTRY.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || !isPidAlive(pid)) removePath(join(ckDir, name));
  }
}

function tempDirName(suffix = ''): string {
  return `.tmp-${process.pid}-${randomBytes(4).toString('hex')}${suffix}`;
}

/** Rename first (atomic), then delete, so a half-deleted checkpoint never looks like a checkpoint. */
function retire(ckDir: string, name: string): void {
  const aside = join(ckDir, tempDirName('-retired'));
  renameSync(join(ckDir, name), aside);
  removePath(aside);
}

/**
 * Write a checkpoint atomically and apply retention. Returns the checkpoint's directory.
 * On a full or read-only disk the temp dir is removed, earlier checkpoints stay, and a StorageError is thrown.
 */
export function saveCheckpoint(runDir: string, c: CheckpointContent, opts: SaveOptions): string {
  if (!Number.isInteger(c.step) || c.step < 0) throw new Error(`saveCheckpoint: step must be a non-negative integer, got ${c.step}`);
  const ckDir = checkpointsDir(runDir);
  const name = stepDirName(c.step);
  const finalDir = join(ckDir, name);
  let tmp: string | null = null;
  try {
    mkdirSync(ckDir, { recursive: true });
    removeStaleTemps(ckDir);
    tmp = join(ckDir, tempDirName());
    mkdirSync(tmp);
    const w = writeWeights(join(tmp, 'weights.bin'), c.tensors);
    const stateBytes = Buffer.from(JSON.stringify(c.state ?? null), 'utf8');
    writeFileSynced(join(tmp, 'state.json'), stateBytes);
    const metrics: Record<string, number | null> = {};
    for (const [k, v] of Object.entries(c.metrics ?? {})) metrics[k] = Number.isFinite(v) ? v : null;
    const manifest: CheckpointManifest = {
      format: CHECKPOINT_FORMAT,
      tool: TOOL,
      toolVersion: VERSION,
      step: c.step,
      createdAt: new Date().toISOString(),
      tensors: w.entries,
      sha256: { 'weights.bin': w.sha, 'state.json': sha256Hex(stateBytes) },
      bytes: { 'weights.bin': w.bytes, 'state.json': stateBytes.byteLength },
      config: c.config,
      metrics,
    };
    // Written last: a step-* directory with a parseable manifest is complete.
    writeFileSynced(join(tmp, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
    fsyncDir(tmp);
    if (existsSync(finalDir)) {
      // Re-saving a step (e.g. after a rollback): move the old one aside; rename cannot replace a non-empty dir.
      const aside = join(ckDir, tempDirName('-replaced'));
      renameSync(finalDir, aside);
      renameSync(tmp, finalDir);
      removePath(aside);
    } else {
      renameSync(tmp, finalDir);
    }
    tmp = null;
    fsyncDir(ckDir);
    atomicWriteFile(join(ckDir, 'LATEST'), name + '\n');
  } catch (e) {
    if (tmp) {
      try {
        removePath(tmp);
      } catch {
        /* best effort; the next save removes it */
      }
    }
    const err = toStorageError(e, `checkpoint ${name}`, runDir);
    if (err instanceof StorageError) throw new StorageError(`${err.message}; the previous checkpoint is kept`, err.code);
    throw err;
  }
  applyRetention(ckDir, c.step, opts);
  return finalDir;
}

function applyRetention(ckDir: string, savedStep: number, opts: SaveOptions): void {
  const keepLast = Math.max(1, Math.floor(opts.keepLast));
  const savedName = stepDirName(savedStep);
  try {
    const valid: Array<{ name: string; step: number; metric: number | null }> = [];
    for (const d of stepDirs(ckDir)) {
      // Higher steps belong to a continuation abandoned when training resumed from an earlier checkpoint.
      if (d.step > savedStep) {
        retire(ckDir, d.name);
        continue;
      }
      const m = inspectCheckpoint(join(ckDir, d.name));
      if (!m) continue; // not ours to understand: never delete it
      const v = opts.bestMetric !== undefined ? m.metrics?.[opts.bestMetric] : null;
      valid.push({ name: d.name, step: d.step, metric: typeof v === 'number' && Number.isFinite(v) ? v : null });
    }
    const keep = new Set(valid.slice(-keepLast).map((v) => v.name));
    keep.add(savedName);
    const bestFile = join(ckDir, 'BEST');
    let best: (typeof valid)[number] | null = null;
    for (const v of valid) if (v.metric !== null && (best === null || v.metric <= best.metric!)) best = v;
    if (best) {
      keep.add(best.name);
      atomicWriteFile(bestFile, best.name + '\n');
    } else {
      // No metric this time: keep whatever an earlier save named best.
      const prev = readNameFile(bestFile);
      if (prev) keep.add(prev);
    }
    for (const v of valid) if (!keep.has(v.name)) retire(ckDir, v.name);
  } catch (e) {
    throw toStorageError(e, 'checkpoint retention', ckDir);
  }
}

/** A tensor's values as a checkpoint record (read asynchronously: GPU backends can read no other way). */
export async function record(name: string, t: tf.Tensor): Promise<TensorRecord> {
  return { name, shape: t.shape.slice(), dtype: 'float32', data: (await t.data()) as Float32Array };
}

