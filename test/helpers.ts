// Shared test utilities: running the real bin/flow, temp dirs, numeric comparison.
import assert from 'node:assert/strict';
import { spawnSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

/** The repository root (tests run from dist/test/). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const FLOW = path.join(ROOT, 'bin', 'flow');

export function tempDir(prefix = 'flow-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * The CLI tests compare numbers and pixels across commands, so they pin the backend of commands run without
 * --backend to wasm: on a machine with a GPU, `auto` would otherwise pick it for some commands and not others.
 */
const PINNED: NodeJS.ProcessEnv = { FLOW_BACKEND: 'wasm' };

/** Runs `flow ARGS` in cwd with a non-TTY stdout (so progress is NDJSON). */
export function flow(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): RunResult {
  const r = spawnSync(process.execPath, [FLOW, ...args], { cwd, env: { ...process.env, ...PINNED, ...env }, encoding: 'utf8', timeout: 240_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function flowAsync(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): ChildProcess {
  return spawn(process.execPath, [FLOW, ...args], { cwd, env: { ...process.env, ...PINNED, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

export function writeYaml(dir: string, name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

/** A tiny Glow on 512 embedded digits: trains a few dozen steps in seconds on wasm. */
export const TINY_CONFIG = `
name: tiny
seed: 1
backend: wasm
data:
  source: embedded
  limit: 512
  test_limit: 128
model:
  family: glow
  levels: 2
  depth: 2
  width: 16
  init_batch: 64
train:
  batch_size: 32
  lr: 0.003
  max_steps: 40
  log_every: 10
  checkpoint_every: 20
  eval_examples: 128
  sample_grid: 16
`;

/** Whether tfjs-node-gpu is installed here (most machines: no; the tests must pass either way). */
export function tfjsNodeGpuInstalled(): boolean {
  try {
    createRequire(import.meta.url).resolve('@tensorflow/tfjs-node-gpu');
    return true;
  } catch {
    return false;
  }
}

/**
 * max |actual - expected| <= tol * scale, scale = max(floor, max |expected|); the message names the worst element.
 * With floor 0 (the default) the reference must not be all zeros: such a check would prove nothing.
 */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string, tol = 1e-4, floor = 0): void {
  assert.equal(actual.length, expected.length, `${what}: ${actual.length} values vs ${expected.length}`);
  let worst = 0;
  let at = -1;
  let scale = floor;
  for (let i = 0; i < expected.length; i++) {
    scale = Math.max(scale, Math.abs(expected[i]!));
    const d = Math.abs(actual[i]! - expected[i]!);
    if (!(d <= worst)) [worst, at] = [d, i];
  }
  assert.ok(scale > 0, `${what}: the reference is all zeros, the check would prove nothing`);
  assert.ok(worst <= tol * scale, `${what}: max |actual - expected| = ${worst} at ${at} (${actual[at]} vs ${expected[at]}), tolerance ${tol * scale}`);
}

/** One small model of each family with the per-example shape it runs on (images for Glow/RealNVP, vectors for NICE). */
export const SMALL_FAMILIES: Array<[family: string, shape: number[]]> = [
  ['glow', [8, 8, 2]],
  ['realnvp', [4, 4, 3]],
  ['nice', [6]],
];

/** The config text of a small model of `family` on `shape`: 2 levels for images, depth 2, width 12. */
export function smallModelYaml(family: string, shape: number[]): string {
  return `
model:
  family: ${family}
  levels: ${shape.length === 3 ? 2 : 1}
  depth: 2
  width: 12
`;
}
