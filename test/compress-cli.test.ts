// `flow compress` / `flow decompress` end to end on a tiny integer discrete flow trained here: byte-exact
// round trips (data spec, folder, shard, threads), the --report numbers, and every refusal (truncated,
// bit-flipped, another checkpoint, another backend's arithmetic, a chunk that decodes wrong, a Glow run, a
// wrong-sized image) as exit 2 with exactly one line on stderr.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { flow, tempDir, writeYaml, TINY_CONFIG, type RunResult } from './helpers.js';
import { decodeContainer, encodeContainer } from '../src/compress/container.js';
import { pixelSha256 } from '../src/compress/output.js';

/** The smallest idf model that trains in a few seconds on wasm. */
const IDF_CONFIG = `
name: NAME
seed: SEED
backend: wasm
data:
  source: embedded
  limit: 256
  test_limit: 64
  dequantize: none
model:
  family: idf
  levels: 2
  depth: 2
  width: 16
train:
  batch_size: 32
  lr: 0.003
  max_steps: STEPS
  log_every: 10
  checkpoint_every: 1000
  eval_examples: 64
  sample_grid: 4
`;

let dir = '';
let run = '';
let other = '';
let glow = '';

function train(name: string, seed: number, steps: number): string {
  const cfg = writeYaml(dir, `${name}.yaml`, IDF_CONFIG.replace('NAME', name).replace('SEED', String(seed)).replace('STEPS', String(steps)));
  const r = flow(['train', cfg, '--quiet'], dir);
  assert.equal(r.code, 0, `flow train ${name}: ${r.stderr}`);
  return path.join(dir, 'runs', name);
}

before(() => {
  dir = tempDir('flow-compress-');
  other = train('other', 2, 1);
  const glowCfg = writeYaml(dir, 'glow.yaml', TINY_CONFIG.replace('name: tiny', 'name: glow'));
  assert.equal(flow(['train', glowCfg, '--quiet', '--max-steps', '1'], dir).code, 0, 'flow train glow');
  glow = path.join(dir, 'runs', 'glow');
  run = train('idf', 1, 6);
});

function json(r: RunResult, what: string) {
  assert.equal(r.code, 0, `${what}: exit ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

/** Exit 2 with exactly one line on stderr, matching `pattern`. */
function refused(r: RunResult, pattern: RegExp): void {
  assert.equal(r.code, 2, `exit ${r.code}; stderr: ${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line on stderr, got: ${r.stderr}`);
  assert.match(lines[0]!, pattern);
}

/** The grey pixels of a PNG, as sha256. */
async function pngSha(file: string): Promise<string> {
  assert.equal((await sharp(file).metadata()).channels, 1, `${file} is a grey PNG`);
  const { data } = await sharp(file).toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
  return pixelSha256(new Uint8Array(data));
}

let archive = '';
let originals: string[] = [];

test('compress --report -> decompress is byte-exact; the report measures the file and its baselines', async () => {
  archive = path.join(dir, 'test.flowz');
  const c = json(flow(['compress', 'embedded:test', '--run', run, '--out', archive, '--limit', '40', '--chunk-size', '16', '--report', '--json'], dir), 'compress');
  assert.equal(c.images, 40);
  assert.equal(c.chunks, 3);
  assert.deepEqual(c.shape, [28, 28, 1]);
  assert.equal(c.bytes, fs.statSync(archive).size);
  originals = c.image_sha256.map((e: { sha256: string }) => e.sha256);
  const r = c.report;
  assert.equal(r.verified, true);
  assert.ok(Math.abs(r.bits_per_dim - (c.bytes * 8) / (40 * 784)) < 1e-12);
  // A 6-step model is barely trained (about 8 bits/dim); what matters is that the file is its ideal plus a little.
  assert.ok(r.ideal_bits_per_dim > 0 && r.ideal_bits_per_dim < 10, `ideal ${r.ideal_bits_per_dim}`);
  assert.ok(r.bits_per_dim >= r.ideal_bits_per_dim, 'a real file cannot beat the ideal code length');
  assert.ok(r.overhead_ratio < 1.05, `header, table and rANS overhead: ratio ${r.overhead_ratio}`);
  assert.ok(r.png_bits_per_dim > 0 && r.webp_bits_per_dim > 0);
  assert.ok(Math.abs(r.savings_vs_png_pct - 100 * (1 - r.bits_per_dim / r.png_bits_per_dim)) < 1e-9);
  assert.ok(r.encode_images_per_s > 0 && r.decode_images_per_s > 0);

  const out = path.join(dir, 'restored');
  const d = json(flow(['decompress', archive, '--out', out, '--json'], dir), 'decompress');
  assert.deepEqual(d.images.map((e: { sha256: string }) => e.sha256), originals);
  assert.equal(d.images[7].file, path.join(out, '07.png'));
  for (const [i, e] of d.images.entries()) assert.equal(await pngSha(e.file), originals[i], `image ${i} on disk`);
});

test('--threads 2 writes the same bytes as one thread; --shard i/n files hold their images by global index', () => {
  const threaded = path.join(dir, 'threaded.flowz');
  json(flow(['compress', 'embedded:test', '--run', run, '--out', threaded, '--limit', '40', '--chunk-size', '16', '--threads', '2', '--json'], dir), 'compress --threads 2');
  assert.deepEqual(fs.readFileSync(threaded), fs.readFileSync(archive), 'chunks do not depend on the thread count');

  const shard = path.join(dir, 'shard.flowz');
  json(flow(['compress', 'embedded:test', '--run', run, '--out', shard, '--limit', '40', '--chunk-size', '16', '--shard', '1/3', '--json'], dir), 'compress --shard');
  const d = json(flow(['decompress', shard, '--out', path.join(dir, 'shard-out'), '--json', '--threads', '2'], dir), 'decompress shard');
  assert.deepEqual(d.indices, [1, 4, 7, 10, 13, 16, 19, 22, 25, 28, 31, 34, 37]);
  assert.deepEqual(d.images.map((e: { sha256: string }) => e.sha256), d.indices.map((i: number) => originals[i]));
  assert.equal(path.basename(d.images[0].file), '01.png');
});

test('a folder of PNGs round-trips with its file names; one image to FILE.png', async () => {
  const folder = path.join(dir, 'restored');
  const named = path.join(dir, 'named.flowz');
  json(flow(['compress', folder, '--run', run, '--out', named, '--limit', '5', '--json'], dir), 'compress folder');
  const d = json(flow(['decompress', named, '--out', path.join(dir, 'named-out'), '--json'], dir), 'decompress folder');
  assert.deepEqual(d.images.map((e: { file: string }) => path.basename(e.file)), ['00.png', '01.png', '02.png', '03.png', '04.png']);
  assert.deepEqual(d.images.map((e: { sha256: string }) => e.sha256), originals.slice(0, 5));

  const single = path.join(dir, 'one.flowz');
  json(flow(['compress', path.join(folder, '03.png'), '--run', run, '--out', single, '--json'], dir), 'compress one file');
  const one = path.join(dir, 'three.png');
  json(flow(['decompress', single, '--out', one, '--json'], dir), 'decompress one');
  assert.equal(await pngSha(one), originals[3]);
});

test('refused with exit 2 and one line: truncated, bit-flipped, a chunk that decodes wrong, another checkpoint, another backend, a non-integer model, a wrong-sized image', async () => {
  const bytes = fs.readFileSync(archive);
  const cut = path.join(dir, 'cut.flowz');
  fs.writeFileSync(cut, bytes.subarray(0, bytes.length - 100));
  refused(flow(['decompress', cut, '--out', path.join(dir, 'x')], dir), /cut\.flowz: truncated: \d+ bytes, its header says \d+/);

  const flipped = Buffer.from(bytes);
  flipped[Math.floor(bytes.length / 2)]! ^= 0x10;
  const flip = path.join(dir, 'flip.flowz');
  fs.writeFileSync(flip, flipped);
  refused(flow(['decompress', flip, '--out', path.join(dir, 'x')], dir), /flip\.flowz: corrupted: the trailing sha256 does not match/);

  // A well-formed file whose chunk 1 digest is not what its stream decodes to: nothing may be written.
  const c = decodeContainer(bytes, 'test.flowz');
  c.chunks[1]!.pixelSha256 = c.chunks[1]!.pixelSha256.map((b) => b ^ 0xff);
  const lie = path.join(dir, 'lie.flowz');
  fs.writeFileSync(lie, encodeContainer(c));
  const lieOut = path.join(dir, 'lie-out');
  refused(flow(['decompress', lie, '--out', lieOut, '--quiet'], dir), /lie\.flowz: chunk 1 \(images 16\.\.31 of the file\) decodes to pixels whose sha256 \w+ is not the stored \w+: nothing written/);
  assert.ok(!fs.existsSync(lieOut), 'no image written');

  refused(flow(['decompress', archive, '--run', other, '--out', path.join(dir, 'x')], dir), /test\.flowz was compressed with checkpoint [0-9a-f]{12} \(run .*idf step 6\); run .*other step 1 is [0-9a-f]{12}/);

  // cpu's arithmetic is not wasm's fast kernels', so the codec's fingerprint differs.
  refused(flow(['decompress', archive, '--out', path.join(dir, 'x'), '--backend', 'cpu'], dir), /test\.flowz was encoded on wasm with arithmetic [0-9a-f]{12}; this cpu gives [0-9a-f]{12}: decoding would not be exact/);

  refused(flow(['compress', 'embedded:test', '--run', glow, '--out', path.join(dir, 'glow.flowz'), '--quiet'], dir), /idf|integer/i);

  const small = path.join(dir, 'small.png');
  await sharp(Buffer.alloc(25, 9), { raw: { width: 5, height: 5, channels: 1 } }).toColourspace('b-w').png().toFile(small);
  refused(flow(['compress', small, '--run', run, '--out', path.join(dir, 'small.flowz'), '--quiet'], dir), /small\.png: decodes to 5x5x1 pixels \(HxWxC\); the model takes 28x28x1/);
  assert.ok(!fs.existsSync(path.join(dir, 'small.flowz')));
});
