// Where a training run starts: from its newest usable checkpoint (restored exactly: weights, optimizer
// moments, average, data order, noise stream), or at step 0 after moving an old run's files aside.
import path from 'node:path';
import { assertCompatible, latestCheckpoint, loadCheckpoint, newestCheckpoint } from '../io/checkpoint.js';
import { assignModel, recordsByName } from '../io/model-io.js';
import { parseTrainState } from '../io/train-state.js';
import { UserError } from '../errors.js';
import { archiveRun } from './run-dir.js';
import { initializeModel } from './step.js';
import type { TrainSession } from './session.js';

/** Loads checkpoint dir into the session; returns the checkpoint's metrics. */
export function restoreCheckpoint(s: TrainSession, dir: string): Record<string, number> {
  const c = loadCheckpoint(dir);
  assertCompatible(c.config, s.cfg, dir);
  const state = parseTrainState(c.state, dir);
  const byName = recordsByName(c);
  assignModel(s.model, byName, dir);
  s.optimizer.restore(s.paramNames, byName);
  s.average?.restore(s.paramNames, byName);
  Object.assign(s.state, state);
  s.optimizer.t = s.state.optimizerT;
  s.iterator.setState(s.state.iterator);
  s.noiseRng.state = s.state.noiseRng;
  return c.metrics ?? {};
}

export interface RunStart {
  /** The step resumed from, or null for a run started at step 0. */
  resumedFrom: number | null;
  /** The checkpoint resumed from. */
  checkpoint: string | null;
  /** Its metrics (empty when starting at step 0). */
  restoredMetrics: Record<string, number>;
  /** Resumed from an older checkpoint because the newest was unusable: what was wrong with it. */
  resumeWarning?: string;
}

/** Resumes the run (resume 'auto' with a usable checkpoint) or starts it at step 0. */
export function resumeOrStart(s: TrainSession, resume: 'auto' | 'fresh', warn: (line: string) => void): RunStart {
  const { runDir, log } = s;
  // existing: the newest usable checkpoint; newest: the newest one there is, usable or not.
  const existing = latestCheckpoint(runDir);
  const newest = newestCheckpoint(runDir);
  if (resume === 'auto' && newest?.problem && !existing) {
    throw new UserError(`${runDir}: the newest checkpoint ${newest.name} is unusable (${newest.problem}) and there is no older usable one; pass --fresh to start at step 0 (the old files move to ${path.join(runDir, 'archive')}/)`);
  }
  if (existing && resume === 'auto') {
    const restoredMetrics = restoreCheckpoint(s, existing);
    const step = s.state.step;
    let resumeWarning: string | undefined;
    if (newest && newest.dir !== existing) {
      // Never fall back silently: the steps after this checkpoint are lost and readers refuse the damaged one until a save passes it.
      resumeWarning = `the newest checkpoint ${newest.name} is unusable (${newest.problem}); resuming from the older ${path.basename(existing)}, steps ${step + 1}..${newest.step} are trained again`;
      warn(`WARNING: ${runDir}: ${resumeWarning}`);
      s.metrics.append({ time: new Date().toISOString(), event: 'resumed_from_older_checkpoint', resumed_step: step, newest_checkpoint: newest.name, newest_step: newest.step, problem: newest.problem });
      log.event({ event: 'resumed_from_older_checkpoint', resumed_step: step, newest_checkpoint: newest.name, problem: newest.problem });
    }
    log.info(`resuming ${runDir} from step ${step} (${existing})`);
    // The run already has a checkpoint: it becomes <runs>/latest now.
    s.latest.mark();
    s.lastCheckpoint = existing;
    s.lastCheckpointStep = step;
    return { resumedFrom: step, checkpoint: existing, restoredMetrics, resumeWarning };
  }
  // Step 0 in a run directory that has files: move them all aside, so no old metrics or samples mix with the new run's.
  archiveRun(runDir, log, resume === 'fresh' ? '--fresh' : 'starting at step 0');
  initializeModel(s.model, s.cfg, s.data);
  s.average?.reset();
  return { resumedFrom: null, checkpoint: null, restoredMetrics: {} };
}
