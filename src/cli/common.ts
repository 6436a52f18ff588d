// Pieces every command shares: backend start-up, option parsing, output.
import { BACKEND_CHOICES, describeBackend, selectBackend, type BackendChoice } from '../backend/select.js';
import { UserError } from '../errors.js';
import { tf } from '../tf.js';
import { ParallelGradients } from '../train/parallel.js';
import type { Config } from '../config/schema.js';
import type { ModelMeta } from '../io/model-io.js';

export type BackendName = BackendChoice;

/** Starts the backend and prints it once (stderr, so stdout stays machine-readable). */
export async function startBackend(name: string, quiet = false): Promise<void> {
  if (!(BACKEND_CHOICES as readonly string[]).includes(name)) {
    throw new UserError(`--backend ${name}: unknown backend; expected one of ${BACKEND_CHOICES.join(', ')}`);
  }
  const b = await selectBackend(name as BackendName);
  if (!quiet) process.stderr.write(`${describeBackend()}\n`);
  for (const note of b.notes) process.stderr.write(`${note}\n`);
}

export function parseIntOption(flag: string, min = 0) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new UserError(`${flag} ${value}: expected an integer >= ${min}`);
    return n;
  };
}

export function parseNumberOption(flag: string, min = 0) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < min) throw new UserError(`${flag} ${value}: expected a number >= ${min}`);
    return n;
  };
}

/** "0,0.5,0.7" -> [0, 0.5, 0.7] */
export function parseNumberList(flag: string, value: string): number[] {
  const parts = value.split(',').map((s) => s.trim());
  const out = parts.map(Number);
  if (!parts.length || out.some((x, i) => parts[i] === '' || !Number.isFinite(x) || x < 0)) {
    throw new UserError(`${flag} ${value}: expected a non-negative number or a comma-separated list of them`);
  }
  return out;
}

/** "2/5" -> {index: 2, count: 5} */
export function parseShard(value: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(value);
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || count < 1 || index >= count) throw new UserError(`--shard ${value}: expected i/n with 0 <= i < n, e.g. 0/4`);
  return { index, count };
}

export function printJson(obj: unknown): void {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

/** Commander collector for repeatable options (--set a=1 --set b=2). */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Wraps a command's action: its resolved number becomes the exit code; errors reach main's handler. */
export function run(action: (...args: any[]) => Promise<number>) {
  return async (...args: unknown[]) => {
    process.exitCode = await action(...args);
  };
}

/**
 * `--threads N` of eval and sample: N - 1 worker threads, each with its own tfjs backend and a copy of the
 * model, take shares of every batch (the wasm backend is single-threaded). null for one thread.
 */
export async function inferenceThreads(threads: number | undefined, config: Config, meta: ModelMeta): Promise<ParallelGradients | null> {
  if (!threads || threads <= 1) return null;
  const backend = tf.getBackend();
  if (backend !== 'wasm' && backend !== 'cpu') {
    throw new UserError(`--threads ${threads}: extra threads run the wasm or cpu backend, not ${backend} (which uses its own threads); drop --threads`);
  }
  return ParallelGradients.create(config, meta, threads);
}

/** `--weights average|raw`: the run's Polyak-averaged weights (the default, when it kept them) or the last step's. */
export function parseWeights(value: string | undefined): 'average' | 'raw' {
  if (value === undefined || value === 'average') return 'average';
  if (value === 'raw') return 'raw';
  throw new UserError(`--weights ${value}: expected average or raw`);
}
