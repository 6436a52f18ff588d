// `flow ood` end to end on a tiny Glow trained on digits, with uniform-noise images as the OOD set:
// a known answer (noise is far less likely than digits and incompressible as PNG).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { flow, tempDir, writeYaml, TINY_CONFIG, ROOT, type RunResult } from './helpers.js';
import { Rng } from '../src/rng.js';

// Until src/cli/main.ts registers the command, drive it through a stand-in entry point that does what
// main does: register on a commander program, one line + exit code for UserError.
const ENTRY = `
import { Command } from 'commander';
const { register } = await import(${JSON.stringify(pathToFileURL(path.join(ROOT, 'dist', 'src', 'cli', 'ood.js')).href)});
const program = new Command('flow').exitOverride();
register(program);
try { await program.parseAsync(process.argv); }
catch (err) {
  if (String(err.code ?? '').startsWith('commander.')) process.exitCode = err.exitCode === 0 ? 0 : 2;
  else if (typeof err.exitCode === 'number') { process.stderr.write('flow: ' + err.message + '\\n'); process.exitCode = err.exitCode; }
  else { process.stderr.write('flow: internal error: ' + err.message + '\\n'); process.exitCode = 1; }
}`;

let registered: boolean | undefined;
function flowOod(args: string[], cwd: string): RunResult {
  registered ??= /^\s+ood\b/m.test(flow(['--help'], cwd).stdout);
  if (registered) return flow(['ood', ...args], cwd);
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', ENTRY, 'flow', 'ood', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 240_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

let dir = '';
let runDir = '';
let noiseDir = '';

before(async () => {
  dir = tempDir('flow-ood-');
  const cfg = writeYaml(dir, 'tiny.yaml', TINY_CONFIG);
  const tr = flow(['train', cfg, '--quiet', '--set', 'train.sample_grid=0'], dir);
  assert.equal(tr.code, 0, tr.stderr);
  runDir = path.join(dir, 'runs', 'tiny');
  // 48 uniform-noise 28x28 grey PNGs: an image folder the data loader reads like any other.
  noiseDir = path.join(dir, 'noise');
  fs.mkdirSync(noiseDir);
  const rng = new Rng(9);
  for (let i = 0; i < 48; i++) {
    const px = Uint8Array.from({ length: 28 * 28 }, () => rng.int(256));
    await sharp(px, { raw: { width: 28, height: 28, channels: 1 } }).toColourspace('b-w').png().toFile(path.join(noiseDir, `n${String(i).padStart(2, '0')}.png`));
  }
});

test('flow ood --json: scores, AUROCs, typicality calibration on unseen training digits, histogram PNG', async () => {
  const plot = path.join(dir, 'plots', 'ood.png');
  const args = ['--run', runDir, '--out', `images:${noiseDir}:all`, '--batch-size', '4', '--fpr', '0.05', '--train-examples', '200', '--calibration-examples', '200', '--plot', plot, '--json', '--backend', 'wasm'];
  const r = flowOod(args, dir);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  // In: the run's data (embedded digits, test_limit 128); out: every noise image.
  assert.equal(j.in.n, 128);
  assert.equal(j.in.split, 'test');
  assert.equal(j.out.n, 48);
  assert.equal(j.out.split, 'all');
  assert.equal(j.dims, 784);
  assert.ok(j.in.mean_bpd > 0 && j.in.mean_bpd < j.out.mean_bpd, `digits ${j.in.mean_bpd} vs noise ${j.out.mean_bpd} bits/dim`);
  assert.equal(j.paradox, false);
  assert.ok(j.auroc.likelihood > 0.99, `likelihood AUROC ${j.auroc.likelihood}`);
  // Noise does not compress: PNG needs about 8 bits per pixel; digits (mostly black) far fewer.
  assert.ok(j.out.mean_png_bpd > 7.5 && j.in.mean_png_bpd < 4, `PNG bits/dim in ${j.in.mean_png_bpd}, out ${j.out.mean_png_bpd}`);
  assert.ok(Math.abs(j.complexity.out_mean_score - (j.out.mean_bpd - j.out.mean_png_bpd)) < 1e-9);
  assert.ok(j.auroc.complexity >= 0 && j.auroc.complexity <= 1);
  // The run trained on the first 512 training digits (data.limit): the others were never seen.
  assert.equal(j.typicality.calibration, 'held-out-train');
  assert.equal(j.typicality.train_examples, 200);
  assert.equal(j.typicality.calibration_examples, 200);
  assert.equal(j.typicality.in_batches, 32);
  assert.equal(j.typicality.out_batches, 12);
  assert.equal(j.typicality.tpr, 1);
  assert.ok(j.typicality.fpr <= 0.25, `in-batch FPR ${j.typicality.fpr}`);
  assert.ok(j.auroc.typicality > 0.99);
  const meta = await sharp(plot).metadata();
  assert.equal(meta.format, 'png');
  assert.ok(meta.width! > 400 && meta.height! > 200, `${meta.width}x${meta.height}`);
  assert.equal(j.plot, plot);

  // The run keeps the result as ood.json, where flow export --web finds its calibration.
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(runDir, 'ood.json'), 'utf8')), j);

  // Same seed, same numbers.
  const again = JSON.parse(flowOod(args.filter((a) => a !== '--plot' && a !== plot), dir).stdout);
  assert.deepEqual(again.auroc, j.auroc);
});

test('flow ood human output, --limit and --calibrate-on test', () => {
  const r = flowOod(['--run', runDir, '--out', `images:${noiseDir}?split=all`, '--batch-size', '8', '--limit', '40', '--calibrate-on', 'test', '--backend', 'wasm'], dir);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^in {2}embedded-mnist test: n=40, bpd \d+\.\d{4}/m);
  assert.match(r.stdout, /^out .* all: n=40/m);
  assert.match(r.stdout, /likelihood \(score = bpd\) +[01]\.\d{4}/);
  assert.match(r.stdout, /complexity-corrected .* +[01]\.\d{4}/);
  assert.match(r.stdout, /typicality \(per batch of 8\) +[01]\.\d{4}/);
  assert.match(r.stdout, /bootstrapped from 20 examples, a random half of the in set/);
  assert.match(r.stderr, /scoring embedded-mnist test: 40 examples/);
});

test('flow ood bad input: one line, exit 2', async () => {
  const rgb = path.join(dir, 'rgb32');
  fs.mkdirSync(rgb);
  for (let i = 0; i < 4; i++) {
    await sharp(new Uint8Array(32 * 32 * 3).fill(40 * i), { raw: { width: 32, height: 32, channels: 3 } }).png().toFile(path.join(rgb, `c${i}.png`));
  }
  const cases: Array<[string[], RegExp]> = [
    [['--out', path.join(dir, 'missing')], /missing.*does not exist/],
    [['--out', `images:${rgb}:all`], /32x32x3 but the model takes 28x28x1.*image_size=28&channels=1/],
    [['--out', 'embedded?split=everything'], /split=everything: expected one of train, test, all/],
    [['--out', `images:${noiseDir}:all`, '--batch-size', '100'], /--batch-size 100: the typicality test needs at least 100 .* \(have 48\)/],
    [['--out', `images:${noiseDir}:all`, '--fpr', '1.5'], /--fpr 1\.5/],
    [['--out', `images:${noiseDir}:all`, '--plot', 'hist.jpg'], /--plot hist\.jpg: expected a \.png or \.svg/],
  ];
  for (const [args, pattern] of cases) {
    const r = flowOod(['--run', runDir, '--backend', 'wasm', '--quiet', ...args], dir);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `one line for ${args.join(' ')}: ${r.stderr}`);
    assert.match(lines[0]!, pattern);
  }
  // --out is required.
  assert.equal(flowOod(['--run', runDir], dir).code, 2);
});

test('pngComplexityBits codes grey images as grey PNGs (about 8 bits per noise pixel, not 24)', async () => {
  const { pngComplexityBits } = await import('../src/ood/scores.js');
  const rng = new Rng(4);
  const noise = Uint8Array.from({ length: 28 * 28 }, () => rng.int(256));
  const bits = await pngComplexityBits(noise, 28, 28, 1);
  assert.ok(bits >= 8 * 784 && bits < 8 * 784 + 8 * 200, `${bits} bits for 784 noise pixels`);
  const flat = await pngComplexityBits(new Uint8Array(784), 28, 28, 1);
  assert.ok(flat < 8 * 120, `${flat} bits for a black image`);
});

test('ood data specs: a split by :suffix or ?split=, the rest is parseDataSpec', async () => {
  const { parseOodSpec, sameTrainingSplit } = await import('../src/ood/spec.js');
  const { UserError } = await import('../src/errors.js');
  const fashion = parseOodSpec('fashion-mnist:train');
  assert.equal(fashion.split, 'train');
  assert.equal(fashion.data.source, 'idx');
  assert.equal(fashion.data.path, (await import('../src/data/index.js')).fashionMnistPath());
  assert.deepEqual([parseOodSpec('embedded').split, parseOodSpec('embedded:all').split, parseOodSpec('mnist?split=train').split], ['test', 'all', 'train']);
  assert.equal(parseOodSpec('embedded', 'all').split, 'all');
  const idx = parseOodSpec('idx:/data/mnist:test');
  assert.deepEqual([idx.data.source, idx.data.path, idx.split], ['idx', '/data/mnist', 'test']);
  // 'images:test' is the folder "test", not a split of nothing.
  const folder = parseOodSpec('images:test');
  assert.deepEqual([folder.data.source, folder.data.path, folder.split], ['images', 'test', 'test']);
  const opts = parseOodSpec('images:faces?image_size=28&split=all&channels=1');
  assert.deepEqual([opts.data.image_size, opts.data.channels, opts.split], [28, 1, 'all']);
  assert.throws(() => parseOodSpec('embedded:all?split=test'), UserError);
  assert.throws(() => parseOodSpec('embedded?split=val'), /split=val: expected one of train, test, all/);
  assert.ok(sameTrainingSplit(parseOodSpec('fashion-mnist').data, { ...fashion.data, limit: 55000 }));
  assert.ok(!sameTrainingSplit(parseOodSpec('fashion-mnist').data, parseOodSpec('embedded').data));
});
