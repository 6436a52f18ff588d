// Codes many chunks on one thread or on N worker threads (src/compress/worker.ts), each holding its own
// model and ChunkCodec and taking the next uncoded chunk when it is free. Chunks are independent and
// every chunk runs at chunkSize rows, so the bytes do not depend on the thread count or on which thread
// coded which chunk; with N > 1 the main thread only dispatches (coding there too would hold up replies).
import { Worker } from 'node:worker_threads';
import { FlowFailure, UserError } from '../errors.js';
import type { ChunkCodec, EncodedChunk } from './codec-types.js';
import type { WorkerReply, WorkerRequest, WorkerStart } from './worker-protocol.js';

/** One thread that codes chunks. */
interface Lane {
  encode(pixels: Uint8Array, n: number): Promise<EncodedChunk>;
  decode(bytes: Uint8Array, n: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** An error from a worker, rebuilt with its name (CorruptStreamError stays recognisable) and exit code. */
function rebuild(r: { name: string; message: string; exitCode?: number }): Error {
  const e = r.exitCode !== undefined ? new UserError(r.message, r.exitCode) : new Error(r.message);
  e.name = r.name;
  return e;
}

class WorkerLane implements Lane {
  private next = 0;
  private readonly pending = new Map<number, { resolve: (r: WorkerReply) => void; reject: (e: Error) => void }>();

  private constructor(private readonly worker: Worker) {
    worker.on('message', (m: WorkerReply) => {
      if (m.type === 'ready' || m.type === 'failed') return;
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (m.type === 'error') p?.reject(rebuild(m));
      else p?.resolve(m);
    });
    const failAll = (e: Error) => {
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    };
    worker.on('error', (e) => failAll(new Error(`compress worker failed: ${e.message}`)));
    worker.on('exit', (code) => failAll(new Error(`compress worker exited (code ${code})`)));
  }

  static start(start: WorkerStart, fingerprint: string): Promise<WorkerLane> {
    const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: start });
    return new Promise((resolve, reject) => {
      const fail = (e: Error) => {
        void worker.terminate();
        reject(e);
      };
      worker.once('message', (m: WorkerReply) => {
        if (m.type === 'failed') fail(rebuild(m));
        else if (m.type !== 'ready') fail(new Error(`compress worker: unexpected first message ${m.type}`));
        else if (m.fingerprint !== fingerprint) {
          fail(new FlowFailure(`a worker thread computes arithmetic ${m.fingerprint.slice(0, 12)}, the main thread ${fingerprint.slice(0, 12)}: its chunks would not decode; use --threads 1`));
        } else resolve(new WorkerLane(worker));
      });
      worker.once('error', (e) => fail(new Error(`compress worker failed to start: ${e.message}`)));
    });
  }

  private call(req: WorkerRequest, transfer: ArrayBuffer[]): Promise<WorkerReply> {
    return new Promise((resolve, reject) => {
      this.pending.set(req.id, { resolve, reject });
      this.worker.postMessage(req, transfer);
    });
  }

  async encode(pixels: Uint8Array, n: number): Promise<EncodedChunk> {
    const copy = pixels.slice();
    const r = await this.call({ id: this.next++, op: 'encode', pixels: copy, n }, [copy.buffer]);
    if (r.type !== 'encoded') throw new Error(`compress worker: expected an encoded chunk, got ${r.type}`);
    return { bytes: r.bytes, idealBits: r.idealBits };
  }

  async decode(bytes: Uint8Array, n: number): Promise<Uint8Array> {
    const copy = bytes.slice();
    const r = await this.call({ id: this.next++, op: 'decode', bytes: copy, n }, [copy.buffer]);
    if (r.type !== 'decoded') throw new Error(`compress worker: expected decoded pixels, got ${r.type}`);
    return r.pixels;
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

export class CodecPool {
  private constructor(
    private readonly lanes: Lane[],
    /** The main thread's codec (also what names the arithmetic); the pool does not dispose it. */
    readonly codec: ChunkCodec,
  ) {}

  get threads(): number {
    return this.lanes.length;
  }

  /** threads 1: the main thread's codec; N > 1: N workers, each loading `start.checkpoint` itself. */
  static async create(codec: ChunkCodec, threads: number, start: Omit<WorkerStart, 'chunkSize'>): Promise<CodecPool> {
    if (threads <= 1) {
      const lane: Lane = { encode: (p, n) => codec.encodeChunk(p, n), decode: (b, n) => codec.decodeChunk(b, n), close: async () => {} };
      return new CodecPool([lane], codec);
    }
    const fingerprint = await codec.fingerprint();
    const started = await Promise.allSettled(Array.from({ length: threads }, () => WorkerLane.start({ ...start, chunkSize: codec.chunkSize }, fingerprint)));
    const lanes = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) {
      await Promise.all(lanes.map((l) => l.close()));
      throw failed.reason;
    }
    return new CodecPool(lanes, codec);
  }

  /** Runs job(lane, i) for i in 0..count-1, each lane taking the next index when free; results in index order. */
  private async map<T>(count: number, job: (lane: Lane, i: number) => Promise<T>): Promise<T[]> {
    const out = new Array<T>(count);
    let next = 0;
    await Promise.all(
      this.lanes.map(async (lane) => {
        while (next < count) {
          const i = next++;
          out[i] = await job(lane, i);
        }
      }),
    );
    return out;
  }

  encodeAll(chunks: ReadonlyArray<{ pixels: Uint8Array; n: number }>): Promise<EncodedChunk[]> {
    return this.map(chunks.length, (lane, i) => lane.encode(chunks[i]!.pixels, chunks[i]!.n));
  }

  /** Decodes every chunk; `onError(i, e)` may turn a chunk's failure into the error to throw. */
  decodeAll(chunks: ReadonlyArray<{ bytes: Uint8Array; n: number }>, onError: (i: number, e: unknown) => unknown = (_, e) => e): Promise<Uint8Array[]> {
    return this.map(chunks.length, async (lane, i) => {
      try {
        return await lane.decode(chunks[i]!.bytes, chunks[i]!.n);
      } catch (e) {
        throw onError(i, e);
      }
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.lanes.map((l) => l.close()));
  }
}
