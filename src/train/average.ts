// Polyak averaging (openai/glow's polyak_epochs): an exponential moving average of the weights, used to
// evaluate and sample while training continues on the raw weights. Early in training, and with a high
// learning rate, the raw weights jitter from step to step; their average scores a steadier (and
// usually lower) test bpd. The averages are checkpointed (`average.<param>`) so resumes stay exact.
import { tf } from '../tf.js';
import { ops } from '../kernels/index.js';
import { record, type TensorRecord } from '../io/checkpoint.js';
import { averageRecordName } from '../io/model-io.js';


export class WeightAverage {
  private readonly shadow: tf.Variable[];

  constructor(
    readonly decay: number,
    readonly params: tf.Variable[],
  ) {
    if (!(decay > 0 && decay < 1)) throw new Error(`weight average: decay must be in (0, 1), got ${decay}`);
    this.shadow = tf.tidy(() => params.map((p) => tf.variable(tf.clone(p), false)));
  }

  /**
   * The decay used at update t (from 1): min(decay, (1 + t) / (10 + t)), so the first updates are not
   * dominated by the initial weights (TensorFlow's ExponentialMovingAverage with num_updates).
   */
  static decayAt(decay: number, t: number): number {
    return Math.min(decay, (1 + t) / (10 + t));
  }

  /** After optimiser update t: average = d * average + (1 - d) * param (only where `gate` is true, when given). */
  update(t: number, gate?: tf.Tensor): void {
    const d = WeightAverage.decayAt(this.decay, t);
    this.shadow.forEach((s, i) => {
      const mixed = ops().lerp(s, this.params[i]!, d);
      const next = gate ? tf.tidy(() => tf.where(gate, mixed, s)) : mixed;
      s.assign(next);
      tf.dispose([mixed, next]);
    });
  }

  /** Restarts the average at the current weights. */
  reset(): void {
    tf.tidy(() => this.shadow.forEach((s, i) => s.assign(tf.clone(this.params[i]!))));
  }

  /** Runs fn with the averaged weights in the parameters, then puts the raw weights back (also on a throw). */
  async withAveraged<T>(fn: () => T | Promise<T>): Promise<T> {
    const raw = this.params.map((p) => tf.clone(p));
    this.params.forEach((p, i) => p.assign(this.shadow[i]!));
    try {
      return await fn();
    } finally {
      this.params.forEach((p, i) => p.assign(raw[i]!));
      tf.dispose(raw);
    }
  }

  records(paramNames: string[]): Promise<TensorRecord[]> {
    return Promise.all(this.shadow.map((s, i) => record(averageRecordName(paramNames[i]!), s)));
  }

  /** Loads the averages from checkpoint records; without them (averaging switched on mid-run) restarts at the weights. */
  restore(paramNames: string[], byName: Map<string, TensorRecord>): void {
    if (!paramNames.every((n) => byName.has(averageRecordName(n)))) {
      this.reset();
      return;
    }
    tf.tidy(() => this.shadow.forEach((s, i) => {
      const r = byName.get(averageRecordName(paramNames[i]!))!;
      s.assign(tf.tensor(r.data, r.shape, 'float32'));
    }));
  }

  dispose(): void {
    tf.dispose(this.shadow);
  }
}
