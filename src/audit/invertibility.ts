// The invertibility audit behind `flow check`. A flow's exact likelihood and exact inverse both fail
// quietly in float32 (Behrmann et al. 2021, "Understanding and mitigating exploding inverses"), so
// for every layer on the input it really sees, and for the whole model, it measures:
//   reconstruction error |x - f^-1(f(x))| (max and mean) of each layer alone, and of the whole model
//     inverted from its latents (every split latent kept), tracked layer by layer down the inverse
//     chain so an explosion can be pinned on the layer where it starts;
//   inverse logdet consistency |logdet f(x) + logdet f^-1(f(x))| (relative to max(1, |logdet|));
//   non-finite values in outputs, reconstructions and logdets;
// on real data and on out-of-distribution inputs (src/audit/inputs.ts), plus, for models of at most
// `maxJacobianDims` dimensions, the summed logdet against log|det| of the brute-force Jacobian.
// Over 350 lines for a reason: the per-layer statistics, the tolerances and the verdict are one report
// whose fields feed each other (blame, worst layer, findings).
import { tf, type Tensor } from '../tf.js';
import type { FlowModel } from '../flows/model.js';
import { flatLatents, walkLayers, type WalkLayer } from './walk.js';
import { jacobianLogAbsDet } from './jacobian.js';
import type { AuditInput, AuditInputKind } from './inputs.js';

/**
 * Defaults, and why:
 *   recon 1e-3: float32 round trips through a trained 16-step Glow are ~1e-5 on data; 1e-3 is
 *     invisible in an 8-bit image (a bin is 1/256) yet flags a layer whose inverse is really off.
 *   reconOod 1e-2: off-distribution inputs drive affine couplings into extreme scales; a 1% error is
 *     still an inverse worth trusting there. Trained Glows routinely explode on noise inputs, so these
 *     findings are warnings unless strictOod.
 *   logdet 1e-4 (relative to max(1, |logdet|)): forward and inverse compute the same terms, so
 *     they agree to float32 summation error.
 *   jacobian 1e-3 (relative): the brute-force Jacobian is float32 autodiff, its log|det| float64.
 */
export interface AuditTolerances {
  /** max |x - f^-1(f(x))| on data (model and every layer). */
  recon: number;
  /** The same on out-of-distribution inputs. */
  reconOod: number;
  /** max |logdet f + logdet f^-1| / max(1, |logdet f|). */
  logdet: number;
  /** |summed logdet - brute-force log|det J|| / max(1, |log|det J||). */
  jacobian: number;
}

export const DEFAULT_TOLERANCES: AuditTolerances = { recon: 1e-3, reconOod: 1e-2, logdet: 1e-4, jacobian: 1e-3 };

export interface CheckStats {
  reconMax: number;
  reconMean: number;
  /** max |logdet f + logdet f^-1| in nats. */
  logdetError: number;
  /** The same relative to max(1, |logdet f|): what the tolerance applies to. */
  logdetRelError: number;
  /** max |logdet f| (for scale). */
  maxAbsLogdet: number;
  /** Non-finite values in the outputs, reconstructions and logdets. */
  nonFinite: number;
}

export interface LayerStats extends CheckStats {
  /** max error of this layer's input as reconstructed by inverting the WHOLE model from its latents. */
  chainedReconMax: number;
  /** Non-finite values in that reconstruction. */
  chainedNonFinite: number;
}

export interface LayerAudit {
  name: string;
  inputShape: number[];
  byInput: Partial<Record<AuditInputKind, LayerStats>>;
}

export interface JacobianCheck {
  /** Index of the data example (within the audited data). */
  example: number;
  logdet: number;
  bruteForce: number;
  error: number;
  relError: number;
}

export type CheckName = 'reconstruction' | 'logdet' | 'non-finite' | 'jacobian';

export interface AuditFinding {
  check: CheckName;
  input: AuditInputKind;
  /** The layer checked alone, or null for the whole model. */
  layer: string | null;
  value: number;
  tolerance: number;
  /** Whole-model reconstruction: the layer whose inverse first pushed the chained error over tolerance (or made it non-finite). */
  blame?: string;
}

export interface ModelAudit {
  dims: number;
  inputs: Array<{ kind: AuditInputKind; description: string; n: number; ood: boolean }>;
  layers: LayerAudit[];
  model: Partial<Record<AuditInputKind, CheckStats>>;
  jacobian: { checks: JacobianCheck[]; skipped?: string };
  tolerances: AuditTolerances;
  /** Whether out-of-distribution findings are failures (else warnings). */
  strictOod: boolean;
  /** Checks over tolerance that fail the audit. */
  failures: AuditFinding[];
  /** Out-of-distribution checks over tolerance when not strictOod: reported, not failing. */
  warnings: AuditFinding[];
  /** The layer to look at first: where a failing (else warned) chained inverse broke down, else the layer checked alone furthest over (or closest to) its tolerance. */
  worstLayer: { layer: string; reason: string; ratio: number } | null;
  ok: boolean;
}

export interface AuditOptions {
  tolerances?: Partial<AuditTolerances>;
  /** Out-of-distribution findings fail the audit instead of being warnings. Default false. */
  strictOod?: boolean;
  /** Examples per pass. Default 64. */
  batchSize?: number;
  /** Data examples to check against the brute-force Jacobian (0 = none). Default 2. */
  jacobianExamples?: number;
  /** Skip the Jacobian check above this many dimensions. Default 1024. */
  maxJacobianDims?: number;
  /** Jacobian rows per backward pass. Default 64. */
  jacobianChunk?: number;
  /** Called as work progresses (e.g. to print a line on stderr). */
  onProgress?: (message: string) => void;
}

// Per-layer row: reconMax, reconSum, logdetError, logdetRelError, maxAbsLogdet, nonFinite, chainedMax, chainedNonFinite.
const FIELDS = 8;

function countNonFinite(t: Tensor): Tensor {
  return tf.sum(tf.cast(tf.logicalNot(tf.isFinite(t)), 'float32'));
}

/** Finite entries of t, zeros elsewhere (so max/sum stay meaningful; non-finite ones are counted apart). */
function finiteOrZero(t: Tensor): Tensor {
  return tf.where(tf.isFinite(t), t, tf.zerosLike(t));
}

/** The first six fields for a round trip x -> (y, logdet) -> (xr, invLogdet). */
function roundTripRow(x: Tensor, xr: Tensor, fwdLogdet: Tensor, invLogdet: Tensor, outputs: Tensor[]): Tensor {
  const diff = finiteOrZero(tf.abs(tf.sub(x, xr)));
  const ldErr = finiteOrZero(tf.abs(tf.add(fwdLogdet, invLogdet)));
  const absLd = finiteOrZero(tf.abs(fwdLogdet));
  const rel = tf.div(ldErr, tf.maximum(absLd, 1));
  let nonFinite = tf.add(countNonFinite(fwdLogdet), countNonFinite(invLogdet));
  for (const o of outputs) nonFinite = tf.add(nonFinite, countNonFinite(o));
  return tf.stack([tf.max(diff), tf.sum(diff), tf.max(ldErr), tf.max(rel), tf.max(absLd), nonFinite]);
}

/** The last two fields: error and non-finite count of a reconstruction. */
function chainedRow(x: Tensor, xr: Tensor): Tensor {
  return tf.stack([tf.max(finiteOrZero(tf.abs(tf.sub(x, xr)))), countNonFinite(xr)]);
}

interface Accumulator {
  reconMax: number;
  reconSum: number;
  logdetError: number;
  logdetRelError: number;
  maxAbsLogdet: number;
  nonFinite: number;
  chainedReconMax: number;
  chainedNonFinite: number;
  values: number;
}

function emptyAccumulator(): Accumulator {
  return { reconMax: 0, reconSum: 0, logdetError: 0, logdetRelError: 0, maxAbsLogdet: 0, nonFinite: 0, chainedReconMax: 0, chainedNonFinite: 0, values: 0 };
}

function accumulate(a: Accumulator, row: ArrayLike<number>, values: number): void {
  a.reconMax = Math.max(a.reconMax, row[0]!);
  a.reconSum += row[1]!;
  a.logdetError = Math.max(a.logdetError, row[2]!);
  a.logdetRelError = Math.max(a.logdetRelError, row[3]!);
  a.maxAbsLogdet = Math.max(a.maxAbsLogdet, row[4]!);
  a.nonFinite += row[5]!;
  a.chainedReconMax = Math.max(a.chainedReconMax, row[6]!);
  a.chainedNonFinite += row[7]!;
  a.values += values;
}

function finishLayer(a: Accumulator): LayerStats {
  return {
    reconMax: a.reconMax,
    reconMean: a.values ? a.reconSum / a.values : 0,
    logdetError: a.logdetError,
    logdetRelError: a.logdetRelError,
    maxAbsLogdet: a.maxAbsLogdet,
    nonFinite: a.nonFinite,
    chainedReconMax: a.chainedReconMax,
    chainedNonFinite: a.chainedNonFinite,
  };
}

function finishModel(a: Accumulator): CheckStats {
  const { chainedReconMax: _c, chainedNonFinite: _n, ...stats } = finishLayer(a);
  return stats;
}

const product = (shape: readonly number[]) => shape.reduce((p, d) => p * d, 1);

/** Per-layer and whole-model statistics of one set of inputs. */
async function auditInput(model: FlowModel, layers: WalkLayer[], input: AuditInput, batchSize: number, verifyWalk: boolean): Promise<{ layers: LayerStats[]; model: CheckStats }> {
  const shape = model.inputShape;
  const dims = product(shape);
  const perLayer = layers.map(emptyAccumulator);
  const whole = emptyAccumulator();
  for (let start = 0; start < input.n; start += batchSize) {
    const b = Math.min(batchSize, input.n - start);
    const x = tf.tensor(input.x.subarray(start * dims, (start + b) * dims), [b, ...shape]);
    if (verifyWalk && start === 0) await checkWalkMatchesEncode(model, x);
    const rows = tf.tidy(() => {
      const layerInputs: Tensor[] = [];
      const walk = model.walkForward(x, (layer, h, y, logdet) => {
        layerInputs[layer.index] = h;
        const inv = layer.bijector.inverse(y);
        return roundTripRow(h, inv.x, logdet, inv.logdet, [y, inv.x]);
      });
      const back = model.walkInverse(walk.zs, (layer, xr) => chainedRow(layerInputs[layer.index]!, xr));
      const chained = back.visited.slice().reverse(); // visited last layer first
      const modelRow = tf.concat([roundTripRow(x, back.x, walk.logdet, back.logdet, [...walk.zs, back.x]), tf.zeros([2])]);
      const layerRows = walk.visited.map((r, i) => tf.concat([r, chained[i]!]));
      return tf.stack([...layerRows, modelRow]);
    });
    x.dispose();
    // Async: GPU backends have no synchronous read.
    const values = await rows.data();
    rows.dispose();
    layers.forEach((layer, i) => accumulate(perLayer[i]!, values.subarray(i * FIELDS, (i + 1) * FIELDS), b * product(layer.inputShape)));
    accumulate(whole, values.subarray(layers.length * FIELDS), b * dims);
  }
  return { layers: perLayer.map(finishLayer), model: finishModel(whole) };
}

/**
 * The layer-by-layer walk must be the model: same latents and logdet as FlowModel.encode (the same ops
 * summed in another order, so any real difference is a bug in the walk, not a numerical problem).
 */
async function checkWalkMatchesEncode(model: FlowModel, x: Tensor): Promise<void> {
  const labels = model.numClasses ? tf.zeros([x.shape[0]!], 'int32') : undefined;
  const enc = model.encode(x, labels);
  const d = tf.tidy(() => {
    const { zs: latents, logdet } = model.walkForward(x);
    const dz = tf.max(finiteOrZero(tf.abs(tf.sub(flatLatents(enc.zs), flatLatents(latents)))));
    const dl = tf.max(finiteOrZero(tf.abs(tf.sub(enc.logdet, logdet))));
    return tf.stack([dz, dl, tf.max(finiteOrZero(tf.abs(flatLatents(latents)))), tf.max(finiteOrZero(tf.abs(logdet)))]);
  });
  const [dz, dl, zScale, ldScale] = Array.from(await d.data()) as [number, number, number, number];
  tf.dispose([...enc.zs, enc.logdet, enc.logpz, d]);
  labels?.dispose();
  // Same ops, so only the order of float32 sums may differ: a few ulps of the largest value.
  if (!(dz <= 1e-5 * Math.max(1, zScale) && dl <= 1e-5 * Math.max(1, ldScale))) {
    throw new Error(`audit: walking the layers disagrees with the model's encode (latents differ by ${dz}, logdet by ${dl})`);
  }
}

/** Summed logdet vs brute-force log|det J| on the first examples of the data. */
async function jacobianChecks(model: FlowModel, data: AuditInput, count: number, chunk: number): Promise<JacobianCheck[]> {
  const shape = model.inputShape;
  const dims = product(shape);
  const f = (batch: Tensor) => flatLatents(model.walkForward(batch).zs);
  const out: JacobianCheck[] = [];
  for (let i = 0; i < Math.min(count, data.n); i++) {
    const x = tf.tensor(data.x.subarray(i * dims, (i + 1) * dims), [1, ...shape]);
    const ld = tf.tidy(() => model.walkForward(x).logdet);
    const logdet = (await ld.data())[0]!;
    ld.dispose();
    const bruteForce = await jacobianLogAbsDet(f, x, chunk);
    x.dispose();
    const error = Math.abs(logdet - bruteForce);
    out.push({ example: i, logdet, bruteForce, error, relError: Number.isFinite(error) ? error / Math.max(1, Math.abs(bruteForce)) : Infinity });
  }
  return out;
}

/**
 * Where the chained inverse broke down: going from the latents down, the first layer whose rebuilt
 * input is over tol or non-finite. Its inverse amplified (or made) the error; the layers below inherit it.
 */
function blameChained(layers: LayerAudit[], input: AuditInputKind, tol: number): string | undefined {
  for (let i = layers.length - 1; i >= 0; i--) {
    const s = layers[i]!.byInput[input]!;
    if (s.chainedNonFinite > 0 || !(s.chainedReconMax <= tol)) return layers[i]!.name;
  }
  return undefined;
}

/** Runs every check of every input through the model. Nothing is thrown for a failed check: see `ok`. */
export async function auditModel(model: FlowModel, inputs: AuditInput[], opts: AuditOptions = {}): Promise<ModelAudit> {
  const tolerances = { ...DEFAULT_TOLERANCES, ...opts.tolerances };
  const strictOod = opts.strictOod ?? false;
  const batchSize = opts.batchSize ?? 64;
  const layers = walkLayers(model);
  const dims = product(model.inputShape);
  const layerAudits: LayerAudit[] = layers.map((l) => ({ name: l.name, inputShape: l.inputShape, byInput: {} }));
  const modelStats: ModelAudit['model'] = {};
  for (const [k, input] of inputs.entries()) {
    if (input.x.length !== input.n * dims) throw new Error(`audit input '${input.kind}' has ${input.x.length} values, expected ${input.n} x ${dims}`);
    opts.onProgress?.(`checking ${input.n} x ${input.description}`);
    const r = await auditInput(model, layers, input, batchSize, k === 0);
    r.layers.forEach((s, i) => (layerAudits[i]!.byInput[input.kind] = s));
    modelStats[input.kind] = r.model;
  }

  const jacobianExamples = opts.jacobianExamples ?? 2;
  const maxJacobianDims = opts.maxJacobianDims ?? 1024;
  const data = inputs.find((i) => i.kind === 'data');
  let jacobian: ModelAudit['jacobian'];
  if (jacobianExamples <= 0) jacobian = { checks: [], skipped: 'disabled' };
  // An integer flow is piecewise constant off its grid: no Jacobian to compare; its logdet is D·ln(bins) by construction.
  else if (model.integer) jacobian = { checks: [], skipped: 'integer flow (a bijection of grid values; exactness is the reconstruction check)' };
  else if (dims > maxJacobianDims) jacobian = { checks: [], skipped: `${dims} dimensions > ${maxJacobianDims}` };
  else if (!data || data.n === 0) jacobian = { checks: [], skipped: 'no data inputs' };
  else {
    opts.onProgress?.(`brute-force Jacobian (${dims}x${dims}) of ${Math.min(jacobianExamples, data.n)} example(s)`);
    jacobian = { checks: await jacobianChecks(model, data, jacobianExamples, opts.jacobianChunk ?? 64) };
  }

  const failures: AuditFinding[] = [];
  const warnings: AuditFinding[] = [];
  // Per tier (0: findings that fail the audit, 1: warnings), the layer-level evidence for naming the worst layer.
  const tiers = [0, 1].map(() => ({ nonFinite: null as { index: number; layer: string; input: AuditInputKind } | null, worst: null as ModelAudit['worstLayer'] }));
  for (const input of inputs) {
    const reconTol = input.ood ? tolerances.reconOod : tolerances.recon;
    const warnOnly = input.ood && !strictOod;
    const findings = warnOnly ? warnings : failures;
    const tier = tiers[warnOnly ? 1 : 0]!;
    const judge = (s: CheckStats, layer: string | null, index: number) => {
      const checks: AuditFinding[] = [
        { check: 'non-finite', input: input.kind, layer, value: s.nonFinite, tolerance: 0 },
        { check: 'reconstruction', input: input.kind, layer, value: s.reconMax, tolerance: reconTol },
        { check: 'logdet', input: input.kind, layer, value: s.logdetRelError, tolerance: tolerances.logdet },
      ];
      for (const c of checks) {
        if (!(c.value <= c.tolerance)) {
          if (layer === null && c.check !== 'logdet') {
            const blame = blameChained(layerAudits, input.kind, reconTol);
            if (blame) c.blame = blame;
          }
          findings.push(c);
        }
        if (layer === null) continue;
        if (c.check === 'non-finite') {
          if (c.value > 0 && (!tier.nonFinite || index < tier.nonFinite.index)) tier.nonFinite = { index, layer, input: input.kind };
        } else {
          const ratio = c.value / c.tolerance;
          if (!tier.worst || ratio > tier.worst.ratio) {
            tier.worst = { layer, ratio, reason: `${input.kind} ${c.check} error ${c.value.toExponential(1)} (tolerance ${c.tolerance.toExponential(1)}) when checked alone` };
          }
        }
      }
    };
    layerAudits.forEach((l, i) => judge(l.byInput[input.kind]!, l.name, i));
    judge(modelStats[input.kind]!, null, -1);
  }
  for (const j of jacobian.checks) {
    if (!(j.relError <= tolerances.jacobian)) failures.push({ check: 'jacobian', input: 'data', layer: null, value: j.relError, tolerance: tolerances.jacobian });
  }

  // Blame, failures before warnings; within a tier most specific first: the first layer that makes
  // non-finite values on its own, a layer over tolerance on its own, then the layer where the chained
  // inverse broke down. With nothing over tolerance: the layer closest to a tolerance.
  let worstLayer: ModelAudit['worstLayer'] = null;
  for (const [k, list] of [failures, warnings].entries()) {
    if (!list.length) continue;
    const tier = tiers[k]!;
    const blamed = list.find((f) => f.blame);
    if (tier.nonFinite) {
      worstLayer = { layer: tier.nonFinite.layer, ratio: Infinity, reason: `first layer with non-finite values (${tier.nonFinite.input} inputs) when checked alone` };
    } else if (tier.worst && tier.worst.ratio > 1) {
      worstLayer = tier.worst;
    } else if (blamed) {
      const tol = inputs.find((i) => i.kind === blamed.input)?.ood ? tolerances.reconOod : tolerances.recon;
      worstLayer = {
        layer: blamed.blame!,
        ratio: blamed.check === 'non-finite' ? Infinity : blamed.value / tol,
        reason: `inverting the whole model from the latents of ${blamed.input} inputs, this layer's inverse is the first to push the error over ${tol.toExponential(1)}`,
      };
    }
    if (worstLayer) break;
  }
  if (!worstLayer) worstLayer = tiers[0]!.worst ?? tiers[1]!.worst;

  return {
    dims,
    inputs: inputs.map(({ kind, description, n, ood }) => ({ kind, description, n, ood })),
    layers: layerAudits,
    model: modelStats,
    jacobian,
    tolerances,
    strictOod,
    failures,
    warnings,
    worstLayer,
    ok: failures.length === 0,
  };
}
