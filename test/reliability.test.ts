// Batch-job reliability on the real CLI: exact resume after SIGKILL, SIGTERM/SIGINT checkpoints,
// the non-finite-step guard, run locks, and refusals of bad checkpoints and run directories.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { flow, flowAsync, tempDir, writeYaml, TINY_CONFIG } from './helpers.js';
import { latestCheckpoint, loadCheckpoint } from '../src/io/checkpoint.js';

// With Polyak averaging on, so the averages' resume is checked too.
const RESUME_CONFIG = TINY_CONFIG.replace('max_steps: 40', 'max_steps: 60').replace('checkpoint_every: 20', 'checkpoint_every: 5').replace('sample_grid: 16', 'sample_grid: 0').replace('lr: 0.003', 'lr: 0.003\n  average_decay: 0.9');

function finalWeights(runDir: string): Map<string, Float32Array | Int32Array> {
  const ck = latestCheckpoint(runDir);
  assert.ok(ck, `a checkpoint in ${runDir}`);
  const c = loadCheckpoint(ck);
  return new Map(c.tensors.map((t) => [t.name, t.data]));
}

function waitFor(child: ReturnType<typeof flowAsync>, pattern: RegExp, timeoutMs = 60_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${pattern}; saw: ${seen.slice(-500)}`)), timeoutMs);
    const onData = (d: Buffer) => {
      seen += d.toString();
      if (pattern.test(seen)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
  });
}

function exitOf(child: ReturnType<typeof flowAsync>): Promise<number | null> {
  // The child may already have exited (e.g. it finished training during the delay before the kill).
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode ?? -1);
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal ? -1 : null))));
}

test('killed with SIGKILL at random moments and resumed, training ends with the same weights as an uninterrupted run', async () => {
  const dir = tempDir();
  const cfg = writeYaml(dir, 'resume.yaml', RESUME_CONFIG);
  const straight = flow(['train', cfg, '--name', 'straight', '--quiet'], dir);
  assert.equal(straight.code, 0, straight.stderr);

  // Kill three times: after the first progress line and then at random delays, always resuming with the same command.
  let kills = 0;
  for (const delay of [0, Math.random() * 400, Math.random() * 400]) {
    const child = flowAsync(['train', cfg, '--name', 'killed'], dir);
    await waitFor(child, /"event":"progress"/);
    await new Promise((r) => setTimeout(r, delay));
    if (child.exitCode === null) {
      child.kill('SIGKILL');
      kills++;
    }
    await exitOf(child);
  }
  assert.ok(kills >= 2, 'at least two runs were killed mid-training');
  const resumed = flow(['train', cfg, '--name', 'killed', '--json'], dir);
  assert.equal(resumed.code, 0, resumed.stderr);
  const summary = JSON.parse(resumed.stdout.trim().split('\n').pop()!);
  assert.equal(summary.step, 60);
  assert.ok(summary.resumed_from > 0, 'it resumed from a checkpoint');
  assert.match(resumed.stderr, /took over a stale lock|resuming/);

  const a = finalWeights(path.join(dir, 'runs', 'straight'));
  const b = finalWeights(path.join(dir, 'runs', 'killed'));
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  assert.ok([...a.keys()].some((k) => k.startsWith('average.')), 'the checkpoint holds the weight averages');
  let maxDiff = 0;
  for (const [name, va] of a) {
    const vb = b.get(name)!;
    for (let i = 0; i < va.length; i++) maxDiff = Math.max(maxDiff, Math.abs(va[i]! - vb[i]!));
  }
  assert.ok(maxDiff <= 1e-6, `max |Δweight| ${maxDiff}`);
});

test('SIGTERM writes a checkpoint and exits 143 within seconds; SIGINT exits 130', async () => {
  const dir = tempDir();
  const cfg = writeYaml(dir, 'long.yaml', TINY_CONFIG.replace('max_steps: 40', 'max_steps: 100000').replace('checkpoint_every: 20', 'checkpoint_every: 100000'));
  for (const [signal, code] of [['SIGTERM', 143], ['SIGINT', 130]] as const) {
    const child = flowAsync(['train', cfg, '--name', signal], dir);
    await waitFor(child, /"step":20,/);
    const sent = Date.now();
    child.kill(signal);
    const exit = await exitOf(child);
    const seconds = (Date.now() - sent) / 1000;
    assert.equal(exit, code, `${signal} exit code`);
    assert.ok(seconds < 5, `${signal}: exited after ${seconds}s`);
    const ck = latestCheckpoint(path.join(dir, 'runs', signal));
    assert.ok(ck, 'a checkpoint was written');
    assert.ok(loadCheckpoint(ck).step >= 20);
  }
});

test('non-finite steps are skipped, N in a row roll back to the last checkpoint with a lower LR, and none reach a checkpoint', () => {
  const dir = tempDir();
  const cfg = writeYaml(dir, 'nan.yaml', TINY_CONFIG.replace('max_steps: 40', 'max_steps: 30').replace('checkpoint_every: 20', 'checkpoint_every: 10') + '  nan_skip_limit: 3\n');
  const one = flow(['train', cfg, '--name', 'one', '--json'], dir, { FLOW_INJECT_NONFINITE: '4' });
  assert.equal(one.code, 0, one.stderr);
  const lines = one.stdout.trim().split('\n').map((l) => JSON.parse(l));
  const skippedEvent = lines.find((e) => e.event === 'nonfinite_step_skipped' && e.step === 4);
  assert.ok(skippedEvent);
  // Numbers like every other event's field, null where not finite (JSON has no NaN): never strings.
  for (const k of ['loss', 'grad_norm']) assert.ok(skippedEvent[k] === null || typeof skippedEvent[k] === 'number', `${k}: ${JSON.stringify(skippedEvent[k])}`);
  assert.ok(skippedEvent.loss === null || skippedEvent.grad_norm === null, 'a skipped step has a non-finite loss or gradient norm');
  assert.equal(lines.at(-1).skipped_steps, 1);

  const roll = flow(['train', cfg, '--name', 'roll', '--json'], dir, { FLOW_INJECT_NONFINITE: '12,13,14' });
  assert.equal(roll.code, 0, roll.stderr);
  const events = roll.stdout.trim().split('\n').map((l) => JSON.parse(l));
  const rollback = events.find((e) => e.event === 'rollback');
  assert.ok(rollback, 'rolled back');
  assert.equal(rollback.to_step, 10);
  assert.equal(rollback.lr_scale, 0.5);
  const c = loadCheckpoint(latestCheckpoint(path.join(dir, 'runs', 'roll'))!);
  assert.equal((c.state as { lrScale: number }).lrScale, 0.5);
  for (const t of c.tensors) for (const v of t.data) assert.ok(Number.isFinite(v), `${t.name} finite`);

  const diverge = flow(['train', cfg, '--name', 'diverge'], dir, { FLOW_INJECT_NONFINITE: '1,2,3' });
  assert.equal(diverge.code, 1);
  assert.match(diverge.stderr, /diverged.*no checkpoint/);
});

test('a run directory in use is refused; a stale lock from a killed process is taken over', async () => {
  const dir = tempDir();
  const cfg = writeYaml(dir, 'lock.yaml', TINY_CONFIG.replace('max_steps: 40', 'max_steps: 100000'));
  const first = flowAsync(['train', cfg], dir);
  await waitFor(first, /"event":"progress"/);
  const second = flow(['train', cfg], dir);
  assert.equal(second.code, 2);
  assert.match(second.stderr, /in use by pid/);
  assert.equal(second.stderr.trim().split('\n').filter((l) => l.startsWith('flow:')).length, 1);
  first.kill('SIGKILL');
  await exitOf(first);
  const third = flow(['train', cfg, '--max-steps', '25'], dir);
  assert.equal(third.code, 0, third.stderr);
  assert.match(third.stderr, /stale lock/);
});

test('bad checkpoints and run directories are refused with one line and exit 2', () => {
  const dir = tempDir();
  const cfg = writeYaml(dir, 'tiny.yaml', TINY_CONFIG.replace('max_steps: 40', 'max_steps: 20'));
  assert.equal(flow(['train', cfg, '--quiet'], dir).code, 0);

  const other = flow(['train', cfg, '--set', 'model.width=8', '--max-steps', '30'], dir);
  assert.equal(other.code, 2);
  assert.match(other.stderr, /model\.width/);

  const ck = latestCheckpoint(path.join(dir, 'runs', 'tiny'))!;
  const weights = path.join(ck, 'weights.bin');
  const bytes = fs.readFileSync(weights);
  bytes[100] = bytes[100]! ^ 0xff;
  fs.writeFileSync(weights, bytes);
  const sample = flow(['sample', '--n', '4', '--out', path.join(dir, 'x.png')], dir);
  assert.equal(sample.code, 2);
  assert.match(sample.stderr, /checksum mismatch/);
  assert.ok(!fs.existsSync(path.join(dir, 'x.png')), 'nothing written');

  fs.writeFileSync(path.join(dir, 'afile'), 'x');
  const unwritable = flow(['train', cfg, '--set', `runs_dir=${path.join(dir, 'afile', 'runs')}`], dir);
  assert.equal(unwritable.code, 2);
  assert.match(unwritable.stderr, /not writable/);
  assert.equal(unwritable.stderr.trim().split('\n').filter((l) => l.startsWith('flow:')).length, 1);

  const noResume = flow(['train', cfg, '--name', 'nothing', '--resume'], dir);
  assert.equal(noResume.code, 2);
  assert.match(noResume.stderr, /no checkpoint to resume/);
});

/** Rewrites a checkpoint's state.json (and the manifest's size and hash of it, so only the content is wrong). */
function rewriteState(ck: string, edit: (state: Record<string, unknown>) => unknown): void {
  const state = JSON.parse(fs.readFileSync(path.join(ck, 'state.json'), 'utf8')) as Record<string, unknown>;
  const bytes = Buffer.from(JSON.stringify(edit(state)), 'utf8');
  fs.writeFileSync(path.join(ck, 'state.json'), bytes);
  const manifestFile = path.join(ck, 'manifest.json');
  const manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8')) as { sha256: Record<string, string>; bytes: Record<string, number> };
  manifest.sha256['state.json'] = createHash('sha256').update(bytes).digest('hex');
  manifest.bytes['state.json'] = bytes.byteLength;
  fs.writeFileSync(manifestFile, JSON.stringify(manifest));
}

test('an invalid state.json is refused with one line naming the file and the field, exit 2 (resume and sample)', () => {
  const dir = tempDir();
  const cfg = writeYaml(dir, 'tiny.yaml', TINY_CONFIG.replace('max_steps: 40', 'max_steps: 20').replace('sample_grid: 16', 'sample_grid: 0'));
  assert.equal(flow(['train', cfg, '--quiet'], dir).code, 0);
  const ck = latestCheckpoint(path.join(dir, 'runs', 'tiny'))!;
  const oneLine = (stderr: string) => stderr.trim().split('\n').filter((l) => l.startsWith('flow:'));

  rewriteState(ck, (s) => ({ ...s, iterator: { ...(s.iterator as object), cursor: 'seven' } }));
  const resume = flow(['train', cfg, '--max-steps', '30'], dir);
  assert.equal(resume.code, 2, resume.stderr);
  assert.equal(oneLine(resume.stderr).length, 1, resume.stderr);
  assert.match(resume.stderr, /state\.json: field 'iterator\.cursor' is invalid \(expected number, received string\); expected the training state/);
  // The model meta is intact: sampling still works.
  assert.equal(flow(['sample', '--n', '4', '--out', path.join(dir, 'x.png'), '--quiet'], dir).code, 0);

  rewriteState(ck, (s) => ({ ...s, meta: { ...(s.meta as object), dataKind: 'audio' } }));
  const sample = flow(['sample', '--n', '4', '--out', path.join(dir, 'y.png')], dir);
  assert.equal(sample.code, 2, sample.stderr);
  assert.equal(oneLine(sample.stderr).length, 1, sample.stderr);
  assert.match(sample.stderr, /state\.json: field 'meta\.dataKind' is invalid/);
  assert.ok(!fs.existsSync(path.join(dir, 'y.png')), 'nothing written');
});
