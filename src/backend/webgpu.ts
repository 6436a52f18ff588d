// WebGPU in Node through Dawn (the npm package `webgpu`, which ships dawn.node in its tarball) and
// @tensorflow/tfjs-backend-webgpu. Dawn drives Vulkan (Linux, Windows), Metal (macOS) and D3D12, so no
// CUDA version is pinned. Without a GPU, Dawn's OpenGL ES backend on Mesa's llvmpipe is a software
// adapter: a correctness path (CI runs the equality tests on it), never a speed path.
import { createRequire } from 'node:module';
import fs from 'node:fs';

const require = createRequire(import.meta.url);

export const WEBGPU_PACKAGE = 'webgpu';
export const WEBGPU_INSTALL_HINT =
  'a GPU driver with Vulkan (Linux: libvulkan1 plus the vendor ICD; NVIDIA in Docker: NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics), ' +
  'or for the software adapter the Debian packages libegl1 libgles2 libegl-mesa0 libgl1-mesa-dri';

/** Dawn's backend names, as `create(['backend=…'])` takes them. */
export type DawnBackend = 'vulkan' | 'metal' | 'd3d12' | 'opengles';

export interface WebGpuAdapterReport {
  /** The Dawn backend the adapter came from. */
  dawnBackend: DawnBackend;
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** llvmpipe, lavapipe, SwiftShader or a fallback adapter: runs on the CPU. */
  software: boolean;
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
}

interface GpuLike {
  requestAdapter(options?: Record<string, unknown>): Promise<AdapterLike | null>;
}
interface AdapterLike {
  readonly info: { vendor: string; architecture: string; device: string; description: string; isFallbackAdapter?: boolean };
  readonly limits: { maxBufferSize: number; maxStorageBufferBindingSize: number };
  readonly isFallbackAdapter?: boolean;
}
interface DawnModule {
  create(flags: string[]): GpuLike;
  globals: Record<string, unknown>;
}

let dawn: DawnModule | null = null;
let dawnError: string | null = null;

/** The `webgpu` module, or null with the reason in webgpuLoadError(). Loaded once. */
async function loadDawn(): Promise<DawnModule | null> {
  if (dawn || dawnError) return dawn;
  try {
    require.resolve(WEBGPU_PACKAGE);
  } catch {
    dawnError = `the npm package ${WEBGPU_PACKAGE} is not installed (npm install ${WEBGPU_PACKAGE}@0.6.2)`;
    return null;
  }
  try {
    dawn = (await import(WEBGPU_PACKAGE)) as unknown as DawnModule;
    // Dawn's GPU* classes (GPUBufferUsage, GPUShaderStage, ...) are globals in a browser; tfjs expects them.
    for (const [k, v] of Object.entries(dawn.globals)) if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  } catch (e) {
    dawnError = `the npm package ${WEBGPU_PACKAGE} failed to load (${e instanceof Error ? e.message.split('\n')[0] : String(e)})`;
  }
  return dawn;
}

export function webgpuLoadError(): string | null {
  return dawnError;
}

const SOFTWARE = /llvmpipe|lavapipe|swiftshader|softpipe|software/i;

function describe(adapter: AdapterLike, dawnBackend: DawnBackend): WebGpuAdapterReport {
  const i = adapter.info;
  const text = [i.vendor, i.architecture, i.device, i.description].join(' ');
  return {
    dawnBackend,
    vendor: i.vendor,
    architecture: i.architecture,
    device: i.device,
    description: i.description,
    software: Boolean(i.isFallbackAdapter ?? adapter.isFallbackAdapter) || SOFTWARE.test(text),
    maxBufferSize: adapter.limits.maxBufferSize,
    maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
  };
}

/** The platform's hardware Dawn backend. */
function hardwareBackend(): DawnBackend {
  if (process.platform === 'darwin') return 'metal';
  if (process.platform === 'win32') return 'd3d12';
  return 'vulkan';
}

/** The Vulkan loader, where Linux keeps it; without it Dawn finds no Vulkan adapter (and says so on stderr). */
export function vulkanLoader(): string | null {
  for (const dir of ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib/x86_64-linux-gnu', ...(process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean)]) {
    const file = `${dir}/libvulkan.so.1`;
    if (fs.existsSync(file)) return file;
  }
  return null;
}

/** Vulkan ICD manifests (one per driver: nvidia_icd.json, lvp_icd.*.json, ...). */
export function vulkanIcds(): string[] {
  const out: string[] = [];
  for (const dir of ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d']) {
    try {
      for (const f of fs.readdirSync(dir)) if (f.endsWith('.json')) out.push(`${dir}/${f}`);
    } catch {
      // no such directory
    }
  }
  return out;
}

/** Whether asking Dawn for a hardware adapter is worth it (on Linux it needs the Vulkan loader). */
export function hardwareAdapterPossible(): boolean {
  return process.platform !== 'linux' || vulkanLoader() !== null;
}

export interface FoundAdapter {
  gpu: GpuLike;
  adapter: AdapterLike;
  report: WebGpuAdapterReport;
  /** requestAdapter options the adapter needs (the GL backend only offers 'compatibility'). */
  options: Record<string, unknown>;
}

/**
 * A WebGPU adapter: 'hardware' tries the platform's GPU backend only; 'software' Dawn's OpenGL ES
 * backend (llvmpipe without a GPU); 'any' hardware first. FLOW_DAWN_BACKEND=vulkan|metal|d3d12|opengles
 * forces one Dawn backend. Null when none is found (the reason: webgpuLoadError() or no adapter).
 */
export async function findAdapter(kind: 'hardware' | 'software' | 'any'): Promise<FoundAdapter | null> {
  // One Dawn instance per kind for the whole process: tfjs keeps the device of the first one, and
  // instances created and dropped again crash Dawn's GL backend.
  const key = `${kind}:${process.env.FLOW_DAWN_BACKEND ?? ''}`;
  if (!adapters.has(key)) adapters.set(key, searchAdapter(kind));
  return adapters.get(key)!;
}

const adapters = new Map<string, Promise<FoundAdapter | null>>();

async function searchAdapter(kind: 'hardware' | 'software' | 'any'): Promise<FoundAdapter | null> {
  const d = await loadDawn();
  if (!d) return null;
  const forced = process.env.FLOW_DAWN_BACKEND as DawnBackend | undefined;
  const order: DawnBackend[] = forced ? [forced] : kind === 'hardware' ? [hardwareBackend()] : kind === 'software' ? ['opengles'] : [hardwareBackend(), 'opengles'];
  // Mesa's EGL needs a platform without a display server; harmless where a GPU driver is used.
  if (order.includes('opengles') && !process.env.EGL_PLATFORM) process.env.EGL_PLATFORM = 'surfaceless';
  for (const backend of order) {
    if (backend === 'vulkan' && !forced && !vulkanLoader()) continue;
    const gpu = d.create([`backend=${backend}`]);
    const options = backend === 'opengles' ? { featureLevel: 'compatibility' } : {};
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance', ...options }).catch(() => null);
    if (!adapter) continue;
    const report = describe(adapter, backend);
    if (kind === 'hardware' && report.software && !forced) continue;
    return { gpu, adapter, report, options };
  }
  return null;
}

let exposed: FoundAdapter | null = null;

/** The adapter tfjs-backend-webgpu runs on, once exposeAdapter ran (it creates its device once per process). */
export function exposedAdapter(): FoundAdapter | null {
  return exposed;
}

/**
 * Makes `found` the navigator.gpu that tfjs-backend-webgpu sees (it asks navigator.gpu.requestAdapter
 * itself) and registers that backend. The package checks for navigator.gpu when it is imported, so this
 * runs before the first import.
 */
export function exposeAdapter(found: FoundAdapter): void {
  if (exposed) return;
  exposed = found;
  const gpu = found.gpu;
  const shim = { requestAdapter: (options: Record<string, unknown> = {}) => gpu.requestAdapter({ ...options, ...found.options }) };
  const nav = (globalThis as unknown as { navigator?: Record<string, unknown> }).navigator;
  if (nav && typeof nav === 'object') {
    try {
      Object.defineProperty(nav, 'gpu', { value: shim, configurable: true });
      return void require('@tensorflow/tfjs-backend-webgpu');
    } catch {
      // Node's own navigator may refuse new properties: replace the object instead.
    }
  }
  Object.defineProperty(globalThis, 'navigator', { value: { ...(nav ?? {}), gpu: shim, userAgent: 'node' }, configurable: true, writable: true });
  require('@tensorflow/tfjs-backend-webgpu');
}
