// Images -> a .flowz file's bytes and back, given a CodecPool: chunking, the per-chunk pixel digests,
// and the checks that keep a decode exact (same checkpoint, same arithmetic, every chunk's digest).
import { UserError } from '../errors.js';
import type { CodecPool } from './pool.js';
import { chunkCount, encodeContainer, indexRuns, sha256, FORMAT_VERSION, type Container, type ContainerHeader } from './container.js';

/** The images to compress: pixels back to back (uint8 HWC), with their global indices and optional names. */
export interface ImageSet {
  pixels: Uint8Array;
  count: number;
  shape: [number, number, number];
  /** Global index of each image (its position in the whole, unsharded input). */
  indices: number[];
  /** Images in the whole input (all shards). */
  total: number;
  names?: Array<string | null>;
}

/** Where the coding happens: the header fields that are not about the images. */
export interface CodingSource {
  toolVersion: string;
  checkpointSha256: string;
  runDir: string;
  checkpoint: string;
  step: number;
  weights: 'average' | 'raw';
  backend: string;
  fingerprint: string;
  shard: { index: number; count: number } | null;
  inputs: string[];
}

export interface Compressed {
  container: Container;
  bytes: Uint8Array;
  /** The model's ideal code length of all images, -sum log2 P(x), in bits. */
  idealBits: number;
  /** Wall time of the chunk coding alone. */
  encodeSeconds: number;
}

const dimsOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** Chunk k's image range [start, end). */
export function chunkRange(k: number, count: number, chunkSize: number): [number, number] {
  return [k * chunkSize, Math.min(count, (k + 1) * chunkSize)];
}

export async function compressImages(pool: CodecPool, images: ImageSet, src: CodingSource): Promise<Compressed> {
  const chunkSize = pool.codec.chunkSize;
  const dims = dimsOf(images.shape);
  const k = chunkCount(images.count, chunkSize);
  const parts = Array.from({ length: k }, (_, i) => {
    const [a, b] = chunkRange(i, images.count, chunkSize);
    return { pixels: images.pixels.subarray(a * dims, b * dims), n: b - a };
  });
  const started = performance.now();
  const encoded = await pool.encodeAll(parts);
  const encodeSeconds = (performance.now() - started) / 1000;
  const header: ContainerHeader = {
    format: FORMAT_VERSION,
    tool: 'flow',
    tool_version: src.toolVersion,
    checkpoint_sha256: src.checkpointSha256,
    run_dir: src.runDir,
    checkpoint: src.checkpoint,
    step: src.step,
    weights: src.weights,
    backend: src.backend,
    fingerprint: src.fingerprint,
    image_shape: images.shape,
    count: images.count,
    chunk_size: chunkSize,
    shard: src.shard,
    total: images.total,
    indices: indexRuns(images.indices),
    ...(images.names?.some((n) => n !== null) ? { names: images.names } : {}),
    inputs: src.inputs,
  };
  const container: Container = { header, chunks: encoded.map((e, i) => ({ bytes: e.bytes, pixelSha256: sha256(parts[i]!.pixels) })) };
  return { container, bytes: encodeContainer(container), idealBits: encoded.reduce((s, e) => s + e.idealBits, 0), encodeSeconds };
}

/** Refuses (one line, exit 2) a file coded with another checkpoint: its priors would decode garbage. */
export function checkCheckpoint(h: ContainerHeader, file: string, side: { checkpointSha256: string; runLabel: string }): void {
  if (h.checkpoint_sha256 !== side.checkpointSha256) {
    throw new UserError(`${file} was compressed with checkpoint ${h.checkpoint_sha256.slice(0, 12)} (run ${h.run_dir} step ${h.step}); ${side.runLabel} is ${side.checkpointSha256.slice(0, 12)}: pass --run with that checkpoint`);
  }
}

/** Refuses (one line, exit 2) a file whose arithmetic this backend does not repeat bit for bit. */
export function checkArithmetic(h: ContainerHeader, file: string, side: { backend: string; fingerprint: string }): void {
  if (h.fingerprint !== side.fingerprint) {
    throw new UserError(`${file} was encoded on ${h.backend} with arithmetic ${h.fingerprint.slice(0, 12)}; this ${side.backend} gives ${side.fingerprint.slice(0, 12)}: decoding would not be exact (decode with --backend ${h.backend})`);
  }
}

export interface Decompressed {
  pixels: Uint8Array;
  decodeSeconds: number;
}

/** Decodes every chunk and checks each against its stored pixel sha256; a mismatch is an error, never wrong pixels. */
export async function decompressContainer(pool: CodecPool, c: Container, file: string): Promise<Decompressed> {
  const { header } = c;
  if (header.chunk_size !== pool.codec.chunkSize) throw new Error(`decompressContainer: codec built for chunks of ${pool.codec.chunkSize}, file has ${header.chunk_size}`);
  const dims = dimsOf(header.image_shape);
  const ranges = c.chunks.map((_, i) => chunkRange(i, header.count, header.chunk_size));
  const what = (i: number) => `chunk ${i} (images ${ranges[i]![0]}..${ranges[i]![1] - 1} of the file)`;
  const started = performance.now();
  const decoded = await pool.decodeAll(
    c.chunks.map((ch, i) => ({ bytes: ch.bytes, n: ranges[i]![1] - ranges[i]![0] })),
    (i, e) => ((e as Error)?.name === 'CorruptStreamError' ? new UserError(`${file}: ${what(i)} cannot be decoded: ${(e as Error).message}`) : e),
  );
  const decodeSeconds = (performance.now() - started) / 1000;
  const pixels = new Uint8Array(header.count * dims);
  decoded.forEach((px, i) => {
    const [a, b] = ranges[i]!;
    const digest = sha256(px);
    if (px.length !== (b - a) * dims || !digest.every((v, j) => v === c.chunks[i]!.pixelSha256[j])) {
      throw new UserError(`${file}: ${what(i)} decodes to pixels whose sha256 ${Buffer.from(digest).toString('hex').slice(0, 12)} is not the stored ${Buffer.from(c.chunks[i]!.pixelSha256).toString('hex').slice(0, 12)}: nothing written (the decoder's arithmetic differs from the encoder's)`);
    }
    pixels.set(px, a * dims);
  });
  return { pixels, decodeSeconds };
}
