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

/** Grid gutters are mid-grey: black gutters vanished between samples on black backgrounds (MNIST, CIFAR night skies). */
export const GUTTER = 128;

/** Tiles images row-major into rows x cols with a 2-pixel mid-grey gutter; empty cells are gutter-coloured. */
export function tile(batch: ImageBatch, cols: number, pad = 2, fill = GUTTER): ImageBatch {
  const { n, height: h, width: w, channels: c } = batch;
  const rows = Math.ceil(n / cols);
  const H = rows * (h + pad) + pad;
  const W = cols * (w + pad) + pad;
  const out = new Uint8Array(H * W * c).fill(fill);
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

/** A square-ish grid of all images in one PNG (cols defaults to ceil(sqrt(n))), captioned when labels are given. */
export async function writeGrid(file: string, batch: ImageBatch, cols?: number, labels?: GridLabels): Promise<void> {
  const k = cols ?? Math.ceil(Math.sqrt(batch.n));
  atomicWriteFile(file, labels ? await encodeLabelledGrid(batch, k, labels) : await encodePng(tile(batch, k)));
}

export interface GridLabels {
  /** Caption pieces (e.g. run, step, seed, temperature), joined with ' · ' and wrapped between pieces to fit. */
  caption: string[];
  /** One label per grid row (e.g. the temperature of each row of a sweep), drawn left of the row. */
  rowLabels?: string[];
}

// DejaVu Sans Mono (Debian fonts-dejavu-core): a monospace font, so text width is known without measuring
// (0.602 em per character) and every machine with that font renders the same pixels.
const FONT_PX = 11;
const CHAR_PX = 0.602 * FONT_PX;
const LINE_PX = 14;
const MARGIN = 4;
const STRIP = 255;

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Greedily joins pieces with ' · ' into lines of at most maxChars (a piece longer than that gets its own line). */
function wrap(pieces: string[], maxChars: number): string[] {
  const lines: string[] = [];
  for (const p of pieces) {
    const last = lines[lines.length - 1];
    if (last !== undefined && last.length + 3 + p.length <= maxChars) lines[lines.length - 1] = `${last} · ${p}`;
    else lines.push(p);
  }
  return lines;
}

/**
 * The grid of tile(batch, cols) with a white caption strip above it and, with rowLabels, a white column of
 * row labels left of it (text from an SVG overlay). The grid pixels themselves are tile()'s, unchanged.
 */
export async function labelledGrid(batch: ImageBatch, cols: number, labels: GridLabels, pad = 2): Promise<ImageBatch> {
  const grid = tile(batch, cols, pad);
  const c = grid.channels;
  const rowLabels = labels.rowLabels ?? [];
  const left = rowLabels.length ? Math.ceil(Math.max(...rowLabels.map((l) => l.length)) * CHAR_PX) + 2 * MARGIN : 0;
  const longestPiece = Math.max(1, ...labels.caption.map((p) => p.length));
  // The canvas is at least as wide as the longest caption piece, so nothing is clipped on small grids.
  const W = Math.max(left + grid.width, Math.ceil(longestPiece * CHAR_PX) + 2 * MARGIN);
  const lines = wrap(labels.caption, Math.max(longestPiece, Math.floor((W - 2 * MARGIN) / CHAR_PX)));
  const top = lines.length * LINE_PX + MARGIN;
  const H = top + grid.height;
  const canvas = new Uint8Array(H * W * c).fill(STRIP);
  for (let y = 0; y < grid.height; y++) canvas.set(grid.pixels.subarray(y * grid.width * c, (y + 1) * grid.width * c), ((top + y) * W + left) * c);
  const text: string[] = lines.map((l, i) => `<text x="${MARGIN}" y="${MARGIN + (i + 1) * LINE_PX - 4}">${escapeXml(l)}</text>`);
  const cellH = (grid.height - pad) / Math.max(1, rowLabels.length);
  rowLabels.forEach((l, r) => {
    const y = top + pad + r * cellH + (cellH - pad) / 2 + FONT_PX / 2 - 2;
    text.push(`<text x="${left - MARGIN}" y="${y.toFixed(1)}" text-anchor="end">${escapeXml(l)}</text>`);
  });
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">` +
    `<g font-family="DejaVu Sans Mono, monospace" font-size="${FONT_PX}" fill="#000">${text.join('')}</g></svg>`;
  const { data, info } = await sharp(Buffer.from(canvas.buffer, canvas.byteOffset, canvas.byteLength), { raw: { width: W, height: H, channels: c as 1 | 3 } })
    .composite([{ input: Buffer.from(svg), top: 0, left: 0 }])
    .raw()
    .toBuffer({ resolveWithObject: true });
  // The composite comes back with colour and alpha; keep the grid's own channels (black text loses nothing in grey).
  const out = new Uint8Array(W * H * c);
  for (let i = 0; i < W * H; i++) for (let k = 0; k < c; k++) out[i * c + k] = data[i * info.channels + k]!;
  return { pixels: out, n: 1, height: H, width: W, channels: c };
}

/** labelledGrid as PNG bytes. */
export async function encodeLabelledGrid(batch: ImageBatch, cols: number, labels: GridLabels, pad = 2): Promise<Buffer> {
  return encodePng(await labelledGrid(batch, cols, labels, pad));
}
