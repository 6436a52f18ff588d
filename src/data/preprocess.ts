// Pixels <-> model inputs (Glow's preprocessing), and the seeded, resumable batch order.
//   model input  x̃ = floor(x / 2^(8 - n_bits)) / bins - 0.5 + U(0, 1/bins),  bins = 2^n_bits
import { UserError } from '../errors.js';
import { Rng } from '../rng.js';
import type { Split } from './common.js';

function checkBits(nBits: number): void {
  if (!Number.isInteger(nBits) || nBits < 1 || nBits > 8) throw new RangeError(`n_bits must be an integer in 1..8, got ${nBits}`);
}

export function nBinsOf(nBits: number): number {
  return 2 ** nBits;
}

/** floor(x / 2^(8 - nBits)): the top nBits of every byte. */
export function reduceBits(u8: Uint8Array, nBits: number): Uint8Array {
  checkBits(nBits);
  const shift = 8 - nBits;
  const out = new Uint8Array(u8.length);
  for (let i = 0; i < u8.length; i++) out[i] = u8[i]! >> shift;
  return out;
}

// The noise is scaled just below one bin so that x̃, once rounded to float32, can never land on
// the next bin's lower edge (that would make toPixels off by one). The 2^-16 bin shortfall is
// far below anything a likelihood can see; the float32 half-ulp near ±0.5 is 2^-26.
const NOISE_SPAN = 1 - 2 ** -16;

const baseTables = new Map<number, Float64Array>();
/** Bin lower edge in model space for every byte value, per nBits. */
function baseTable(nBits: number): Float64Array {
  let t = baseTables.get(nBits);
  if (!t) {
    const shift = 8 - nBits;
    const bins = nBinsOf(nBits);
    t = new Float64Array(256);
    for (let v = 0; v < 256; v++) t[v] = (v >> shift) / bins - 0.5;
    baseTables.set(nBits, t);
  }
  return t;
}

/**
 * Bytes -> model input in [-0.5, 0.5): reduced value / bins - 0.5, plus U(0, 1/bins) noise from
 * rng (the run's own stream, so it resumes exactly), or the bin centre (+0.5/bins) when rng is null.
 */
export function toModelInput(u8: Uint8Array, nBits: number, rng: Rng | null): Float32Array {
  checkBits(nBits);
  const base = baseTable(nBits);
  const bins = nBinsOf(nBits);
  const out = new Float32Array(u8.length);
  if (rng === null) {
    const centre = 0.5 / bins;
    for (let i = 0; i < u8.length; i++) out[i] = base[u8[i]!]! + centre;
  } else {
    const scale = NOISE_SPAN / bins;
    for (let i = 0; i < u8.length; i++) out[i] = base[u8[i]!]! + rng.next() * scale;
  }
  return out;
}

const expandTables = new Map<number, Uint8Array>();
/**
 * Reduced value k -> 8-bit pixel spread over the full 0..255 range (k * 255 / (bins - 1)), so the
 * top bin is white; its top nBits are k again, so reduceBits(toPixels(x)) recovers the bins.
 */
function expandTable(nBits: number): Uint8Array {
  let t = expandTables.get(nBits);
  if (!t) {
    const bins = nBinsOf(nBits);
    t = new Uint8Array(bins);
    for (let k = 0; k < bins; k++) t[k] = bins === 256 ? k : Math.round((k * 255) / (bins - 1));
    expandTables.set(nBits, t);
  }
  return t;
}

/** Model space -> bytes for saving samples: the bin of each value (clipped), expanded to 8 bits. */
export function toPixels(xModel: Float32Array, nBits: number): Uint8Array {
  checkBits(nBits);
  const bins = nBinsOf(nBits);
  const expand = expandTable(nBits);
  const out = new Uint8Array(xModel.length);
  for (let i = 0; i < xModel.length; i++) {
    let k = Math.floor((xModel[i]! + 0.5) * bins);
    if (!(k >= 0)) k = 0; // also catches NaN
    else if (k > bins - 1) k = bins - 1;
    out[i] = expand[k]!;
  }
  return out;
}

/** Copies the listed rows (and their labels) of a split. */
export function gather(split: Split, indices: ArrayLike<number>): { x: Uint8Array | Float32Array; labels?: Int32Array } {
  const dims = split.n > 0 ? split.x.length / split.n : 0;
  const x = split.x instanceof Uint8Array ? new Uint8Array(indices.length * dims) : new Float32Array(indices.length * dims);
  const labels = split.labels ? new Int32Array(indices.length) : undefined;
  for (let j = 0; j < indices.length; j++) {
    const i = indices[j]!;
    if (!(i >= 0 && i < split.n && Number.isInteger(i))) throw new RangeError(`gather: index ${i} outside 0..${split.n - 1}`);
    x.set(split.x.subarray(i * dims, (i + 1) * dims), j * dims);
    if (labels) labels[j] = split.labels![i]!;
  }
  return labels ? { x, labels } : { x };
}

/** Everything needed to continue the exact same data order after a restart. */
export interface BatchIteratorState {
  epoch: number;
  /** Position in the current epoch's permutation. */
  cursor: number;
  /** Rng state just before the current epoch's permutation was drawn. */
  rngState: number;
  /** Split size the state belongs to (a guard against resuming on different data). */
  n?: number;
}

const ORDER_SALT = 0xba7c4;

/**
 * Endless batches of exactly batchSize indices into a split of n rows. Each epoch is a fresh
 * seeded permutation, consumed whole: a batch that straddles an epoch end takes the rest of the
 * old one and continues into the next, so every index appears exactly once per epoch.
 */
export class BatchIterator {
  readonly n: number;
  readonly batchSize: number;
  private readonly rng: Rng;
  private order: Int32Array = new Int32Array(0);
  private epochRngState = 0;
  private epochIndex = 0;
  private cursor = 0;

  constructor(n: number, batchSize: number, seed: number) {
    if (!Number.isInteger(n) || n < 1) throw new UserError(`data: the training split has ${n} examples, expected at least 1`);
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new UserError(`train.batch_size is ${batchSize}, expected a positive integer`);
    this.n = n;
    this.batchSize = batchSize;
    this.rng = new Rng(seed).fork(ORDER_SALT);
    this.shuffle();
  }

  get epoch(): number {
    return this.epochIndex;
  }

  private shuffle(): void {
    this.epochRngState = this.rng.state;
    this.order = this.rng.permutation(this.n);
  }

  next(): { indices: Int32Array; epoch: number } {
    const indices = new Int32Array(this.batchSize);
    let filled = 0;
    while (filled < this.batchSize) {
      if (this.cursor === this.n) {
        this.epochIndex++;
        this.cursor = 0;
        this.shuffle();
      }
      const take = Math.min(this.batchSize - filled, this.n - this.cursor);
      indices.set(this.order.subarray(this.cursor, this.cursor + take), filled);
      filled += take;
      this.cursor += take;
    }
    return { indices, epoch: this.epochIndex };
  }

  getState(): BatchIteratorState {
    return { epoch: this.epochIndex, cursor: this.cursor, rngState: this.epochRngState, n: this.n };
  }

  setState(state: BatchIteratorState): void {
    const s = state as Partial<BatchIteratorState> | null;
    const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;
    if (!s || !isCount(s.epoch) || !isCount(s.cursor) || !isCount(s.rngState) || s.rngState > 0xffffffff) {
      throw new UserError(`checkpoint: data iterator state ${JSON.stringify(state)} is malformed, expected { epoch, cursor, rngState } of non-negative integers`);
    }
    if (s.n !== undefined && s.n !== this.n) {
      throw new UserError(`checkpoint: data iterator state is for ${s.n} training examples but the data now has ${this.n}, expected the same data (source, path, limit, test_fraction, seed)`);
    }
    if (s.cursor > this.n) throw new UserError(`checkpoint: data iterator cursor ${s.cursor} is past the ${this.n} training examples`);
    this.rng.state = s.rngState;
    this.shuffle();
    this.epochIndex = s.epoch;
    this.cursor = s.cursor;
  }
}
