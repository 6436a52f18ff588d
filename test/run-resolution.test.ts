// Which run and checkpoint the commands use (issue #11): a damaged newest checkpoint is an error naming it,
// --checkpoint picks another on purpose, train says loudly when it resumes from an older one, --fresh archives
// the whole old run, runs/latest is named wherever it is used, and a finished run reports its figures.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { flow, tempDir, writeYaml, TINY_CONFIG } from './helpers.js';

// Ten steps with checkpoints at 5 and 10: two checkpoints to choose between, in about two seconds.
const CONFIG = TINY_CONFIG.replace('max_steps: 40', 'max_steps: 10').replace('checkpoint_every: 20', 'checkpoint_every: 5').replace('log_every: 10', 'log_every: 5');

let dir = '';
let cfg = '';
let first: Record<string, unknown> = {};

before(() => {
  dir = tempDir('flow-runres-');
  cfg = writeYaml(dir, 'tiny.yaml', CONFIG);
  const tr = flow(['train', cfg, '--json', '--quiet'], dir);
  assert.equal(tr.code, 0, tr.stderr);
  first = JSON.parse(tr.stdout.trim().split('\n').pop()!);
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const runs = () => path.join(dir, 'runs');
const ck = (run: string, step: number) => path.join(runs(), run, 'checkpoints', `step-${String(step).padStart(8, '0')}`);

/** A copy of the base run under another name, to damage. */
function copyRun(name: string): string {
  const to = path.join(runs(), name);
  fs.cpSync(path.join(runs(), 'tiny'), to, { recursive: true });
  return to;
}

function oneErrorLine(stderr: string): string {
  const lines = stderr.trim().split('\n').filter((l) => l.startsWith('flow:'));
  assert.equal(lines.length, 1, `one error line: ${stderr}`);
  return lines[0]!;
}

test('a truncated, empty or missing newest checkpoint: eval, sample and check exit 2 naming it', () => {
  const trunc = copyRun('trunc');
  const weights = path.join(ck('trunc', 10), 'weights.bin');
  fs.truncateSync(weights, Math.floor(fs.statSync(weights).size / 2));
  for (const args of [['eval', '--bpd'], ['sample', '--n', '2', '--out', path.join(dir, 'never.png')], ['check', '--n', '4', '--no-ood', '--jacobian', '0']]) {
    const r = flow([...args, '--run', trunc], dir);
    assert.equal(r.code, 2, `${args[0]}: ${r.stderr}`);
    const line = oneErrorLine(r.stderr);
    assert.match(line, /newest checkpoint step-00000010 is unusable: .*step-00000010\/weights\.bin: size \d+ bytes, expected \d+/);
    assert.match(line, /--checkpoint step-00000005 \(the newest usable one\)/);
  }
  assert.ok(!fs.existsSync(path.join(dir, 'never.png')), 'nothing written from an older checkpoint');

  const empty = copyRun('empty');
  fs.writeFileSync(path.join(ck('empty', 10), 'manifest.json'), '');
  const e = flow(['eval', '--bpd', '--run', empty], dir);
  assert.equal(e.code, 2, e.stderr);
  assert.match(oneErrorLine(e.stderr), /step-00000010\/manifest\.json: garbled JSON/);

  // LATEST names a checkpoint that is gone.
  const gone = copyRun('gone');
  fs.rmSync(ck('gone', 10), { recursive: true });
  const g = flow(['eval', '--bpd', '--run', gone], dir);
  assert.equal(g.code, 2, g.stderr);
  assert.match(oneErrorLine(g.stderr), /LATEST names step-00000010 but .*step-00000010 does not exist/);
});

test('--checkpoint step-N|N|best|latest picks a checkpoint; unknown ones exit 2 listing what there is', () => {
  const trunc = path.join(runs(), 'trunc');
  const older = flow(['eval', '--bpd', '--json', '--quiet', '--run', trunc, '--checkpoint', 'step-5'], dir);
  assert.equal(older.code, 0, older.stderr);
  const o = JSON.parse(older.stdout);
  assert.equal(o.step, 5);
  assert.equal(o.checkpoint, fs.realpathSync(ck('trunc', 5)));
  assert.equal(o.run_dir, fs.realpathSync(trunc));
  const padded = JSON.parse(flow(['eval', '--bpd', '--json', '--quiet', '--run', trunc, '--checkpoint', 'step-00000005'], dir).stdout);
  assert.equal(padded.bpd, o.bpd, 'step-5 and step-00000005 are the same checkpoint');
  const bare = JSON.parse(flow(['sample', '--n', '2', '--json', '--quiet', '--run', trunc, '--checkpoint', '5', '--out', path.join(dir, 's5.png')], dir).stdout);
  assert.equal(bare.step, 5);

  const tiny = path.join(runs(), 'tiny');
  const bestName = fs.readFileSync(path.join(tiny, 'checkpoints', 'BEST'), 'utf8').trim();
  const best = JSON.parse(flow(['eval', '--bpd', '--json', '--quiet', '--run', tiny, '--checkpoint', 'best'], dir).stdout);
  assert.equal(path.basename(best.checkpoint), bestName);
  const latest = JSON.parse(flow(['eval', '--bpd', '--json', '--quiet', '--run', tiny, '--checkpoint', 'latest'], dir).stdout);
  assert.equal(latest.step, first.step, 'latest is the step training ended on');
  assert.notEqual(JSON.stringify(o.bpd), JSON.stringify(latest.bpd), 'a different checkpoint scores differently');

  const missing = flow(['eval', '--bpd', '--run', tiny, '--checkpoint', 'step-7'], dir);
  assert.equal(missing.code, 2, missing.stderr);
  assert.match(oneErrorLine(missing.stderr), /--checkpoint step-00000007: .* does not exist; the run has step-00000005, step-00000010/);
  const bad = flow(['sample', '--checkpoint', 'newest'], dir);
  assert.equal(bad.code, 2);
  assert.match(oneErrorLine(bad.stderr), /--checkpoint newest: expected latest, best or step-N/);
  const truncBest = flow(['eval', '--bpd', '--run', trunc, '--checkpoint', 'step-10'], dir);
  assert.equal(truncBest.code, 2, 'a damaged checkpoint asked for by name is refused too');
  assert.match(oneErrorLine(truncBest.stderr), /--checkpoint step-00000010: .*weights\.bin: size/);
});

test('human lines and --json name the run (and runs/latest when it was used) and the step', () => {
  // No --run: the run comes from runs/latest, and the line says so.
  const ev = flow(['eval', '--bpd', '--quiet'], dir);
  assert.equal(ev.code, 0, ev.stderr);
  assert.match(ev.stdout.split('\n')[0]!, new RegExp(`run runs/latest -> runs/tiny, step ${first.step}\\b`));
  const s = flow(['sample', '--n', '2', '--out', path.join(dir, 'l.png')], dir);
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stdout, new RegExp(`from run runs/latest -> runs/tiny, step ${first.step} to `));
  const sj = JSON.parse(flow(['sample', '--n', '2', '--json', '--out', path.join(dir, 'l.png')], dir).stdout);
  assert.equal(sj.run_dir, fs.realpathSync(path.join(runs(), 'tiny')));
  assert.equal(sj.step, first.step);
  // With --run DIR: that directory, shown relative to the working directory, and no mention of latest.
  const trunc = path.join(runs(), 'trunc');
  const rec = flow(['reconstruct', '--n', '2', '--run', trunc, '--checkpoint', 'step-5', '--out', path.join(dir, 'r.png')], dir);
  assert.equal(rec.code, 0, rec.stderr);
  assert.match(rec.stdout, /\(run runs\/trunc, step 5\)/);
  assert.doesNotMatch(rec.stdout, /latest/);
  const parts = path.join(dir, 'part.json');
  const shard = JSON.parse(flow(['eval', '--bpd', '--json', '--quiet', '--shard', '0/2', '--out', parts], dir).stdout);
  assert.equal(shard.step, first.step);
  assert.equal(shard.run_dir, fs.realpathSync(path.join(runs(), 'tiny')));
});

test('train resuming from an older checkpoint says so on stderr (even with --quiet), in metrics.ndjson and in --json', () => {
  const run = copyRun('resume-old');
  const weights = path.join(ck('resume-old', 10), 'weights.bin');
  fs.truncateSync(weights, 100);
  const tr = flow(['train', cfg, '--name', 'resume-old', '--json', '--quiet'], dir);
  assert.equal(tr.code, 0, tr.stderr);
  assert.match(tr.stderr, /WARNING: .*resume-old: the newest checkpoint step-00000010 is unusable \(.*weights\.bin: size 100 bytes.*\); resuming from the older step-00000005, steps 6\.\.10 are trained again/);
  const summary = JSON.parse(tr.stdout.trim().split('\n').pop()!);
  assert.equal(summary.resumed_from, 5);
  assert.match(summary.resume_warning, /step-00000010 is unusable/);
  const events = fs.readFileSync(path.join(run, 'metrics.ndjson'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.event === 'resumed_from_older_checkpoint');
  assert.equal(events.length, 1);
  assert.equal(events[0].resumed_step, 5);
  assert.equal(events[0].newest_step, 10);
  assert.match(events[0].problem, /weights\.bin: size 100 bytes/);
  // Steps 6..10 again reproduce the lost checkpoint (exact resume), and it is the newest one now.
  assert.equal(summary.test_bpd, first.test_bpd);
  assert.equal(JSON.parse(flow(['eval', '--bpd', '--json', '--quiet', '--run', run], dir).stdout).step, 10);

  // No usable checkpoint at all: refuse (naming --fresh) rather than start over on top of the old files.
  copyRun('all-bad');
  for (const step of [5, 10]) fs.writeFileSync(path.join(ck('all-bad', step), 'manifest.json'), '{');
  const latestBefore = fs.readlinkSync(path.join(runs(), 'latest'));
  const bad = flow(['train', cfg, '--name', 'all-bad', '--quiet'], dir);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(oneErrorLine(bad.stderr), /newest checkpoint step-00000010 is unusable .*no older usable one; pass --fresh/);
  const resume = flow(['train', cfg, '--name', 'all-bad', '--resume', '--quiet'], dir);
  assert.equal(resume.code, 2, resume.stderr);
  assert.match(oneErrorLine(resume.stderr), /newest checkpoint step-00000010 is unusable/, '--resume names the damaged checkpoint too');
  assert.equal(fs.readlinkSync(path.join(runs(), 'latest')), latestBefore, 'a training that failed does not take runs/latest');
  assert.ok(fs.existsSync(ck('all-bad', 10)), 'the damaged checkpoints are left for the user');
});

test('--fresh moves checkpoints, metrics.ndjson and sample grids to the archive; plot curves shows only the new run', () => {
  const run = copyRun('fresh');
  const oldMetrics = fs.readFileSync(path.join(run, 'metrics.ndjson'), 'utf8');
  const oldSamples = fs.readdirSync(path.join(run, 'samples')).sort();
  assert.ok(oldSamples.length > 0);
  const tr = flow(['train', cfg, '--name', 'fresh', '--fresh', '--max-steps', '5', '--log-format', 'json'], dir);
  assert.equal(tr.code, 0, tr.stderr);
  assert.match(tr.stderr, /--fresh: moved the old run's checkpoints, metrics\.ndjson, samples, config\.yaml to /);
  const archives = fs.readdirSync(path.join(run, 'archive'));
  assert.equal(archives.length, 1);
  const archived = path.join(run, 'archive', archives[0]!);
  assert.equal(fs.readFileSync(path.join(archived, 'metrics.ndjson'), 'utf8'), oldMetrics);
  assert.deepEqual(fs.readdirSync(path.join(archived, 'samples')).sort(), oldSamples);
  assert.ok(fs.existsSync(path.join(archived, 'checkpoints', 'step-00000010', 'manifest.json')));
  // The new run's files hold only the new run.
  const steps = fs.readFileSync(path.join(run, 'metrics.ndjson'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step);
  assert.ok(steps.length > 0 && steps.every((s) => s <= 5), `new metrics only: ${steps}`);
  assert.deepEqual(fs.readdirSync(path.join(run, 'samples')), ['step-00000005.png']);
  const curves = JSON.parse(flow(['plot', 'curves', '--run', run, '--json', '--out', path.join(dir, 'c.png')], dir).stdout);
  assert.equal(curves.series.train_bpd.step, 5, 'last train point is the new run\'s');
  assert.equal(curves.series.test_bpd.step, 5);
  // The archive is a run directory of its own.
  const ev = flow(['eval', '--bpd', '--json', '--quiet', '--run', archived], dir);
  assert.equal(ev.code, 0, ev.stderr);
  assert.equal(JSON.parse(ev.stdout).step, 10);
});

test('re-running a finished run reports its figures and that nothing was left to do', () => {
  const metrics = path.join(runs(), 'tiny', 'metrics.ndjson');
  const before = fs.readFileSync(metrics, 'utf8');
  const again = flow(['train', cfg, '--json', '--quiet'], dir);
  assert.equal(again.code, 0, again.stderr);
  const s = JSON.parse(again.stdout.trim().split('\n').pop()!);
  assert.equal(s.nothing_to_do, true);
  assert.equal(s.step, first.step);
  assert.equal(s.test_bpd, first.test_bpd, 'the test bpd the run finished with');
  assert.equal(s.train_bpd, first.train_bpd);
  assert.equal(s.img_per_s, null, 'no throughput to report');
  assert.equal(s.checkpoint, first.checkpoint);
  assert.equal(fs.readFileSync(metrics, 'utf8'), before, 'nothing appended');
  const human = flow(['train', cfg], dir);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stderr, new RegExp(`nothing left to do: runs/tiny is already at step ${first.step} .*test bpd ${(first.test_bpd as number).toFixed(4)}`));
  assert.doesNotMatch(human.stderr, /n\/a|img\/s/);
});

test('runs/latest follows the run trained last, and commands without --run name it', () => {
  const tr = flow(['train', cfg, '--name', 'throwaway', '--max-steps', '3', '--quiet'], dir);
  assert.equal(tr.code, 0, tr.stderr);
  assert.equal(fs.readlinkSync(path.join(runs(), 'latest')), 'throwaway');
  const s = flow(['sample', '--n', '2', '--out', path.join(dir, 't.png')], dir);
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stdout, /from run runs\/latest -> runs\/throwaway, step 3 to /);
  const dry = flow(['train', cfg, '--name', 'dry', '--dry-run'], dir);
  assert.equal(dry.code, 0, dry.stderr);
  assert.equal(fs.readlinkSync(path.join(runs(), 'latest')), 'throwaway', 'a dry run does not move it');
});
