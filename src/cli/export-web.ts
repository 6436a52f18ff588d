// `flow export --web DIR [--run RUN]`: a trained model as a static web page. The page (dist/web, built by
// `npm run build` from src/web with the CLI's own flow code) is copied beside the model's weights
// (src/web/format.ts), a few test images and, when given, an OOD calibration from `flow ood --json`.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveRun } from '../io/run.js';
import { loadModel } from '../io/model-io.js';
import { loadDataset } from '../data/index.js';
import { squareDomain } from '../views/density.js';
import { atomicWriteFile } from '../io/atomic.js';
import { parseWeights, printJson, withBackend } from './common.js';
import { VERSION } from '../version.js';
import { UserError, EXIT } from '../errors.js';
import { exportCommand, type ExportFlags } from './export.js';
import { MANIFEST_FILE, WEB_FORMAT, WEB_FORMAT_VERSION, WEIGHTS_FILE, encodeWeights, type WebManifest, type WebOod } from '../web/format.js';

export interface WebExportFlags {
  backend?: string;
  weights?: string;
  ood?: string;
  images?: number;
  json?: boolean;
  quiet?: boolean;
}

/** `flow export`: --web DIR writes the page, anything else is exportCommand's --format FMT RUN OUT. */
export async function exportEntry(runDir: string | undefined, out: string | undefined, flags: ExportFlags & WebExportFlags & { web?: string; run?: string }): Promise<number> {
  if (flags.web) {
    if (flags.format) throw new UserError('flow export: give --web DIR or --format FMT, not both');
    if (out) throw new UserError(`flow export --web: unexpected argument ${out}; the page goes to --web ${flags.web}`);
    if (runDir && flags.run) throw new UserError(`flow export --web: the run is given twice (${runDir} and --run ${flags.run}); give one`);
    return exportWebCommand(runDir ?? flags.run, flags.web, flags);
  }
  if (flags.run || flags.ood) throw new UserError(`flow export: ${flags.run ? '--run' : '--ood'} goes with --web DIR; with --format the run is the first argument`);
  if (!runDir) throw new UserError('flow export: give the run directory, e.g. flow export --format safetensors runs/latest model.safetensors (or --web DIR)');
  return exportCommand(runDir, out, flags);
}

/** dist/web: the bundle scripts/build-web.ts writes (this file runs from dist/src/cli/). */
export const WEB_BUNDLE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'web');
const BUNDLE_FILES = ['index.html', 'app.js'];
/** Data points a 2-D export carries for the density view, as flow plot density draws them. */
const MAX_POINTS = 2000;

function copyBundle(dir: string): string[] {
  const missing = BUNDLE_FILES.filter((f) => !fs.existsSync(path.join(WEB_BUNDLE, f)));
  if (missing.length) throw new UserError(`${WEB_BUNDLE}: the web page is not built (no ${missing.join(', ')}); run npm run build in the flow checkout`);
  const files: string[] = [];
  for (const f of BUNDLE_FILES) {
    fs.copyFileSync(path.join(WEB_BUNDLE, f), path.join(dir, f));
    files.push(f);
  }
  fs.mkdirSync(path.join(dir, 'tfjs'), { recursive: true });
  for (const f of fs.readdirSync(path.join(WEB_BUNDLE, 'tfjs')).filter((f) => f.endsWith('.wasm'))) {
    fs.copyFileSync(path.join(WEB_BUNDLE, 'tfjs', f), path.join(dir, 'tfjs', f));
    files.push(`tfjs/${f}`);
  }
  return files;
}

/** DIR must be new, empty, or an earlier web export (which is replaced): never someone's other files. */
function prepareDir(dir: string): void {
  if (fs.existsSync(dir)) {
    if (!fs.statSync(dir).isDirectory()) throw new UserError(`--web ${dir}: is a file; expected a directory to write the page into`);
    const entries = fs.readdirSync(dir);
    if (entries.length && !isWebExport(dir)) throw new UserError(`--web ${dir}: directory is not empty and holds no earlier flow web export; expected a new or empty directory`);
  }
  fs.mkdirSync(dir, { recursive: true });
}

function isWebExport(dir: string): boolean {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, MANIFEST_FILE), 'utf8')).format === WEB_FORMAT;
  } catch {
    return false;
  }
}

/** The typicality calibration of a `flow ood --json` result file. */
function readOod(file: string): WebOod {
  if (!fs.existsSync(file)) throw new UserError(`--ood ${file}: no such file; expected the JSON printed by flow ood --json`);
  // biome-ignore lint/suspicious/noExplicitAny: the fields used are checked below
  let j: Record<string, any>;
  try {
    j = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    throw new UserError(`--ood ${file}: not valid JSON; expected the JSON printed by flow ood --json`);
  }
  const t = j?.typicality;
  if (!t || ![t.threshold, t.train_mean_bpd, t.batch_size, t.target_fpr].every((v) => typeof v === 'number' && Number.isFinite(v))) {
    throw new UserError(`--ood ${file}: no typicality {threshold, train_mean_bpd, batch_size, target_fpr}; expected the JSON printed by flow ood --json`);
  }
  return { in_name: String(j.in?.name ?? 'in'), out_name: String(j.out?.name ?? 'out'), batch_size: t.batch_size, threshold: t.threshold, train_mean_bpd: t.train_mean_bpd, target_fpr: t.target_fpr };
}

export async function exportWebCommand(run: string | undefined, dir: string, flags: WebExportFlags): Promise<number> {
  const weights = parseWeights(flags.weights);
  const nImages = flags.images ?? 8;
  const { runDir, checkpoint } = resolveRun(run);
  // flow ood results travel with the export when asked for, or when the run keeps one as ood.json.
  const oodFile = flags.ood ?? (fs.existsSync(path.join(runDir, 'ood.json')) ? path.join(runDir, 'ood.json') : undefined);
  const ood = oodFile ? readOod(oodFile) : undefined;
  prepareDir(dir);
  const loaded = await withBackend(flags, () => loadModel(checkpoint, weights));
  try {
    const { model, config, meta } = loaded;
    const { bytes, entries } = encodeWeights(
      model.variables().map(([name, v]) => {
        if (v.dtype !== 'float32' && v.dtype !== 'int32') throw new Error(`export: variable ${name} has dtype ${v.dtype}; only float32 and int32 are exported`);
        return { name, dtype: v.dtype, shape: [...v.shape], data: v.dataSync() as Float32Array | Int32Array };
      }),
    );
    const manifest: WebManifest = {
      format: WEB_FORMAT,
      version: WEB_FORMAT_VERSION,
      flow_version: VERSION,
      name: config.name,
      step: loaded.step,
      weights: loaded.weights,
      seed: config.seed,
      model: config.model,
      data_shape: meta.dataShape,
      data_kind: meta.dataKind,
      n_bits: meta.nBits,
      ...(meta.numClasses ? { num_classes: meta.numClasses } : {}),
      ...(meta.classNames ? { class_names: meta.classNames } : {}),
      dequantize: config.data.dequantize === 'uniform',
      eval_seed: config.seed,
      sample: { temperature: config.sample.temperature },
      weights_file: WEIGHTS_FILE,
      weights_bytes: bytes.length,
      weights_sha256: crypto.createHash('sha256').update(bytes).digest('hex'),
      tensors: entries,
      ...(ood ? { ood } : {}),
    };
    let note = '';
    try {
      const data = await loadDataset(config.data, { seed: config.seed });
      const dims = meta.dataShape.reduce((a, b) => a * b, 1);
      if (meta.dataKind === 'image') {
        // The first test images: example i here is example i of flow eval --split test, noise and all.
        const n = Math.min(nImages, data.test.n);
        manifest.images = Array.from({ length: n }, (_, i) => ({
          split: 'test' as const,
          index: i,
          ...(data.test.labels ? { label: data.test.labels[i]! } : {}),
          pixels: Buffer.from((data.test.x as Uint8Array).subarray(i * dims, (i + 1) * dims)).toString('base64'),
        }));
      } else if (dims === 2) {
        const x = data.train.x as Float32Array;
        const keep = Math.min(MAX_POINTS, data.train.n);
        manifest.points = { values: Array.from(x.subarray(0, 2 * keep)), domain: squareDomain(x) };
      }
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
      // The page still samples without the data; it only loses the examples.
      note = `note: no embedded examples (${e.message})`;
    }
    const files = copyBundle(dir);
    atomicWriteFile(path.join(dir, WEIGHTS_FILE), bytes);
    atomicWriteFile(path.join(dir, MANIFEST_FILE), JSON.stringify(manifest));
    files.push(WEIGHTS_FILE, MANIFEST_FILE);
    const summary = { dir: path.resolve(dir), run_dir: runDir, checkpoint: path.resolve(checkpoint), step: loaded.step, weights: loaded.weights, tensors: entries.length, weights_bytes: bytes.length, images: manifest.images?.length ?? 0, ood: oodFile ?? null, files };
    if (note && !flags.json) process.stderr.write(note + '\n');
    if (flags.json) printJson(summary);
    else if (!flags.quiet) {
      process.stdout.write(`wrote a web page of ${config.name} (step ${loaded.step}, ${loaded.weights} weights, ${(bytes.length / 2 ** 20).toFixed(2)} MiB) to ${dir}: serve it from any static server, e.g. npx http-server ${dir}\n`);
    }
    return EXIT.OK;
  } finally {
    loaded.model.dispose();
  }
}
