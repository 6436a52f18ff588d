// Static checks of the container images and batch examples (no Docker engine or cluster here):
// what a broken build or a typo in an example flag would get wrong.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const read = (rel: string) => fs.readFileSync(path.join(ROOT, rel), 'utf8');
const pkg = JSON.parse(read('package.json')) as { dependencies: Record<string, string>; optionalDependencies?: Record<string, string>; bin: Record<string, string> };

interface Instruction {
  op: string;
  args: string;
}

/** Dockerfile instructions with continuation lines joined and comments dropped. */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!pending && (line === '' || line.startsWith('#'))) continue;
    if (pending && line.startsWith('#')) continue; // comments inside a continued RUN
    pending += (pending ? ' ' : '') + line.replace(/\\$/, '').trim();
    if (line.endsWith('\\')) continue;
    const m = /^(\S+)\s*(.*)$/.exec(pending)!;
    out.push({ op: m[1]!.toUpperCase(), args: m[2]! });
    pending = '';
  }
  return out;
}

/** Exec-form (JSON array) arguments, or undefined for shell form. */
function execForm(args: string): string[] | undefined {
  if (!args.trim().startsWith('[')) return undefined;
  return JSON.parse(args) as string[];
}

/** The external image each stage is based on, following `FROM <stage>` chains; the last is the final image. */
function stageBases(ins: Instruction[]): string[] {
  const byName = new Map<string, string>();
  const bases: string[] = [];
  for (const { op, args } of ins) {
    if (op !== 'FROM') continue;
    const words = args.split(/\s+/).filter((w) => !w.startsWith('--'));
    const image = byName.get(words[0]!.toLowerCase()) ?? words[0]!;
    if (words[1]?.toUpperCase() === 'AS') byName.set(words[2]!.toLowerCase(), image);
    bases.push(image);
  }
  return bases;
}

/** The final stage's instructions (after the last FROM). */
function finalStage(ins: Instruction[]): Instruction[] {
  const last = ins.map((i) => i.op).lastIndexOf('FROM');
  return ins.slice(last + 1);
}

function dockerignorePatterns(): string[] {
  return read('.dockerignore')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
}

const DOCKERFILES = ['Dockerfile', 'Dockerfile.gpu'];

test('base images: CUDA 11.2 + cuDNN 8 runtime for the GPU image, Node 20 for the CPU image', () => {
  const gpu = stageBases(parseDockerfile(read('Dockerfile.gpu')));
  assert.ok(gpu.length > 0);
  for (const image of gpu) assert.equal(image, 'nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04', 'every GPU stage must sit on CUDA 11.2 + cuDNN 8');
  // Node 20 from NodeSource's node_20.x repository (the CUDA image has no Node).
  assert.match(read('Dockerfile.gpu'), /deb\.nodesource\.com\/node_20\.x/);
  const cpu = stageBases(parseDockerfile(read('Dockerfile')));
  assert.ok(cpu.length > 0);
  for (const image of cpu) assert.match(image, /^node:20(\.\d+)*-bookworm-slim$/);
});

test('every COPY source exists and is not excluded by .dockerignore', () => {
  const ignored = dockerignorePatterns();
  for (const p of ['node_modules', 'dist', 'runs', '.git']) assert.ok(ignored.includes(p), `.dockerignore should list ${p}`);
  for (const file of DOCKERFILES) {
    const copies = parseDockerfile(read(file)).filter((i) => i.op === 'COPY' || i.op === 'ADD');
    assert.ok(copies.length > 0, `${file} copies nothing`);
    for (const { args } of copies) {
      if (/--from=/.test(args)) continue; // from another stage, not the build context
      const words = execForm(args) ?? args.split(/\s+/).filter((w) => !w.startsWith('--'));
      for (const src of words.slice(0, -1)) {
        assert.ok(fs.existsSync(path.join(ROOT, src)), `${file}: COPY source ${src} does not exist`);
        const top = src.replace(/^\.\//, '').split('/')[0]!;
        assert.ok(!ignored.includes(top), `${file}: COPY ${src} is excluded by .dockerignore`);
      }
    }
  }
});

test('ENTRYPOINT is ["flow"], linked onto PATH from bin/flow, which exists and is executable', () => {
  assert.equal(pkg.bin.flow, 'bin/flow');
  const mode = fs.statSync(path.join(ROOT, 'bin', 'flow')).mode;
  assert.ok(mode & 0o111, 'bin/flow is not executable');
  assert.match(read('bin/flow'), /^#!\/usr\/bin\/env node/);
  for (const file of DOCKERFILES) {
    const ins = parseDockerfile(read(file));
    const entry = ins.filter((i) => i.op === 'ENTRYPOINT').at(-1);
    assert.deepEqual(execForm(entry?.args ?? ''), ['flow'], `${file}: ENTRYPOINT`);
    assert.match(read(file), /ln -s \/opt\/flow\/bin\/flow \/usr\/local\/bin\/flow/, `${file}: flow is not put on PATH`);
    assert.deepEqual(execForm(ins.filter((i) => i.op === 'CMD').at(-1)?.args ?? ''), ['doctor'], `${file}: default CMD`);
    assert.ok(ins.some((i) => i.op === 'RUN' && /\bnpm ci\b/.test(i.args)), `${file}: no npm ci`);
    const final = finalStage(ins);
    const user = final.filter((i) => i.op === 'USER').at(-1)?.args.trim();
    assert.ok(user && !['root', '0', '0:0'].includes(user), `${file}: the image must run as a non-root user (USER ${user})`);
    assert.equal(final.filter((i) => i.op === 'WORKDIR').at(-1)?.args.trim(), '/work', `${file}: WORKDIR`);
  }
});

test('the GPU image runs Dawn on Vulkan too: the loader, the graphics capability, the linux-x64 dawn.node', () => {
  const ins = parseDockerfile(read('Dockerfile.gpu'));
  const runs = ins.filter((i) => i.op === 'RUN').map((i) => i.args).join('\n');
  assert.match(runs, /apt-get install[^\n]*\blibvulkan1\b/, 'no Vulkan loader (libvulkan1)');
  const env = ins.filter((i) => i.op === 'ENV').map((i) => i.args).join(' ');
  const caps = /NVIDIA_DRIVER_CAPABILITIES=(\S+)/.exec(env)?.[1]?.split(',') ?? [];
  for (const cap of ['compute', 'utility', 'graphics']) assert.ok(caps.includes(cap), `NVIDIA_DRIVER_CAPABILITIES lacks ${cap}: ${caps.join(',')}`);
  assert.match(runs, /ls node_modules\/webgpu\/dist\/linux-x64\/dawn\.node/, 'the build does not check that dawn.node for linux-x64 is there');
  assert.ok(pkg.dependencies.webgpu, 'webgpu is a dependency, so npm ci installs it');
  assert.equal(pkg.dependencies['@tensorflow/tfjs-backend-webgpu'], pkg.dependencies['@tensorflow/tfjs-core']);
});

test('the GPU image health check runs `flow doctor --require-gpu`', () => {
  const hc = parseDockerfile(read('Dockerfile.gpu')).filter((i) => i.op === 'HEALTHCHECK');
  assert.equal(hc.length, 1);
  const cmd = /\bCMD\s+(.*)$/.exec(hc[0]!.args)?.[1];
  assert.ok(cmd, 'HEALTHCHECK has no CMD');
  const argv = execForm(cmd) ?? cmd.split(/\s+/);
  assert.deepEqual(argv, ['flow', 'doctor', '--require-gpu']);
});

test('the GPU image installs tfjs-node-gpu at the pinned tfjs-core version', () => {
  const pinned = pkg.dependencies['@tensorflow/tfjs-core'];
  assert.match(pinned ?? '', /^\d+\.\d+\.\d+$/, 'tfjs-core should be pinned to an exact version');
  assert.equal(pkg.optionalDependencies?.['@tensorflow/tfjs-node-gpu'], pinned);
  const text = read('Dockerfile.gpu');
  const versions = [...text.matchAll(/@tensorflow\/tfjs-node-gpu@(\S+)/g)].map((m) => m[1]);
  assert.ok(versions.length > 0, 'Dockerfile.gpu does not install @tensorflow/tfjs-node-gpu@<version>');
  for (const v of versions) assert.equal(v, pinned);
  const run = parseDockerfile(text).find((i) => i.op === 'RUN' && i.args.includes('tfjs-node-gpu@'));
  assert.match(run!.args, /npm ci .*npm install --no-save @tensorflow\/tfjs-node-gpu@/);
});

// ---------------------------------------------------------------------------------------------
// Examples: the YAML parses, and every flow command they run uses only documented subcommands and flags.

const FLAGS: Record<string, string[]> = {
  train: ['--max-steps', '--max-minutes', '--dry-run', '--json'],
  sample: ['--n', '--seed', '--run', '--out', '--out-dir', '--shard', '--json'],
  eval: ['--bpd', '--split', '--run', '--per-example', '--json', '--shard', '--out'],
  merge: ['--out', '--json'],
  doctor: ['--require-gpu', '--json'],
};

function exampleFiles(dir = path.join(ROOT, 'examples')): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? exampleFiles(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

/** argv of every `flow ...` / `npx flow ...` in shell text (continuations joined; stops at ; && | > #). */
function flowCommandsInShell(text: string): string[][] {
  const joined = text.replace(/\\\n/g, ' ');
  const found: string[][] = [];
  for (const line of joined.split('\n')) {
    const words = line.trim().replace(/^#.*$/, '').split(/\s+/).filter(Boolean);
    for (let i = 0; i < words.length; i++) {
      const w = words[i]!.replace(/^["'(]+/, '');
      if (w !== 'flow' || !(i === 0 || ['npx', '&&', ';', '|', '"', "'", 'exec', '--wrap'].includes(words[i - 1]!) || /^["']/.test(words[i]!))) continue;
      const argv: string[] = [];
      for (const word of words.slice(i + 1)) {
        if (/^(;|&&|\|\||\||>|2>|#)/.test(word)) break;
        argv.push(word.replace(/^["']+|["';]+$/g, ''));
        if (/["']$/.test(word) && !/^["']/.test(word)) break; // end of a quoted --wrap "..." command
      }
      found.push(argv);
    }
  }
  return found;
}

/** Commands of Kubernetes containers: exec form with command ["flow"], or a shell script. */
function flowCommandsInPodSpec(spec: { containers?: Array<{ command?: string[]; args?: string[] }> }): string[][] {
  const found: string[][] = [];
  for (const c of spec.containers ?? []) {
    const command = c.command ?? ['flow']; // the image's ENTRYPOINT is flow
    if (command[0] === 'flow') found.push([...command.slice(1), ...(c.args ?? [])]);
    else if (/sh$/.test(command[0]!) && command.includes('-c')) {
      const script = [...command.slice(command.indexOf('-c') + 1), ...(c.args ?? [])].join('\n');
      found.push(...flowCommandsInShell(script));
    }
  }
  return found;
}

function checkArgv(argv: string[], where: string): void {
  const sub = argv[0];
  assert.ok(sub && sub in FLAGS, `${where}: unknown flow subcommand ${sub} in \`flow ${argv.join(' ')}\``);
  for (const word of argv.slice(1)) {
    if (!word.startsWith('--')) continue;
    const flag = word.split('=')[0]!;
    assert.ok(FLAGS[sub]!.includes(flag), `${where}: flow ${sub} has no flag ${flag}`);
  }
}

test('example YAML files parse and their flow commands use only existing subcommands and flags', () => {
  const files = exampleFiles();
  const names = files.map((f) => path.relative(ROOT, f));
  for (const required of [
    'examples/README.md',
    'examples/kubernetes/eval-indexed-job.yaml',
    'examples/kubernetes/merge-job.yaml',
    'examples/slurm/eval-array.sbatch',
    'examples/github-actions/smoke.yml',
  ]) {
    assert.ok(names.includes(required), `missing ${required}`);
  }
  const seen = new Set<string>();
  for (const file of files) {
    const rel = path.relative(ROOT, file);
    const text = fs.readFileSync(file, 'utf8');
    let commands: string[][] = [];
    if (/\.ya?ml$/.test(file)) {
      const docs = YAML.parseAllDocuments(text);
      for (const doc of docs) assert.equal(doc.errors.length, 0, `${rel}: ${doc.errors[0]?.message}`);
      for (const value of docs.map((d) => d.toJS())) {
        if (value?.kind === 'Job') commands.push(...flowCommandsInPodSpec(value.spec.template.spec));
        for (const job of Object.values<{ steps?: Array<{ run?: string }> }>(value?.jobs ?? {})) {
          for (const step of job.steps ?? []) if (step.run) commands.push(...flowCommandsInShell(step.run));
        }
      }
    } else if (file.endsWith('.md')) {
      for (const block of text.matchAll(/```(?:sh|bash)?\n([\s\S]*?)```/g)) commands.push(...flowCommandsInShell(block[1]!));
    } else {
      commands = flowCommandsInShell(text);
    }
    for (const argv of commands) {
      checkArgv(argv, rel);
      seen.add(`${path.basename(file)}:${argv[0]}`);
    }
  }
  // The scanner really found the commands (an empty scan would pass everything).
  for (const expected of ['eval-indexed-job.yaml:eval', 'merge-job.yaml:merge', 'eval-array.sbatch:eval', 'eval-array.sbatch:merge', 'smoke.yml:train', 'smoke.yml:sample']) {
    assert.ok(seen.has(expected), `no \`flow ${expected.split(':')[1]}\` found in ${expected.split(':')[0]}`);
  }
});

test('the Kubernetes Indexed Job: one shard per completion, one GPU each, on the shared volume', () => {
  const job = YAML.parse(read('examples/kubernetes/eval-indexed-job.yaml'));
  assert.equal(job.kind, 'Job');
  assert.equal(job.spec.completionMode, 'Indexed');
  const n = job.spec.completions;
  assert.equal(job.spec.parallelism, n);
  const [container] = job.spec.template.spec.containers;
  const argv = flowCommandsInPodSpec(job.spec.template.spec)[0]!;
  assert.equal(argv[argv.indexOf('--shard') + 1], `$(JOB_COMPLETION_INDEX)/${n}`);
  assert.match(argv[argv.indexOf('--out') + 1]!, /^\/results\/part-\$\(JOB_COMPLETION_INDEX\)\.json$/);
  assert.equal(container.resources.limits['nvidia.com/gpu'], 1);
  const claim = job.spec.template.spec.volumes.find((v: { persistentVolumeClaim?: unknown }) => v.persistentVolumeClaim);
  assert.ok(claim, 'no PersistentVolumeClaim volume');

  const merge = YAML.parse(read('examples/kubernetes/merge-job.yaml'));
  const mc = merge.spec.template.spec.containers[0];
  assert.ok(/sh$/.test(mc.command[0]) && mc.command.includes('-c'), 'the merge glob needs a shell');
  assert.deepEqual(flowCommandsInPodSpec(merge.spec.template.spec), [['merge', '/results/part-*.json', '--out', '/results/eval.json']]);
  assert.equal(merge.spec.template.spec.volumes[0].persistentVolumeClaim.claimName, claim.persistentVolumeClaim.claimName);
});

test('the Slurm array: GPU per task, shard from the array variables, merge after all tasks succeed', () => {
  const text = read('examples/slurm/eval-array.sbatch');
  assert.match(text, /^#SBATCH --array=0-3$/m);
  assert.match(text, /^#SBATCH --gres=gpu:1$/m);
  assert.match(text, /--shard "\$SLURM_ARRAY_TASK_ID\/\$SLURM_ARRAY_TASK_COUNT"/);
  assert.match(text, /sbatch --dependency=afterok:/);
  assert.ok(fs.statSync(path.join(ROOT, 'examples/slurm/eval-array.sbatch')).mode & 0o111, 'the sbatch script should be executable');
});

test('the command scanner finds flags and rejects unknown ones', () => {
  assert.deepEqual(flowCommandsInShell('npx flow sample --n 16 --out s.png && echo done'), [['sample', '--n', '16', '--out', 's.png']]);
  assert.deepEqual(flowCommandsInShell('sbatch --wrap "flow merge a/*.json --out b.json"'), [['merge', 'a/*.json', '--out', 'b.json']]);
  assert.throws(() => checkArgv(['eval', '--bdp'], 'x'), /flow eval has no flag --bdp/);
  assert.throws(() => checkArgv(['evaluate'], 'x'), /unknown flow subcommand evaluate/);
});
