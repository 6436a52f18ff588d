// Adam and Adamax written out (not tf.train.*) so every moment is a named tensor the
// checkpoint stores and restores exactly, and the step count is ours to resume.
import { tf } from '../tf.js';
import { record, type TensorRecord } from '../io/checkpoint.js';
import { ops } from '../kernels/index.js';

export type OptimizerKind = 'adam' | 'adamax';

export class Optimizer {
  readonly kind: OptimizerKind;
  private readonly beta1 = 0.9;
  private readonly beta2 = 0.999;
  private readonly eps = 1e-8;
  /** Number of updates applied so far (bias correction uses it). */
  t = 0;
  private readonly m: tf.Variable[];
  private readonly v: tf.Variable[];

  constructor(kind: OptimizerKind, readonly params: tf.Variable[]) {
    this.kind = kind;
    // Inside tidy so the zeros the variables are made from are freed (variables survive tidy).
    this.m = tf.tidy(() => params.map((p) => tf.variable(tf.zerosLike(p), false)));
    this.v = tf.tidy(() => params.map((p) => tf.variable(tf.zerosLike(p), false)));
  }

  /**
   * One update with learning rate lr; grads[i] belongs to params[i]. With `gate` (a boolean scalar on the
   * device) the parameters and moments change only where it is true: the GPU step's non-finite guard,
   * decided without a host read. The step count advances either way.
   */
  apply(grads: tf.Tensor[], lr: number, gate?: tf.Tensor): void {
    this.t += 1;
    const o = { lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, t: this.t, adamax: this.kind === 'adamax' };
    for (let i = 0; i < this.params.length; i++) {
      // adamStep is one fused kernel on wasm (the tf-op update elsewhere), bit for bit the same.
      const next = ops().adamStep(this.params[i]!, this.m[i]!, this.v[i]!, grads[i]!, o);
      const targets = [this.params[i]!, this.m[i]!, this.v[i]!];
      targets.forEach((target, k) => {
        const value = gate ? tf.tidy(() => tf.where(gate, next[k]!, target)) : next[k]!;
        target.assign(value);
        if (gate) value.dispose();
      });
      tf.dispose(next);
    }
  }

  /** Moments as checkpoint records, named after the parameter names given. */
  records(paramNames: string[]): Promise<TensorRecord[]> {
    return Promise.all([
      ...this.m.map((m, i) => record(`optimizer.m.${paramNames[i]}`, m)),
      ...this.v.map((v, i) => record(`optimizer.v.${paramNames[i]}`, v)),
    ]);
  }

  restore(paramNames: string[], byName: Map<string, TensorRecord>): void {
    const put = (vars: tf.Variable[], prefix: string) =>
      vars.forEach((v, i) => {
        const r = byName.get(`${prefix}.${paramNames[i]}`);
        if (!r) throw new Error(`checkpoint lacks optimizer state ${prefix}.${paramNames[i]}`);
        v.assign(tf.tensor(r.data, r.shape, 'float32'));
      });
    tf.tidy(() => {
      put(this.m, 'optimizer.m');
      put(this.v, 'optimizer.v');
    });
  }

  dispose(): void {
    for (const x of [...this.m, ...this.v]) x.dispose();
  }
}


export type LrSchedule = 'constant' | 'linear' | 'cosine';

/**
 * Linear warm-up from 0 to lr over warmupSteps (step counts from 1), times the schedule's factor at
 * `progress`, the fraction of the run already done (0..1): 1 for constant, 1 - p for linear, (1 + cos πp) / 2
 * for cosine. Decaying to 0 at the end of a fixed budget beats a constant rate at that budget.
 */
export function learningRate(lr: number, warmupSteps: number, step: number, schedule: LrSchedule = 'constant', progress = 0): number {
  const warm = warmupSteps > 0 ? Math.min(1, step / warmupSteps) : 1;
  const p = Math.min(1, Math.max(0, progress));
  const decay = schedule === 'linear' ? 1 - p : schedule === 'cosine' ? 0.5 * (1 + Math.cos(Math.PI * p)) : 1;
  return lr * warm * decay;
}

/**
 * How much of a run is done, for the LR schedule: steps over max_steps, or this invocation's elapsed time
 * over max_minutes, whichever is further (0 when the run has neither limit).
 */
export function runProgress(step: number, maxSteps: number, elapsedMs: number, maxMinutes: number): number {
  return Math.max(maxSteps > 0 ? step / maxSteps : 0, maxMinutes > 0 ? elapsedMs / (maxMinutes * 60_000) : 0);
}
