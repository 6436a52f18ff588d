// A worker for src/train/parallel.ts: its own tfjs backend and a copy of the model. After start-up it
// blocks on its shared control words; per request it loads the weights the main thread wrote,
// computes its rows (loss and gradients with step.ts's lossAndGrads, log-densities, or samples),
// writes the results back and wakes the main thread. It takes no event-loop turns while serving, so
// all traffic is shared memory (plus a MessagePort read synchronously for buffer swaps and errors).
import { parentPort, workerData, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { tf } from '../tf.js';
import type { Config } from '../config/schema.js';
import type { ModelMeta } from '../io/model-io.js';
import { selectBackend, type BackendChoice } from '../backend/select.js';
import { buildModel, type FlowModel } from '../flows/model.js';
import { Rng } from '../rng.js';
import { lossAndGrads } from './step.js';
import { CTL, COMMAND, F64, HEADER_BYTES, type IoLayout, type VariableInfo, type WorkerMessage } from './protocol.js';

interface Start {
  config: Config;
  meta: ModelMeta;
  backend: string;
}

interface Attach {
  type: 'attach';
  weights: SharedArrayBuffer;
  io: SharedArrayBuffer;
  layout: IoLayout;
  port: MessagePort;
}

/** One I/O buffer and its views. */
class Io {
  readonly ctl: Int32Array;
  readonly f64: Float64Array;
  constructor(
    readonly buffer: SharedArrayBuffer,
    readonly layout: IoLayout,
  ) {
    this.ctl = new Int32Array(buffer, 0, 16);
    this.f64 = new Float64Array(buffer, 0, HEADER_BYTES / 8);
  }
  floats(offset: number, n: number): Float32Array {
    return new Float32Array(this.buffer, offset, n);
  }
}

const post = (m: WorkerMessage) => parentPort!.postMessage(m);

async function main(): Promise<void> {
  const { config, meta, backend } = workerData as Start;
  await selectBackend(backend as BackendChoice);
  const model = buildModel(config.model, meta.dataShape, { seed: config.seed, numClasses: meta.numClasses, nBits: meta.nBits });
  const variables: VariableInfo[] = model.variables().map(([name, v]) => ({ name, shape: v.shape.slice(), trainable: v.trainable }));
  parentPort!.once('message', (m: Attach) => serve(model, m));
  post({ type: 'ready', variables });
}

function serve(model: FlowModel, attach: Attach): void {
  const vars = model.variables().map(([, v]) => v);
  const weights = new Float32Array(attach.weights);
  const port = attach.port;
  let io = new Io(attach.io, attach.layout);
  // Requests are numbered from 1 on a fresh buffer. Never read the starting number from the buffer:
  // the main thread may already have posted request 1 before this message was handled.
  let seen = 0;
  for (;;) {
    Atomics.wait(io.ctl, CTL.request, seen);
    const request = Atomics.load(io.ctl, CTL.request);
    if (request === seen) continue;
    seen = request;
    const command = io.ctl[CTL.command];
    if (command === COMMAND.stop) return;
    let next: Io | null = null;
    try {
      if (command === COMMAND.resize) {
        const m = receiveMessageOnPort(port)?.message as { io: SharedArrayBuffer; layout: IoLayout } | undefined;
        if (!m) throw new Error('resize requested but no buffer was sent');
        next = new Io(m.io, m.layout);
      } else {
        loadWeights(vars, weights);
        if (command === COMMAND.gradients) gradients(model, vars, io);
        else if (command === COMMAND.logProb) logProb(model, io);
        else if (command === COMMAND.sample) sample(model, io);
        else throw new Error(`unknown command ${command}`);
      }
      io.ctl[CTL.status] = 0;
    } catch (e) {
      port.postMessage({ message: e instanceof Error ? e.message : String(e) });
      io.ctl[CTL.status] = 1;
    }
    Atomics.store(io.ctl, CTL.response, request);
    Atomics.notify(io.ctl, CTL.response);
    if (next) {
      // The main thread started the new buffer at this request's number (and may be past it already).
      io = next;
      seen = request;
    }
  }
}

function loadWeights(vars: tf.Variable[], weights: Float32Array): void {
  // Copies (slice): the shared buffer is rewritten by the next request.
  tf.tidy(() => {
    let off = 0;
    for (const v of vars) {
      v.assign(tf.tensor(weights.slice(off, off + v.size), v.shape, 'float32'));
      off += v.size;
    }
  });
}

/** The request's rows (and labels) as tensors; the caller disposes them. */
function rowsOf(model: FlowModel, io: Io): { x: tf.Tensor; labels?: tf.Tensor1D } {
  const rows = io.ctl[CTL.rows]!;
  const x = tf.tensor(io.floats(io.layout.x, rows * io.layout.rowSize).slice(), [rows, ...model.inputShape], 'float32');
  if (io.ctl[CTL.hasLabels] !== 1) return { x };
  return { x, labels: tf.tensor1d(new Int32Array(io.buffer, io.layout.labels, rows).slice(), 'int32') as tf.Tensor1D };
}

function gradients(model: FlowModel, vars: tf.Variable[], io: Io): void {
  const params = Array.from(new Int32Array(io.buffer, io.layout.paramIndex, io.ctl[CTL.paramCount]!), (i) => vars[i]!);
  const o = {
    dims: io.ctl[CTL.dims]!,
    nBins: io.ctl[CTL.nBins]!,
    lossName: io.ctl[CTL.lossIsBpd] === 1 ? ('bpd' as const) : ('nll' as const),
    classLossWeight: io.f64[F64.param]!,
  };
  const batch = rowsOf(model, io);
  try {
    const { loss, grads } = lossAndGrads(model, params, batch, o);
    io.f64[F64.loss] = loss.dataSync()[0]!;
    let off = io.layout.grads;
    for (const g of grads) {
      io.floats(off, g.size).set(g.dataSync() as Float32Array);
      off += g.size * 4;
    }
    tf.dispose([loss, ...grads]);
  } finally {
    tf.dispose([batch.x, batch.labels ?? []].flat());
  }
}

function logProb(model: FlowModel, io: Io): void {
  const batch = rowsOf(model, io);
  try {
    const logp = model.logProb(batch.x, batch.labels);
    io.floats(io.layout.out, logp.size).set(logp.dataSync() as Float32Array);
    logp.dispose();
  } finally {
    tf.dispose([batch.x, batch.labels ?? []].flat());
  }
}

function sample(model: FlowModel, io: Io): void {
  const rows = io.ctl[CTL.rows]!;
  const states = new Uint32Array(io.buffer, io.layout.states, rows);
  const rngs = Array.from(states, (s) => {
    const r = new Rng(0);
    r.state = s;
    return r;
  });
  const labels = io.ctl[CTL.hasLabels] === 1 ? (tf.tensor1d(new Int32Array(io.buffer, io.layout.labels, rows).slice(), 'int32') as tf.Tensor1D) : undefined;
  try {
    const x = model.sample(rows, io.f64[F64.param]!, rngs, labels);
    io.floats(io.layout.out, x.size).set(x.dataSync() as Float32Array);
    x.dispose();
    rngs.forEach((r, k) => (states[k] = r.state));
  } finally {
    labels?.dispose();
  }
}

main().catch((e: unknown) => post({ type: 'error', message: e instanceof Error ? e.message : String(e) }));
