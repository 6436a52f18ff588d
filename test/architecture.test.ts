// The shape of the code base: no import cycles between modules or between src/ folders, and the flows are
// pure math that reach the backend only through the Ops seam (src/kernels/index.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from './helpers.js';

const SRC = path.join(ROOT, 'src');

/** Every src/ module and the src/ modules it imports (relative imports only; runtimeOnly: less `import type`, which compiles away). */
function importGraph(runtimeOnly = false): Map<string, string[]> {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) files.push(p);
    }
  };
  walk(SRC);
  const graph = new Map<string, string[]>();
  const spec = /(?:import|export)\s[^'"]*?from\s+'(\.[^']+)'|import\s+'(\.[^']+)'/g;
  for (const file of files) {
    const text = fs.readFileSync(file, 'utf8');
    const deps = [...text.matchAll(spec)].filter((m) => !runtimeOnly || !/^(?:import|export)\s+type\s/.test(m[0])).map((m) => path.resolve(path.dirname(file), (m[1] ?? m[2])!).replace(/\.js$/, '.ts'));
    graph.set(path.relative(SRC, file), deps.filter((d) => files.includes(d)).map((d) => path.relative(SRC, d)));
  }
  return graph;
}

/** One cycle of the directed graph, or null. */
function findCycle(graph: Map<string, string[]>): string[] | null {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (u: string): string[] | null => {
    state.set(u, 'open');
    stack.push(u);
    for (const v of graph.get(u) ?? []) {
      if (state.get(v) === 'open') return [...stack.slice(stack.indexOf(v)), v];
      if (!state.has(v)) {
        const c = visit(v);
        if (c) return c;
      }
    }
    stack.pop();
    state.set(u, 'done');
    return null;
  };
  for (const u of graph.keys()) {
    if (!state.has(u)) {
      const c = visit(u);
      if (c) return c;
    }
  }
  return null;
}

const folderOf = (module: string) => (module.includes(path.sep) ? module.split(path.sep)[0]! : '.');

test('no import cycles between modules', () => {
  const cycle = findCycle(importGraph());
  assert.equal(cycle, null, `import cycle: ${cycle?.join(' -> ')}`);
});

test('no import cycles between src/ folders (the top-level modules count as one folder)', () => {
  const folders = new Map<string, string[]>();
  for (const [module, deps] of importGraph()) {
    const from = folderOf(module);
    const to = deps.map(folderOf).filter((f) => f !== from);
    folders.set(from, [...new Set([...(folders.get(from) ?? []), ...to])]);
  }
  const cycle = findCycle(folders);
  assert.equal(cycle, null, `folder cycle: ${cycle?.join(' -> ')}`);
});

test('flows/ reaches the backend only through the Ops seam (kernels/index.ts)', () => {
  for (const [module, deps] of importGraph()) {
    if (folderOf(module) !== 'flows') continue;
    for (const dep of deps) {
      const folder = folderOf(dep);
      assert.ok(folder !== 'backend', `${module} imports ${dep}`);
      assert.ok(folder !== 'kernels' || dep === path.join('kernels', 'index.ts'), `${module} imports ${dep}, not the seam kernels/index.ts`);
    }
  }
});

test('the cycle finder finds a cycle (so the checks above can fail)', () => {
  const g = new Map([
    ['a', ['b']],
    ['b', ['c']],
    ['c', ['a']],
  ]);
  assert.deepEqual(findCycle(g), ['a', 'b', 'c', 'a']);
  assert.equal(findCycle(new Map([['a', ['b']], ['b', []]])), null);
});

/** Every src/ module reachable from `start` through relative imports (start included). */
function reachable(graph: Map<string, string[]>, start: string): Set<string> {
  const seen = new Set<string>([start]);
  const todo = [start];
  while (todo.length) for (const d of graph.get(todo.pop()!) ?? []) if (!seen.has(d) && seen.add(d)) todo.push(d);
  return seen;
}

test('a worker thread loads neither the replica pool, the trainer nor sharp (it speaks through train/protocol.ts)', () => {
  const graph = importGraph(true);
  const worker = path.join('train', 'grad-worker.ts');
  assert.ok(graph.has(worker));
  const loaded = reachable(graph, worker);
  assert.ok(loaded.has(path.join('train', 'protocol.ts')), 'grad-worker.ts should import train/protocol.ts');
  for (const m of [path.join('train', 'parallel.ts'), path.join('train', 'trainer.ts')]) assert.ok(!loaded.has(m), `grad-worker.ts loads ${m}`);
  for (const m of loaded) {
    const text = fs.readFileSync(path.join(SRC, m), 'utf8');
    assert.ok(!/from\s+'sharp'|import\('sharp'\)/.test(text), `grad-worker.ts loads ${m}, which imports sharp`);
  }
});

test('no module in src/ over 350 lines without a reason in its header', () => {
  const MAX_LINES = 350;
  for (const module of importGraph().keys()) {
    const text = fs.readFileSync(path.join(SRC, module), 'utf8');
    const lines = text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
    if (lines <= MAX_LINES) continue;
    // The header: the comment lines the file opens with; a long module says why it is long there.
    const all = text.split('\n');
    const header = all.slice(0, all.findIndex((l) => !l.startsWith('//'))).join(' ');
    assert.match(header, /Over 350 lines/, `${module}: ${lines} lines and no "Over 350 lines ..." reason in its header`);
  }
});
