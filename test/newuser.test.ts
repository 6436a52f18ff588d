// What a new user trips over (issue #11, item 7): output formats, human log lines, flag names in errors,
// single "flow:" prefixes, `eval --limit 0`, unreadable lock files, empty configs, the check verdict.
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { flow, tempDir, writeYaml, ROOT, TINY_CONFIG } from './helpers.js';
import { acquireRunLock } from '../src/io/lock.js';
import { textEvent } from '../src/train/logger.js';
import { imageFormatOf } from '../src/io/png.js';
import { UserError } from '../src/errors.js';

test('a lock file taken over says why it was stale: unreadable content vs. a process that is gone', () => {
  const runDir = tempDir('flow-lock-');
  fs.writeFileSync(path.join(runDir, '.lock'), 'garbage\n');
  const g = acquireRunLock(runDir);
  assert.equal(g.tookOverStale, true);
  assert.equal(g.staleReason, `${path.join(runDir, '.lock')} was unreadable: "garbage\\n" is not a flow lock ({pid, host, startedAt} JSON)`);
  g.release();
  // A pid that has exited (spawnSync reaps it).
  const dead = spawnSync(process.execPath, ['-e', '']).pid!;
  fs.writeFileSync(path.join(runDir, '.lock'), JSON.stringify({ pid: dead, host: os.hostname(), startedAt: '2020-01-01T00:00:00.000Z' }));
  const d = acquireRunLock(runDir);
  assert.equal(d.staleReason, `its process, pid ${dead}, is gone`);
  d.release();
  const fresh = acquireRunLock(runDir);
  assert.equal(fresh.tookOverStale, false);
  assert.equal(fresh.staleReason, undefined);
  fresh.release();
});

test('text log events are human lines, not JSON', () => {
  assert.equal(textEvent({ event: 'nonfinite_step_skipped', time: 'x', step: 4, loss: null, grad_norm: 12.345678, in_a_row: 1 }), 'nonfinite step skipped: step 4, loss null, grad norm 12.3457, in a row 1');
  assert.equal(textEvent({ event: 'rollback', to_step: 10, lr_scale: 0.5 }), 'rollback: to step 10, lr scale 0.5');
  assert.equal(textEvent({ event: 'eval', step: 20, test_bpd: 0.000012345 }), 'eval: step 20, test bpd 1.234e-5');
});

test('image output names: .png and .jpg/.jpeg, anything else refused', () => {
  assert.equal(imageFormatOf('a/b.PNG'), 'png');
  assert.equal(imageFormatOf('x.jpg'), 'jpeg');
  assert.equal(imageFormatOf('x.jpeg'), 'jpeg');
  assert.throws(() => imageFormatOf('x.gif'), (e: unknown) => e instanceof UserError && e.message === '--out x.gif: cannot tell the image format from the name; expected a .png, .jpg or .jpeg file name');
  assert.throws(() => imageFormatOf('grid'), UserError);
});

/** One stderr line starting with a single 'flow: ' and exit 2. */
function badInput(r: { code: number | null; stderr: string }, pattern: RegExp): string {
  assert.equal(r.code, 2, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.ok(!/^flow: flow /.test(lines[0]!), `double prefix: ${lines[0]}`);
  assert.match(lines[0]!, pattern);
  return lines[0]!;
}

test('the CLI: text logs, --out .jpg, flag names in errors, eval --limit 0, single prefixes, unreadable lock, empty config, check verdict', async () => {
  const dir = tempDir();
  const cfg = writeYaml(dir, 'tiny.yaml', TINY_CONFIG.replace('max_steps: 40', 'max_steps: 4').replace('checkpoint_every: 20', 'checkpoint_every: 2').replace('sample_grid: 16', 'sample_grid: 0'));

  // An unreadable lock left in the run directory is taken over, and the note says it was unreadable.
  fs.mkdirSync(path.join(dir, 'runs', 'tiny'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'runs', 'tiny', '.lock'), 'not json');
  const tr = flow(['train', cfg, '--log-format', 'text'], dir);
  assert.equal(tr.code, 0, tr.stderr);
  assert.match(tr.stderr, /took over a stale lock in .* \(.*\.lock was unreadable: "not json" is not a flow lock/);
  assert.doesNotMatch(tr.stderr, /its process is gone/);
  const checkpoints = tr.stdout.split('\n').filter((l) => l.startsWith('checkpoint'));
  assert.ok(checkpoints.length >= 2, tr.stdout);
  for (const l of checkpoints) assert.match(l, /^checkpoint step \d+(, test bpd \d+\.\d{4})?: \S+step-\d+$/);
  assert.ok(!tr.stdout.includes('{'), `no JSON in text logs:\n${tr.stdout}`);

  // --out names the format.
  const jpg = path.join(dir, 'grid.jpg');
  const s = flow(['sample', '--n', '4', '--out', jpg, '--quiet'], dir);
  assert.equal(s.code, 0, s.stderr);
  assert.equal((await sharp(jpg).metadata()).format, 'jpeg');
  const png = path.join(dir, 'grid.png');
  assert.equal(flow(['sample', '--n', '4', '--out', png, '--quiet'], dir).code, 0);
  assert.equal((await sharp(png).metadata()).format, 'png');
  badInput(flow(['sample', '--n', '4', '--out', path.join(dir, 'grid.gif')], dir), /--out .*grid\.gif: cannot tell the image format from the name; expected a \.png, \.jpg or \.jpeg/);
  assert.ok(!fs.existsSync(path.join(dir, 'grid.gif')));

  // eval --limit 0 means all, as for ood --limit and data.limit.
  const all = flow(['eval', '--bpd', '--json', '--limit', '0', '--quiet'], dir);
  assert.equal(all.code, 0, all.stderr);
  assert.equal(JSON.parse(all.stdout).n, 128);
  const two = flow(['eval', '--bpd', '--json', '--limit', '2', '--quiet'], dir);
  assert.equal(JSON.parse(two.stdout).n, 2);

  // One 'flow:' prefix.
  assert.equal(badInput(flow(['eval'], dir), /^flow: eval: say what to evaluate/), badInput(flow(['eval'], dir), /--bpd/));
  const part = path.join(dir, 'p0.json');
  assert.equal(flow(['eval', '--bpd', '--limit', '4', '--shard', '0/2', '--out', part, '--quiet'], dir).code, 0);
  badInput(flow(['merge', part, '--out', path.join(dir, 'r.json')], dir), /^flow: merge: missing shard 1/);

  // Errors quote the flag the user typed.
  assert.equal(badInput(flow(['train', cfg, '--name', 'a/b'], dir), /./), 'flow: --name a/b: name: expected a string (letters, digits, . _ - only), got "a/b"');
  assert.equal(badInput(flow(['train', cfg, '--backend', 'gpu'], dir), /./), `flow: --backend gpu: backend: expected one of 'auto', 'tensorflow', 'webgpu', 'wasm', 'cpu', got "gpu"`);

  // An empty config is refused instead of training defaults into runs/run.
  const empty = writeYaml(dir, 'empty.yaml', '# TODO\n');
  badInput(flow(['train', empty], dir), /empty\.yaml: the config file is empty/);
  assert.ok(!fs.existsSync(path.join(dir, 'runs', 'run')));

  // The verdict names only the checks that ran.
  const skipped = flow(['check', '--n', '8', '--jacobian', '0', '--no-ood', '--backend', 'wasm', '--quiet'], dir);
  assert.equal(skipped.code, 0, skipped.stdout + skipped.stderr);
  assert.match(skipped.stdout, /^OK: every data check within tolerance \(Jacobian check skipped: disabled\)/m);
  assert.doesNotMatch(skipped.stdout, /data and Jacobian/);
});

test('the image-folder configs dry-run on a folder laid out as they document (one subfolder, mixed sizes, one bad file)', async () => {
  const dir = tempDir();
  const sub = path.join(dir, 'celeba', 'img_align_celeba');
  fs.mkdirSync(sub, { recursive: true });
  for (let i = 0; i < 12; i++) {
    const [w, h] = i % 2 ? [89, 109] : [70, 70]; // CelebA's aligned crops are 178x218: not square
    await sharp({ create: { width: w, height: h, channels: 3, background: { r: 20 * i, g: 100, b: 200 - 10 * i } } }).jpeg().toFile(path.join(sub, `${String(i).padStart(6, '0')}.jpg`));
  }
  fs.writeFileSync(path.join(sub, '999999.jpg'), 'truncated download');
  const configs = path.join(ROOT, 'configs');
  for (const [name, side] of [['celeba64.yaml', 64], ['celeba32.yaml', 32], ['my-images.yaml', 32]] as const) {
    // Small model and batch: the point is the file, its data section and the folder layout, not a 40M-parameter build.
    const r = flow(
      ['train', path.join(configs, name), '--dry-run', '--json', '--set', `data.path=${path.join(dir, 'celeba')}`, '--set', 'model.depth=1', '--set', 'model.width=8',
        '--set', 'train.batch_size=4', '--set', 'data.test_fraction=0.2', '--set', 'data.skip_bad=true', '--set', `runs_dir=${path.join(dir, 'runs')}`],
      dir,
      { FLOW_DATA: '' },
    );
    assert.equal(r.code, 0, `${name}: ${r.stderr}`);
    const s = JSON.parse(r.stdout);
    assert.equal(s.data_ok, true, `${name}: ${r.stdout}`);
    assert.deepEqual(s.data_shape, [side, side, 3], name);
    assert.match(r.stderr, /data: skipped 1 of 13 images .* that cannot be decoded \(data\.skip_bad\)/, name);
  }
});

test('no machine-specific absolute paths in README, docs, configs, scripts or src; Debian\'s dataset folder only as a documented FLOW_DATA value', () => {
  const files: string[] = ['README.md'];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(path.join(ROOT, d), { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (!/\.(png|jpg)$/.test(e.name)) files.push(p);
    }
  };
  for (const d of ['docs', 'configs', 'scripts', 'src']) walk(d);
  assert.ok(files.length > 20);
  for (const f of files) {
    const text = fs.readFileSync(path.join(ROOT, f), 'utf8');
    for (const m of text.matchAll(/\/(work|home|root)\/[\w.-]/g)) assert.fail(`${f}: machine-specific path near ${JSON.stringify(text.slice(m.index!, m.index! + 40))}`);
    // A silent default would be `/usr/share/datasets` on its own; documenting the package's location reads FLOW_DATA=/usr/share/datasets.
    // (docs/*.json are measured records: the run that made them read Debian's copy.)
    if (f.endsWith('.json')) continue;
    for (const m of text.matchAll(/\/usr\/share\/datasets/g)) {
      assert.match(text.slice(Math.max(0, m.index! - 10), m.index!), /FLOW_DATA=$/, `${f}: /usr/share/datasets outside a FLOW_DATA=... hint`);
    }
  }
});

test('flow ood on a vector run: one "flow:" prefix', () => {
  const dir = tempDir();
  const cfg = writeYaml(dir, 'moons.yaml', 'name: moons\nbackend: wasm\ndata:\n  source: toy\n  toy_size: 600\nmodel:\n  family: realnvp\n  depth: 2\n  width: 8\ntrain:\n  batch_size: 64\n  max_steps: 2\n  sample_grid: 0\n  eval_examples: 60\n');
  assert.equal(flow(['train', cfg, '--quiet'], dir).code, 0);
  badInput(flow(['ood', '--out', 'embedded', '--backend', 'wasm', '--quiet'], dir), /^flow: ood: scores images; this run models 2-d vectors$/);
});
