// Reading checkpoints: manifest checks (format, tool, fields), the cheap completeness check, the newest /
// latest / best checkpoint of a run, full loads with size and sha256 verification, and the model-options
// compatibility check. Every refusal is one UserError line naming the file.
import { closeSync, existsSync, fstatSync, openSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors.js';
import { VERSION } from '../version.js';
import { ModelSchema, type Config } from '../config/schema.js';
import { BYTES_PER, CHECKPOINT_FORMAT, LITTLE_ENDIAN, STEP_DIR, TOOL, checkpointsDir, readNameFile, sha256Hex, stepDirs, type CheckpointContent, type CheckpointManifest, type TensorEntry, type TensorRecord } from './checkpoint-layout.js';

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
