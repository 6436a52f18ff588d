// `flow export --web`: the exported page of a small trained model, opened by Debian's headless Chromium
// (driven by playwright-core, which downloads no browser) from a static server on 127.0.0.1. The page's
// numbers are checked against the CLI's: bits/dim against `flow eval --per-example` on the same test
// images, samples against the model sampled here with `flow sample`'s noise streams. Never skipped:
// without Chromium it fails and says what to install (.ci/run installs it).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type Page } from 'playwright-core';
import { ROOT, flow, tempDir, writeYaml, TINY_CONFIG } from './helpers.js';
import { buildWeb } from '../scripts/build-web.js';
import { sha256Hex, parseManifest, type WebManifest } from '../src/web/format.js';
import { tf } from '../src/tf.js';
import '../src/kernels/index.js';
import { loadModel } from '../src/io/model-io.js';
import { sampleNoiseRng } from '../src/cli/sample.js';
import { toModelInput, toPixels } from '../src/data/preprocess.js';
import { bitsPerDim, exampleNoiseRng } from '../src/eval/bpd.js';
import { Rng } from '../src/rng.js';
import sharp from 'sharp';

const CHROMIUM = process.env.FLOW_CHROMIUM ?? '/usr/bin/chromium';
// Headless as root without a GPU; no background networking, so the browser talks to nothing but our server.
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const CONTENT_TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.json': 'application/json', '.wasm': 'application/wasm', '.bin': 'application/octet-stream' };

let dir: string;
let site: string;
let checkpoint: string;
let manifest: WebManifest;
let server: http.Server;
let base: string;
let browser: Browser;
/** URL paths the page requested, to show it loads nothing but its own folder. */
const requested: string[] = [];

/** A static file server for every folder under dir, loopback only. */
function serve(rootDir: string): Promise<http.Server> {
  const s = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    requested.push(url.pathname);
    const file = path.join(rootDir, decodeURIComponent(url.pathname));
    if (!file.startsWith(rootDir + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream' });
    res.end(fs.readFileSync(file));
  });
  return new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve(s)));
}

before(async () => {
  assert.ok(
    fs.existsSync(CHROMIUM),
    `${CHROMIUM} not found: the browser test needs Debian's chromium (apt-get install chromium; .ci/run does it as root) or FLOW_CHROMIUM=/path/to/chromium`,
  );
  // The bundle the export copies, built from the sources now (npm run build does the same).
  await buildWeb({ quiet: true });
  dir = tempDir('flow-web-');
  const cfg = writeYaml(dir, 'tiny.yaml', TINY_CONFIG);
  const tr = flow(['train', cfg, '--json', '--quiet'], dir);
  assert.equal(tr.code, 0, tr.stderr);
  checkpoint = path.resolve(dir, JSON.parse(tr.stdout.trim().split('\n').pop()!).checkpoint as string);
  const ex = flow(['export', '--web', 'site', '--json', '--quiet'], dir);
  assert.equal(ex.code, 0, ex.stderr);
  site = path.join(dir, 'site');
  manifest = parseManifest(JSON.parse(fs.readFileSync(path.join(site, 'model.json'), 'utf8')));
  server = await serve(dir);
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
});

after(async () => {
  await browser?.close();
  await new Promise((r) => (server ? server.close(r) : r(undefined)));
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** Opens a page and waits until it is ready or shows an error; returns it with its console errors. */
async function open(folder: string, query = ''): Promise<{ page: Page; errors: string[]; ms: number }> {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const t0 = Date.now();
  await page.goto(`${base}/${folder}/index.html${query}`);
  await page.waitForFunction(() => document.getElementById('status')?.dataset.state !== 'loading', null, { timeout: 120_000 });
  return { page, errors, ms: Date.now() - t0 };
}

/** What the page keeps on window.flowDemo (src/web/app.ts). */
interface PageGlobals {
  flowDemo: { score?: { index?: number }; interpolation?: unknown };
}
// biome-ignore lint/suspicious/noExplicitAny: the page's window.flowDemo, read as plain data
const demo = (page: Page): Promise<any> => page.evaluate(() => JSON.parse(JSON.stringify((window as unknown as PageGlobals).flowDemo, (k, v) => (k === 'manifest' ? undefined : v))));

function perExampleBpd(): number[] {
  const csv = path.join(dir, 'per-example.csv');
  const r = flow(['eval', '--bpd', '--limit', String(manifest.images!.length), '--per-example', csv, '--json', '--quiet'], dir);
  assert.equal(r.code, 0, r.stderr);
  const lines = fs.readFileSync(csv, 'utf8').trim().split('\n').slice(1);
  return lines.map((l) => Number(l.split(',')[2]));
}

/** Waits until the page has drawn a grid after `renders` draws. */
async function nextRender(page: Page, renders: number): Promise<void> {
  await page.waitForFunction((n) => Number(document.getElementById('grid')?.dataset.renders) > n, renders, { timeout: 60_000 });
}

/** docs/web-demo.png: this test's page, or that of FLOW_WEB_DEMO_RUN's export. */
async function writeDocsScreenshot(fallback: string): Promise<void> {
  const out = path.join(ROOT, 'docs', 'web-demo.png');
  const run = process.env.FLOW_WEB_DEMO_RUN;
  if (!run) {
    fs.copyFileSync(fallback, out);
    return;
  }
  const ex = flow(['export', '--web', path.join(dir, 'site-demo'), '--run', path.resolve(run), '--quiet'], dir);
  assert.equal(ex.code, 0, ex.stderr);
  const { page } = await open('site-demo');
  try {
    assert.equal(await page.locator('#status').getAttribute('data-state'), 'ready');
    await page.screenshot({ path: out, fullPage: true });
  } finally {
    await page.close();
  }
}

test('the exported folder: the page, the weights, embedded test images, and nothing that needs a server', () => {
  for (const f of ['index.html', 'app.js', 'model.json', 'weights.bin', 'tfjs/tfjs-backend-wasm-simd.wasm']) assert.ok(fs.existsSync(path.join(site, f)), `${f} is exported`);
  const weights = fs.readFileSync(path.join(site, 'weights.bin'));
  assert.equal(manifest.weights_bytes, weights.length);
  assert.equal(manifest.weights_sha256, crypto.createHash('sha256').update(weights).digest('hex'));
  assert.equal(manifest.images?.length, 8);
  const html = fs.readFileSync(path.join(site, 'index.html'), 'utf8') + fs.readFileSync(path.join(site, 'app.js'), 'utf8');
  assert.doesNotMatch(html, /https?:\/\/(cdn|unpkg|cdnjs|fonts\.googleapis)/, 'nothing from a CDN');
});

test('sha256Hex (the page checks weights.bin with it) equals Node crypto at every padding boundary', () => {
  for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 1000, 100_003]) {
    const bytes = crypto.randomBytes(n);
    assert.equal(sha256Hex(new Uint8Array(bytes)), crypto.createHash('sha256').update(bytes).digest('hex'), `length ${n}`);
  }
});

test('headless Chromium: grid drawn, bpd = flow eval, interpolation ends = the images, temperature changes the samples', async () => {
  const { page, errors, ms } = await open('site');
  try {
    const status = await page.locator('#status').getAttribute('data-state');
    assert.equal(status, 'ready', `page not ready: ${await page.locator('#error').textContent()} ${errors.join('; ')}`);
    const state = await demo(page);
    assert.ok(['webgpu', 'webgl', 'wasm', 'cpu'].includes(state.backend), `backend ${state.backend}`);
    assert.match((await page.locator('#backend').textContent()) ?? '', new RegExp(`backend: ${state.backend}`));
    assert.match((await page.locator('#sample-time').textContent()) ?? '', /16 samples in \d+ ms/);
    process.stderr.write(`# web page: backend ${state.backend}, ready in ${ms} ms, first sample batch ${state.sampleMs.toFixed(0)} ms\n`);

    // The grid is drawn and not blank: the canvas holds many grey levels, not one fill.
    const grid = await page.evaluate(() => {
      const c = document.getElementById('grid') as HTMLCanvasElement;
      const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
      const levels = new Set<number>();
      for (let i = 0; i < d.length; i += 4) levels.add(d[i]!);
      return { w: c.width, h: c.height, levels: levels.size };
    });
    assert.ok(grid.w > 100 && grid.h > 100, `grid ${grid.w}x${grid.h}`);
    assert.ok(grid.levels > 50, `grid has ${grid.levels} grey levels`);

    // The page's samples are the model's samples with flow sample's noise streams (seed 0, the run's temperature).
    const loaded = await (async () => {
      await tf.setBackend('cpu');
      return loadModel(checkpoint, 'average');
    })();
    try {
      const n = 16;
      const x = loaded.model.sample(n, manifest.sample.temperature, Array.from({ length: n }, (_, i) => sampleNoiseRng(0, i)));
      const want = toPixels((await x.data()) as Float32Array, manifest.n_bits);
      x.dispose();
      const got: number[] = state.samplePixels;
      assert.equal(got.length, want.length);
      let close = 0;
      for (let i = 0; i < want.length; i++) if (Math.abs(got[i]! - want[i]!) <= 1) close++;
      assert.ok(close / want.length > 0.999, `${close} of ${want.length} sample pixels within one level of the CLI's`);
    } finally {
      loaded.model.dispose();
    }

    // bits/dim of embedded test image k = flow eval's per-example value of test example k.
    const evalBpd = perExampleBpd();
    for (const k of [0, 3, 7]) {
      await page.selectOption('#score-image', String(k));
      await page.waitForFunction((i) => (window as unknown as PageGlobals).flowDemo.score?.index === i, k);
      const shown = Number(await page.locator('#score-bpd').getAttribute('data-bpd'));
      assert.ok(Math.abs(shown - evalBpd[k]!) < 1e-3, `test image ${k}: page ${shown} bits/dim, flow eval ${evalBpd[k]}`);
      assert.match((await page.locator('#score-bpd').textContent()) ?? '', /\d\.\d{4} bits\/dim/);
    }

    // Interpolation: the strip's ends decode back to the two chosen images.
    await page.selectOption('#interp-b', '5');
    await page.waitForFunction(() => (window as unknown as PageGlobals).flowDemo.interpolation !== undefined && Number(document.getElementById('interp')?.dataset.renders) >= 2);
    for (const mode of ['linear', 'spherical']) {
      const before = Number(await page.locator('#interp').getAttribute('data-renders'));
      await page.selectOption('#interp-mode', mode);
      await page.waitForFunction((n) => Number(document.getElementById('interp')?.dataset.renders) > n, before);
      const it = (await demo(page)).interpolation;
      const dims = it.a.length;
      assert.equal(it.mode, mode);
      assert.equal(it.pixels.length, it.steps * dims);
      const ends = [it.pixels.slice(0, dims), it.pixels.slice((it.steps - 1) * dims)];
      const wrong = [0, 1].map((e) => ends[e]!.filter((v: number, i: number) => v !== (e === 0 ? it.a : it.b)[i]).length);
      assert.deepEqual(wrong, [0, 0], `${mode}: pixels differing from the two images at the ends`);
      const mid = it.pixels.slice(Math.floor(it.steps / 2) * dims, (Math.floor(it.steps / 2) + 1) * dims);
      assert.notDeepEqual(mid, ends[0], `${mode}: the path moves`);
    }

    // The temperature slider: at 0 every sample is the same (the prior's mode) and differs from the 0.7 grid.
    const atDefault = (await demo(page)).samplePixels as number[];
    let renders = (await demo(page)).renders as number;
    await page.locator('#temperature').fill('0');
    await nextRender(page, renders);
    const cold = (await demo(page)).samplePixels as number[];
    const dims = atDefault.length / 16;
    assert.notDeepEqual(cold, atDefault, 'temperature 0 draws other samples');
    for (let k = 1; k < 16; k++) assert.deepEqual(cold.slice(k * dims, (k + 1) * dims), cold.slice(0, dims), `at temperature 0 sample ${k} is sample 0`);
    renders = (await demo(page)).renders;
    await page.locator('#temperature').fill('1');
    await nextRender(page, renders);
    const hot = (await demo(page)).samplePixels as number[];
    assert.notDeepEqual(hot, atDefault);
    assert.notDeepEqual(hot.slice(0, dims), hot.slice(dims, 2 * dims), 'at temperature 1 samples differ');
    renders = (await demo(page)).renders;
    await page.locator('#temperature').fill(String(manifest.sample.temperature));
    await nextRender(page, renders);

    assert.deepEqual(errors, [], 'no uncaught errors in the page');
    assert.ok(
      requested.every((p) => p.startsWith('/site/')),
      `the page requested only its own files: ${requested.filter((p) => !p.startsWith('/site/'))}`,
    );
    // download PNG saves the grid as a PNG file.
    const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#download').click()]);
    assert.match(download.suggestedFilename(), /^tiny-samples-t0\.70-seed0\.png$/);
    const saved = path.join(dir, 'download.png');
    await download.saveAs(saved);
    const meta = await sharp(saved).metadata();
    assert.equal(meta.format, 'png');
    assert.ok(meta.width! > 100 && meta.height! > 100, `downloaded ${meta.width}x${meta.height}`);

    const shot = path.join(dir, 'web-demo.png');
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok(fs.statSync(shot).size > 10_000);
    // FLOW_WRITE_DOCS=1 refreshes the README's screenshot (not by default: a test run should not edit the
    // checkout), from the page of FLOW_WEB_DEMO_RUN (e.g. a trained quickstart run) when given.
    if (process.env.FLOW_WRITE_DOCS === '1') await writeDocsScreenshot(shot);
  } finally {
    await page.close();
  }
});

for (const backend of ['wasm', 'webgl'] as const) {
  test(`?backend=${backend} runs the page on ${backend} with the same bits/dim as flow eval`, async () => {
    const { page, errors } = await open('site', `?backend=${backend}`);
    try {
      assert.equal(await page.locator('#status').getAttribute('data-state'), 'ready', `${await page.locator('#error').textContent()} ${errors.join('; ')}`);
      const state = await demo(page);
      assert.equal(state.backend, backend);
      assert.match((await page.locator('#sample-time').textContent()) ?? '', new RegExp(`16 samples in \\d+ ms on ${backend}`));
      if (backend === 'wasm') assert.ok(requested.some((p) => p.startsWith('/site/tfjs/') && p.endsWith('.wasm')), 'a tfjs .wasm file was fetched from the export');
      const evalBpd = perExampleBpd();
      assert.ok(Math.abs(state.score.bpd - evalBpd[0]!) < 1e-3, `page ${state.score.bpd}, flow eval ${evalBpd[0]}`);
      process.stderr.write(`# web page on ${backend}: first sample batch ${state.sampleMs.toFixed(0)} ms, ready in ${state.loadMs.toFixed(0)} ms\n`);
    } finally {
      await page.close();
    }
  });
}

test('a truncated, corrupted or missing weights file, or a bad model.json, shows one clear message in the page', async () => {
  const weights = fs.readFileSync(path.join(site, 'weights.bin'));
  const variants: Array<[string, (d: string) => void, RegExp]> = [
    ['truncated', (d) => fs.writeFileSync(path.join(d, 'weights.bin'), weights.subarray(0, Math.floor(weights.length / 2))), /weights\.bin: \d+ bytes, expected \d+ .*truncated/],
    [
      'corrupted',
      (d) => {
        const bad = Buffer.from(weights);
        bad[Math.floor(bad.length / 3)]! ^= 0x40;
        fs.writeFileSync(path.join(d, 'weights.bin'), bad);
      },
      /weights\.bin: sha256 .* does not match .*corrupted/,
    ],
    ['missing', (d) => fs.rmSync(path.join(d, 'weights.bin')), /weights\.bin: HTTP 404/],
    ['bad-manifest', (d) => fs.writeFileSync(path.join(d, 'model.json'), '{"format": "flow-web", "version": 1'), /model\.json: not valid JSON/],
  ];
  for (const [name, spoil, message] of variants) {
    const copy = path.join(dir, `site-${name}`);
    fs.cpSync(site, copy, { recursive: true });
    spoil(copy);
    const { page } = await open(`site-${name}`);
    try {
      assert.equal(await page.locator('#status').getAttribute('data-state'), 'error', `${name}: the page reports an error`);
      assert.ok(await page.locator('#error').isVisible(), `${name}: the message is visible`);
      assert.match((await page.locator('#error').textContent()) ?? '', message, name);
      assert.ok(await page.locator('#app').isHidden(), `${name}: no half-built page`);
    } finally {
      await page.close();
    }
  }
});

test('with a flow ood calibration the page gives the typicality verdict; your own image is scored as flow eval would', async () => {
  const noise = path.join(dir, 'noise');
  fs.mkdirSync(noise, { recursive: true });
  const rng = new Rng(7);
  for (let i = 0; i < 12; i++) {
    const px = Uint8Array.from({ length: 28 * 28 }, () => Math.floor(rng.next() * 256));
    await sharp(px, { raw: { width: 28, height: 28, channels: 1 } }).toColourspace('b-w').png().toFile(path.join(noise, `n${i}.png`));
  }
  const ood = flow(['ood', '--out', `images:${noise}:all`, '--batch-size', '1', '--fpr', '0.05', '--train-examples', '200', '--calibration-examples', '100', '--json', '--backend', 'wasm'], dir);
  assert.equal(ood.code, 0, ood.stderr);
  fs.writeFileSync(path.join(dir, 'ood.json'), ood.stdout);
  const calib = JSON.parse(ood.stdout).typicality;
  const ex = flow(['export', '--web', 'site-ood', '--ood', 'ood.json', '--quiet'], dir);
  assert.equal(ex.code, 0, ex.stderr);

  const { page, errors } = await open('site-ood');
  try {
    assert.equal(await page.locator('#status').getAttribute('data-state'), 'ready', `${await page.locator('#error').textContent()} ${errors.join('; ')}`);
    const check = async (): Promise<number> => {
      const bpd = Number(await page.locator('#score-bpd').getAttribute('data-bpd'));
      const verdict = (await page.locator('#score-ood').textContent()) ?? '';
      const flagged = Math.abs(bpd - calib.train_mean_bpd) > calib.threshold;
      assert.match(verdict, new RegExp(`^${flagged ? 'out-of-distribution' : 'typical'}: typicality .* vs threshold ${calib.threshold.toFixed(3)}`));
      return bpd;
    };
    await check();
    // Your own image: a PNG of the model's size, decoded by the browser without colour conversion.
    await page.locator('#file').setInputFiles(path.join(noise, 'n3.png'));
    await page.waitForFunction(() => (window as unknown as PageGlobals).flowDemo.score?.index === undefined);
    const bpd = await check();
    assert.match((await page.locator('#score-image option:checked').textContent()) ?? '', /your image: n3\.png/);
    // The same bits/dim here: the file's pixels, flow eval's noise stream for index 0.
    const { data, info } = await sharp(path.join(noise, 'n3.png')).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
    assert.equal(info.channels, 1);
    await tf.setBackend('cpu');
    const loaded = loadModel(checkpoint, 'average');
    try {
      const x = tf.tensor(toModelInput(new Uint8Array(data), manifest.n_bits, exampleNoiseRng(manifest.eval_seed, 0)), [1, 28, 28, 1]);
      const logp = loaded.model.logProb(x);
      const want = bitsPerDim((await logp.data())[0]!, 784, 2 ** manifest.n_bits);
      tf.dispose([x, logp]);
      assert.ok(Math.abs(bpd - want) < 1e-3, `your image: page ${bpd}, model here ${want}`);
    } finally {
      loaded.model.dispose();
    }
    // An image of another size is refused with the sizes in the message.
    const big = path.join(dir, 'big.png');
    await sharp(new Uint8Array(32 * 32).fill(9), { raw: { width: 32, height: 32, channels: 1 } }).png().toFile(big);
    await page.locator('#file').setInputFiles(big);
    await page.waitForFunction(() => (document.getElementById('drop-error')?.textContent ?? '') !== '');
    assert.match((await page.locator('#drop-error').textContent()) ?? '', /big\.png: 32x32 pixels, the model takes 28x28/);
    assert.deepEqual(errors, []);
  } finally {
    await page.close();
  }
});

test('a class-conditional model: a class picker that changes the samples; bpd = flow eval with the image label', async () => {
  const cdir = path.join(dir, 'cond');
  fs.mkdirSync(cdir);
  const cfg = writeYaml(cdir, 'cond.yaml', TINY_CONFIG.replace('max_steps: 40', 'max_steps: 10').replace('  init_batch: 64', '  init_batch: 64\n  conditional: classes\n  class_loss_weight: 1'));
  assert.equal(flow(['train', cfg, '--quiet'], cdir).code, 0);
  const ex = flow(['export', '--web', path.join(dir, 'site-cond'), '--quiet'], cdir);
  assert.equal(ex.code, 0, ex.stderr);
  const csv = path.join(cdir, 'pe.csv');
  assert.equal(flow(['eval', '--bpd', '--limit', '1', '--per-example', csv, '--quiet'], cdir).code, 0);
  const evalBpd = Number(fs.readFileSync(csv, 'utf8').trim().split('\n')[1]!.split(',')[2]);
  const { page, errors } = await open('site-cond');
  try {
    assert.equal(await page.locator('#status').getAttribute('data-state'), 'ready', `${await page.locator('#error').textContent()} ${errors.join('; ')}`);
    assert.ok(await page.locator('#class').isVisible());
    assert.equal(await page.locator('#class option').count(), 10);
    const state = await demo(page);
    assert.ok(Math.abs(state.score.bpd - evalBpd) < 1e-3, `page ${state.score.bpd}, flow eval ${evalBpd}`);
    await page.selectOption('#class', '7');
    await nextRender(page, state.renders);
    assert.notDeepEqual((await demo(page)).samplePixels, state.samplePixels, 'another class, other samples');
  } finally {
    await page.close();
  }
});

test('a 2-D model: the density heatmap (integral about 1) with the data and the model samples', async () => {
  const vdir = path.join(dir, 'moons');
  fs.mkdirSync(vdir);
  const cfg = writeYaml(vdir, 'moons.yaml', fs.readFileSync(path.join(ROOT, 'configs', 'two-moons.yaml'), 'utf8').replace('max_steps: 1000', 'max_steps: 150'));
  const tr = flow(['train', cfg, '--quiet'], vdir);
  assert.equal(tr.code, 0, tr.stderr);
  assert.equal(flow(['export', '--web', path.join(dir, 'site-moons'), '--quiet'], vdir).code, 0);
  const { page, errors } = await open('site-moons');
  try {
    assert.equal(await page.locator('#status').getAttribute('data-state'), 'ready', `${await page.locator('#error').textContent()} ${errors.join('; ')}`);
    assert.ok(await page.locator('#images-section').isHidden(), 'no image tools for a 2-D model');
    const info = (await page.locator('#density-info').textContent()) ?? '';
    const integral = Number(/integral (\d+\.\d+)/.exec(info)?.[1]);
    assert.ok(Math.abs(integral - 1) < 0.1, `grid integral ${integral}`);
    const state = await demo(page);
    assert.equal(state.samplePixels.length, 2 * 1000, '1000 samples of 2 coordinates');
    const colours = await page.evaluate(() => {
      const c = document.getElementById('grid') as HTMLCanvasElement;
      const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
      const seen = new Set<number>();
      for (let i = 0; i < d.length; i += 4) seen.add((d[i]! << 16) | (d[i + 1]! << 8) | d[i + 2]!);
      return seen.size;
    });
    assert.ok(colours > 50, `the heatmap has ${colours} colours`);
    assert.deepEqual(errors, []);
  } finally {
    await page.close();
  }
});

test('flow export --web: bad input is one line with exit 2', () => {
  fs.mkdirSync(path.join(dir, 'notes'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'notes', 'todo.txt'), 'mine');
  const cases: Array<[string[], RegExp]> = [
    [['export', '--web', 'notes'], /--web notes: directory is not empty and holds no earlier flow web export/],
    [['export', '--web', 'x', '--format', 'safetensors'], /give --web DIR or --format FMT, not both/],
    [['export', '--web', 'x', '--run', 'runs/nope'], /--run runs\/nope: no such run directory/],
    [['export', '--web', 'x', '--ood', 'tiny.yaml'], /--ood tiny\.yaml: .*expected the JSON printed by flow ood --json/],
    [['export', '--web', 'x', 'runs/latest', '--run', 'runs/latest'], /the run is given twice/],
    [['export', '--format', 'safetensors'], /flow export: give the run directory/],
    [['export', '--format', 'safetensors', '--run', 'runs/latest'], /--run goes with --web DIR/],
  ];
  for (const [args, message] of cases) {
    const r = flow(args, dir);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  }
  // Re-exporting over an earlier export replaces it.
  const again = flow(['export', '--web', 'site', '--quiet'], dir);
  assert.equal(again.code, 0, again.stderr);
});
