// Backend selection and `flow doctor`. Nothing here assumes the machine has no GPU: on one with a GPU
// (or tfjs-node-gpu installed) the same tests check what it reports instead.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { tf } from '../src/tf.js';
import { UserError } from '../src/errors.js';
import { selectBackend, describeBackend } from '../src/backend/select.js';
import { FLOW, TINY_CONFIG, tempDir, tfjsNodeGpuInstalled, writeYaml } from './helpers.js';
import { runDoctor, formatDoctor, gpuUsable, findLibrary, type DoctorReport } from '../src/backend/doctor.js';

test('selectBackend(tensorflow) without tfjs-node-gpu throws a one-line UserError with the install command', { skip: tfjsNodeGpuInstalled() && 'tfjs-node-gpu is installed here' }, async () => {
  await assert.rejects(selectBackend('tensorflow'), (e: unknown) => {
    assert.ok(e instanceof UserError);
    assert.equal(e.exitCode, 2);
    assert.match(e.message, /tfjs-node-gpu/);
    assert.match(e.message, /npm install @tensorflow\/tfjs-node-gpu@4\.22\.0/);
    assert.match(e.message, /CUDA 11\.2/);
    assert.ok(!e.message.includes('\n'), 'one line');
    return true;
  });
});

test('selectBackend(auto) picks a GPU backend only on a GPU, else wasm; cpu and wasm can be chosen explicitly', async () => {
  const auto = await selectBackend('auto');
  assert.equal(tf.getBackend(), auto.name);
  if (auto.name === 'wasm') {
    assert.equal(auto.device, 'CPU');
    assert.match(describeBackend(), /^backend: wasm \(CPU, (SIMD|no SIMD)/);
  } else {
    // auto never settles for a software adapter or a tensorflow that fell back to the CPU.
    assert.ok(['tensorflow', 'webgpu'].includes(auto.name), `auto chose ${auto.name}`);
    assert.equal(auto.device, 'GPU');
    assert.equal(auto.adapter?.software ?? false, false);
  }
  const cpu = await selectBackend('cpu');
  assert.equal(cpu.name, 'cpu');
  assert.equal(tf.getBackend(), 'cpu');
  assert.equal(describeBackend(), 'backend: cpu (CPU, pure JS)');
  const wasm = await selectBackend('wasm');
  assert.equal(wasm.name, 'wasm');
  assert.equal(tf.sum(tf.ones([3, 3])).dataSync()[0], 9);
});

test('the wasm backend loads from any working directory', () => {
  const dist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const selectJs = path.join(dist, 'src', 'backend', 'select.js');
  const script =
    `const { selectBackend, describeBackend } = await import(${JSON.stringify(selectJs)});` +
    `await selectBackend('wasm'); console.log(describeBackend());`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: os.tmpdir(), encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /backend: wasm/);
});

test('doctor lists the backends, the WebGPU adapters, and whether a GPU is usable', async () => {
  const before = tf.getBackend();
  const r = await runDoctor();
  assert.equal(tf.getBackend(), before, 'doctor restores the backend');
  const byName = Object.fromEntries(r.backends.map((b) => [b.name, b]));
  assert.equal(byName.wasm.loads, true);
  assert.equal(byName.cpu.loads, true);
  if (!tfjsNodeGpuInstalled()) {
    assert.equal(byName.tensorflow.loads, false);
    assert.match(byName.tensorflow.error ?? '', /tfjs-node-gpu is not installed/);
    assert.equal(r.tensorflowGpu, null);
  }
  assert.equal(r.tfjsCore, '4.22.0');
  assert.equal(r.packages['@tensorflow/tfjs-backend-wasm'], '4.22.0');
  assert.equal(r.packages['@tensorflow/tfjs-backend-webgpu'], '4.22.0');
  assert.equal(typeof r.wasmSimd, 'boolean');
  assert.deepEqual(r.libraries.map((l) => l.name), ['libcudart.so.11.0', 'libcudnn.so.8', 'libcudart.so.12']);
  // WebGPU: the package loads, and an adapter exists (the software one at least, which CI installs).
  assert.equal(r.webgpu.loads, true, r.webgpu.error);
  const adapter = r.webgpu.hardware ?? r.webgpu.software;
  assert.ok(adapter, 'no WebGPU adapter at all: install libegl1 libgles2 libegl-mesa0 libgl1-mesa-dri (see .ci/run)');
  assert.equal(byName.webgpu.loads, true, byName.webgpu.error);
  assert.ok(adapter.maxBufferSize > 0 && adapter.maxStorageBufferBindingSize > 0);
  if (r.webgpu.software) assert.equal(r.webgpu.software.software, true);
  if (r.webgpu.hardware) assert.equal(r.webgpu.hardware.software, false);
  const text = formatDoctor(r);
  assert.match(text, /^ {2}wasm +loads$/m);
  assert.match(text, /^ {2}cpu +loads$/m);
  assert.match(text, /^ {2}webgpu +loads$/m);
  assert.match(text, /^webgpu +package loads$/m);
  const gpu = gpuUsable(r);
  assert.equal(gpu.ok, Boolean(r.tensorflowGpu) || r.webgpu.hardware !== null, gpu.reason);
  if (!gpu.ok) assert.match(gpu.reason, /tfjs-node-gpu.*webgpu: /);
});

test('gpuUsable: a hardware WebGPU adapter counts as a GPU, a software one does not', () => {
  const adapter = { dawnBackend: 'vulkan' as const, vendor: 'nvidia', architecture: 'hopper', device: 'NVIDIA H200', description: 'NVIDIA driver 570', software: false, maxBufferSize: 2 ** 34, maxStorageBufferBindingSize: 2 ** 31 };
  const base: DoctorReport = {
    node: 'v20',
    platform: 'linux-x64',
    tfjsCore: '4.22.0',
    packages: {},
    backends: [{ name: 'tensorflow', loads: false, error: 'not installed' }, { name: 'webgpu', loads: true }],
    tensorflowGpu: null,
    libraries: [],
    nvidiaGpus: null,
    wasmSimd: true,
    wasmThreads: false,
    webgpu: { loads: true, hardware: adapter, software: null, vulkanLoader: '/usr/lib/x86_64-linux-gnu/libvulkan.so.1', vulkanIcds: ['/usr/share/vulkan/icd.d/nvidia_icd.json'] },
  };
  const hw = gpuUsable(base);
  assert.equal(hw.ok, true);
  assert.match(hw.reason, /webgpu has a hardware adapter \(NVIDIA H200 via vulkan\)/);
  assert.match(formatDoctor(base), /hardware +nvidia hopper NVIDIA H200 .*hardware; max buffer 16384 MiB/);
  const soft = gpuUsable({ ...base, webgpu: { ...base.webgpu, hardware: null, software: { ...adapter, dawnBackend: 'opengles', device: 'llvmpipe', software: true }, vulkanLoader: null, vulkanIcds: [] } });
  assert.equal(soft.ok, false);
  assert.match(soft.reason, /no Vulkan loader \(libvulkan\.so\.1\), only the software adapter/);
});

test('--backend webgpu without an adapter of the asked kind exits 2 with one line saying what to install', () => {
  // d3d12 exists on Windows only, so this Dawn backend finds no adapter on Linux or macOS.
  const dir = tempDir();
  const cfg = writeYaml(dir, 'c.yaml', TINY_CONFIG);
  const r = spawnSync(process.execPath, [FLOW, 'train', cfg, '--backend', 'webgpu', '--dry-run'], { cwd: dir, encoding: 'utf8', env: { ...process.env, FLOW_DAWN_BACKEND: 'd3d12' }, timeout: 60_000 });
  assert.equal(r.status, 2, r.stderr);
  const lines = r.stderr.split('\n').filter((l) => l.startsWith('flow:'));
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /--backend webgpu: no WebGPU adapter found .*Vulkan.*libegl1 libgles2 libegl-mesa0 libgl1-mesa-dri/);
});

test('gpuUsable explains a CUDA 12 machine and accepts a working GPU', () => {
  const base: DoctorReport = {
    node: 'v20',
    platform: 'linux-x64',
    tfjsCore: '4.22.0',
    packages: {},
    backends: [{ name: 'tensorflow', loads: true }],
    tensorflowGpu: false,
    libraries: [
      { name: 'libcudart.so.11.0', path: null },
      { name: 'libcudnn.so.8', path: '/usr/lib/libcudnn.so.8' },
      { name: 'libcudart.so.12', path: '/usr/local/cuda-12.2/lib64/libcudart.so.12' },
    ],
    nvidiaGpus: ['NVIDIA A10G, 535.104.05'],
    wasmSimd: true,
    wasmThreads: false,
    webgpu: { loads: true, hardware: null, software: null, vulkanLoader: null, vulkanIcds: [] },
  };
  const cuda12 = gpuUsable(base);
  assert.equal(cuda12.ok, false);
  assert.match(cuda12.reason, /libcudart\.so\.11\.0 not found/);
  assert.match(cuda12.reason, /CUDA 12/);
  assert.deepEqual(gpuUsable({ ...base, tensorflowGpu: true }).ok, true);
  assert.match(formatDoctor(base), /GPU usable +no/);
});

test('findLibrary reads the ldconfig cache and LD_LIBRARY_PATH', () => {
  const ldconfig = [
    '123 libs found in cache `/etc/ld.so.cache\'',
    '\tlibcudnn.so.8 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcudnn.so.8',
    '\tlibcudart.so.12 (libc6,x86-64) => /usr/local/cuda/lib64/libcudart.so.12',
  ].join('\n');
  assert.equal(findLibrary('libcudnn.so.8', ldconfig, {}), '/usr/lib/x86_64-linux-gnu/libcudnn.so.8');
  assert.equal(findLibrary('libcudart.so.11.0', ldconfig, {}), null);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flow-libs-'));
  try {
    fs.writeFileSync(path.join(dir, 'libcudart.so.11.0.221'), '');
    assert.equal(findLibrary('libcudart.so.11.0', null, { LD_LIBRARY_PATH: `/nonexistent:${dir}` }), path.join(dir, 'libcudart.so.11.0.221'));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
