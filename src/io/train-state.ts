// The trainer's state.json (everything besides tensors that an exact resume needs), validated with zod on
// read: a damaged or foreign state.json gets one line naming the file, the field and what was expected,
// never a resume with holes in it.
import { z } from 'zod';
import { join } from 'node:path';
import { UserError } from '../errors.js';

const count = z.number().int().nonnegative();
const uint32 = count.max(0xffffffff);

/** What a checkpoint must know about the data to rebuild the model without loading the data. */
export const ModelMetaSchema = z.object({
  dataShape: z.array(z.number().int().positive()).min(1),
  dataKind: z.enum(['image', 'vector']),
  numClasses: z.number().int().positive().optional(),
  classNames: z.array(z.string()).optional(),
  nBits: z.number().int().min(1).max(8),
});

/** data/preprocess.ts BatchIterator's state: the data order to continue with. */
export const IteratorStateSchema = z.object({ epoch: count, cursor: count, rngState: uint32, n: count.optional() });

export const TrainStateSchema = z.object({
  meta: ModelMetaSchema,
  step: count,
  optimizerT: count,
  iterator: IteratorStateSchema,
  noiseRng: uint32,
  lrScale: z.number().positive(),
  /** null until a test loss was measured (and where it was not finite: JSON has no NaN). */
  bestTest: z.number().nullable(),
  // Checkpoints written before the skip counter existed lack it.
  skippedSteps: count.default(0),
});

export type TrainState = z.infer<typeof TrainStateSchema>;

/** One line: the file, the first offending field and what was expected. */
function invalid(dir: string, error: z.ZodError, what: string): UserError {
  const issue = error.issues[0]!;
  const field = issue.path.length ? `field '${issue.path.join('.')}'` : 'the content';
  const why = issue.message.replace(/^Invalid input: /, '');
  return new UserError(`${join(dir, 'state.json')}: ${field} is invalid (${why}); expected ${what} written by flow train`);
}

/** The checkpoint's training state, for resuming; UserError (exit 2) when state.json is not one. */
export function parseTrainState(state: unknown, dir: string): TrainState {
  const r = TrainStateSchema.safeParse(state);
  if (!r.success) throw invalid(dir, r.error, 'the training state of a checkpoint');
  return r.data;
}

/** Only the model meta (what sample/eval need); UserError when it is missing or malformed. */
export function parseModelMeta(state: unknown, dir: string): z.infer<typeof ModelMetaSchema> {
  const r = z.object({ meta: ModelMetaSchema }).safeParse(state);
  if (!r.success) throw invalid(dir, r.error, 'a model meta (data shape, kind, classes, bits)');
  return r.data.meta;
}
