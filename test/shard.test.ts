import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import {
  shardIndices,
  parsePart,
  readPart,
  serializePart,
  writePart,
  type EvalPart,
  type SamplePart,
} from '../src/eval/shard.js';
import { mergeEvalParts, mergeSampleParts } from '../src/eval/merge.js';
import { mergeCommand, sampleGridLabels } from '../src/cli/merge.js';
import { meanAndStderr } from '../src/eval/bpd.js';
import { tile, encodePng, encodeLabelledGrid, GUTTER } from '../src/io/png.js';
import { Rng } from '../src/rng.js';
import { UserError } from '../src/errors.js';
import { perClassSummary, perExampleCsv } from '../src/eval/summary.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flow-shard-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

/** A whole "unsharded" evaluation with awkward float values, and its labels. */
function wholeEval(total: number, seed = 3): { values: number[]; logp: number[]; labels: number[] } {
  const rng = new Rng(seed);
  const values = Array.from({ length: total }, () => 1 + rng.next() * 3 + rng.next() * 1e-9);
  return { values, logp: values.map((v) => -v * 784 * Math.LN2 + 784 * Math.log(256)), labels: values.map(() => rng.int(10)) };
}

function evalParts(total: number, count: number, opts: { labels?: boolean } = {}): EvalPart[] {
  const whole = wholeEval(total);
  return Array.from({ length: count }, (_, index) => {
    const indices = shardIndices(total, { index, count });
    return {
      kind: 'flow-eval-part',
      version: 1,
      shard: { index, count },
      total,
      split: 'test',
      metric: 'bpd',
      seed: 7,
      run_dir: '/runs/quickstart',
      checkpoint: '/runs/quickstart/checkpoints/step-000100',
      step: 100,
      indices,
      values: indices.map((i) => whole.values[i]!),
      log_prob: indices.map((i) => whole.logp[i]!),
      ...(opts.labels ? { labels: indices.map((i) => whole.labels[i]!) } : {}),
    } satisfies EvalPart;
  });
}

function refuses(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`);
    assert.match(e.message, pattern);
    return true;
  });
}

/** Runs mergeCommand with stdout captured. */
async function runMerge(parts: string[], flags: { out: string; json?: boolean; labels?: boolean }): Promise<{ code: number; stdout: string }> {
  const write = process.stdout.write;
  let stdout = '';
  process.stdout.write = ((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  }) as typeof process.stdout.write;
  try {
    const code = await mergeCommand(parts, flags);
    return { code, stdout };
  } finally {
    process.stdout.write = write;
  }
}

test('shardIndices: every index 0..total-1 exactly once over the shards, shard i taking i, i+n, ...', () => {
  for (const [total, count] of [[0, 1], [1, 1], [1, 3], [10, 1], [10, 3], [10, 10], [7, 12], [1000, 7], [10000, 64]] as const) {
    const hits = new Uint8Array(total);
    for (let index = 0; index < count; index++) {
      const mine = shardIndices(total, { index, count });
      mine.forEach((i, j) => {
        assert.equal(i, index + j * count);
        hits[i]!++;
      });
      // Shares differ by at most one example.
      assert.ok(Math.abs(mine.length - total / count) < 1, `shard ${index}/${count} of ${total} has ${mine.length}`);
    }
    assert.ok(hits.every((h) => h === 1), `total ${total}, ${count} shards`);
  }
  assert.deepEqual(shardIndices(5, null), [0, 1, 2, 3, 4]);
  refuses(() => shardIndices(5, { index: 3, count: 3 }), /--shard 3\/3/);
});

test('mergeEvalParts gives bitwise the unsharded mean and stderr, in any part order', () => {
  for (const [total, count] of [[103, 4], [10, 1], [5, 8], [1000, 7]] as const) {
    const whole = wholeEval(total);
    const expected = meanAndStderr(Float64Array.from(whole.values));
    const parts = evalParts(total, count).reverse();
    // Through the file format too: JSON must round-trip every double exactly.
    const reread = parts.map((p, k) => parsePart(serializePart(p), `part-${k}.json`) as EvalPart);
    const merged = mergeEvalParts(reread);
    assert.equal(merged.mean, expected.mean);
    assert.equal(merged.stderr, expected.stderr);
    assert.equal(merged.n, total);
    assert.deepEqual(Array.from(merged.values), whole.values);
    assert.deepEqual(Array.from(merged.log_prob), whole.logp);
    assert.deepEqual(merged.indices, shardIndices(total, null));
  }
});

test('non-finite values survive the part file and make the merged mean non-finite, like the unsharded eval', () => {
  const parts = evalParts(9, 3);
  parts[1]!.values[0] = Infinity;
  parts[2]!.values[1] = NaN;
  const reread = parts.map((p) => parsePart(serializePart(p), 'p') as EvalPart);
  assert.equal(reread[1]!.values[0], Infinity);
  assert.ok(Number.isNaN(reread[2]!.values[1]));
  // A plain JSON.stringify leaves null; read as NaN rather than refused.
  const plain = parsePart(JSON.stringify(parts[2]), 'p') as EvalPart;
  assert.ok(Number.isNaN(plain.values[1]));
  assert.ok(Number.isNaN(mergeEvalParts(reread).mean));
});

test('mergeEvalParts refuses missing, duplicate and inconsistent shards, naming the part', () => {
  const names = ['a.json', 'b.json', 'c.json', 'd.json'];
  const parts = () => evalParts(50, 4);
  refuses(() => mergeEvalParts(parts().slice(0, 3), names.slice(0, 3)), /missing shard 3\/4/);
  refuses(() => {
    const p = parts();
    return mergeEvalParts([p[0]!, p[1]!, p[2]!, p[3]!, p[1]!], [...names, 'e.json']);
  }, /e\.json: shard 1\/4 given twice \(also b\.json\)/);
  refuses(() => {
    const p = parts();
    p[2]!.checkpoint = '/runs/quickstart/checkpoints/step-000200';
    return mergeEvalParts(p, names);
  }, /c\.json: checkpoint .*step-000200.* differs from a\.json/);
  for (const [field, value] of [['seed', 8], ['split', 'train'], ['total', 51], ['step', 200], ['metric', 'nll']] as const) {
    refuses(() => {
      const p = parts();
      (p[3] as unknown as Record<string, unknown>)[field] = value;
      return mergeEvalParts(p, names);
    }, new RegExp(`d\\.json: ${field} `));
  }
  refuses(() => {
    const p = parts();
    p[1]!.shard = { index: 1, count: 5 };
    return mergeEvalParts(p, names);
  }, /b\.json: shard 1\/5 but a\.json is shard 0\/4/);
  // Index-level damage: a dropped example, an example of another shard, a repeated one.
  refuses(() => {
    const p = parts();
    for (const key of ['indices', 'values', 'log_prob'] as const) p[2]![key].pop();
    return mergeEvalParts(p, names);
  }, /c\.json: index 46 is missing/);
  refuses(() => {
    const p = parts();
    p[0]!.indices[1] = 5;
    return mergeEvalParts(p, names);
  }, /a\.json: index 5 does not belong to shard 0\/4/);
  refuses(() => {
    const p = parts();
    p[0]!.indices[1] = 0;
    return mergeEvalParts(p, names);
  }, /a\.json: index 0 appears twice/);
  refuses(() => {
    const p = parts();
    p[0]!.values.pop();
    return mergeEvalParts(p, names);
  }, /a\.json: .*different lengths/);
  refuses(() => mergeEvalParts([]), /no part files/);
});

test('parsePart refuses files that are not valid parts, naming the file', () => {
  refuses(() => parsePart('{"bpd": 3.1, "n": 10}', '/results/eval.json'), /\/results\/eval\.json: not a flow part file/);
  refuses(() => parsePart('{oops', 'x.json'), /x\.json: not valid JSON/);
  const p = JSON.parse(serializePart(evalParts(10, 2)[0]!));
  refuses(() => parsePart(JSON.stringify({ ...p, version: 2 }), 'v.json'), /v\.json: part format version 2/);
  refuses(() => parsePart(JSON.stringify({ ...p, shard: { index: 2, count: 2 } }), 's.json'), /s\.json: invalid flow-eval-part: shard/);
  refuses(() => parsePart(JSON.stringify({ ...p, indices: 'all' }), 'i.json'), /i\.json: invalid flow-eval-part: indices/);
  refuses(() => readPart(path.join(tmp, 'absent.json')), /absent\.json: cannot read part file \(no such file\)/);
});

test('flow merge of eval parts writes the eval JSON (with per_example and per_class) and the per-example CSV', async () => {
  const dir = path.join(tmp, 'eval');
  fs.mkdirSync(dir);
  const parts = evalParts(37, 3, { labels: true });
  parts[0]!.class_names = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];
  const files = parts.map((p, k) => {
    const f = path.join(dir, `part-${k}.json`);
    writePart(f, p);
    return f;
  });
  const whole = wholeEval(37);
  const expected = meanAndStderr(Float64Array.from(whole.values));

  const out = path.join(dir, 'merged', 'eval.json');
  const { code, stdout } = await runMerge(files.reverse(), { out, json: true });
  assert.equal(code, 0);
  const printed = JSON.parse(stdout);
  assert.equal(printed.bpd, expected.mean);
  assert.equal(printed.out, out);
  const result = JSON.parse(fs.readFileSync(out, 'utf8'));
  assert.equal(result.bpd, expected.mean);
  assert.equal(result.stderr, expected.stderr);
  assert.equal(result.n, 37);
  assert.equal(result.split, 'test');
  assert.equal(result.seed, 7);
  assert.equal(result.step, 100);
  assert.equal(result.shards, 3);
  assert.equal(result.per_example.length, 37);
  assert.deepEqual(result.per_example[5], { index: 5, label: whole.labels[5], bpd: whole.values[5], log_prob: whole.logp[5] });
  // per_class as the unsharded eval computes it: examples of a class in index order.
  const sevens = whole.values.filter((_, i) => whole.labels[i] === 7);
  assert.equal(result.per_class.seven.bpd, meanAndStderr(sevens).mean);
  assert.equal(result.per_class.seven.n, sevens.length);

  const csv = path.join(dir, 'eval.csv');
  assert.equal((await runMerge(files, { out: csv })).code, 0);
  const lines = fs.readFileSync(csv, 'utf8').trimEnd().split('\n');
  assert.equal(lines[0], 'index,label,bpd,log_prob_nats');
  assert.equal(lines.length, 38);
  assert.equal(lines[3], `2,${whole.labels[2]},${whole.values[2]},${whole.logp[2]}`);

  // Without labels there is no label column.
  const plain = evalParts(6, 2).map((p, k) => {
    const f = path.join(dir, `plain-${k}.json`);
    writePart(f, p);
    return f;
  });
  await runMerge(plain, { out: path.join(dir, 'plain.csv') });
  assert.equal(fs.readFileSync(path.join(dir, 'plain.csv'), 'utf8').split('\n')[0], 'index,bpd,log_prob_nats');
});

test('flow merge refuses a missing shard file and a mix of eval and sample parts', async () => {
  const dir = path.join(tmp, 'refuse');
  fs.mkdirSync(dir);
  const files = evalParts(20, 3).map((p, k) => {
    const f = path.join(dir, `part-${k}.json`);
    writePart(f, p);
    return f;
  });
  await assert.rejects(runMerge(files.slice(1), { out: path.join(dir, 'eval.json') }), /missing shard 0\/3/);
  await assert.rejects(runMerge(files, { out: path.join(dir, 'eval.png') }), /eval\.png: eval parts merge into a \.json result or a \.csv/);
  const sample = path.join(dir, 'sample-part.json');
  writePart(sample, { ...samplePart(0, 1, 1, [], dir), files: [] });
  await assert.rejects(runMerge([files[0]!, sample], { out: path.join(dir, 'x.json') }), /sample-part\.json: is a flow-sample-part but .*part-0\.json is a flow-eval-part/);
  assert.ok(!fs.existsSync(path.join(dir, 'eval.json')));
});

function samplePart(index: number, count: number, total: number, files: Array<{ index: number; file: string }>, _dir: string): SamplePart {
  return {
    kind: 'flow-sample-part',
    version: 1,
    shard: { index, count },
    total,
    seed: 3,
    temperature: 0.7,
    checkpoint: '/runs/x/checkpoints/step-000010',
    step: 10,
    files,
    height: 6,
    width: 5,
    channels: 1,
  };
}

test('flow merge of sample parts: the grid equals an unsharded grid, and a directory gets the files in order', async () => {
  const dir = path.join(tmp, 'samples');
  const total = 10;
  const count = 3;
  const [h, w, c] = [6, 5, 1];
  const rng = new Rng(11);
  const pixels = Uint8Array.from({ length: total * h * w * c }, () => rng.int(256));
  const partFiles: string[] = [];
  for (let s = 0; s < count; s++) {
    // Each shard writes its PNGs into its own directory; the part names them relative to itself.
    const shardDir = path.join(dir, `shard-${s}`);
    fs.mkdirSync(shardDir, { recursive: true });
    const files = [];
    for (const i of shardIndices(total, { index: s, count })) {
      const name = `img-${i}.png`;
      const one = { pixels: pixels.subarray(i * h * w * c, (i + 1) * h * w * c), n: 1, height: h, width: w, channels: c };
      fs.writeFileSync(path.join(shardDir, name), await encodePng(one));
      files.push({ index: i, file: name });
    }
    const partFile = path.join(shardDir, 'part.json');
    writePart(partFile, samplePart(s, count, total, files, shardDir));
    partFiles.push(partFile);
  }

  const grid = path.join(dir, 'grid.png');
  const { code, stdout } = await runMerge(partFiles, { out: grid, json: true, labels: false });
  assert.equal(code, 0);
  assert.equal(JSON.parse(stdout).n, total);
  const batch = { pixels, n: total, height: h, width: w, channels: c };
  const expected = tile(batch, Math.ceil(Math.sqrt(total)));
  const got = await sharp(grid).toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
  assert.equal(got.info.width, expected.width);
  assert.equal(got.info.height, expected.height);
  assert.ok(Buffer.from(expected.pixels).equals(got.data), 'merged bare grid differs from the unsharded grid');
  assert.equal(expected.pixels[0], GUTTER, 'the gutter is mid-grey, visible on black and white samples');

  // With labels (the default): the same bytes as the unsharded labelled grid, i.e. the caption is built from
  // what the parts record; the sample pixels sit unchanged below a caption strip that holds dark text.
  const labelled = path.join(dir, 'labelled.png');
  assert.equal((await runMerge(partFiles, { out: labelled })).code, 0);
  const labels = sampleGridLabels({ checkpoint: '/runs/x/checkpoints/step-000010', step: 10, seed: 3, temperatures: [0.7] });
  assert.deepEqual(labels.caption, ['run x', 'step 10', 'seed 3', 'T=0.7']);
  assert.ok(fs.readFileSync(labelled).equals(await encodeLabelledGrid(batch, Math.ceil(Math.sqrt(total)), labels)), 'merged labelled grid differs from the unsharded one');
  const lab = await sharp(labelled).toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
  const strip = lab.info.height - expected.height;
  assert.ok(strip >= 14, `caption strip of ${strip} px`);
  assert.ok(lab.info.width >= expected.width);
  const stripPixels = lab.data.subarray(0, strip * lab.info.width);
  assert.ok(stripPixels.some((v) => v < 100), 'caption text is drawn (dark pixels in the strip)');
  for (let y = 0; y < expected.height; y++) {
    const row = lab.data.subarray((strip + y) * lab.info.width, (strip + y) * lab.info.width + expected.width);
    assert.ok(Buffer.from(expected.pixels.subarray(y * expected.width, (y + 1) * expected.width)).equals(row), `grid row ${y} unchanged under the caption`);
  }

  const outDir = path.join(dir, 'all');
  assert.equal((await runMerge(partFiles, { out: outDir })).code, 0);
  const names = fs.readdirSync(outDir).sort();
  assert.deepEqual(names, Array.from({ length: total }, (_, i) => `sample-${String(i).padStart(5, '0')}.png`));
  const seventh = await sharp(path.join(outDir, names[7]!)).toColourspace('b-w').raw().toBuffer();
  assert.ok(seventh.equals(Buffer.from(pixels.subarray(7 * h * w, 8 * h * w))));

  await assert.rejects(runMerge(partFiles, { out: path.join(dir, 'samples.json') }), /sample parts merge into a \.png grid or a directory/);

  // Inconsistent sample parts are refused too.
  const parts = partFiles.map((f) => readPart(f) as SamplePart);
  refuses(() => mergeSampleParts([parts[0]!, { ...parts[1]!, temperature: 1 }, parts[2]!], partFiles), /shard-1\/part\.json: temperature 1 differs/);
  refuses(() => mergeSampleParts([parts[0]!, { ...parts[1]!, files: parts[1]!.files.slice(1) }, parts[2]!], partFiles), /shard-1\/part\.json: index 1 is missing/);
  fs.rmSync(path.join(dir, 'shard-2', 'img-5.png'));
  await assert.rejects(runMerge(partFiles, { out: path.join(dir, 'again.png') }), /shard-2\/part\.json: sample file .*img-5\.png does not exist/);
});

test('perClassSummary groups by label in example order, sorts classes by label, names them; perExampleCsv rows follow indices', () => {
  const perClass = perClassSummary('bpd', [1, 2, 3, 5], [1, 0, 1, 0], ['zero', 'one']);
  assert.deepEqual(Object.keys(perClass), ['zero', 'one']);
  assert.deepEqual({ ...perClass.zero, stderr: Number(perClass.zero!.stderr!.toFixed(9)) }, { bpd: 3.5, stderr: 1.5, n: 2 });
  assert.equal(perClass.one!.bpd, 2);
  assert.deepEqual(Object.keys(perClassSummary('nll', [1, 2], [7, 3])), ['3', '7']);
  assert.deepEqual(perClassSummary('bpd', [1], undefined), {});
  assert.equal(perExampleCsv('bpd', [4, 9], [1.5, 2], [-3, -4], [1, 0]), 'index,label,bpd,log_prob_nats\n4,1,1.5,-3\n9,0,2,-4\n');
  assert.equal(perExampleCsv('nll', [0], [0.25], [-1]), 'index,nll,log_prob_nats\n0,0.25,-1\n');
});
