import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  assertCompatible,
  bestCheckpoint,
  latestCheckpoint,
  checkpointProblem,
  listCheckpoints,
  loadCheckpoint,
  newestCheckpoint,
  readManifest,
  saveCheckpoint,
  type CheckpointContent,
  type TensorRecord,
} from '../src/io/checkpoint.js';
import { StorageError, atomicWriteFile } from '../src/io/atomic.js';
import { acquireRunLock, readRunLock } from '../src/io/lock.js';
import { ConfigSchema, type Config } from '../src/config/schema.js';
import { UserError } from '../src/errors.js';
import { parseTrainState } from '../src/io/train-state.js';
import { VERSION } from '../src/version.js';

const here = dirname(fileURLToPath(import.meta.url));
const checkpointModule = pathToFileURL(resolve(here, '../src/io/checkpoint.js')).href;
const lockModule = pathToFileURL(resolve(here, '../src/io/lock.js')).href;
const schemaModule = pathToFileURL(resolve(here, '../src/config/schema.js')).href;

const root = mkdtempSync(join(tmpdir(), 'flow-ckpt-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
let runCounter = 0;
const newRunDir = (): string => join(root, `run-${runCounter++}`);

const cfg: Config = ConfigSchema.parse({});

function tensors(step: number): TensorRecord[] {
  const w = new Float32Array(3 * 4 * 5);
  for (let i = 0; i < w.length; i++) w[i] = step + i / 7;
  return [
    { name: 'levels.0.steps.0.actnorm.logs', shape: [3, 4, 5], dtype: 'float32', data: w },
    { name: 'optimizer.step', shape: [], dtype: 'int32', data: new Int32Array([step]) },
  ];
}

function content(step: number, metrics?: Record<string, number>): CheckpointContent {
  return { step, tensors: tensors(step), state: { step, rng: 12345, iterator: { epoch: 1, cursor: step } }, config: cfg, metrics };
}

function bytesOf(a: Float32Array | Int32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** Runs fn, asserts a one-line UserError, returns its message. */
function userError(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof UserError, `expected a UserError, got ${String((e as Error)?.stack ?? e)}`);
    assert.ok(!e.message.includes('\n'), `one line: ${JSON.stringify(e.message)}`);
    return e.message;
  }
  assert.fail('expected a UserError');
}

function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '']);
  assert.ok(r.pid);
  return r.pid!;
}

function tempEntries(runDir: string): string[] {
  return readdirSync(join(runDir, 'checkpoints')).filter((n) => n.includes('.tmp-') || n.startsWith('.tmp-'));
}

test('save/load round-trip is bitwise, manifest and LATEST are right', () => {
  const runDir = newRunDir();
  const special = new Float32Array([0, -0, 1.5, -3.25e-38, 1e-45, 3.4028234663852886e38, Infinity, -Infinity, NaN, Math.PI]);
  // a NaN with a payload must survive too
  new Uint32Array(special.buffer)[8] = 0x7fc01234;
  const t: TensorRecord[] = [
    { name: 'a', shape: [2, 5], dtype: 'float32', data: special },
    { name: 'b', shape: [3], dtype: 'int32', data: new Int32Array([-2147483648, 0, 2147483647]) },
    { name: 'empty', shape: [0, 4], dtype: 'float32', data: new Float32Array(0) },
    { name: 'scalar', shape: [], dtype: 'float32', data: new Float32Array([0.1]) },
  ];
  const state = { optimizer: { step: 42, beta1Power: 0.9 }, rng: 4294967295, best: null, nested: [1, 'two', { three: 3 }] };
  const dir = saveCheckpoint(runDir, { step: 42, tensors: t, state, config: cfg, metrics: { test_bpd: 1.25, loss: NaN } }, { keepLast: 3 });
  assert.equal(dir, join(runDir, 'checkpoints', 'step-00000042'));
  assert.deepEqual(readdirSync(dir).sort(), ['manifest.json', 'state.json', 'weights.bin']);
  assert.equal(readFileSync(join(runDir, 'checkpoints', 'LATEST'), 'utf8').trim(), 'step-00000042');
  const m = readManifest(dir);
  assert.equal(m.format, 1);
  assert.equal(m.tool, 'flow');
  assert.equal(m.toolVersion, VERSION);
  assert.equal(m.step, 42);
  assert.match(m.sha256['weights.bin']!, /^[0-9a-f]{64}$/);
  assert.deepEqual(m.tensors.map((e) => [e.name, e.offset, e.length]), [['a', 0, 40], ['b', 40, 12], ['empty', 52, 0], ['scalar', 52, 4]]);

  const c = loadCheckpoint(dir);
  assert.equal(c.step, 42);
  assert.deepEqual(c.state, state);
  assert.deepEqual(c.config, cfg);
  assert.equal(c.metrics!.test_bpd, 1.25);
  assert.ok(Number.isNaN(c.metrics!.loss));
  assert.equal(c.tensors.length, t.length);
  for (let i = 0; i < t.length; i++) {
    assert.equal(c.tensors[i]!.name, t[i]!.name);
    assert.deepEqual(c.tensors[i]!.shape, t[i]!.shape);
    assert.equal(c.tensors[i]!.dtype, t[i]!.dtype);
    assert.equal(c.tensors[i]!.data.constructor, t[i]!.data.constructor);
    assert.ok(bytesOf(c.tensors[i]!.data).equals(bytesOf(t[i]!.data)), `tensor ${t[i]!.name} differs`);
  }
  assert.equal(latestCheckpoint(runDir), dir);
  assert.deepEqual(listCheckpoints(runDir), [dir]);
});

test('bad tensor records are programming errors, not silent corruption', () => {
  const runDir = newRunDir();
  const bad = (t: TensorRecord) => () => saveCheckpoint(runDir, { step: 1, tensors: [t], state: null, config: cfg }, { keepLast: 1 });
  assert.throws(bad({ name: 'x', shape: [3], dtype: 'float32', data: new Float32Array(2) }), /shape \[3\] \(3 values\) but 2 values/);
  assert.throws(bad({ name: 'x', shape: [2], dtype: 'int32', data: new Float32Array(2) }), /dtype 'int32' but its data is a Float32Array/);
  assert.equal(latestCheckpoint(runDir), null);
  assert.deepEqual(tempEntries(runDir), []);
});

test('retention keeps the last K plus the best, and BEST names it', () => {
  const runDir = newRunDir();
  const ck = join(runDir, 'checkpoints');
  const bpd = [5, 3, 4, 6, 7, 8];
  for (let s = 1; s <= 6; s++) saveCheckpoint(runDir, content(s * 100, { test_bpd: bpd[s - 1]! }), { keepLast: 2, bestMetric: 'test_bpd' });
  const names = () => listCheckpoints(runDir).map((p) => p.slice(ck.length + 1));
  assert.deepEqual(names(), ['step-00000200', 'step-00000500', 'step-00000600']);
  assert.equal(readFileSync(join(ck, 'BEST'), 'utf8').trim(), 'step-00000200');
  assert.equal(bestCheckpoint(runDir), join(ck, 'step-00000200'));
  // a new best replaces the old one, which then falls out of the window
  saveCheckpoint(runDir, content(700, { test_bpd: 1 }), { keepLast: 2, bestMetric: 'test_bpd' });
  assert.deepEqual(names(), ['step-00000600', 'step-00000700']);
  assert.equal(bestCheckpoint(runDir), join(ck, 'step-00000700'));
  // a save without a metric keeps the previous best
  saveCheckpoint(runDir, content(800), { keepLast: 1, bestMetric: 'test_bpd' });
  saveCheckpoint(runDir, content(900), { keepLast: 1 });
  assert.deepEqual(names(), ['step-00000700', 'step-00000900']);
  // re-saving an existing step replaces it
  saveCheckpoint(runDir, { ...content(900), state: { replaced: true } }, { keepLast: 2 });
  assert.deepEqual(loadCheckpoint(join(ck, 'step-00000900')).state, { replaced: true });
  // resuming from an earlier checkpoint abandons the later ones
  saveCheckpoint(runDir, content(750), { keepLast: 3 });
  assert.deepEqual(names(), ['step-00000700', 'step-00000750']);
  assert.equal(latestCheckpoint(runDir), join(ck, 'step-00000750'));
  assert.equal(readFileSync(join(ck, 'LATEST'), 'utf8').trim(), 'step-00000750');
  assert.deepEqual(tempEntries(runDir), []);
});

test('corrupt, truncated, garbled and foreign checkpoints are refused with one line', () => {
  const runDir = newRunDir();
  const first = saveCheckpoint(runDir, content(1), { keepLast: 5 });
  const dir = saveCheckpoint(runDir, content(2), { keepLast: 5 });
  const weights = join(dir, 'weights.bin');
  const original = readFileSync(weights);
  const m = readManifest(dir);

  const flipped = Buffer.from(original);
  flipped[7] ^= 0x01;
  writeFileSync(weights, flipped);
  const msg = userError(() => loadCheckpoint(dir));
  assert.match(msg, new RegExp(`weights\\.bin checksum mismatch: expected ${m.sha256['weights.bin']}, got [0-9a-f]{64}; the checkpoint is corrupt$`));
  assert.ok(msg.startsWith(dir));

  writeFileSync(weights, original.subarray(0, original.length - 4));
  assert.match(userError(() => loadCheckpoint(dir)), /weights\.bin: size \d+ bytes, expected \d+ \(from manifest\.json\); the checkpoint is truncated or corrupt$/);
  // the truncated one is not "latest": fall back to the previous complete checkpoint
  assert.equal(latestCheckpoint(runDir), first);
  writeFileSync(weights, original);
  assert.equal(latestCheckpoint(runDir), dir);

  const statePath = join(dir, 'state.json');
  const stateText = readFileSync(statePath, 'utf8');
  writeFileSync(statePath, stateText.replace('"rng":12345', '"rng":12346'));
  assert.match(userError(() => loadCheckpoint(dir)), /state\.json checksum mismatch/);
  writeFileSync(statePath, stateText);

  const manifestPath = join(dir, 'manifest.json');
  const manifestText = readFileSync(manifestPath, 'utf8');
  writeFileSync(manifestPath, manifestText.slice(0, 100));
  assert.match(userError(() => loadCheckpoint(dir)), /manifest\.json: garbled JSON .*; the checkpoint is corrupt$/);
  assert.equal(latestCheckpoint(runDir), first);

  writeFileSync(manifestPath, JSON.stringify({ ...JSON.parse(manifestText), format: 2, toolVersion: '9.0.0' }));
  assert.match(userError(() => loadCheckpoint(dir)), /checkpoint format 2 \(written by flow 9\.0\.0\); this flow .* reads format 1/);
  writeFileSync(manifestPath, JSON.stringify({ ...JSON.parse(manifestText), tool: 'other' }));
  assert.match(userError(() => loadCheckpoint(dir)), /written by 'other', not by flow/);

  rmSync(manifestPath);
  assert.match(userError(() => loadCheckpoint(dir)), /manifest\.json: missing/);
  assert.match(userError(() => loadCheckpoint(join(runDir, 'checkpoints', 'step-00000099'))), /no such checkpoint directory/);
  assert.deepEqual(loadCheckpoint(first).state, content(1).state);
});

test('newestCheckpoint reports the newest checkpoint even when it is unusable, and why', () => {
  const runDir = newRunDir();
  assert.equal(newestCheckpoint(runDir), null);
  const first = saveCheckpoint(runDir, content(1), { keepLast: 5 });
  const second = saveCheckpoint(runDir, content(2), { keepLast: 5 });
  assert.deepEqual(newestCheckpoint(runDir), { name: 'step-00000002', dir: second, step: 2, problem: null });
  assert.equal(checkpointProblem(second), null);

  const weights = join(second, 'weights.bin');
  const original = readFileSync(weights);
  writeFileSync(weights, original.subarray(0, 10));
  const truncated = newestCheckpoint(runDir)!;
  assert.equal(truncated.dir, second, 'still the newest, not the older usable one');
  assert.equal(truncated.problem, `${weights}: size 10 bytes, expected ${original.length} (from manifest.json); the checkpoint is truncated or corrupt`);
  assert.equal(latestCheckpoint(runDir), first, 'latestCheckpoint still finds the newest usable one');
  writeFileSync(weights, original);

  writeFileSync(join(second, 'manifest.json'), '');
  assert.match(newestCheckpoint(runDir)!.problem!, /step-00000002\/manifest\.json: garbled JSON/);
  rmSync(second, { recursive: true });
  // LATEST still names step 2, which is gone: that is reported, not skipped.
  const gone = newestCheckpoint(runDir)!;
  assert.equal(gone.step, 2);
  assert.match(gone.problem!, /LATEST names step-00000002 but .*step-00000002 does not exist$/);
  // A higher step directory than LATEST names (killed before LATEST was rewritten) is the newest.
  saveCheckpoint(runDir, content(3), { keepLast: 5 });
  writeFileSync(join(runDir, 'checkpoints', 'LATEST'), 'step-00000001\n');
  assert.equal(newestCheckpoint(runDir)!.step, 3);
  rmSync(join(runDir, 'checkpoints', 'step-00000003', 'state.json'));
  assert.match(checkpointProblem(join(runDir, 'checkpoints', 'step-00000003'))!, /state\.json: missing; the checkpoint is incomplete$/);
});

test('stale .tmp dirs and incomplete step dirs are ignored, and temps are cleaned on the next save', () => {
  const runDir = newRunDir();
  const ck = join(runDir, 'checkpoints');
  const good = saveCheckpoint(runDir, content(10), { keepLast: 3 });
  const stale = join(ck, `.tmp-${deadPid()}-deadbeef`);
  mkdirSync(stale);
  writeFileSync(join(stale, 'weights.bin'), Buffer.alloc(100));
  writeFileSync(join(stale, 'manifest.json'), readFileSync(join(good, 'manifest.json')));
  const staleLatest = join(ck, `.LATEST.tmp-${deadPid()}-cafe`);
  writeFileSync(staleLatest, 'step-00000099\n');
  // a higher step without a manifest (never produced by save, but e.g. a copy gone wrong)
  mkdirSync(join(ck, 'step-00000020'));
  writeFileSync(join(ck, 'step-00000020', 'weights.bin'), Buffer.alloc(10));
  assert.equal(latestCheckpoint(runDir), good);
  assert.deepEqual(listCheckpoints(runDir), [good]);
  const next = saveCheckpoint(runDir, content(11), { keepLast: 3 });
  assert.ok(!existsSync(stale), 'stale tmp dir removed');
  assert.ok(!existsSync(staleLatest), 'stale LATEST temp removed');
  assert.deepEqual(tempEntries(runDir), []);
  assert.equal(latestCheckpoint(runDir), next);
});

test('SIGKILL at random moments during saves always leaves a loadable latest checkpoint', async () => {
  const runDir = newRunDir();
  // ~12 MB per checkpoint so kills land inside writes, fsyncs, renames and retention.
  const script = `
    const { saveCheckpoint } = await import(${JSON.stringify(checkpointModule)});
    const { ConfigSchema } = await import(${JSON.stringify(schemaModule)});
    const cfg = ConfigSchema.parse({});
    const n = 1 << 20;
    const a = new Float32Array(2 * n), b = new Float32Array(n), c = new Int32Array(16);
    for (let step = Number(process.env.START); step < Number(process.env.START) + 500; step++) {
      a.fill(step); b.fill(-step); c.fill(step);
      saveCheckpoint(process.env.RUN_DIR, {
        step, config: cfg, state: { step }, metrics: { test_bpd: (step * 7919) % 13 },
        tensors: [
          { name: 'a', shape: [2, n], dtype: 'float32', data: a },
          { name: 'b', shape: [n], dtype: 'float32', data: b },
          { name: 'c', shape: [16], dtype: 'int32', data: c },
        ],
      }, { keepLast: 2, bestMetric: 'test_bpd' });
      process.stdout.write('saved ' + step + '\\n');
    }
  `;
  let start = 1;
  let kills = 0;
  let savesSeen = 0;
  for (let round = 0; round < 6; round++) {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...process.env, RUN_DIR: runDir, START: String(start) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.on('exit', (code, signal) => res({ code, signal })));
    // wait for a first complete save in this round, then kill after a random delay
    await new Promise<void>((res, rej) => {
      let out = '';
      child.stdout.on('data', (d) => {
        out += d;
        if (out.includes('saved')) res();
      });
      void exited.then((r) => rej(new Error(`child exited early (${r.code ?? r.signal}): ${stderr}`)));
    });
    await new Promise((r) => setTimeout(r, Math.random() * 250));
    child.kill('SIGKILL');
    const r = await exited;
    assert.equal(r.signal, 'SIGKILL', `child should be killed, not finish: ${stderr}`);
    kills++;
    const latest = latestCheckpoint(runDir);
    assert.ok(latest, 'a checkpoint survives');
    const c = loadCheckpoint(latest!); // verifies sizes and sha256
    assert.ok(c.step >= start, `latest step ${c.step} is from this round (started at ${start})`);
    assert.deepEqual(c.state, { step: c.step });
    assert.equal(c.tensors[0]!.data[12345], c.step);
    assert.equal(c.tensors[1]!.data[(1 << 20) - 1], -c.step);
    for (const p of listCheckpoints(runDir)) loadCheckpoint(p);
    savesSeen += c.step - start + 1;
    start = c.step + 1;
  }
  assert.equal(kills, 6);
  assert.ok(savesSeen >= 6);
  // the next save cleans whatever the last kill left behind
  saveCheckpoint(runDir, content(start), { keepLast: 2 });
  assert.deepEqual(tempEntries(runDir), []);
  assert.equal(loadCheckpoint(latestCheckpoint(runDir)!).step, start);
});

test('an unwritable run directory gives a clear error and keeps the old checkpoint', (t) => {
  // Under a regular file nothing can be created (ENOTDIR), even for root.
  const file = join(root, 'a-file');
  writeFileSync(file, 'x');
  const runDir = join(file, 'run');
  const msg = userError(() => saveCheckpoint(runDir, content(1), { keepLast: 1 }));
  assert.match(msg, /cannot write checkpoint step-00000001: the run directory is not writable \(ENOTDIR: not a directory\); the previous checkpoint is kept$/);
  assert.throws(() => saveCheckpoint(runDir, content(1), { keepLast: 1 }), StorageError);

  // chmod 0o555 only stops non-root users.
  const roDir = newRunDir();
  const kept = saveCheckpoint(roDir, content(1), { keepLast: 1 });
  const ck = join(roDir, 'checkpoints');
  chmodSync(ck, 0o555);
  try {
    let writable = true;
    try {
      writeFileSync(join(ck, 'probe'), 'x');
      rmSync(join(ck, 'probe'));
    } catch {
      writable = false;
    }
    if (writable) {
      t.diagnostic('running as root: chmod 0o555 does not stop writes; the read-only case is covered by the path under a file');
    } else {
      assert.match(userError(() => saveCheckpoint(roDir, content(2), { keepLast: 1 })), /the run directory is not writable \(EACCES/);
      assert.equal(latestCheckpoint(roDir), kept);
    }
  } finally {
    chmodSync(ck, 0o755);
  }
});

test('a full disk (file size limit) removes the temp dir and keeps the previous checkpoint', async (t) => {
  const runDir = newRunDir();
  // ulimit -f makes writes past 1 MB fail with EFBIG (SIGXFSZ ignored), like a full disk but only for this child.
  const script = `
    process.on('SIGXFSZ', () => {});
    const { saveCheckpoint } = await import(${JSON.stringify(checkpointModule)});
    const { ConfigSchema } = await import(${JSON.stringify(schemaModule)});
    const cfg = ConfigSchema.parse({});
    const rec = (n) => [{ name: 'w', shape: [n], dtype: 'float32', data: new Float32Array(n).fill(n) }];
    saveCheckpoint(process.env.RUN_DIR, { step: 1, tensors: rec(1000), state: {}, config: cfg }, { keepLast: 3 });
    try {
      saveCheckpoint(process.env.RUN_DIR, { step: 2, tensors: rec(1 << 20), state: {}, config: cfg }, { keepLast: 3 });
      console.log(JSON.stringify({ saved: true }));
    } catch (e) {
      console.log(JSON.stringify({ name: e.name, code: e.code, exitCode: e.exitCode, message: e.message }));
    }
  `;
  const r = spawnSync('sh', ['-c', `ulimit -f 1024 && exec "${process.execPath}" --input-type=module -e "$SCRIPT"`], {
    env: { ...process.env, RUN_DIR: runDir, SCRIPT: script },
    encoding: 'utf8',
  });
  if (r.status !== 0 || !r.stdout.trim()) {
    t.skip(`cannot limit the file size here (sh/ulimit): ${r.stderr.trim().split('\n')[0]}`);
    return;
  }
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.equal(out.name, 'StorageError');
  assert.equal(out.code, 'EFBIG');
  assert.equal(out.exitCode, 2);
  assert.match(out.message, /cannot write checkpoint step-00000002: the run directory is full \(EFBIG: file too large\); the previous checkpoint is kept$/);
  assert.deepEqual(tempEntries(runDir), []);
  const latest = latestCheckpoint(runDir)!;
  assert.equal(loadCheckpoint(latest).step, 1);
});

test('atomicWriteFile replaces files whole and reports unwritable places', () => {
  const d = newRunDir();
  mkdirSync(d);
  const p = join(d, 'metrics.csv');
  atomicWriteFile(p, 'a,b\n');
  atomicWriteFile(p, new Uint8Array([65, 66, 10]));
  assert.equal(readFileSync(p, 'utf8'), 'AB\n');
  assert.deepEqual(readdirSync(d), ['metrics.csv']);
  const file = join(root, 'another-file');
  writeFileSync(file, 'x');
  assert.match(userError(() => atomicWriteFile(join(file, 'x.png'), 'data')), /cannot write x\.png: the run directory is not writable \(ENOTDIR/);
});

test('assertCompatible names the first differing model option', () => {
  const a = ConfigSchema.parse({ model: { depth: 16 } });
  assertCompatible(JSON.parse(JSON.stringify(a)), ConfigSchema.parse({ model: { depth: 16, init_batch: 32 }, train: { lr: 1 } }));
  const msg = userError(() => assertCompatible(a, ConfigSchema.parse({ model: { depth: 8, width: 64 } }), 'runs/x/checkpoints/step-00000100'));
  assert.equal(
    msg,
    'runs/x/checkpoints/step-00000100: model.depth is 16 in the checkpoint but 8 in the current config; expected the same model options (drop the change, or use a new run name)',
  );
  // an older manifest without a newer option compares against that option's default
  const older = JSON.parse(JSON.stringify(a));
  delete older.model.class_loss_weight;
  assertCompatible(older, a);
  assert.match(userError(() => assertCompatible({}, a)), /no model section/);
});

test('run lock: second acquire refuses, release frees it, stale locks are taken over', async () => {
  const runDir = newRunDir();
  const lock = acquireRunLock(runDir);
  assert.equal(lock.tookOverStale, false);
  assert.equal(readRunLock(runDir)!.pid, process.pid);
  const msg = userError(() => acquireRunLock(runDir));
  assert.match(msg, new RegExp(`^run directory .*run-\\d+ is in use by pid ${process.pid} \\(started \\d{4}-\\d\\d-\\d\\dT.*\\); wait for it or choose another run name$`));
  lock.release();
  assert.equal(readRunLock(runDir), null);
  const again = acquireRunLock(runDir);
  again.release();

  // a lock left by a dead process
  const dead = deadPid();
  writeFileSync(join(runDir, '.lock'), JSON.stringify({ pid: dead, host: (await import('node:os')).hostname(), startedAt: '2020-01-01T00:00:00.000Z' }));
  const taken = acquireRunLock(runDir);
  assert.equal(taken.tookOverStale, true);
  assert.equal(taken.previous!.pid, dead);
  assert.equal(readRunLock(runDir)!.pid, process.pid);
  taken.release();

  // a garbled lock file is stale too
  writeFileSync(join(runDir, '.lock'), '{"pid": 12');
  const g = acquireRunLock(runDir);
  assert.equal(g.tookOverStale, true);
  g.release();
  assert.deepEqual(readdirSync(runDir).filter((n) => n.startsWith('.lock')), []);
});

test('run lock held by another live process; freed when it is killed; released on normal exit', async () => {
  const runDir = newRunDir();
  const script = `
    const { acquireRunLock } = await import(${JSON.stringify(lockModule)});
    acquireRunLock(process.env.RUN_DIR);
    process.stdout.write('locked\\n');
    if (process.env.MODE === 'exit') process.exit(0);
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, RUN_DIR: runDir, MODE: 'hold' }, stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((res) => child.on('exit', res));
  await new Promise<void>((res) => child.stdout.on('data', (d) => String(d).includes('locked') && res()));
  assert.match(userError(() => acquireRunLock(runDir)), new RegExp(`is in use by pid ${child.pid} `));
  child.kill('SIGKILL');
  await exited;
  const lock = acquireRunLock(runDir);
  assert.equal(lock.tookOverStale, true);
  assert.equal(lock.previous!.pid, child.pid);
  lock.release();

  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, RUN_DIR: runDir, MODE: 'exit' }, encoding: 'utf8' });
  assert.equal(r.stdout.trim(), 'locked');
  assert.equal(readRunLock(runDir), null, 'process exit releases the lock');
});

test('parseTrainState: a valid state parses (older ones without skippedSteps too); an invalid one is a UserError naming file and field', () => {
  const state = { meta: { dataShape: [28, 28, 1], dataKind: 'image', nBits: 8 }, step: 20, optimizerT: 20, iterator: { epoch: 1, cursor: 128, rngState: 12345, n: 512 }, noiseRng: 99, lrScale: 0.5, bestTest: null };
  assert.deepEqual(parseTrainState(state, '/r/ck'), { ...state, skippedSteps: 0 });
  for (const [bad, field] of [
    [{ ...state, step: -1 }, 'step'],
    [{ ...state, noiseRng: 2 ** 32 }, 'noiseRng'],
    [{ ...state, iterator: null }, 'iterator'],
    [{ ...state, meta: { ...state.meta, dataShape: [] } }, 'meta.dataShape'],
    [{ ...state, lrScale: 0 }, 'lrScale'],
  ] as const) {
    assert.throws(() => parseTrainState(bad, '/r/ck'), (e: unknown) => e instanceof UserError && e.message.startsWith(`/r/ck/state.json: field '${field}' is invalid`) && !e.message.includes('\n'));
  }
  assert.throws(() => parseTrainState(null, '/r/ck'), /state\.json: the content is invalid \(expected object, received null\)/);
});
