// One isPidAlive for the run lock and the checkpoint temp-file sweep: live, dead and zombie processes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { isPidAlive, isZombie } from '../src/io/pid.js';
import { acquireRunLock, LOCK_FILE } from '../src/io/lock.js';
import { saveCheckpoint, checkpointsDir } from '../src/io/checkpoint.js';
import { ConfigSchema } from '../src/config/schema.js';

const hasProc = existsSync('/proc/self/stat');

/**
 * A zombie: `sleep 0` runs in the background of a shell that then execs `sleep 30`, which never waits
 * for children, so the exited `sleep 0` stays a zombie until the holder exits. Returns its pid and the holder.
 */
async function makeZombie(): Promise<{ pid: number; holder: ChildProcess }> {
  const holder = spawn('sh', ['-c', 'sleep 0 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const pid = await new Promise<number>((resolve, reject) => {
    holder.stdout!.once('data', (d: Buffer) => resolve(Number(String(d).trim())));
    holder.once('error', reject);
  });
  const deadline = Date.now() + 10_000;
  while (!isZombie(pid)) {
    if (Date.now() > deadline) throw new Error(`pid ${pid} did not become a zombie`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return { pid, holder };
}

function deadPid(): number {
  const r = spawnSync('sh', ['-c', 'echo $$']);
  return Number(String(r.stdout).trim());
}

test('isPidAlive: this process and a running child are alive; an exited (reaped) one is not', async () => {
  assert.equal(isPidAlive(process.pid), true);
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    assert.equal(isPidAlive(child.pid!), true);
  } finally {
    child.kill('SIGKILL');
  }
  assert.equal(isPidAlive(deadPid()), false);
});

test('isPidAlive: a zombie (exited, not yet reaped) is not alive, although it can still be signalled', { skip: !hasProc && 'no /proc' }, async () => {
  const { pid, holder } = await makeZombie();
  try {
    process.kill(pid, 0); // signalable: the old check called it alive
    assert.equal(isZombie(pid), true);
    assert.equal(isPidAlive(pid), false);
  } finally {
    holder.kill('SIGKILL');
  }
});

test('a zombie holds neither the run lock nor its checkpoint temp files', { skip: !hasProc && 'no /proc' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'flow-pid-'));
  const { pid, holder } = await makeZombie();
  try {
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid, host: hostname(), startedAt: 'then' }) + '\n');
    const lock = acquireRunLock(dir);
    assert.equal(lock.tookOverStale, true);
    assert.equal(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')).pid, process.pid);
    lock.release();

    const ck = checkpointsDir(dir);
    mkdirSync(join(ck, `.tmp-${pid}-deadbeef`), { recursive: true });
    const alive = join(ck, `.tmp-${holder.pid}-cafebabe`);
    mkdirSync(alive);
    const config = ConfigSchema.parse({});
    saveCheckpoint(dir, { step: 1, tensors: [], state: null, config }, { keepLast: 1 });
    assert.equal(existsSync(join(ck, `.tmp-${pid}-deadbeef`)), false, "the zombie's temp dir should be swept");
    assert.equal(existsSync(alive), true, "a live process's temp dir must stay");
  } finally {
    holder.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
