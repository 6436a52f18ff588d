// The model side of flow compress: an integer flow's ChunkCodec decodes every chunk byte-exactly (full
// and short chunks, images far from the training data), the written size is close to the model's ideal
// code length, the fingerprint is stable and changes with the weights, and non-integer models are refused.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../src/tf.js';
import { startBackend } from '../src/cli/common.js';
import { Rng } from '../src/rng.js';
import { ConfigSchema, ModelSchema } from '../src/config/schema.js';
import { buildModel, type FlowModel } from '../src/flows/model.js';
import type { LoadedModel } from '../src/io/model-io.js';
import { createChunkCodec } from '../src/compress/codec.js';
import { CorruptStreamError } from '../src/compress/rans.js';

before(async () => {
  await startBackend('wasm', true);
});

const SHAPE: [number, number, number] = [8, 8, 1];

function loaded(family: 'idf' | 'glow', seed: number, std: number): LoadedModel {
  const cfg = ConfigSchema.parse({ data: { dequantize: family === 'idf' ? 'none' : 'uniform' }, model: { family, levels: 2, depth: 2, width: 8, mixture: 3 } });
  const model: FlowModel = buildModel(ModelSchema.parse(cfg.model), SHAPE, { seed });
  const rng = new Rng(seed + 100);
  tf.tidy(() => {
    for (const v of model.trainableVariables()) v.assign(tf.add(v, tf.tensor(rng.normalArray(v.size, std), v.shape)));
  });
  return { model, config: cfg, meta: { dataShape: SHAPE, dataKind: 'image', nBits: 8 }, step: 0, checkpoint: null as never, weights: 'raw' };
}

function pixels(n: number, seed: number): Uint8Array {
  const rng = new Rng(seed);
  const out = new Uint8Array(n * 64);
  for (let i = 0; i < out.length; i++) out[i] = rng.next() < 0.6 ? 0 : rng.int(256);
  return out;
}

test('codec: full and short chunks decode byte-exactly; written bits track the ideal code length', async () => {
  const codec = await createChunkCodec(loaded('idf', 1, 0.05), 16);
  for (const n of [16, 5, 1]) {
    const px = pixels(n, n);
    const { bytes, idealBits } = await codec.encodeChunk(px, n);
    assert.deepEqual(await codec.decodeChunk(bytes, n), px, `chunk of ${n}`);
    // rANS state flush: 7 bytes; everything else within 1% of the model's code length.
    assert.ok(Math.abs(bytes.length * 8 - 56 - idealBits) < 0.01 * idealBits + 64, `${bytes.length * 8} bits written vs ideal ${idealBits.toFixed(0)}`);
  }
  // Extreme images (all white, a checkerboard) are as exact as typical ones.
  const white = new Uint8Array(3 * 64).fill(255);
  const board = Uint8Array.from({ length: 2 * 64 }, (_, i) => ((i + Math.floor(i / 8)) % 2) * 255);
  for (const [px, n] of [[white, 3], [board, 2]] as const) {
    const { bytes } = await codec.encodeChunk(px, n);
    assert.deepEqual(await codec.decodeChunk(bytes, n), px);
  }
  codec.dispose();
});

test('codec: a stream decoded with the wrong count, or truncated, is refused rather than decoded to other images', async () => {
  const codec = await createChunkCodec(loaded('idf', 2, 0.05), 8);
  const px = pixels(8, 3);
  const { bytes } = await codec.encodeChunk(px, 8);
  await assert.rejects(codec.decodeChunk(bytes.subarray(0, bytes.length - 3), 8), CorruptStreamError);
  await assert.rejects(codec.decodeChunk(bytes, 7), CorruptStreamError);
});

test('codec: the fingerprint is stable and names the weights', async () => {
  const a = await createChunkCodec(loaded('idf', 4, 0.05), 8);
  const again = await createChunkCodec(loaded('idf', 4, 0.05), 8);
  const other = await createChunkCodec(loaded('idf', 5, 0.05), 8);
  const fa = await a.fingerprint();
  assert.match(fa, /^[0-9a-f]{64}$/);
  assert.equal(await a.fingerprint(), fa);
  assert.equal(await again.fingerprint(), fa);
  assert.notEqual(await other.fingerprint(), fa);
  // The chunk size is part of the arithmetic (every chunk runs at that many rows).
  assert.notEqual(await (await createChunkCodec(loaded('idf', 4, 0.05), 9)).fingerprint(), fa);
});

test('codec: a continuous flow, or fewer than 8 bits, is refused with one line', async () => {
  await assert.rejects(createChunkCodec(loaded('glow', 6, 0), 8), (e: Error) => /needs an integer flow \(model\.family: idf\)/.test(e.message) && !e.message.includes('\n'));
  const fiveBit = loaded('idf', 7, 0);
  fiveBit.meta.nBits = 5;
  await assert.rejects(createChunkCodec(fiveBit, 8), /5-bit data/);
});
