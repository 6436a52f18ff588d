// One checkpoint's coding set-up, shared by flow compress, flow decompress and scripts/compress-bench:
// the model (on the backend already started), its ChunkCodec and the codec's fingerprint, and a CodecPool
// of 1..N threads on demand. close() releases everything.
import { tf } from '../tf.js';
import { loadModel, type LoadedModel } from '../io/model-io.js';
import { checkpointDigest } from '../io/checkpoint-layout.js';
import type { ResolvedRun } from '../io/run.js';
import { VERSION } from '../version.js';
import { createChunkCodec } from './codec.js';
import type { ChunkCodec } from './codec-types.js';
import type { CodingSource } from './compress.js';
import { CodecPool } from './pool.js';

export interface CodingSession {
  loaded: LoadedModel;
  codec: ChunkCodec;
  fingerprint: string;
  /** The tf backend the codec runs on. */
  backend: string;
  openPool(threads: number): Promise<CodecPool>;
  close(): void;
}

/** Loads the checkpoint and builds its codec; a model that cannot code losslessly is createChunkCodec's UserError. */
export async function openSession(checkpoint: string, weights: 'average' | 'raw', chunkSize: number): Promise<CodingSession> {
  const loaded = loadModel(checkpoint, weights);
  let codec: ChunkCodec | undefined;
  try {
    codec = await createChunkCodec(loaded, chunkSize);
    const fingerprint = await codec.fingerprint();
    const backend = tf.getBackend();
    const ready = codec;
    return {
      loaded,
      codec,
      fingerprint,
      backend,
      openPool: (threads) => CodecPool.create(ready, threads, { checkpoint, weights: loaded.weights, backend }),
      close: () => {
        ready.dispose();
        loaded.model.dispose();
      },
    };
  } catch (e) {
    codec?.dispose();
    loaded.model.dispose();
    throw e;
  }
}

/** The header fields of a file this session writes. */
export function codingSource(s: CodingSession, run: ResolvedRun, shard: CodingSource['shard'], inputs: string[]): CodingSource {
  return {
    toolVersion: VERSION,
    checkpointSha256: checkpointDigest(run.checkpoint),
    runDir: run.runDir,
    checkpoint: run.checkpoint,
    step: run.step,
    weights: s.loaded.weights,
    backend: s.backend,
    fingerprint: s.fingerprint,
    shard,
    inputs,
  };
}
