// `flow export --format safetensors`: the file is read back with a parser written here from the format's
// spec (not src/io/safetensors.ts), and with NumPy when python3 has it; every tensor must equal the checkpoint's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { flow, tempDir, writeYaml, TINY_CONFIG } from './helpers.js';
import { loadCheckpoint, readManifest } from '../src/io/checkpoint.js';

interface Parsed {
  metadata: Record<string, string>;
  tensors: Map<string, { dtype: string; shape: number[]; values: number[] }>;
}

/** A minimal safetensors reader: u64 LE header size, JSON header, contiguous little-endian tensor bytes. */
function readSafetensors(file: string): Parsed {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  assert.ok(8 + n <= buf.length, 'header fits in the file');
  // biome-ignore lint/suspicious/noExplicitAny: the header's entries are checked field by field below
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, any>;
  const { __metadata__: metadata = {}, ...entries } = header;
  for (const v of Object.values(metadata)) assert.equal(typeof v, 'string', 'metadata values are strings');
  const body = buf.subarray(8 + n);
  const tensors = new Map<string, { dtype: string; shape: number[]; values: number[] }>();
  // The reference loader requires the offsets to tile the byte buffer exactly, in offset order.
  let end = 0;
  for (const [name, e] of Object.entries(entries).sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0])) {
    const [begin, stop] = e.data_offsets as [number, number];
    assert.equal(begin, end, `${name} starts where the previous tensor ended`);
    const count = (e.shape as number[]).reduce((a, b) => a * b, 1);
    assert.ok(e.dtype === 'F32' || e.dtype === 'I32', `${name}: dtype ${e.dtype}`);
    assert.equal(stop - begin, count * 4, `${name}: byte length matches shape`);
    const values = Array.from({ length: count }, (_, i) => (e.dtype === 'F32' ? body.readFloatLE(begin + 4 * i) : body.readInt32LE(begin + 4 * i)));
    tensors.set(name, { dtype: e.dtype, shape: e.shape, values });
    end = stop;
  }
  assert.equal(end, body.length, 'the tensors cover the byte buffer, no trailing bytes');
  return { metadata, tensors };
}

test('flow export --format safetensors: every model tensor, by name, shape, dtype and value, plus metadata', () => {
  const dir = tempDir();
  const cfg = writeYaml(dir, 'tiny.yaml', TINY_CONFIG.replace('max_steps: 40', 'max_steps: 3').replace('lr: 0.003', 'lr: 0.003\n  average_decay: 0.9'));
  const tr = flow(['train', cfg, '--json', '--quiet'], dir);
  assert.equal(tr.code, 0, tr.stderr);
  const checkpoint = JSON.parse(tr.stdout.trim().split('\n').pop()!).checkpoint as string;
  const ck = loadCheckpoint(path.resolve(dir, checkpoint));
  const records = new Map(ck.tensors.map((t) => [t.name, t]));
  const modelNames = ck.tensors.filter((t) => t.name.startsWith('model.')).map((t) => t.name.slice('model.'.length));

  for (const weights of ['average', 'raw'] as const) {
    const out = path.join(dir, `model-${weights}.safetensors`);
    const r = flow(['export', '--format', 'safetensors', 'runs/latest', out, '--weights', weights, '--json', '--quiet'], dir);
    assert.equal(r.code, 0, r.stderr);
    const summary = JSON.parse(r.stdout);
    assert.equal(summary.weights, weights);
    const parsed = readSafetensors(out);
    assert.deepEqual([...parsed.tensors.keys()].sort(), [...modelNames].sort(), 'exactly the model tensors');
    let averaged = 0;
    for (const [name, t] of parsed.tensors) {
      // Trainable weights come from the Polyak average when asked for; the rest (ActNorm flags, LU permutation) as trained.
      const avg = weights === 'average' ? records.get(`average.${name}`) : undefined;
      const want = avg ?? records.get(`model.${name}`)!;
      if (avg) averaged++;
      assert.deepEqual(t.shape, want.shape, `${name}: shape`);
      assert.equal(t.dtype, want.dtype === 'float32' ? 'F32' : 'I32', `${name}: dtype`);
      assert.deepEqual(t.values, Array.from(want.data), `${name}: values`);
    }
    assert.ok(weights === 'raw' ? averaged === 0 : averaged > 10, `${weights}: ${averaged} averaged tensors`);
    const md = parsed.metadata;
    assert.equal(md.step, String(ck.step));
    assert.equal(md.weights, weights);
    assert.equal(md.checkpoint_sha256, readManifest(path.resolve(dir, checkpoint)).sha256['weights.bin']);
    assert.deepEqual(JSON.parse(md.config!), ck.config);
    assert.deepEqual(JSON.parse(md.data_shape!), [28, 28, 1]);
  }
  const rawOut = path.join(dir, 'model-raw.safetensors');
  const avgOut = path.join(dir, 'model-average.safetensors');
  assert.notDeepEqual(fs.readFileSync(rawOut), fs.readFileSync(avgOut), 'averaged and raw exports differ');

  // NumPy, when present, reads the same bytes as the reference loader would (header + frombuffer).
  const py = spawnSync('python3', ['-c', `
import json, struct, sys, numpy as np
b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n]); h.pop('__metadata__', None)
out = {}
for k, e in h.items():
    s, t = e['data_offsets']
    a = np.frombuffer(b[8 + n + s:8 + n + t], dtype={'F32': '<f4', 'I32': '<i4'}[e['dtype']]).reshape(e['shape'])
    out[k] = [list(a.shape), float(a.astype(np.float64).sum())]
print(json.dumps(out))
`, rawOut], { encoding: 'utf8' });
  if (py.status === 0) {
    const sums = JSON.parse(py.stdout) as Record<string, [number[], number]>;
    assert.equal(Object.keys(sums).length, modelNames.length);
    for (const name of modelNames) {
      const want = records.get(`model.${name}`)!;
      assert.deepEqual(sums[name]![0], want.shape, `numpy ${name}: shape`);
      const sum = Array.from(want.data).reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(sums[name]![1] - sum) <= 1e-9 * (1 + Math.abs(sum)), `numpy ${name}: sum ${sums[name]![1]} vs ${sum}`);
    }
  } else if (!/No module named|not found|ENOENT/.test(`${py.stderr}${py.error?.message ?? ''}`)) {
    assert.fail(`python3 could not read the export: ${py.stderr}`);
  }

  const bad = flow(['export', '--format', 'onnx', 'runs/latest', path.join(dir, 'x.onnx')], dir);
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
  assert.match(bad.stderr, /--format onnx: unknown export format; expected one of safetensors/);
  const noOut = flow(['export', '--format', 'safetensors', 'runs/latest'], dir);
  assert.equal(noOut.code, 2);
  assert.match(noOut.stderr, /give the output file/);
});
