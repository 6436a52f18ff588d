// Per-kernel time profile: wraps every kernel registered for the active backend so each call is
// timed (wasm and cpu kernels run synchronously, so wall time per call is the kernel's cost).
// Used by scripts/bench.ts --profile; never active in normal runs.
import { tf } from '../tf.js';

export interface KernelStat {
  kernel: string;
  phase: string;
  calls: number;
  ms: number;
}

export class KernelProfiler {
  private readonly stats = new Map<string, KernelStat>();
  private readonly restore: Array<() => void> = [];
  /** Label attached to the kernel calls from now on (e.g. 'forward', 'backward', 'optimizer'). */
  phase = 'other';
  /** Kernels whose stats are split by input shapes and attributes (e.g. BatchMatMul). */
  detailed = new Set<string>();
  /** 'cpu': process CPU time (robust on a shared machine, but counts every thread); 'wall': elapsed time. */
  clock: 'wall' | 'cpu' = 'wall';

  /** Starts timing every kernel of the current backend. */
  start(): void {
    const backend = tf.getBackend();
    for (const config of tf.getKernelsForBackend(backend)) {
      const original = config.kernelFunc;
      const kernel = config.kernelName;
      const wrapped: tf.KernelFunc = (args) => {
        const t0 = this.now();
        const out = original(args);
        let name = kernel;
        if (this.detailed.has(kernel)) name += ' ' + describeCall(args);
        this.add(name, this.now() - t0);
        return out;
      };
      (config as { kernelFunc: tf.KernelFunc }).kernelFunc = wrapped;
      this.restore.push(() => ((config as { kernelFunc: tf.KernelFunc }).kernelFunc = original));
    }
  }

  private now(): number {
    if (this.clock === 'wall') return performance.now();
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  }

  stop(): void {
    for (const r of this.restore.splice(0)) r();
  }

  reset(): void {
    this.stats.clear();
  }

  private add(kernel: string, ms: number): void {
    const key = `${this.phase}\u0000${kernel}`;
    let s = this.stats.get(key);
    if (!s) {
      s = { kernel, phase: this.phase, calls: 0, ms: 0 };
      this.stats.set(key, s);
    }
    s.calls += 1;
    s.ms += ms;
  }

  /** Stats, slowest first. */
  table(): KernelStat[] {
    return [...this.stats.values()].sort((a, b) => b.ms - a.ms);
  }
}

function describeCall(args: Parameters<tf.KernelFunc>[0]): string {
  const shapes = Object.values(args.inputs).map((t) => `[${(t as tf.TensorInfo).shape.join(',')}]`);
  const attrs = Object.entries(args.attrs ?? {})
    .filter(([, v]) => v !== false && v !== null && v !== undefined && typeof v !== 'object')
    .map(([k, v]) => `${k}=${String(v)}`);
  return [shapes.join('x'), ...attrs].join(' ');
}
