// The model side of `flow compress`: a ChunkCodec over an integer flow. Encoding runs the flow forward on
// a chunk and codes every latent under its prior's mixture, in the order a decoder meets them (top latent
// first, then each split given the half above it); decoding reads each latent as soon as its mixture is
// known and inverts the flow. Every chunk runs at chunkSize rows, padding short ones, so the decoder
// repeats the encoder's arithmetic exactly; the fingerprint names that arithmetic.
import { createHash } from 'node:crypto';
import { tf, type Tensor } from '../tf.js';
import type { LoadedModel } from '../io/model-io.js';
import type { IntegerCoding } from '../flows/model.js';
import type { Mixture } from '../flows/discrete.js';
import { toModelInput, toPixels } from '../data/preprocess.js';
import { UserError } from '../errors.js';
import type { ChunkCodec, EncodedChunk } from './codec-types.js';
import { RansDecoder, RansEncoder } from './rans.js';
import { type MixtureParams, decodeMixtureSymbols, encodeMixtureSymbols } from './mixture-code.js';

/** The mixture of the first `rows` examples as the coder takes it: means and scales in integer units (grid values * bins). */
async function mixtureParams(m: Mixture, rows: number, bins: number): Promise<MixtureParams> {
  const k = m.logits.shape[m.logits.rank - 1]!;
  const per = m.logits.size / m.logits.shape[0]!;
  const count = rows * per;
  const [logits, means, logScales] = (await Promise.all([m.logits.data(), m.means.data(), m.logScales.data()])) as Float32Array[];
  const shift = Math.fround(Math.log(bins));
  const scaledMeans = new Float32Array(count);
  const scaledLogScales = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    // Exact (bins is a power of two) and the same float32 rounding on both sides.
    scaledMeans[i] = means![i]! * bins;
    scaledLogScales[i] = Math.fround(logScales![i]! + shift);
  }
  return { components: k, logits: logits!.subarray(0, count), means: scaledMeans, logScales: scaledLogScales };
}

/** A fixed pseudo-random chunk (an LCG, no dependence on any RNG the tool evolves) for the fingerprint. */
function probePixels(size: number): Uint8Array {
  const out = new Uint8Array(size);
  let s = 0x2545f491;
  for (let i = 0; i < size; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    // Mostly dark with bright strokes, like the images the model sees, so the probe reaches typical values.
    out[i] = (s >>> 24) < 160 ? 0 : (s >>> 16) & 0xff;
  }
  return out;
}

class IntegerFlowCodec implements ChunkCodec {
  private readonly dims: number;
  constructor(
    private readonly coding: IntegerCoding,
    readonly imageShape: [number, number, number],
    readonly chunkSize: number,
  ) {
    this.dims = imageShape[0] * imageShape[1] * imageShape[2];
  }

  private checkCount(n: number): void {
    if (!Number.isInteger(n) || n < 1 || n > this.chunkSize) throw new RangeError(`a chunk holds 1..${this.chunkSize} images, got ${n}`);
  }

  /** The model input for n images, padded with black rows to the chunk size. */
  private input(pixels: Uint8Array, n: number): Tensor {
    if (pixels.length !== n * this.dims) throw new RangeError(`${n} images of [${this.imageShape}] are ${n * this.dims} bytes, got ${pixels.length}`);
    const padded = new Uint8Array(this.chunkSize * this.dims);
    padded.set(pixels);
    return tf.tensor(toModelInput(padded, 8, null), [this.chunkSize, ...this.imageShape]);
  }

  /** Encodes the first n rows' latents; also returns the raw latents and mixtures when `digest` is given (the fingerprint). */
  private async encode(pixels: Uint8Array, n: number, digest?: ReturnType<typeof createHash>): Promise<EncodedChunk> {
    this.checkCount(n);
    const x = this.input(pixels, n);
    const segments = this.coding.latentsForCoding(x);
    x.dispose();
    try {
      const enc = new RansEncoder();
      let idealBits = 0;
      for (const { latent, mixture } of segments) {
        const per = latent.size / latent.shape[0]!;
        const values = (await latent.data()) as Float32Array;
        const symbols = new Int32Array(n * per);
        for (let i = 0; i < symbols.length; i++) symbols[i] = Math.round(values[i]! * this.coding.bins);
        const params = await mixtureParams(mixture, n, this.coding.bins);
        if (digest) for (const a of [symbols, params.logits, params.means, params.logScales]) digest.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
        idealBits += encodeMixtureSymbols(enc, symbols, params);
      }
      return { bytes: enc.finish(), idealBits };
    } finally {
      for (const s of segments) tf.dispose([s.latent, s.mixture.logits, s.mixture.means, s.mixture.logScales]);
    }
  }

  encodeChunk(pixels: Uint8Array, n: number): Promise<EncodedChunk> {
    return this.encode(pixels, n);
  }

  async decodeChunk(bytes: Uint8Array, n: number): Promise<Uint8Array> {
    this.checkCount(n);
    const dec = new RansDecoder(bytes);
    const bins = this.coding.bins;
    const x = await this.coding.decodeFromCoding(this.chunkSize, async (mixture, shape) => {
      const per = shape.reduce((a, b) => a * b, 1);
      const symbols = decodeMixtureSymbols(dec, n * per, await mixtureParams(mixture, n, bins));
      // Rows past n are the encoder's padding: any values do, each row's arithmetic is its own.
      const values = new Float32Array(this.chunkSize * per);
      for (let i = 0; i < symbols.length; i++) values[i] = symbols[i]! / bins;
      return tf.tensor(values, [this.chunkSize, ...shape]);
    });
    try {
      dec.finish();
      const data = (await x.data()) as Float32Array;
      return toPixels(data.subarray(0, n * this.dims), 8);
    } finally {
      x.dispose();
    }
  }

  async fingerprint(): Promise<string> {
    const digest = createHash('sha256');
    digest.update(`${this.imageShape.join('x')}/${this.chunkSize}`);
    const { bytes } = await this.encode(probePixels(this.chunkSize * this.dims), this.chunkSize, digest);
    digest.update(bytes);
    return digest.digest('hex');
  }

  dispose(): void {}
}

/**
 * The codec of a loaded checkpoint: its model must be an integer flow over 8-bit images (anything else
 * has no exact code for the bytes). chunkSize rows per chunk.
 */
export async function createChunkCodec(loaded: LoadedModel, chunkSize: number): Promise<ChunkCodec> {
  const { model, meta, config } = loaded;
  if (!model.integer) {
    throw new UserError(`model.family is ${config.model.family}: flow compress needs an integer flow (model.family: idf), whose likelihood is an exact code length`);
  }
  if (meta.nBits !== 8) throw new UserError(`the model was trained on ${meta.nBits}-bit data (data.n_bits): it cannot code 8-bit images losslessly; expected data.n_bits: 8`);
  if (meta.dataShape.length !== 3) throw new UserError(`the model's data have shape [${meta.dataShape}]; flow compress codes images [H, W, C]`);
  if (!Number.isInteger(chunkSize) || chunkSize < 1) throw new UserError(`chunk size ${chunkSize}: expected a positive integer`);
  return new IntegerFlowCodec(model.integer, meta.dataShape as [number, number, number], chunkSize);
}
