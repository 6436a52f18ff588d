// `--threads N|auto`: how many inference threads eval and sample start for a given machine load.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseThreads, parseThreads, MIN_THREADED_WORK } from '../src/cli/common.js';
import { UserError } from '../src/errors.js';

test('--threads auto: the cores the load average leaves free, 1 for small jobs, and says why on fallback', () => {
  const big = 10 * MIN_THREADED_WORK;
  assert.deepEqual(chooseThreads('auto', big, { cores: 2, load: 0.1 }), { threads: 2 });
  assert.deepEqual(chooseThreads(undefined, big, { cores: 2, load: 0.3 }), { threads: 2 });
  // The case: a shared 2-core machine, where a second thread made sampling slower.
  const loaded = chooseThreads('auto', big, { cores: 2, load: 2.7 });
  assert.equal(loaded.threads, 1);
  assert.match(loaded.note!, /--threads auto: the 1-minute load average is 2\.70 on 2 cores \(about 0\.0 free\); using 1 thread/);
  assert.equal(chooseThreads('auto', big, { cores: 8, load: 5.2 }).threads, 3);
  assert.equal(chooseThreads('auto', big, { cores: 32, load: 0 }).threads, 4, 'auto stops at 4 threads (each holds a model copy)');
  // Start-up costs more than a small job saves: one thread, no note, whatever the load.
  assert.deepEqual(chooseThreads('auto', MIN_THREADED_WORK - 1, { cores: 2, load: 0 }), { threads: 1 });
});

test('--threads N is kept, with a warning when the machine is busy', () => {
  const quiet = chooseThreads(2, 100, { cores: 2, load: 0.2 });
  assert.deepEqual(quiet, { threads: 2 });
  const busy = chooseThreads(2, 100, { cores: 2, load: 1.9 });
  assert.equal(busy.threads, 2);
  assert.match(busy.note!, /--threads 2: .*can be slower than one/);
  assert.deepEqual(chooseThreads(1, 100, { cores: 1, load: 9 }), { threads: 1 });
  assert.equal(parseThreads('auto'), 'auto');
  assert.equal(parseThreads('3'), 3);
  for (const bad of ['0', '-1', '1.5', 'two']) assert.throws(() => parseThreads(bad), (e: unknown) => e instanceof UserError && /expected auto or an integer >= 1/.test(e.message));
});
