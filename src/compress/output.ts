// Where `flow decompress` puts the images: one PNG per image in a folder (the stored names, else the
// zero-padded global index, so the shards of one input fill one folder without clashes), or one .png
// file when the archive holds one image. Every file is written atomically.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import sharp from 'sharp';
import { atomicWriteFile } from '../io/atomic.js';
import { expandIndices, type ContainerHeader } from './container.js';
import { outputName } from './inputs.js';
import { createHash } from 'node:crypto';

export interface WrittenImage {
  /** Global index in the input the file was compressed from. */
  index: number;
  file: string;
  /** sha256 of the image's pixel bytes (uint8 HWC), comparable with the original's. */
  sha256: string;
}

/**
 * A PNG with exactly these pixels and channels. sharp writes raw 1-channel input as an RGB PNG unless told
 * the colourspace, and a grey image must come back grey to compress again at the model's shape.
 */
export async function encodeExactPng(pixels: Uint8Array, height: number, width: number, channels: number): Promise<Buffer> {
  const img = sharp(Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength), { raw: { width, height, channels: channels as 1 | 3 } });
  return (channels === 1 ? img.toColourspace('b-w') : img).png({ compressionLevel: 9, adaptiveFiltering: true }).toBuffer();
}

export function pixelSha256(pixels: Uint8Array): string {
  return createHash('sha256').update(pixels).digest('hex');
}

/** A stored name as a path inside the output folder; anything that could leave it is refused. */
function safeName(name: string, file: string): string {
  const parts = name.split('/');
  if (path.isAbsolute(name) || name.includes('\\') || parts.some((p) => p === '' || p === '.' || p === '..')) {
    throw new UserError(`${file}: stored image name ${JSON.stringify(name)} is not a plain relative path; refusing to write it`);
  }
  return path.join(...parts);
}

/** The file names (relative to the output folder) of the archive's images, in file order. */
export function imageFileNames(h: ContainerHeader, file: string): string[] {
  const width = Math.max(1, String(Math.max(0, h.total - 1)).length);
  return expandIndices(h.indices).map((g, i) => {
    const name = h.names?.[i];
    return name ? safeName(outputName(name), file) : `${String(g).padStart(width, '0')}.png`;
  });
}

export async function writeImages(out: string, h: ContainerHeader, pixels: Uint8Array, file: string): Promise<WrittenImage[]> {
  const [height, width, channels] = h.image_shape;
  const dims = height * width * channels;
  const indices = expandIndices(h.indices);
  const single = /\.png$/i.test(out);
  if (single && h.count !== 1) throw new UserError(`--out ${out}: ${file} holds ${h.count} images; give a folder to write one PNG per image`);
  const names = single ? [out] : imageFileNames(h, file).map((n) => path.join(out, n));
  const written: WrittenImage[] = [];
  for (let i = 0; i < h.count; i++) {
    const px = pixels.subarray(i * dims, (i + 1) * dims);
    const target = names[i]!;
    fs.mkdirSync(path.dirname(path.resolve(target)), { recursive: true });
    atomicWriteFile(target, await encodeExactPng(px, height, width, channels));
    written.push({ index: indices[i]!, file: target, sha256: pixelSha256(px) });
  }
  return written;
}
