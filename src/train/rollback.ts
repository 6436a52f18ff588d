// The non-finite-step guard's bookkeeping: a skipped step is counted and logged; train.nan_skip_limit
// of them in a row roll the run back to its last checkpoint with half the learning rate, at most
// MAX_ROLLBACKS times per invocation.
import { FlowFailure } from '../errors.js';
import { restoreCheckpoint } from './resume.js';
import type { TrainSession } from './session.js';
import type { SettledStep, StepRunner } from './step.js';

/** Rollbacks allowed in one invocation before we call the run diverged rather than unlucky. */
export const MAX_ROLLBACKS = 3;

export class NonFiniteGuard {
  private consecutiveBad = 0;
  private rollbacks = 0;

  constructor(
    private readonly s: TrainSession,
    private readonly runner: StepRunner,
  ) {}

  /**
   * Takes in the outcomes of finished steps: counts skips, logs them, rolls back after too many in a
   * row. Returns false after a rollback (the remaining outcomes described steps that no longer count).
   */
  absorb(settled: SettledStep[]): boolean {
    const { s } = this;
    const st = s.state;
    for (const result of settled) {
      if (result.applied) {
        this.consecutiveBad = 0;
        s.lastLoss = result.loss;
        continue;
      }
      st.skippedSteps += 1;
      this.consecutiveBad += 1;
      // Numbers like every other event's; null where not finite (JSON has no NaN or Infinity).
      s.log.event({ event: 'nonfinite_step_skipped', step: result.step, loss: finiteOrNull(result.loss), grad_norm: finiteOrNull(result.gradNorm), in_a_row: this.consecutiveBad });
      if (this.consecutiveBad >= s.cfg.train.nan_skip_limit) {
        if (!s.lastCheckpoint) {
          throw new FlowFailure(`training diverged: ${this.consecutiveBad} non-finite steps in a row at step ${result.step} and no checkpoint to roll back to; lower train.lr (now ${s.cfg.train.lr}) or add train.warmup_steps`);
        }
        if (++this.rollbacks > MAX_ROLLBACKS) {
          throw new FlowFailure(`training diverged: still non-finite at step ${result.step} after ${MAX_ROLLBACKS} rollbacks (LR scale ${st.lrScale}); the last good checkpoint is ${s.lastCheckpoint}`);
        }
        const lrScale = st.lrScale / 2;
        const skipped = st.skippedSteps;
        this.runner.discard();
        restoreCheckpoint(s, s.lastCheckpoint);
        st.lrScale = lrScale;
        st.skippedSteps = skipped;
        this.consecutiveBad = 0;
        s.log.event({ event: 'rollback', to_step: st.step, lr_scale: lrScale });
        return false;
      }
    }
    return true;
  }
}

function finiteOrNull(x: number): number | null {
  return Number.isFinite(x) ? x : null;
}
