// A worker thread of src/compress/pool.ts: its own tfjs backend, a copy of the model and its ChunkCodec.
// It codes whole chunks on request; every chunk runs at chunkSize rows, so its bytes are the same as
// the main thread's would be (the pool checks that the fingerprints agree before using it).
import { parentPort, workerData } from 'node:worker_threads';
import { selectBackend, type BackendChoice } from '../backend/select.js';
import { loadModel } from '../io/model-io.js';
import { createChunkCodec } from './codec.js';
import type { WorkerReply, WorkerRequest, WorkerStart } from './worker-protocol.js';

const post = (m: WorkerReply, transfer: ArrayBuffer[] = []) => parentPort!.postMessage(m, transfer);
const errorFields = (e: unknown) => {
  const err = e as Error & { exitCode?: number };
  return { name: err?.name ?? 'Error', message: err?.message ?? String(e), exitCode: err?.exitCode };
};

async function main(): Promise<void> {
  const start = workerData as WorkerStart;
  await selectBackend(start.backend as BackendChoice);
  const loaded = loadModel(start.checkpoint, start.weights);
  const codec = await createChunkCodec(loaded, start.chunkSize);
  // One request at a time: the codec's tensors are not shared between concurrent calls.
  let queue = Promise.resolve();
  parentPort!.on('message', (req: WorkerRequest) => {
    queue = queue.then(async () => {
      try {
        if (req.op === 'encode') {
          const r = await codec.encodeChunk(req.pixels, req.n);
          const bytes = r.bytes.slice();
          post({ type: 'encoded', id: req.id, bytes, idealBits: r.idealBits }, [bytes.buffer]);
        } else {
          const pixels = (await codec.decodeChunk(req.bytes, req.n)).slice();
          post({ type: 'decoded', id: req.id, pixels }, [pixels.buffer]);
        }
      } catch (e) {
        post({ type: 'error', id: req.id, ...errorFields(e) });
      }
    });
  });
  post({ type: 'ready', fingerprint: await codec.fingerprint() });
}

main().catch((e) => post({ type: 'failed', ...errorFields(e) }));
