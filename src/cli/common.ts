// Pieces every command shares: backend start-up, option parsing, output.
import os from 'node:os';
import { BACKEND_CHOICES, describeBackend, selectBackend, type BackendChoice } from '../backend/select.js';
import { UserError } from '../errors.js';
import { tf } from '../tf.js';
import { ParallelGradients } from '../train/parallel.js';
import type { Config } from '../config/schema.js';
import type { ModelMeta } from '../io/model-io.js';

export type BackendName = BackendChoice;

export const BACKEND_HELP = 'auto | tensorflow | webgpu | wasm | cpu (default: $FLOW_BACKEND, else auto)';

/** The backend of commands that read a run, when --backend is not given: $FLOW_BACKEND (a batch job's or CI's pin), else auto. */
export function defaultBackend(): string {
  return process.env.FLOW_BACKEND || 'auto';
}

/** Starts the backend and prints it once (stderr, so stdout stays machine-readable). */
export async function startBackend(name: string, quiet = false): Promise<void> {
  if (!(BACKEND_CHOICES as readonly string[]).includes(name)) {
    throw new UserError(`--backend ${name}: unknown backend; expected one of ${BACKEND_CHOICES.join(', ')}`);
  }
  const b = await selectBackend(name as BackendName);
  if (!quiet) process.stderr.write(`${describeBackend()}\n`);
  for (const note of b.notes) process.stderr.write(`${note}\n`);
}

/** Picks the backend (flag, else the run's config) before any tensor exists. */
export async function withBackend<T>(flags: { backend?: string; quiet?: boolean }, load: () => T): Promise<T> {
  await startBackend(flags.backend ?? 'auto', flags.quiet);
  return load();
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
// biome-ignore lint/suspicious/noExplicitAny: commander passes each command's own (positional, flags) tuple
export function run(action: (...args: any[]) => Promise<number>) {
  return async (...args: unknown[]) => {
    process.exitCode = await action(...args);
  };
}

/** `--threads N|auto` of eval and sample. */
export function parseThreads(value: string): number | 'auto' {
  if (value === 'auto') return 'auto';
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UserError(`--threads ${value}: expected auto or an integer >= 1`);
  return n;
}

export interface CpuLoad {
  cores: number;
  /** 1-minute load average: runnable processes, ours included once it has run a while. */
  load: number;
}

export function cpuLoad(): CpuLoad {
  return { cores: os.availableParallelism(), load: os.loadavg()[0]! };
}

/** Below this many images per run an extra thread's start-up (about a second: a tfjs backend and a model copy) costs more than it saves. */
export const MIN_THREADED_WORK = 500;
const MAX_AUTO_THREADS = 4;

/**
 * How many threads to run for `work` images. Extra threads only pay on cores nobody else is using: on a
 * loaded 2-core machine `--threads 2` made sampling slower (10.6 s vs 6.8 s for 1000). `auto` takes the
 * cores the load average leaves free (at least 1, at most 4), and says so on stderr when load makes it
 * use fewer than the machine has; an explicit N is kept, with a warning when the machine looks busy.
 */
export function chooseThreads(requested: number | 'auto' | undefined, work: number, load: CpuLoad = cpuLoad()): { threads: number; note?: string } {
  const free = Math.max(0, load.cores - load.load);
  const busy = `the 1-minute load average is ${load.load.toFixed(2)} on ${load.cores} cores (about ${free.toFixed(1)} free)`;
  if (requested === undefined || requested === 'auto') {
    if (work < MIN_THREADED_WORK) return { threads: 1 };
    const want = Math.min(load.cores, MAX_AUTO_THREADS);
    const threads = Math.max(1, Math.min(want, Math.floor(free + 0.5)));
    return threads < want ? { threads, note: `--threads auto: ${busy}; using ${threads} thread${threads === 1 ? '' : 's'} (--threads N to insist)` } : { threads };
  }
  if (requested > 1 && free < requested - 0.5) {
    return { threads: requested, note: `--threads ${requested}: ${busy}; threads competing for busy cores can be slower than one (--threads auto picks by load)` };
  }
  return { threads: requested };
}

/**
 * `--threads N|auto` of eval and sample: N - 1 worker threads, each with its own tfjs backend and a copy of the
 * model, take shares of every batch (the wasm backend is single-threaded). null for one thread.
 */
export async function inferenceThreads(
  requested: number | 'auto' | undefined,
  config: Config,
  meta: ModelMeta,
  work: number,
  quiet = false,
): Promise<ParallelGradients | null> {
  const backend = tf.getBackend();
  const native = backend !== 'wasm' && backend !== 'cpu';
  if (native && typeof requested === 'number' && requested > 1) {
    throw new UserError(`--threads ${requested}: extra threads run the wasm or cpu backend, not ${backend} (which uses its own threads); drop --threads`);
  }
  if (native) return null;
  const { threads, note } = chooseThreads(requested, work);
  if (note && !quiet) process.stderr.write(`${note}\n`);
  if (threads <= 1) return null;
  return ParallelGradients.create(config, meta, threads);
}

/** `--weights average|raw`: the run's Polyak-averaged weights (the default, when it kept them) or the last step's. */
export function parseWeights(value: string | undefined): 'average' | 'raw' {
  if (value === undefined || value === 'average') return 'average';
  if (value === 'raw') return 'raw';
  throw new UserError(`--weights ${value}: expected average or raw`);
}
