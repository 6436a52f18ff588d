// Picks and starts the TensorFlow.js backend: tensorflow (tfjs-node-gpu, native CUDA), webgpu (Dawn), wasm
// or cpu. Which Ops the flows run on each is decided in src/kernels/index.ts.
import { createRequire } from 'node:module';
import { tf } from '../tf.js';
import { UserError } from '../errors.js';
import { installWasmKernels } from '../kernels/wasm-kernels.js';
import { exposeAdapter, exposedAdapter, findAdapter, hardwareAdapterPossible, webgpuLoadError, WEBGPU_INSTALL_HINT, type WebGpuAdapterReport } from './webgpu.js';

export const BACKEND_CHOICES = ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

export interface SelectedBackend {
  name: string;
  device: 'GPU' | 'CPU';
  notes: string[];
  /** webgpu only: the adapter in use. */
  adapter?: WebGpuAdapterReport;
}

const require = createRequire(import.meta.url);

export const TFJS_NODE_GPU = '@tensorflow/tfjs-node-gpu';
export const INSTALL_HINT =
  `install it with \`npm install ${TFJS_NODE_GPU}@4.22.0\` on a machine with CUDA 11.2 + cuDNN 8.1 ` +
  '(or use --backend wasm)';
export const CUDA_FALLBACK_NOTE =
  'WARNING: backend tensorflow is running on the CPU, not the GPU: tfjs-node-gpu 4.22 needs CUDA 11.2 + cuDNN 8.1 ' +
  '(libcudart.so.11.0, libcudnn.so.8) and silently falls back to the CPU with CUDA 12. Run `flow doctor` for details.';

let current: SelectedBackend | null = null;

/** First line of an error, for one-line reports. */
export function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split('\n').find((l) => l.trim() !== '')?.trim() ?? 'unknown error';
}

/** True when the package itself is absent (not when it is present but its native binding fails to load). */
export function isNotInstalled(e: unknown): boolean {
  return firstLine(e).startsWith(`Cannot find module '${TFJS_NODE_GPU}'`);
}

/** Loads the tfjs-node-gpu package (which registers the 'tensorflow' backend); throws its load error. */
export function loadTfjsNodeGpu(): void {
  require(TFJS_NODE_GPU);
}

/** Whether the tensorflow backend is on a GPU. tfjs-node exposes it as a property of its backend
 *  (its native binding has it as a method), so accept either. */
export function tensorflowUsesGpu(): boolean {
  const backend = tf.findBackend('tensorflow') as unknown as { isUsingGpuDevice?: boolean | (() => boolean) } | null;
  const flag = backend?.isUsingGpuDevice;
  return typeof flag === 'function' ? Boolean(flag.call(backend)) : Boolean(flag);
}

async function startTensorflow(): Promise<SelectedBackend> {
  try {
    loadTfjsNodeGpu();
  } catch (e) {
    const why = isNotInstalled(e) ? 'is not installed' : `failed to load (${firstLine(e)})`;
    throw new UserError(`--backend tensorflow: ${TFJS_NODE_GPU} ${why}; ${INSTALL_HINT}`);
  }
  if (!(await tf.setBackend('tensorflow'))) {
    throw new UserError(`--backend tensorflow: ${TFJS_NODE_GPU} loaded but its backend did not start; ${INSTALL_HINT}`);
  }
  const gpu = tensorflowUsesGpu();
  return { name: 'tensorflow', device: gpu ? 'GPU' : 'CPU', notes: gpu ? [] : [CUDA_FALLBACK_NOTE] };
}

export const SOFTWARE_ADAPTER_NOTE =
  'backend webgpu is on a software adapter (the CPU emulating a GPU): results are exact, speed is not representative';

/**
 * WebGPU on the best adapter: hardware, else (only when asked for by name, never in auto) the software one.
 * Without any: one line saying what to install.
 */
async function startWebGpu(allowSoftware: boolean): Promise<SelectedBackend> {
  // tfjs makes its webgpu backend (and device) once per process: later starts reuse that adapter.
  const found = exposedAdapter() ?? (await findAdapter(allowSoftware ? 'any' : 'hardware'));
  if (found?.report.software && !allowSoftware) throw new UserError('--backend auto: only a software WebGPU adapter here');
  if (!found) {
    const why = webgpuLoadError() ?? `no WebGPU adapter found (${allowSoftware ? 'tried the GPU and the software adapter' : 'no hardware adapter'})`;
    throw new UserError(`--backend webgpu: ${why}; needs ${WEBGPU_INSTALL_HINT}`);
  }
  exposeAdapter(found);
  // Every kernel on the device: tfjs would run ops on small host-resident inputs (a checkpoint's freshly
  // loaded weights) on the CPU, whose float rounding differs from the GPU's, so a resumed run would
  // drift from an uninterrupted one.
  tf.env().set('WEBGPU_CPU_FORWARD', false);
  let ok = false;
  try {
    ok = await tf.setBackend('webgpu');
  } catch (e) {
    throw new UserError(`--backend webgpu: the adapter (${found.report.device || found.report.description}) did not start: ${firstLine(e)}`);
  }
  if (!ok) throw new UserError(`--backend webgpu: tfjs-backend-webgpu did not start on ${found.report.device || found.report.description}`);
  await tf.ready();
  failOnDeviceErrors();
  return { name: 'webgpu', device: found.report.software ? 'CPU' : 'GPU', notes: found.report.software ? [SOFTWARE_ADAPTER_NOTE] : [], adapter: found.report };
}

/**
 * WebGPU reports a failed kernel (an invalid pipeline, an exceeded limit) as an event, not an exception,
 * and the kernel's output is then garbage. A training run must not go on silently: stop with one line.
 * Exit 1, not 2: it is a failure of the backend, and every checkpoint already written stays intact.
 */
function failOnDeviceErrors(): void {
  const device = (tf.backend() as unknown as { device?: { onuncapturederror: ((e: { error?: { message?: string } }) => void) | null } }).device;
  if (!device) return;
  device.onuncapturederror = (event) => {
    const message = (event.error?.message ?? 'unknown error').split('\n').find((l) => l.trim() !== '')?.trim();
    process.stderr.write(`flow: webgpu device error: ${message} (a kernel failed; results after it would be wrong, so flow stops here)\n`);
    process.exit(1);
  };
}

async function startWasm(): Promise<SelectedBackend> {
  // The package finds its .wasm files next to its own dist/ (via __dirname), so any cwd works.
  require('@tensorflow/tfjs-backend-wasm');
  if (!(await tf.setBackend('wasm'))) throw new Error('the wasm backend failed to initialise');
  await tf.ready();
  installWasmKernels();
  return { name: 'wasm', device: 'CPU', notes: [] };
}

/** The cpu backend prints a banner recommending tfjs-node on its first tensor; we choose cpu on purpose. */
export function silenceCpuBanner(): void {
  const backend = tf.findBackend('cpu') as unknown as { firstUse?: boolean } | null;
  if (backend && 'firstUse' in backend) backend.firstUse = false;
}

async function startCpu(): Promise<SelectedBackend> {
  require('@tensorflow/tfjs-backend-cpu');
  if (!(await tf.setBackend('cpu'))) throw new Error('the cpu backend failed to initialise');
  silenceCpuBanner();
  return { name: 'cpu', device: 'CPU', notes: ['backend cpu is pure JavaScript and slow; wasm is usually 10-30x faster'] };
}

/**
 * Starts the named backend. 'auto': tensorflow when it uses a GPU, else WebGPU on a hardware adapter, else
 * wasm, else cpu (a software WebGPU adapter only when webgpu is named).
 */
export async function selectBackend(name: BackendChoice): Promise<SelectedBackend> {
  let selected: SelectedBackend;
  switch (name) {
    case 'tensorflow':
      selected = await startTensorflow();
      break;
    case 'wasm':
      try {
        selected = await startWasm();
      } catch (e) {
        throw new UserError(`--backend wasm: @tensorflow/tfjs-backend-wasm failed to load (${firstLine(e)}); try --backend cpu`);
      }
      break;
    case 'webgpu':
      selected = await startWebGpu(true);
      break;
    case 'cpu':
      selected = await startCpu();
      break;
    case 'auto':
      selected = await startAuto();
      break;
    default:
      throw new UserError(`--backend ${String(name)}: unknown backend; expected one of ${BACKEND_CHOICES.join(', ')}`);
  }
  current = selected;
  return selected;
}

async function startAuto(): Promise<SelectedBackend> {
  const notes: string[] = [];
  const gpuTensorflow = await startTensorflow().catch(() => null);
  if (gpuTensorflow?.device === 'GPU') return gpuTensorflow;
  if (gpuTensorflow) notes.push('backend tensorflow runs on the CPU here (see flow doctor); not using it');
  // Dawn prints its own warnings when it finds no Vulkan loader, so only ask where one exists.
  if (hardwareAdapterPossible()) {
    const webgpu = await startWebGpu(false).catch(() => null);
    if (webgpu) return { ...webgpu, notes: [...notes, ...webgpu.notes] };
  }
  try {
    const wasm = await startWasm();
    return { ...wasm, notes: [...notes, ...wasm.notes] };
  } catch (e) {
    notes.push(`backend wasm failed to load (${firstLine(e)}); using cpu`);
    const cpu = await startCpu();
    return { ...cpu, notes: [...notes, ...cpu.notes] };
  }
}

/** One start-up line, e.g. `backend: wasm (CPU, SIMD)`. */
export function describeBackend(): string {
  const name = current?.name ?? tf.getBackend();
  if (!name) return 'backend: none';
  const details: string[] = [current?.device ?? 'CPU'];
  if (name === 'wasm') {
    details.push(tf.env().getBool('WASM_HAS_SIMD_SUPPORT') ? 'SIMD' : 'no SIMD');
    if (tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT')) details.push('threads');
  } else if (name === 'cpu') {
    details.push('pure JS');
  } else if (name === 'webgpu' && current?.adapter) {
    const a = current.adapter;
    details.push(`${a.software ? 'software adapter' : 'hardware adapter'} ${a.device || a.description || a.vendor} via ${a.dawnBackend}`);
  }
  return `backend: ${name} (${details.join(', ')})`;
}
