// One training step, the same function for `flow train`, its worker threads and scripts/bench: the
// objective, its gradients, the non-finite guard, gradient clipping and the optimizer's update.
import { tf } from '../tf.js';
import type { FlowModel } from '../flows/model.js';
import { bpdTensor, nllPerDimTensor } from '../eval/bpd.js';
import { ops } from '../kernels/index.js';
import { globalNormByOps } from '../kernels/stock.js';
import type { Optimizer } from './optimizer.js';
import type { WeightAverage } from './average.js';
import type { Config } from '../config/schema.js';
import type { Dataset } from '../data/index.js';
import { toModelInput } from '../data/preprocess.js';
import { Rng } from '../rng.js';

/** Images or vectors [B, ...], labels [B] for class-conditional models. */
export interface Batch {
  x: tf.Tensor;
  labels?: tf.Tensor1D;
}

/** The training examples at `indices` as a batch; images are dequantised with the run's own noise stream. */
export function makeBatch(data: Dataset, indices: ArrayLike<number>, cfg: Config, noiseRng: Rng): Batch {
  const dims = data.shape.reduce((a, b) => a * b, 1);
  let x: Float32Array;
  if (data.kind === 'image') {
    // Training noise comes from the run's own stream (saved in checkpoints), not per example.
    const src = data.train.x as Uint8Array;
    const raw = new Uint8Array(indices.length * dims);
    for (let j = 0; j < indices.length; j++) raw.set(src.subarray(indices[j]! * dims, (indices[j]! + 1) * dims), j * dims);
    x = toModelInput(raw, cfg.data.n_bits, cfg.data.dequantize === 'uniform' ? noiseRng : null);
  } else {
    const src = data.train.x as Float32Array;
    x = new Float32Array(indices.length * dims);
    for (let j = 0; j < indices.length; j++) x.set(src.subarray(indices[j]! * dims, (indices[j]! + 1) * dims), j * dims);
  }
  const labels =
    cfg.model.conditional === 'classes' && data.train.labels
      ? tf.tensor1d(Array.from(indices, (i) => data.train.labels![i]!), 'int32')
      : undefined;
  return { x: tf.tensor(x, [indices.length, ...data.shape]), labels };
}

/** ActNorm's data-dependent init: one batch of init_batch examples, drawn from its own seeded stream. */
export function initializeModel(model: FlowModel, cfg: Config, data: Dataset): void {
  const n = Math.min(cfg.model.init_batch, data.train.n);
  const perm = new Rng(cfg.seed + 2).permutation(data.train.n).subarray(0, n);
  const batch = makeBatch(data, perm, cfg, new Rng(cfg.seed + 3));
  model.initialize(batch.x, batch.labels);
  batch.x.dispose();
  batch.labels?.dispose();
}

/** The objective's constants. */
export interface ObjectiveOptions {
  dims: number;
  nBins: number;
  lossName: 'bpd' | 'nll';
  classLossWeight: number;
}

export interface StepOptions extends ObjectiveOptions {
  lr: number;
  maxGradNorm: number;
  /** Treat this step's loss as NaN (the FLOW_INJECT_NONFINITE test hook). */
  inject?: boolean;
}

/** Loss and gradients for the parameters, however they are computed (one thread or a replica pool). */
export type GradFn = (model: FlowModel, params: tf.Variable[], batch: Batch, o: ObjectiveOptions) => { loss: tf.Scalar; grads: tf.Tensor[] };

/** The objective of one batch: bpd (images) or nats/dim (vectors), plus the optional class loss. */
export function objective(model: FlowModel, batch: Batch, o: ObjectiveOptions): tf.Scalar {
  return tf.tidy(() => {
    const withClassLoss = o.classLossWeight > 0 && batch.labels !== undefined;
    // One pass gives both log p(x) and the top latent's class logits (openai/glow's ycond).
    const { logp, logits } = withClassLoss ? model.logProbAndLogits(batch.x, batch.labels) : { logp: model.logProb(batch.x, batch.labels), logits: undefined };
    let loss = o.lossName === 'bpd' ? bpdTensor(logp, o.dims, o.nBins) : nllPerDimTensor(logp, o.dims);
    if (logits && batch.labels) {
      const onehot = tf.oneHot(batch.labels, logits.shape[1]!);
      const ce = tf.mean(tf.neg(tf.sum(tf.mul(onehot, tf.logSoftmax(logits)), 1)));
      // Cross-entropy in nats per example, expressed per dimension in bits like the main objective.
      loss = tf.add(loss, tf.mul(ce, o.classLossWeight / (o.dims * Math.LN2))) as tf.Scalar;
    }
    return loss;
  });
}

/** Gradients of the objective for the optimiser's parameters, plus the loss. The caller disposes. */
export const lossAndGrads: GradFn = (model, params, batch, o) => {
  const { value, grads } = tf.variableGrads(() => objective(model, batch, o), params);
  return { loss: value, grads: params.map((p) => grads[p.name]!) };
};

/** The global L2 norm, accumulated in float64 JS: one read per tensor instead of ~3 kernels per tensor. */
export function hostGlobalNorm(tensors: tf.Tensor[]): number {
  let s = 0;
  for (const t of tensors) {
    const v = t.dataSync();
    for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
  }
  return Math.sqrt(s);
}

/**
 * The loss and the gradient norm as numbers. Where tensors live in host memory they are read directly;
 * on a GPU the norm is one reduction on the device and both come back in a single read.
 */
async function lossAndNorm(loss: tf.Scalar, grads: tf.Tensor[]): Promise<[number, number]> {
  if (ops().hostMemory) return [loss.dataSync()[0]!, hostGlobalNorm(grads)];
  const both = tf.tidy(() => tf.stack([loss, globalNormByOps(grads)]));
  const [l, n] = await both.data();
  both.dispose();
  return [l!, n!];
}

export interface StepResult {
  /** False when the loss or a gradient was not finite: the parameters were left as they were. */
  applied: boolean;
  loss: number;
  gradNorm: number;
}

/** One optimiser step: gradients, the non-finite guard, clipping to maxGradNorm (0: off), the update. */
export async function trainStep(model: FlowModel, optimizer: Optimizer, batch: Batch, o: StepOptions, grad: GradFn = lossAndGrads): Promise<StepResult> {
  const { loss, grads } = grad(model, optimizer.params, batch, o);
  const [lossValue, gradNorm] = await lossAndNorm(loss, grads);
  const lossSeen = o.inject ? NaN : lossValue;
  let applied = false;
  if (Number.isFinite(lossSeen) && Number.isFinite(gradNorm)) {
    const scale = o.maxGradNorm > 0 && gradNorm > o.maxGradNorm ? o.maxGradNorm / gradNorm : 1;
    if (scale < 1) {
      const clipped = tf.tidy(() => grads.map((g) => tf.mul(g, scale)));
      optimizer.apply(clipped, o.lr);
      tf.dispose(clipped);
    } else optimizer.apply(grads, o.lr);
    applied = true;
  }
  tf.dispose([loss, ...grads]);
  return { applied, loss: lossSeen, gradNorm };
}

/** A step run on the device whose outcome has not been read yet. */
interface PendingStep {
  step: number;
  loss: tf.Scalar;
  norm: tf.Scalar;
  ok: tf.Tensor;
}

export interface SettledStep extends StepResult {
  step: number;
}

/**
 * Runs training steps for the trainer and reports each step's outcome. Where tensors live in host memory
 * every step is checked on the host as it runs (trainStep). On a GPU the whole step stays on the device:
 * the gradient norm, clipping and the non-finite guard are tensors, a bad step leaves the parameters
 * unchanged through a gated update, and the outcomes are read back only when the caller asks to settle
 * (at the log interval, before a checkpoint): one read for a window of steps instead of one per step.
 */
export class StepRunner {
  private pending: PendingStep[] = [];
  readonly onDevice: boolean;

  constructor(
    private readonly model: FlowModel,
    private readonly optimizer: Optimizer,
    private readonly average: WeightAverage | null,
    private readonly grad: GradFn = lossAndGrads,
  ) {
    this.onDevice = !ops().hostMemory;
  }

  /** Runs step number `step`; with settle, returns the outcomes of every step not yet reported, in order. */
  async run(step: number, batch: Batch, o: StepOptions, settle: boolean): Promise<SettledStep[]> {
    if (!this.onDevice) {
      const result = await trainStep(this.model, this.optimizer, batch, o, this.grad);
      if (result.applied) this.average?.update(this.optimizer.t);
      return [{ ...result, step }];
    }
    this.pending.push(this.deviceStep(step, batch, o));
    return settle ? this.settle() : [];
  }

  private deviceStep(step: number, batch: Batch, o: StepOptions): PendingStep {
    const { loss: raw, grads } = this.grad(this.model, this.optimizer.params, batch, o);
    const loss = o.inject ? tf.tidy(() => tf.add(raw, NaN)) as tf.Scalar : raw;
    if (loss !== raw) raw.dispose();
    const norm = globalNormByOps(grads);
    const ok = tf.tidy(() => tf.logicalAnd(tf.isFinite(loss), tf.isFinite(norm)));
    // Clip to maxGradNorm; a bad step's gradients become zeros so its (discarded) update stays finite.
    const scaled = tf.tidy(() => {
      const scale = o.maxGradNorm > 0 ? tf.minimum(1, tf.div(o.maxGradNorm, norm)) : tf.scalar(1);
      const safeScale = tf.where(ok, scale, tf.zerosLike(scale));
      return grads.map((g) => tf.where(ok, tf.mul(g, safeScale), tf.zerosLike(g)));
    });
    this.optimizer.apply(scaled, o.lr, ok);
    this.average?.update(this.optimizer.t, ok);
    tf.dispose([...grads, ...scaled]);
    return { step, loss, norm, ok };
  }

  /** Reads the outcomes of the steps run since the last settle (one read), in order. */
  async settle(): Promise<SettledStep[]> {
    if (this.pending.length === 0) return [];
    const steps = this.pending;
    this.pending = [];
    const table = tf.tidy(() => tf.stack(steps.flatMap((p) => [p.loss, p.norm, tf.cast(p.ok, 'float32')])));
    const values = await table.data();
    table.dispose();
    tf.dispose(steps.flatMap((p) => [p.loss, p.norm, p.ok]));
    return steps.map((p, i) => ({ step: p.step, loss: values[3 * i]!, gradNorm: values[3 * i + 1]!, applied: values[3 * i + 2] === 1 }));
  }

  /** Steps run whose outcomes have not been read yet. */
  get backlog(): number {
    return this.pending.length;
  }

  /** Drops unread outcomes (after a rollback they describe steps that no longer count). */
  discard(): void {
    tf.dispose(this.pending.flatMap((p) => [p.loss, p.norm, p.ok]));
    this.pending = [];
  }
}
