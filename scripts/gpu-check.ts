// `scripts/gpu-check [--seconds 60] [--backends LIST] [--examples N] [--out FILE]`: what a person runs on a GPU host to see whether flow's
// GPU backends work there and how fast, as one JSON object on stdout:
//   doctor      `flow doctor --json` (backends, the WebGPU adapters, CUDA libraries, Vulkan loader/ICDs);
//   equality    the webgpu-vs-cpu equality tests (test/webgpu.test.ts) on this host's adapter;
//   throughput  scripts/bench on configs/bench-fashion.yaml for --seconds per available backend.
// Fashion-MNIST comes from $FLOW_DATA/fashion-mnist (or data/fashion-mnist); without it the same model
// trains on the embedded MNIST digits (same shapes, same speed), and the JSON says so.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import YAML from 'yaml';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const FLOW = path.join(ROOT, 'bin', 'flow');
const BENCH = path.join(ROOT, 'scripts', 'bench');
const BENCH_CONFIG = path.join(ROOT, 'configs', 'bench-fashion.yaml');

function log(message: string): void {
  process.stderr.write(`gpu-check: ${message}\n`);
}

function lastJsonLine(text: string): unknown {
  const line = text.trim().split('\n').reverse().find((l) => l.startsWith('{'));
  return line ? JSON.parse(line) : null;
}

function doctor(): unknown {
  log('flow doctor...');
  const r = spawnSync(process.execPath, [FLOW, 'doctor', '--json'], { encoding: 'utf8', maxBuffer: 1 << 24 });
  return r.status === 0 ? lastJsonLine(r.stdout) : { error: `flow doctor exited ${r.status}: ${r.stderr.trim().split('\n').pop()}` };
}

/** The equality tests, run on whatever adapter selectBackend('webgpu') picks here (hardware first). */
function equality(): { passed: number; failed: number; ok: boolean; tail: string } {
  log('webgpu equality tests (test/webgpu.test.ts)...');
  const r = spawnSync(process.execPath, ['--test', path.join(ROOT, 'dist', 'test', 'webgpu.test.js')], { encoding: 'utf8', maxBuffer: 1 << 26, cwd: ROOT });
  const count = (name: string) => Number(new RegExp(`^# ${name} (\\d+)`, 'm').exec(r.stdout)?.[1] ?? NaN);
  const failures = r.stdout.split('\n').filter((l) => /^not ok/.test(l));
  return { passed: count('pass'), failed: count('fail'), ok: r.status === 0, tail: failures.join('\n') || r.stdout.trim().split('\n').slice(-3).join('\n') };
}

/** bench-fashion.yaml, or the same model on the embedded digits when Fashion-MNIST is not here. */
function benchConfig(): { file: string; data: string } {
  const dataDir = path.join(process.env.FLOW_DATA ?? path.join(ROOT, 'data'), 'fashion-mnist');
  const files = fs.existsSync(dataDir) ? fs.readdirSync(dataDir) : [];
  if (files.some((f) => f.startsWith('train-images'))) return { file: BENCH_CONFIG, data: `fashion-mnist (${dataDir})` };
  const cfg = YAML.parse(fs.readFileSync(BENCH_CONFIG, 'utf8')) as { data: Record<string, unknown> };
  cfg.data = { source: 'embedded' };
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'flow-gpu-check-')), 'bench-embedded.yaml');
  fs.writeFileSync(file, YAML.stringify(cfg));
  return { file, data: `embedded MNIST digits (no Fashion-MNIST at ${dataDir}; set FLOW_DATA)` };
}

function throughput(seconds: number, backends: string[], examples: number | undefined): unknown {
  const { file, data } = benchConfig();
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'flow-gpu-bench-')), 'bench.json');
  log(`scripts/bench --backends ${backends.join(',')} --seconds ${seconds} on ${data}...`);
  const sizes = examples ? ['--eval-examples', String(examples), '--samples', String(examples)] : [];
  const r = spawnSync(process.execPath, [BENCH, '--config', file, '--backends', backends.join(','), '--seconds', String(seconds), ...sizes, '--json', out], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 26,
  });
  if (r.status !== 0 || !fs.existsSync(out)) return { data, error: `scripts/bench exited ${r.status}` };
  return { data, ...(JSON.parse(fs.readFileSync(out, 'utf8')) as object) };
}

/** Every backend that loads here (from doctor), GPU backends first; the software WebGPU adapter included, labelled by bench. */
function backendsFrom(report: unknown): string[] {
  const loads = ((report as { backends?: Array<{ name: string; loads: boolean }> })?.backends ?? []).filter((b) => b.loads).map((b) => b.name);
  return ['tensorflow', 'webgpu', 'wasm'].filter((b) => loads.includes(b));
}

const program = new Command('gpu-check')
  .description("doctor, the webgpu equality tests on this host's adapter, and training throughput per backend, as JSON")
  .option('--seconds <s>', 'training budget per backend', (v) => Number(v), 60)
  .option('--backends <list>', 'comma-separated backends (default: every one that loads, cpu excluded)')
  .option('--examples <n>', "test images scored and samples drawn per backend (default: bench's 2000)", (v) => Number(v))
  .option('--out <file>', 'also write the JSON here')
  .action((opts: { seconds: number; backends?: string; examples?: number; out?: string }) => {
    const report = doctor();
    const result = {
      host: { hostname: os.hostname(), cpus: os.cpus().length, platform: `${process.platform}-${process.arch}`, node: process.version },
      doctor: report,
      equality: equality(),
      throughput: throughput(opts.seconds, opts.backends ? opts.backends.split(',').map((b) => b.trim()) : backendsFrom(report), opts.examples),
    };
    const text = JSON.stringify(result, null, 2);
    if (opts.out) fs.writeFileSync(opts.out, text + '\n');
    process.stdout.write(text + '\n');
    process.exitCode = result.equality.ok ? 0 : 1;
  });

program.parse();
