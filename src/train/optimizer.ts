// Adam and Adamax written out (not tf.train.*) so every moment is a named tensor the
// checkpoint stores and restores exactly, and the step count is ours to resume.
import { tf } from '../tf.js';
import type { TensorRecord } from '../io/checkpoint.js';
import { adamStep } from '../backend/ops.js';

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

  /** One update with learning rate lr; grads[i] belongs to params[i]. */
  apply(grads: tf.Tensor[], lr: number): void {
    this.t += 1;
    const o = { lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, t: this.t, adamax: this.kind === 'adamax' };
    for (let i = 0; i < this.params.length; i++) {
      // adamStep is one fused kernel on wasm (the tf-op update elsewhere), bit for bit the same.
      const [p, m, v] = adamStep(this.params[i]!, this.m[i]!, this.v[i]!, grads[i]!, o);
      this.params[i]!.assign(p);
      this.m[i]!.assign(m);
      this.v[i]!.assign(v);
      tf.dispose([p, m, v]);
    }
  }

  /** Moments as checkpoint records, named after the parameter names given. */
  records(paramNames: string[]): TensorRecord[] {
    const out: TensorRecord[] = [];
    this.m.forEach((m, i) => out.push(record(`optimizer.m.${paramNames[i]}`, m)));
    this.v.forEach((v, i) => out.push(record(`optimizer.v.${paramNames[i]}`, v)));
    return out;
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

export function record(name: string, t: tf.Tensor): TensorRecord {
  return { name, shape: t.shape.slice(), dtype: 'float32', data: t.dataSync() as Float32Array };
}

/** Linear warm-up from 0 to lr over warmupSteps, then constant. step counts from 1. */
export function learningRate(lr: number, warmupSteps: number, step: number): number {
  if (warmupSteps <= 0) return lr;
  return lr * Math.min(1, step / warmupSteps);
}
