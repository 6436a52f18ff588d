// Crash-safe file output: write a temp file beside the target, fsync it, rename over the target,
// fsync the directory. A reader sees either the old file or the complete new one, never a torn one.
import { closeSync, fsyncSync, openSync, renameSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { UserError } from '../errors.js';

const FULL = new Set(['ENOSPC', 'EDQUOT', 'EFBIG']);
const NOT_WRITABLE = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOTDIR']);

/** The run directory is full or not writable: a UserError (one line) with the errno kept for the CLI. */
export class StorageError extends UserError {
  readonly code: string;
  constructor(message: string, code: string) {
    super(message);
    this.name = 'StorageError';
    this.code = code;
  }
}

export function isStorageErrno(e: unknown): e is NodeJS.ErrnoException {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' && (FULL.has(code) || NOT_WRITABLE.has(code));
}

/** Turn ENOSPC/EACCES/EROFS/... into a StorageError naming what could not be written; other errors pass through. */
export function toStorageError(e: unknown, what: string, where: string): unknown {
  if (!isStorageErrno(e)) return e;
  const code = e.code!;
  const reason = FULL.has(code) ? 'full' : 'not writable';
  // Node's message is "<CODE>: <description>, <syscall> '<path>'": keep the description.
  const detail = e.message.replace(/^[A-Z]+: /, '').split(',')[0]!.trim() || code;
  return new StorageError(`${where}: cannot write ${what}: the run directory is ${reason} (${code}: ${detail})`, code);
}

/** A unique temp name in the same directory (same filesystem, so rename is atomic). */
export function tempNameFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** fsync a directory so a rename inside it survives a power cut; a no-op where directories cannot be opened. */
export function fsyncDir(dir: string): void {
  let fd: number;
  try {
    fd = openSync(dir, 'r');
  } catch {
    return;
  }
  try {
    fsyncSync(fd);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'EISDIR' && code !== 'EPERM' && code !== 'EBADF') throw e;
  } finally {
    closeSync(fd);
  }
}

/** Write all bytes and fsync; the caller owns cleanup on failure. */
export function writeFileSynced(path: string, data: string | Uint8Array): void {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const fd = openSync(path, 'w', 0o644);
  try {
    let off = 0;
    while (off < bytes.byteLength) off += writeSync(fd, bytes, off, bytes.byteLength - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Atomically replace `path` with `data` (temp + fsync + rename + fsync dir).
 * A full or read-only disk leaves the old file untouched and throws a StorageError.
 */
export function atomicWriteFile(path: string, data: string | Uint8Array): void {
  const tmp = tempNameFor(path);
  try {
    writeFileSynced(tmp, data);
    renameSync(tmp, path);
    fsyncDir(dirname(path));
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      /* never created, or already renamed */
    }
    throw toStorageError(e, basename(path), dirname(path));
  }
}

/** Remove a file or directory tree, ignoring a missing one. */
export function removePath(path: string): void {
  rmSync(path, { recursive: true, force: true });
}
