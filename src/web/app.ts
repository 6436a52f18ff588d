// The page of `flow export --web`: loads model.json + weights.bin, rebuilds the model with the CLI's own
// flow code (src/flows) and runs it on the best backend the browser has: sample grid, interpolation,
// bits/dim of an image, class picker, 2-D density. Bundled by scripts/build-web.ts.
// Over 350 lines for a reason: it is the page's whole UI wiring, five panels sharing one loaded model and
// backend; the model math itself comes from src/flows.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-webgpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { buildModel, type FlowModel } from '../flows/model.js';
import { Rng } from '../rng.js';
import { toModelInput, toPixels } from '../data/preprocess.js';
import { bitsPerDim, exampleNoiseRng } from '../eval/bpd.js';
import { interpolate, type InterpolationMode } from '../views/interpolate.js';
import { densityGrid, sampleVectors } from '../views/density.js';
import { viridis } from '../plot/svg.js';
import { MANIFEST_FILE, WebFormatError, base64ToBytes, decodeWeights, parseManifest, type WebManifest } from './format.js';

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`index.html has no #${id}`);
  return el as T;
};

/** What the page has computed, for people in the console and for the browser test. */
interface DemoState {
  backend?: string;
  manifest?: WebManifest;
  renders: number;
  sampleMs?: number;
  samplePixels?: number[];
  score?: { source: string; index?: number; bpd: number };
  interpolation?: { steps: number; mode: InterpolationMode; pixels: number[]; a: number[]; b: number[] };
  loadMs?: number;
}
const state: DemoState = { renders: 0 };
(window as unknown as { flowDemo: DemoState }).flowDemo = state;

function showError(message: string): void {
  const box = $('error');
  box.textContent = message;
  box.hidden = false;
  $('status').dataset.state = 'error';
  $('status').textContent = 'the model could not be loaded';
}
window.addEventListener('error', (e) => showError(`error: ${e.message}`));
window.addEventListener('unhandledrejection', (e) => showError(`error: ${e.reason instanceof Error ? e.reason.message : String(e.reason)}`));

/** Same noise streams as `flow sample --seed` (sampleNoiseRng in src/cli/sample.ts): sample i of seed s. */
const sampleRng = (seed: number, i: number): Rng => new Rng(seed).fork(i);

const BACKENDS = ['webgpu', 'webgl', 'wasm', 'cpu'] as const;
/** The backends passed over before the one chosen, and why (shown beside it). */
let skipped: string[] = [];

/** WebGPU when the browser has an adapter, else WebGL, else wasm, else cpu; ?backend=NAME forces one. */
async function pickBackend(): Promise<string> {
  setWasmPaths(new URL('tfjs/', location.href).href);
  const forced = new URLSearchParams(location.search).get('backend');
  if (forced && !(BACKENDS as readonly string[]).includes(forced)) throw new Error(`?backend=${forced}: expected one of ${BACKENDS.join(', ')}`);
  const tried: string[] = [];
  for (const name of forced ? [forced] : BACKENDS) {
    if (name === 'webgpu' && !(await webGpuAdapter())) {
      tried.push(`webgpu (${'gpu' in navigator ? 'no adapter' : 'not in this browser'})`);
      continue;
    }
    const software = name === 'webgl' && !forced ? softwareWebGl() : null;
    if (software) {
      // Measured in headless Chromium: SwiftShader's WebGL samples 13x slower than wasm (1.4 s vs 0.11 s per batch).
      tried.push(`webgl (software: ${software})`);
      continue;
    }
    try {
      if (await tf.setBackend(name)) {
        await tf.ready();
        // A backend that initialises but cannot run a kernel (e.g. WebGL without float textures) is no good.
        const probe = tf.tidy(() => tf.sum(tf.mul(tf.tensor1d([1, 2, 3]), 2)));
        const v = (await probe.data())[0];
        probe.dispose();
        if (v === 12) {
          skipped = tried;
          return name;
        }
      }
      tried.push(`${name} (failed to start)`);
    } catch (e) {
      tried.push(`${name} (${e instanceof Error ? e.message : String(e)})`);
    }
  }
  throw new Error(`no TensorFlow.js backend works in this browser: tried ${tried.join(', ')}`);
}

/** Whether WebGPU has an adapter here (asked first: tfjs's own start-up logs a stack trace without one). */
async function webGpuAdapter(): Promise<boolean> {
  const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
  try {
    return Boolean(gpu && (await gpu.requestAdapter()));
  } catch {
    return false;
  }
}

/** The renderer's name when WebGL runs on a software rasterizer (no GPU), else null. */
function softwareWebGl(): string | null {
  const gl = document.createElement('canvas').getContext('webgl2') ?? document.createElement('canvas').getContext('webgl');
  if (!gl) return null;
  const info = gl.getExtension('WEBGL_debug_renderer_info');
  const renderer = String(info ? gl.getParameter(info.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER));
  gl.getExtension('WEBGL_lose_context')?.loseContext();
  const m = /swiftshader|llvmpipe|softpipe|software/i.exec(renderer);
  return m ? m[0] : null;
}

async function fetchBytes(file: string): Promise<Uint8Array> {
  let res: Response;
  try {
    res = await fetch(file);
  } catch (e) {
    throw new WebFormatError(`${file}: could not be fetched (${e instanceof Error ? e.message : String(e)}); serve this folder over http (e.g. npx http-server), file:// pages cannot fetch`);
  }
  if (!res.ok) throw new WebFormatError(`${file}: HTTP ${res.status} ${res.statusText}; expected the file flow export --web wrote beside index.html`);
  return new Uint8Array(await res.arrayBuffer());
}

async function loadManifest(): Promise<WebManifest> {
  const bytes = await fetchBytes(MANIFEST_FILE);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new WebFormatError(`${MANIFEST_FILE}: not valid JSON (${e instanceof Error ? e.message : String(e)}); expected the model.json written by flow export --web`);
  }
  return parseManifest(json);
}

/** The exported model, every variable assigned from weights.bin (names and shapes checked). */
async function loadFlow(m: WebManifest): Promise<FlowModel> {
  const tensors = decodeWeights(m, await fetchBytes(m.weights_file));
  const model = buildModel(m.model, m.data_shape, { seed: m.seed, numClasses: m.num_classes, nBits: m.n_bits });
  tf.tidy(() => {
    for (const [name, v] of model.variables()) {
      const t = tensors.get(name);
      if (!t) throw new WebFormatError(`${m.weights_file}: no tensor ${name}; the export does not match this model config`);
      if (t.shape.join('x') !== v.shape.join('x')) throw new WebFormatError(`${m.weights_file}: tensor ${name} has shape [${t.shape}], the model expects [${v.shape}]`);
      v.assign(tf.tensor(t.data, t.shape, v.dtype));
    }
  });
  return model;
}

// ---- drawing ----

/** n HWC images (1 or 3 channels) tiled cols wide with a 1-pixel grey gutter, scaled up without smoothing. */
function drawTiles(canvas: HTMLCanvasElement, pixels: Uint8Array, n: number, shape: number[], cols: number, scale: number): void {
  const [h, w, c] = shape as [number, number, number];
  const rows = Math.ceil(n / cols);
  const pad = 1;
  const W = cols * (w + pad) + pad;
  const H = rows * (h + pad) + pad;
  const img = new ImageData(W, H);
  img.data.fill(128);
  for (let k = 0; k < n; k++) {
    const ox = pad + (k % cols) * (w + pad);
    const oy = pad + Math.floor(k / cols) * (h + pad);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const src = ((k * h + y) * w + x) * c;
        const dst = ((oy + y) * W + ox + x) * 4;
        img.data[dst] = pixels[src]!;
        img.data[dst + 1] = pixels[src + (c === 3 ? 1 : 0)]!;
        img.data[dst + 2] = pixels[src + (c === 3 ? 2 : 0)]!;
        img.data[dst + 3] = 255;
      }
    }
  }
  const tmp = document.createElement('canvas');
  tmp.width = W;
  tmp.height = H;
  tmp.getContext('2d')!.putImageData(img, 0, 0);
  canvas.width = W * scale;
  canvas.height = H * scale;
  const ctx = canvas.getContext('2d')!;
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(tmp, 0, 0, W * scale, H * scale);
}

/** An image file as HWC bytes of the model's channel count; it must already have the model's size. */
async function readImageFile(file: File, shape: number[]): Promise<Uint8Array> {
  const [h, w, c] = shape as [number, number, number];
  let bitmap: ImageBitmap;
  try {
    // No colour management or premultiplication: the bytes the model sees are the file's own.
    bitmap = await createImageBitmap(file, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  } catch {
    throw new Error(`${file.name}: not an image this browser can decode; expected a PNG or JPEG of ${w}x${h}`);
  }
  if (bitmap.width !== w || bitmap.height !== h) throw new Error(`${file.name}: ${bitmap.width}x${bitmap.height} pixels, the model takes ${w}x${h}`);
  const canvas = document.createElement('canvas');
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext('2d', { colorSpace: 'srgb' })!;
  ctx.drawImage(bitmap, 0, 0);
  const rgba = ctx.getImageData(0, 0, w, h).data;
  const out = new Uint8Array(h * w * c);
  for (let i = 0; i < h * w; i++) {
    if (c === 3) out.set([rgba[4 * i]!, rgba[4 * i + 1]!, rgba[4 * i + 2]!], 3 * i);
    // BT.601 luma, as rgbToGrey (src/data/common.ts) and sharp do for grey datasets.
    else out[i] = Math.round(0.299 * rgba[4 * i]! + 0.587 * rgba[4 * i + 1]! + 0.114 * rgba[4 * i + 2]!);
  }
  return out;
}

function numberInput(id: string, lo: number, hi: number, fallback: number): number {
  const v = Number(($(id) as HTMLInputElement).value);
  return Number.isFinite(v) ? Math.min(hi, Math.max(lo, v)) : fallback;
}

// ---- the page ----

interface ImageChoice {
  label: string;
  pixels: Uint8Array;
  /** Test-split index (embedded images): flow eval's noise for it; dropped images use index 0. */
  index?: number;
  classLabel?: number;
}

async function main(): Promise<void> {
  const started = performance.now();
  const m = await loadManifest();
  state.manifest = m;
  const backend = await pickBackend();
  state.backend = backend;
  const model = await loadFlow(m);
  const dims = m.data_shape.reduce((a, b) => a * b, 1);
  $('title').textContent = `${m.name}: ${m.model.family} flow`;
  $('info').textContent = `step ${m.step}, ${m.weights} weights, input [${m.data_shape.join('×')}]${m.num_classes ? `, ${m.num_classes} classes` : ''}`;
  $('backend').textContent = `backend: ${backend}`;
  $('backend').title = skipped.length ? `passed over: ${skipped.join(', ')}` : '';
  $('backend-note').textContent = skipped.length ? `(passed over: ${skipped.join(', ')})` : '';
  ($('temperature') as HTMLInputElement).value = String(m.sample.temperature);
  if (m.data_kind === 'vector') {
    // A scatter needs many points to show a density; flow plot density draws 2000.
    Object.assign($('n'), { max: '5000', value: '1000' });
    $('sample-title').textContent = m.data_shape[0] === 2 ? 'Density and samples' : 'Samples';
  }

  const classSelect = $('class') as HTMLSelectElement;
  if (m.num_classes) {
    for (let k = 0; k < m.num_classes; k++) classSelect.add(new Option(m.class_names?.[k] ?? `class ${k}`, String(k)));
    $('class-row').hidden = false;
  }
  const pickedClass = (): number => Number(classSelect.value || 0);
  const labelsFor = (n: number, k?: number): tf.Tensor1D | undefined => (m.num_classes ? tf.tensor1d(new Array(n).fill(k ?? pickedClass()), 'int32') : undefined);

  // Sampling: the grid (images) or the scatter over the density (2-D), redrawn on every control change.
  let density: Awaited<ReturnType<typeof densityGrid>> | null = null;
  let busy = Promise.resolve();
  const resample = (): void => {
    busy = busy.then(async () => {
      const t = numberInput('temperature', 0, 1, m.sample.temperature);
      $('temperature-value').textContent = t.toFixed(2);
      const seed = Math.round(numberInput('seed', 0, 2 ** 31 - 1, 0));
      const n = Math.round(numberInput('n', 1, m.data_kind === 'image' ? 64 : 5000, 16));
      const t0 = performance.now();
      if (m.data_kind === 'image') {
        const labels = labelsFor(n);
        const x = model.sample(n, t, Array.from({ length: n }, (_, i) => sampleRng(seed, i)), labels);
        const pixels = toPixels((await x.data()) as Float32Array, m.n_bits);
        tf.dispose([x, ...(labels ? [labels] : [])]);
        state.sampleMs = performance.now() - t0;
        state.samplePixels = Array.from(pixels);
        drawTiles($('grid') as HTMLCanvasElement, pixels, n, m.data_shape, Math.ceil(Math.sqrt(n)), Math.max(1, Math.floor(256 / m.data_shape[1]! / Math.ceil(Math.sqrt(n)) + 1)));
      } else {
        const samples = await sampleVectors(model, n, t, seed);
        state.sampleMs = performance.now() - t0;
        state.samplePixels = Array.from(samples);
        if (density) drawDensity($('grid') as HTMLCanvasElement, m, density, samples);
        else {
          // Tabular models: the first samples as rows of numbers.
          const d = m.data_shape[0]!;
          const rows = Array.from({ length: Math.min(n, 12) }, (_, i) => Array.from(samples.subarray(i * d, (i + 1) * d), (v) => v.toFixed(3).padStart(8)).join(' '));
          $('density-info').textContent = rows.join('\n');
        }
      }
      state.renders++;
      $('sample-time').textContent = `${n} samples in ${state.sampleMs.toFixed(0)} ms on ${backend}`;
      $('grid').dataset.renders = String(state.renders);
    });
  };
  for (const id of ['temperature', 'seed', 'n', 'class']) $(id).addEventListener('input', resample);
  $('download').addEventListener('click', () => {
    const a = document.createElement('a');
    a.href = ($('grid') as HTMLCanvasElement).toDataURL('image/png');
    a.download = `${m.name}-samples-t${numberInput('temperature', 0, 1, 0).toFixed(2)}-seed${numberInput('seed', 0, 2 ** 31 - 1, 0)}.png`;
    a.click();
  });

  if (m.data_kind === 'image') await setUpImages(m, model, dims, labelsFor);
  else if (m.data_shape[0] === 2 && m.points) {
    const d = m.points.domain;
    density = await densityGrid(model, d, 120, 120);
    $('density-info').textContent = `learned density p(x) on a 120×120 grid over [${d.x0.toFixed(2)}, ${d.x1.toFixed(2)}]×[${d.y0.toFixed(2)}, ${d.y1.toFixed(2)}] (integral ${density.integral.toFixed(3)}), red: model samples, white: data`;
  }
  resample();
  await busy;
  state.loadMs = performance.now() - started;
  $('app').hidden = false;
  $('status').dataset.state = 'ready';
  $('status').textContent = `ready in ${(state.loadMs / 1000).toFixed(1)} s`;
}

/** The heatmap of p(x) (viridis, as flow plot density), the data in white, the samples in red. */
function drawDensity(canvas: HTMLCanvasElement, m: WebManifest, density: Awaited<ReturnType<typeof densityGrid>>, samples: Float32Array): void {
  const { grid } = density;
  const size = 480;
  canvas.width = size;
  canvas.height = size;
  const ctx = canvas.getContext('2d')!;
  let peak = 0;
  for (const v of grid.values) if (Number.isFinite(v) && v > peak) peak = v;
  const img = new ImageData(grid.nx, grid.ny);
  for (let j = 0; j < grid.ny; j++) {
    for (let i = 0; i < grid.nx; i++) {
      // Row j = 0 is the bottom of the domain: flip it onto the canvas.
      const [r, g, b] = viridis(peak > 0 ? grid.values[j * grid.nx + i]! / peak : 0);
      img.data.set([r, g, b, 255], 4 * ((grid.ny - 1 - j) * grid.nx + i));
    }
  }
  const tmp = document.createElement('canvas');
  tmp.width = grid.nx;
  tmp.height = grid.ny;
  tmp.getContext('2d')!.putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(tmp, 0, 0, size, size);
  const d = m.points!.domain;
  const dot = (x: number, y: number, colour: string): void => {
    ctx.fillStyle = colour;
    ctx.fillRect(((x - d.x0) / (d.x1 - d.x0)) * size - 1, (1 - (y - d.y0) / (d.y1 - d.y0)) * size - 1, 2, 2);
  };
  const pts = m.points!.values;
  for (let k = 0; k + 1 < pts.length; k += 2) dot(pts[k]!, pts[k + 1]!, 'rgba(255,255,255,0.6)');
  for (let k = 0; k + 1 < samples.length; k += 2) dot(samples[k]!, samples[k + 1]!, 'rgba(214,39,40,0.8)');
}

async function setUpImages(m: WebManifest, model: FlowModel, dims: number, labelsFor: (n: number, k?: number) => tf.Tensor1D | undefined): Promise<void> {
  const shape = m.data_shape;
  const choices: ImageChoice[] = (m.images ?? []).map((e) => ({
    label: `test #${e.index}${e.label !== undefined ? ` (${m.class_names?.[e.label] ?? e.label})` : ''}`,
    pixels: base64ToBytes(e.pixels),
    index: e.index,
    classLabel: e.label,
  }));
  $('images-section').hidden = false;
  const strip = $('examples') as HTMLCanvasElement;
  if (choices.length) {
    const all = new Uint8Array(choices.length * dims);
    choices.forEach((ch, k) => all.set(ch.pixels, k * dims));
    drawTiles(strip, all, choices.length, shape, choices.length, 2);
  }
  const selects = ['interp-a', 'interp-b', 'score-image'].map((id) => $(id) as HTMLSelectElement);
  const refill = (): void => {
    for (const s of selects) {
      const keep = s.value;
      s.replaceChildren(...choices.map((ch, k) => new Option(ch.label, String(k))));
      if (keep) s.value = keep;
    }
  };
  refill();
  if (choices.length > 1) selects[1]!.value = '1';

  // bits/dim exactly as flow eval computes it: the same preprocessing and, for test image i, the same
  // uniform dequantisation noise exampleNoiseRng(eval_seed, i).
  const score = async (k: number): Promise<void> => {
    const ch = choices[k];
    if (!ch) return;
    drawTiles($('score-preview') as HTMLCanvasElement, ch.pixels, 1, shape, 1, 4);
    const noise = m.dequantize ? exampleNoiseRng(m.eval_seed, ch.index ?? 0) : null;
    const input = toModelInput(ch.pixels, m.n_bits, noise);
    const labels = labelsFor(1, ch.classLabel);
    const logp = tf.tidy(() => model.logProb(tf.tensor(input, [1, ...shape]), labels));
    const nats = (await logp.data())[0]!;
    tf.dispose([logp, ...(labels ? [labels] : [])]);
    const bpd = bitsPerDim(nats, dims, 2 ** m.n_bits);
    state.score = { source: ch.label, index: ch.index, bpd };
    const out = $('score-bpd');
    out.dataset.bpd = String(bpd);
    out.textContent = `${bpd.toFixed(4)} bits/dim`;
    $('score-ood').textContent = m.ood ? oodVerdict(m, bpd) : 'no OOD calibration in this export (flow export --web --ood RESULT.json adds one)';
  };

  const interp = async (): Promise<void> => {
    const a = choices[Number(selects[0]!.value)];
    const b = choices[Number(selects[1]!.value)];
    if (!a || !b) return;
    const steps = Math.round(numberInput('interp-steps', 2, 16, 8));
    const mode = ($('interp-mode') as HTMLSelectElement).value as InterpolationMode;
    // Bin centres, no noise: what flow interpolate encodes, so t = 0 and 1 decode back to the two images.
    const pair = new Float32Array(2 * dims);
    pair.set(toModelInput(a.pixels, m.n_bits, null));
    pair.set(toModelInput(b.pixels, m.n_bits, null), dims);
    const x = tf.tensor(pair, [2, ...shape]);
    const labels = m.num_classes ? tf.tensor1d([a.classLabel ?? 0, b.classLabel ?? 0], 'int32') : undefined;
    const decoded = await interpolate(model, x, steps, mode, labels);
    const pixels = toPixels((await decoded.data()) as Float32Array, m.n_bits);
    tf.dispose([x, decoded, ...(labels ? [labels] : [])]);
    state.interpolation = { steps, mode, pixels: Array.from(pixels), a: Array.from(a.pixels), b: Array.from(b.pixels) };
    drawTiles($('interp') as HTMLCanvasElement, pixels, steps, shape, steps, 3);
    $('interp').dataset.renders = String((Number($('interp').dataset.renders) || 0) + 1);
  };

  const addDropped = async (file: File, then: (k: number) => void): Promise<void> => {
    const msg = $('drop-error');
    msg.textContent = '';
    try {
      choices.push({ label: `your image: ${file.name}`, pixels: await readImageFile(file, shape) });
      refill();
      then(choices.length - 1);
    } catch (e) {
      msg.textContent = e instanceof Error ? e.message : String(e);
    }
  };
  selects[2]!.addEventListener('input', () => void score(Number(selects[2]!.value)));
  for (const id of ['interp-a', 'interp-b', 'interp-mode', 'interp-steps']) $(id).addEventListener('input', () => void interp());
  ($('file') as HTMLInputElement).addEventListener('change', (e) => {
    const f = (e.target as HTMLInputElement).files?.[0];
    if (f) void addDropped(f, (k) => ((selects[2]!.value = String(k)), void score(k)));
  });
  const zone = $('images-section');
  zone.addEventListener('dragover', (e) => e.preventDefault());
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    const f = e.dataTransfer?.files[0];
    if (f) void addDropped(f, (k) => ((selects[2]!.value = String(k)), void score(k)));
  });
  if (choices.length) {
    await score(0);
    await interp();
  } else $('score-bpd').textContent = 'no embedded test images in this export: pick your own';
}

/** One image's typicality statistic |bpd - training mean| against the calibrated threshold (valid as a test for M = 1). */
function oodVerdict(m: WebManifest, bpd: number): string {
  const o = m.ood!;
  const stat = Math.abs(bpd - o.train_mean_bpd);
  const flagged = stat > o.threshold;
  const base = `typicality |bpd − ${o.train_mean_bpd.toFixed(3)}| = ${stat.toFixed(3)} vs threshold ${o.threshold.toFixed(3)} (FPR ${o.target_fpr}, calibrated on ${o.in_name} vs ${o.out_name}, batches of ${o.batch_size})`;
  const verdict = o.batch_size === 1 ? (flagged ? 'out-of-distribution' : 'typical') : `${flagged ? 'atypical' : 'within the threshold'} as a single image (the test is calibrated for batches of ${o.batch_size})`;
  return `${verdict}: ${base}`;
}

main().catch((e) => showError(e instanceof Error ? e.message : String(e)));
