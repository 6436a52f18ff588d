// What `train()` takes and what it reports (shared by the trainer, its loop and --dry-run).
import type { UserError } from '../errors.js';
import type { DataSize } from './memory-estimate.js';
import type { TrainLogger } from './logger.js';

export interface TrainOptions {
  /** 'auto': continue from the run's last checkpoint when there is one; 'fresh': archive old checkpoints, start at step 0. */
  resume: 'auto' | 'fresh';
  logger: TrainLogger;
  /** Polled between steps; returns the signal name when the process was asked to stop. */
  stopRequested?: () => 'SIGINT' | 'SIGTERM' | null;
  dryRun?: boolean;
  /** Warnings that must be seen even with --quiet (default: stderr). */
  warn?: (line: string) => void;
}

export type StoppedBy = 'max_steps' | 'max_minutes' | 'SIGINT' | 'SIGTERM' | 'dry_run';

export interface TrainSummary {
  runDir: string;
  step: number;
  stoppedBy: StoppedBy;
  loss: number | null;
  lossName: 'bpd' | 'nll';
  testLoss: number | null;
  checkpoint: string | null;
  imgPerSec: number;
  seconds: number;
  skippedSteps: number;
  resumedFrom: number | null;
  parameters: number;
  dataShape: number[];
  /** Resumed from an older checkpoint because the newest was unusable: what was wrong with it. */
  resumeWarning?: string;
  /** The run was already at train.max_steps: no step was run; loss and testLoss come from its last checkpoint. */
  nothingToDo?: boolean;
  /** --dry-run only: why the data could not be read (the model was sized from the format's known shape). */
  dataError?: UserError | null;
  /** --dry-run only: the loaded data's size, for the memory estimate (absent when the data could not be read). */
  dataSize?: DataSize;
}
