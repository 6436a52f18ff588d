// The .flowz container (src/compress/container.ts) and the library around it, with a fake codec that
// stores pixels raw: round trips, and every way a file can be wrong giving one UserError line naming it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { decodeContainer, encodeContainer, expandIndices, indexRuns, sha256, FORMAT_VERSION, type Container, type ContainerHeader } from '../src/compress/container.js';
import { checkArithmetic, checkCheckpoint, compressImages, decompressContainer, type ImageSet } from '../src/compress/compress.js';
import type { ChunkCodec } from '../src/compress/codec-types.js';
import { CodecPool } from '../src/compress/pool.js';
import { readInputs } from '../src/compress/inputs.js';
import { imageFileNames, pixelSha256, writeImages } from '../src/compress/output.js';
import { checkpointDigest } from '../src/io/checkpoint-layout.js';
import { UserError } from '../src/errors.js';
import { tempDir } from './helpers.js';

const SHAPE: [number, number, number] = [4, 3, 1];
const DIMS = 12;

/** A throwaway codec: a chunk's stream is its pixels, xor 0x5a (decodeChunk can be told to lie). */
function fakeCodec(chunkSize: number, opts: { corruptDecode?: boolean; throwCorrupt?: boolean } = {}): ChunkCodec {
  return {
    imageShape: SHAPE,
    chunkSize,
    async encodeChunk(pixels, n) {
      assert.equal(pixels.length, n * DIMS);
      return { bytes: pixels.map((v) => v ^ 0x5a), idealBits: n * DIMS * 2 };
    },
    async decodeChunk(bytes, n) {
      if (opts.throwCorrupt) throw Object.assign(new Error('state underflow'), { name: 'CorruptStreamError' });
      const out = bytes.map((v) => v ^ 0x5a);
      assert.equal(out.length, n * DIMS);
      if (opts.corruptDecode) out[0] = out[0]! ^ 1;
      return out;
    },
    async fingerprint() {
      return 'f'.repeat(64);
    },
    dispose() {},
  };
}

function images(count: number, total = count, indices = Array.from({ length: count }, (_, i) => i)): ImageSet {
  const pixels = new Uint8Array(count * DIMS);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 37 + 11) & 255;
  return { pixels, count, shape: SHAPE, indices, total };
}

const SOURCE = {
  toolVersion: '0.0.0-test',
  checkpointSha256: 'a'.repeat(64),
  runDir: '/runs/x',
  checkpoint: '/runs/x/checkpoints/step-00000040',
  step: 40,
  weights: 'average' as const,
  backend: 'wasm',
  fingerprint: 'f'.repeat(64),
  shard: null,
  inputs: ['embedded:test'],
};

async function sample(count = 10, chunkSize = 4): Promise<{ bytes: Uint8Array; container: Container; set: ImageSet }> {
  const pool = await CodecPool.create(fakeCodec(chunkSize), 1, { checkpoint: '', weights: 'average', backend: 'wasm' });
  const set = images(count);
  const c = await compressImages(pool, set, SOURCE);
  return { bytes: c.bytes, container: c.container, set };
}

/** The UserError decodeContainer throws on these bytes: one line, naming the file. */
function refusal(bytes: Uint8Array, pattern: RegExp): string {
  let caught: unknown;
  try {
    decodeContainer(bytes, 'x.flowz');
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof UserError, `expected a UserError, got ${String(caught)}`);
  const msg = caught.message;
  assert.ok(!msg.includes('\n'), `one line: ${msg}`);
  assert.ok(msg.startsWith('x.flowz'), `names the file: ${msg}`);
  assert.match(msg, pattern);
  return msg;
}

test('container: encode -> decode gives the header and chunks back; chunks of chunkSize, the last short', async () => {
  const { bytes, container } = await sample(10, 4);
  assert.deepEqual(Array.from(bytes.subarray(0, 6)), [...Buffer.from('FLOWZ'), FORMAT_VERSION]);
  const back = decodeContainer(bytes, 'x.flowz');
  assert.deepEqual(back.header, container.header);
  assert.equal(back.chunks.length, 3);
  back.chunks.forEach((ch, i) => {
    assert.deepEqual(ch.bytes, container.chunks[i]!.bytes);
    assert.deepEqual(ch.pixelSha256, container.chunks[i]!.pixelSha256);
  });
  assert.equal(back.chunks[2]!.bytes.length, 2 * DIMS);
  assert.deepEqual(back.header.image_shape, SHAPE);
  assert.equal(back.header.names, undefined);
});

test('container: an empty file set (a shard with no images) round-trips', async () => {
  const pool = await CodecPool.create(fakeCodec(4), 1, { checkpoint: '', weights: 'average', backend: 'wasm' });
  const c = await compressImages(pool, { ...images(0, 3, []) }, { ...SOURCE, shard: { index: 3, count: 4 } });
  const back = decodeContainer(c.bytes, 'x.flowz');
  assert.equal(back.chunks.length, 0);
  assert.equal(back.header.count, 0);
});

test('container: wrong magic and unknown version are refused', async () => {
  const { bytes } = await sample();
  refusal(Buffer.from('PK\u0003\u0004 a zip file'), /not a flow compress file.*FLOWZ/);
  refusal(new Uint8Array(0), /not a flow compress file/);
  const future = bytes.slice();
  future[5] = 2;
  refusal(future, /format version 2; this flow reads version 1/);
});

test('container: truncated at any point is refused (prefix, header, table, streams, trailer)', async () => {
  const { bytes } = await sample();
  const json = Buffer.from(bytes).readUInt32LE(6);
  const cuts = [3, 5, 8, 10, 10 + Math.floor(json / 2), 10 + json + 5, 10 + json + 3 * 36 + 7, bytes.length - 32, bytes.length - 1];
  for (const cut of cuts) refusal(bytes.subarray(0, cut), /truncated/);
});

test('container: appended bytes are refused', async () => {
  const { bytes } = await sample();
  refusal(Buffer.concat([bytes, Buffer.from('extra')]), /5 bytes longer than its header says/);
});

test('container: a flipped bit anywhere (header, chunk table, streams, trailer) is refused', async () => {
  const { bytes } = await sample();
  const json = Buffer.from(bytes).readUInt32LE(6);
  const at = {
    headerLength: 7,
    headerJson: 10 + 20,
    table: 10 + json + 2,
    tableDigest: 10 + json + 10,
    stream: 10 + json + 3 * 36 + 5,
    trailer: bytes.length - 3,
  };
  for (const [where, offset] of Object.entries(at)) {
    for (const bit of [0, 7]) {
      const flipped = bytes.slice();
      flipped[offset] = flipped[offset]! ^ (1 << bit);
      const msg = refusal(flipped, /corrupted|truncated|longer/);
      assert.ok(msg.length < 300, `${where}: ${msg}`);
    }
  }
});

test('container: a checksummed file whose header is inconsistent is refused as invalid', async () => {
  const { container } = await sample();
  const bad: ContainerHeader = { ...container.header, indices: [[0, 1, 9]] };
  refusal(encodeContainer({ ...container, header: bad }), /invalid: its header lists 9 image indices for 10 images/);
  const beyond: ContainerHeader = { ...container.header, total: 5 };
  refusal(encodeContainer({ ...container, header: beyond }), /image index 9 is beyond the 5 images/);
});

test('index runs: a shard is one run; any list round-trips', () => {
  assert.deepEqual(indexRuns([2, 7, 12, 17]), [[2, 5, 4]]);
  assert.deepEqual(indexRuns([0, 1, 2, 3]), [[0, 1, 4]]);
  for (const list of [[], [5], [0, 1, 2, 10, 20, 30, 31], [3, 1, 2]]) assert.deepEqual(expandIndices(indexRuns(list)), list);
});

test('decompressContainer: gives the pixels back; a chunk whose pixels do not match its digest, or a corrupt stream, is one UserError', async () => {
  const { container, set } = await sample(10, 4);
  const good = await CodecPool.create(fakeCodec(4), 1, { checkpoint: '', weights: 'average', backend: 'wasm' });
  assert.deepEqual((await decompressContainer(good, container, 'x.flowz')).pixels, set.pixels);
  const liar = await CodecPool.create(fakeCodec(4, { corruptDecode: true }), 1, { checkpoint: '', weights: 'average', backend: 'wasm' });
  await assert.rejects(decompressContainer(liar, container, 'x.flowz'), (e: Error) => e instanceof UserError && /x\.flowz: chunk 0 \(images 0\.\.3 of the file\) decodes to pixels whose sha256 \w{12} is not the stored \w{12}: nothing written/.test(e.message));
  const broken = await CodecPool.create(fakeCodec(4, { throwCorrupt: true }), 1, { checkpoint: '', weights: 'average', backend: 'wasm' });
  await assert.rejects(decompressContainer(broken, container, 'x.flowz'), (e: Error) => e instanceof UserError && /chunk 0 .* cannot be decoded: state underflow/.test(e.message));
});

test('checkCheckpoint / checkArithmetic: one line saying which checkpoint and which arithmetic', async () => {
  const { container } = await sample();
  const h = container.header;
  assert.throws(
    () => checkCheckpoint(h, 'x.flowz', { checkpointSha256: 'b'.repeat(64), runLabel: 'run runs/y step 7' }),
    (e: Error) => e instanceof UserError && e.message === `x.flowz was compressed with checkpoint aaaaaaaaaaaa (run /runs/x step 40); run runs/y step 7 is bbbbbbbbbbbb: pass --run with that checkpoint`,
  );
  checkCheckpoint(h, 'x.flowz', { checkpointSha256: 'a'.repeat(64), runLabel: 'run runs/x step 40' });
  assert.throws(() => checkArithmetic(h, 'x.flowz', { backend: 'cpu', fingerprint: '0123456789abcdef' }), /^UserError: x\.flowz was encoded on wasm with arithmetic ffffffffffff; this cpu gives 0123456789ab: decoding would not be exact/);
  checkArithmetic(h, 'x.flowz', { backend: 'wasm', fingerprint: 'f'.repeat(64) });
});

test('checkpointDigest: over weights.bin and state.json; any changed byte changes it', () => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'weights.bin'), Buffer.from([1, 2, 3]));
  fs.writeFileSync(path.join(dir, 'state.json'), '{}');
  fs.writeFileSync(path.join(dir, 'manifest.json'), '{"createdAt": 1}');
  const a = checkpointDigest(dir);
  assert.match(a, /^[0-9a-f]{64}$/);
  fs.writeFileSync(path.join(dir, 'manifest.json'), '{"createdAt": 2}');
  assert.equal(checkpointDigest(dir), a, 'the manifest (a timestamp) is not content');
  fs.writeFileSync(path.join(dir, 'weights.bin'), Buffer.from([1, 2, 4]));
  assert.notEqual(checkpointDigest(dir), a);
});

test('inputs: image files and folders by name, data shape checked per file; --limit then --shard; outputs restore the names', async () => {
  const dir = tempDir();
  const folder = path.join(dir, 'imgs');
  fs.mkdirSync(path.join(folder, 'sub'), { recursive: true });
  const set = images(3);
  const write = (file: string, i: number) =>
    sharp(Buffer.from(set.pixels.subarray(i * DIMS, (i + 1) * DIMS)), { raw: { width: 3, height: 4, channels: 1 } }).toColourspace('b-w').png().toFile(file);
  await write(path.join(folder, 'a.png'), 0);
  await write(path.join(folder, 'sub', 'b.png'), 1);
  await write(path.join(dir, 'c.png'), 2);
  const got = await readInputs([folder, path.join(dir, 'c.png')], { shape: SHAPE, seed: 0, limit: 0, shard: null });
  assert.equal(got.count, 3);
  assert.deepEqual(got.names, ['a.png', 'sub/b.png', 'c.png']);
  assert.deepEqual(got.pixels, set.pixels);
  const sharded = await readInputs([folder, path.join(dir, 'c.png')], { shape: SHAPE, seed: 0, limit: 0, shard: { index: 1, count: 2 } });
  assert.deepEqual(sharded.indices, [1]);
  assert.deepEqual(sharded.names, ['sub/b.png']);
  await assert.rejects(readInputs([folder], { shape: [4, 3, 3], seed: 0, limit: 0, shard: null }), (e: Error) => e instanceof UserError && e.message === `${path.join(folder, 'a.png')}: decodes to 4x3x1 pixels (HxWxC); the model takes 4x3x3`);
  await assert.rejects(readInputs([folder, folder], { shape: SHAPE, seed: 0, limit: 0, shard: null }), /images 0 and 2 would both decompress to a\.png/);

  const pool = await CodecPool.create(fakeCodec(2), 1, { checkpoint: '', weights: 'average', backend: 'wasm' });
  const c = await compressImages(pool, got, SOURCE);
  const h = decodeContainer(c.bytes, 'x.flowz').header;
  assert.deepEqual(imageFileNames(h, 'x.flowz'), ['a.png', path.join('sub', 'b.png'), 'c.png']);
  const out = path.join(dir, 'out');
  const written = await writeImages(out, h, got.pixels, 'x.flowz');
  for (const w of written) {
    assert.equal((await sharp(w.file).metadata()).channels, 1, 'a grey image comes back as a grey PNG');
    const { data } = await sharp(w.file).toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
    assert.equal(pixelSha256(new Uint8Array(data)), w.sha256);
  }
  await assert.rejects(writeImages(path.join(dir, 'one.png'), h, got.pixels, 'x.flowz'), /--out .*one\.png: x\.flowz holds 3 images; give a folder/);
  await assert.rejects(writeImages(out, { ...h, names: ['../evil.png', null, null] }, got.pixels, 'x.flowz'), /stored image name "\.\.\/evil\.png" is not a plain relative path/);
});

test('outputs without names: zero-padded global indices (a shard of 12 images: 01, 05, 09)', async () => {
  const set = images(3, 12, [1, 5, 9]);
  const pool = await CodecPool.create(fakeCodec(2), 1, { checkpoint: '', weights: 'average', backend: 'wasm' });
  const c = await compressImages(pool, set, { ...SOURCE, shard: { index: 1, count: 4 } });
  const h = decodeContainer(c.bytes, 'x.flowz').header;
  assert.deepEqual(imageFileNames(h, 'x.flowz'), ['01.png', '05.png', '09.png']);
  assert.deepEqual(Array.from(sha256(new Uint8Array(0))).length, 32);
});
