// The seam between the container/CLI side of `flow compress` and the model side: a ChunkCodec turns a
// fixed-size chunk of 8-bit images into rANS bytes and back, driven by an integer flow's priors. Every
// chunk is evaluated at exactly `chunkSize` rows (short chunks are padded), so the network arithmetic a
// decoder repeats is the encoder's, and `fingerprint` names that arithmetic so a file is refused where
// it differs.

export interface EncodedChunk {
  /** The chunk's rANS stream. */
  bytes: Uint8Array;
  /** The model's ideal code length of the chunk's n images, -sum log2 P(x), in bits (float64, unquantised). */
  idealBits: number;
}

export interface ChunkCodec {
  /** One image's shape [H, W, C] (pixels are uint8, row-major HWC). */
  readonly imageShape: [number, number, number];
  /** Rows every chunk is evaluated at; encodeChunk/decodeChunk take 1..chunkSize images. */
  readonly chunkSize: number;
  /** n images (n*H*W*C bytes) -> the chunk's stream. */
  encodeChunk(pixels: Uint8Array, n: number): Promise<EncodedChunk>;
  /** The exact inverse of encodeChunk; throws CorruptStreamError on a stream it cannot have written. */
  decodeChunk(bytes: Uint8Array, n: number): Promise<Uint8Array>;
  /** sha256 hex of what the model computes on a fixed probe chunk (priors' parameters and latents) on this backend. */
  fingerprint(): Promise<string>;
  dispose(): void;
}
