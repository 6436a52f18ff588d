// PLACEHOLDER on branch cli until main's integer-flow codec lands (merge takes main's file): the
// container and CLI are built against codec-types.ts; this only lets them compile.
import { UserError } from '../errors.js';
import type { LoadedModel } from '../io/model-io.js';
import type { ChunkCodec } from './codec-types.js';

export async function createChunkCodec(_loaded: LoadedModel, _chunkSize: number): Promise<ChunkCodec> {
  throw new UserError('flow compress: the integer-flow codec is not built into this flow yet');
}
