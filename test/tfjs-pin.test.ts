// The wasm kernels read private fields of the tfjs 4.22.0 wasm backend: another tfjs must be refused, clearly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { assertPinnedTfjs, installedTfjsVersions, PINNED_TFJS } from '../src/kernels/wasm-kernels.js';
import { FlowFailure } from '../src/errors.js';
import { ROOT } from './helpers.js';

test('the pinned tfjs is the one package.json pins and the one installed', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  assert.equal(pkg.dependencies['@tensorflow/tfjs-core'], PINNED_TFJS);
  assert.equal(pkg.dependencies['@tensorflow/tfjs-backend-wasm'], PINNED_TFJS);
  assert.deepEqual(installedTfjsVersions(), { core: PINNED_TFJS, wasm: PINNED_TFJS });
  assertPinnedTfjs(installedTfjsVersions());
});

test('another tfjs-core or wasm backend version is refused with one line naming the package, its version and the expected one', () => {
  for (const v of [{ core: '4.21.0', wasm: PINNED_TFJS }, { core: PINNED_TFJS, wasm: '4.23.1' }]) {
    assert.throws(
      () => assertPinnedTfjs(v),
      (e: unknown) => {
        assert.ok(e instanceof FlowFailure);
        const bad = v.core !== PINNED_TFJS ? `@tensorflow/tfjs-core is ${v.core}` : `@tensorflow/tfjs-backend-wasm is ${v.wasm}`;
        assert.ok(e.message.includes(bad), e.message);
        assert.ok(e.message.includes(`expected ${PINNED_TFJS}`), e.message);
        assert.ok(!e.message.includes('\n'));
        return true;
      },
    );
  }
  assertPinnedTfjs({ core: PINNED_TFJS, wasm: null });
});
