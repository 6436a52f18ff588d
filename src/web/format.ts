// The files `flow export --web` writes and the page reads: model.json (what to build, where each tensor
// lies in weights.bin, the embedded examples) and weights.bin (the tensors back to back, little-endian).
// Pure code with no Node or DOM imports: the exporter and the page both use it, so they cannot disagree.
import type { ModelConfig } from '../config/schema.js';

export const WEB_FORMAT = 'flow-web';
export const WEB_FORMAT_VERSION = 1;
export const WEIGHTS_FILE = 'weights.bin';
export const MANIFEST_FILE = 'model.json';

export interface WebTensor {
  name: string;
  dtype: 'float32' | 'int32';
  shape: number[];
  /** Byte offset in weights.bin. */
  offset: number;
}

/** An embedded image (pixels as base64 HWC bytes) with where it came from, so `flow eval` can score the same one. */
export interface WebImageExample {
  split: 'test';
  /** Index in the split: flow eval's dequantisation noise for this image is exampleNoiseRng(eval_seed, index). */
  index: number;
  label?: number;
  pixels: string;
}

/** The typicality test of `flow ood --json`, when the export was given one. */
export interface WebOod {
  in_name: string;
  out_name: string;
  batch_size: number;
  threshold: number;
  train_mean_bpd: number;
  target_fpr: number;
}

export interface WebManifest {
  format: typeof WEB_FORMAT;
  version: number;
  flow_version: string;
  name: string;
  step: number;
  weights: 'average' | 'raw';
  /** The run's config.seed (buildModel's initialisation; every variable is then assigned from weights.bin). */
  seed: number;
  model: ModelConfig;
  data_shape: number[];
  data_kind: 'image' | 'vector';
  n_bits: number;
  num_classes?: number;
  class_names?: string[];
  /** data.dequantize === 'uniform', and the seed flow eval draws its per-example noise from. */
  dequantize: boolean;
  eval_seed: number;
  sample: { temperature: number };
  weights_file: string;
  weights_bytes: number;
  weights_sha256: string;
  tensors: WebTensor[];
  images?: WebImageExample[];
  /** 2-D models: data points (x, y interleaved) and the square plotting domain of `flow plot density`. */
  points?: { values: number[]; domain: { x0: number; x1: number; y0: number; y1: number } };
  ood?: WebOod;
}

/** Bad export files: the message names the file and what was expected, for the page to show as is. */
export class WebFormatError extends Error {
  override name = 'WebFormatError';
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isShape = (v: unknown): v is number[] => Array.isArray(v) && v.every((d) => Number.isInteger(d) && d >= 0);

/** Checks the parts of model.json the page relies on; the message says which field is wrong. */
export function parseManifest(json: unknown, file = MANIFEST_FILE): WebManifest {
  const bad = (what: string): never => {
    throw new WebFormatError(`${file}: ${what}; expected the model.json written by flow export --web`);
  };
  if (!isObj(json)) return bad('not a JSON object');
  if (json.format !== WEB_FORMAT) bad(`format is ${JSON.stringify(json.format)}, not "${WEB_FORMAT}"`);
  if (json.version !== WEB_FORMAT_VERSION) bad(`version ${JSON.stringify(json.version)}; this page reads version ${WEB_FORMAT_VERSION}`);
  if (!isObj(json.model)) bad('no model config');
  if (!isShape(json.data_shape) || (json.data_shape.length !== 3 && json.data_shape.length !== 1)) bad('data_shape is not [H, W, C] or [D]');
  if (json.data_kind !== 'image' && json.data_kind !== 'vector') bad('data_kind is not image or vector');
  if (!Number.isInteger(json.n_bits)) bad('n_bits is missing');
  if (!Number.isInteger(json.weights_bytes) || typeof json.weights_sha256 !== 'string') bad('weights_bytes / weights_sha256 missing');
  if (!Array.isArray(json.tensors)) bad('no tensor list');
  for (const t of json.tensors as unknown[]) {
    if (!isObj(t) || typeof t.name !== 'string' || (t.dtype !== 'float32' && t.dtype !== 'int32') || !isShape(t.shape) || !Number.isInteger(t.offset)) {
      bad(`tensor entry ${JSON.stringify(t)} is not {name, dtype float32|int32, shape, offset}`);
    }
  }
  return json as unknown as WebManifest;
}

export interface DecodedTensor {
  dtype: 'float32' | 'int32';
  shape: number[];
  data: Float32Array | Int32Array;
}

/** Splits weights.bin into its tensors after checking its length and sha256 against the manifest. */
export function decodeWeights(m: WebManifest, bytes: Uint8Array, file = WEIGHTS_FILE): Map<string, DecodedTensor> {
  if (bytes.length !== m.weights_bytes) {
    const why = bytes.length < m.weights_bytes ? 'truncated' : 'too long';
    throw new WebFormatError(`${file}: ${bytes.length} bytes, expected ${m.weights_bytes} (model.json): the file is ${why} or from another export`);
  }
  const digest = sha256Hex(bytes);
  if (digest !== m.weights_sha256) {
    throw new WebFormatError(`${file}: sha256 ${digest.slice(0, 12)}… does not match model.json's ${m.weights_sha256.slice(0, 12)}…: the file is corrupted or from another export`);
  }
  const out = new Map<string, DecodedTensor>();
  for (const t of m.tensors) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (t.offset % 4 !== 0 || t.offset + 4 * count > bytes.length) throw new WebFormatError(`${file}: tensor ${t.name} [${t.shape}] at byte ${t.offset} lies outside the file`);
    // A copy, so the tensor is 4-byte aligned whatever the file buffer's offset (and little-endian on every host we run).
    const raw = bytes.slice(t.offset, t.offset + 4 * count).buffer;
    out.set(t.name, { dtype: t.dtype, shape: t.shape, data: t.dtype === 'float32' ? new Float32Array(raw) : new Int32Array(raw) });
  }
  return out;
}

/** Packs named tensors back to back (4-byte aligned by construction) with their manifest entries. */
export function encodeWeights(tensors: Array<{ name: string; dtype: 'float32' | 'int32'; shape: number[]; data: Float32Array | Int32Array }>): { bytes: Uint8Array; entries: WebTensor[] } {
  const total = tensors.reduce((n, t) => n + 4 * t.data.length, 0);
  const bytes = new Uint8Array(total);
  const entries: WebTensor[] = [];
  let offset = 0;
  for (const t of tensors) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new Error(`encodeWeights: ${t.name} has ${t.data.length} values for shape [${t.shape}]`);
    bytes.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), offset);
    entries.push({ name: t.name, dtype: t.dtype, shape: [...t.shape], offset });
    offset += 4 * count;
  }
  return { bytes, entries };
}

export function base64ToBytes(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

// SHA-256 in plain JS: crypto.subtle exists only in secure contexts (https, localhost), and the page must
// check its weights from any static host, plain http included.
const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
  0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
  0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
  0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

export function sha256Hex(data: Uint8Array): string {
  const h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const len = data.length;
  const padded = new Uint8Array(Math.ceil((len + 9) / 64) * 64);
  padded.set(data);
  padded[len] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, Math.floor(len / 0x20000000));
  view.setUint32(padded.length - 4, (len << 3) >>> 0);
  const w = new Uint32Array(64);
  const rotr = (x: number, n: number) => (x >>> n) | (x << (32 - n));
  for (let off = 0; off < padded.length; off += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(off + 4 * i);
    for (let i = 16; i < 64; i++) {
      const a = w[i - 15]!;
      const b = w[i - 2]!;
      const s0 = rotr(a, 7) ^ rotr(a, 18) ^ (a >>> 3);
      const s1 = rotr(b, 17) ^ rotr(b, 19) ^ (b >>> 10);
      w[i] = (w[i - 16]! + s0 + w[i - 7]! + s1) >>> 0;
    }
    let [a, b, c, d, e, f, g, hh] = Array.from(h);
    for (let i = 0; i < 64; i++) {
      const t1 = (hh! + (rotr(e!, 6) ^ rotr(e!, 11) ^ rotr(e!, 25)) + ((e! & f!) ^ (~e! & g!)) + K[i]! + w[i]!) >>> 0;
      const t2 = ((rotr(a!, 2) ^ rotr(a!, 13) ^ rotr(a!, 22)) + ((a! & b!) ^ (a! & c!) ^ (b! & c!))) >>> 0;
      hh = g;
      g = f;
      f = e;
      e = (d! + t1) >>> 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) >>> 0;
    }
    h[0] = h[0]! + a!;
    h[1] = h[1]! + b!;
    h[2] = h[2]! + c!;
    h[3] = h[3]! + d!;
    h[4] = h[4]! + e!;
    h[5] = h[5]! + f!;
    h[6] = h[6]! + g!;
    h[7] = h[7]! + hh!;
  }
  return Array.from(h, (x) => x.toString(16).padStart(8, '0')).join('');
}
