// scripts/memory-calibrate: `flow train --dry-run`'s memory estimate next to the measured peak RSS of the same
// training (a few steps, with the end-of-run eval and sample grid), for a set of Glows. Prints one line per model
// and the ratio; the constants in src/train/memory-estimate.ts were fitted to these numbers.
//   node dist/scripts/memory-calibrate.js [--steps 4] [--images DIR] [--backend wasm]
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const FLOW = path.join(ROOT, 'bin', 'flow');
const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1]! : def;
};
const steps = arg('--steps', '4');
const images = arg('--images', '');
const backend = arg('--backend', 'wasm');

const small = ['model.init_batch=16', 'train.eval_examples=16', 'train.sample_grid=0'];
const embedded = ['data.source=embedded', 'data.limit=512', 'data.test_limit=256'];
const models: Array<{ name: string; sets: string[] }> = [
  { name: 'L2 K2 W16 B32', sets: [...embedded, 'model.levels=2', 'model.depth=2', 'model.width=16', 'train.batch_size=32'] },
  { name: 'L2 K8 W64 B64', sets: [...embedded, 'model.levels=2', 'model.depth=8', 'model.width=64', 'train.batch_size=64'] },
  { name: 'L2 K4 W128 B32', sets: [...embedded, 'model.levels=2', 'model.depth=4', 'model.width=128', 'train.batch_size=32'] },
  { name: 'L2 K8 W64 B128 init16', sets: [...embedded, 'model.levels=2', 'model.depth=8', 'model.width=64', 'train.batch_size=128', ...small] },
  { name: 'L2 K8 W64 B128 init16 workers2', sets: [...embedded, 'model.levels=2', 'model.depth=8', 'model.width=64', 'train.batch_size=128', ...small, 'train.workers=2'] },
  { name: 'L2 K8 W64 B16 grid256', sets: [...embedded, 'model.levels=2', 'model.depth=8', 'model.width=64', 'train.batch_size=16', 'model.init_batch=16', 'train.eval_examples=16', 'train.sample_grid=256'] },
];
if (images) {
  const img = ['data.source=images', `data.path=${path.resolve(images)}`];
  models.push(
    { name: 'images L2 K4 W64 B32', sets: [...img, 'model.levels=2', 'model.depth=4', 'model.width=64', 'train.batch_size=32'] },
    { name: 'images L3 K8 W256 B32 (issue #11)', sets: [...img, 'model.levels=3', 'model.depth=8', 'model.width=256', 'train.batch_size=32'] },
    { name: 'images L3 K8 W256 B8 init16', sets: [...img, 'model.levels=3', 'model.depth=8', 'model.width=256', 'train.batch_size=8', ...small] },
  );
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flow-memcal-'));
const cfg = path.join(dir, 'cal.yaml');
fs.writeFileSync(cfg, `name: cal\nruns_dir: ${dir}/runs\nbackend: ${backend}\ntrain:\n  max_steps: ${steps}\n  workers: 1\n`);
const MiB = 2 ** 20;
try {
  for (const m of models) {
    const args = ['train', cfg, '--fresh', '--quiet', ...m.sets.flatMap((s) => ['--set', s])];
    const dry = spawnSync(process.execPath, [FLOW, ...args, '--dry-run', '--json'], { encoding: 'utf8' });
    if (dry.status !== 0) throw new Error(`${m.name}: dry run failed: ${dry.stderr}`);
    const est = JSON.parse(dry.stdout.trim().split('\n').pop()!);
    const real = spawnSync(process.execPath, [FLOW, ...args], { encoding: 'utf8', env: { ...process.env, FLOW_REPORT_PEAK_RSS: '1' } });
    const peak = Number(/peak_rss_bytes: (\d+)/.exec(real.stderr)?.[1]);
    if (real.status !== 0 || !peak) throw new Error(`${m.name}: training failed: ${real.stderr}`);
    process.stdout.write(
      `${m.name.padEnd(36)} ${String(est.parameters).padStart(8)} params  estimate ${(est.peak_bytes / MiB).toFixed(0).padStart(5)} MiB (${est.peak_phase.padEnd(6)})  ` +
        `measured ${(peak / MiB).toFixed(0).padStart(5)} MiB  ratio ${(est.peak_bytes / peak).toFixed(2)}  request ${(est.request_bytes / MiB).toFixed(0)} MiB\n`,
    );
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
