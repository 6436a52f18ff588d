// A run directory's management during training: creating and locking it, moving an old run's files
// aside when a run starts at step 0, and making the run <runs>/latest once it has a checkpoint.
import fs from 'node:fs';
import path from 'node:path';
import { toStorageError } from '../io/atomic.js';
import { acquireRunLock, type RunLock } from '../io/lock.js';
import { markLatest } from '../io/run.js';
import type { TrainLogger } from './logger.js';

/** Creates runDir if needed and locks it for this process (a UserError when a live process holds it). */
export function openRunDir(runDir: string, log: TrainLogger): RunLock {
  try {
    fs.mkdirSync(runDir, { recursive: true });
  } catch (e) {
    throw toStorageError(e, 'run directory', runDir);
  }
  const lock = acquireRunLock(runDir);
  if (lock.tookOverStale) log.info(`took over a stale lock in ${runDir} (${lock.staleReason})`);
  return lock;
}

// What a run directory holds from its training; archived together so the archive is itself a run directory
// (flow eval --run <run>/archive/<time> works) and the new run starts with none of the old one's files.
export const RUN_FILES = ['checkpoints', 'metrics.ndjson', 'samples', 'config.yaml', 'curves.png'];

/** Moves the run's files to <run>/archive/<time>/ (nothing when there are none). */
export function archiveRun(runDir: string, log: TrainLogger, why: string): void {
  const present = RUN_FILES.filter((f) => fs.existsSync(path.join(runDir, f)));
  if (!present.length) return;
  const to = path.join(runDir, 'archive', new Date().toISOString().replace(/[:.]/g, '-'));
  try {
    fs.mkdirSync(to, { recursive: true });
    for (const f of present) fs.renameSync(path.join(runDir, f), path.join(to, f));
  } catch (e) {
    throw toStorageError(e, 'archive of the old run', to);
  }
  log.info(`${why}: moved the old run's ${present.join(', ')} to ${to}`);
}

/** <runs>/latest points at this run from its first checkpoint on (a run that fails earlier never takes the link). */
export class LatestLink {
  private marked = false;
  constructor(
    private readonly runsDir: string,
    private readonly name: string,
  ) {}

  /** Points <runs>/latest at this run, once per invocation. */
  mark(): void {
    if (this.marked) return;
    markLatest(this.runsDir, this.name);
    this.marked = true;
  }
}
