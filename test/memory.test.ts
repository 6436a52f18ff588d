// Memory stays flat over long training: a few hundred steps of a small Glow through the trainer's own
// loop (src/train/), on wasm and on webgpu, and through the data-parallel gradients, and an integer flow
// trained and then coding chunks (flow compress), keep the number of
// live tensors constant from step 10 on.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import '@tensorflow/tfjs-backend-wasm';
import { tf } from '../src/tf.js';
import { parseConfigText } from '../src/config/load.js';
import { train } from '../src/train/trainer.js';
import type { TrainLogger, Progress } from '../src/train/logger.js';
import { buildModel } from '../src/flows/model.js';
import { Optimizer } from '../src/train/optimizer.js';
import { ParallelGradients } from '../src/train/parallel.js';
import { Rng } from '../src/rng.js';
import { selectBackend } from '../src/backend/select.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** A Glow small enough for 300 steps in seconds: 28x28 digits, batch 8, depth 1, width 8. */
function smallConfig(runsDir: string, steps: number, family: 'glow' | 'idf' = 'glow'): string {
  return `
name: memory
runs_dir: ${runsDir}
seed: 2
backend: wasm
data:
  source: embedded
  limit: 256
  test_limit: 16
  dequantize: ${family === 'idf' ? 'none' : 'uniform'}
model:
  family: ${family}
  levels: 2
  depth: 1
  width: 8
  init_batch: 16
train:
  batch_size: 8
  lr: 0.001
  max_steps: ${steps}
  log_every: 10
  checkpoint_every: 100000
  eval_examples: 16
  sample_grid: 0
`;
}

/**
 * `steps` trainer steps on the running backend: the tensor count at the last progress line equals the one at
 * step 10, and train() frees everything it made.
 */
async function trainFlat(steps: number, label: string, family: 'glow' | 'idf' = 'glow'): Promise<string> {
  const runsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'flow-memory-'));
  dirs.push(runsDir);
  const counts = new Map<number, number>();
  const logger: TrainLogger = {
    info() {},
    // Called by the trainer between steps, after the step's tensors were disposed.
    progress(p: Progress) {
      counts.set(p.step, tf.memory().numTensors);
    },
    event() {},
    close() {},
  };
  const cfg = parseConfigText(smallConfig(runsDir, steps, family));
  const before = tf.memory().numTensors;
  const summary = await train(cfg, { resume: 'fresh', logger });
  assert.equal(summary.step, steps);
  assert.ok(Number.isFinite(summary.loss), `${label}: training produced a finite loss`);
  const at10 = counts.get(10);
  const atEnd = counts.get(steps);
  assert.ok(at10 !== undefined && atEnd !== undefined, `${label}: progress at steps 10 and ${steps}, got ${[...counts.keys()].join(',')}`);
  assert.equal(atEnd, at10, `${label}: tensors grew from ${at10} (step 10) to ${atEnd} (step ${steps}): ${(atEnd! - at10!) / (steps - 10)} per step`);
  assert.equal(tf.memory().numTensors, before, `${label}: tensors left behind after train() returned`);
  return path.join(runsDir, 'memory');
}

test('300 trainer steps (wasm): the tensor count after the last step equals the count after step 10', async () => {
  await tf.setBackend('wasm');
  await trainFlat(300, 'wasm');
});

test('idf: 100 trainer steps, then encoding and decoding 20 chunks (flow compress), leave the tensor count flat', async () => {
  await tf.setBackend('wasm');
  const runDir = await trainFlat(100, 'idf', 'idf');
  const { resolveRun } = await import('../src/io/run.js');
  const { loadModel } = await import('../src/io/model-io.js');
  const { createChunkCodec } = await import('../src/compress/codec.js');
  const loaded = loadModel(resolveRun(runDir).checkpoint);
  const codec = await createChunkCodec(loaded, 4);
  const px = Uint8Array.from({ length: 4 * 784 }, (_, i) => (i * 7) % 256);
  const round = async () => assert.deepEqual(await codec.decodeChunk((await codec.encodeChunk(px, 4)).bytes, 4), px);
  await round();
  const before = tf.memory().numTensors;
  for (let i = 0; i < 20; i++) await round();
  assert.equal(tf.memory().numTensors, before, 'tensors grew while coding');
  loaded.model.dispose();
});

test('40 trainer steps on webgpu (the device-side step): the tensor count stays flat too', async () => {
  // The software adapter here (about 0.3 s a step for this model), the hardware one on a GPU machine.
  await selectBackend('webgpu');
  await trainFlat(40, 'webgpu');
  await selectBackend('wasm');
});

test('200 data-parallel steps (2 threads, wasm): no tensor growth on the main thread', async () => {
  await tf.setBackend('wasm');
  const cfg = parseConfigText(smallConfig(os.tmpdir(), 200));
  const shape = [28, 28, 1];
  const model = buildModel(cfg.model, shape, { seed: cfg.seed });
  const rng = new Rng(5);
  const batch = () => tf.tensor(rng.uniformArray(8 * 784, -0.5, 0.5), [8, ...shape]);
  const init = batch();
  model.initialize(init);
  init.dispose();
  const params = model.trainableVariables();
  const optimizer = new Optimizer('adam', params);
  const parallel = await ParallelGradients.create(cfg, { dataShape: shape, dataKind: 'image', nBits: 8 }, 2);
  const o = { dims: 784, nBins: 256, lossName: 'bpd' as const, classLossWeight: 0 };
  let at10 = -1;
  let last = NaN;
  try {
    for (let step = 1; step <= 200; step++) {
      const x = batch();
      const { loss, grads } = parallel.lossAndGrads(model, params, { x }, o);
      last = loss.dataSync()[0]!;
      optimizer.apply(grads, 1e-3);
      tf.dispose([x, loss, ...grads]);
      if (step === 10) at10 = tf.memory().numTensors;
    }
    assert.ok(Number.isFinite(last));
    assert.equal(tf.memory().numTensors, at10, `tensors grew from ${at10} (step 10) to ${tf.memory().numTensors} (step 200)`);
  } finally {
    await parallel.dispose();
    optimizer.dispose();
    model.dispose();
  }
});
