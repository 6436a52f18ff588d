// `flow export --format safetensors RUN OUT`: a trained model's weights in a format other tools read.
// Each format is one writer in FORMATS; a mode that writes a directory (e.g. a web bundle) can be added
// beside --format without changing how the run is resolved and loaded.
import fs from 'node:fs';
import path from 'node:path';
import { resolveRun } from '../io/run.js';
import { loadModel, type LoadedModel } from '../io/model-io.js';
import { readManifest } from '../io/checkpoint.js';
import { encodeSafetensors, type SafetensorsTensor } from '../io/safetensors.js';
import { atomicWriteFile } from '../io/atomic.js';
import { parseWeights, printJson, withBackend } from './common.js';
import { VERSION } from '../version.js';
import { UserError, EXIT } from '../errors.js';

export interface ExportFlags {
  format?: string;
  backend?: string;
  weights?: string;
  json?: boolean;
  quiet?: boolean;
}

interface ExportSource {
  loaded: LoadedModel;
  runDir: string;
  checkpoint: string;
  /** sha256 of the checkpoint's weights.bin, from its manifest: ties the export to the exact checkpoint. */
  checkpointSha256: string;
}

type Writer = (src: ExportSource, out: string) => { files: string[]; tensors: number; bytes: number };

const FORMATS: Record<string, { ext: string; write: Writer }> = {
  safetensors: { ext: '.safetensors', write: writeSafetensors },
};

export async function exportCommand(run: string, out: string | undefined, flags: ExportFlags): Promise<number> {
  const names = Object.keys(FORMATS).join(', ');
  if (!flags.format) throw new UserError(`flow export: --format is required; expected one of ${names}`);
  const format = FORMATS[flags.format];
  if (!format) throw new UserError(`--format ${flags.format}: unknown export format; expected one of ${names}`);
  if (!out) throw new UserError(`flow export --format ${flags.format}: give the output file after the run, e.g. flow export --format ${flags.format} runs/latest model${format.ext}`);
  if (fs.existsSync(out) && fs.statSync(out).isDirectory()) throw new UserError(`${out}: is a directory; expected the path of the ${format.ext} file to write`);
  const weights = parseWeights(flags.weights);
  const { runDir, checkpoint } = resolveRun(run);
  const checkpointSha256 = readManifest(checkpoint).sha256['weights.bin']!;
  const loaded = await withBackend(flags, () => loadModel(checkpoint, weights));
  try {
    fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
    const r = format.write({ loaded, runDir, checkpoint, checkpointSha256 }, out);
    const summary = { format: flags.format, run_dir: runDir, checkpoint: path.resolve(checkpoint), step: loaded.step, weights: loaded.weights, tensors: r.tensors, bytes: r.bytes, files: r.files };
    if (flags.json) printJson(summary);
    else if (!flags.quiet) {
      process.stdout.write(`wrote ${r.tensors} tensors (${loaded.weights} weights, step ${loaded.step}, ${(r.bytes / 2 ** 20).toFixed(2)} MiB) to ${r.files.join(', ')}\n`);
    }
    return EXIT.OK;
  } finally {
    loaded.model.dispose();
  }
}

/** The metadata every export carries: enough to rebuild the model and to trace the export to its checkpoint. */
function exportMetadata(src: ExportSource): Record<string, string> {
  const { loaded } = src;
  return {
    format: 'flow',
    flow_version: VERSION,
    family: loaded.config.model.family,
    step: String(loaded.step),
    weights: loaded.weights,
    checkpoint: path.resolve(src.checkpoint),
    checkpoint_sha256: src.checkpointSha256,
    data_shape: JSON.stringify(loaded.meta.dataShape),
    data_kind: loaded.meta.dataKind,
    n_bits: String(loaded.meta.nBits),
    ...(loaded.meta.numClasses ? { num_classes: String(loaded.meta.numClasses) } : {}),
    layout: 'tfjs: images NHWC; conv kernels [kh, kw, in, out]; dense kernels [in, out]',
    config: JSON.stringify(loaded.config),
  };
}

function writeSafetensors(src: ExportSource, out: string): { files: string[]; tensors: number; bytes: number } {
  const tensors: SafetensorsTensor[] = src.loaded.model.variables().map(([name, v]) => {
    if (v.dtype !== 'float32' && v.dtype !== 'int32') throw new Error(`export: variable ${name} has dtype ${v.dtype}; only float32 and int32 are exported`);
    return { name, dtype: v.dtype === 'float32' ? 'F32' : 'I32', shape: [...v.shape], data: v.dataSync() as Float32Array | Int32Array };
  });
  const buf = encodeSafetensors(tensors, exportMetadata(src));
  atomicWriteFile(out, buf);
  return { files: [out], tensors: tensors.length, bytes: buf.length };
}
