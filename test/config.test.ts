import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, dumpConfig, parseConfigText, closestKey } from '../src/config/load.js';
import { renderConfigReference, updateReadme, readmeReferenceBlock, configFields, README_MARKERS } from '../src/config/docs.js';
import { checkConsistency, checkDatasetConsistency, maxLevelsFor } from '../src/config/validate.js';
import { ConfigSchema } from '../src/config/schema.js';
import { UserError } from '../src/errors.js';

const ROOT_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'flow-config-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

function writeCfg(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

/** Runs fn, asserts a one-line UserError with exit code 2, returns its message. */
function userError(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`);
    assert.equal(e.exitCode, 2);
    assert.ok(!e.message.includes('\n'), `message must be one line: ${JSON.stringify(e.message)}`);
    return e.message;
  }
  assert.fail('expected a UserError');
}

test('a good file loads, overrides apply and every default is filled', () => {
  const file = writeCfg('good.yaml', 'name: mnist-glow\nmodel:\n  depth: 4\n  family: realnvp\ntrain:\n  lr: 1e-4\n  batch_size: 32\n');
  const cfg = loadConfig(file, ['model.depth=16', 'train.optimizer=adamax']);
  assert.equal(cfg.name, 'mnist-glow');
  assert.equal(cfg.model.depth, 16);
  assert.equal(cfg.model.family, 'realnvp');
  assert.equal(cfg.train.lr, 1e-4);
  assert.equal(cfg.train.optimizer, 'adamax');
  assert.equal(cfg.train.batch_size, 32);
  // untouched options take the schema defaults
  assert.deepEqual(cfg.data, ConfigSchema.parse({}).data);
  assert.equal(cfg.model.width, 128);
  assert.equal(cfg.sample.temperature, 0.7);
});

test('no file means defaults, and so do empty sections; an empty file is refused', () => {
  const defaults = ConfigSchema.parse({});
  assert.deepEqual(loadConfig(null, []), defaults);
  assert.deepEqual(loadConfig(writeCfg('emptysec.yaml', 'model:\n  # depth: 4\ntrain:\n'), []), defaults);
  // An empty file would train every default into runs/run: more likely the wrong file than a wish.
  for (const text of ['', '# nothing\n', '\n\n']) {
    const file = writeCfg('empty.yaml', text);
    assert.equal(
      userError(() => loadConfig(file, ['model.depth=2'])),
      `${file}: the config file is empty (or only comments); expected YAML options, e.g. name: and a data: section (see configs/quickstart.yaml)`,
    );
  }
  assert.deepEqual(loadConfig(writeCfg('braces.yaml', '{}\n'), []), defaults);
});

test("a command's own flags are named in errors as typed, not as the --set they stand for", () => {
  const file = writeCfg('flags.yaml', 'name: ok\n');
  assert.equal(
    userError(() => loadConfig(file, [{ set: 'name=a/b', flag: '--name a/b' }])),
    '--name a/b: name: expected a string (letters, digits, . _ - only), got "a/b"',
  );
  assert.equal(
    userError(() => loadConfig(file, [{ set: 'backend=gpu', flag: '--backend gpu' }])),
    `--backend gpu: backend: expected one of 'auto', 'tensorflow', 'webgpu', 'wasm', 'cpu', got "gpu"`,
  );
  assert.match(userError(() => loadConfig(file, ['name=a/b'])), /^--set name=a\/b: name: /);
  // A data.path given by a flag is the user's shell path: not rebased onto the config's folder.
  assert.equal(loadConfig(file, [{ set: 'data.path=x/y', flag: '--data x/y' }]).data.path, 'x/y');
});

test('unknown key: path and closest valid key', () => {
  const file = writeCfg('config.yaml', 'model:\n  dept: 16\n');
  const msg = userError(() => loadConfig(file, []));
  assert.equal(msg, `${file}: model.dept: unknown key; did you mean 'depth'?`);
  // an option put in the wrong section points at where it belongs
  assert.match(userError(() => parseConfigText('depth: 3\n', 'c.yaml')), /^c\.yaml: depth: unknown key; did you mean 'model\.depth'\?$/);
  // nothing close: list the valid keys
  assert.match(userError(() => parseConfigText('train:\n  zzzzzzzz: 1\n', 'c.yaml')), /train\.zzzzzzzz: unknown key; expected one of batch_size, optimizer/);
  // the first problem in document order is the one reported
  assert.match(userError(() => parseConfigText('model:\n  widht: 3\n  dept: 4\n', 'c.yaml')), /model\.widht: unknown key; did you mean 'width'\?$/);
});

test('wrong types, ranges and enums name the path and what was expected', () => {
  assert.equal(userError(() => parseConfigText('model:\n  depth: abc\n', 'config.yaml')), 'config.yaml: model.depth: expected an integer in [1, 256], got "abc"');
  assert.equal(userError(() => parseConfigText('model:\n  levels: 2.5\n', 'c.yaml')), 'c.yaml: model.levels: expected an integer in [1, 8], got 2.5');
  assert.equal(userError(() => parseConfigText('train:\n  lr: 0\n', 'c.yaml')), 'c.yaml: train.lr: expected a number > 0, got 0');
  assert.equal(userError(() => parseConfigText('seed: -1\n', 'c.yaml')), 'c.yaml: seed: expected an integer >= 0, got -1');
  assert.equal(
    userError(() => parseConfigText('model:\n  family: flowz\n', 'c.yaml')),
    "c.yaml: model.family: expected one of 'glow', 'realnvp', 'nice', 'idf', got \"flowz\"",
  );
  assert.equal(userError(() => parseConfigText('data:\n  channels: 2\n', 'c.yaml')), 'c.yaml: data.channels: expected one of 0, 1, 3, got 2');
  assert.equal(userError(() => parseConfigText('model:\n  lu: yes\n', 'c.yaml')), 'c.yaml: model.lu: expected true or false, got "yes"');
  assert.match(userError(() => parseConfigText('name: "my run"\n', 'c.yaml')), /^c\.yaml: name: expected a string \(letters, digits, \. _ - only\), got "my run"$/);
  assert.match(userError(() => parseConfigText('model: 3\n', 'c.yaml')), /^c\.yaml: model: expected a mapping of model options, got 3$/);
  assert.match(userError(() => parseConfigText('train:\n  batch_size:\n', 'c.yaml')), /train\.batch_size: expected an integer >= 1, got an empty value$/);
});

test('top level must be a mapping', () => {
  assert.match(userError(() => parseConfigText('- 1\n- 2\n', 'c.yaml')), /^c\.yaml: top level: expected a mapping of sections \(name, .*\), got a list$/);
  assert.match(userError(() => parseConfigText('just words\n', 'c.yaml')), /^c\.yaml: top level: expected a mapping .* got "just words"$/);
});

test('malformed YAML gives file, line and column', () => {
  const file = writeCfg('bad.yaml', 'model:\n  depth: 3\n  width: [1, 2\ntrain:\n  lr: 1\n');
  const msg = userError(() => loadConfig(file, []));
  assert.match(msg, new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: invalid YAML: `));
  assert.match(userError(() => parseConfigText('a: 1\na: 2\n', 'dup.yaml')), /^dup\.yaml:2:1: invalid YAML: Map keys must be unique/);
  assert.match(userError(() => parseConfigText('x: "abc\n', 'q.yaml')), /^q\.yaml:\d+:\d+: invalid YAML: Missing closing/);
});

test('missing file and directory', () => {
  assert.equal(userError(() => loadConfig(join(dir, 'nope.yaml'), [])), `${join(dir, 'nope.yaml')}: config file not found; expected a path to a YAML file`);
  assert.match(userError(() => loadConfig(dir, [])), /is a directory/);
});

test('--set: overrides the file, YAML scalars, errors name the --set', () => {
  const file = writeCfg('set.yaml', 'model:\n  depth: abc\n');
  // the override replaces the bad value before validation
  assert.equal(loadConfig(file, ['model.depth=12']).model.depth, 12);
  const cfg = loadConfig(null, ['train.lr=3e-4', 'model.lu=false', 'data.path=', 'name=2024', 'data.path=/tmp/a b']);
  assert.equal(cfg.train.lr, 3e-4);
  assert.equal(cfg.model.lu, false);
  assert.equal(cfg.name, '2024');
  assert.equal(cfg.data.path, '/tmp/a b');
  assert.equal(loadConfig(null, ['data.path=']).data.path, '');
  assert.equal(userError(() => loadConfig(null, ['model.dept=16'])), "--set model.dept=16: model.dept: unknown key; did you mean 'depth'?");
  assert.equal(userError(() => loadConfig(null, ['modle.depth=16'])), "--set modle.depth=16: modle: unknown key; did you mean 'model'?");
  assert.equal(userError(() => loadConfig(null, ['model.depth=abc'])), '--set model.depth=abc: model.depth: expected an integer in [1, 256], got "abc"');
  assert.match(userError(() => loadConfig(null, ['model.depth'])), /^--set model\.depth: expected key\.path=value/);
  assert.match(userError(() => loadConfig(null, ['model.depth.x=1'])), /model\.depth is an option, not a section/);
  // a file problem elsewhere is still reported against the file
  assert.match(userError(() => loadConfig(file, ['model.width=8'])), new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: model\\.depth: expected an integer`));
});

test('closestKey only suggests plausible typos', () => {
  assert.equal(closestKey('dept', ['depth', 'width']), 'depth');
  assert.equal(closestKey('batchsize', ['batch_size', 'lr']), 'batch_size');
  assert.equal(closestKey('zzzzzzzz', ['depth', 'width']), null);
});

test('dumpConfig round-trips through loadConfig', () => {
  const cfg = loadConfig(null, ['name=x.y-z', 'train.lr=3e-4', 'model.family=nice', 'data.path=/data/mnist dir', 'data.test_fraction=0.25', 'sample.temperature=1']);
  const text = dumpConfig(cfg);
  const file = writeCfg('dumped.yaml', text);
  assert.deepEqual(loadConfig(file, []), cfg);
  assert.deepEqual(parseConfigText(dumpConfig(ConfigSchema.parse({})), 'd.yaml'), ConfigSchema.parse({}));
});

test('config reference table lists every option with type, default and description', () => {
  const table = renderConfigReference();
  const fields = configFields();
  assert.ok(fields.length >= 40);
  for (const f of fields) {
    assert.ok(f.description.length > 0, `${f.path} has no description`);
    assert.ok(f.defaultValue !== undefined, `${f.path} has no default`);
    assert.match(table, new RegExp(`^\\| \`${f.path.replace('.', '\\.')}\` \\|`, 'm'));
  }
  assert.match(table, /^\| `model\.family` \| 'glow' \\\| 'realnvp' \\\| 'nice' \\\| 'idf' \| `glow` \| /m);
  assert.match(table, /^\| `model\.depth` \| integer in \[1, 256\] \| `8` \| flow steps K per level \|$/m);
  assert.match(table, /^\| `data\.path` \| string \| `''` \|/m);
  // every row has exactly four cells (escaped pipes do not split cells)
  for (const line of table.trim().split('\n')) assert.equal(line.replace(/\\\|/g, '').split('|').length, 6, line);
});

test('updateReadme replaces only the marked block', () => {
  const readme = `# flow\n\nintro\n\n${README_MARKERS.start}\nold table\n${README_MARKERS.end}\n\nmore\n`;
  const out = updateReadme(readme);
  assert.ok(out.startsWith('# flow\n\nintro\n\n'));
  assert.ok(out.endsWith(`${README_MARKERS.end}\n\nmore\n`));
  assert.equal(readmeReferenceBlock(out), renderConfigReference());
  assert.equal(updateReadme(out), out);
  assert.throws(() => updateReadme('# no markers\n'), /no config reference block/);
});

test("README.md's config reference matches the schema", (t) => {
  const here = dirname(fileURLToPath(import.meta.url));
  // dist/test/config.test.js -> repo root
  const readmePath = [resolve(here, '../../README.md'), resolve(here, '../README.md')].find((p) => existsSync(p));
  if (!readmePath) {
    t.skip('README.md does not exist yet');
    return;
  }
  const block = readmeReferenceBlock(readFileSync(readmePath, 'utf8'));
  if (block === null) {
    t.skip(`README.md has no ${README_MARKERS.start} block yet (the lead adds it)`);
    return;
  }
  assert.equal(block, renderConfigReference(), 'README config reference is stale: run node dist/scripts/gen-config-docs.js');
});

test('checkConsistency: levels vs image size', () => {
  const cfg = loadConfig(null, ['model.levels=3']);
  assert.equal(maxLevelsFor(28, 28), 2);
  assert.equal(maxLevelsFor(32, 48), 4);
  const msg = userError(() => checkConsistency(cfg, [28, 28, 1]));
  assert.match(msg, /model\.levels: 3 levels need image sides divisible by 2\^3 = 8, but the images are 28x28; expected model\.levels <= 2/);
  assert.match(userError(() => checkConsistency(loadConfig(null, []), [7, 7, 3])), /odd side/);
  checkConsistency(loadConfig(null, ['model.levels=2']), [28, 28, 1]);
  checkConsistency(loadConfig(null, ['model.levels=5']), [32, 32, 3]);
});

test('checkConsistency: vectors, masks, labels, batch size', () => {
  const base = loadConfig(null, []);
  assert.match(userError(() => checkConsistency(base, [1])), /vectors have 1 feature.*at least 2/);
  checkConsistency(base, [2], { trainSize: 1000, hasLabels: false });
  const rnvp = loadConfig(null, ['model.family=realnvp']);
  assert.match(userError(() => checkConsistency(rnvp, [28, 28, 1])), /model\.mask: realnvp checkerboard .* level 2 is 7x7 .*expected model\.mask: channel or model\.levels <= 1/);
  checkConsistency(loadConfig(null, ['model.family=realnvp', 'model.mask=channel']), [28, 28, 1]);
  checkConsistency(loadConfig(null, ['model.family=realnvp', 'model.levels=1']), [28, 28, 1]);
  assert.match(userError(() => checkConsistency(loadConfig(null, ['model.mask=checkerboard']), [8, 8, 1])), /only applies to model\.family realnvp/);
  const cond = loadConfig(null, ['model.conditional=classes', 'data.source=toy']);
  assert.match(userError(() => checkConsistency(cond, [2], { hasLabels: false })), /model\.conditional: 'classes' needs labelled data, but data\.source 'toy' gives no labels/);
  checkConsistency(cond, [2], { hasLabels: true, numClasses: 3 });
  assert.match(userError(() => checkConsistency(loadConfig(null, ['model.class_loss_weight=0.1']), [8, 8, 1])), /needs a class-conditional model/);
  assert.match(
    userError(() => checkConsistency(base, [8, 8, 1], { trainSize: 10 })),
    /train\.batch_size: 64 is larger than the training set \(10 examples\); expected train\.batch_size <= 10/,
  );
  assert.match(
    userError(() => checkDatasetConsistency(cond, { shape: [8, 8, 1], train: { n: 100 } })),
    /needs labelled data/,
  );
  checkDatasetConsistency(cond, { shape: [8, 8, 1], train: { n: 100, labels: new Int32Array(100) }, numClasses: 10 });
});

test("model.learn_top: channel | position | false; true is the old 'position'; a checkpoint saying true matches 'position'", async () => {
  assert.equal(parseConfigText('model:\n  learn_top: channel\n').model.learn_top, 'channel');
  assert.equal(parseConfigText('model:\n  learn_top: true\n').model.learn_top, 'position');
  assert.equal(parseConfigText('model:\n  learn_top: false\n').model.learn_top, false);
  assert.equal(parseConfigText('', 'c.yaml', ['model.learn_top=true']).model.learn_top, 'position');
  assert.equal(
    userError(() => parseConfigText('model:\n  learn_top: yes\n', 'c.yaml')),
    `c.yaml: model.learn_top: expected one of 'channel', 'position', true, false, got "yes"`,
  );
  // The dumped config reads back unchanged.
  const cfg = parseConfigText('model:\n  learn_top: channel\n');
  assert.deepEqual(parseConfigText(dumpConfig(cfg)), cfg);
  const { assertCompatible } = await import('../src/io/checkpoint.js');
  const old = { model: { ...ConfigSchema.parse({}).model, learn_top: true } };
  assertCompatible(old, parseConfigText('model:\n  learn_top: position\n'));
  assert.match(userError(() => assertCompatible(old, parseConfigText('model:\n  learn_top: channel\n'))), /model\.learn_top is "position" in the checkpoint but "channel"/);
  // The benchmark config uses the reference's per-channel prior.
  assert.equal(loadConfig(join(ROOT_DIR, 'configs', 'bench-fashion.yaml')).model.learn_top, 'channel');
});

test('every shipped config in configs/ validates: schema, data paths inside the repository, and the model fits its data', async () => {
  const { readdirSync } = await import('node:fs');
  const files = readdirSync(join(ROOT_DIR, 'configs')).filter((f) => f.endsWith('.yaml'));
  for (const want of ['celeba64.yaml', 'celeba32.yaml', 'cifar10.yaml', 'my-images.yaml', 'fashion-mnist.yaml', 'bench-fashion.yaml', 'quickstart.yaml']) {
    assert.ok(files.includes(want), `configs/${want} is missing`);
  }
  for (const f of files) {
    const file = join(ROOT_DIR, 'configs', f);
    const text = readFileSync(file, 'utf8');
    assert.doesNotMatch(text, /\/(work|home|root)\//, `${f}: a machine-specific path`);
    const cfg = loadConfig(file);
    const d = cfg.data;
    if (d.path !== '') {
      // Without FLOW_DATA every shipped path lands in the repository (its data/ folder), never on one machine's disk.
      const noEnv = loadConfigWithEnv(file, {});
      assert.ok(noEnv.data.path.startsWith(ROOT_DIR + '/data/'), `${f}: data.path ${noEnv.data.path} is outside ${ROOT_DIR}/data`);
    }
    // The data shape the config implies, as `flow train --dry-run` knows it without the files.
    const shape =
      d.source === 'toy' ? [2]
      : d.source === 'cifar10' ? [d.image_size || 32, d.image_size || 32, d.channels || 3]
      : d.source === 'embedded' || d.source === 'idx' ? [d.image_size || 28, d.image_size || 28, d.channels || 1]
      : d.source === 'images' ? [d.image_size, d.image_size, d.channels || 3]
      : null;
    assert.ok(shape && shape[0]! > 0, `${f}: cannot tell its data shape (images configs need data.image_size)`);
    checkConsistency(cfg, shape);
  }
});

/** loadConfig with process.env replaced for the call (FLOW_DATA unset, etc.). */
function loadConfigWithEnv(file: string, env: NodeJS.ProcessEnv) {
  const saved = process.env;
  process.env = env;
  try {
    return loadConfig(file);
  } finally {
    process.env = saved;
  }
}
