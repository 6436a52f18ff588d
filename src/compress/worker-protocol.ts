// Messages between src/compress/pool.ts and its worker threads (src/compress/worker.ts). Pixels and
// streams travel as transferred ArrayBuffers, so nothing is copied between threads.

export interface WorkerStart {
  checkpoint: string;
  weights: 'average' | 'raw';
  /** The tf backend the main thread runs (wasm or cpu): the workers must compute the same arithmetic. */
  backend: string;
  chunkSize: number;
}

export type WorkerRequest = { id: number; op: 'encode'; pixels: Uint8Array; n: number } | { id: number; op: 'decode'; bytes: Uint8Array; n: number };

export type WorkerReply =
  | { type: 'ready'; fingerprint: string }
  | { type: 'failed'; name: string; message: string; exitCode?: number }
  | { type: 'encoded'; id: number; bytes: Uint8Array; idealBits: number }
  | { type: 'decoded'; id: number; pixels: Uint8Array }
  | { type: 'error'; id: number; name: string; message: string; exitCode?: number };
