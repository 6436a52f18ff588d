// 2-D and tabular densities (src/views/density.ts, flow plot density, flow plot curves, flow eval --points):
// a flow's density integrates to 1 on a grid, a trained two-moons model beats any Gaussian and still
// integrates to 1, CSV rows are scored with the model's log p, and the figures are written.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import '@tensorflow/tfjs-backend-cpu';
import { tf } from '../src/tf.js';
import { Rng } from '../src/rng.js';
import { ModelSchema } from '../src/config/schema.js';
import { buildModel } from '../src/flows/model.js';
import { densityGrid, logDensity, squareDomain } from '../src/views/density.js';
import { pointsCommand, pointsCsv, float32String } from '../src/cli/points.js';
import { loadModel } from '../src/io/model-io.js';
import { resolveRun } from '../src/io/run.js';
import { flow, tempDir, ROOT } from './helpers.js';

before(async () => {
  await tf.setBackend('cpu');
});

test('an untrained (randomly perturbed) 2-D flow is a density: its grid integral is 1', async () => {
  const model = buildModel(ModelSchema.parse({ family: 'realnvp', depth: 4, width: 16 }), [2], { seed: 1 });
  const rng = new Rng(2);
  tf.tidy(() => {
    for (const v of model.trainableVariables()) v.assign(tf.add(v, tf.tensor(rng.normalArray(v.size, 0.2), v.shape)));
  });
  const g = await densityGrid(model, { x0: -9, x1: 9, y0: -9, y1: 9 }, 180, 180);
  assert.ok(Math.abs(g.integral - 1) < 0.01, `integral ${g.integral}`);
  // The grid holds p at cell centres, bottom row first: check one cell against a direct evaluation.
  const i = 37;
  const j = 101;
  const cx = -9 + (i + 0.5) * 0.1;
  const cy = -9 + (j + 0.5) * 0.1;
  const direct = (await logDensity(model, Float32Array.from([cx, cy]), 1))[0]!;
  assert.ok(Math.abs(Math.log(g.grid.values[j * 180 + i]!) - direct) < 1e-4);
  // A squeezed domain misses mass.
  assert.ok((await densityGrid(model, { x0: -0.5, x1: 0.5, y0: -0.5, y1: 0.5 }, 20, 20)).integral < 0.5);
  model.dispose();
});

test('squareDomain pads the data box and gives both axes the same span', async () => {
  const d = squareDomain(Float32Array.from([0, 0, 4, 1]), 0.25);
  assert.ok(Math.abs(d.x1 - d.x0 - (d.y1 - d.y0)) < 1e-9);
  assert.ok(d.x0 < -0.99 && d.x1 > 4.99, JSON.stringify(d));
  assert.ok(Math.abs((d.y0 + d.y1) / 2 - 0.5) < 1e-9, 'centred on the data');
});

test('pointsCsv keeps the input columns and appends log_prob_nats', async () => {
  assert.equal(pointsCsv(Float32Array.from([1, 2, 3, 4]), 2, 2, [-1.5, -2], ['a', 'b']), 'a,b,log_prob_nats\n1,2,-1.5\n3,4,-2\n');
  assert.equal(pointsCsv(Float32Array.from([0.5]), 1, 1, [0]).split('\n')[0], 'x1,log_prob_nats');
  // float32 inputs print as what was written, not as their float64 expansion.
  assert.equal(pointsCsv(Float32Array.from([1.8, -0.1]), 1, 2, [Math.fround(-2.0057)]), 'x1,x2,log_prob_nats\n1.8,-0.1,-2.0057\n');
  assert.equal(float32String(Math.fround(1 / 3)), '0.33333334');
  assert.equal(float32String(-Infinity), '-Infinity');
});

test('two-moons: trains quickly, beats any Gaussian, integrates to 1; plots density and curves; scores a CSV', async () => {
  const dir = tempDir();
  const config = path.join(ROOT, 'configs', 'two-moons.yaml');
  const tr = flow(['train', config, '--max-steps', '300', '--quiet', '--json', '--backend', 'wasm'], dir);
  assert.equal(tr.code, 0, tr.stderr);
  const summary = JSON.parse(tr.stdout.trim().split('\n').pop()!);
  // The best Gaussian fit of this data has 1.65 nats/dim: a flow that learned the moons is well below.
  const nll = summary.test_nll;
  assert.ok(Number.isFinite(nll) && nll < 1.45, `test nll ${JSON.stringify(summary)}`);

  const png = path.join(dir, 'density.png');
  const d = flow(['plot', 'density', '--out', png, '--grid', '150', '--samples', '500', '--json', '--backend', 'wasm'], dir);
  assert.equal(d.code, 0, d.stderr);
  const dens = JSON.parse(d.stdout);
  assert.ok(Math.abs(dens.integral - 1) < 0.03, `grid integral ${dens.integral}`);
  const meta = await sharp(png).metadata();
  assert.ok(meta.width! > 1200 && meta.height! > 400, 'three panels side by side');

  const curves = path.join(dir, 'curves.png');
  const c = flow(['plot', 'curves', '--out', curves, '--json'], dir);
  assert.equal(c.code, 0, c.stderr);
  const cs = JSON.parse(c.stdout);
  assert.ok(cs.series.train_nll && cs.series.test_nll && cs.series.lr, JSON.stringify(cs));
  assert.equal(cs.series.train_nll.step, 300);
  assert.ok(fs.statSync(curves).size > 1000);
  const noRun = flow(['plot', 'curves', '--run', dir], dir);
  assert.equal(noRun.code, 2);
  assert.match(noRun.stderr, /no metrics\.ndjson/);

  // Points on the moons, between them and far away, scored in-process (the CLI route is flow eval --points).
  const input = path.join(dir, 'points.csv');
  fs.writeFileSync(input, 'x,y\n-1,1.8\n1,-1.2\n0,0.3\n12,12\n');
  const out = path.join(dir, 'logp.csv');
  assert.equal(await pointsCommand({ points: input, out, run: path.join(dir, 'runs', 'latest'), backend: 'cpu', quiet: true }), 0);
  const rows = fs.readFileSync(out, 'utf8').trim().split('\n');
  assert.equal(rows[0], 'x,y,log_prob_nats');
  const logp = rows.slice(1).map((r) => Number(r.split(',')[2]));
  assert.equal(logp.length, 4);
  assert.ok(logp[0]! > logp[3]! + 20 && logp[1]! > logp[3]! + 20, `on the moons vs far away: ${logp}`);
  const { model } = loadModel(resolveRun(path.join(dir, 'runs', 'latest')).checkpoint);
  const direct = await logDensity(model, Float32Array.from([-1, 1.8, 1, -1.2, 0, 0.3, 12, 12]), 4);
  model.dispose();
  logp.forEach((v, k) => assert.ok(Math.abs(v - direct[k]!) < 1e-3 * Math.max(1, Math.abs(v)), `row ${k}: ${v} vs ${direct[k]}`));
  // The same through the CLI route.
  const viaCli = path.join(dir, 'logp-cli.csv');
  const ev = flow(['eval', '--points', input, '--out', viaCli, '--json', '--backend', 'cpu'], dir);
  assert.equal(ev.code, 0, ev.stderr);
  assert.equal(JSON.parse(ev.stdout).n, 4);
  assert.equal(fs.readFileSync(viaCli, 'utf8'), fs.readFileSync(out, 'utf8'));
  await assert.rejects(pointsCommand({ points: path.join(dir, 'nope.csv'), out, run: path.join(dir, 'runs', 'latest'), backend: 'cpu', quiet: true }), /does not exist/);
  fs.writeFileSync(input, '1,2,3\n');
  await assert.rejects(pointsCommand({ points: input, out, run: path.join(dir, 'runs', 'latest'), backend: 'cpu', quiet: true }), /rows have 3 columns, expected 2/);
});
