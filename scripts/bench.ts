// Training / sampling / eval throughput of the benchmark Glow (configs/bench-fashion.yaml, the model
// of ref_glow.py), per backend, with the PyTorch reference side by side (--ref). A benchmark, not a
// test: `scripts/bench [--seconds 300] [--backends wasm,cpu] [--workers 2] [--ref] [--lr LR] [--average-decay D] [--ref-lr LR] [--json FILE]`.
//
// Each backend runs in a child process of its own (clean tensor counts and peak RSS): it trains for
// the wall-clock budget with the trainer's own step (lossAndGrads, the gradient-norm check, the
// optimizer; data order, dequantisation noise and ActNorm init as src/train/trainer.ts does them),
// then measures test bpd on the first 2000 test images (eval img/s) and sampling img/s.
// --ref runs ../shared/bench/ref_glow.py (beside the repository; --ref-script elsewhere) with the same budget and threads, then scripts/bench-ref.py
// on its saved model for the reference's eval and sampling speed, and prints every ratio.
// --profile N: per-kernel time of N training steps on the first backend (single thread), then exit.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { tf } from '../src/tf.js';
import { loadConfig } from '../src/config/load.js';
import type { Config } from '../src/config/schema.js';
import { loadDataset, type Dataset } from '../src/data/index.js';
import { BatchIterator } from '../src/data/preprocess.js';
import { buildModel, countParameters, type FlowModel } from '../src/flows/model.js';
import { initializeModel, lossAndGrads, makeBatch, StepRunner, type GradFn, type ObjectiveOptions } from '../src/train/step.js';
import { Optimizer, learningRate, runProgress } from '../src/train/optimizer.js';
import { ParallelGradients } from '../src/train/parallel.js';
import { WeightAverage } from '../src/train/average.js';
import { resolveRun } from '../src/io/run.js';
import { assignModel, recordsByName } from '../src/io/model-io.js';
import { loadCheckpoint } from '../src/io/checkpoint.js';
import { imageBatch, perExampleLogProb, bitsPerDim, meanAndStderr } from '../src/eval/bpd.js';
import { selectBackend, type BackendChoice } from '../src/backend/select.js';
import { hardwareAdapterPossible } from '../src/backend/webgpu.js';
import { KernelProfiler } from '../src/backend/profile.js';
import type { ModelMeta } from '../src/io/model-io.js';
import { Rng } from '../src/rng.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const THIS_SCRIPT = fileURLToPath(import.meta.url);

interface Options {
  config: string;
  seconds: number;
  backends?: string;
  workers?: number;
  load?: string;
  refLr?: number;
  lr?: number;
  averageDecay?: number;
  mainWeight?: number;
  ref: boolean;
  refScript: string;
  python: string;
  refThreads: number;
  evalExamples: number;
  evalBatch: number;
  samples: number;
  sampleBatch: number;
  json?: string;
  profile?: number;
  child?: string;
}

/** What one backend's child process reports. */
export interface BackendResult {
  backend: string;
  workers: number;
  parameters: number;
  /** cores: CPU seconds (all threads) per wall-clock second while training; ~2 means both cores were ours. */
  train: { lr: number; lrSchedule: string; seconds: number; steps: number; images: number; imgPerSec: number; lastLoss: number | null; cores: number };
  /** testBpd with the averaged weights when averageDecay > 0 (testBpdRaw: the last step's weights). */
  eval: { examples: number; seconds: number; imgPerSec: number; testBpd: number; testBpdRaw: number; averageDecay: number };
  sample: { n: number; seconds: number; imgPerSec: number; finite: boolean };
  tensors: { start: { count: number; bytes: number }; end: { count: number; bytes: number } };
  peakRssMB: number;
  /** With workers: mean ms per training step publishing weights and rows, on the main share, waiting for the workers, combining. */
  parallel?: { share: number; main: number; wait: number; combine: number };
}

interface RefResult {
  /** Adam learning rate the reference trained with (its default, 1e-3, unless --ref-lr). */
  lr: number;
  trainImgPerSec: number;
  steps: number;
  lastTrainBpd: number;
  testBpd: number;
  evalImgPerSec: number | null;
  sampleImgPerSec: number | null;
  /** The same with torch.set_flush_denormal(True) (not ref_glow.py's setting; denormals slow a trained model down). */
  evalImgPerSecFlushDenormal: number | null;
  sampleImgPerSecFlushDenormal: number | null;
  threads: number;
  /** CPU seconds per wall-clock second over the whole reference run (null without /usr/bin/time). */
  cores: number | null;
}

interface Setup {
  cfg: Config;
  data: Dataset;
  meta: ModelMeta;
  model: FlowModel;
  optimizer: Optimizer;
  o: ObjectiveOptions;
}

async function setUp(opts: Options): Promise<Setup> {
  const cfg = loadConfig(path.resolve(opts.config));
  if (opts.lr !== undefined) cfg.train.lr = opts.lr;
  if (opts.averageDecay !== undefined) cfg.train.average_decay = opts.averageDecay;
  const data = await loadDataset(cfg.data, { seed: cfg.seed });
  if (data.kind !== 'image') throw new Error(`bench: ${opts.config} must describe image data`);
  const meta: ModelMeta = { dataShape: data.shape, dataKind: data.kind, nBits: cfg.data.n_bits };
  const model = buildModel(cfg.model, data.shape, { seed: cfg.seed, nBits: cfg.data.n_bits });
  initializeModel(model, cfg, data);
  const params = model.variables().filter(([, v]) => v.trainable).map(([, v]) => v);
  const optimizer = new Optimizer(cfg.train.optimizer, params);
  const dims = data.shape.reduce((a, b) => a * b, 1);
  const o: ObjectiveOptions = { dims, nBins: 2 ** cfg.data.n_bits, lossName: 'bpd', classLossWeight: 0 };
  return { cfg, data, meta, model, optimizer, o };
}

function tensorStats(): { count: number; bytes: number } {
  const m = tf.memory();
  return { count: m.numTensors, bytes: m.numBytes };
}

/** One backend, in this (child) process: train for the budget, then eval and sampling. */
async function runBackend(backend: string, opts: Options): Promise<BackendResult> {
  const selected = await selectBackend(backend as BackendChoice);
  // A software WebGPU adapter (llvmpipe) is the CPU emulating a GPU: its numbers are labelled as such.
  const label = selected.adapter?.software ? `${backend} (software adapter)` : backend;
  const s = await setUp(opts);
  const { cfg, data, model, optimizer, o } = s;
  const workers = opts.workers ?? (backend === 'wasm' ? 2 : 1);
  const parallel = workers > 1 ? await ParallelGradients.create(cfg, s.meta, workers, { mainWeight: opts.mainWeight }) : null;
  const grad: GradFn = parallel ? (m, p, b, oo) => parallel.lossAndGrads(m, p, b, oo) : lossAndGrads;
  const iterator = new BatchIterator(data.train.n, cfg.train.batch_size, cfg.seed);
  const noiseRng = new Rng(cfg.seed + 1);
  // train.average_decay: eval and sampling below use the averaged weights, as flow train/eval do.
  const average = cfg.train.average_decay > 0 ? new WeightAverage(cfg.train.average_decay, optimizer.params) : null;
  const start = tensorStats();
  let steps = 0;
  let images = 0;
  let lastLoss: number | null = null;
  // The trainer's own step runner: on a GPU the whole step stays on the device and outcomes are read in windows.
  const runner = new StepRunner(model, optimizer, average, grad);
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const deadline = t0 + opts.seconds * 1000;
  while (performance.now() < deadline) {
    const { indices } = iterator.next();
    const batch = makeBatch(data, indices, cfg, noiseRng);
    // As flow train with max_minutes = the budget: the schedule's progress is the elapsed share of it.
    const progress = runProgress(steps, 0, performance.now() - t0, opts.seconds / 60);
    const lr = learningRate(cfg.train.lr, cfg.train.warmup_steps, steps + 1, cfg.train.lr_schedule, progress);
    const settled = await runner.run(steps + 1, batch, { ...o, lr, maxGradNorm: cfg.train.max_grad_norm }, runner.backlog >= 49);
    if (settled.length) lastLoss = settled[settled.length - 1]!.loss;
    batch.x.dispose();
    steps++;
    images += indices.length;
  }
  const rest = await runner.settle();
  if (rest.length) lastLoss = rest[rest.length - 1]!.loss;
  const trainSeconds = (performance.now() - t0) / 1000;
  const timing = parallel ? { ...parallel.timing } : null;
  const cpu = process.cpuUsage(cpu0);
  const cores = (cpu.user + cpu.system) / 1e6 / trainSeconds;
  const end = tensorStats();

  // Eval and sampling, with the averaged weights when train.average_decay is on (as flow eval/sample).
  // Test bpd: the first evalExamples test images with per-example seeded dequantisation noise, through
  // src/eval/bpd.ts as flow eval computes it, on every thread.
  const n = Math.min(opts.evalExamples, data.test.n);
  const testBpdOf = async (): Promise<number> => {
    const logp = await perExampleLogProb(model, data.test, data.shape, 'image', {
      nBits: cfg.data.n_bits,
      seed: cfg.seed,
      batchSize: opts.evalBatch,
      indices: Array.from({ length: n }, (_, i) => i),
      logProb: parallel ? (x) => parallel.logProb(model, x) : undefined,
    });
    return meanAndStderr(logp.map((l) => bitsPerDim(l, o.dims, o.nBins))).mean;
  };
  const inference = async () => {
    // One untimed batch of each first, as the reference gets (shape-specific set-up on both sides).
    {
      const idx = Array.from({ length: Math.min(opts.evalBatch, n) }, (_, i) => i);
      const x = tf.tensor(imageBatch(data.test, data.shape, idx, cfg.data.n_bits, cfg.seed, true), [idx.length, ...data.shape]);
      tf.dispose([x, parallel ? parallel.logProb(model, x) : model.logProb(x)]);
      const k = Math.min(opts.sampleBatch, opts.samples);
      const rngs = Array.from({ length: k }, (_, i) => new Rng(i));
      tf.dispose(parallel ? parallel.sample(model, k, cfg.sample.temperature, rngs) : model.sample(k, cfg.sample.temperature, rngs));
    }
    const e0 = performance.now();
    const testBpd = await testBpdOf();
    const evalSeconds = (performance.now() - e0) / 1000;

    // Sampling with one noise stream per sample (so the threads can share a batch).
    const s0 = performance.now();
    let finite = true;
    for (let done = 0; done < opts.samples; ) {
      const k = Math.min(opts.sampleBatch, opts.samples - done);
      const rngs = Array.from({ length: k }, (_, i) => new Rng(cfg.seed + 4 + done + i));
      const x = parallel ? parallel.sample(model, k, cfg.sample.temperature, rngs) : model.sample(k, cfg.sample.temperature, rngs);
      finite &&= ((await x.data()) as Float32Array).every(Number.isFinite);
      x.dispose();
      done += k;
    }
    const sampleSeconds = (performance.now() - s0) / 1000;
    return { evalSeconds, testBpd, sampleSeconds, finite };
  };
  const { evalSeconds, testBpd, sampleSeconds, finite } = average ? await average.withAveraged(inference) : await inference();
  // The raw (last-step) weights' test bpd too, untimed, to show what averaging changed.
  const testBpdRaw = average ? await testBpdOf() : testBpd;
  average?.dispose();
  await parallel?.dispose();
  const result: BackendResult = {
    backend: label,
    workers,
    parameters: countParameters(model),
    train: { lr: cfg.train.lr, lrSchedule: cfg.train.lr_schedule, seconds: trainSeconds, steps, images, imgPerSec: images / trainSeconds, lastLoss, cores },
    eval: { examples: n, seconds: evalSeconds, imgPerSec: n / evalSeconds, testBpd, testBpdRaw, averageDecay: cfg.train.average_decay },
    sample: { n: opts.samples, seconds: sampleSeconds, imgPerSec: opts.samples / sampleSeconds, finite },
    tensors: { start, end },
    peakRssMB: process.resourceUsage().maxRSS / 1024,
  };
  if (timing && timing.calls > 0) {
    const per = (v: number) => v / timing.calls;
    result.parallel = { share: per(timing.share), main: per(timing.main), wait: per(timing.wait), combine: per(timing.combine) };
  }
  optimizer.dispose();
  model.dispose();
  return result;
}

/** Per-kernel time of `steps` single-thread training steps (after two warm-up steps). */
async function profile(backend: string, steps: number, opts: Options): Promise<void> {
  await selectBackend(backend as BackendChoice);
  const { cfg, data, model, optimizer, o } = await setUp(opts);
  if (opts.load) {
    // A trained model's weights (same config): its activations, unlike a fresh model's, can hold denormals.
    const { checkpoint } = resolveRun(opts.load);
    assignModel(model, recordsByName(loadCheckpoint(checkpoint)), checkpoint);
    console.log(`profile: weights from ${checkpoint}`);
  }
  const iterator = new BatchIterator(data.train.n, cfg.train.batch_size, cfg.seed);
  const noiseRng = new Rng(cfg.seed + 1);
  const prof = new KernelProfiler();
  prof.clock = 'cpu';
  prof.detailed = new Set(['BatchMatMul', 'Conv2D', 'FusedConv2D', '_FusedMatMul', 'Transpose', 'FlowGemm', 'FlowMatMulTN']);
  const phases = { forward: 0, backward: 0, optimizer: 0 };
  const cpu = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  const step = (p: KernelProfiler | null) => {
    const batch = makeBatch(data, iterator.next().indices, cfg, noiseRng);
    const params = optimizer.params;
    if (p) p.phase = 'forward';
    const t0 = cpu();
    let t1 = 0;
    const { value, grads } = tf.variableGrads(() => {
      const l = tf.tidy(() => {
        const logp = model.logProb(batch.x);
        return tf.div(tf.sub(o.dims * Math.log(o.nBins), tf.mean(logp)), o.dims * Math.LN2) as tf.Scalar;
      });
      t1 = cpu();
      if (p) p.phase = 'backward';
      return l;
    }, params);
    const t2 = cpu();
    if (p) p.phase = 'optimizer';
    const g = params.map((q) => grads[q.name]!);
    optimizer.apply(g, cfg.train.lr);
    value.dataSync();
    tf.dispose([value, ...g, batch.x]);
    const t3 = cpu();
    if (p) {
      phases.forward += t1 - t0;
      phases.backward += t2 - t1;
      phases.optimizer += t3 - t2;
    }
  };
  step(null);
  step(null);
  const tensors = tf.memory().numTensors;
  prof.start();
  for (let i = 0; i < steps; i++) step(prof);
  prof.stop();
  const table = prof.table();
  const kernelMs = table.reduce((a, s) => a + s.ms, 0) / steps;
  const calls = table.reduce((a, s) => a + s.calls, 0) / steps;
  const total = (phases.forward + phases.backward + phases.optimizer) / steps;
  console.log(`profile: ${backend}, ${steps} steps of batch ${cfg.train.batch_size}, CPU time per step ${total.toFixed(1)} ms ` +
    `(forward ${(phases.forward / steps).toFixed(1)}, backward ${(phases.backward / steps).toFixed(1)}, optimizer ${(phases.optimizer / steps).toFixed(1)}); ` +
    `kernels ${kernelMs.toFixed(1)} ms in ${calls.toFixed(0)} calls (JS overhead ${(total - kernelMs).toFixed(1)} ms); ` +
    `tensors ${tensors} -> ${tf.memory().numTensors}`);
  console.log(`${'phase'.padEnd(10)} ${'kernel'.padEnd(56)} ${'calls'.padStart(6)} ${'ms/step'.padStart(9)} ${'share'.padStart(6)}`);
  for (const st of table.slice(0, 40)) {
    console.log(`${st.phase.padEnd(10)} ${st.kernel.slice(0, 56).padEnd(56)} ${(st.calls / steps).toFixed(0).padStart(6)} ${(st.ms / steps).toFixed(2).padStart(9)} ${((100 * st.ms) / steps / total).toFixed(1).padStart(5)}%`);
  }

  // Inference: one eval batch (logProb) and one sampling batch, each timed twice after a warm-up call.
  const evalX = tf.tensor(imageBatch(data.test, data.shape, Array.from({ length: opts.evalBatch }, (_, i) => i), cfg.data.n_bits, cfg.seed, true), [opts.evalBatch, ...data.shape]);
  const rngs = (k: number) => Array.from({ length: k }, (_, i) => new Rng(cfg.seed + 4 + i));
  const jobs: Array<[string, number, () => tf.Tensor]> = [
    ['eval', opts.evalBatch, () => model.logProb(evalX)],
    ['sample', opts.sampleBatch, () => model.sample(opts.sampleBatch, cfg.sample.temperature, rngs(opts.sampleBatch))],
  ];
  for (const [phase, n, run] of jobs) {
    run().dispose();
    const p = new KernelProfiler();
    p.clock = 'cpu';
    p.detailed = prof.detailed;
    p.phase = phase;
    p.start();
    const c0 = cpu();
    for (let i = 0; i < 2; i++) run().dispose();
    const ms = (cpu() - c0) / 2;
    p.stop();
    const rows = p.table();
    const kms = rows.reduce((a, s) => a + s.ms, 0) / 2;
    console.log(`\nprofile: ${phase}, batch ${n}: CPU ${ms.toFixed(1)} ms per batch (${((1000 * n) / ms).toFixed(0)} img/s on one thread); kernels ${kms.toFixed(1)} ms (JS overhead ${(ms - kms).toFixed(1)} ms)`);
    for (const st of rows.slice(0, 25)) {
      console.log(`${st.phase.padEnd(10)} ${st.kernel.slice(0, 56).padEnd(56)} ${(st.calls / 2).toFixed(0).padStart(6)} ${(st.ms / 2).toFixed(2).padStart(9)} ${((100 * st.ms) / 2 / ms).toFixed(1).padStart(5)}%`);
    }
  }
  evalX.dispose();
  optimizer.dispose();
  model.dispose();
}

// ---------------------------------------------------------------------------------------------
// The parent: one child per backend, the reference, the report.

/**
 * wasm and cpu, plus tensorflow when tfjs-node-gpu is installed and webgpu where a hardware adapter can
 * exist (a Vulkan loader on Linux). The software WebGPU adapter runs only when named: --backends webgpu.
 */
function availableBackends(): string[] {
  const out = ['wasm', 'cpu'];
  if (hardwareAdapterPossible()) out.unshift('webgpu');
  try {
    createRequire(import.meta.url).resolve('@tensorflow/tfjs-node-gpu');
    out.unshift('tensorflow');
  } catch {
    // not installed: skipped
  }
  return out;
}

function runChild(backend: string, opts: Options): BackendResult {
  const args = [THIS_SCRIPT, '--child', backend, '--config', opts.config, '--seconds', String(opts.seconds), '--eval-examples', String(opts.evalExamples),
    '--eval-batch', String(opts.evalBatch), '--samples', String(opts.samples), '--sample-batch', String(opts.sampleBatch)];
  if (opts.workers !== undefined) args.push('--workers', String(opts.workers));
  if (opts.mainWeight !== undefined) args.push('--main-weight', String(opts.mainWeight));
  if (opts.lr !== undefined) args.push('--lr', String(opts.lr));
  if (opts.averageDecay !== undefined) args.push('--average-decay', String(opts.averageDecay));
  process.stderr.write(`bench: ${backend}: training for ${opts.seconds} s, then eval and sampling...\n`);
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`bench: the ${backend} run failed (exit ${r.status})`);
  const line = r.stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as BackendResult;
}

/** ref_glow.py's own default learning rate (its --lr). */
const REF_DEFAULT_LR = 1e-3;

function runRef(opts: Options, dataPath: string): RefResult {
  const model = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'flow-bench-')), 'ref.pt');
  process.stderr.write(`bench: reference (PyTorch, ${opts.refThreads} threads): training for ${opts.seconds} s...\n`);
  // /usr/bin/time reports the CPU seconds the reference got (the run includes start-up and the final eval).
  const timed = fs.existsSync('/usr/bin/time');
  const refArgs = [opts.refScript, '--data', dataPath, '--seconds', String(opts.seconds), '--threads', String(opts.refThreads), '--save', model];
  if (opts.refLr !== undefined) refArgs.push('--lr', String(opts.refLr));
  const train = timed
    ? spawnSync('/usr/bin/time', ['-f', 'TIME %e %U %S', opts.python, ...refArgs], { encoding: 'utf8', maxBuffer: 1 << 24 })
    : spawnSync(opts.python, refArgs, { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (train.status !== 0) throw new Error(`bench: ${opts.refScript} failed (exit ${train.status}): ${train.stderr.trim().split('\n').pop()}`);
  const time = /TIME ([\d.]+) ([\d.]+) ([\d.]+)/.exec(train.stderr);
  const cores = time ? (Number(time[2]) + Number(time[3])) / Number(time[1]) : null;
  const fields = Object.fromEntries(train.stdout.trim().split('\n').pop()!.split(/\s+/).map((kv) => kv.split('=') as [string, string]));
  const helper = path.join(ROOT, 'scripts', 'bench-ref.py');
  process.stderr.write('bench: reference eval and sampling...\n');
  const speed = spawnSync(opts.python, [helper, '--ref-script', opts.refScript, '--model', model, '--data', dataPath, '--threads', String(opts.refThreads),
    '--eval-n', String(opts.evalExamples), '--sample-n', String(opts.samples), '--sample-batch', String(opts.sampleBatch)], { encoding: 'utf8', maxBuffer: 1 << 24 });
  fs.rmSync(path.dirname(model), { recursive: true, force: true });
  let evalImgPerSec: number | null = null;
  let sampleImgPerSec: number | null = null;
  let evalImgPerSecFlushDenormal: number | null = null;
  let sampleImgPerSecFlushDenormal: number | null = null;
  if (speed.status === 0) {
    const j = JSON.parse(speed.stdout.trim().split('\n').pop()!) as Record<string, number>;
    evalImgPerSec = j.eval_img_per_s ?? null;
    sampleImgPerSec = j.sample_img_per_s ?? null;
    evalImgPerSecFlushDenormal = j.eval_img_per_s_flush_denormal ?? null;
    sampleImgPerSecFlushDenormal = j.sample_img_per_s_flush_denormal ?? null;
  } else process.stderr.write(`bench: scripts/bench-ref.py failed: ${speed.stderr.trim().split('\n').pop()}\n`);
  return {
    lr: opts.refLr ?? REF_DEFAULT_LR,
    trainImgPerSec: Number(fields.train_img_per_s),
    steps: Number(fields.steps),
    lastTrainBpd: Number(fields.last_train_bpd),
    testBpd: Number(fields.test_bpd_2000),
    evalImgPerSec,
    sampleImgPerSec,
    evalImgPerSecFlushDenormal,
    sampleImgPerSecFlushDenormal,
    threads: Number(fields.threads),
    cores,
  };
}

function fmt(v: number | null | undefined, digits = 1): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits);
}

function table(results: BackendResult[], ref: RefResult | null, seconds: number): string {
  const rows: string[][] = [['', 'threads', 'cores', 'lr', 'steps', 'train img/s', 'sample img/s', 'eval img/s', `test bpd @${seconds}s`, 'tensors start->end', 'MB start->end', 'peak RSS MB']];
  for (const r of results) {
    rows.push([r.backend, String(r.workers), fmt(r.train.cores, 2), r.train.lrSchedule === 'constant' ? String(r.train.lr) : `${r.train.lr} ${r.train.lrSchedule}`, String(r.train.steps), fmt(r.train.imgPerSec), fmt(r.sample.imgPerSec), fmt(r.eval.imgPerSec), r.eval.averageDecay > 0 ? `${fmt(r.eval.testBpd, 3)} (avg; raw ${fmt(r.eval.testBpdRaw, 3)})` : fmt(r.eval.testBpd, 3),
      `${r.tensors.start.count}->${r.tensors.end.count}`, `${fmt(r.tensors.start.bytes / 2 ** 20)}->${fmt(r.tensors.end.bytes / 2 ** 20)}`, fmt(r.peakRssMB, 0)]);
  }
  if (ref) {
    rows.push([`pytorch ref`, String(ref.threads), fmt(ref.cores, 2), String(ref.lr), String(ref.steps), fmt(ref.trainImgPerSec), fmt(ref.sampleImgPerSec), fmt(ref.evalImgPerSec), fmt(ref.testBpd, 3), '', '', '']);
    for (const r of results) {
      rows.push([`${r.backend} / ref`, '', '', '', '', `${fmt(r.train.imgPerSec / ref.trainImgPerSec, 2)}x`, ref.sampleImgPerSec ? `${fmt(r.sample.imgPerSec / ref.sampleImgPerSec, 2)}x` : '-',
        ref.evalImgPerSec ? `${fmt(r.eval.imgPerSec / ref.evalImgPerSec, 2)}x` : '-', `${r.eval.testBpd - ref.testBpd >= 0 ? '+' : ''}${fmt(r.eval.testBpd - ref.testBpd, 3)}`, '', '', '']);
    }
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  let text = rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')).join('\n');
  if (ref && (ref.evalImgPerSecFlushDenormal || ref.sampleImgPerSecFlushDenormal)) {
    text += `\n(reference with denormals flushed to zero: sample ${fmt(ref.sampleImgPerSecFlushDenormal)} img/s, eval ${fmt(ref.evalImgPerSecFlushDenormal)} img/s`;
    for (const r of results) {
      text += `; ${r.backend}/ref ${ref.sampleImgPerSecFlushDenormal ? fmt(r.sample.imgPerSec / ref.sampleImgPerSecFlushDenormal, 2) : '-'}x, ${ref.evalImgPerSecFlushDenormal ? fmt(r.eval.imgPerSec / ref.evalImgPerSecFlushDenormal, 2) : '-'}x`;
    }
    text += ')';
  }
  return text;
}

async function main(): Promise<void> {
  const program = new Command()
    .name('bench')
    .description('training / sampling / eval throughput of the benchmark Glow per backend, optionally against the PyTorch reference')
    .option('--config <file>', 'benchmark model and data', path.join(ROOT, 'configs', 'bench-fashion.yaml'))
    .option('--seconds <n>', 'wall-clock training budget per backend', (v) => Number(v), 300)
    .option('--backends <list>', 'comma-separated backends (default: every available)')
    .option('--workers <n>', 'gradient threads incl. the main one (default: 2 on wasm, 1 otherwise)', (v) => Number(v))
    .option('--main-weight <w>', "weight of the main thread's share of a batch (src/train/parallel.ts shares)", (v) => Number(v))
    .option('--ref', 'also run ref_glow.py with the same budget and print ratios', false)
    .option('--ref-script <file>', 'the PyTorch reference (default: ../shared/bench/ref_glow.py beside the repository)', path.resolve(ROOT, '..', 'shared', 'bench', 'ref_glow.py'))
    .option('--python <exe>', 'python with torch', '/usr/bin/python3')
    .option('--lr <lr>', "our Adam learning rate (default: the config's train.lr)", (v) => Number(v))
    .option('--average-decay <d>', "our weight averaging (default: the config's train.average_decay; 0 = off)", (v) => Number(v))
    .option('--ref-lr <lr>', "the reference's Adam learning rate (default: its own, 1e-3)", (v) => Number(v))
    .option('--ref-threads <n>', 'torch threads for the reference', (v) => Number(v), 2)
    .option('--eval-examples <n>', 'test images for test bpd (the first N)', (v) => Number(v), 2000)
    .option('--eval-batch <n>', 'eval batch size (ref_glow.py: 250)', (v) => Number(v), 250)
    .option('--samples <n>', 'images to sample for sampling img/s', (v) => Number(v), 2000)
    .option('--sample-batch <n>', 'sampling batch size', (v) => Number(v), 250)
    .option('--json <file>', 'also write the results as JSON to this file')
    .option('--profile <steps>', 'print a per-kernel profile of this many single-thread training steps on the first backend and exit', (v) => Number(v))
    .option('--load <run>', 'with --profile: load the weights of this run (or checkpoint) directory first')
    .option('--child <backend>', '(internal) run one backend and print its JSON');
  program.parse();
  const opts = program.opts<Options>();
  for (const [flag, v] of Object.entries({ seconds: opts.seconds, 'eval-examples': opts.evalExamples, samples: opts.samples, lr: opts.lr ?? 1, 'ref-lr': opts.refLr ?? 1, 'average-decay': (opts.averageDecay ?? 0) + 1 })) {
    if (!Number.isFinite(v) || v <= 0) throw new Error(`bench: --${flag} must be a positive number`);
  }
  if (opts.child) {
    const r = await runBackend(opts.child, opts);
    process.stdout.write(JSON.stringify(r) + '\n');
    return;
  }
  const backends = opts.backends ? opts.backends.split(',').map((b) => b.trim()).filter(Boolean) : availableBackends();
  if (opts.profile) {
    await profile(backends[0]!, opts.profile, opts);
    return;
  }
  const results = backends.map((b) => runChild(b, opts));
  const cfg = loadConfig(path.resolve(opts.config));
  const ref = opts.ref ? runRef(opts, cfg.data.path) : null;
  const report = {
    config: path.relative(ROOT, path.resolve(opts.config)),
    seconds: opts.seconds,
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model ?? '', node: process.version, loadavg: os.loadavg() },
    backends: results,
    reference: ref,
    ratios: ref
      ? Object.fromEntries(results.map((r) => [r.backend, {
          train: r.train.imgPerSec / ref.trainImgPerSec,
          sample: ref.sampleImgPerSec ? r.sample.imgPerSec / ref.sampleImgPerSec : null,
          eval: ref.evalImgPerSec ? r.eval.imgPerSec / ref.evalImgPerSec : null,
          sampleVsFlushDenormal: ref.sampleImgPerSecFlushDenormal ? r.sample.imgPerSec / ref.sampleImgPerSecFlushDenormal : null,
          evalVsFlushDenormal: ref.evalImgPerSecFlushDenormal ? r.eval.imgPerSec / ref.evalImgPerSecFlushDenormal : null,
          testBpdDiff: r.eval.testBpd - ref.testBpd,
        }]))
      : null,
  };
  console.log(table(results, ref, opts.seconds));
  if (opts.json) {
    fs.writeFileSync(opts.json, JSON.stringify(report, null, 2) + '\n');
    console.log(`\nJSON written to ${opts.json}`);
  }
  console.log(JSON.stringify(report));
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
