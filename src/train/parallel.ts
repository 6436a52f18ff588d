// Data parallelism on worker threads. The wasm backend is single-threaded, so a second core only
// helps if another thread runs its own tfjs: each worker (src/train/grad-worker.ts) rebuilds the
// model, and per call the main thread computes its share of the batch while every worker computes
// its share on the same weights. For gradients the result is the batch-size-weighted mean, the same
// (up to float rounding) as the gradient of the whole batch; log-densities and samples are per example,
// so they are exactly the single-thread ones.
//
// Everything moves through SharedArrayBuffers and Atomics: the main thread writes the weights and
// each worker's rows, wakes the workers, computes its own share, then blocks until they are done.
// So every method stays synchronous, like src/train/step.ts's lossAndGrads, and needs no event-loop
// turn. A batch is split by a fixed rule and every share is computed deterministically, so the same
// inputs give bitwise the same results (exact resume holds).
//
// Over 350 lines for a reason: it is one class, whose three public computations share the private
// dispatch/collect/resize machinery; split up, that machinery would have to be exported. The message
// protocol it shares with grad-worker.ts is in protocol.ts.
import { Worker, MessageChannel, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { tf } from '../tf.js';
import type { Config } from '../config/schema.js';
import type { FlowModel } from '../flows/model.js';
import type { ModelMeta } from '../io/model-io.js';
import type { Rng } from '../rng.js';
import { lossAndGrads as singleLossAndGrads, type Batch, type ObjectiveOptions } from './step.js';
import { UserError } from '../errors.js';
import { CTL, COMMAND, F64, HEADER_BYTES, ioLayout, type IoLayout, type VariableInfo, type WorkerMessage } from './protocol.js';

export type { Batch, ObjectiveOptions };

/**
 * How a batch of n rows is shared among `threads` (main thread first). The main thread's share is
 * weighted by mainWeight (it also runs the optimizer and moves the data, so a bit less than 1 keeps
 * the workers from idling); the rest is split as evenly as possible. A fixed function of its
 * arguments, so a run is reproducible.
 */
export function shares(n: number, threads: number, mainWeight = 1): number[] {
  if (threads === 1) return [n];
  const main = Math.min(n, Math.round((n * mainWeight) / (mainWeight + threads - 1)));
  const rest = n - main;
  const base = Math.floor(rest / (threads - 1));
  const extra = rest % (threads - 1);
  return [main, ...Array.from({ length: threads - 1 }, (_, i) => base + (i < extra ? 1 : 0))];
}

/** Default weight of the main thread's share (see shares). */
export const MAIN_WEIGHT = 1;


interface WorkerHandle {
  worker: Worker;
  port: MessagePort;
  io: SharedArrayBuffer;
  layout: IoLayout;
  ctl: Int32Array;
  f64: Float64Array;
}

/** Longest a call may wait for a worker before it is declared stuck. */
const WORKER_TIMEOUT_MS = 30 * 60_000;

export class ParallelGradients {
  private readonly weights: Float32Array;
  private readonly offsets: number[];
  private readonly trainableFloats: number;
  private disposed = false;
  private request = 0;
  /** Cumulative milliseconds of gradient calls: sharing weights and rows, the main thread's own share, waiting, combining. */
  readonly timing = { share: 0, main: 0, wait: 0, combine: 0, calls: 0 };

  private constructor(
    private readonly handles: WorkerHandle[],
    readonly variables: VariableInfo[],
    weightsBuffer: SharedArrayBuffer,
    private readonly dataShape: number[],
    /** Weight of the main thread's share of a batch (see shares). */
    readonly mainWeight: number,
  ) {
    this.weights = new Float32Array(weightsBuffer);
    this.offsets = [];
    let off = 0;
    for (const v of variables) {
      this.offsets.push(off);
      off += size(v.shape);
    }
    this.trainableFloats = variables.filter((v) => v.trainable).reduce((n, v) => n + size(v.shape), 0);
  }

  /**
   * Starts `threads - 1` workers (the main thread is the remaining one), each on the current tfjs
   * backend with the model rebuilt from the config. threads = 1 starts none (every method then just
   * runs on the main thread).
   */
  static async create(cfg: Config, meta: ModelMeta, threads: number, opts: { mainWeight?: number } = {}): Promise<ParallelGradients> {
    if (!Number.isInteger(threads) || threads < 1) throw new Error(`parallel: threads must be a positive integer, got ${threads}`);
    const mainWeight = opts.mainWeight ?? MAIN_WEIGHT;
    if (!(mainWeight >= 0)) throw new Error(`parallel: mainWeight must be >= 0, got ${mainWeight}`);
    const backend = tf.getBackend();
    if (threads > 1 && backend !== 'wasm' && backend !== 'cpu') {
      throw new UserError(`train.workers ${threads}: worker threads run the wasm or cpu backend, not ${backend}; set train.workers: 1 (${backend} uses its own threads)`);
    }
    const started = await Promise.allSettled(Array.from({ length: threads - 1 }, () => startWorker(cfg, meta, backend)));
    const ok = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    const variables = ok[0]?.variables ?? [];
    if (failed || ok.some((w) => JSON.stringify(w.variables) !== JSON.stringify(variables))) {
      await Promise.all(ok.map((w) => w.worker.terminate()));
      throw failed ? failed.reason : new Error('parallel: workers built different models');
    }
    const totalFloats = variables.reduce((n, v) => n + size(v.shape), 0);
    const weightsBuffer = new SharedArrayBuffer(Math.max(4, totalFloats * 4));
    const rowSize = size(meta.dataShape);
    const gradFloats = variables.filter((v) => v.trainable).reduce((n, v) => n + size(v.shape), 0);
    const handles = ok.map(({ worker }) => {
      const { port1, port2 } = new MessageChannel();
      const layout = ioLayout(Math.max(1, cfg.train.batch_size), rowSize, variables.length, gradFloats);
      const io = new SharedArrayBuffer(layout.bytes);
      worker.postMessage({ type: 'attach', weights: weightsBuffer, io, layout, port: port2 }, [port2]);
      return { worker, port: port1, io, layout, ctl: new Int32Array(io, 0, 16), f64: new Float64Array(io, 0, HEADER_BYTES / 8) };
    });
    return new ParallelGradients(handles, variables, weightsBuffer, meta.dataShape, mainWeight);
  }

  /** Threads computing, the main one included. */
  get threads(): number {
    return this.handles.length + 1;
  }

  /**
   * Loss and gradients of the objective over the whole batch, exactly as step.ts's lossAndGrads
   * returns them (the caller disposes both), computed on all threads.
   */
  lossAndGrads(model: FlowModel, params: tf.Variable[], batch: Batch, o: ObjectiveOptions): { loss: tf.Scalar; grads: tf.Tensor[] } {
    const t0 = performance.now();
    const paramIndex = this.paramIndices(model, params);
    const split = this.split(batch.x.shape[0]!);
    if (split.slice(1).every((r) => r === 0)) return singleLossAndGrads(model, params, batch, o);
    const xs = batch.x.dataSync() as Float32Array;
    const labels = batch.labels ? (batch.labels.dataSync() as Int32Array) : null;
    const request = this.dispatch(model, split, COMMAND.gradients, (h, start, rows) => {
      this.writeRows(h, xs, labels, start, rows);
      new Int32Array(h.io, h.layout.paramIndex, paramIndex.length).set(paramIndex);
      h.ctl[CTL.dims] = o.dims;
      h.ctl[CTL.nBins] = o.nBins;
      h.ctl[CTL.lossIsBpd] = o.lossName === 'bpd' ? 1 : 0;
      h.ctl[CTL.paramCount] = paramIndex.length;
      h.f64[F64.param] = o.classLossWeight;
    });
    const t1 = performance.now();

    // The main thread's own share.
    const n = batch.x.shape[0]!;
    const mainRows = split[0]!;
    let mainLoss = 0;
    let mainGrads: Float32Array[] = [];
    if (mainRows > 0) {
      const own = tf.tidy(() => {
        const { x, labels: l } = this.ownRows(batch, xs, labels, mainRows);
        const r = singleLossAndGrads(model, params, l ? { x, labels: l } : { x }, o);
        return [r.loss, ...r.grads];
      });
      mainLoss = own[0]!.dataSync()[0]!;
      mainGrads = own.slice(1).map((g) => g.dataSync() as Float32Array);
      tf.dispose(own);
    }
    const t2 = performance.now();

    // The weighted mean, accumulated in float64 in a fixed order and rounded once to float32.
    let waited = 0;
    let loss = mainLoss * mainRows;
    const sums = params.map((p, j) => {
      const acc = new Float64Array(p.size);
      const g = mainGrads[j];
      if (g) for (let k = 0; k < acc.length; k++) acc[k] = g[k]! * mainRows;
      return acc;
    });
    this.handles.forEach((h, i) => {
      const rows = split[i + 1]!;
      if (rows === 0) return;
      const w0 = performance.now();
      this.waitFor(h, request);
      waited += performance.now() - w0;
      loss += h.f64[F64.loss]! * rows;
      let off = h.layout.grads;
      params.forEach((p, j) => {
        const g = new Float32Array(h.io, off, p.size);
        const acc = sums[j]!;
        for (let k = 0; k < acc.length; k++) acc[k]! += g[k]! * rows;
        off += p.size * 4;
      });
    });
    const grads = params.map((p, j) => {
      const acc = sums[j]!;
      const out = new Float32Array(acc.length);
      for (let k = 0; k < acc.length; k++) out[k] = acc[k]! / n;
      return tf.tensor(out, p.shape, 'float32');
    });
    const t3 = performance.now();
    Object.assign(this.timing, {
      share: this.timing.share + (t1 - t0),
      main: this.timing.main + (t2 - t1),
      wait: this.timing.wait + waited,
      combine: this.timing.combine + (t3 - t2 - waited),
      calls: this.timing.calls + 1,
    });
    return { loss: tf.scalar(loss / n), grads };
  }

  /** model.logProb(x, labels) ([B] nats) computed on all threads; the caller disposes it. */
  logProb(model: FlowModel, x: tf.Tensor, labels?: tf.Tensor1D): tf.Tensor1D {
    this.paramIndices(model, []);
    const n = x.shape[0]!;
    const split = this.split(n);
    if (split.slice(1).every((r) => r === 0)) return model.logProb(x, labels) as tf.Tensor1D;
    const xs = x.dataSync() as Float32Array;
    const ls = labels ? (labels.dataSync() as Int32Array) : null;
    const request = this.dispatch(model, split, COMMAND.logProb, (h, start, rows) => this.writeRows(h, xs, ls, start, rows));
    const out = new Float32Array(n);
    if (split[0]! > 0) {
      const own = tf.tidy(() => {
        const r = this.ownRows({ x, labels }, xs, ls, split[0]!);
        return model.logProb(r.x, r.labels);
      });
      out.set(own.dataSync() as Float32Array);
      own.dispose();
    }
    this.collect(split, request, (h, start, rows) => out.set(new Float32Array(h.io, h.layout.out, rows), start));
    return tf.tensor1d(out, 'float32');
  }

  /**
   * model.sample(n, temperature, rngs, labels) on all threads: sample i comes from rngs[i] alone, so
   * the result equals the single-thread one; every rngs[i] ends in the state sampling leaves it in.
   */
  sample(model: FlowModel, n: number, temperature: number, rngs: Rng[], labels?: tf.Tensor1D): tf.Tensor {
    this.paramIndices(model, []);
    if (rngs.length !== n) throw new Error(`parallel sample: ${rngs.length} noise streams for ${n} samples`);
    const split = this.split(n);
    if (split.slice(1).every((r) => r === 0)) return model.sample(n, temperature, rngs, labels);
    const ls = labels ? (labels.dataSync() as Int32Array) : null;
    const rowSize = size(this.dataShape);
    const request = this.dispatch(model, split, COMMAND.sample, (h, start, rows) => {
      new Uint32Array(h.io, h.layout.states, rows).set(rngs.slice(start, start + rows).map((r) => r.state));
      if (ls) new Int32Array(h.io, h.layout.labels, rows).set(ls.subarray(start, start + rows));
      h.ctl[CTL.hasLabels] = ls ? 1 : 0;
      h.f64[F64.param] = temperature;
    });
    const out = new Float32Array(n * rowSize);
    const own = split[0]!;
    if (own > 0) {
      const s = tf.tidy(() => model.sample(own, temperature, rngs.slice(0, own), ls ? tf.tensor1d(ls.subarray(0, own), 'int32') : undefined));
      out.set(s.dataSync() as Float32Array);
      s.dispose();
    }
    this.collect(split, request, (h, start, rows) => {
      out.set(new Float32Array(h.io, h.layout.out, rows * rowSize), start * rowSize);
      const states = new Uint32Array(h.io, h.layout.states, rows);
      for (let k = 0; k < rows; k++) rngs[start + k]!.state = states[k]!;
    });
    return tf.tensor(out, [n, ...this.dataShape], 'float32');
  }

  // ---- internals ----

  private split(n: number): number[] {
    if (this.disposed) throw new Error('parallel: already disposed');
    return shares(n, this.threads, this.mainWeight);
  }

  /** Indices of params among the model's variables; checks the model is the one the workers built. */
  private paramIndices(model: FlowModel, params: tf.Variable[]): number[] {
    if (this.disposed) throw new Error('parallel: already disposed');
    if (this.handles.length === 0) return []; // one thread: nothing to match
    const named = model.variables();
    if (named.length !== this.variables.length || named.some(([name, v], i) => name !== this.variables[i]!.name || v.size !== size(this.variables[i]!.shape))) {
      throw new Error('parallel: the model does not match the one the workers built');
    }
    const index = new Map(named.map(([, v], i) => [v, i]));
    return params.map((p) => {
      const i = index.get(p);
      if (i === undefined) throw new Error(`parallel: variable ${p.name} is not one of the model's`);
      return i;
    });
  }

  /** Publishes the weights, lets fill() write each worker's share, then wakes the workers. Returns the request number. */
  private dispatch(model: FlowModel, split: number[], command: number, fill: (h: WorkerHandle, start: number, rows: number) => void): number {
    const rowSize = size(this.dataShape);
    this.handles.forEach((h, i) => {
      if (split[i + 1]! > 0) this.ensureCapacity(h, split[i + 1]!, rowSize);
    });
    model.variables().forEach(([, v], i) => this.weights.set(v.dataSync() as Float32Array, this.offsets[i]));
    const request = ++this.request;
    let start = split[0]!;
    this.handles.forEach((h, i) => {
      const rows = split[i + 1]!;
      if (rows > 0) {
        fill(h, start, rows);
        h.ctl[CTL.rows] = rows;
        h.ctl[CTL.status] = 0;
        h.ctl[CTL.command] = command;
        Atomics.store(h.ctl, CTL.request, request);
        Atomics.notify(h.ctl, CTL.request);
      }
      start += rows;
    });
    return request;
  }

  /** Waits for every worker with a share and hands its rows to read(). */
  private collect(split: number[], request: number, read: (h: WorkerHandle, start: number, rows: number) => void): void {
    let start = split[0]!;
    this.handles.forEach((h, i) => {
      const rows = split[i + 1]!;
      if (rows > 0) {
        this.waitFor(h, request);
        read(h, start, rows);
      }
      start += rows;
    });
  }

  private writeRows(h: WorkerHandle, xs: Float32Array, labels: Int32Array | null, start: number, rows: number): void {
    const rowSize = h.layout.rowSize;
    new Float32Array(h.io, h.layout.x, rows * rowSize).set(xs.subarray(start * rowSize, (start + rows) * rowSize));
    if (labels) new Int32Array(h.io, h.layout.labels, rows).set(labels.subarray(start, start + rows));
    h.ctl[CTL.hasLabels] = labels ? 1 : 0;
  }

  /** The main thread's rows as tensors (call inside tidy). */
  private ownRows(batch: Batch, xs: Float32Array, labels: Int32Array | null, rows: number): Batch {
    const rowSize = xs.length / batch.x.shape[0]!;
    const x = tf.tensor(xs.subarray(0, rows * rowSize), [rows, ...batch.x.shape.slice(1)]);
    return labels ? { x, labels: tf.tensor1d(labels.subarray(0, rows), 'int32') as tf.Tensor1D } : { x };
  }

  /** Blocks until worker h answered `request`; rethrows its error. */
  private waitFor(h: WorkerHandle, request: number): void {
    const deadline = Date.now() + WORKER_TIMEOUT_MS;
    while (Atomics.load(h.ctl, CTL.response) !== request) {
      if (Date.now() > deadline) throw new Error('parallel: a worker did not answer within 30 minutes');
      Atomics.wait(h.ctl, CTL.response, Atomics.load(h.ctl, CTL.response), 1000);
    }
    if (h.ctl[CTL.status] !== 0) {
      const msg = receiveMessageOnPort(h.port)?.message as { message?: string } | undefined;
      throw new Error(`parallel: worker failed: ${msg?.message ?? 'unknown error'}`);
    }
  }

  /** Gives worker h a larger I/O buffer when a share has more rows than it holds. */
  private ensureCapacity(h: WorkerHandle, rows: number, rowSize: number): void {
    if (rows <= h.layout.capacityRows && rowSize === h.layout.rowSize) return;
    const layout = ioLayout(rows, rowSize, this.variables.length, this.trainableFloats);
    const io = new SharedArrayBuffer(layout.bytes);
    const ctl = new Int32Array(io, 0, 16);
    // The new buffer continues the request numbering: the worker moves to it after answering this one.
    const request = ++this.request;
    ctl[CTL.request] = request;
    ctl[CTL.response] = request;
    h.port.postMessage({ io, layout });
    h.ctl[CTL.command] = COMMAND.resize;
    h.ctl[CTL.status] = 0;
    Atomics.store(h.ctl, CTL.request, request);
    Atomics.notify(h.ctl, CTL.request);
    this.waitFor(h, request);
    h.io = io;
    h.layout = layout;
    h.ctl = ctl;
    h.f64 = new Float64Array(io, 0, HEADER_BYTES / 8);
  }

  /** Stops and terminates every worker. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    for (const h of this.handles) {
      h.ctl[CTL.command] = COMMAND.stop;
      Atomics.add(h.ctl, CTL.request, 1);
      Atomics.notify(h.ctl, CTL.request);
    }
    await Promise.all(this.handles.map((h) => h.worker.terminate()));
    for (const h of this.handles) h.port.close();
  }
}

function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function startWorker(cfg: Config, meta: ModelMeta, backend: string): Promise<{ worker: Worker; variables: VariableInfo[] }> {
  const worker = new Worker(new URL('./grad-worker.js', import.meta.url), { workerData: { config: cfg, meta, backend } });
  return new Promise((resolve, reject) => {
    const fail = (e: Error) => {
      void worker.terminate();
      reject(e);
    };
    worker.once('message', (m: WorkerMessage) => {
      if (m.type === 'ready') resolve({ worker, variables: m.variables });
      else fail(new Error(`parallel: worker failed to start: ${m.message}`));
    });
    worker.once('error', (e) => fail(new Error(`parallel: worker failed to start: ${e.message}`)));
    worker.once('exit', (code) => fail(new Error(`parallel: worker exited during start-up (code ${code})`)));
  });
}
