// The message protocol between src/train/parallel.ts (the main thread's replica pool) and
// src/train/grad-worker.ts (one replica): the shared-memory control words, the command numbers, the
// layout of a worker's I/O buffer and the start-up messages. Both sides import only this, so a worker
// never loads the pool (or what the pool's users load, like the trainer or sharp).

/** One variable of the model as the worker reports it (model.variables() order). */
export interface VariableInfo {
  name: string;
  shape: number[];
  trainable: boolean;
}

/** Int32 slots at the start of each worker's I/O buffer. */
export const CTL = {
  /** Incremented by the main thread for each request. */
  request: 0,
  /** Set to the request number by the worker when it is done. */
  response: 1,
  command: 2,
  rows: 3,
  /** 0 ok, 1 the worker failed (its message is on the port). */
  status: 4,
  dims: 5,
  nBins: 6,
  /** 1 for 'bpd', 0 for 'nll'. */
  lossIsBpd: 7,
  /** Number of requested gradients (their variable indices follow the header). */
  paramCount: 8,
  /** 1 when the rows come with labels. */
  hasLabels: 9,
} as const;
export const COMMAND = { gradients: 1, stop: 2, resize: 3, logProb: 4, sample: 5 } as const;
/** Header: 16 int32 slots, then float64 slots. */
export const HEADER_BYTES = 16 * 4 + 4 * 8;
export const F64 = {
  /** In: the class-loss weight (gradients) or the temperature (sample). */
  param: 8,
  /** Out: the share's loss. */
  loss: 9,
} as const;

/** Byte offsets of the regions of a worker's I/O buffer. */
export interface IoLayout {
  capacityRows: number;
  rowSize: number;
  paramIndex: number;
  /** Input rows, float32 [capacityRows, rowSize]. */
  x: number;
  /** Labels, int32 [capacityRows]. */
  labels: number;
  /** Per-row noise-stream states (sample), uint32 [capacityRows]. */
  states: number;
  /** Per-row outputs (log-densities or samples), float32 [capacityRows, rowSize]. */
  out: number;
  /** Gradients of the requested variables, float32, concatenated. */
  grads: number;
  bytes: number;
}

export function ioLayout(capacityRows: number, rowSize: number, variableCount: number, gradFloats: number): IoLayout {
  const align = (n: number) => Math.ceil(n / 16) * 16;
  const paramIndex = HEADER_BYTES;
  const x = align(paramIndex + variableCount * 4);
  const labels = align(x + capacityRows * rowSize * 4);
  const states = align(labels + capacityRows * 4);
  const out = align(states + capacityRows * 4);
  const grads = align(out + capacityRows * rowSize * 4);
  return { capacityRows, rowSize, paramIndex, x, labels, states, out, grads, bytes: align(grads + gradFloats * 4) };
}

/** Messages from a worker during start-up. */
export type WorkerMessage = { type: 'ready'; variables: VariableInfo[] } | { type: 'error'; message: string };
