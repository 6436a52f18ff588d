// Backend selection and `flow doctor` on this machine (no tfjs-node-gpu, no GPU).
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
import { runDoctor, formatDoctor, gpuUsable, findLibrary, type DoctorReport } from '../src/backend/doctor.js';

test('selectBackend(tensorflow) without tfjs-node-gpu throws a one-line UserError with the install command', async () => {
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

test('selectBackend(auto) picks wasm here; cpu and wasm can be chosen explicitly', async () => {
  const auto = await selectBackend('auto');
  assert.equal(auto.name, 'wasm');
  assert.equal(auto.device, 'CPU');
  assert.equal(tf.getBackend(), 'wasm');
  assert.match(describeBackend(), /^backend: wasm \(CPU, (SIMD|no SIMD)/);
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

test('doctor lists wasm and cpu as loading and explains why there is no GPU', async () => {
  const before = tf.getBackend();
  const r = await runDoctor();
  assert.equal(tf.getBackend(), before, 'doctor restores the backend');
  const byName = Object.fromEntries(r.backends.map((b) => [b.name, b]));
  assert.equal(byName.wasm.loads, true);
  assert.equal(byName.cpu.loads, true);
  assert.equal(byName.tensorflow.loads, false);
  assert.match(byName.tensorflow.error ?? '', /tfjs-node-gpu is not installed/);
  assert.equal(r.tfjsCore, '4.22.0');
  assert.equal(r.packages['@tensorflow/tfjs-backend-wasm'], '4.22.0');
  assert.equal(typeof r.wasmSimd, 'boolean');
  assert.equal(r.tensorflowGpu, null);
  assert.deepEqual(r.libraries.map((l) => l.name), ['libcudart.so.11.0', 'libcudnn.so.8', 'libcudart.so.12']);
  const text = formatDoctor(r);
  assert.match(text, /^ {2}wasm +loads$/m);
  assert.match(text, /^ {2}cpu +loads$/m);
  assert.match(text, /tensorflow +does not load/);
  const gpu = gpuUsable(r);
  assert.equal(gpu.ok, false);
  assert.match(gpu.reason, /tfjs-node-gpu/);
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
