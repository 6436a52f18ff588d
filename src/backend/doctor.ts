// `flow doctor`: which backends load here, whether TensorFlow or WebGPU sees a GPU, and why not.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { tf } from '../tf.js';
import { firstLine, isNotInstalled, loadTfjsNodeGpu, silenceCpuBanner, tensorflowUsesGpu, TFJS_NODE_GPU } from './select.js';
import { exposeAdapter, findAdapter, hardwareAdapterPossible, vulkanIcds, vulkanLoader, webgpuLoadError, WEBGPU_INSTALL_HINT, type WebGpuAdapterReport } from './webgpu.js';

const require = createRequire(import.meta.url);

export interface BackendProbe {
  name: 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';
  loads: boolean;
  /** First line of the load error when it does not load. */
  error?: string;
}

export interface LibraryProbe {
  name: string;
  /** Where it was found, or null. */
  path: string | null;
}

export interface DoctorReport {
  node: string;
  platform: string;
  tfjsCore: string;
  /** Installed @tensorflow/* packages and their versions. */
  packages: Record<string, string>;
  backends: BackendProbe[];
  /** isUsingGpuDevice() of the tensorflow backend; null when that backend does not load. */
  tensorflowGpu: boolean | null;
  /** libcudart.so.11.0 and libcudnn.so.8 (what tfjs-node-gpu 4.22 links against), plus CUDA 12's libcudart for the hint. */
  libraries: LibraryProbe[];
  /** GPUs nvidia-smi lists ("name, driver"), or null when nvidia-smi is missing. */
  nvidiaGpus: string[] | null;
  wasmSimd: boolean | null;
  wasmThreads: boolean | null;
  webgpu: WebGpuReport;
}

export interface WebGpuReport {
  /** Whether the npm package `webgpu` (Dawn) loads; error says why not. */
  loads: boolean;
  error?: string;
  /** The hardware adapter (Vulkan / Metal / D3D12), or null. */
  hardware: WebGpuAdapterReport | null;
  /** The software adapter (Dawn's OpenGL ES backend on llvmpipe), or null. */
  software: WebGpuAdapterReport | null;
  /** Linux: the Vulkan loader (libvulkan.so.1) and the driver ICD manifests. */
  vulkanLoader: string | null;
  vulkanIcds: string[];
}

const CUDART_11 = 'libcudart.so.11.0';
const CUDNN_8 = 'libcudnn.so.8';
const CUDART_12 = 'libcudart.so.12';

function scopePackages(): Record<string, string> {
  const out: Record<string, string> = {};
  let scopeDir: string;
  try {
    scopeDir = path.dirname(path.dirname(require.resolve('@tensorflow/tfjs-core/package.json')));
  } catch {
    return out;
  }
  for (const entry of fs.readdirSync(scopeDir).sort()) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(scopeDir, entry, 'package.json'), 'utf8')) as { version?: string };
      out[`@tensorflow/${entry}`] = pkg.version ?? '?';
    } catch {
      // not a package directory
    }
  }
  return out;
}

function run(cmd: string, args: string[]): string | null {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return null;
  }
}

/** Finds a shared library the way the dynamic linker would (ldconfig cache, LD_LIBRARY_PATH), plus CUDA's usual home. */
export function findLibrary(name: string, ldconfigOutput: string | null, env: NodeJS.ProcessEnv = process.env): string | null {
  if (ldconfigOutput) {
    for (const line of ldconfigOutput.split('\n')) {
      const m = /^\s*(\S+)\s.*=>\s*(\S+)\s*$/.exec(line);
      if (m && (m[1] === name || m[1].startsWith(`${name}.`))) return m[2];
    }
  }
  const dirs = (env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean);
  try {
    for (const d of fs.readdirSync('/usr/local')) {
      if (d.startsWith('cuda')) dirs.push(path.join('/usr/local', d, 'lib64'));
    }
  } catch {
    // no /usr/local
  }
  for (const dir of dirs) {
    try {
      const hit = fs.readdirSync(dir).find((f) => f === name || f.startsWith(`${name}.`));
      if (hit) return path.join(dir, hit);
    } catch {
      // unreadable or missing directory
    }
  }
  return null;
}

async function probe(name: BackendProbe['name'], load: () => void): Promise<BackendProbe> {
  try {
    load();
    if (!(await tf.setBackend(name))) return { name, loads: false, error: 'backend failed to initialise' };
    if (name === 'cpu') silenceCpuBanner();
    await tf.ready();
    // A tiny op proves the kernels run, not just that the module imported.
    // Read asynchronously: a GPU backend has no synchronous read in Node.
    const t = tf.tidy(() => tf.sum(tf.add(tf.ones([2, 2]), 1)));
    const sum = (await t.data())[0];
    t.dispose();
    if (sum !== 8) return { name, loads: false, error: `sanity op returned ${sum}, expected 8` };
    return { name, loads: true };
  } catch (e) {
    return { name, loads: false, error: firstLine(e) };
  }
}

export async function runDoctor(): Promise<DoctorReport> {
  const previous = tf.getBackend();
  const backends: BackendProbe[] = [];
  backends.push(await probe('cpu', () => require('@tensorflow/tfjs-backend-cpu')));
  const wasm = await probe('wasm', () => require('@tensorflow/tfjs-backend-wasm'));
  backends.push(wasm);
  const wasmSimd = wasm.loads ? tf.env().getBool('WASM_HAS_SIMD_SUPPORT') : null;
  const wasmThreads = wasm.loads ? tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT') : null;
  const tensorflow = await probe('tensorflow', loadTfjsNodeGpu);
  if (!tensorflow.loads && isNotInstalled(new Error(tensorflow.error ?? ''))) {
    tensorflow.error = `${TFJS_NODE_GPU} is not installed`;
  }
  backends.push(tensorflow);
  const tensorflowGpu = tensorflow.loads ? tensorflowUsesGpu() : null;
  const { probe: webgpuProbe, report: webgpu } = await probeWebGpu();
  backends.push(webgpuProbe);
  if (previous && previous !== tf.getBackend()) await tf.setBackend(previous).catch(() => false);

  const ldconfig = run('ldconfig', ['-p']) ?? run('/sbin/ldconfig', ['-p']);
  const libraries = [CUDART_11, CUDNN_8, CUDART_12].map((name) => ({ name, path: findLibrary(name, ldconfig) }));
  const smi = run('nvidia-smi', ['--query-gpu=name,driver_version', '--format=csv,noheader']);
  const nvidiaGpus = smi === null ? null : smi.split('\n').map((l) => l.trim()).filter(Boolean);

  const packages = scopePackages();
  return {
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    tfjsCore: tf.version_core,
    packages,
    backends,
    tensorflowGpu,
    libraries,
    nvidiaGpus,
    wasmSimd,
    wasmThreads,
    webgpu,
  };
}

/** Dawn's adapters (hardware only where a hardware backend can exist, so Dawn prints no warnings), and tfjs on the best one. */
async function probeWebGpu(): Promise<{ probe: BackendProbe; report: WebGpuReport }> {
  const hardware = hardwareAdapterPossible() ? await findAdapter('hardware') : null;
  const software = await findAdapter('software');
  const loadError = webgpuLoadError();
  const report: WebGpuReport = {
    loads: loadError === null,
    ...(loadError ? { error: loadError } : {}),
    hardware: hardware?.report ?? null,
    software: software?.report ?? null,
    vulkanLoader: process.platform === 'linux' ? vulkanLoader() : null,
    vulkanIcds: process.platform === 'linux' ? vulkanIcds() : [],
  };
  const best = hardware ?? software;
  if (!best) return { probe: { name: 'webgpu', loads: false, error: loadError ?? `no WebGPU adapter; needs ${WEBGPU_INSTALL_HINT}` }, report };
  return { probe: await probe('webgpu', () => exposeAdapter(best)), report };
}

/** Whether training can run on a GPU here, and if not, the one-line reason. */
export function gpuUsable(r: DoctorReport): { ok: boolean; reason: string } {
  const tfb = r.backends.find((b) => b.name === 'tensorflow');
  const lib = (name: string) => r.libraries.find((l) => l.name === name)?.path ?? null;
  const install = `install ${TFJS_NODE_GPU}@4.22.0 on a machine with CUDA 11.2 + cuDNN 8.1`;
  const hw = r.webgpu.hardware;
  const webgpuLoads = r.backends.find((b) => b.name === 'webgpu')?.loads ?? false;
  if (hw && webgpuLoads) return { ok: true, reason: `backend webgpu has a hardware adapter (${hw.device || hw.description || hw.vendor} via ${hw.dawnBackend})` };
  const noWebGpu = `; webgpu: ${webGpuWhyNot(r.webgpu)}`;
  if (!tfb?.loads) return { ok: false, reason: `backend tensorflow does not load (${tfb?.error ?? 'not probed'}); ${install}${noWebGpu}` };
  if (r.tensorflowGpu) return { ok: true, reason: 'backend tensorflow is using a GPU' };
  const missing = [CUDART_11, CUDNN_8].filter((n) => !lib(n));
  let why: string;
  if (r.nvidiaGpus !== null && r.nvidiaGpus.length === 0) why = 'nvidia-smi lists no GPU';
  else if (r.nvidiaGpus === null && missing.length === 2) why = 'no NVIDIA driver (nvidia-smi) and no CUDA libraries found';
  else if (missing.length) {
    why = `${missing.join(' and ')} not found`;
    if (missing.includes(CUDART_11) && lib(CUDART_12)) why += ' (CUDA 12 is installed; tfjs-node-gpu 4.22 needs CUDA 11.2)';
  } else why = 'CUDA 11 libraries were found but TensorFlow still chose the CPU (check the driver and GPU visibility)';
  return { ok: false, reason: `backend tensorflow runs on the CPU: ${why}${noWebGpu}` };
}

function webGpuWhyNot(w: WebGpuReport): string {
  if (!w.loads) return w.error ?? 'the webgpu package does not load';
  if (process.platform === 'linux' && !w.vulkanLoader) return `no Vulkan loader (libvulkan.so.1)${w.software ? ', only the software adapter' : ''}; needs ${WEBGPU_INSTALL_HINT}`;
  if (process.platform === 'linux' && w.vulkanIcds.length === 0) return 'a Vulkan loader but no driver ICD in /usr/share/vulkan/icd.d or /etc/vulkan/icd.d';
  return w.software ? 'only a software adapter' : 'no adapter';
}

function formatAdapter(a: WebGpuAdapterReport | null): string {
  if (!a) return 'none';
  const name = [a.vendor, a.architecture, a.device].filter(Boolean).join(' ') || a.description;
  const mib = (n: number) => `${Math.round(n / 2 ** 20)} MiB`;
  return `${name} (${a.description}; via ${a.dawnBackend}; ${a.software ? 'SOFTWARE' : 'hardware'}; max buffer ${mib(a.maxBufferSize)}, storage binding ${mib(a.maxStorageBufferBindingSize)})`;
}

export function formatDoctor(r: DoctorReport): string {
  const lines: string[] = [];
  const yesNo = (v: boolean | null) => (v === null ? 'unknown' : v ? 'yes' : 'no');
  lines.push(`node          ${r.node} (${r.platform})`);
  lines.push(`tfjs-core     ${r.tfjsCore}`);
  lines.push('packages');
  for (const [name, version] of Object.entries(r.packages)) lines.push(`  ${name.padEnd(32)} ${version}`);
  if (!(TFJS_NODE_GPU in r.packages)) lines.push(`  ${TFJS_NODE_GPU.padEnd(32)} not installed`);
  lines.push('backends');
  for (const b of r.backends) lines.push(`  ${b.name.padEnd(11)} ${b.loads ? 'loads' : `does not load: ${b.error ?? ''}`}`);
  lines.push(`wasm          SIMD ${yesNo(r.wasmSimd)}, threads ${yesNo(r.wasmThreads)}`);
  lines.push(`tensorflow    GPU in use: ${r.tensorflowGpu === null ? 'n/a (backend does not load)' : yesNo(r.tensorflowGpu)}`);
  const w = r.webgpu;
  lines.push(`webgpu        ${w.loads ? 'package loads' : `does not load: ${w.error ?? ''}`}`);
  lines.push(`  hardware    ${formatAdapter(w.hardware)}`);
  lines.push(`  software    ${formatAdapter(w.software)}`);
  if (process.platform === 'linux') {
    lines.push(`  vulkan      loader ${w.vulkanLoader ?? 'not found'}; ICDs ${w.vulkanIcds.length ? w.vulkanIcds.join(', ') : 'none'}`);
  }
  lines.push(`nvidia-smi    ${r.nvidiaGpus === null ? 'not found' : r.nvidiaGpus.length ? r.nvidiaGpus.join('; ') : 'no GPUs listed'}`);
  lines.push('libraries');
  for (const l of r.libraries) lines.push(`  ${l.name.padEnd(20)} ${l.path ?? 'not found'}`);
  const gpu = gpuUsable(r);
  lines.push(`GPU usable    ${gpu.ok ? 'yes' : 'no'}: ${gpu.reason}`);
  return lines.join('\n');
}
