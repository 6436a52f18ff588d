// Checkpoints: <runDir>/checkpoints/step-<8 digits>/{weights.bin, state.json, manifest.json}.
// A checkpoint is built in a .tmp-<pid>-<random> directory, fsynced, and renamed into place, and
// manifest.json is written last, so a SIGKILL at any moment leaves every earlier checkpoint intact
// and never leaves a step-* directory that looks complete but is not.
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, fstatSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, statSync, writeSync } from 'node:fs';
import { endianness } from 'node:os';
import { join } from 'node:path';
import type { tf } from '../tf.js';
import { UserError } from '../errors.js';
import { VERSION } from '../version.js';
import { ModelSchema, type Config } from '../config/schema.js';
import { StorageError, atomicWriteFile, fsyncDir, removePath, toStorageError, writeFileSynced } from './atomic.js';
import { isPidAlive } from './pid.js';

export const CHECKPOINT_FORMAT = 1;
const TOOL = 'flow';
const STEP_DIR = /^step-(\d{8,})$/;
// Temp entries this module (and atomicWriteFile) leaves only when killed: `.tmp-<pid>-...` and `.<name>.tmp-<pid>-...`.
const TEMP_ENTRY = /^\.(?:[^/]*\.)?tmp-(\d+)-/;
const LITTLE_ENDIAN = endianness() === 'LE';

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

export interface SaveOptions {
  /** Checkpoints kept besides the best one (>= 1). */
  keepLast: number;
  /** Keep (and name in BEST) the checkpoint with the lowest metrics[bestMetric], e.g. 'test_bpd'. */
  bestMetric?: string;
}

export function checkpointsDir(runDir: string): string {
  return join(runDir, 'checkpoints');
}

export function stepDirName(step: number): string {
  return `step-${String(step).padStart(8, '0')}`;
}

function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

const BYTES_PER: Record<TensorDtype, number> = { float32: 4, int32: 4 };

/** The tensor's bytes in little-endian order (a view on little-endian machines, a swapped copy otherwise). */
function littleEndianBytes(data: Float32Array | Int32Array): Uint8Array {
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

function stepDirs(ckDir: string): Array<{ name: string; step: number }> {
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

function readNameFile(path: string): string | null {
  try {
    const name = readFileSync(path, 'utf8').trim();
    return STEP_DIR.test(name) ? name : null;
  } catch {
    return null;
  }
}

function corrupt(file: string, what: string): never {
  throw new UserError(`${file}: ${what}; the checkpoint is corrupt`);
}

function isIntArray(v: unknown): v is number[] {
  return Array.isArray(v) && v.every((x) => Number.isInteger(x) && x >= 0);
}

/** Read and check manifest.json (format, tool, fields). Throws a one-line UserError naming the file. */
export function readManifest(dir: string): CheckpointManifest {
  const file = join(dir, 'manifest.json');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (!existsSync(dir)) throw new UserError(`${dir}: no such checkpoint directory; expected a path like <run>/checkpoints/step-00001000`);
    if (code === 'ENOENT') throw new UserError(`${file}: missing; expected a checkpoint directory written by flow (it may be incomplete)`);
    throw new UserError(`${file}: cannot read (${code ?? (e as Error).message})`);
  }
  let m: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) corrupt(file, 'not a JSON object');
    m = parsed as Record<string, unknown>;
  } catch (e) {
    if (e instanceof UserError) throw e;
    corrupt(file, `garbled JSON (${(e as Error).message.split('\n')[0]})`);
  }
  if (m.tool !== TOOL) throw new UserError(`${file}: written by '${String(m.tool)}', not by ${TOOL}; expected a ${TOOL} checkpoint`);
  if (m.format !== CHECKPOINT_FORMAT) {
    throw new UserError(
      `${file}: checkpoint format ${String(m.format)} (written by ${TOOL} ${String(m.toolVersion)}); this ${TOOL} ${VERSION} reads format ${CHECKPOINT_FORMAT}; expected a checkpoint from a compatible ${TOOL} version`,
    );
  }
  if (!Number.isInteger(m.step) || (m.step as number) < 0) corrupt(file, "field 'step' missing or invalid");
  if (typeof m.config !== 'object' || m.config === null) corrupt(file, "field 'config' missing or invalid");
  const sha = m.sha256 as Record<string, unknown> | undefined;
  if (typeof sha !== 'object' || sha === null || typeof sha['weights.bin'] !== 'string') corrupt(file, "field 'sha256' missing or invalid");
  const bytes = m.bytes as Record<string, unknown> | undefined;
  if (typeof bytes !== 'object' || bytes === null || !Number.isInteger(bytes['weights.bin'])) corrupt(file, "field 'bytes' missing or invalid");
  if (!Array.isArray(m.tensors)) corrupt(file, "field 'tensors' missing or invalid");
  let end = 0;
  for (const t of m.tensors as unknown[]) {
    const e = t as Partial<TensorEntry>;
    const ok =
      typeof e === 'object' && e !== null && typeof e.name === 'string' && isIntArray(e.shape) && (e.dtype === 'float32' || e.dtype === 'int32') &&
      Number.isInteger(e.offset) && Number.isInteger(e.length) && e.offset! >= 0 &&
      e.length === e.shape.reduce((a, b) => a * b, 1) * BYTES_PER[e.dtype];
    if (!ok) corrupt(file, `tensor entry ${JSON.stringify(t)?.slice(0, 80)} is invalid`);
    end = Math.max(end, e.offset! + e.length!);
  }
  if (end > (bytes!['weights.bin'] as number)) corrupt(file, `tensors extend to byte ${end} but weights.bin has ${String(bytes!['weights.bin'])}`);
  if (typeof m.metrics !== 'object' || m.metrics === null) m.metrics = {};
  return m as unknown as CheckpointManifest;
}

/** Cheap completeness check (manifest valid, file sizes right; no hashing). Null when not a usable checkpoint. */
export function inspectCheckpoint(dir: string): CheckpointManifest | null {
  try {
    return checkedManifest(dir);
  } catch {
    return null;
  }
}

/** The manifest after the cheap completeness check; a one-line UserError naming the file that fails it. */
function checkedManifest(dir: string): CheckpointManifest {
  const m = readManifest(dir);
  for (const [file, size] of Object.entries(m.bytes)) {
    const path = join(dir, file);
    let actual: number;
    try {
      actual = statSync(path).size;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new UserError(code === 'ENOENT' ? `${path}: missing; the checkpoint is incomplete` : `${path}: cannot read (${code ?? (e as Error).message})`);
    }
    if (actual !== size) throw new UserError(`${path}: size ${actual} bytes, expected ${size} (from manifest.json); the checkpoint is truncated or corrupt`);
  }
  return m;
}

/** Why dir is not a usable checkpoint (one line naming the file), or null when it passes the cheap check. */
export function checkpointProblem(dir: string): string | null {
  try {
    checkedManifest(dir);
    return null;
  } catch (e) {
    if (e instanceof UserError) return e.message;
    throw e;
  }
}

export interface NewestCheckpoint {
  /** step-XXXXXXXX */
  name: string;
  dir: string;
  step: number;
  /** Why it cannot be used (one line), or null. */
  problem: string | null;
}

/**
 * The newest checkpoint a run has, usable or not: the higher of the step LATEST names and the highest
 * step-* directory (saves rename complete directories into place, so every step-* directory claims to be a
 * checkpoint). Null when the run has none. Readers use it instead of latestCheckpoint so that a damaged
 * newest checkpoint is reported rather than silently replaced by an older one.
 */
export function newestCheckpoint(runDir: string): NewestCheckpoint | null {
  const ckDir = checkpointsDir(runDir);
  const dirs = stepDirs(ckDir);
  const latestName = readNameFile(join(ckDir, 'LATEST'));
  const latestStep = latestName ? Number(STEP_DIR.exec(latestName)![1]) : -1;
  const top = dirs[dirs.length - 1];
  if (!top && latestStep < 0) return null;
  if (top && top.step >= latestStep) {
    const dir = join(ckDir, top.name);
    return { name: top.name, dir, step: top.step, problem: checkpointProblem(dir) };
  }
  const dir = join(ckDir, latestName!);
  return { name: latestName!, dir, step: latestStep, problem: `${join(ckDir, 'LATEST')} names ${latestName} but ${dir} does not exist` };
}

function readVerified(dir: string, file: string, m: CheckpointManifest): Buffer {
  const path = join(dir, file);
  let buf: Buffer;
  try {
    const fd = openSync(path, 'r');
    try {
      const size = fstatSync(fd).size;
      const expected = m.bytes[file];
      if (expected !== undefined && size !== expected) {
        throw new UserError(`${path}: size ${size} bytes, expected ${expected} (from manifest.json); the checkpoint is truncated or corrupt`);
      }
    } finally {
      closeSync(fd);
    }
    buf = readFileSync(path);
  } catch (e) {
    if (e instanceof UserError) throw e;
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new UserError(`${path}: missing; the checkpoint is incomplete`);
    throw new UserError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const want = m.sha256[file];
  if (want !== undefined) {
    const got = sha256Hex(buf);
    if (got !== want) throw new UserError(`${dir}: ${file} checksum mismatch: expected ${want}, got ${got}; the checkpoint is corrupt`);
  }
  return buf;
}

/** Load a checkpoint, verifying sizes and sha256 of every file. Tensor data are fresh, aligned arrays. */
export function loadCheckpoint(dir: string): CheckpointContent {
  const m = readManifest(dir);
  const weights = readVerified(dir, 'weights.bin', m);
  const tensors: TensorRecord[] = m.tensors.map((e) => {
    const n = e.length / BYTES_PER[e.dtype];
    const data = e.dtype === 'float32' ? new Float32Array(n) : new Int32Array(n);
    const src = weights.subarray(e.offset, e.offset + e.length);
    if (LITTLE_ENDIAN) new Uint8Array(data.buffer).set(src);
    else {
      const dv = new DataView(src.buffer, src.byteOffset, src.byteLength);
      for (let i = 0; i < n; i++) data[i] = e.dtype === 'float32' ? dv.getFloat32(i * 4, true) : dv.getInt32(i * 4, true);
    }
    return { name: e.name, shape: [...e.shape], dtype: e.dtype, data };
  });
  let state: unknown = null;
  if (m.bytes['state.json'] !== undefined || existsSync(join(dir, 'state.json'))) {
    const buf = readVerified(dir, 'state.json', m);
    try {
      state = JSON.parse(buf.toString('utf8'));
    } catch (e) {
      corrupt(join(dir, 'state.json'), `garbled JSON (${(e as Error).message})`);
    }
  }
  const metrics: Record<string, number> = {};
  for (const [k, v] of Object.entries(m.metrics)) metrics[k] = typeof v === 'number' ? v : NaN;
  return { step: m.step, tensors, state, config: m.config, metrics };
}

/** Complete checkpoints of a run, oldest first (full paths). Temp and incomplete directories are skipped. */
export function listCheckpoints(runDir: string): string[] {
  const ckDir = checkpointsDir(runDir);
  return stepDirs(ckDir)
    .map((d) => join(ckDir, d.name))
    .filter((p) => inspectCheckpoint(p) !== null);
}

/** The newest complete checkpoint (highest step with a valid manifest and right file sizes), or null. */
export function latestCheckpoint(runDir: string): string | null {
  const ckDir = checkpointsDir(runDir);
  const dirs = stepDirs(ckDir).reverse();
  for (const d of dirs) {
    const p = join(ckDir, d.name);
    if (inspectCheckpoint(p)) return p;
  }
  return null;
}

/** The checkpoint named in BEST (lowest best metric), or null when there is none or it is unusable. */
export function bestCheckpoint(runDir: string): string | null {
  const ckDir = checkpointsDir(runDir);
  const name = readNameFile(join(ckDir, 'BEST'));
  if (!name) return null;
  const p = join(ckDir, name);
  return inspectCheckpoint(p) ? p : null;
}

// Options that change only how the first batch initialises, not the parameters' meaning.
const MODEL_KEYS_NOT_COMPARED = new Set(['init_batch']);

/**
 * Refuse a checkpoint trained with a different model: names the first differing model.* option.
 * manifestConfig is the config stored in the checkpoint (older files may lack newer options: defaults apply).
 */
export function assertCompatible(manifestConfig: unknown, currentConfig: Config, where = 'checkpoint'): void {
  const stored = (manifestConfig as { model?: unknown } | null)?.model;
  if (typeof stored !== 'object' || stored === null) {
    throw new UserError(`${where}: its config has no model section; expected a checkpoint written by ${TOOL}`);
  }
  const parsed = ModelSchema.safeParse(stored);
  const old: Record<string, unknown> = parsed.success ? parsed.data : (stored as Record<string, unknown>);
  const cur = currentConfig.model as Record<string, unknown>;
  for (const key of Object.keys(cur)) {
    if (MODEL_KEYS_NOT_COMPARED.has(key)) continue;
    if (JSON.stringify(old[key]) !== JSON.stringify(cur[key])) {
      throw new UserError(
        `${where}: model.${key} is ${JSON.stringify(old[key])} in the checkpoint but ${JSON.stringify(cur[key])} in the current config; ` +
          `expected the same model options (drop the change, or use a new run name)`,
      );
    }
  }
}

/** A tensor's values as a checkpoint record (read asynchronously: GPU backends can read no other way). */
export async function record(name: string, t: tf.Tensor): Promise<TensorRecord> {
  return { name, shape: t.shape.slice(), dtype: 'float32', data: (await t.data()) as Float32Array };
}
