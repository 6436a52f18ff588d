// A byte-wise rANS entropy coder with 24-bit probabilities, in plain float64 Numbers (exact integers
// below 2^53, no BigInt): the back end of `flow compress`. rANS is last-in first-out; RansEncoder hides
// that by buffering (start, freq) pairs and coding them in reverse at finish(), so RansDecoder reads
// them back in put order.
//
// Stream format: 7 bytes, the encoder's final state x (< 2^52) big-endian, then the renormalisation
// bytes in the order the decoder reads them. The state lives in [L, 256 L) with L = 2^44, so encoding
// x' = floor(x / f) M + x mod f + start stays below 2^52. The encoder starts at x = L; the decoder's
// finish() checks that every byte was read and that the state came back to L, so a truncated, padded
// or altered stream throws CorruptStreamError (decoding is the exact inverse of encoding, so a stream
// that passes finish() is byte for byte what the encoder writes for the symbols decoded).

/** Probability precision: every symbol's frequency is out of PROB_SCALE = 2^PROB_BITS. */
export const PROB_BITS = 24;
export const PROB_SCALE = 2 ** PROB_BITS;
/** The state's lower bound; the state lives in [RANS_L, 256 RANS_L). */
export const RANS_L = 2 ** 44;
/** Bytes of the flushed final state at the head of a stream. */
export const STATE_BYTES = 7;

const M = PROB_SCALE;
/** Encoding symbol f renormalises while x >= f * X_MAX_PER_FREQ = f * (L / M) * 256. */
const X_MAX_PER_FREQ = (RANS_L / M) * 256;
/** The most renormalisation bytes one symbol can emit (f = 1: from < 2^52 down to < 2^28). */
const MAX_BYTES_PER_SYMBOL = 3;

/** The stream is not one the encoder can have written (truncated, padded or altered). */
export class CorruptStreamError extends Error {
  constructor(detail: string) {
    super(`rANS stream is corrupt: ${detail}`);
    this.name = 'CorruptStreamError';
  }
}

function checkSymbol(start: number, freq: number): void {
  if (!Number.isInteger(start)) throw new RangeError(`rANS symbol start ${start} is not an integer`);
  if (!Number.isInteger(freq)) throw new RangeError(`rANS symbol freq ${freq} is not an integer`);
  if (freq < 1) throw new RangeError(`rANS symbol freq ${freq} is below 1`);
  if (start < 0) throw new RangeError(`rANS symbol start ${start} is negative`);
  if (start + freq > M) throw new RangeError(`rANS symbol start + freq = ${start} + ${freq} exceeds 2^${PROB_BITS}`);
}

export class RansEncoder {
  private starts = new Uint32Array(4096);
  private freqs = new Uint32Array(4096);
  private n = 0;

  /** Symbols put since the last finish(). */
  get length(): number {
    return this.n;
  }

  /** Queues the symbol occupying [start, start + freq) of [0, 2^24). */
  put(start: number, freq: number): void {
    if (!(Number.isInteger(start) && Number.isInteger(freq) && freq >= 1 && start >= 0 && start + freq <= M)) checkSymbol(start, freq);
    if (this.n === this.starts.length) {
      const starts = new Uint32Array(this.n * 2);
      const freqs = new Uint32Array(this.n * 2);
      starts.set(this.starts);
      freqs.set(this.freqs);
      this.starts = starts;
      this.freqs = freqs;
    }
    this.starts[this.n] = start;
    this.freqs[this.n++] = freq;
  }

  /** Codes every queued symbol and returns the stream; the encoder is empty again afterwards. */
  finish(): Uint8Array {
    const n = this.n;
    const starts = this.starts;
    const freqs = this.freqs;
    const out = new Uint8Array(n * MAX_BYTES_PER_SYMBOL + STATE_BYTES);
    // Renormalisation bytes are written backwards from the end, so the decoder reads them forwards.
    let pos = out.length;
    let x = RANS_L;
    for (let i = n - 1; i >= 0; i--) {
      const f = freqs[i]!;
      const xMax = f * X_MAX_PER_FREQ;
      while (x >= xMax) {
        out[--pos] = x % 256;
        x = Math.floor(x / 256);
      }
      let q = Math.floor(x / f);
      if (q * f > x) q--;
      else if ((q + 1) * f <= x) q++;
      x = q * M + (x - q * f) + starts[i]!;
    }
    for (let b = 0; b < STATE_BYTES; b++) {
      out[--pos] = x % 256;
      x = Math.floor(x / 256);
    }
    this.n = 0;
    return out.slice(pos);
  }
}

export class RansDecoder {
  private readonly bytes: Uint8Array;
  private pos: number;
  private x: number;

  constructor(bytes: Uint8Array) {
    if (bytes.length < STATE_BYTES) throw new CorruptStreamError(`${bytes.length} bytes, fewer than the ${STATE_BYTES}-byte state`);
    let x = 0;
    for (let b = 0; b < STATE_BYTES; b++) x = x * 256 + bytes[b]!;
    if (x < RANS_L || x >= 256 * RANS_L) throw new CorruptStreamError(`initial state ${x} outside [2^44, 2^52)`);
    this.bytes = bytes;
    this.pos = STATE_BYTES;
    this.x = x;
  }

  /** The next symbol's slot in [0, 2^24): the symbol to advance past is the one whose [start, start + freq) holds it. */
  peek(): number {
    return this.x % M;
  }

  /** Consumes the symbol [start, start + freq), which must hold peek(). */
  advance(start: number, freq: number): void {
    const x = this.x;
    const slot = x % M;
    if (!(slot >= start && slot < start + freq && start >= 0 && Number.isInteger(start) && Number.isInteger(freq) && start + freq <= M)) {
      checkSymbol(start, freq);
      throw new RangeError(`rANS advance(${start}, ${freq}) does not hold the peeked slot ${slot}`);
    }
    let y = freq * Math.floor(x / M) + slot - start;
    if (y < RANS_L) {
      const bytes = this.bytes;
      let pos = this.pos;
      while (y < RANS_L) {
        if (pos >= bytes.length) throw new CorruptStreamError(`read past the end of its ${bytes.length} bytes`);
        y = y * 256 + bytes[pos++]!;
      }
      this.pos = pos;
    }
    this.x = y;
  }

  /** Checks the stream ended exactly here: every byte read and the state back at the encoder's initial one. */
  finish(): void {
    if (this.pos !== this.bytes.length) throw new CorruptStreamError(`${this.bytes.length - this.pos} of ${this.bytes.length} bytes left unread`);
    if (this.x !== RANS_L) throw new CorruptStreamError(`final state ${this.x} is not the initial state 2^44`);
  }
}

function checkBits(bits: number): void {
  if (!(Number.isInteger(bits) && bits >= 0 && bits <= 16)) throw new RangeError(`uniform bits ${bits} outside 0..16`);
}

/** Codes value in [0, 2^bits) uniformly (bits <= 16). */
export function putUniform(enc: RansEncoder, value: number, bits: number): void {
  checkBits(bits);
  if (!(Number.isInteger(value) && value >= 0 && value < 2 ** bits)) throw new RangeError(`uniform value ${value} outside [0, 2^${bits})`);
  const shift = PROB_BITS - bits;
  enc.put(value * 2 ** shift, 2 ** shift);
}

export function getUniform(dec: RansDecoder, bits: number): number {
  checkBits(bits);
  const shift = PROB_BITS - bits;
  const value = Math.floor(dec.peek() / 2 ** shift);
  dec.advance(value * 2 ** shift, 2 ** shift);
  return value;
}

/** Codes a uint32 (an int32 passes as value >>> 0) as two 16-bit halves, high first. */
export function putBits32(enc: RansEncoder, value: number): void {
  if (!(Number.isInteger(value) && value >= 0 && value < 2 ** 32)) throw new RangeError(`putBits32 value ${value} is not a uint32`);
  putUniform(enc, value >>> 16, 16);
  putUniform(enc, value & 0xffff, 16);
}

/** The uint32 putBits32 wrote (`| 0` makes it the int32 again). */
export function getBits32(dec: RansDecoder): number {
  const high = getUniform(dec, 16);
  return high * 65536 + getUniform(dec, 16);
}
