// The `flow` command line: parse flags, call the library, print. Exit codes (README):
// 0 success, 1 failure, 2 bad input, 130/143 interrupted by SIGINT/SIGTERM after a checkpoint.
import { Command, CommanderError, Option } from 'commander';
import { VERSION } from '../version.js';
import { UserError, EXIT } from '../errors.js';
import { parseIntOption, parseNumberOption, parseThreads, collect, run, BACKEND_HELP, defaultBackend } from './common.js';
import { trainCommand } from './train.js';
import { sampleCommand } from './sample.js';
import { evalCommand } from './eval.js';
import { doctorCommand } from './doctor.js';
import { mergeCommand } from './merge.js';
import { exportEntry } from './export-web.js';
import { register as registerCheck } from './check.js';
import { register as registerReconstruct } from './reconstruct.js';
import { register as registerInterpolate } from './interpolate.js';
import { register as registerPlot } from './plot.js';
import { register as registerOod } from './ood.js';
import { register as registerCompress } from './compress.js';
import { CHECKPOINT_HELP } from '../io/run.js';

const verbose = process.argv.includes('--verbose');

// Test and calibration hook: FLOW_REPORT_PEAK_RSS=1 prints the process's peak resident memory on stderr at
// exit (what the --dry-run memory estimate is calibrated against; see test/memory-estimate.test.ts).
if (process.env.FLOW_REPORT_PEAK_RSS === '1') {
  process.on('exit', () => process.stderr.write(`peak_rss_bytes: ${process.resourceUsage().maxRSS * 1024}\n`));
}


export function buildProgram(): Command {
  const program = new Command('flow')
    .description('Train, sample and evaluate normalizing flows (Glow, RealNVP, NICE) on TensorFlow.js')
    .version(VERSION)
    .option('--verbose', 'print stack traces of errors')
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(`flow: ${str.replace(/^error: /, '')}`) })
    .showHelpAfterError('(run flow --help for usage)');

  program
    .command('train')
    .description('train a model from a YAML config; checkpoints go to <runs_dir>/<name>/')
    .argument('<config>', 'YAML config file (see configs/ and the README config reference)')
    .option('--set <key=value>', 'override a config value, e.g. --set model.depth=16 (repeatable)', collect, [])
    .option('--resume', 'continue from the run\'s last checkpoint (the default when one exists; with this flag it is an error when none does)')
    .option('--fresh', 'start at step 0 even if the run has checkpoints (they are moved to <run>/archive/)')
    .option('--max-steps <n>', 'stop after this many steps (sets train.max_steps)', parseIntOption('--max-steps', 0))
    .option('--max-minutes <m>', 'stop after this many minutes (sets train.max_minutes)', parseNumberOption('--max-minutes', 0))
    .option('--backend <name>', 'auto | tensorflow | webgpu | wasm | cpu (sets backend)')
    .option('--name <name>', 'run name (sets name)')
    .option('--dry-run', 'validate config and data, build the model, print its size and memory estimate, then exit')
    .option('--json', 'print the final summary as one JSON object')
    .addOption(new Option('--log-format <fmt>', 'progress output: auto (bar on a TTY, NDJSON otherwise), json, text').choices(['auto', 'json', 'text']).default('auto'))
    .option('--quiet', 'no progress output')
    .action(run((config: string, flags) => trainCommand(config, flags)));

  program
    .command('sample')
    .description('draw samples from a trained model into a PNG grid (or one PNG per sample)')
    .option('--n <n>', 'number of samples', parseIntOption('--n', 1), 64)
    .option('--temperature <t>', 'prior temperature, or a comma-separated list for one grid row per temperature (default: the run\'s sample.temperature)')
    .option('--seed <s>', 'noise seed: the same seed gives the same pixels on the same backend', parseIntOption('--seed', 0), 0)
    .option('--run <dir>', 'run directory (or one checkpoint directory); default <runs>/latest')
    .option('--checkpoint <which>', CHECKPOINT_HELP)
    .option('--out <file.png>', 'write one grid image here (.png, or .jpg/.jpeg)')
    .option('--out-dir <dir>', 'write one PNG per sample into this directory')
    .option('--no-labels', 'a bare grid: no caption strip (run, step, seed, temperature) and no row labels')
    .option('--class <k>', 'class to sample (class-conditional models)', parseIntOption('--class', 0))
    .option('--backend <name>', BACKEND_HELP, defaultBackend())
    .option('--shard <i/n>', 'draw only samples i, i+n, ... (one PNG each in --out-dir, plus a part file for flow merge)')
    .option('--threads <n|auto>', 'threads sharing every batch (wasm/cpu backends; each holds a copy of the model); auto: the cores the load average leaves free, 1 for under 500 images', parseThreads, 'auto')
    .option('--weights <which>', "average (the run's Polyak-averaged weights when train.average_decay > 0; the default) or raw (the last step's)")
    .option('--json', 'print what was written as one JSON object')
    .option('--quiet', 'print nothing on success')
    .action(run((flags) => sampleCommand(flags)));

  program
    .command('eval')
    .description('evaluate a trained model: exact bits per dimension of a data split')
    .option('--bpd', 'mean bits/dim over the split, with its standard error')
    .option('--split <split>', 'test or train', 'test')
    .option('--run <dir>', 'run directory (or one checkpoint directory); default <runs>/latest')
    .option('--checkpoint <which>', CHECKPOINT_HELP)
    .option('--per-example <file.csv>', 'write every example\'s bpd and log p(x) to a CSV')
    .option('--batch-size <n>', 'examples per forward pass', parseIntOption('--batch-size', 1), 256)
    .option('--seed <s>', 'dequantisation-noise seed (default: the run\'s seed)', parseIntOption('--seed', 0))
    .option('--limit <n>', 'evaluate only the first n examples of the split (0 = all, as for flow ood and data.limit)', parseIntOption('--limit', 0))
    .option('--backend <name>', BACKEND_HELP, defaultBackend())
    .option('--shard <i/n>', 'evaluate only examples i, i+n, ... and write a part file (--out) for flow merge')
    .option('--threads <n|auto>', 'threads sharing every batch (wasm/cpu backends; each holds a copy of the model); auto: the cores the load average leaves free, 1 for under 500 images', parseThreads, 'auto')
    .option('--weights <which>', "average (the run's Polyak-averaged weights when train.average_decay > 0; the default) or raw (the last step's)")
    .option('--out <file>', 'with --shard: where to write the part file; with --points: the output CSV')
    .option('--points <in.csv>', 'score every row of a CSV under a vector (2-D / tabular) model: writes its columns plus log_prob_nats to --out')
    .option('--json', 'print one JSON object (bpd, stderr, n, split, ...)')
    .option('--quiet', 'no backend line')
    .action(run((flags) => evalCommand(flags)));

  program
    .command('doctor')
    .description('report Node, tfjs, backends, GPU, CUDA/cuDNN libraries and wasm SIMD support')
    .option('--require-gpu', 'exit 1 unless TensorFlow can use a GPU')
    .option('--json', 'print the report as one JSON object')
    .action(run((flags) => doctorCommand(flags)));

  program
    .command('merge')
    .description('combine the part files of a sharded eval (--shard i/n --out part.json) or sample into one result')
    .argument('<parts...>', 'part files written by the shards')
    .requiredOption('--out <result>', 'eval: result.json or result.csv; sample: grid.png or a directory')
    .option('--no-labels', 'sample grid: no caption strip, as flow sample --no-labels')
    .option('--json', 'print the merged summary as one JSON object')
    .action(run((parts: string[], flags) => mergeCommand(parts, flags)));

  program
    .command('export')
    .description("write a trained model's weights for other tools (--format safetensors: PyTorch, JAX, NumPy), or the model as a static web page (--web DIR)")
    .argument('[run]', 'run directory (or one checkpoint directory), e.g. runs/latest; with --web, runs/latest when omitted')
    .argument('[out]', 'output file, e.g. model.safetensors')
    .option('--format <fmt>', 'safetensors: every model tensor by name, little-endian, with the config, step and checkpoint sha256 in __metadata__')
    .option('--web <dir>', 'write a self-contained static page (index.html, the JS, the weights, test images) that samples, interpolates and scores in the browser')
    .option('--run <dir>', 'with --web: the run to export (default runs/latest)')
    .option('--ood <file.json>', 'with --web: a `flow ood --json` result whose typicality calibration the page applies (default: RUN/ood.json when present)')
    .option('--images <n>', 'with --web: test images embedded in the page', parseIntOption('--images', 0), 8)
    .option('--weights <which>', "average (the run's Polyak-averaged weights when train.average_decay > 0; the default) or raw (the last step's)")
    .option('--backend <name>', BACKEND_HELP, defaultBackend())
    .option('--json', 'print what was written as one JSON object')
    .option('--quiet', 'print nothing on success')
    .action(run((runDir: string | undefined, out: string | undefined, flags) => exportEntry(runDir, out, flags)));

  registerCheck(program);
  registerReconstruct(program);
  registerInterpolate(program);
  registerPlot(program);
  registerOod(program);
  registerCompress(program);
  return program;
}

async function main(): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    process.exitCode = report(err);
  }
}

function report(err: unknown): number {
  if (err instanceof CommanderError) {
    // --help and --version "fail" with code 0; usage errors are bad input.
    return err.exitCode === 0 ? EXIT.OK : EXIT.BAD_INPUT;
  }
  if (err instanceof UserError) {
    process.stderr.write(`flow: ${err.message}\n`);
    if (verbose && err.stack) process.stderr.write(err.stack + '\n');
    return err.exitCode;
  }
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'ENOSPC') {
    process.stderr.write(`flow: disk full: ${e.message}\n`);
    return EXIT.FAILURE;
  }
  process.stderr.write(`flow: internal error: ${e?.message ?? String(err)}${verbose ? '' : ' (run with --verbose for the stack trace)'}\n`);
  if (verbose && e?.stack) process.stderr.write(e.stack + '\n');
  return EXIT.FAILURE;
}

await main();
