// Run directories: <runs_dir>/<name>/ holds config.yaml, metrics.ndjson, checkpoints/ and samples;
// <runs_dir>/latest is a symlink to the newest run, which sample/eval use by default.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import { latestCheckpoint } from './checkpoint.js';

export function runDirOf(runsDir: string, name: string): string {
  return path.join(runsDir, name);
}

/** Points <runs_dir>/latest at the run atomically (temp symlink + rename). */
export function markLatest(runsDir: string, name: string): void {
  const link = path.join(runsDir, 'latest');
  const tmp = path.join(runsDir, `.latest-${process.pid}`);
  fs.rmSync(tmp, { force: true });
  fs.symlinkSync(name, tmp);
  fs.renameSync(tmp, link);
}

/** The run a sample/eval command works on: --run DIR, else runs/latest. */
export function resolveRun(runFlag: string | undefined, runsDir = 'runs'): { runDir: string; checkpoint: string } {
  const runDir = runFlag ?? path.join(runsDir, 'latest');
  if (!fs.existsSync(runDir)) {
    throw new UserError(
      runFlag
        ? `--run ${runFlag}: no such run directory`
        : `no run found at ${runDir}; train one first (flow train config.yaml) or pass --run DIR`,
    );
  }
  // --run may also name one checkpoint directory directly.
  if (fs.existsSync(path.join(runDir, 'manifest.json'))) return { runDir: path.dirname(path.dirname(runDir)), checkpoint: runDir };
  const ckpt = latestCheckpoint(runDir);
  if (!ckpt) throw new UserError(`${runDir}: no checkpoint yet; expected ${path.join(runDir, 'checkpoints', 'step-…')}`);
  return { runDir: fs.realpathSync(runDir), checkpoint: fs.realpathSync(ckpt) };
}
