// Polyak averaging (src/train/average.ts): the update formula and its ramp, the swap in and out of the
// averaged weights, checkpoint records, and the fused wasm lerp against tf ops.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { tf } from '../src/tf.js';
import { Rng } from '../src/rng.js';
import { WeightAverage } from '../src/train/average.js';
import { averageRecordName } from '../src/io/model-io.js';
import { lerp } from '../src/kernels/cpu-paths.js';

after(async () => {
  await tf.setBackend('cpu');
});

test('decay ramps as min(decay, (1+t)/(10+t))', () => {
  assert.equal(WeightAverage.decayAt(0.99, 1), 2 / 11);
  assert.equal(WeightAverage.decayAt(0.99, 90), 91 / 100);
  assert.equal(WeightAverage.decayAt(0.99, 10_000), 0.99);
  assert.throws(() => new WeightAverage(1, []), /decay/);
});

test('the average follows its formula; withAveraged swaps the weights in and back; records round-trip (wasm and cpu)', async () => {
  for (const backend of ['wasm', 'cpu']) {
    await tf.setBackend(backend);
    const rng = new Rng(5);
    const shapes = [[3, 4], [5]];
    const params = shapes.map((sh) => tf.variable(tf.tensor(rng.normalArray(sh.reduce((a, b) => a * b, 1)), sh)));
    const avg = new WeightAverage(0.9, params);
    const expected = params.map((p) => Float64Array.from(p.dataSync()));
    const before = tf.memory().numTensors;
    for (let t = 1; t <= 30; t++) {
      params.forEach((p) => {
        const next = tf.tidy(() => tf.add(p, tf.scalar(rng.normal())));
        p.assign(next);
        next.dispose();
      });
      avg.update(t);
      const d = WeightAverage.decayAt(0.9, t);
      params.forEach((p, i) => p.dataSync().forEach((v, j) => (expected[i]![j] = d * expected[i]![j]! + (1 - d) * v)));
    }
    assert.equal(tf.memory().numTensors, before, `${backend}: no tensor growth over updates`);
    const raw = params.map((p) => Array.from(p.dataSync()));
    const inside = await avg.withAveraged(() => params.map((p) => Array.from(p.dataSync())));
    inside.forEach((values, i) => values.forEach((v, j) => assert.ok(Math.abs(v - expected[i]![j]!) < 1e-4, `${backend}: average ${i}[${j}] ${v} vs ${expected[i]![j]}`)));
    params.forEach((p, i) => assert.deepEqual(Array.from(p.dataSync()), raw[i], `${backend}: raw weights back after withAveraged`));
    await assert.rejects(avg.withAveraged(() => {
      throw new Error('boom');
    }), /boom/);
    params.forEach((p, i) => assert.deepEqual(Array.from(p.dataSync()), raw[i], `${backend}: raw weights back after a throw`));
    assert.equal(tf.memory().numTensors, before, `${backend}: no tensor growth over swaps`);

    const names = ['a', 'b'];
    const records = await avg.records(names);
    assert.deepEqual(records.map((r) => r.name), names.map(averageRecordName));
    const other = new WeightAverage(0.9, params);
    other.restore(names, new Map(records.map((r) => [r.name, r])));
    const restored = await other.withAveraged(() => params.map((p) => Array.from(p.dataSync())));
    assert.deepEqual(restored, inside, `${backend}: restored averages equal the saved ones`);
    other.restore(names, new Map()); // no records: restart at the weights
    assert.deepEqual(await other.withAveraged(() => params.map((p) => Array.from(p.dataSync()))), raw);
    tf.dispose([...params]);
    avg.dispose();
    other.dispose();
  }
});

test('lerp: the wasm kernel equals a * w + b * (1 - w) as tf ops on cpu, bit for bit', async () => {
  const rng = new Rng(8);
  const a = rng.normalArray(1003);
  const b = rng.normalArray(1003, 5);
  const out: number[][] = [];
  for (const backend of ['wasm', 'cpu']) {
    await tf.setBackend(backend);
    const [ta, tb] = [tf.tensor(a), tf.tensor(b)];
    const r = lerp(ta, tb, 0.9137);
    out.push(Array.from(r.dataSync()));
    tf.dispose([ta, tb, r]);
  }
  assert.deepEqual(out[0], out[1]);
});
