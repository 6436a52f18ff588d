// Where `flow decompress` puts the images: one PNG per image in a folder (the stored names, else the
// zero-padded global index, so the shards of one input fill one folder without clashes), or one .png
// file when the archive holds one image. Every file is written atomically.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import { encodePng } from '../io/png.js';
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
    atomicWriteFile(target, await encodePng({ pixels: px, n: 1, height, width, channels }));
    written.push({ index: indices[i]!, file: target, sha256: pixelSha256(px) });
  }
  return written;
}
