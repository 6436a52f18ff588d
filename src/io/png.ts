// Image grids and strips as PNG (sharp). Pixels are uint8 NHWC, 1 or 3 channels.
import sharp from 'sharp';
import { UserError } from '../errors.js';
import { atomicWriteFile } from './atomic.js';

export interface ImageBatch {
  pixels: Uint8Array;
  n: number;
  height: number;
  width: number;
  channels: number;
}

/** Tiles images row-major into rows x cols with a 2-pixel border; empty cells stay black. */
export function tile(batch: ImageBatch, cols: number, pad = 2): ImageBatch {
  const { n, height: h, width: w, channels: c } = batch;
  const rows = Math.ceil(n / cols);
  const H = rows * (h + pad) + pad;
  const W = cols * (w + pad) + pad;
  const out = new Uint8Array(H * W * c);
  for (let k = 0; k < n; k++) {
    const top = pad + Math.floor(k / cols) * (h + pad);
    const left = pad + (k % cols) * (w + pad);
    for (let y = 0; y < h; y++) {
      const src = (k * h * w + y * w) * c;
      out.set(batch.pixels.subarray(src, src + w * c), ((top + y) * W + left) * c);
    }
  }
  return { pixels: out, n: 1, height: H, width: W, channels: c };
}

export async function encodePng(img: ImageBatch): Promise<Buffer> {
  return sharp(Buffer.from(img.pixels.buffer, img.pixels.byteOffset, img.height * img.width * img.channels), {
    raw: { width: img.width, height: img.height, channels: img.channels as 1 | 3 },
  })
    .png({ compressionLevel: 9 })
    .toBuffer();
}

export type ImageFormat = 'png' | 'jpeg';

/**
 * The format an output file name names: .png, or .jpg/.jpeg (lossy: for sharing, not for exact pixels).
 * Anything else is refused rather than written as PNG bytes under a name that says otherwise.
 */
export function imageFormatOf(file: string, flag = '--out'): ImageFormat {
  if (/\.png$/i.test(file)) return 'png';
  if (/\.jpe?g$/i.test(file)) return 'jpeg';
  throw new UserError(`${flag} ${file}: cannot tell the image format from the name; expected a .png, .jpg or .jpeg file name`);
}

/** Encodes in the format the file name names (see imageFormatOf). */
export async function encodeImageFor(file: string, img: ImageBatch, flag = '--out'): Promise<Buffer> {
  if (imageFormatOf(file, flag) === 'png') return encodePng(img);
  return sharp(Buffer.from(img.pixels.buffer, img.pixels.byteOffset, img.height * img.width * img.channels), {
    raw: { width: img.width, height: img.height, channels: img.channels as 1 | 3 },
  })
    .jpeg({ quality: 95 })
    .toBuffer();
}

/** A square-ish grid of all images in one PNG (cols defaults to ceil(sqrt(n))). */
export async function writeGrid(file: string, batch: ImageBatch, cols?: number): Promise<void> {
  const grid = tile(batch, cols ?? Math.ceil(Math.sqrt(batch.n)));
  atomicWriteFile(file, await encodePng(grid));
}
