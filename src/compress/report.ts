// `flow compress --report`: decode the written file again (same codec), check it is byte-exact, and set
// its size beside the model's ideal code length and the best lossless PNG and WebP of the same images.
// PNG is zlib level 9, per image the smaller of adaptive row filtering and none (on sparse digits no filter
// wins), grey images as grey PNGs; sharp's `effort` is not used because it turns on palette quantisation,
// which is lossy. Each baseline is re-decoded and checked to be exact too.
import fs from 'node:fs';
import sharp, { type Sharp } from 'sharp';
import { FlowFailure } from '../errors.js';
import { mapLimit } from '../data/common.js';
import { decodeContainer } from './container.js';
import { decompressContainer, type Compressed, type ImageSet } from './compress.js';
import type { CodecPool } from './pool.js';

export interface CompressReport {
  images: number;
  dims: number;
  file_bytes: number;
  /** file bytes * 8 / (images * dims): everything, header and checksums included. */
  bits_per_dim: number;
  /** -sum log2 P(x) / (images * dims) under the model. */
  ideal_bits_per_dim: number;
  /** bits_per_dim / ideal_bits_per_dim. */
  overhead_ratio: number;
  png_bits_per_dim: number;
  webp_bits_per_dim: number;
  /** 100 * (1 - ours / theirs). */
  savings_vs_png_pct: number;
  savings_vs_webp_pct: number;
  encode_images_per_s: number;
  decode_images_per_s: number;
  /** The re-decoded file gave every pixel back. */
  verified: true;
}

const CONCURRENCY = 8;

type Raw = { width: number; height: number; channels: 1 | 3 };

/** Summed bytes of every image under the best (smallest) of `encoders`. */
async function baselineBytes(images: ImageSet, encoders: Array<(img: Sharp) => Sharp>, what: string): Promise<number> {
  const [height, width, channels] = images.shape;
  const dims = height * width * channels;
  const raw: Raw = { width, height, channels: channels as 1 | 3 };
  const sizes = await mapLimit(
    Array.from({ length: images.count }, (_, i) => i),
    CONCURRENCY,
    async (i) => {
      const px = images.pixels.subarray(i * dims, (i + 1) * dims);
      const candidates = await Promise.all(encoders.map((encode) => encode(sharp(Buffer.from(px), { raw })).toBuffer()));
      const bytes = candidates.reduce((a, b) => (b.length < a.length ? b : a));
      // Check it is lossless (WebP stores grey as RGB: compare the first channel).
      const back = await sharp(bytes).raw().toBuffer({ resolveWithObject: true });
      const c = back.info.channels;
      for (let p = 0; p < height * width; p++) {
        for (let k = 0; k < channels; k++) {
          if (back.data[p * c + k] !== px[p * channels + k]) throw new FlowFailure(`report: the ${what} baseline of image ${i} is not lossless; report a bug`);
        }
      }
      return bytes.length;
    },
  );
  return sizes.reduce((a, b) => a + b, 0);
}

export async function measureReport(pool: CodecPool, file: string, images: ImageSet, compressed: Compressed): Promise<CompressReport> {
  const onDisk = new Uint8Array(fs.readFileSync(file));
  const { pixels, decodeSeconds } = await decompressContainer(pool, decodeContainer(onDisk, file), file);
  if (pixels.length !== images.pixels.length || !pixels.every((v, i) => v === images.pixels[i])) {
    throw new FlowFailure(`${file}: decoding it again did not give the input pixels back; report a bug (the file is not safe to keep)`);
  }
  const dims = images.shape[0] * images.shape[1] * images.shape[2];
  const total = images.count * dims;
  const grey = (s: Sharp) => (images.shape[2] === 1 ? s.toColourspace('b-w') : s);
  const png = await baselineBytes(images, [true, false].map((adaptiveFiltering) => (s: Sharp) => grey(s).png({ compressionLevel: 9, adaptiveFiltering })), 'PNG');
  const webp = await baselineBytes(images, [(s) => s.webp({ lossless: true, effort: 6 })], 'WebP');
  const bpd = (onDisk.length * 8) / total;
  const ideal = compressed.idealBits / total;
  return {
    images: images.count,
    dims,
    file_bytes: onDisk.length,
    bits_per_dim: bpd,
    ideal_bits_per_dim: ideal,
    overhead_ratio: bpd / ideal,
    png_bits_per_dim: (png * 8) / total,
    webp_bits_per_dim: (webp * 8) / total,
    savings_vs_png_pct: 100 * (1 - onDisk.length / png),
    savings_vs_webp_pct: 100 * (1 - onDisk.length / webp),
    encode_images_per_s: images.count / compressed.encodeSeconds,
    decode_images_per_s: images.count / decodeSeconds,
    verified: true,
  };
}

export function formatReport(r: CompressReport): string {
  const f = (x: number) => x.toFixed(4);
  return [
    `bits/dim written ${f(r.bits_per_dim)} (${r.file_bytes} bytes for ${r.images} images of ${r.dims} values), model ideal ${f(r.ideal_bits_per_dim)} (ratio ${r.overhead_ratio.toFixed(4)})`,
    `PNG  ${f(r.png_bits_per_dim)} bits/dim: ${r.savings_vs_png_pct.toFixed(1)}% saved`,
    `WebP ${f(r.webp_bits_per_dim)} bits/dim (lossless): ${r.savings_vs_webp_pct.toFixed(1)}% saved`,
    `encode ${r.encode_images_per_s.toFixed(1)} images/s, decode ${r.decode_images_per_s.toFixed(1)} images/s; decoded again: byte-exact`,
  ].join('\n') + '\n';
}
