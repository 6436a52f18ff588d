// `flow train --dry-run`'s memory estimate against the measured peak RSS of the real training process
// (FLOW_REPORT_PEAK_RSS=1 makes bin/flow print process.resourceUsage().maxRSS at exit): within ±30% on two
// model sizes, one whose peak is ActNorm's init pass and one whose peak is the training step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { flow, tempDir, writeYaml } from './helpers.js';

function config(runsDir: string, model: string, train: string): string {
  return `
name: mem
runs_dir: ${runsDir}
seed: 3
backend: wasm
data:
  source: embedded
  limit: 512
  test_limit: 128
model:
  family: glow
  levels: 2
${model}
train:
  max_steps: 3
  checkpoint_every: 100000
${train}
`;
}

const cases = [
  { name: 'init-bound', model: '  depth: 4\n  width: 32\n  init_batch: 256', train: '  batch_size: 16\n  eval_examples: 64\n  sample_grid: 16', phase: 'init' },
  { name: 'train-bound', model: '  depth: 4\n  width: 96\n  init_batch: 16', train: '  batch_size: 160\n  eval_examples: 16\n  sample_grid: 0', phase: 'train' },
];

for (const c of cases) {
  test(`dry-run memory estimate within ±30% of the measured peak RSS (${c.name} Glow)`, (t) => {
    const dir = tempDir();
    const cfg = writeYaml(dir, 'mem.yaml', config(path.join(dir, 'runs'), c.model, c.train));
    const dry = flow(['train', cfg, '--dry-run', '--json', '--quiet'], dir);
    assert.equal(dry.code, 0, dry.stderr);
    const est = JSON.parse(dry.stdout.trim().split('\n').pop()!);
    assert.equal(est.peak_phase, c.phase);
    const real = flow(['train', cfg, '--quiet'], dir, { FLOW_REPORT_PEAK_RSS: '1' });
    assert.equal(real.code, 0, real.stderr);
    const peak = Number(/peak_rss_bytes: (\d+)/.exec(real.stderr)?.[1]);
    assert.ok(peak > 0, `no peak reported: ${real.stderr}`);
    const ratio = est.peak_bytes / peak;
    t.diagnostic(`estimate ${(est.peak_bytes / 2 ** 20).toFixed(0)} MiB, measured ${(peak / 2 ** 20).toFixed(0)} MiB, ratio ${ratio.toFixed(2)}`);
    assert.ok(Math.abs(ratio - 1) <= 0.3, `estimate ${(est.peak_bytes / 2 ** 20).toFixed(0)} MiB vs measured ${(peak / 2 ** 20).toFixed(0)} MiB (ratio ${ratio.toFixed(2)})`);
    assert.ok(est.request_bytes >= est.peak_bytes * 1.3, 'the request has the tolerance on top');
  });
}
