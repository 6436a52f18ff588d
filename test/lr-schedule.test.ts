// Learning-rate warm-up and schedules (src/train/optimizer.ts), and a real run's logged rates.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { learningRate, runProgress } from '../src/train/optimizer.js';
import { flow, tempDir, writeYaml, TINY_CONFIG } from './helpers.js';

test('warm-up, then constant, linear or cosine decay to 0 at the end of the run', () => {
  assert.equal(learningRate(1e-3, 0, 1), 1e-3);
  assert.equal(learningRate(1e-3, 10, 5), 5e-4);
  assert.equal(learningRate(1e-3, 0, 7, 'constant', 0.9), 1e-3);
  assert.equal(learningRate(2, 0, 1, 'linear', 0.25), 1.5);
  assert.equal(learningRate(2, 0, 1, 'linear', 1), 0);
  assert.equal(learningRate(2, 0, 1, 'linear', 3), 0, 'progress past the end is clamped');
  assert.ok(Math.abs(learningRate(2, 0, 1, 'cosine', 0.5) - 1) < 1e-12);
  assert.equal(learningRate(2, 0, 1, 'cosine', 0), 2);
  assert.equal(learningRate(2, 4, 2, 'linear', 0.5), 0.5, 'warm-up and decay multiply');
  assert.equal(runProgress(50, 200, 0, 0), 0.25);
  assert.equal(runProgress(0, 0, 30_000, 1), 0.5);
  assert.equal(runProgress(50, 200, 90_000, 2), 0.75, 'whichever limit is nearer');
  assert.equal(runProgress(50, 0, 90_000, 0), 0, 'no limits: no progress, constant rate');
});

test('flow train with lr_schedule linear logs a rate falling to lr/max_steps', () => {
  const dir = tempDir();
  const cfg = writeYaml(dir, 'sched.yaml', TINY_CONFIG.replace('max_steps: 40', 'max_steps: 20').replace('lr: 0.003', 'lr: 0.003\n  lr_schedule: linear').replace('log_every: 10', 'log_every: 1'));
  const r = flow(['train', cfg, '--quiet'], dir);
  assert.equal(r.code, 0, r.stderr);
  const lines = fs.readFileSync(path.join(dir, 'runs', 'tiny', 'metrics.ndjson'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((m) => m.lr !== undefined);
  const byStep = new Map(lines.map((m) => [m.step, m.lr]));
  assert.ok(Math.abs(byStep.get(1) - 0.003) < 1e-12, `step 1: ${byStep.get(1)}`);
  assert.ok(Math.abs(byStep.get(11) - 0.003 * (1 - 10 / 20)) < 1e-12, `step 11: ${byStep.get(11)}`);
  assert.ok(Math.abs(byStep.get(20) - 0.003 / 20) < 1e-12, `step 20: ${byStep.get(20)}`);
});
