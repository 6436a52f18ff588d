// SVG to PNG through sharp (librsvg), and writing a chart to .svg or .png by the file's extension.
import sharp from 'sharp';
import { extname } from 'node:path';
import { UserError } from '../errors.js';
import { atomicWriteFile } from '../io/atomic.js';

/**
 * Rasterises an SVG document. At scale 1 the PNG has the SVG's width x height pixels (librsvg's 72 dpi
 * is one pixel per user unit); scale 2 gives a sharper image at twice the size.
 */
export async function renderPng(svg: string, opts: { scale?: number } = {}): Promise<Buffer> {
  const scale = opts.scale ?? 1;
  if (!(scale > 0) || !Number.isFinite(scale)) throw new UserError(`renderPng: scale must be a positive number, got ${scale}`);
  return sharp(Buffer.from(svg), { density: 72 * scale }).png({ compressionLevel: 9 }).toBuffer();
}

/** Writes svg as-is to a .svg file or rendered to a .png file (atomically); other extensions are a UserError. */
export async function writeChart(file: string, svg: string, opts: { scale?: number } = {}): Promise<void> {
  const ext = extname(file).toLowerCase();
  if (ext === '.svg') atomicWriteFile(file, svg);
  else if (ext === '.png') atomicWriteFile(file, await renderPng(svg, opts));
  else throw new UserError(`cannot write chart ${file}: expected a .png or .svg file name`);
}
