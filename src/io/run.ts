// Run directories: <runs_dir>/<name>/ holds config.yaml, metrics.ndjson, checkpoints/ and samples;
// <runs_dir>/latest is a symlink to the run `flow train` last worked on (moved once that run has a
// checkpoint), which every reading command uses by default and names in its output.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import { checkpointProblem, checkpointsDir, listCheckpoints, newestCheckpoint, readManifest, stepDirName } from './checkpoint.js';

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

/** `--checkpoint latest|best|step-N|N` of every command that reads a run. */
export type CheckpointChoice = { kind: 'latest' } | { kind: 'best' } | { kind: 'step'; step: number };

export const CHECKPOINT_HELP = 'which checkpoint of the run: latest (the newest; an error when it is unusable), best (named in checkpoints/BEST) or step-N';

export function parseCheckpointChoice(value: string | undefined): CheckpointChoice {
  if (value === undefined || value === 'latest') return { kind: 'latest' };
  if (value === 'best') return { kind: 'best' };
  const m = /^(?:step-)?(\d+)$/.exec(value);
  if (m) return { kind: 'step', step: Number(m[1]) };
  throw new UserError(`--checkpoint ${value}: expected latest, best or step-N (e.g. step-1000 or step-00001000)`);
}

export interface ResolvedRun {
  /** Real path of the run directory. */
  runDir: string;
  /** Real path of the checkpoint directory. */
  checkpoint: string;
  /** The checkpoint's step (from its manifest). */
  step: number;
  /** True when the run came from <runs>/latest rather than --run. */
  viaLatest: boolean;
}

/**
 * The run and checkpoint a reading command works on: --run DIR (a run, or one checkpoint directory), else
 * <runs>/latest; --checkpoint picks which (default: the newest, which must be usable: a damaged newest
 * checkpoint is an error naming it, never silently replaced by an older one).
 */
export function resolveRun(runFlag: string | undefined, opts: { checkpoint?: string; runsDir?: string } = {}): ResolvedRun {
  const choice = parseCheckpointChoice(opts.checkpoint);
  const runDir = runFlag ?? path.join(opts.runsDir ?? 'runs', 'latest');
  if (!fs.existsSync(runDir)) {
    throw new UserError(
      runFlag
        ? `--run ${runFlag}: no such run directory`
        : `no run found at ${runDir}; train one first (flow train config.yaml) or pass --run DIR`,
    );
  }
  const viaLatest = runFlag === undefined;
  // --run may also name one checkpoint directory directly.
  if (fs.existsSync(path.join(runDir, 'manifest.json'))) {
    if (opts.checkpoint !== undefined) throw new UserError(`--checkpoint ${opts.checkpoint}: --run ${runDir} already names one checkpoint; give one of them`);
    const problem = checkpointProblem(runDir);
    if (problem) throw new UserError(problem);
    const checkpoint = fs.realpathSync(runDir);
    return { runDir: path.dirname(path.dirname(checkpoint)), checkpoint, step: readManifest(checkpoint).step, viaLatest };
  }
  const real = fs.realpathSync(runDir);
  const checkpoint = pickCheckpoint(real, choice);
  return { runDir: real, checkpoint, step: readManifest(checkpoint).step, viaLatest };
}

function newestUsableName(runDir: string): string | null {
  const all = listCheckpoints(runDir);
  return all.length ? path.basename(all[all.length - 1]!) : null;
}

function pickCheckpoint(runDir: string, choice: CheckpointChoice): string {
  const ckDir = checkpointsDir(runDir);
  if (choice.kind === 'latest') {
    const newest = newestCheckpoint(runDir);
    if (!newest) throw new UserError(`${runDir}: no checkpoint yet; expected ${path.join(ckDir, 'step-…')}`);
    if (newest.problem) {
      const older = newestUsableName(runDir);
      throw new UserError(
        `${runDir}: the newest checkpoint ${newest.name} is unusable: ${newest.problem}` +
          (older ? `; pass --checkpoint ${older} (the newest usable one) or --checkpoint best to use an older one` : '; the run has no usable checkpoint'),
      );
    }
    return newest.dir;
  }
  let name: string;
  if (choice.kind === 'best') {
    const file = path.join(ckDir, 'BEST');
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8').trim();
    } catch {
      throw new UserError(`--checkpoint best: ${file} does not exist; a run names its best checkpoint once one has a test metric (use latest or step-N)`);
    }
    if (!/^step-\d{8,}$/.test(text)) throw new UserError(`--checkpoint best: ${file} holds ${JSON.stringify(text.slice(0, 40))}; expected a name like step-00001000`);
    name = text;
  } else name = stepDirName(choice.step);
  const dir = path.join(ckDir, name);
  if (!fs.existsSync(dir)) {
    const have = listCheckpoints(runDir).map((p) => path.basename(p));
    throw new UserError(`--checkpoint ${choice.kind === 'best' ? 'best' : name}: ${dir} does not exist; ${have.length ? `the run has ${have.join(', ')}` : 'the run has no usable checkpoint'}`);
  }
  const problem = checkpointProblem(dir);
  if (problem) throw new UserError(`--checkpoint ${choice.kind === 'best' ? 'best' : name}: ${problem}`);
  return dir;
}

/** A path as the user would type it: relative to the working directory when inside it. */
export function displayPath(p: string): string {
  const rel = path.relative(process.cwd(), p);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : p;
}

/** "run runs/latest -> runs/tiny, step 40": the run and step every reading command's human line names. */
export function describeRun(r: Pick<ResolvedRun, 'runDir' | 'step' | 'viaLatest'>): string {
  return `run ${r.viaLatest ? 'runs/latest -> ' : ''}${displayPath(r.runDir)}, step ${r.step}`;
}
