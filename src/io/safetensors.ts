// The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian unsigned
// header length N, N bytes of JSON header, then the tensors' raw little-endian bytes back to back.
// The header maps each tensor name to {dtype, shape, data_offsets: [begin, end]} (offsets into the byte
// buffer after the header) and may hold "__metadata__", a map of string to string.
import { littleEndianBytes } from './checkpoint.js';

export type SafetensorsDtype = 'F32' | 'I32';

export interface SafetensorsTensor {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  data: Float32Array | Int32Array;
}



/**
 * Encodes tensors (in the given order, contiguous, no gaps: what the reference loader requires) and string
 * metadata as one safetensors file. The header is padded with spaces to a multiple of 8 bytes so every
 * tensor starts 8-byte aligned, as the reference writer does.
 */
export function encodeSafetensors(tensors: SafetensorsTensor[], metadata: Record<string, string> = {}): Buffer {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  const seen = new Set<string>();
  for (const t of tensors) {
    if (t.name === '__metadata__' || seen.has(t.name)) throw new Error(`encodeSafetensors: duplicate or reserved tensor name '${t.name}'`);
    seen.add(t.name);
    const n = t.shape.reduce((a, b) => a * b, 1);
    const want = t.dtype === 'F32' ? Float32Array : Int32Array;
    if (!(t.data instanceof want) || t.data.length !== n) {
      throw new Error(`encodeSafetensors: tensor '${t.name}' [${t.shape}] ${t.dtype} has ${t.data.length} values of ${t.data.constructor.name}`);
    }
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const out = Buffer.alloc(8 + json.length + offset);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  let at = 8 + json.length;
  for (const t of tensors) {
    out.set(littleEndianBytes(t.data), at);
    at += t.data.byteLength;
  }
  return out;
}
