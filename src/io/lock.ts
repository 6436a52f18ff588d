// One process per run directory: <runDir>/.lock holds {pid, host, startedAt}. The lock file is
// created complete-or-not-at-all (content written to a temp file, then hard-linked into place,
// which fails if .lock exists: the same exclusivity as O_EXCL without a window where it is empty).
import { closeSync, linkSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../errors.js';
import { toStorageError, writeFileSynced } from './atomic.js';
import { isPidAlive } from './pid.js';

export interface LockInfo {
  pid: number;
  host: string;
  startedAt: string;
}

export interface RunLock {
  readonly path: string;
  /** True when a lock left by a dead process was replaced. */
  readonly tookOverStale: boolean;
  /** The stale lock's owner, when one was taken over. */
  readonly previous?: LockInfo;
  /** Why a taken-over lock was stale: its process is gone, or the file was not a lock flow can read. */
  readonly staleReason?: string;
  release(): void;
}

export const LOCK_FILE = '.lock';

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

function parseLock(text: string): (LockInfo & { token?: string }) | null {
  try {
    const v = JSON.parse(text) as Partial<LockInfo & { token: string }>;
    if (Number.isInteger(v.pid) && typeof v.host === 'string') return { pid: v.pid!, host: v.host, startedAt: String(v.startedAt), token: v.token };
  } catch {
    /* garbled */
  }
  return null;
}

/** The current lock's owner, or null when the run directory is not locked. */
export function readRunLock(runDir: string): LockInfo | null {
  const text = readText(join(runDir, LOCK_FILE));
  const info = text === null ? null : parseLock(text);
  return info ? { pid: info.pid, host: info.host, startedAt: info.startedAt } : null;
}

/** Create the lock file exclusively; false when it already exists. */
function tryCreate(lockPath: string, text: string): boolean {
  const tmp = `${lockPath}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  writeFileSynced(tmp, text);
  try {
    linkSync(tmp, lockPath);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw e;
    // Filesystems without hard links: plain O_EXCL create.
    let fd: number;
    try {
      fd = openSync(lockPath, 'wx', 0o644);
    } catch (e2) {
      if ((e2 as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw e2;
    }
    try {
      writeSync(fd, text);
    } finally {
      closeSync(fd);
    }
    return true;
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      /* already gone */
    }
  }
}

/**
 * Lock a run directory for this process (created if missing). Throws a UserError when a live process
 * holds it; takes over a lock whose process is dead. Released by release() or when the process exits.
 */
export function acquireRunLock(runDir: string): RunLock {
  const lockPath = join(runDir, LOCK_FILE);
  const host = hostname();
  const token = randomBytes(8).toString('hex');
  const text = JSON.stringify({ pid: process.pid, host, startedAt: new Date().toISOString(), token }) + '\n';
  let tookOverStale = false;
  let previous: LockInfo | undefined;
  let staleReason: string | undefined;
  try {
    mkdirSync(runDir, { recursive: true });
    for (let attempt = 0; attempt < 5; attempt++) {
      if (tryCreate(lockPath, text)) return makeLock(lockPath, token, tookOverStale, previous, staleReason);
      const existingText = readText(lockPath);
      if (existingText === null) continue; // released meanwhile
      const existing = parseLock(existingText);
      if (existing) {
        if (existing.host !== host) {
          throw new UserError(
            `run directory ${runDir} is in use by pid ${existing.pid} on host ${existing.host} (started ${existing.startedAt}); ` +
              `wait for it or choose another run name (delete ${lockPath} if that process is gone)`,
          );
        }
        if (isPidAlive(existing.pid)) {
          throw new UserError(`run directory ${runDir} is in use by pid ${existing.pid} (started ${existing.startedAt}); wait for it or choose another run name`);
        }
      }
      // Stale (dead owner, or garbled): remove it only if nobody replaced it since we read it.
      if (readText(lockPath) !== existingText) continue;
      try {
        unlinkSync(lockPath);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
      tookOverStale = true;
      previous = existing ? { pid: existing.pid, host: existing.host, startedAt: existing.startedAt } : undefined;
      staleReason = existing
        ? `its process, pid ${existing.pid}, is gone`
        : `${lockPath} was unreadable: ${JSON.stringify(existingText.slice(0, 40))} is not a flow lock ({pid, host, startedAt} JSON)`;
    }
  } catch (e) {
    throw toStorageError(e, 'the run lock', runDir);
  }
  throw new UserError(`run directory ${runDir}: could not take ${lockPath} (other processes keep replacing it); wait and retry`);
}

function makeLock(path: string, token: string, tookOverStale: boolean, previous: LockInfo | undefined, staleReason: string | undefined): RunLock {
  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    process.removeListener('exit', release);
    try {
      // Only remove our own lock (a user may have deleted it and another run taken it).
      const text = readText(path);
      if (text !== null && parseLock(text)?.token === token) unlinkSync(path);
    } catch {
      /* best effort on exit */
    }
  };
  process.on('exit', release);
  return { path, tookOverStale, previous, staleReason, release };
}
