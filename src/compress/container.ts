// The `flow compress` file format (.flowz). Layout, all integers little-endian:
//   "FLOWZ" (5 bytes) | format version (u8) | header length J (u32) | header JSON (J bytes, UTF-8)
//   | chunk table: per chunk, stream length (u32) and sha256 of the chunk's decoded pixels (32 bytes)
//   | the chunk streams back to back | sha256 of every byte before it (32 bytes).
// The digests are per chunk, not per image: 32 bytes per image would cost ~0.3 bits/dim on 28x28 digits.
// Parsing checks magic, version, length and the trailing sha256 before trusting any field, so a torn or
// bit-flipped file is refused with one line naming it, never decoded into wrong pixels.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { UserError } from '../errors.js';

export const MAGIC = Buffer.from('FLOWZ', 'latin1');
export const FORMAT_VERSION = 1;
/** magic + version byte + header length. */
const PREFIX_BYTES = MAGIC.length + 1 + 4;
const DIGEST_BYTES = 32;
const TABLE_ENTRY_BYTES = 4 + DIGEST_BYTES;

/** A run of global image indices: start, start+stride, ..., count of them (a shard i/n is one run). */
export type IndexRun = [start: number, stride: number, count: number];

export interface ContainerHeader {
  format: number;
  tool: string;
  tool_version: string;
  /** checkpointDigest of the checkpoint that coded it: decompress refuses any other. */
  checkpoint_sha256: string;
  /** Informational: where it was compressed. */
  run_dir: string;
  checkpoint: string;
  step: number;
  weights: 'average' | 'raw';
  /** tf backend name the chunks were coded on, and the codec's fingerprint of its arithmetic there. */
  backend: string;
  fingerprint: string;
  image_shape: [number, number, number];
  /** Images in this file. */
  count: number;
  chunk_size: number;
  /** The shard this file holds (null: not sharded) and the images in the whole (unsharded) input. */
  shard: { index: number; count: number } | null;
  total: number;
  /** Global index of every image in file order, as runs. */
  indices: IndexRun[];
  /** Per-image names (folder inputs), restored by decompress; absent for data specs. */
  names?: Array<string | null>;
  /** Informational: what was compressed (specs and paths as given). */
  inputs: string[];
}

export interface ContainerChunk {
  bytes: Uint8Array;
  /** sha256 of the chunk's pixels (what decoding must give back). */
  pixelSha256: Uint8Array;
}

export interface Container {
  header: ContainerHeader;
  chunks: ContainerChunk[];
}

const nat = z.number().int().min(0);
const pos = z.number().int().min(1);
const hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex digits');

const HeaderSchema = z.object({
  format: z.literal(FORMAT_VERSION),
  tool: z.string(),
  tool_version: z.string(),
  checkpoint_sha256: hex64,
  run_dir: z.string(),
  checkpoint: z.string(),
  step: nat,
  weights: z.enum(['average', 'raw']),
  backend: z.string().min(1),
  fingerprint: z.string().min(1),
  image_shape: z.tuple([pos, pos, pos]),
  count: nat,
  chunk_size: pos,
  shard: z.object({ index: nat, count: pos }).nullable(),
  total: nat,
  indices: z.array(z.tuple([nat, pos, nat])),
  names: z.array(z.string().min(1).nullable()).optional(),
  inputs: z.array(z.string()),
});

export function chunkCount(count: number, chunkSize: number): number {
  return Math.ceil(count / chunkSize);
}

/** The global indices a header's runs name, in file order. */
export function expandIndices(runs: readonly IndexRun[]): number[] {
  const out: number[] = [];
  for (const [start, stride, count] of runs) for (let k = 0; k < count; k++) out.push(start + k * stride);
  return out;
}

/** Compresses an increasing (or any) index list into runs of constant stride. */
export function indexRuns(indices: readonly number[]): IndexRun[] {
  const runs: IndexRun[] = [];
  let i = 0;
  while (i < indices.length) {
    const start = indices[i]!;
    const stride = i + 1 < indices.length && indices[i + 1]! > start ? indices[i + 1]! - start : 1;
    let count = 1;
    while (i + count < indices.length && indices[i + count]! === start + count * stride) count++;
    runs.push([start, stride, count]);
    i += count;
  }
  return runs;
}

export function sha256(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(data).digest());
}

/** The file's bytes. Throws (a programming error, not bad input) when chunks and header disagree. */
export function encodeContainer(c: Container): Uint8Array {
  const { header, chunks } = c;
  if (chunks.length !== chunkCount(header.count, header.chunk_size)) {
    throw new Error(`encodeContainer: ${chunks.length} chunks for ${header.count} images in chunks of ${header.chunk_size}`);
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const streams = chunks.reduce((s, ch) => s + ch.bytes.byteLength, 0);
  const total = PREFIX_BYTES + json.length + chunks.length * TABLE_ENTRY_BYTES + streams + DIGEST_BYTES;
  const out = Buffer.alloc(total);
  MAGIC.copy(out, 0);
  out.writeUInt8(FORMAT_VERSION, MAGIC.length);
  out.writeUInt32LE(json.length, MAGIC.length + 1);
  let off = PREFIX_BYTES;
  off += json.copy(out, off);
  for (const ch of chunks) {
    if (ch.pixelSha256.byteLength !== DIGEST_BYTES) throw new Error('encodeContainer: a chunk digest is not 32 bytes');
    out.writeUInt32LE(ch.bytes.byteLength, off);
    out.set(ch.pixelSha256, off + 4);
    off += TABLE_ENTRY_BYTES;
  }
  for (const ch of chunks) {
    out.set(ch.bytes, off);
    off += ch.bytes.byteLength;
  }
  out.set(sha256(out.subarray(0, off)), off);
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

interface Layout {
  header: ContainerHeader;
  tableAt: number;
  /** Size the header and chunk table say the file has. */
  size: number;
  lengths: number[];
}

/** Reads header and chunk table; a reason when they are unreadable (cut short or garbled). */
function readLayout(buf: Buffer, jsonLength: number): Layout | string {
  const jsonEnd = PREFIX_BYTES + jsonLength;
  if (buf.length < jsonEnd) return `its header says ${jsonLength} header bytes but the file ends after ${buf.length - PREFIX_BYTES}`;
  let raw: unknown;
  try {
    raw = JSON.parse(buf.subarray(PREFIX_BYTES, jsonEnd).toString('utf8'));
  } catch {
    return 'its header is not valid JSON';
  }
  const parsed = HeaderSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return `its header field ${issue.path.length ? issue.path.join('.') : '(top level)'} is invalid: ${issue.message}`;
  }
  const header = parsed.data as ContainerHeader;
  const k = chunkCount(header.count, header.chunk_size);
  const tableEnd = jsonEnd + k * TABLE_ENTRY_BYTES;
  if (buf.length < tableEnd + DIGEST_BYTES) return `its header lists ${k} chunks whose table ends at byte ${tableEnd} but the file has ${buf.length} bytes`;
  const lengths: number[] = [];
  for (let i = 0; i < k; i++) lengths.push(buf.readUInt32LE(jsonEnd + i * TABLE_ENTRY_BYTES));
  const size = tableEnd + lengths.reduce((a, b) => a + b, 0) + DIGEST_BYTES;
  return { header, tableAt: jsonEnd, size, lengths };
}

/** Parses and verifies a file's bytes; `file` names it in every error (one line, exit 2). */
export function decodeContainer(bytes: Uint8Array, file: string): Container {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bad = (what: string) => new UserError(`${file}: ${what}`);
  const head = buf.subarray(0, Math.min(buf.length, MAGIC.length));
  if (!MAGIC.subarray(0, head.length).equals(head) || buf.length === 0) {
    throw bad(`not a flow compress file (starts with ${JSON.stringify(head.toString('latin1'))}, expected "FLOWZ"); write one with flow compress`);
  }
  if (buf.length < PREFIX_BYTES) throw bad(`truncated: ${buf.length} bytes, shorter than the ${PREFIX_BYTES}-byte prefix`);
  const version = buf.readUInt8(MAGIC.length);
  if (version !== FORMAT_VERSION) throw bad(`format version ${version}; this flow reads version ${FORMAT_VERSION}`);
  const layout = readLayout(buf, buf.readUInt32LE(MAGIC.length + 1));
  const digestOk = buf.length >= PREFIX_BYTES + DIGEST_BYTES && sha256(buf.subarray(0, buf.length - DIGEST_BYTES)).every((b, i) => b === buf[buf.length - DIGEST_BYTES + i]);
  if (!digestOk) {
    if (typeof layout === 'string') throw bad(`corrupted or truncated: ${layout}, and the trailing sha256 does not match`);
    if (layout.size > buf.length) throw bad(`truncated: ${buf.length} bytes, its header says ${layout.size}`);
    if (layout.size < buf.length) throw bad(`${buf.length - layout.size} bytes longer than its header says (${layout.size}): corrupted or appended to`);
    throw bad('corrupted: the trailing sha256 does not match the content (a changed or damaged file)');
  }
  if (typeof layout === 'string') throw bad(`invalid: ${layout}`);
  if (layout.size !== buf.length) throw bad(`invalid: ${buf.length} bytes, its header says ${layout.size}`);
  const { header, tableAt, lengths } = layout;
  consistency(header, bad);
  const chunks: ContainerChunk[] = [];
  let off = tableAt + lengths.length * TABLE_ENTRY_BYTES;
  lengths.forEach((len, i) => {
    const digestAt = tableAt + i * TABLE_ENTRY_BYTES + 4;
    chunks.push({ bytes: new Uint8Array(buf.subarray(off, off + len)), pixelSha256: new Uint8Array(buf.subarray(digestAt, digestAt + DIGEST_BYTES)) });
    off += len;
  });
  return { header, chunks };
}

/** Fields that must agree with each other (a checksummed file from a buggy or foreign writer). */
function consistency(h: ContainerHeader, bad: (what: string) => UserError): void {
  const listed = h.indices.reduce((s, r) => s + r[2], 0);
  if (listed !== h.count) throw bad(`invalid: its header lists ${listed} image indices for ${h.count} images`);
  if (h.names && h.names.length !== h.count) throw bad(`invalid: its header has ${h.names.length} image names for ${h.count} images`);
  if (h.shard && h.shard.index >= h.shard.count) throw bad(`invalid: shard ${h.shard.index}/${h.shard.count}`);
  const top = h.indices.reduce((m, [start, stride, count]) => (count ? Math.max(m, start + (count - 1) * stride) : m), -1);
  if (top >= h.total) throw bad(`invalid: image index ${top} is beyond the ${h.total} images of the input`);
}
