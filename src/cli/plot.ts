// `flow plot density`: a 2-D model's learned density as a heatmap beside the data and model samples.
// `flow plot curves`: train and test loss (and the learning rate) against step from the run's metrics log.
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { resolveRun, describeRun, displayPath, CHECKPOINT_HELP } from '../io/run.js';
import { loadModel } from '../io/model-io.js';
import { loadDataset } from '../data/index.js';
import { densityGrid, densityFigure, sampleVectors, squareDomain } from '../views/density.js';
import { readMetrics, trainingCurves, writeChart, type Domain } from '../plot/index.js';
import { parseIntOption, parseNumberOption, printJson, run, withBackend, BACKEND_HELP, defaultBackend } from './common.js';
import { UserError, EXIT } from '../errors.js';

export interface DensityFlags {
  run?: string;
  checkpoint?: string;
  out?: string;
  grid: number;
  samples: number;
  temperature: number;
  range?: string;
  log?: boolean;
  seed: number;
  backend?: string;
  json?: boolean;
  quiet?: boolean;
}

export interface CurvesFlags {
  run?: string;
  out?: string;
  logX?: boolean;
  json?: boolean;
  quiet?: boolean;
}

export function register(program: Command): void {
  const plot = program.command('plot').description('figures of a run: density (2-D models) or curves (training curves)');
  plot
    .command('density')
    .description("a 2-D model's learned density p(x) on a grid as a heatmap, beside the training data and model samples; prints the grid integral of p (about 1)")
    .option('--run <dir>', 'run directory (or one checkpoint directory); default <runs>/latest')
    .option('--checkpoint <which>', CHECKPOINT_HELP)
    .option('--out <file>', 'PNG (or .svg) to write (default <run>/density-step<step>.png)')
    .option('--grid <n>', 'grid cells per side', parseIntOption('--grid', 2), 200)
    .option('--samples <n>', 'model samples to draw', parseIntOption('--samples', 1), 2000)
    .option('--temperature <t>', 'sampling temperature', parseNumberOption('--temperature', 0), 1)
    .option('--range <x0,x1,y0,y1>', "plotting domain (default: the data's bounding box, padded and squared)")
    .option('--log', 'colour by log p(x) (down to 10 nats below the peak) instead of p(x)')
    .option('--seed <s>', 'sample noise seed', parseIntOption('--seed', 0), 0)
    .option('--backend <name>', BACKEND_HELP, defaultBackend())
    .option('--json', 'print what was written (and the integral) as one JSON object')
    .option('--quiet', 'print nothing on success')
    .action(run((flags: DensityFlags) => densityCommand(flags)));
  plot
    .command('curves')
    .description("train and test loss (bits/dim, or nats/dim for vector data) and the learning rate against step, from <run>/metrics.ndjson")
    .option('--run <dir>', 'run directory; default <runs>/latest')
    .option('--out <file>', 'PNG (or .svg) to write (default <run>/curves.png)')
    .option('--log-x', 'logarithmic step axis')
    .option('--json', 'print what was written as one JSON object')
    .option('--quiet', 'print nothing on success')
    .action(run((flags: CurvesFlags) => curvesCommand(flags)));
}

function parseRange(value: string): Domain {
  const v = value.split(',').map((s) => Number(s.trim()));
  if (v.length !== 4 || v.some((x) => !Number.isFinite(x)) || !(v[0]! < v[1]!) || !(v[2]! < v[3]!)) {
    throw new UserError(`--range ${value}: expected x0,x1,y0,y1 with x0 < x1 and y0 < y1`);
  }
  return { x0: v[0]!, x1: v[1]!, y0: v[2]!, y1: v[3]! };
}

export async function densityCommand(flags: DensityFlags): Promise<number> {
  const domainFlag = flags.range !== undefined ? parseRange(flags.range) : undefined;
  const resolved = resolveRun(flags.run, { checkpoint: flags.checkpoint });
  const { runDir, checkpoint } = resolved;
  const { model, config, meta, step } = await withBackend({ backend: flags.backend, quiet: flags.quiet || flags.json }, () => loadModel(checkpoint));
  try {
    if (meta.dataKind !== 'vector' || meta.dataShape[0] !== 2) {
      throw new UserError(`${runDir}: 'flow plot density' draws 2-D densities; this run models ${meta.dataKind === 'image' ? `[${meta.dataShape}] images` : `${meta.dataShape[0]}-d vectors`}`);
    }
    if (meta.numClasses) throw new UserError(`${runDir}: 'flow plot density' draws unconditional 2-D models; this one is class-conditional`);
    const data = await loadDataset(config.data, { seed: config.seed });
    if (data.shape.join('x') !== '2') throw new UserError(`${runDir}: the data now has shape [${data.shape}] but the model was trained on [2]`);
    const points = data.train.x as Float32Array;
    const domain = domainFlag ?? squareDomain(points);
    const density = await densityGrid(model, domain, flags.grid, flags.grid);
    const samples = await sampleVectors(model, flags.samples, flags.temperature, flags.seed);
    const title = `${data.name}: ${config.model.family} (step ${step})`;
    const svg = densityFigure(points, density, samples, domain, { title, log: flags.log });
    const out = flags.out ?? path.join(runDir, `density-step${step}.png`);
    fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
    await writeChart(out, svg);
    const summary = { file: out, run_dir: runDir, checkpoint, step, integral: density.integral, grid: flags.grid, domain, samples: flags.samples };
    if (flags.json) printJson(summary);
    else if (!flags.quiet) {
      const d = domain;
      const f = (v: number) => Number(v.toPrecision(3));
      process.stdout.write(`wrote the density of ${describeRun(resolved)} to ${out}; integral of p over [${f(d.x0)}, ${f(d.x1)}] x [${f(d.y0)}, ${f(d.y1)}] = ${density.integral.toFixed(4)}\n`);
    }
    return EXIT.OK;
  } finally {
    model.dispose();
  }
}

/** The run directory a curves plot reads: --run DIR (a checkpoint directory means its run), else <runs>/latest. No checkpoint needed. */
function curvesRunDir(runFlag: string | undefined): string {
  let dir = runFlag ?? path.join('runs', 'latest');
  if (!fs.existsSync(dir)) throw new UserError(runFlag ? `--run ${runFlag}: no such run directory` : `no run found at ${dir}; train one first (flow train config.yaml) or pass --run DIR`);
  if (fs.existsSync(path.join(dir, 'manifest.json'))) dir = path.dirname(path.dirname(dir));
  return fs.realpathSync(dir);
}

export async function curvesCommand(flags: CurvesFlags): Promise<number> {
  const runDir = curvesRunDir(flags.run);
  const metricsFile = path.join(runDir, 'metrics.ndjson');
  if (!fs.existsSync(metricsFile)) throw new UserError(`${runDir}: no metrics.ndjson; expected a run directory written by flow train`);
  const metrics = readMetrics(metricsFile);
  const svg = trainingCurves(metrics, { title: `training curves: ${path.basename(runDir)}`, logX: flags.logX });
  const out = flags.out ?? path.join(runDir, 'curves.png');
  fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
  await writeChart(out, svg);
  const last = Object.fromEntries(
    Object.entries(metrics)
      .filter(([k]) => /^(train|test)_|^lr$/.test(k))
      .map(([k, pts]) => [k, { step: pts[pts.length - 1]![0], value: pts[pts.length - 1]![1], points: pts.length }]),
  );
  if (flags.json) printJson({ file: out, run_dir: runDir, series: last });
  else if (!flags.quiet) {
    const desc = Object.entries(last)
      .filter(([k]) => k !== 'lr')
      .map(([k, v]) => `${k} ${v.value.toFixed(4)} at step ${v.step}`)
      .join(', ');
    process.stdout.write(`wrote training curves of ${flags.run === undefined ? 'runs/latest -> ' : ''}${displayPath(runDir)} to ${out}${desc ? ` (last: ${desc})` : ''}\n`);
  }
  return EXIT.OK;
}
