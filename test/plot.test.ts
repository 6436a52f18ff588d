import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { UserError } from '../src/errors.js';
import {
  binDensities,
  dataDomain,
  heatmap,
  histogram,
  lineChart,
  niceTicks,
  logTicks,
  panels,
  readMetrics,
  renderPng,
  scatter,
  svgSize,
  trainingCurves,
  viridis,
  writeChart,
} from '../src/plot/index.js';

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'flow-plot-'));
}

async function raw(png: Buffer): Promise<{ data: Buffer; width: number; height: number; channels: number }> {
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels };
}

test('niceTicks picks round steps covering the range', () => {
  assert.deepEqual(niceTicks(0, 10, 6).ticks, [0, 2, 4, 6, 8, 10]);
  const t = niceTicks(0.13, 0.97, 6);
  assert.deepEqual(t.ticks, [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.ok(t.lo <= 0.13 && t.hi >= 0.97);
  // Without expansion the range is kept and only inner ticks are listed.
  const inner = niceTicks(-3, 3, 6, false);
  assert.equal(inner.lo, -3);
  assert.deepEqual(inner.ticks, [-3, -2, -1, 0, 1, 2, 3]);
  // A flat range still gets an axis.
  assert.ok(niceTicks(5, 5).ticks.length >= 2);
  assert.deepEqual(logTicks(3, 4000).ticks, [1, 10, 100, 1000, 10000]);
});

test('lineChart names its series and axes, escapes text, and renders at the requested size', async () => {
  const svg = lineChart(
    [
      { name: 'train_bpd', points: [[0, 5], [100, 3], [200, 2.5]] },
      { name: 'test <held-out>', points: [[100, 3.2], [200, 2.7]] },
    ],
    { title: 'Glow on MNIST', xLabel: 'step', yLabel: 'bits/dim', width: 500, height: 300 },
  );
  for (const s of ['train_bpd', 'test &lt;held-out&gt;', 'Glow on MNIST', '>step<', '>bits/dim<']) assert.ok(svg.includes(s), `SVG lacks ${s}`);
  assert.ok(!svg.includes('<held-out>'), 'raw < > must be escaped');
  // One coloured path per series, in different colours.
  const strokes = [...svg.matchAll(/<path d="[^"]+" fill="none" stroke="(#[0-9a-f]{6})"/g)].map((m) => m[1]);
  assert.equal(strokes.length, 2);
  assert.notEqual(strokes[0], strokes[1]);
  const png = await renderPng(svg);
  const meta = await sharp(png).metadata();
  assert.equal(meta.format, 'png');
  assert.equal(meta.width, 500);
  assert.equal(meta.height, 300);
  const big = await sharp(await renderPng(svg, { scale: 2 })).metadata();
  assert.equal(big.width, 1000);
});

test('text actually renders: a title adds dark glyph pixels to the title band', async () => {
  const series = [{ name: 'a', points: [[0, 0], [1, 1]] as Array<[number, number]> }];
  const darkInTitleBand = async (title: string) => {
    const img = await raw(await renderPng(lineChart(series, { title, xLabel: 'x', yLabel: 'y', width: 400, height: 250 })));
    let dark = 0;
    for (let y = 5; y < 28; y++) {
      for (let x = 0; x < img.width; x++) {
        const o = (y * img.width + x) * img.channels;
        if (img.data[o]! < 100 && img.data[o + 1]! < 100 && img.data[o + 2]! < 100) dark++;
      }
    }
    return dark;
  };
  // Without a title the band still holds the plot's top border; the title's glyphs add many dark pixels.
  assert.ok((await darkInTitleBand('A Title With Words')) - (await darkInTitleBand('')) > 100);
});

test('lineChart breaks lines at non-finite points and skips non-positive x on a log axis', () => {
  const svg = lineChart([{ name: 's', points: [[1, 1], [2, NaN], [3, 2], [4, 3]] }], { title: 't', xLabel: 'x', yLabel: 'y' });
  const d = /<path d="([^"]+)" fill="none"/.exec(svg)![1]!;
  assert.equal((d.match(/M/g) ?? []).length, 2, 'a NaN starts a new sub-path');
  const logSvg = lineChart([{ name: 's', points: [[0, 1], [10, 2], [100, 3]] }], { title: 't', xLabel: 'x', yLabel: 'y', logX: true });
  const ld = /<path d="([^"]+)" fill="none"/.exec(logSvg)![1]!;
  assert.equal((ld.match(/[ML]/g) ?? []).length, 2, 'x = 0 cannot be drawn on a log axis');
});

test('histogram: shared bins, each group a density of area 1, names in the SVG', async () => {
  const a = Array.from({ length: 500 }, (_, i) => 3 + Math.sin(i) * 0.5);
  const b = Array.from({ length: 200 }, (_, i) => 2 + Math.cos(i) * 0.3);
  const { edges, densities } = binDensities([{ name: 'a', values: a }, { name: 'b', values: b }], 20);
  assert.equal(edges.length, 21);
  const bw = edges[1]! - edges[0]!;
  for (const d of densities) assert.ok(Math.abs(d.reduce((s, v) => s + v * bw, 0) - 1) < 1e-9);
  const svg = histogram([{ name: 'CIFAR-10 test', values: a }, { name: 'SVHN', values: b }], { title: 'bpd', xLabel: 'bits/dim', bins: 20 });
  for (const s of ['CIFAR-10 test', 'SVHN', '>bits/dim<', '>density<']) assert.ok(svg.includes(s), `SVG lacks ${s}`);
  assert.equal((svg.match(/fill-opacity="0.4"/g) ?? []).length, 2, 'two semi-transparent overlaid groups');
  const meta = await sharp(await renderPng(svg)).metadata();
  assert.equal(meta.width, 640);
  assert.throws(() => histogram([{ name: 'a', values: a }], { title: 't', xLabel: 'x', bins: 0 }), UserError);
});

test('heatmap puts the brightest colour on the maximum cell and the darkest on the minimum', async () => {
  const nx = 5;
  const ny = 4;
  const values = new Float32Array(nx * ny).fill(0.5);
  const at = (i: number, j: number) => j * nx + i;
  values[at(3, 1)] = 2; // max: column 3, second row from the BOTTOM
  values[at(0, 3)] = -1; // min: top-left
  const svg = heatmap({ values, nx, ny, x0: 0, x1: 5, y0: 0, y1: 4 }, { title: 'density', xLabel: 'x', yLabel: 'y', width: 400, height: 360 });
  const m = /<image x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"/.exec(svg)!;
  const [ix, iy, iw, ih] = m.slice(1, 5).map(Number) as [number, number, number, number];
  const img = await raw(await renderPng(svg));
  const pixel = (i: number, j: number) => {
    const x = Math.round(ix + ((i + 0.5) * iw) / nx);
    const y = Math.round(iy + ((ny - 1 - j + 0.5) * ih) / ny);
    const o = (y * img.width + x) * img.channels;
    return [img.data[o]!, img.data[o + 1]!, img.data[o + 2]!];
  };
  const close = (a: number[], b: number[]) => a.every((v, k) => Math.abs(v - b[k]!) <= 3);
  assert.ok(close(pixel(3, 1), viridis(1)), `max cell is ${pixel(3, 1)}, expected ${viridis(1)}`);
  assert.ok(close(pixel(0, 3), viridis(0)), `min cell is ${pixel(0, 3)}, expected ${viridis(0)}`);
  assert.ok(close(pixel(1, 1), viridis(1.5 / 3)));
  // And nothing inside the plot area is brighter than the max cell.
  const lum = (p: number[]) => p[0]! + p[1]! + p[2]!;
  for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) assert.ok(lum(pixel(i, j)) <= lum(pixel(3, 1)));
  assert.throws(() => heatmap({ values: [1, 2, 3], nx: 2, ny: 2, x0: 0, x1: 1, y0: 0, y1: 1 }, { title: '' }), UserError);
});

test('scatter draws one dot per finite point inside a given domain; panels lays charts side by side', async () => {
  const pts = new Float32Array([0, 0, 1, 1, NaN, 2, -1, 0.5]);
  const s = scatter(pts, { title: 'data', domain: { x0: -2, x1: 2, y0: -2, y1: 2 }, width: 300, height: 300 });
  assert.equal((s.match(/<circle /g) ?? []).length, 3);
  assert.throws(() => scatter(new Float32Array(3), { title: 'x' }), UserError);
  const d = dataDomain(new Float32Array([0, 0, 10, 20]), 0.1);
  assert.deepEqual(d, { x0: -1, x1: 11, y0: -2, y1: 22 });
  const h = heatmap({ values: [1, 2, 3, 4], nx: 2, ny: 2, x0: -2, x1: 2, y0: -2, y1: 2 }, { title: 'density', width: 360, height: 300 });
  const all = panels([s, h, s], 3, { gap: 10, title: 'toy' });
  assert.deepEqual(svgSize(all), { width: 300 + 360 + 300 + 20, height: 32 + 300 });
  const meta = await sharp(await renderPng(all)).metadata();
  assert.equal(meta.width, 980);
  assert.equal(meta.height, 332);
  const grid = panels([s, s, s], 2);
  assert.deepEqual(svgSize(grid), { width: 608, height: 608 });
});

test('readMetrics: one series per metric, the last line for a step wins after a resume', () => {
  const dir = tmp();
  const file = path.join(dir, 'metrics.ndjson');
  const lines = [
    { step: 10, train_bpd: 5, lr: 0.001, img_per_s: 50 },
    { step: 20, train_bpd: 4, lr: 0.001, img_per_s: 51 },
    { step: 20, test_bpd: 4.5 },
    { step: 30, train_bpd: 3.9, lr: 0.001, img_per_s: 52 },
    // crash, resume from the checkpoint at step 20: steps 30.. are logged again
    { step: 30, train_bpd: 3.5, lr: 0.001, img_per_s: 49 },
    { step: 40, train_bpd: 3.2, lr: 0.0005, img_per_s: 50 },
    { step: 40, test_bpd: 3.4 },
    { step: 50, test_bpd: null }, // a non-finite test loss serialises as null: skipped
  ];
  fs.writeFileSync(file, lines.map((l) => JSON.stringify(l)).join('\n') + '\n\n{"step": 60, "train_b');
  const m = readMetrics(file);
  assert.deepEqual(m.train_bpd, [[10, 5], [20, 4], [30, 3.5], [40, 3.2]]);
  assert.deepEqual(m.test_bpd, [[20, 4.5], [40, 3.4]]);
  assert.deepEqual(m.lr!.map((p) => p[1]), [0.001, 0.001, 0.001, 0.0005]);
  assert.deepEqual(Object.keys(m).sort(), ['img_per_s', 'lr', 'test_bpd', 'train_bpd']);

  const curves = trainingCurves(m, { title: 'run' });
  for (const s of ['train_bpd', 'test_bpd', '>lr<', 'learning rate', 'bits/dim']) assert.ok(curves.includes(s), `curves lack ${s}`);

  fs.writeFileSync(file, '{"step":1,"train_bpd":2}\nnot json\n{"step":2,"train_bpd":1}\n');
  assert.throws(() => readMetrics(file), (e: unknown) => e instanceof UserError && /metrics\.ndjson:2:/.test(e.message));
  assert.throws(() => readMetrics(path.join(dir, 'missing.ndjson')), (e: unknown) => e instanceof UserError && /no such file/.test(e.message));
  fs.writeFileSync(file, '{"step":1,"lr":0.1}\n');
  assert.throws(() => trainingCurves(readMetrics(file)), UserError);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('writeChart writes .svg as text and .png rendered; other extensions are a UserError', async () => {
  const dir = tmp();
  const svg = lineChart([{ name: 'a', points: [[0, 1], [1, 2]] }], { title: 't', xLabel: 'x', yLabel: 'y', width: 320, height: 200 });
  await writeChart(path.join(dir, 'c.svg'), svg);
  assert.equal(fs.readFileSync(path.join(dir, 'c.svg'), 'utf8'), svg);
  await writeChart(path.join(dir, 'c.png'), svg);
  const meta = await sharp(path.join(dir, 'c.png')).metadata();
  assert.equal(meta.width, 320);
  await assert.rejects(writeChart(path.join(dir, 'c.jpg'), svg), UserError);
  fs.rmSync(dir, { recursive: true, force: true });
});
