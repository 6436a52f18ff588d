// End-to-end: the real bin/flow trains, samples and evaluates a tiny Glow.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { flow, tempDir, writeYaml, TINY_CONFIG } from './helpers.js';

test('train -> sample -> eval on the real CLI', async () => {
  const dir = tempDir();
  const cfg = writeYaml(dir, 'tiny.yaml', TINY_CONFIG);

  // Baseline: the same model after a single step is (almost) untrained.
  const base = flow(['train', cfg, '--name', 'base', '--max-steps', '1', '--json', '--quiet'], dir);
  assert.equal(base.code, 0, base.stderr);

  const tr = flow(['train', cfg], dir);
  assert.equal(tr.code, 0, tr.stderr);
  assert.match(tr.stderr, /backend: wasm \(CPU[,)]/);
  const events = tr.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(events.some((e) => e.event === 'progress' && e.step === 40 && Number.isFinite(e.bpd)), 'NDJSON progress up to step 40');
  assert.ok(fs.existsSync(path.join(dir, 'runs', 'tiny', 'checkpoints')));
  assert.equal(fs.readlinkSync(path.join(dir, 'runs', 'latest')), 'tiny');
  assert.ok(fs.readdirSync(path.join(dir, 'runs', 'tiny', 'samples')).some((f) => f.endsWith('.png')), 'sample grid beside the checkpoint');
  const saved = fs.readFileSync(path.join(dir, 'runs', 'tiny', 'config.yaml'), 'utf8');
  assert.match(saved, /width: 16/);

  const out = path.join(dir, 's.png');
  const s = flow(['sample', '--n', '16', '--out', out, '--seed', '3'], dir);
  assert.equal(s.code, 0, s.stderr);
  const meta = await sharp(out).metadata();
  // 4x4 grid of 28x28 images with 2-pixel borders, below a caption strip (run, step, seed, temperature).
  assert.equal(meta.width, 4 * 30 + 2);
  assert.ok(meta.height! > 4 * 30 + 2 + 10, `caption strip: height ${meta.height}`);
  const bare = path.join(dir, 'bare.png');
  assert.equal(flow(['sample', '--n', '16', '--out', bare, '--seed', '3', '--no-labels'], dir).code, 0);
  const bareMeta = await sharp(bare).metadata();
  assert.deepEqual([bareMeta.width, bareMeta.height], [4 * 30 + 2, 4 * 30 + 2], '--no-labels: the bare grid');
  // A temperature sweep: one row per temperature, labelled on the left.
  const sweep = path.join(dir, 'sweep.png');
  assert.equal(flow(['sample', '--n', '8', '--temperature', '0.5,1', '--out', sweep, '--no-labels'], dir).code, 0);
  assert.deepEqual([(await sharp(sweep).metadata()).width, (await sharp(sweep).metadata()).height], [4 * 30 + 2, 2 * 30 + 2]);
  assert.equal(flow(['sample', '--n', '8', '--temperature', '0.5,1', '--out', sweep], dir).code, 0);
  assert.ok((await sharp(sweep).metadata()).width! > 4 * 30 + 2 + 20, 'row labels widen the sweep grid');
  const again = path.join(dir, 's2.png');
  assert.equal(flow(['sample', '--n', '16', '--out', again, '--seed', '3'], dir).code, 0);
  assert.deepEqual(fs.readFileSync(out), fs.readFileSync(again), 'same seed -> same pixels');

  const each = path.join(dir, 'each');
  assert.equal(flow(['sample', '--n', '3', '--out-dir', each], dir).code, 0);
  assert.equal(fs.readdirSync(each).filter((f) => f.endsWith('.png')).length, 3);

  const ev = flow(['eval', '--bpd', '--json', '--per-example', path.join(dir, 'pe.csv')], dir);
  assert.equal(ev.code, 0, ev.stderr);
  const r = JSON.parse(ev.stdout);
  assert.equal(r.split, 'test');
  assert.equal(r.n, 128);
  assert.ok(Number.isFinite(r.bpd) && r.bpd > 0 && r.bpd < 8, `bpd ${r.bpd}`);
  assert.ok(r.stderr > 0);
  const rows = fs.readFileSync(path.join(dir, 'pe.csv'), 'utf8').trim().split('\n');
  assert.equal(rows.length, 129);

  const evBase = flow(['eval', '--bpd', '--json', '--run', path.join(dir, 'runs', 'base')], dir);
  assert.equal(evBase.code, 0, evBase.stderr);
  const rb = JSON.parse(evBase.stdout);
  assert.ok(r.bpd < rb.bpd - 0.1, `trained ${r.bpd} should beat untrained ${rb.bpd}`);
});

test('bad configs give one clear line and exit 2', () => {
  const dir = tempDir();
  const cases: Array<[string, RegExp]> = [
    ['model:\n  dept: 3\n', /model\.dept.*depth/],
    ['model:\n  depth: abc\n', /model\.depth/],
    ['model: [1, 2\n', /bad\.yaml/],
    ['train:\n  batch_size: 0\n', /train\.batch_size/],
    ['data:\n  n_bits: 9\n', /data\.n_bits/],
  ];
  for (const [text, pattern] of cases) {
    const file = writeYaml(dir, 'bad.yaml', text);
    const r = flow(['train', file], dir);
    assert.equal(r.code, 2, `${text}: ${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `one line for ${JSON.stringify(text)}: ${r.stderr}`);
    assert.match(lines[0]!, pattern);
  }
  const missing = flow(['train', 'nope.yaml'], dir);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /nope\.yaml/);
  const levels = writeYaml(dir, 'levels.yaml', 'data:\n  source: embedded\n  limit: 64\nmodel:\n  levels: 3\n');
  const lv = flow(['train', levels, '--dry-run'], dir);
  assert.equal(lv.code, 2, lv.stderr);
  assert.match(lv.stderr, /levels/);
});

test('unknown flags and backends exit 2; doctor runs', () => {
  const dir = tempDir();
  assert.equal(flow(['sample', '--bogus'], dir).code, 2);
  const tfBackend = flow(['train', writeYaml(dir, 'c.yaml', TINY_CONFIG), '--backend', 'tensorflow'], dir);
  assert.equal(tfBackend.code, 2);
  assert.match(tfBackend.stderr, /tfjs-node-gpu/);
  assert.match(tfBackend.stderr, /CUDA 11\.2/);
  const doc = flow(['doctor', '--json'], dir);
  assert.equal(doc.code, 0, doc.stderr);
  JSON.parse(doc.stdout);
  // --require-gpu fails exactly when doctor finds no usable GPU (here: none; on a GPU host: passes).
  const req = flow(['doctor', '--require-gpu'], dir);
  assert.equal(req.code, JSON.parse(doc.stdout).gpu_usable ? 0 : 1, req.stderr);
});

test('class-conditional Glow: trains with the class loss, samples one class, reports per-class bpd', async () => {
  const dir = tempDir();
  const cfg = writeYaml(dir, 'cond.yaml', TINY_CONFIG.replace('max_steps: 40', 'max_steps: 10').replace('  init_batch: 64', '  init_batch: 64\n  conditional: classes\n  class_loss_weight: 1'));
  const tr = flow(['train', cfg, '--json'], dir);
  assert.equal(tr.code, 0, tr.stderr);
  const summary = JSON.parse(tr.stdout.trim().split('\n').pop()!);
  assert.ok(Number.isFinite(summary.train_bpd));
  const a = path.join(dir, 'c3.png');
  const b = path.join(dir, 'c5.png');
  assert.equal(flow(['sample', '--n', '4', '--class', '3', '--out', a], dir).code, 0);
  assert.equal(flow(['sample', '--n', '4', '--class', '5', '--out', b], dir).code, 0);
  assert.notDeepEqual(fs.readFileSync(a), fs.readFileSync(b), 'the class changes the samples');
  const bad = flow(['sample', '--class', '10'], dir);
  assert.equal(bad.code, 2);
  const ev = JSON.parse(flow(['eval', '--bpd', '--json'], dir).stdout);
  assert.equal(Object.keys(ev.per_class).length, 10);
});

test('sharded eval and sample merge to exactly the unsharded results', () => {
  const dir = tempDir();
  const cfg = writeYaml(dir, 'tiny.yaml', TINY_CONFIG.replace('max_steps: 40', 'max_steps: 10'));
  assert.equal(flow(['train', cfg, '--quiet'], dir).code, 0);
  const whole = JSON.parse(flow(['eval', '--bpd', '--json', '--quiet', '--per-example', path.join(dir, 'whole.csv')], dir).stdout);
  const parts = [0, 1, 2].map((i) => path.join(dir, `part-${i}.json`));
  parts.forEach((p, i) => assert.equal(flow(['eval', '--bpd', '--shard', `${i}/3`, '--out', p, '--quiet'], dir).code, 0));
  const merged = path.join(dir, 'merged.json');
  assert.equal(flow(['merge', ...parts, '--out', merged], dir).code, 0);
  const m = JSON.parse(fs.readFileSync(merged, 'utf8'));
  assert.equal(m.bpd, whole.bpd, 'same mean, bitwise');
  assert.equal(m.stderr, whole.stderr);
  assert.equal(m.n, whole.n);
  const wholeRows = fs.readFileSync(path.join(dir, 'whole.csv'), 'utf8').trim().split('\n').slice(1).map((l) => Number(l.split(',')[2]));
  assert.deepEqual(m.per_example.map((e: { bpd: number }) => e.bpd), wholeRows, 'same per-example bpd');

  const grid = path.join(dir, 'grid.png');
  assert.equal(flow(['sample', '--n', '10', '--seed', '5', '--out', grid, '--quiet'], dir).code, 0);
  const shardDir = path.join(dir, 'shards');
  for (const i of [0, 1, 2]) assert.equal(flow(['sample', '--n', '10', '--seed', '5', '--shard', `${i}/3`, '--out-dir', shardDir, '--quiet'], dir).code, 0);
  const mergedGrid = path.join(dir, 'merged.png');
  const parts2 = [0, 1, 2].map((i) => path.join(shardDir, `part-${i}-of-3.json`));
  assert.equal(flow(['merge', ...parts2, '--out', mergedGrid], dir).code, 0);
  assert.deepEqual(fs.readFileSync(mergedGrid), fs.readFileSync(grid), 'merged sample grid equals the unsharded one');

  // --threads 2: a worker thread takes a share of every batch; results are per example, so unchanged.
  const threaded = JSON.parse(flow(['eval', '--bpd', '--json', '--quiet', '--threads', '2', '--per-example', path.join(dir, 'threads.csv')], dir).stdout);
  assert.equal(threaded.bpd, whole.bpd, 'eval --threads 2: same mean, bitwise');
  assert.equal(fs.readFileSync(path.join(dir, 'threads.csv'), 'utf8'), fs.readFileSync(path.join(dir, 'whole.csv'), 'utf8'), 'eval --threads 2: same per-example values');
  const threadedGrid = path.join(dir, 'threads.png');
  assert.equal(flow(['sample', '--n', '10', '--seed', '5', '--out', threadedGrid, '--quiet', '--threads', '2'], dir).code, 0);
  assert.deepEqual(fs.readFileSync(threadedGrid), fs.readFileSync(grid), 'sample --threads 2 equals the one-thread grid');
  const bad = flow(['eval', '--bpd', '--threads', '0'], dir);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--threads/);
});

test('Polyak averaging: the run scores and samples with the averaged weights, and so do flow eval and sample', () => {
  const dir = tempDir();
  const cfg = writeYaml(dir, 'avg.yaml', TINY_CONFIG.replace('max_steps: 40', 'max_steps: 20').replace('lr: 0.003', 'lr: 0.003\n  average_decay: 0.95'));
  const tr = flow(['train', cfg, '--json', '--quiet'], dir);
  assert.equal(tr.code, 0, tr.stderr);
  const summary = JSON.parse(tr.stdout.trim().split('\n').pop()!);
  const avg = JSON.parse(flow(['eval', '--bpd', '--json', '--quiet'], dir).stdout);
  assert.equal(avg.weights, 'average');
  // The same 128 test examples, seed and noise as the trainer's test bpd: equal to the bit.
  assert.equal(avg.bpd, summary.test_bpd, 'flow eval reproduces the run\'s (averaged) test bpd');
  const raw = JSON.parse(flow(['eval', '--bpd', '--json', '--quiet', '--weights', 'raw'], dir).stdout);
  assert.equal(raw.weights, 'raw');
  assert.notEqual(raw.bpd, avg.bpd, 'the raw weights score differently');
  const a = path.join(dir, 'a.png');
  const r = path.join(dir, 'r.png');
  assert.equal(flow(['sample', '--n', '4', '--out', a, '--quiet'], dir).code, 0);
  assert.equal(flow(['sample', '--n', '4', '--out', r, '--quiet', '--weights', 'raw'], dir).code, 0);
  assert.notDeepEqual(fs.readFileSync(a), fs.readFileSync(r), 'samples differ between averaged and raw weights');
  const bad = flow(['eval', '--bpd', '--weights', 'best'], dir);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--weights best: expected average or raw/);
});
