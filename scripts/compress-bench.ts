// `scripts/compress-bench --run RUN [SPEC...] [--limit N] [--chunk-size N] [--threads N] [--backend B] [--keep FILE]`:
// the numbers of the README's "Lossless compression" table. Through the library (no child processes):
// compress SPEC (default embedded:test) with the run's integer flow, decompress the file into a temp folder
// of PNGs, read every PNG back and check its pixels' sha256 against the original's, then print the
// --report numbers (bits/dim written, model ideal, PNG, lossless WebP, speeds) and the round-trip count as
// one JSON object on stdout (progress on stderr). Exit 1 if any image does not come back exactly.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import sharp from 'sharp';
import { tf } from '../src/tf.js';
import { selectBackend, describeBackend, type BackendChoice } from '../src/backend/select.js';
import { resolveRun } from '../src/io/run.js';
import { atomicWriteFile } from '../src/io/atomic.js';
import { decodeContainer } from '../src/compress/container.js';
import { compressImages, decompressContainer } from '../src/compress/compress.js';
import { readInputs } from '../src/compress/inputs.js';
import { pixelSha256, writeImages } from '../src/compress/output.js';
import { codingSource, openSession } from '../src/compress/session.js';
import { measureReport } from '../src/compress/report.js';

const log = (m: string) => process.stderr.write(`compress-bench: ${m}\n`);

async function main(): Promise<void> {
  const program = new Command('compress-bench')
    .argument('[specs...]', 'inputs as flow compress takes them', ['embedded:test'])
    .requiredOption('--run <dir>', 'a run of an integer discrete flow (model.family: idf)')
    .option('--checkpoint <which>', 'latest, best or step-N')
    .option('--limit <n>', 'first n images (0 = all)', (v) => Number(v), 0)
    .option('--chunk-size <n>', 'images per chunk', (v) => Number(v), 100)
    .option('--threads <n>', 'coding threads (worker threads when > 1)', (v) => Number(v), 1)
    .option('--backend <name>', 'wasm | cpu | tensorflow | webgpu | auto', 'wasm')
    .option('--keep <file>', 'also keep the compressed file here')
    .parse();
  const specs = program.processedArgs[0] as string[];
  const o = program.opts<{ run: string; checkpoint?: string; limit: number; chunkSize: number; threads: number; backend: string; keep?: string }>();

  await selectBackend(o.backend as BackendChoice);
  log(describeBackend());
  const resolved = resolveRun(o.run, { checkpoint: o.checkpoint });
  const session = await openSession(resolved.checkpoint, 'average', o.chunkSize);
  const pool = await session.openPool(o.threads);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'compress-bench-'));
  try {
    const images = await readInputs(specs, { shape: session.codec.imageShape, seed: session.loaded.config.seed, limit: o.limit, shard: null });
    log(`compressing ${images.count} images of ${images.shape.join('x')} (run ${resolved.runDir}, step ${resolved.step}, ${pool.threads} thread(s))...`);
    const compressed = await compressImages(pool, images, codingSource(session, resolved, null, specs));
    const file = o.keep ?? path.join(tmp, 'bench.flowz');
    atomicWriteFile(file, compressed.bytes);
    log('decoding it again for the report...');
    const report = await measureReport(pool, file, images, compressed);
    log('decompressing to PNGs and reading them back...');
    const container = decodeContainer(new Uint8Array(fs.readFileSync(file)), file);
    const { pixels } = await decompressContainer(pool, container, file);
    const written = await writeImages(path.join(tmp, 'out'), container.header, pixels, file);
    const dims = images.shape[0] * images.shape[1] * images.shape[2];
    let exact = 0;
    for (const [i, w] of written.entries()) {
      const img = sharp(w.file);
      const { data } = await (images.shape[2] === 1 ? img.toColourspace('b-w') : img).raw().toBuffer({ resolveWithObject: true });
      if (pixelSha256(new Uint8Array(data)) === pixelSha256(images.pixels.subarray(i * dims, (i + 1) * dims))) exact++;
    }
    process.stdout.write(
      JSON.stringify({
        run_dir: resolved.runDir,
        step: resolved.step,
        inputs: specs,
        backend: tf.getBackend(),
        threads: pool.threads,
        chunk_size: o.chunkSize,
        ...report,
        round_trip_exact: exact,
        round_trip_total: images.count,
      }) + '\n',
    );
    if (exact !== images.count) {
      log(`${images.count - exact} of ${images.count} images did not come back exactly`);
      process.exitCode = 1;
    }
  } finally {
    await pool.close();
    session.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
