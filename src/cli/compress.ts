// `flow compress` and `flow decompress`: lossless image compression with an integer flow's priors and
// rANS (src/compress/). Parse flags, resolve the run, call the library, print.
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { tf } from '../tf.js';
import { UserError, EXIT } from '../errors.js';
import { atomicWriteFile } from '../io/atomic.js';
import { checkpointDigest } from '../io/checkpoint-layout.js';
import { resolveRun, describeRun, displayPath, CHECKPOINT_HELP, type ResolvedRun } from '../io/run.js';
import { decodeContainer, expandIndices } from '../compress/container.js';
import { checkArithmetic, checkCheckpoint, compressImages, decompressContainer } from '../compress/compress.js';
import { readInputs } from '../compress/inputs.js';
import { pixelSha256, writeImages } from '../compress/output.js';
import type { CodecPool } from '../compress/pool.js';
import { codingSource, openSession } from '../compress/session.js';
import { formatReport, measureReport } from '../compress/report.js';
import { BACKEND_CHOICES, describeBackend, selectBackend, type BackendChoice } from '../backend/select.js';
import { chooseThreads, parseIntOption, parseShard, parseThreads, parseWeights, printJson, run, BACKEND_HELP, defaultBackend } from './common.js';

export const DEFAULT_CHUNK_SIZE = 100;

interface CommonFlags {
  run?: string;
  checkpoint?: string;
  backend?: string;
  threads?: number | 'auto';
  json?: boolean;
  quiet?: boolean;
}

export interface CompressFlags extends CommonFlags {
  out: string;
  weights?: string;
  limit: number;
  chunkSize: number;
  shard?: string;
  report?: boolean;
}

export interface DecompressFlags extends CommonFlags {
  out: string;
}

const THREADS_HELP = 'worker threads, each with its own copy of the model, coding whole chunks (wasm/cpu backends; the bytes do not depend on it); auto: the cores the load average leaves free, 1 for under 500 images';

export function register(program: Command): void {
  program
    .command('compress')
    .description('losslessly compress 8-bit images with an integer discrete flow (model.family: idf) into one file')
    .argument('<inputs...>', 'image files, folders of PNG/JPEG images, or a data spec as flow ood takes (default split test), e.g. embedded:test, fashion-mnist:test, idx:DIR:test')
    .requiredOption('--out <file>', 'the compressed file to write (e.g. test.flowz)')
    .option('--run <dir>', 'run directory (or one checkpoint directory); default <runs>/latest')
    .option('--checkpoint <which>', CHECKPOINT_HELP)
    .option('--weights <which>', "average (the run's Polyak-averaged weights when train.average_decay > 0; the default) or raw (the last step's)")
    .option('--limit <n>', 'compress only the first n images of the inputs (0 = all)', parseIntOption('--limit', 0), 0)
    .option('--chunk-size <n>', 'images per independently coded chunk (every chunk runs at this many rows)', parseIntOption('--chunk-size', 1), DEFAULT_CHUNK_SIZE)
    .option('--shard <i/n>', "compress only images i, i+n, ... into this file (self-contained; decompress names them by global index)")
    .option('--threads <n|auto>', THREADS_HELP, parseThreads, 'auto')
    .option('--backend <name>', BACKEND_HELP, defaultBackend())
    .option('--report', 'decode the written file again to check it, and compare its bits/dim with the model ideal, PNG and lossless WebP')
    .option('--json', 'print the result as one JSON object')
    .option('--quiet', 'no backend line or summary (the --report lines still print)')
    .action(run((inputs: string[], flags: CompressFlags) => compressCommand(inputs, flags)));

  program
    .command('decompress')
    .description('restore the exact images of a flow compress file, as PNG')
    .argument('<file>', 'a file written by flow compress')
    .requiredOption('--out <dir|file.png>', 'a folder (one PNG per image: stored names, else the global index) or, for one image, a .png file')
    .option('--run <dir>', 'run directory (or one checkpoint directory); default: the checkpoint the file names when it is still there, else <runs>/latest')
    .option('--checkpoint <which>', CHECKPOINT_HELP)
    .option('--threads <n|auto>', THREADS_HELP, parseThreads, 'auto')
    .option('--backend <name>', BACKEND_HELP, defaultBackend())
    .option('--json', 'print the result, with every image\'s pixel sha256, as one JSON object')
    .option('--quiet', 'no backend line or summary')
    .action(run((file: string, flags: DecompressFlags) => decompressCommand(file, flags)));
}

/** --threads for coding: N worker threads on wasm/cpu; native backends thread themselves. */
function codingThreads(requested: number | 'auto' | undefined, images: number, quiet?: boolean): number {
  const backend = tf.getBackend();
  const native = backend !== 'wasm' && backend !== 'cpu';
  if (native && typeof requested === 'number' && requested > 1) {
    throw new UserError(`--threads ${requested}: extra threads run the wasm or cpu backend, not ${backend} (which uses its own threads); drop --threads`);
  }
  if (native) return 1;
  const { threads, note } = chooseThreads(requested, images);
  if (note && !quiet) process.stderr.write(`${note}\n`);
  return threads;
}

/**
 * Starts the backend; its line and notes (stderr) are returned for the caller to print once it has not
 * refused the work: a refusal after start-up (another arithmetic) is then the only line on stderr.
 */
async function startBackendQuietly(name: string): Promise<string[]> {
  if (!(BACKEND_CHOICES as readonly string[]).includes(name)) throw new UserError(`--backend ${name}: unknown backend; expected one of ${BACKEND_CHOICES.join(', ')}`);
  const b = await selectBackend(name as BackendChoice);
  return [describeBackend(), ...b.notes];
}

export async function compressCommand(inputs: string[], flags: CompressFlags): Promise<number> {
  const shard = flags.shard ? parseShard(flags.shard) : null;
  const weights = parseWeights(flags.weights);
  const resolved = resolveRun(flags.run, { checkpoint: flags.checkpoint });
  refuseDirectory(flags.out);
  const backendLines = await startBackendQuietly(flags.backend ?? 'auto');
  const session = await openSession(resolved.checkpoint, weights, flags.chunkSize);
  let pool: CodecPool | undefined;
  try {
    if (!flags.quiet) for (const line of backendLines) process.stderr.write(`${line}\n`);
    const images = await readInputs(inputs, { shape: session.codec.imageShape, seed: session.loaded.config.seed, limit: flags.limit, shard });
    pool = await session.openPool(codingThreads(flags.threads, images.count, flags.quiet));
    const source = codingSource(session, resolved, shard, inputs);
    const compressed = await compressImages(pool, images, source);
    fs.mkdirSync(path.dirname(path.resolve(flags.out)), { recursive: true });
    atomicWriteFile(flags.out, compressed.bytes);
    // An empty shard (more shards than images) still writes its file; there is nothing to measure.
    const report = flags.report && images.count > 0 ? await measureReport(pool, flags.out, images, compressed) : undefined;
    const dims = images.count * images.shape[0] * images.shape[1] * images.shape[2];
    const bpd = (compressed.bytes.length * 8) / dims;
    const ideal = compressed.idealBits / dims;
    const dims1 = images.shape[0] * images.shape[1] * images.shape[2];
    if (flags.json) {
      printJson({
        file: flags.out,
        bytes: compressed.bytes.length,
        images: images.count,
        total: images.total,
        shard,
        shape: images.shape,
        chunk_size: flags.chunkSize,
        chunks: compressed.container.chunks.length,
        bits_per_dim: bpd,
        ideal_bits_per_dim: ideal,
        encode_images_per_s: images.count / compressed.encodeSeconds,
        threads: pool.threads,
        run_dir: resolved.runDir,
        checkpoint: resolved.checkpoint,
        step: resolved.step,
        weights: source.weights,
        backend: source.backend,
        fingerprint: source.fingerprint,
        checkpoint_sha256: source.checkpointSha256,
        image_sha256: Array.from({ length: images.count }, (_, i) => ({ index: images.indices[i], sha256: pixelSha256(images.pixels.subarray(i * dims1, (i + 1) * dims1)) })),
        ...(report ? { report } : {}),
      });
    } else {
      if (!flags.quiet) {
        process.stdout.write(
          `${describeRun(resolved)}: compressed ${images.count} images (${images.shape.join('x')}${shard ? `, shard ${shard.index}/${shard.count} of ${images.total}` : ''}) into ${flags.out}: ` +
            `${compressed.bytes.length} bytes, ${bpd.toFixed(4)} bits/dim (model ideal ${ideal.toFixed(4)})\n`,
        );
      }
      if (report) process.stdout.write(formatReport(report));
    }
  } finally {
    await pool?.close();
    session.close();
  }
  return EXIT.OK;
}

/** --out naming an existing folder: one line rather than a failed rename. */
function refuseDirectory(out: string): void {
  if (fs.statSync(out, { throwIfNoEntry: false })?.isDirectory()) throw new UserError(`--out ${out}: is a folder; expected the name of the file to write`);
}

function readArchive(file: string): Uint8Array {
  try {
    return new Uint8Array(fs.readFileSync(file));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(`${file}: cannot read (${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'a directory' : (code ?? (e as Error).message)}); expected a file written by flow compress`);
  }
}

/** --run, else the checkpoint the file was compressed with when it is still there, else <runs>/latest. */
function decodingRun(flags: DecompressFlags, recorded: string): ResolvedRun {
  if (flags.run !== undefined || flags.checkpoint !== undefined) return resolveRun(flags.run, { checkpoint: flags.checkpoint });
  if (fs.existsSync(path.join(recorded, 'manifest.json'))) return resolveRun(recorded);
  return resolveRun(undefined);
}

export async function decompressCommand(file: string, flags: DecompressFlags): Promise<number> {
  const container = decodeContainer(readArchive(file), file);
  const h = container.header;
  const resolved = decodingRun(flags, h.checkpoint);
  checkCheckpoint(h, file, { checkpointSha256: checkpointDigest(resolved.checkpoint), runLabel: `run ${displayPath(resolved.runDir)} step ${resolved.step}` });
  if (!/\.png$/i.test(flags.out) && fs.statSync(flags.out, { throwIfNoEntry: false })?.isFile()) throw new UserError(`--out ${flags.out}: is a file; expected a folder (or a .png name for a one-image file)`);
  const backendLines = await startBackendQuietly(flags.backend ?? 'auto');
  const session = await openSession(resolved.checkpoint, h.weights, h.chunk_size);
  let pool: CodecPool | undefined;
  try {
    checkArithmetic(h, file, { backend: session.backend, fingerprint: session.fingerprint });
    if (!flags.quiet) for (const line of backendLines) process.stderr.write(`${line}\n`);
    pool = await session.openPool(codingThreads(flags.threads, h.count, flags.quiet));
    const { pixels, decodeSeconds } = await decompressContainer(pool, container, file);
    const written = await writeImages(flags.out, h, pixels, file);
    if (flags.json) {
      printJson({
        file,
        out: flags.out,
        count: h.count,
        total: h.total,
        shard: h.shard,
        shape: h.image_shape,
        indices: expandIndices(h.indices),
        images: written,
        decode_images_per_s: h.count / decodeSeconds,
        threads: pool.threads,
        run_dir: resolved.runDir,
        checkpoint: resolved.checkpoint,
        step: resolved.step,
        backend: tf.getBackend(),
      });
    } else if (!flags.quiet) {
      process.stdout.write(`${describeRun(resolved)}: decompressed ${h.count} images (${h.image_shape.join('x')}) from ${file} into ${flags.out}, every chunk's pixel sha256 verified\n`);
    }
  } finally {
    await pool?.close();
    session.close();
  }
  return EXIT.OK;
}
